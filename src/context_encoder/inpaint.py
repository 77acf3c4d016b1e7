"""Inference: run a generator on masked images and composite its prediction into the known pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from .config import Config
from .errors import InputError
from .masks import apply_mask, center_patch_bounds, fill_value
from .models import Generator


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


@torch.no_grad()
def fill_batch(gen: Generator, cfg: Config, image: Tensor, mask: Tensor) -> Tensor:
    """Fill the holes of `image` (B, 3, S, S) in [-1, 1] where `mask` (B, 1, S, S) is True.

    Pixels outside the hole are returned unchanged. For a centre-mode model the hole must lie inside
    the S/2 centre square the generator predicts.
    """
    s = cfg.model.image_size
    if image.shape[-2:] != (s, s):
        raise InputError(f"image is {image.shape[-1]}x{image.shape[-2]}; this model takes {s}x{s}")
    if not cfg.full_image:
        lo, hi = center_patch_bounds(s)
        inside = torch.zeros_like(mask)
        inside[..., lo:hi, lo:hi] = True
        if bool((mask & ~inside).any()):
            raise InputError(f"this centre-hole model only fills holes inside the central {hi - lo} px square")
    masked = apply_mask(image, mask, fill_value(cfg.mask.fill_rgb, image.device))
    was_training = gen.training
    gen.eval()
    pred = gen(masked)
    gen.train(was_training)
    return composite(image, pred, mask)
