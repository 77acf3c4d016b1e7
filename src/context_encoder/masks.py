"""Hole masks (paper Sec. 3.3): pure functions; randomness only through an explicit `torch.Generator`.

A mask is a bool tensor of shape (B, 1, S, S), True where the pixel is missing (the hole).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import MaskConfig


def center_bounds(size: int, overlap: int) -> tuple[int, int]:
    """[start, stop) rows (and columns) of the central hole: the S/2 centre minus the overlap ring.

    128 px with the released 4 px overlap: (36, 92); the generator predicts the larger [32, 96).
    """
    return size // 4 + overlap, size - size // 4 - overlap


def center_patch_bounds(size: int) -> tuple[int, int]:
    """[start, stop) of the S/2 centre square that a centre-mode generator predicts."""
    return size // 4, size - size // 4


def center_mask(size: int, overlap: int, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
    """The fixed central hole: the S/2 centre square minus an `overlap` px ring left visible."""
    lo, hi = center_bounds(size, overlap)
    mask = torch.zeros(batch, 1, size, size, dtype=torch.bool, device=device)
    mask[:, :, lo:hi, lo:hi] = True
    return mask


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


def sample_masks(cfg: MaskConfig, batch: int, size: int, generator: torch.Generator) -> Tensor:
    """A batch of masks of the configured kind (centre masks use no randomness)."""
    if cfg.kind == "center":
        return center_mask(size, cfg.overlap, batch)
    if cfg.kind == "random-block":
        return random_block_mask(
            batch, size, generator, cfg.block_max_count, cfg.block_min_frac, cfg.block_max_frac, cfg.max_coverage
        )
    if cfg.kind == "random-region":
        return random_region_mask(
            batch, size, generator, cfg.region_coverage_min, cfg.region_coverage_max, cfg.region_cells_per_px
        )
    raise ValueError(f"unknown mask kind '{cfg.kind}'")


def fill_value(fill_rgb: tuple[float, float, float], device: torch.device | str = "cpu") -> Tensor:
    """The hole fill (0-255 RGB) as a (1, 3, 1, 1) tensor in the model's [-1, 1] range."""
    return (torch.tensor(fill_rgb, dtype=torch.float32, device=device) / 127.5 - 1.0).view(1, 3, 1, 1)


def apply_mask(image: Tensor, mask: Tensor, fill: Tensor) -> Tensor:
    """The generator's input: `image` (B, 3, S, S) with the hole replaced by `fill`."""
    return torch.where(mask, fill.to(image.dtype), image)
