"""`context-encoder demo`: fill holes in built-in photographs with the shipped models and with OpenCV Telea.

The photographs come from scikit-image's bundled data (the `demo` extra); nothing is downloaded and
none of them was used to train the shipped models. Each photograph is resized to 256 px on its
shorter side and centre-cropped to 256 x 256; `scenes-center` fills a centred square hole,
`scenes-region` (when shipped) fills free-form blobs. The figure puts original | masked | model |
Telea side by side, and the hole metrics are printed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .baselines import opencv_fill
from .data import pil_to_tensor
from .errors import ContextEncoderError
from .inpaint import hole_mask
from .loading import load_model
from .masks import random_region_mask
from .metrics import l1_error, psnr
from .pretrained import shipped_names
from .viz import image_grid, save_png

log = logging.getLogger(__name__)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SIZE = 256


def sample_photos() -> dict[str, Image.Image]:
    """scikit-image's bundled photographs, 256 x 256 (shorter side resized, centre crop)."""
    try:
        import skimage.data
    except ImportError:
        raise ContextEncoderError("the demo needs scikit-image: pip install 'context-encoder[demo]'") from None
    out = {}
    for name in PHOTOS:
        img = Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
        w, h = img.size
        scale = SIZE / min(w, h)
        img = img.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
        w, h = img.size
        out[name] = img.crop(((w - SIZE) // 2, (h - SIZE) // 2, (w - SIZE) // 2 + SIZE, (h - SIZE) // 2 + SIZE))
    return out


def _tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1], the range the metrics and baselines take."""
    return (pil_to_tensor(img)[None] + 1) / 2


def run_demo(out: Path) -> Path:
    """Write `out/demo.png` and print hole PSNR / L1 of each shipped model and of Telea."""
    installed = shipped_names()
    tasks = [(n, kind) for n, kind in (("scenes-center", "centre square"), ("scenes-region", "free-form blobs"))]
    tasks = [t for t in tasks if t[0] in installed]
    if not tasks:
        raise ContextEncoderError("no shipped models in this installation (see `context-encoder models`)")
    photos = sample_photos()
    telea = opencv_fill("telea")
    rows: dict[str, list[torch.Tensor]] = {"original": [], "masked": [], "model": [], "telea": []}
    header = ("photo", "model", "hole", "model PSNR", "Telea PSNR", "model L1", "Telea L1")
    print("{:<10} {:<14} {:<16} {:>10} {:>10} {:>8} {:>8}".format(*header))
    for model_name, hole_kind in tasks:
        inpainter = load_model(model_name)
        for i, (name, img) in enumerate(photos.items()):
            if hole_kind == "centre square":
                mask = hole_mask(img.size, inpainter.cfg, center=True)
            else:
                gen = torch.Generator().manual_seed(i)
                mask = random_region_mask(1, SIZE, gen, 0.15, 0.2, cells_per_px=6 / SIZE)[0, 0].numpy()
            filled = _tensor(inpainter(img, mask))
            x, m = _tensor(img), torch.from_numpy(mask)[None, None]
            tel = telea(x, m)
            rows["original"].append(x)
            rows["masked"].append(torch.where(m, torch.ones_like(x), x))
            rows["model"].append(filled)
            rows["telea"].append(tel)
            scores = (psnr(filled, x, m).item(), psnr(tel, x, m).item(), l1_error(filled, x, m), l1_error(tel, x, m))
            print(
                f"{name:<10} {model_name:<14} {hole_kind:<16} {scores[0]:>10.2f} {scores[1]:>10.2f} "
                f"{scores[2].item():>8.2%} {scores[3].item():>8.2%}"
            )
    columns = [torch.cat(v) * 2 - 1 for v in rows.values()]
    path = save_png(
        image_grid(columns, min_tile=SIZE, labels=["original", "masked", "context encoder", "Telea"]),
        Path(out) / "demo.png",
    )
    print(f"figure (original | masked | context encoder | OpenCV Telea): {path}")
    return path
