"""Labelled image sets for the feature probes: DATA/train/<class>/ and DATA/test/<class>/, and the splits.

The test split is only ever read to report accuracy. Choices (weight decay, learning rates, epochs,
layers) are made on a validation split carved from the training images by `probe_split`,
class-balanced and fixed by a seed; the classifier is trained on a labelled subset of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .data import readable_images
from .errors import DataError
from .protocol import load_images, spread


@dataclass(frozen=True)
class LabelledSet:
    """A data set's labelled images at one size, loaded once: uint8 tensors (N, 3, S, S)."""

    classes: list[str]
    train_paths: list[Path]
    train_x: Tensor
    train_y: Tensor
    test_paths: list[Path] = field(repr=False)
    test_x: Tensor = field(repr=False)
    test_y: Tensor = field(repr=False)


@dataclass(frozen=True)
class Split:
    """Indices into a `LabelledSet`'s training images: `fit` trains a classifier, `val` chooses among them."""

    fit: Tensor
    val: Tensor


def labelled_split(root: Path, split: str, limit: int | None) -> tuple[list[Path], Tensor, list[str]]:
    """Images of ROOT/split/<class>/ with integer labels; `limit` spreads evenly over classes."""
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{root} has no {split}/ folder: probes need DATA/train/<class>/ and DATA/test/<class>/")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder} has no class sub-folders (expected {split}/<class>/image files)")
    paths = spread(readable_images(folder), limit)
    labels = []
    for p in paths:
        rel = p.relative_to(folder).parts
        if len(rel) < 2:
            raise DataError(f"{p} is not inside a class folder of {folder}")
        labels.append(classes.index(rel[0]))
    return paths, torch.tensor(labels), classes


def load_labelled(root: str | Path, size: int, limit: int | None = None, test_limit: int | None = None) -> LabelledSet:
    """DATA/train and DATA/test, centre-cropped and resized to `size` (the evaluation protocol's `prepare_image`)."""
    root = Path(root)
    train_paths, train_y, classes = labelled_split(root, "train", limit)
    test_paths, test_y, test_classes = labelled_split(root, "test", test_limit)
    missing = sorted(set(test_classes) - set(classes))
    if missing:
        raise DataError(f"class '{missing[0]}' is in test/ but not in train/")
    test_y = torch.tensor([classes.index(test_classes[i]) for i in test_y.tolist()])

    def as_bytes(x: Tensor) -> Tensor:
        return (x * 255).round().to(torch.uint8)

    train_x = as_bytes(load_images(train_paths, size, "train images"))
    test_x = as_bytes(load_images(test_paths, size, "test images"))
    return LabelledSet(classes, train_paths, train_x, train_y, test_paths, test_x, test_y)


def probe_split(labels: Tensor, seed: int, val_fraction: float, labels_fraction: float = 1.0) -> Split:
    """A class-balanced validation split of the training labels and, from the rest, the labelled subset.

    Per class of n images: round(val_fraction * n) (at least 1) go to validation, then
    round(labels_fraction * n) (at least 1, at most what is left) to the labelled subset, so
    `labels_fraction = 1` means every training image outside the validation split.
    """
    gen = torch.Generator().manual_seed(seed)
    fit, val = [], []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        if len(idx) < 2:
            raise DataError(f"class {int(c)} has {len(idx)} training image(s): a probe needs 2 (fit and validation)")
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = max(1, round(val_fraction * len(idx)))
        n_fit = min(len(idx) - n_val, max(1, round(labels_fraction * len(idx))))
        val.append(idx[:n_val])
        fit.append(idx[n_val : n_val + n_fit])
    return Split(torch.cat(fit).sort().values, torch.cat(val).sort().values)
