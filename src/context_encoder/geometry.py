"""Geometry: the paper's centre hole (the one place its bounds are derived) and the boxes around holes.

A centre-mode generator predicts the S/2 centre square of an S px input; the hole is that square
minus an `overlap` px ring the model sees and predicts (released code: 4 px at 128 px, paper: 7 px).
The box helpers below are the bounding box of a hole array and the ways it is widened: to the part of
an image a fill reads (`widen_box`) and to a crop with context around a hole (`grow_box`).
"""

from __future__ import annotations

import numpy as np


def center_patch_bounds(size: int) -> tuple[int, int]:
    """[start, stop) rows (and columns) of the S/2 centre square that a centre-mode generator predicts."""
    return size // 4, size - size // 4


def center_bounds(size: int, overlap: int) -> tuple[int, int]:
    """[start, stop) of the central hole: the S/2 centre minus the overlap ring.

    128 px with the released 4 px overlap: (36, 92); the generator predicts the larger [32, 96).
    """
    lo, hi = center_patch_bounds(size)
    return lo + overlap, hi - overlap


def max_overlap(size: int) -> int:
    """The widest overlap ring that still leaves a hole of at least 2 px in an S px image."""
    return size // 4 - 1


def scaled_overlap(size: int) -> int:
    """The released 4 px overlap at 128 px, scaled to an S px image (at least 1 px): 1 at 32, 2 at 64."""
    return max(1, size // 32)


Box = tuple[int, int, int, int]  # (top, left, bottom, right) in pixels; bottom and right exclusive


def bounding_box(mask: np.ndarray) -> Box:
    """The bounding box of the True pixels of a (H, W) bool array (which must have some)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def widen_box(box: Box, reach: int, shape: tuple[int, int], align: int = 1) -> Box:
    """`box` widened by `reach` px each way and clipped to an image of `shape` (H, W), its top-left corner moved
    up and left to a multiple of `align`."""
    top, left, bottom, right = box
    h, w = shape
    top, left = max(0, top - reach) // align * align, max(0, left - reach) // align * align
    return top, left, min(h, bottom + reach), min(w, right + reach)


def grow_box(box: Box, pad: int, min_side: int, shape: tuple[int, int]) -> Box:
    """`box` padded by `pad`, each side grown about its centre to at least `min_side`, shifted back inside an
    image of `shape` (H, W) and clipped to it."""
    out = []
    for lo, hi, size in ((box[0], box[2], shape[0]), (box[1], box[3], shape[1])):
        lo, hi = lo - pad, hi + pad
        if hi - lo < min_side:
            lo -= (min_side - (hi - lo)) // 2
            hi = lo + min_side
        lo, hi = max(0, lo - max(0, hi - size)), min(size, hi - min(0, lo))  # shift back inside, then clamp
        out.append((lo, hi))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def pil_box(box: Box) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): a box in the order Pillow's `crop` and `paste` take."""
    top, left, bottom, right = box
    return left, top, right, bottom
