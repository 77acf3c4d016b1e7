"""Geometry of the paper's centre hole: the one place its bounds are derived (pure integer arithmetic).

A centre-mode generator predicts the S/2 centre square of an S px input; the hole is that square
minus an `overlap` px ring the model sees and predicts (released code: 4 px at 128 px, paper: 7 px).
"""

from __future__ import annotations


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
