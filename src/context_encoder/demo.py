"""`context-encoder demo`: fill holes in built-in photographs with the shipped models and classical methods.

The photographs come from scikit-image's bundled data (the `demo` extra); nothing is downloaded and
none of them was used to train the shipped models. Two parts:

- at each photo's own resolution, a brush stroke over an object (the shuttle model, the spoon, a
  tower, ...) filled by the shipped model ranked best for free-form holes (`scenes128-region`) with each
  refiner of the registry (`methods.REFINERS`: the network's fill as it is, texture copied from the
  photo) and by the featured classical methods (`featured` in `baselines.BASELINES`): `demo.png` shows
  crops around the strokes;
- at the models' scale, each photo resized to 256 x 256 with a centred square or free-form blobs, the
  model ranked best for that kind of hole (`scenes128-center`, `scenes128-region`) next to the first
  featured classical method: `demo_model_size.png`.

Hole metrics are printed for both.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import methods
from .data import pil_to_tensor
from .errors import ContextEncoderError
from .fill import Filler, filler_method
from .fullres import figure_box, figure_tile, hole_scores, perceptual_backends
from .loading import load_model, preferred_models
from .masks import random_region_mask
from .metrics import l1_error, psnr
from .viz import image_grid, save_png

log = logging.getLogger(__name__)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SIZE = 256
# A brush stroke over an object in each photo at its own size: (points, width in px).
STROKES = {
    "astronaut": ([(402, 25), (404, 130), (400, 240)], 44),  # the shuttle model
    "coffee": ([(402, 80), (380, 200), (366, 300)], 40),  # the spoon
    "chelsea": ([(330, 8), (362, 40), (396, 62)], 32),  # an ear
    "rocket": ([(187, 120), (187, 260), (188, 405)], 30),  # a tower
}


def photos(size: int | None = SIZE) -> dict[str, Image.Image]:
    """scikit-image's bundled photographs: at their own size, or `size` x `size` (shorter side resized, centre crop)."""
    try:
        import skimage.data
    except ImportError:
        raise ContextEncoderError("the demo needs scikit-image: pip install 'context-encoder[demo]'") from None
    out = {}
    for name in PHOTOS:
        img = Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
        if size is not None:
            w, h = img.size
            scale = size / min(w, h)
            img = img.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
            w, h = img.size
            img = img.crop(((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size))
        out[name] = img
    return out


def stroke(name: str, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool hole of the brush stroke drawn over `name`'s object."""
    points, width = STROKES[name]
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    draw.line(points, fill=255, width=width, joint="curve")
    for x, y in points:  # round caps
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
    return np.asarray(canvas) > 0


def _tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1], the range the metrics and baselines take."""
    return (pil_to_tensor(img)[None] + 1) / 2


def full_resolution(out: Path) -> Path | None:
    """demo.png: a stroke over an object at each photo's own size, every method side by side."""
    best = preferred_models(arbitrary_holes=True, made_for_only=True)
    if not best:
        return None
    model = load_model(best[0])
    fills = {_refined_label(r): model.method(replace(model.options, refine=r.name)) for r in methods.entries("refiner")}
    fills.update({label: filler_method(fill) for label, fill in _featured().items()})
    print(
        f"\nAt full resolution, a brush stroke over an object filled by {best[0]} and others "
        "(hole metrics; sharpness 1.0: the photo's detail; LPIPS-alex on the hole's box + 16 px, lower is closer)"
    )
    scorers = {k: v for k, v in perceptual_backends().items() if k == "lpips_alex"}  # where its weights are
    print(f"{'photo':<10} {'size':>9} {'method':<16} {'PSNR':>6} {'L1':>7} {'sharpness':>9} {'LPIPS-alex':>10}")
    rows = []
    for name, img in photos(None).items():
        arr = np.asarray(img)
        hole = stroke(name, img.size)
        box = figure_box(hole)
        row = [figure_tile(arr, box), figure_tile(np.where(hole[..., None], 255, arr).astype(np.uint8), box)]
        for label, method in fills.items():
            filled = method(arr, hole)
            s = hole_scores(filled, arr, hole, scorers)
            row.append(figure_tile(filled, box))
            size = f"{img.width}x{img.height}"
            perceptual = f"{s['lpips_alex']:>10.3f}" if "lpips_alex" in s else f"{'n/a':>10}"
            scores = f"{s['psnr']:>6.2f} {s['l1']:>7.2%} {s['sharpness']:>9.2f} {perceptual}"
            print(f"{name:<10} {size:>9} {label:<16} {scores}")
        rows.append(row)
    columns = [torch.stack([r[i] for r in rows]) * 2 - 1 for i in range(len(rows[0]))]
    labels = ["original", "stroke", *fills]
    path = save_png(image_grid(columns, min_tile=SIZE, labels=labels), Path(out) / "demo.png")
    print(f"figure (crops around the strokes: {' | '.join(labels)}): {path}")
    return path


def _refined_label(refiner: methods.FillMethod) -> str:
    return "context encoder" if refiner.name == methods.NO_REFINE else f"+ {refiner.label}"


def _featured() -> dict[str, Filler]:
    """The featured classical methods that can be built here, by label; the others are left out with a warning."""
    out = {}
    for entry in methods.entries("classical", featured=True):
        try:
            out[entry.label] = entry.build()
        except ContextEncoderError as exc:
            log.warning("%s left out: %s", entry.label, exc)
    return out


def model_size(out: Path) -> Path | None:
    """demo_model_size.png: 256 px photos, the shipped models against a classical method on their own kinds of hole."""
    tasks = []
    for arbitrary_holes, hole_kind in ((False, "centre square"), (True, "free-form blobs")):
        tasks += [(name, hole_kind) for name in preferred_models(arbitrary_holes, made_for_only=True)[:1]]
    classical = _featured()
    if not tasks or not classical:
        return None
    label, baseline = next(iter(classical.items()))
    images = photos()
    rows: dict[str, list[torch.Tensor]] = {"original": [], "masked": [], "model": [], "baseline": []}
    print("\nAt the models' scale: 256 x 256 photos")
    header = ("photo", "model", "hole", "model PSNR", f"{label} PSNR", "model L1", f"{label} L1")
    wide, narrow = max(10, len(header[4])), max(8, len(header[6]))  # the baseline's columns fit its label
    print(f"{{:<10}} {{:<16}} {{:<16}} {{:>10}} {{:>{wide}}} {{:>8}} {{:>{narrow}}}".format(*header))
    for model_name, hole_kind in tasks:
        inpainter = load_model(model_name)
        for i, (name, img) in enumerate(images.items()):
            if hole_kind == "centre square":
                mask = inpainter.center_hole(img.size)
            else:
                gen = torch.Generator().manual_seed(i)
                mask = random_region_mask(1, SIZE, gen, 0.15, 0.2, cells_per_px=6 / SIZE)[0, 0].numpy()
            filled = _tensor(inpainter(img, mask))
            x, m = _tensor(img), torch.from_numpy(mask)[None, None]
            other = baseline(x, m)
            rows["original"].append(x)
            rows["masked"].append(torch.where(m, torch.ones_like(x), x))
            rows["model"].append(filled)
            rows["baseline"].append(other)
            scores = (psnr(filled, x, m), psnr(other, x, m), l1_error(filled, x, m), l1_error(other, x, m))
            print(
                f"{name:<10} {model_name:<16} {hole_kind:<16} {scores[0].item():>10.2f} {scores[1].item():>{wide}.2f} "
                f"{scores[2].item():>8.2%} {scores[3].item():>{narrow}.2%}"
            )
    columns = [torch.cat(v) * 2 - 1 for v in rows.values()]
    labels = ["original", "masked", "context encoder", label]
    path = save_png(image_grid(columns, min_tile=SIZE, labels=labels), Path(out) / "demo_model_size.png")
    print(f"figure ({' | '.join(labels)}): {path}")
    return path


def run_demo(out: Path) -> Path:
    """Write `out/demo.png` (full resolution) and `out/demo_model_size.png`, printing the hole metrics."""
    full = full_resolution(out)
    small = model_size(out)
    if full is None and small is None:
        raise ContextEncoderError("no shipped models in this installation (see `context-encoder models`)")
    return full or small
