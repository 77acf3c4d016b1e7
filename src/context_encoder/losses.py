"""Losses (paper Sec. 3.2): pure functions of predictions, targets, masks and weights.

Released code, in effect, for the centre hole:
    loss_G = 0.001 * BCE(D(fake), 1) + mean(W * (fake - real)^2),  W = 0.999 in the hole, 9.99 on the ring
    loss_D = BCE(D(real), 1) + BCE(D(fake), 0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import LossConfig


def reconstruction_weights(hole: Tensor, overlap_weight: float) -> Tensor:
    """Per-pixel weights over the predicted region: 1 in the hole, `overlap_weight` elsewhere.

    For a centre prediction `hole` is the hole cropped to the predicted patch, so "elsewhere" is the
    overlap ring; for a whole-image prediction it is every known pixel (as `train_random.lua`).
    """
    return torch.where(hole, 1.0, overlap_weight).to(torch.float32)


def reconstruction_loss(pred: Tensor, target: Tensor, weights: Tensor, kind: str = "l2") -> Tensor:
    """Normalised weighted reconstruction loss: mean over all elements of weights * |pred - target|^p."""
    diff = pred - target
    per_pixel = diff.square() if kind == "l2" else diff.abs()
    return (weights * per_pixel).mean()


def generator_adversarial_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating GAN loss for G: BCE(D(G(x)), 1)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """BCE(D(real), 1) + BCE(D(fake), 0), summed as in the released code."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def perceptual_loss(pred: Tensor, target: Tensor, hole: Tensor, distance: nn.Module) -> Tensor:
    """Mean `distance` (an LPIPS module, inputs in [-1, 1]) between `target` and `target` with `pred` in `hole`.

    Only the hole's pixels come from the prediction, so the known pixels (which `inpaint` keeps) cost nothing
    and the gradient reaches G through the hole alone.
    """
    return distance(torch.where(hole, pred, target), target).mean()


def generator_loss(rec: Tensor, adv: Tensor | None, cfg: LossConfig, perceptual: Tensor | None = None) -> Tensor:
    """The objective G minimises: `l2` -> rec, `adv` -> adv, `joint` -> lambda_rec * rec + lambda_adv * adv;
    plus `cfg.perceptual` times the perceptual term where one is given."""
    if cfg.mode == "l2":
        loss = rec
    else:
        assert adv is not None, f"loss mode '{cfg.mode}' needs the adversarial term"
        loss = adv if cfg.mode == "adv" else cfg.lambda_rec * rec + cfg.lambda_adv * adv
    if perceptual is not None:
        loss = loss + cfg.perceptual * perceptual
    return loss


def uses_discriminator(cfg: LossConfig) -> bool:
    return cfg.mode in ("adv", "joint")
