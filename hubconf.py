"""torch.hub entry points for the shipped models, loaded from a clone without installing it:

    import torch
    inpainter = torch.hub.load("/path/to/context-encoder", "scenes128_center", source="local")
    filled = inpainter("photo.jpg", "holes.png")

Each entry point returns a ready `context_encoder.Inpainter` (generator in eval mode); keyword
arguments (`device`, `options`, ...) go to `context_encoder.load_model`.
"""

import sys
from pathlib import Path

dependencies = ["torch", "numpy", "PIL", "safetensors"]

_SRC = str(Path(__file__).resolve().parent / "src")
if _SRC not in sys.path:  # a clone is enough: the package is imported from src/
    sys.path.insert(0, _SRC)

from context_encoder.loading import load_model  # noqa: E402


def cifar10_center(**kwargs):
    """The shipped `cifar10-center` model: 32 px input, fills a centred square hole (CIFAR-10 scale)."""
    return load_model("cifar10-center", **kwargs)


def scenes128_center(**kwargs):
    """The shipped `scenes128-center` model: the paper's layout, 128 px input with a 64 px centre hole."""
    return load_model("scenes128-center", **kwargs)


def scenes128_region(**kwargs):
    """The shipped `scenes128-region` model: 128 px whole-image input, fills random blocks and free-form holes."""
    return load_model("scenes128-region", **kwargs)
