"""Hole masks as pixel grids: 8-connected hole labelling, dilation, and the membrane (Laplace) fill.

Pure functions of NumPy arrays (labelling, dilation) and tensors (the Laplace solver); no randomness.
`harmonic_fill` is what `mask.fill = "harmonic"` puts in a hole, what `inpaint`'s seam blending solves
and what the `harmonic` baseline returns.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def laplace_sweeps(field: Tensor, free: Tensor, sweeps: int) -> Tensor:
    """`sweeps` Jacobi iterations of Laplace's equation on the `free` pixels (4-neighbour mean, edges replicated)."""
    # four shifted slices of a padded field rather than a depthwise 3 x 3 convolution (the same sum to float
    # rounding at about an eighth of the CPU time), in two padded buffers used in turn, whose borders are
    # refreshed in place: half the time again of padding a new field every sweep
    if sweeps < 1:
        return field
    old = F.pad(field, (1, 1, 1, 1), mode="replicate")
    new, mean = torch.empty_like(old), torch.empty_like(field)
    free = free.expand_as(field)
    for _ in range(sweeps):
        torch.add(old[..., :-2, 1:-1], old[..., 2:, 1:-1], out=mean)
        mean.add_(old[..., 1:-1, :-2]).add_(old[..., 1:-1, 2:]).mul_(0.25)
        torch.where(free, mean, old[..., 1:-1, 1:-1], out=new[..., 1:-1, 1:-1])
        new[..., 0, 1:-1], new[..., -1, 1:-1] = new[..., 1, 1:-1], new[..., -2, 1:-1]
        new[..., 0], new[..., -1] = new[..., 1], new[..., -2]  # whole columns: the corners too
        old, new = new, old
    return old[..., 1:-1, 1:-1]


def _membrane(values: Tensor, weight: Tensor, sweeps: int) -> Tensor:
    """Multigrid solve: `values` are pixel sums over `weight` (the known share of each pixel)."""
    known = weight > 0
    estimate = values / weight.clamp_min(1e-6)
    h, w = weight.shape[-2:]
    if bool(known.all()):
        return estimate
    if min(h, w) <= 2:  # coarsest level: each image's mean known colour
        mean = values.sum((2, 3), keepdim=True) / weight.sum((2, 3), keepdim=True).clamp_min(1e-6)
        return torch.where(known, estimate, mean.expand_as(estimate))
    coarse = _membrane(
        F.avg_pool2d(values, 2, ceil_mode=True), F.avg_pool2d(weight, 2, ceil_mode=True), sweeps
    )  # the same divisor on both, so their ratio stays a weighted mean
    up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
    return laplace_sweeps(torch.where(known, estimate, up), ~known, sweeps)


@torch.no_grad()
def harmonic_fill(image: Tensor, mask: Tensor, sweeps: int = 8) -> Tensor:
    """`image` (B, C, H, W) with each hole (`mask` True) replaced by the smooth membrane over its border.

    Approximately solves Laplace's equation in the hole with the known pixels as boundary values
    (the "membrane" of classical inpainting), coarse to fine: the image and mask are averaged down to
    2 px, the hole is filled there with the mean known colour, and each finer level starts from the
    upsampled coarser solution and relaxes it with `sweeps` Jacobi iterations. About 0.1 s for 64
    images of 64 px on a 2-core CPU; used as the generator's input in the hole by `mask.fill = "harmonic"`.
    """
    out = solve_laplace(image, ~mask, sweeps)
    return torch.where(mask, out.to(image.dtype), image)


def solve_laplace(values: Tensor, fixed: Tensor, sweeps: int = 8) -> Tensor:
    """`values` (B, C, H, W) as float, its pixels outside `fixed` (B or 1, 1, H, W) replaced by the harmonic
    interpolation of the `fixed` ones (Laplace's equation, solved coarse to fine as `harmonic_fill` says)."""
    x = values.float()
    weight = fixed.to(x.dtype).expand(x.shape[0], 1, *x.shape[-2:])
    return _membrane(x * weight, weight, sweeps)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """`mask` (H, W, bool) dilated by the (2 radius + 1) px square: True within `radius` px (Chebyshev) of
    a True pixel. Separable, and O(log radius) passes of ORs per axis (van Herk's idea, with doubling
    spans), so a 4000 px mask dilates by 32 px in a few hundredths of a second."""
    out = np.asarray(mask, dtype=bool)
    if radius < 1:
        return out.copy()
    for axis in (0, 1):
        out = np.moveaxis(_or_window(np.moveaxis(out, axis, 0), radius), 0, axis)
    return np.ascontiguousarray(out)


