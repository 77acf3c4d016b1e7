"""Evaluation protocol: every method fills the same images with the same seeded masks, scored on the hole.

Protocol (stated in every report):
- images are centre-cropped to a square and resized (bicubic) to the model's size S;
- pixels are in [0, 1]; L1 is the mean absolute error, L2 the mean squared error, both over the scored
  pixels and the three channels; PSNR = 10 log10(1 / L2) is computed per image and then averaged, as in
  the paper's Table 1; SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03) is computed on the whole
  image and averaged over the scored pixels;
- region `hole`: exactly the pixels the method did not see; region `center` (centre masks only): the
  paper's full central S/2 square, including the overlap ring every method gets to see;
- every method's output is composited so known pixels are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from .baselines import build_baselines
from .checkpoint import load_generator
from .config import Config, MaskConfig
from .data import load_image, pil_to_tensor, readable_images, resample
from .errors import InputError
from .inpaint import Inpainter, fill_batch
from .masks import center_patch_bounds, sample_masks
from .progress import Progress
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)

Filler = Callable[[Tensor, Tensor], Tensor]


# ---- metrics: pure functions of (pred, target, region), images (B, 3, H, W) in [0, 1], region (B, 1, H, W) bool


def _per_image_mean(values: Tensor, region: Tensor) -> Tensor:
    """Mean of `values` (B, C, H, W) over each image's region pixels and channels -> (B,)."""
    w = region.expand_as(values).float()
    return (values * w).sum(dim=(1, 2, 3)) / w.sum(dim=(1, 2, 3)).clamp(min=1)


def l1_error(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Per-image mean absolute error over the region, (B,)."""
    return _per_image_mean((pred - target).abs(), region)


def l2_error(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Per-image mean squared error over the region, (B,)."""
    return _per_image_mean((pred - target) ** 2, region)


def psnr(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Per-image PSNR in dB for pixels in [0, 1], (B,); a perfect region is capped at 100 dB."""
    return 10 * torch.log10(1.0 / l2_error(pred, target, region).clamp(min=1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_map(pred: Tensor, target: Tensor, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Per-pixel SSIM (Wang et al. 2004) per channel, (B, C, H, W); borders use reflected padding."""
    c = pred.shape[1]
    g = _gaussian_window().to(pred.device)
    kernel = (g[:, None] * g[None, :]).to(pred.dtype)[None, None].expand(c, 1, -1, -1)
    pad = kernel.shape[-1] // 2

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (pad,) * 4, mode="reflect"), kernel, groups=c)

    mu_x, mu_y = blur(pred), blur(target)
    sxx = blur(pred * pred) - mu_x**2
    syy = blur(target * target) - mu_y**2
    sxy = blur(pred * target) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Per-image SSIM averaged over the region, (B,)."""
    return _per_image_mean(ssim_map(pred.double(), target.double()).float(), region)


METRICS = {"l1": l1_error, "l2": l2_error, "psnr": psnr, "ssim": ssim}


def _gradient_magnitude(x: Tensor) -> Tensor:
    """|d/dx| + |d/dy| per pixel (forward differences, last row/column repeated), (B, C, H, W)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    return F.pad(dx, (0, 1, 0, 0), mode="replicate") + F.pad(dy, (0, 0, 0, 1), mode="replicate")


