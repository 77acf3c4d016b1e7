"""The one model loader: a shipped model name, a `.safetensors` file, a checkpoint or a run directory in,
a ready `Inpainter` out.

    inpainter = load_model("scenes128-center")              # shipped with the package
    inpainter = load_model("exported.safetensors")          # written by `context-encoder export`
    inpainter = load_model("runs/00000-cifar10")            # a run directory (its last checkpoint)
    inpainter = load_model("runs/x/checkpoints/best.pt", options=InferenceOptions(flip_average=False))
    filled = inpainter("photo.jpg", "holes.png")

The generator, its config (`inpainter.cfg`) and its options (`inpainter.options`) come from the file:
weights files store the options they were measured with; checkpoints take `InferenceOptions()`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from .config import config_from_dict
from .decode import ImageInput, MaskInput
from .errors import InputError
from .inpaint import Inpainter
from .options import InferenceOptions
from .pretrained import read_generator, read_metadata, shipped_names, shipped_path

Source = Inpainter | str | Path


def load_model(
    source: Source,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    ema: bool = True,
    precision: str = "auto",
) -> Inpainter:
    """A ready `Inpainter` (generator in eval mode on `device`) from `source`.

    `source`: an `Inpainter` (returned as it is, or with `options`), the name of a shipped model
    (`context-encoder models`), a `.safetensors` file written by `export`, a checkpoint (`.pt`) or a
    run directory. `options` replace the ones the file stores; `ema=False` reads a checkpoint's raw
    generator weights instead of their moving average; `precision` is the generator's arithmetic
    ("auto", "fp32" or "bf16"; see `Inpainter`).
    """
    if isinstance(source, Inpainter):
        if precision not in ("auto", source.precision):
            source = Inpainter(source.gen, source.cfg, source.device, source.options, precision)
        return source if options is None else source.with_options(options)
    gen, cfg, stored = read_generator(source, ema)
    return Inpainter(gen, cfg, device, options or stored, precision)


def preferred_models(arbitrary_holes: bool, made_for_only: bool = False) -> tuple[str, ...]:
    """Shipped models for a kind of hole, best measured first (with `made_for_only`, only those trained for it).

    Each shipped file stores a "ranking": {kind: mean hole PSNR} measured on one protocol per kind for
    every model (`python -m benchmarks.ship_models --rank`): "square" is the strict 128 px centre
    protocol (`benchmarks/centre128.py`), "free-form" the full-resolution brush-stroke protocol
    (`context_encoder.fullres`), both on photos no model trained on. Models are ordered by that score;
    a model without one follows, those trained for the kind of hole first, then by name.
    """
    kind = "free-form" if arbitrary_holes else "square"
    entries = []
    for name in shipped_names():
        meta = read_metadata(shipped_path(name))
        score = (meta.get("ranking") or {}).get(kind)
        made_for = config_from_dict(meta.get("config", {})).full_image == arbitrary_holes
        if made_for_only and not made_for:
            continue
        entries.append((score is None, -(score or 0.0), not made_for, name))
    return tuple(e[-1] for e in sorted(entries))


def default_model(arbitrary_holes: bool) -> str:
    """The shipped model `inpaint` uses when none is named: the first of `preferred_models`."""
    name = next(iter(preferred_models(arbitrary_holes)), None)
    if name is None:
        raise InputError("no shipped model installed: pass --model NAME|FILE.safetensors or --checkpoint CKPT")
    return name


def inpaint(
    model: Source,
    image: ImageInput,
    mask: MaskInput,
    options: InferenceOptions | None = None,
) -> Image.Image:
    """Fill the holes of `image` (any size, any Pillow mode) where `mask` is non-zero.

    `model` is anything `load_model` takes: an `Inpainter`, a shipped model name, a weights file, a
    checkpoint or a run directory.
    """
    return load_model(model, options=options)(image, mask)
