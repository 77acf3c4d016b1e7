"""Hole masks (paper Sec. 3.3): pure functions; randomness only through an explicit `torch.Generator`.

A mask is a bool tensor of shape (B, 1, S, S), True where the pixel is missing (the hole). Two tables
name every kind of hole: `TRAINING_MASKS`, the kinds a model trains on (`mask.kind` in the config), drawn
at the model's size; and `FULLRES_MASKS`, the holes the full-resolution protocol (`fullres`) draws on
photos at their own size. A new kind is one function and one entry in its table (training kinds also
one name in `config.MaskKind`). Labelling, dilation and the membrane fill of hole arrays are in `holes`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MaskConfig
from .geometry import center_bounds, center_patch_bounds
from .holes import dilate as dilate  # re-exported: these lived here before `holes`
from .holes import harmonic_fill
from .holes import hole_components as hole_components
from .holes import laplace_sweeps as laplace_sweeps
from .holes import solve_laplace as solve_laplace


def center_mask(size: int, overlap: int, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """The fixed central hole: the S/2 centre square minus an `overlap` px ring left visible."""
    return _square(size, *center_bounds(size, overlap), batch, device)


def center_region(size: int, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """The full S/2 centre square a centre-mode generator predicts (hole plus overlap ring), (B, 1, S, S)."""
    return _square(size, *center_patch_bounds(size), batch, device)


def _square(size: int, lo: int, hi: int, batch: int, device: torch.device | str) -> Tensor:
    mask = torch.zeros(batch, 1, size, size, dtype=torch.bool, device=device)
    mask[:, :, lo:hi, lo:hi] = True
    return mask


def prediction_region(x: Tensor, full_image: bool) -> Tensor:
    """The part of a (B, C, S, S) tensor the generator predicts: all of it, or the S/2 centre."""
    if full_image:
        return x
    lo, hi = center_patch_bounds(x.shape[-1])
    return x[..., lo:hi, lo:hi]


def composite(image: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
    """`image` with the hole pixels taken from `pred`; `pred` is full-size or the S/2 centre patch."""
    if pred.shape[-1] == image.shape[-1]:
        return torch.where(mask, pred, image)
    out = image.clone()
    lo, hi = center_patch_bounds(image.shape[-1])
    out[..., lo:hi, lo:hi] = torch.where(mask[..., lo:hi, lo:hi], pred, image[..., lo:hi, lo:hi])
    return out


def random_block_mask(
    batch: int,
    size: int,
    generator: torch.Generator,
    max_count: int = 5,
    min_frac: float = 0.125,
    max_frac: float = 0.333,
    max_coverage: float = 0.25,
) -> Tensor:
    """Several possibly overlapping rectangles per image whose union covers at most `max_coverage`.

    Each image draws a block count in [1, max_count]; blocks whose addition would push the union past
    `max_coverage` are skipped, so every image has at least one block and never exceeds the bound.
    """
    limit = int(max_coverage * size * size)
    hi_side = max(1, min(round(max_frac * size), int(limit**0.5)))  # one block always fits the bound
    lo_side = max(1, min(round(min_frac * size), hi_side))
    masks = torch.zeros(batch, 1, size, size, dtype=torch.bool)
    for b in range(batch):
        count = int(torch.randint(1, max_count + 1, (1,), generator=generator))
        dims = torch.randint(lo_side, hi_side + 1, (count, 2), generator=generator).tolist()
        for h, w in dims:
            top = int(torch.randint(0, size - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - w + 1, (1,), generator=generator))
            trial = masks[b, 0].clone()
            trial[top : top + h, left : left + w] = True
            if int(trial.sum()) <= limit:
                masks[b, 0] = trial
    return masks


def random_region_mask(
    batch: int,
    size: int,
    generator: torch.Generator,
    coverage_min: float = 0.20,
    coverage_max: float = 0.30,
    cells_per_px: float = 0.06,
) -> Tensor:
    """Free-form blobs: uniform noise on a coarse grid, bicubic-upsampled, thresholded (`train_random.lua`).

    Each image gets its own mask (the released code shared one per batch) with a hole fraction drawn
    uniformly from [coverage_min, coverage_max]; the threshold is the matching quantile of the smooth
    noise, so the coverage is exact to a pixel. `cells_per_px` = 0.06 gives the released blob scale.
    """
    cells = max(3, round(size * cells_per_px))
    noise = torch.rand(batch, 1, cells, cells, generator=generator)
    smooth = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False).flatten(1)
    coverage = coverage_min + (coverage_max - coverage_min) * torch.rand(batch, generator=generator)
    k = (coverage * size * size).round().clamp(min=1).long()  # pixels in the hole
    ranks = smooth.argsort(dim=1).argsort(dim=1)  # rank of each pixel's noise value, 0 = lowest
    return (ranks < k[:, None]).view(batch, 1, size, size)


MaskSampler = Callable[[MaskConfig, int, int, torch.Generator], Tensor]  # (cfg, batch, size, generator) -> masks


def _center(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    return center_mask(size, cfg.overlap, batch)  # no randomness


def _blocks(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    return random_block_mask(
        batch, size, generator, cfg.block_max_count, cfg.block_min_frac, cfg.block_max_frac, cfg.max_coverage
    )


def _regions(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    return random_region_mask(
        batch, size, generator, cfg.region_coverage_min, cfg.region_coverage_max, cfg.region_cells_per_px
    )


def _mixed(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    """Each image independently: random blocks or a free-form region, even odds."""
    blocks, regions = _blocks(cfg, batch, size, generator), _regions(cfg, batch, size, generator)
    pick = torch.rand(batch, generator=generator) < 0.5
    return torch.where(pick[:, None, None, None], blocks, regions)


def _nothing(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    return torch.zeros(batch, 1, size, size, dtype=torch.bool)  # plain autoencoder: nothing is hidden


# The kinds of hole a model trains on (`mask.kind`); the keys are `config.MaskKind`'s names.
TRAINING_MASKS: dict[str, MaskSampler] = {
    "center": _center,
    "random-block": _blocks,
    "random-region": _regions,
    "mixed": _mixed,
    "none": _nothing,
}


def sample_masks(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    """A batch of masks of the configured kind (`TRAINING_MASKS`; centre masks use no randomness)."""
    if cfg.kind not in TRAINING_MASKS:
        raise ValueError(f"unknown mask kind '{cfg.kind}'")
    return TRAINING_MASKS[cfg.kind](cfg, batch, size, generator)


def fill_value(fill_rgb: tuple[float, float, float], device: torch.device | str = "cpu") -> Tensor:
    """The hole fill (0-255 RGB) as a (1, 3, 1, 1) tensor in the model's [-1, 1] range."""
    return (torch.tensor(fill_rgb, dtype=torch.float32, device=device) / 127.5 - 1.0).view(1, 3, 1, 1)


