"""`context-encoder demo`: train a small context encoder on scikit-image's sample photographs, fill held-out holes.

Needs the `demo` extra (`pip install context-encoder[demo]`) for the photographs; everything runs offline.
Three photographs (astronaut, coffee, rocket) are never trained on; the figure and the numbers come
from them only.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .checkpoint import load_generator
from .config import apply_overrides, load_config
from .data import ImageDataset
from .errors import ContextEncoderError
from .inpaint import fill_batch
from .masks import center_mask, fill_value
from .train import train
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)

TRAIN_PHOTOS = (
    "chelsea",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
)
HELD_OUT_PHOTOS = ("astronaut", "coffee", "rocket")


def export_sample_photos(folder: Path) -> dict[str, Path]:
    """Write scikit-image's bundled photographs as PNG files under `folder/{train,held_out}`."""
    try:
        import skimage.data
    except ImportError:
        raise ContextEncoderError("the demo needs scikit-image: pip install 'context-encoder[demo]'") from None
    paths = {}
    for split, names in (("train", TRAIN_PHOTOS), ("held_out", HELD_OUT_PHOTOS)):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            path = folder / split / f"{name}.png"
            if not path.exists():
                arr = getattr(skimage.data, name)()
                arr = arr[0] if isinstance(arr, tuple) else arr  # stereo pairs: the left view
                Image.fromarray(np.asarray(arr)).save(path)
            paths[name] = path
    return paths


def psnr_on(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB on the masked pixels, images in [-1, 1] mapped to [0, 1]."""
    m = mask.expand_as(a)
    mse = (((a - b) / 2)[m] ** 2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def run_demo(out: Path, steps: int = 300, progress: bool = True) -> Path:
    """Train the demo model into `out/run`, write `out/demo.png`, print hole PSNR against a mean-colour fill."""
    photos = export_sample_photos(out / "photos")
    cfg = apply_overrides(
        load_config("scenes64"),
        [
            f'data.train_dir="{(out / "photos" / "train").as_posix()}"',
            "data.val_fraction=0.0",
            "data.load_size=96",
            "data.workers=0",
            f"train.steps={steps}",
            "train.batch_size=32",
            f"train.sample_every={steps}",
            f"train.checkpoint_every={steps}",
            "train.log_every=20",
            'name="demo"',
        ],
    )
    ckpt = train(cfg, out / "run", progress=progress)
    gen, cfg = load_generator(ckpt)
    held = ImageDataset([photos[n] for n in HELD_OUT_PHOTOS], 64, 64, flip=False)
    wide = ImageDataset([photos[n] for n in HELD_OUT_PHOTOS], 64, 128, flip=False)
    images = torch.stack([held[i] for i in range(len(held))] + [wide[i] for i in range(len(wide))])
    mask = center_mask(64, cfg.mask.overlap, len(images))
    filled = fill_batch(gen, cfg, images, mask)
    fill = fill_value(cfg.mask.fill_rgb)
    mean_fill = torch.where(mask, fill, images)
    masked = hole_view(mean_fill, mask)
    path = save_png(image_grid([images, masked, filled], min_tile=192), out / "demo.png")
    print(f"held-out photographs ({', '.join(HELD_OUT_PHOTOS)}), 64 px, {steps} training steps")
    print(f"  hole PSNR, context encoder: {psnr_on(mask, filled, images):6.2f} dB")
    print(f"  hole PSNR, mean-colour fill: {psnr_on(mask, mean_fill, images):6.2f} dB")
    print(f"figure (original | masked | filled): {path}")
    return path
