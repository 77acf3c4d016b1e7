"""The `evaluate` command: a model and classical baselines scored on the same images and seeded masks.

The protocol (`context_encoder.protocol`, stated in every report):
- images are centre-cropped to a square and resized (bicubic) to the model's size S;
- pixels are in [0, 1]; L1 is the mean absolute error, L2 the mean squared error, both over the scored
  pixels and the three channels; PSNR = 10 log10(1 / L2) is computed per image and then averaged, as in
  the paper's Table 1; SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) is computed on the whole
  image and averaged over the scored pixels (`context_encoder.metrics`); LPIPS with AlexNet and VGG16
  (`context_encoder.lpips`, where its weights are available offline) on the whole composited image, the
  same for every region, since known pixels are equal and only the fill differs;
- region `hole`: exactly the pixels the method did not see; region `center` (centre masks only): the
  paper's full central S/2 square, including the overlap ring every method gets to see;
- every method's output is composited so known pixels are kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from . import lpips, methods, protocol
from .baselines import build_baselines
from .config import MaskConfig
from .data import readable_images
from .errors import InputError
from .fill import Filler
from .geometry import scaled_overlap
from .inpaint import Inpainter
from .loading import load_model
from .masks import center_region
from .metrics import METRICS
from .options import RAW, InferenceOptions
from .outputs import check_output_folder, write_text
from .progress import Progress
from .protocol import Metric, Results, load_images, score, scoring_set, spread
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)


def markdown_table(results: Results, region: str) -> str:
    """One row per method on `region`; LPIPS columns where they were measured (lower is better)."""
    extra = [m for m in ("lpips_alex", "lpips_vgg") if all(m in per[region] for per in results.values())]
    lines = [
        f"| method ({region}) | L1 | L2 | PSNR (dB) | SSIM |" + "".join(f" {LABELS[m]} |" for m in extra),
        "|---" * (5 + len(extra)) + "|",
    ]
    for name, per in results.items():
        r = per[region]
        cells = f"| {name} | {r['l1']:.2%} | {r['l2']:.2%} | {r['psnr']:.2f} | {r['ssim']:.3f} |"
        lines.append(cells + "".join(f" {r[m]:.3f} |" for m in extra))
    return "\n".join(lines)


LABELS = {"lpips_alex": "LPIPS-alex", "lpips_vgg": "LPIPS-vgg"}


def lpips_metrics() -> dict[str, Metric]:
    """`protocol.lpips_metrics`, with one warning naming how to get the weights where there are none."""
    found = protocol.lpips_metrics()
    if not found:
        log.warning("LPIPS skipped: %s", lpips.INSTALL_HINT)
    return found


def write_report(
    out: Path,
    results: Results,
    meta: dict,
    images: Tensor,
    masked_view: Tensor,
    filled: dict[str, Tensor],
) -> dict[str, Path]:
    """metrics.json, metrics.md and grid.png (original | masked | each method) under `out`, each atomically.

    `images`, `masked_view` and each `filled[method]` hold the same few images for the figure.
    """
    write_text(out / "metrics.json", json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    regions = list(next(iter(results.values())))
    md = [f"# Inpainting evaluation: {meta.get('data', '')}", ""]
    md += [f"- {k}: {v}" for k, v in meta.items()]
    md += ["", "Pixels in [0, 1]; L1 and L2 are means over the scored pixels; PSNR averaged per image.", ""]
    for region in regions:
        md += [markdown_table(results, region), ""]
    write_text(out / "metrics.md", "\n".join(md))
    columns = [images, masked_view] + [filled[name] for name in results]
    labels = ["original", "masked"] + list(results)
    grid = save_png(image_grid([c * 2 - 1 for c in columns], min_tile=96, labels=labels), out / "grid.png")
    return {"json": out / "metrics.json", "md": out / "metrics.md", "grid": grid}


def run_evaluation(
    data: str | Path,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    mask: str | None = None,
    size: int | None = None,
    baselines: list[str] | tuple[str, ...] = (),
    limit: int | None = None,
    seed: int = 0,
    nn_data: str | Path | None = None,
    nn_index: int = 2000,
    options: InferenceOptions = RAW,
    perceptual: bool = True,
) -> Results:
    """The `evaluate` command: score a model and baselines on the same images and masks; write reports.

    `checkpoint` is anything `load_model` takes; the model fills with `options` (default: its raw
    output, no seam blending or flip averaging; `InferenceOptions()` is how `inpaint` fills).
    `perceptual=False` skips LPIPS.
    """
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be a positive number of images, got {limit}")
    check_output_folder(out, "report folder")
    inpainter = load_model(checkpoint, options=options) if checkpoint is not None else None
    cfg = inpainter.cfg if inpainter else None
    if cfg is not None:
        if size is not None and size != cfg.model.image_size:
            raise InputError(f"--size {size} differs from the model's image size {cfg.model.image_size}")
        size = cfg.model.image_size
    if size is None:
        raise InputError("pass --checkpoint or --size")
    if inpainter is None and not baselines:
        raise InputError("nothing to evaluate: pass --checkpoint and/or --baselines")
    trained_kind = cfg.mask.kind if cfg else "center"
    kind = mask or trained_kind
    if cfg is not None and kind != trained_kind:
        if not cfg.full_image:
            raise InputError(f"this model fills the centre hole only; it cannot be evaluated with --mask {kind}")
        log.warning("the model was trained with %s masks, evaluated with %s masks", trained_kind, kind)
    mask_cfg = replace(cfg.mask if cfg else MaskConfig(), kind=kind)
    if cfg is None and kind == "center":
        mask_cfg = replace(mask_cfg, overlap=scaled_overlap(size))

    images, masks = scoring_set(data, size, mask_cfg, limit, seed)
    methods: dict[str, Filler] = {}
    if inpainter is not None:
        label = "context-encoder" if options == RAW else f"context-encoder ({options.describe()})"
        methods[label] = inpainter.filler()
    nn_folder = nn_data or (
        cfg.data.train_dir if cfg and cfg.data.train_dir and Path(cfg.data.train_dir).is_dir() else None
    )

    def nn_database() -> Tensor:
        return load_images(spread(readable_images(nn_folder), nn_index), size, "neighbour index")

    methods.update(build_baselines(baselines, nn_database if nn_folder else None))
    regions = {"hole": masks}
    if kind == "center":
        regions["center"] = center_region(size, len(images))
    bar = Progress(len(images), desc="evaluate")
    keep = spread(list(range(len(images))), 8)  # figure rows spread over the set
    metrics = {**METRICS, **(lpips_metrics() if perceptual else {})}
    results, filled = score(methods, images, masks, regions, progress=bar.update, keep=keep, metrics=metrics)
    bar.close()
    fill = torch.tensor(mask_cfg.fill_rgb).view(1, 3, 1, 1) / 255
    meta = {
        "data": str(data),
        "images": len(images),
        "size": size,
        "mask": kind,
        "overlap": mask_cfg.overlap if kind == "center" else None,
        "seed": seed,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "inference": options.to_dict() if inpainter else None,
        "hole_fraction": round(float(masks.float().mean()), 4),
        "regions": {"hole": "pixels the methods did not see", "center": "the full central S/2 square"},
        "lpips": "whole composited image" if any(m.startswith("lpips") for m in metrics) else None,
    }
    view = hole_view(torch.where(masks, fill, images), masks)
    write_report(Path(out), results, meta, images[keep], view[keep], filled)
    return results


CLASSICAL = methods.reference_baselines()  # what models are held to: every classical method needing no database


def compare_with_baselines(
    inpainter: Inpainter,
    folder: str | Path,
    limit: int | None = None,
    seed: int = 0,
    baselines: tuple[str, ...] = CLASSICAL,
) -> dict:
    """A model (filling with its own options) against classical baselines on a held-out folder, hole region.

    Returns {"images", "methods": {name: {metric: mean}}, "best_baseline" (by PSNR), "best_l1_baseline",
    "psnr_gain" (model minus best baseline), "l1_gain" (best baseline's L1 minus the model's)}.
    """
    size = inpainter.cfg.model.image_size
    images, masks = scoring_set(folder, size, inpainter.cfg.mask, limit, seed)
    results, _ = score({"model": inpainter.filler(), **build_baselines(baselines)}, images, masks)
    hole = {k: v["hole"] for k, v in results.items()}
    best = max((k for k in hole if k != "model"), key=lambda k: hole[k]["psnr"])
    best_l1 = min((k for k in hole if k != "model"), key=lambda k: hole[k]["l1"])
    return {
        "images": len(images),
        "methods": hole,
        "best_baseline": best,
        "best_l1_baseline": best_l1,
        "psnr_gain": hole["model"]["psnr"] - hole[best]["psnr"],
        "l1_gain": hole[best_l1]["l1"] - hole["model"]["l1"],
    }