def sharpness_ratio(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
    """Per-image gradient energy of `pred` over that of `target` in the region: < 1 blurrier, > 1 busier, (B,)."""
    return _per_image_mean(_gradient_magnitude(pred), region) / _per_image_mean(
        _gradient_magnitude(target), region
    ).clamp(min=1e-6)


def center_region(size: int, batch: int) -> Tensor:
    """The paper's full central S/2 square, (B, 1, S, S)."""
    lo, hi = center_patch_bounds(size)
    region = torch.zeros(batch, 1, size, size, dtype=torch.bool)
    region[..., lo:hi, lo:hi] = True
    return region


# ---- images and masks


def prepare_image(path: str | Path, size: int) -> Tensor:
    """Centre-crop to a square, resize (bicubic) to `size`; (3, size, size) in [0, 1]."""
    img = load_image(path)
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if side != size:
        img = img.resize((size, size), Image.BICUBIC)
    return (pil_to_tensor(img) + 1) / 2


def spread(paths: Sequence[Path], limit: int | None) -> list[Path]:
    """`limit` paths evenly spaced over the sorted list (so a limit covers every class folder)."""
    if not limit or limit >= len(paths):
        return list(paths)
    return resample(paths, limit)


# ---- the evaluation loop


def evaluate_methods(
    methods: dict[str, Filler],
    images: Tensor,
    masks: Tensor,
    regions: dict[str, Tensor],
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    keep: Sequence[int] = (),
    metrics: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = METRICS,
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, Tensor]]:
    """Fill `images` (N, 3, S, S) at `masks` with each method; mean metrics per method and region.

    Returns ({method: {region: {metric: mean}}}, {method: filled images at the indices `keep`}).
    """
    sums: dict[str, dict[str, dict[str, float]]] = {
        m: {r: dict.fromkeys(metrics, 0.0) for r in regions} for m in methods
    }
    kept: dict[str, dict[int, Tensor]] = {m: {} for m in methods}
    n = len(images)
    for start in range(0, n, batch_size):
        x, m = images[start : start + batch_size], masks[start : start + batch_size]
        for name, fill in methods.items():
            out = fill(x, m).clamp(0, 1)
            assert torch.equal(out[~m.expand_as(out)], x[~m.expand_as(x)]), f"{name} changed known pixels"
            for i in keep:
                if start <= i < start + len(x):
                    kept[name][i] = out[i - start]
            for rname, region in regions.items():
                r = region[start : start + batch_size]
                for metric, fn in metrics.items():
                    sums[name][rname][metric] += float(fn(out, x, r).sum())
        if progress:
            progress(len(x))
    means = {m: {r: {k: v / n for k, v in regions_.items()} for r, regions_ in per.items()} for m, per in sums.items()}
    return means, {m: torch.stack([kept[m][i] for i in keep]) if keep else images[:0] for m in methods}


def markdown_table(results: dict[str, dict[str, dict[str, float]]], region: str) -> str:
    lines = [
        f"| method ({region}) | L1 | L2 | PSNR (dB) | SSIM |",
        "|---|---|---|---|---|",
    ]
    for name, per in results.items():
        r = per[region]
        lines.append(f"| {name} | {r['l1']:.2%} | {r['l2']:.2%} | {r['psnr']:.2f} | {r['ssim']:.3f} |")
    return "\n".join(lines)