def hole_fill(cfg: MaskConfig, device: torch.device | str = "cpu") -> Tensor | str:
    """What `apply_mask` puts in the hole: the constant `fill_value` (paper) or "harmonic"."""
    return "harmonic" if cfg.fill == "harmonic" else fill_value(cfg.fill_rgb, device)


def apply_mask(image: Tensor, mask: Tensor, fill: Tensor | str) -> Tensor:
    """The generator's input: `image` (B, 3, S, S) with the hole replaced by `fill`.

    `fill` is a (1, 3, 1, 1) colour (the paper's mean pixel) or "harmonic" (`harmonic_fill`).
    """
    if isinstance(fill, str):
        if fill != "harmonic":
            raise ValueError(f"unknown hole fill '{fill}'")
        return harmonic_fill(image, mask)
    return torch.where(mask, fill.to(image.dtype), image)


def _capsule(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], radius: float):  # noqa: ANN202
    """Pixels within `radius` of the segment p0-p1 (a stroke with round caps): (rows, cols) slices and a bool patch."""
    h, w = shape
    (y0, x0), (y1, x1) = p0, p1
    top, bottom = max(0, int(np.floor(min(y0, y1) - radius))), min(h, int(np.ceil(max(y0, y1) + radius)) + 1)
    left, right = max(0, int(np.floor(min(x0, x1) - radius))), min(w, int(np.ceil(max(x0, x1) + radius)) + 1)
    ys = np.arange(top, bottom, dtype=np.float64)[:, None]
    xs = np.arange(left, right, dtype=np.float64)[None, :]
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    t = np.clip(((ys - y0) * dy + (xs - x0) * dx) / length2, 0, 1) if length2 > 0 else 0.0
    dist2 = (ys - (y0 + t * dy)) ** 2 + (xs - (x0 + t * dx)) ** 2
    return (slice(top, bottom), slice(left, right)), dist2 <= radius * radius


