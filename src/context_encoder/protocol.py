"""The evaluation protocol: one way to prepare images, draw masks and score fills, shared by
validation during training, the `evaluate` command and the benchmarks.

- images are centre-cropped to a square and resized (bicubic) to the model's size S, pixels in [0, 1];
- masks are seeded per image (`seeded_masks`): every method, and every batch size, sees the same holes;
- every method's output is composited so known pixels are kept, and scored with `metrics` on regions
  (usually `hole`, exactly the pixels no method saw); PSNR and the rest are per image, then averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from . import lpips
from .config import MaskConfig
from .data import load_image, pil_to_tensor, readable_images, resample
from .fill import Filler
from .masks import sample_masks
from .metrics import METRICS
from .progress import Progress

Metric = Callable[[Tensor, Tensor, Tensor], Tensor]
Results = dict[str, dict[str, dict[str, float]]]  # method -> region -> metric -> mean


def lpips_metrics() -> dict[str, Metric]:
    """LPIPS-alex and LPIPS-vgg as metrics of this protocol (per image, of the whole filled image: the hole's
    pixels are the only ones that differ) for the networks whose weights are available here."""
    return {name: _whole_image(score) for name, score in lpips.scorers().items()}


def _whole_image(score: Callable[[Tensor, Tensor], Tensor]) -> Metric:
    """A (pred, target) score as a protocol metric, which also takes the region: LPIPS sees the whole image."""

    def metric(pred: Tensor, target: Tensor, region: Tensor) -> Tensor:
        return score(pred, target)

    return metric


def prepare_image(path: str | Path, size: int) -> Tensor:
    """Centre-crop to a square, resize (bicubic) to `size`; (3, size, size) in [0, 1]."""
    img = load_image(path)
    w, h = img.size
    side = min(w, h)
    img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
    if side != size:
        img = img.resize((size, size), Image.BICUBIC)
    return (pil_to_tensor(img) + 1) / 2


def spread(paths: Sequence, limit: int | None) -> list:
    """`limit` items evenly spaced over the sorted list (so a limit covers every class folder)."""
    if not limit or limit >= len(paths):
        return list(paths)
    return resample(paths, limit)


def load_images(paths: Sequence[Path], size: int, desc: str = "load", progress: bool = True) -> Tensor:
    """`prepare_image` for each path, stacked: (N, 3, size, size) in [0, 1]."""
    bar = Progress(len(paths), desc=desc, enabled=progress)
    out = []
    for p in paths:
        out.append(prepare_image(p, size))
        bar.update()
    bar.close()
    return torch.stack(out)


def seeded_masks(mask_cfg: MaskConfig, n: int, size: int, seed: int) -> Tensor:
    """One mask per image, image i drawn from seed (seed, i): the same masks whatever the batch size."""
    return torch.cat(
        [sample_masks(mask_cfg, 1, size, torch.Generator().manual_seed(seed * 1_000_003 + i)) for i in range(n)]
    )


def scoring_set(
    folder: str | Path | Sequence[Path], size: int, mask_cfg: MaskConfig, limit: int | None, seed: int, progress=True
) -> tuple[Tensor, Tensor]:
    """(images, masks) of the protocol for a folder (or a list of image paths), `limit` images spread over it."""
    paths = readable_images(folder) if isinstance(folder, (str, Path)) else list(folder)
    name = Path(folder).name if isinstance(folder, (str, Path)) else "images"
    images = load_images(spread(paths, limit), size, name, progress)
    return images, seeded_masks(mask_cfg, len(images), size, seed)


def score(
    methods: dict[str, Filler],
    images: Tensor,
    masks: Tensor,
    regions: dict[str, Tensor] | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    keep: Sequence[int] = (),
    metrics: dict[str, Metric] = METRICS,
) -> tuple[Results, dict[str, Tensor]]:
    """Fill `images` (N, 3, S, S) at `masks` with each method; mean metrics per method and region.

    `regions` defaults to `{"hole": masks}`. Returns ({method: {region: {metric: mean}}}, {method:
    filled images at the indices `keep`}).
    """
    regions = {"hole": masks} if regions is None else regions
    sums = {m: {r: dict.fromkeys(metrics, 0.0) for r in regions} for m in methods}
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
    means = {m: {r: {k: v / n for k, v in per_r.items()} for r, per_r in per.items()} for m, per in sums.items()}
    return means, {m: torch.stack([kept[m][i] for i in keep]) if keep else images[:0] for m in methods}