def _or_window(x: np.ndarray, radius: int) -> np.ndarray:
    """OR of x[i - radius : i + radius + 1] along axis 0 (outside counts as False)."""
    n, length = x.shape[0], 2 * radius + 1
    m = np.concatenate([np.zeros((radius, *x.shape[1:]), bool), x, np.zeros((radius, *x.shape[1:]), bool)])
    span = 1
    while 2 * span <= length:  # m[i] = OR of the padded rows i .. i + span - 1
        m = m[:-span] | m[span:]
        span *= 2
    return m[:n] | m[length - span : length - span + n]  # two windows of `span` rows cover the 2r + 1


def thick_holes(labels: np.ndarray, count: int, reach: int) -> np.ndarray:
    """(count + 1,) bool per label of `labels` (0 = known, 1..count = holes): True for a thick hole, one with a
    pixel farther than `reach` px (Chebyshev) from every known pixel; a brush stroke is thin, a box is not."""
    thick = np.zeros(count + 1, dtype=bool)
    thick[np.unique(labels[~dilate(labels == 0, reach)])] = True
    thick[0] = False
    return thick


def hole_components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Label the 8-connected holes of a bool (H, W) mask.

    Returns (labels, boxes): `labels` is an int32 (H, W) array, 0 outside holes and k in hole k
    (1-based, numbered in raster order of each hole's first pixel, as `scipy.ndimage.label` does);
    `boxes[k - 1]` is its bounding box (top, left, bottom, right), bottom/right exclusive.
    Works on row runs with a union-find, so the cost grows with the number of runs, not pixels.

    Not `scipy.ndimage.label` or `cv2.connectedComponentsWithStats`: neither is a core dependency (SciPy
    comes only with the `demo`/`baselines` extras, OpenCV only with `baselines`), and this runs in every
    `inpaint` call. Measured on one core: 0.3 s for 4 MP of blob-shaped holes (SciPy 0.04 s), a small
    part of filling that image (0.4-0.6 s per MP); pixel-noise masks are slower (2.9 s at 2 MP, 50%
    holes) but make thousands of holes, each of which costs far more to fill.
    """
    h, w = mask.shape
    parent: list[int] = [0]

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    runs: list[tuple[int, int, int, int]] = []  # (row, start, stop, run id)
    prev: list[tuple[int, int, int]] = []
    padded = np.zeros(w + 2, dtype=np.int8)
    for y in range(h):
        padded[1:-1] = mask[y]
        edges = np.flatnonzero(np.diff(padded))
        row = []
        j = 0
        for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist()):
            rid = len(parent)
            parent.append(rid)
            while j < len(prev) and prev[j][1] < start:  # previous runs ending left of this run's reach
                j += 1
            k = j
            while k < len(prev) and prev[k][0] <= stop:  # overlaps [start - 1, stop + 1): 8-connected
                ra, rb = find(rid), find(prev[k][2])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                k += 1
            row.append((start, stop, rid))
            runs.append((y, start, stop, rid))
        prev = row
    labels = np.zeros((h, w), dtype=np.int32)
    roots: dict[int, int] = {}
    boxes: list[list[int]] = []
    for y, start, stop, rid in runs:
        root = find(rid)
        if root not in roots:
            roots[root] = len(roots) + 1
            boxes.append([y, start, y + 1, stop])
        label = roots[root]
        labels[y, start:stop] = label
        box = boxes[label - 1]
        box[0], box[1] = min(box[0], y), min(box[1], start)
        box[2], box[3] = max(box[2], y + 1), max(box[3], stop)
    return labels, [tuple(b) for b in boxes]
