"""Multinomial logistic regression on fixed features: the linear classifier of the feature probes.

Features are standardised with the statistics of the training rows. One classifier per weight decay
is trained at once, as one matrix product per batch (features (B, D) @ weights (D, K * C)): the
features are read once for all K candidates. The loss of candidate k is its mean cross-entropy plus
wd_k / 2 * ||W_k||^2 (an L2 penalty on the weights, not the biases); Adam, with the learning rate
decaying to zero on a cosine, so that the convex problem is close to its optimum at the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LinearHead:
    """A trained classifier with the standardisation it expects; `val_accuracy` is what chose it."""

    mean: Tensor  # (D,) training-feature mean
    std: Tensor  # (D,) training-feature standard deviation (floored)
    weight: Tensor  # (D, C)
    bias: Tensor  # (C,)
    weight_decay: float
    val_accuracy: float

    def logits(self, features: Tensor) -> Tensor:
        return ((features - self.mean) / self.std) @ self.weight + self.bias


def fit_logistic(
    x: Tensor,
    y: Tensor,
    classes: int,
    weight_decays: Sequence[float],
    epochs: int,
    seed: int,
    batch_size: int = 512,
    lr: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Train one classifier per weight decay on standardised features `x` (N, D) and labels `y` (N,).

    Returns weights (K, D, C) and biases (K, C). Weights start at zero (the problem is convex).
    """
    k, d = len(weight_decays), x.shape[1]
    gen = torch.Generator().manual_seed(seed)
    w = torch.zeros(d, k * classes, requires_grad=True)  # the K candidates side by side
    b = torch.zeros(k * classes, requires_grad=True)
    decay = torch.tensor(weight_decays, dtype=torch.float32)
    opt = torch.optim.Adam([w, b], lr=lr)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            logits = (x[idx] @ w + b).view(len(idx), k, classes)  # (B, K, C)
            ce = F.cross_entropy(logits.transpose(1, 2), y[idx][:, None].expand(-1, k))  # mean over B and K
            penalty = (decay * w.view(d, k, classes).square().sum((0, 2))).sum() / 2
            opt.zero_grad(set_to_none=True)
            (ce * k + penalty).backward()  # sum over candidates: each one's gradient is its own loss's
            opt.step()
            sched.step()
    weights = w.detach().view(d, k, classes).permute(1, 0, 2).contiguous()
    return weights, b.detach().view(k, classes)


def select_linear(
    fit_x: Tensor,
    fit_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    *,
    classes: int,
    weight_decays: Sequence[float],
    epochs: int,
    seed: int,
) -> LinearHead:
    """Fit a classifier per weight decay on (fit_x, fit_y); return the one most accurate on (val_x, val_y).

    Ties go to the stronger weight decay (the simpler classifier).
    """
    mean, std = fit_x.mean(0), fit_x.std(0).clamp(min=1e-6)
    weights, biases = fit_logistic((fit_x - mean) / std, fit_y, classes, weight_decays, epochs, seed)
    val = (val_x - mean) / std
    with torch.no_grad():
        accs = [((val @ w + b).argmax(1) == val_y).float().mean().item() for w, b in zip(weights, biases)]
    best = max(range(len(accs)), key=lambda i: (accs[i], weight_decays[i]))
    return LinearHead(mean, std, weights[best], biases[best], float(weight_decays[best]), accs[best])


@torch.no_grad()
def accuracy_of(head: LinearHead, features: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy of `head` on raw (unstandardised) features."""
    return (head.logits(features).argmax(1) == labels).float().mean().item()