def write_report(
    out: Path,
    results: dict[str, dict[str, dict[str, float]]],
    meta: dict,
    images: Tensor,
    masked_view: Tensor,
    filled: dict[str, Tensor],
) -> dict[str, Path]:
    """metrics.json, metrics.md and grid.png (original | masked | each method) under `out`.

    `images`, `masked_view` and each `filled[method]` hold the same few images for the figure.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    regions = list(next(iter(results.values())))
    md = [f"# Inpainting evaluation: {meta.get('data', '')}", ""]
    md += [f"- {k}: {v}" for k, v in meta.items()]
    md += ["", "Pixels in [0, 1]; L1 and L2 are means over the scored pixels; PSNR averaged per image.", ""]
    for region in regions:
        md += [markdown_table(results, region), ""]
    (out / "metrics.md").write_text("\n".join(md))
    columns = [images, masked_view] + [filled[name] for name in results]
    labels = ["original", "masked"] + list(results)
    grid = save_png(image_grid([c * 2 - 1 for c in columns], min_tile=96, labels=labels), out / "grid.png")
    return {"json": out / "metrics.json", "md": out / "metrics.md", "grid": grid}


def psnr_gap(results: dict[str, dict[str, dict[str, float]]], model: str, region: str = "hole") -> tuple[str, float]:
    """(best baseline, model PSNR minus best baseline PSNR) on `region`."""
    baselines = {k: v[region]["psnr"] for k, v in results.items() if k != model}
    best = max(baselines, key=baselines.get)
    return best, results[model][region]["psnr"] - baselines[best]


def model_filler(gen: torch.nn.Module, cfg: Config, blend: bool = False, flip_average: bool = False) -> Filler:
    """A trained generator as a `fill(images, masks)` method on [0, 1] images.

    `blend` applies the seam blending of `context-encoder inpaint` (a harmonic correction in the hole);
    `flip_average` its mean of the fills of each image and of its mirror image.
    """
    if blend:
        inpainter = Inpainter(gen, cfg, next(gen.parameters()).device, blend=True, flip_average=flip_average)

        def fill_blended(images: Tensor, masks: Tensor) -> Tensor:
            return torch.where(masks, inpainter._fill_windows(images, masks), images)

        return fill_blended

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        device = next(gen.parameters()).device
        out = fill_batch(gen, cfg, images.to(device) * 2 - 1, masks.to(device), flip_average).cpu()
        return torch.where(masks, (out + 1) / 2, images)  # known pixels bit-identical in [0, 1]

    return fill


def seeded_masks(mask_cfg: MaskConfig, n: int, size: int, seed: int) -> Tensor:
    """One mask per image, image i drawn from seed (seed, i): the same masks whatever the batch size."""
    return torch.cat(
        [sample_masks(mask_cfg, 1, size, torch.Generator().manual_seed(seed * 1_000_003 + i)) for i in range(n)]
    )


def load_images(paths: Sequence[Path], size: int, desc: str = "load") -> Tensor:
    bar = Progress(len(paths), desc=desc)
    out = []
    for p in paths:
        out.append(prepare_image(p, size))
        bar.update()
    bar.close()
    return torch.stack(out)


def run_evaluation(
    data: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    mask: str | None = None,
    size: int | None = None,
    baselines: Sequence[str] = (),
    limit: int | None = None,
    seed: int = 0,
    nn_data: str | Path | None = None,
    nn_index: int = 2000,
    blend: bool = False,
    flip_average: bool = False,
) -> dict[str, dict[str, dict[str, float]]]:
    """The `evaluate` command: score a checkpoint and baselines on the same images and masks; write reports."""
    gen, cfg = (None, None)
    if checkpoint is not None:
        gen, cfg = load_generator(checkpoint)
        if size is not None and size != cfg.model.image_size:
            raise InputError(f"--size {size} differs from the checkpoint's image size {cfg.model.image_size}")
        size = cfg.model.image_size
    if size is None:
        raise InputError("pass --checkpoint or --size")
    if not methods_requested(gen, baselines):
        raise InputError("nothing to evaluate: pass --checkpoint and/or --baselines")
    trained_kind = cfg.mask.kind if cfg else "center"
    kind = mask or trained_kind
    if cfg is not None and kind != trained_kind:
        if not cfg.full_image:
            raise InputError(f"this model fills the centre hole only; it cannot be evaluated with --mask {kind}")
        log.warning("the model was trained with %s masks, evaluated with %s masks", trained_kind, kind)
    mask_cfg = replace(cfg.mask if cfg else MaskConfig(), kind=kind)
    if cfg is None and kind == "center":
        mask_cfg = replace(mask_cfg, overlap=max(1, size // 32))  # the released 4 px at 128, scaled

    paths = spread(readable_images(data), limit)
    images = load_images(paths, size, "load images")
    masks = seeded_masks(mask_cfg, len(images), size, seed)
    methods: dict[str, Filler] = {}
    if gen is not None:
        extras = [word for word, on in (("blended", blend), ("flip-averaged", flip_average)) if on]
        label = "context-encoder" + (f" ({', '.join(extras)})" if extras else "")
        methods[label] = model_filler(gen, cfg, blend, flip_average)
    nn_folder = nn_data or (
        cfg.data.train_dir if cfg and cfg.data.train_dir and Path(cfg.data.train_dir).is_dir() else None
    )

    def nn_database() -> Tensor:
        folder_paths = spread(readable_images(nn_folder), nn_index)
        return load_images(folder_paths, size, "nn-hog index")

    methods.update(build_baselines(baselines, nn_database if nn_folder else None))
    regions = {"hole": masks}
    if kind == "center":
        regions["center"] = center_region(size, len(images))
    bar = Progress(len(images), desc="evaluate")
    keep = spread(list(range(len(images))), 8)  # figure rows spread over the set
    results, filled = evaluate_methods(methods, images, masks, regions, progress=bar.update, keep=keep)
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
        "seam_blending": blend,
        "flip_average": flip_average,
        "hole_fraction": round(float(masks.float().mean()), 4),
        "regions": {"hole": "pixels the methods did not see", "center": "the full central S/2 square"},
    }
    view = hole_view(torch.where(masks, fill, images), masks)
    write_report(Path(out), results, meta, images[keep], view[keep], filled)
    return results


def methods_requested(gen: torch.nn.Module | None, baselines: Sequence[str]) -> bool:
    return gen is not None or bool(baselines)
