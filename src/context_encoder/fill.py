"""A generator applied to model-size batches: the step that inference, evaluation and validation share.

`fill_batch` takes (B, 3, S, S) images at the model's own size with their holes and returns them
filled, known pixels unchanged; `context_encoder.inpaint` builds any-size inpainting on top of it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .config import Config
from .errors import InputError
from .masks import apply_mask, center_region, composite, hole_fill

Filler = Callable[[Tensor, Tensor], Tensor]  # (images (B, 3, S, S) in [0, 1], holes (B, 1, S, S)) -> filled


def predict(gen: nn.Module, masked: Tensor, mask: Tensor, flip_average: bool = False) -> Tensor:
    """The generator's output for masked inputs; with `flip_average`, the mean of its outputs for the
    inputs and for their mirror images (mirrored back): one batch of 2B, about twice the work."""
    if not flip_average:
        return gen(masked, mask)
    both = gen(torch.cat([masked, masked.flip(-1)]), torch.cat([mask, mask.flip(-1)]))
    plain, mirrored = both.chunk(2)
    return (plain + mirrored.flip(-1)) / 2


@torch.no_grad()
def fill_batch(gen: nn.Module, cfg: Config, image: Tensor, mask: Tensor, flip_average: bool = False) -> Tensor:
    """Fill the holes of `image` (B, 3, S, S) in [-1, 1] where `mask` (B, 1, S, S) is True.

    Pixels outside the hole are returned unchanged. For a centre-mode model the hole must lie inside
    the S/2 centre square the generator predicts. `flip_average`: see `predict`.
    """
    s = cfg.model.image_size
    if image.shape[-2:] != (s, s):
        raise InputError(f"image is {image.shape[-1]}x{image.shape[-2]}; this model takes {s}x{s}")
    if not cfg.full_image and bool((mask & ~center_region(s, 1, mask.device)).any()):
        raise InputError(f"this centre-hole model only fills holes inside the central {s // 2} px square")
    masked = apply_mask(image, mask, hole_fill(cfg.mask, image.device))
    was_training = gen.training
    gen.eval()
    pred = predict(gen, masked, mask, flip_average)
    gen.train(was_training)
    return composite(image, pred, mask)


def generator_filler(gen: nn.Module, cfg: Config, flip_average: bool = False) -> Filler:
    """The generator's raw fill (no seam blending) as a `Filler` on [0, 1] images: how validation scores."""

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        device = next(gen.parameters()).device
        out = fill_batch(gen, cfg, images.to(device) * 2 - 1, masks.to(device), flip_average).to(images.device)
        return torch.where(masks, (out + 1) / 2, images)  # known pixels bit-identical in [0, 1]

    return fill
