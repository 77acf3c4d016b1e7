"""Optimisation helpers: Adam for G and D as released, the learning-rate schedule, the EMA of G's weights."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .config import Config


def make_optimizers(
    gen: nn.Module, disc: nn.Module, cfg: Config, fused: bool = True
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D; G's learning rate is `g_lr_mult` x D's in joint mode, as in the released code."""
    t = cfg.train
    g_lr = t.lr * (t.g_lr_mult if cfg.loss.mode == "joint" else 1.0)
    kwargs = {"betas": (t.beta1, t.beta2), **({"fused": True} if fused else {})}
    return torch.optim.Adam(gen.parameters(), lr=g_lr, **kwargs), torch.optim.Adam(disc.parameters(), lr=t.lr, **kwargs)


def lr_factor(step: int, total: int, schedule: str, min_factor: float) -> float:
    """Learning-rate multiplier at `step` of `total`: 1 for "constant", a half cosine down to `min_factor`."""
    if schedule == "constant":
        return 1.0
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


class EMA:
    """Exponential moving average of a module's weights: ema = d * ema + (1 - d) * current.

    BatchNorm running statistics are averaged the same way, so they match the averaged weights
    (integer buffers are copied). The decay warms up as min(d, (1 + step) / (10 + step)), so early
    averages are not dominated by the random initialisation.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_params = list(self.module.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in module.parameters()], 1.0 - decay)
        for b_ema, b in zip(self.module.buffers(), module.buffers()):
            if b.is_floating_point():
                b_ema.lerp_(b, 1.0 - decay)
            else:
                b_ema.copy_(b)