def stroke_mask(
    h: int,
    w: int,
    generator: torch.Generator,
    coverage: tuple[float, float] = (0.05, 0.15),
    thickness: tuple[float, float] = (0.03, 0.08),
    max_turn: float = np.pi / 3,
) -> Tensor:
    """Brush strokes like the ones people paint over an object to remove, (h, w) bool (True = hole).

    A hole fraction is drawn uniformly from `coverage`; strokes are added until the hole reaches it.
    Each stroke is a random walk of 2-8 straight pieces (each 10-30% of the shorter side long, turning
    by at most `max_turn` per vertex, clamped to the image) painted with round caps, its thickness a
    fraction of the shorter side drawn from `thickness`. The walk is painted in steps of half a brush
    radius and stops at the target or before a step that would leave the range, so the coverage stays
    within `coverage` (on images so small that one step exceeds the range's width it may overshoot by
    that step); the first step is always painted, so a hole is never empty.
    """
    lo, hi = coverage
    if not 0 < lo <= hi < 1:
        raise ValueError(f"coverage must satisfy 0 < low <= high < 1, got {coverage}")

    def uniform(a: float, b: float) -> float:
        return a + (b - a) * float(torch.rand((), generator=generator))

    total, short = h * w, min(h, w)
    target = uniform(lo, hi) * total
    mask = np.zeros((h, w), dtype=bool)
    covered = 0
    while covered < target:
        radius = max(1.0, uniform(*thickness) * short / 2)
        y, x = uniform(0, h - 1), uniform(0, w - 1)
        angle = uniform(0, 2 * np.pi)
        for _ in range(int(torch.randint(2, 9, (), generator=generator))):
            angle += uniform(-max_turn, max_turn)
            length = uniform(0.1, 0.3) * short
            ny, nx = y + length * np.sin(angle), x + length * np.cos(angle)
            if not 0 <= ny <= h - 1:  # bounce off the border rather than run along it
                ny, angle = (-ny if ny < 0 else 2 * (h - 1) - ny), -angle
            if not 0 <= nx <= w - 1:
                nx, angle = (-nx if nx < 0 else 2 * (w - 1) - nx), np.pi - angle
            ny, nx = min(max(ny, 0.0), h - 1.0), min(max(nx, 0.0), w - 1.0)
            steps = max(1, int(np.ceil(np.hypot(ny - y, nx - x) / (radius / 2))))
            for k in range(1, steps + 1):
                a = (y + (ny - y) * (k - 1) / steps, x + (nx - x) * (k - 1) / steps)
                b = (y + (ny - y) * k / steps, x + (nx - x) * k / steps)
                where, disc = _capsule((h, w), a, b, radius)
                added = int((disc & ~mask[where]).sum())
                if covered >= lo * total and covered + added > hi * total:
                    target = covered  # the next step would overshoot the range: stop here
                    break
                mask[where] |= disc
                covered += added
                if covered >= target:
                    break
            y, x = ny, nx
            if covered >= target:
                break
    return torch.from_numpy(mask)


def box_mask(
    h: int,
    w: int,
    generator: torch.Generator,
    area: tuple[float, float] = (0.10, 0.25),
    aspect: tuple[float, float] = (0.5, 2.0),
) -> Tensor:
    """One rectangle around an object-sized region, (h, w) bool (True = hole).

    Its area is a fraction of the image drawn uniformly from `area`, its aspect ratio (width / height)
    log-uniformly from `aspect`; the sides are rounded so the area stays in range, and the position is
    uniform over the places it fits.
    """
    lo, hi = area
    if not 0 < lo <= hi < 1:
        raise ValueError(f"area must satisfy 0 < low <= high < 1, got {area}")
    u = torch.rand(3, generator=generator).tolist()
    target = (lo + (hi - lo) * u[0]) * h * w
    ratio = float(np.exp(np.log(aspect[0]) + (np.log(aspect[1]) - np.log(aspect[0])) * u[1]))
    bh = min(h, max(1, round((target / ratio) ** 0.5)))
    bw = round(target / bh)
    bw = min(w, max(1, min(max(bw, int(np.ceil(lo * h * w / bh))), int(hi * h * w // bh))))
    bh = min(h, max(bh, int(np.ceil(lo * h * w / bw))))  # a very wide box hit the image's width
    top = int(torch.randint(0, h - bh + 1, (), generator=generator))
    left = int(torch.randint(0, w - bw + 1, (), generator=generator))
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[top : top + bh, left : left + bw] = True
    return mask


FullResMask = Callable[[int, int, torch.Generator], Tensor]  # (h, w, generator) -> (h, w) bool
# The holes the full-resolution protocol draws on photos at their own size (`fullres.draw_hole`).
FULLRES_MASKS: dict[str, FullResMask] = {"stroke": stroke_mask, "box": box_mask}
