import math

import torch

from context_encoder.config import LossConfig
from context_encoder.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    reconstruction_loss,
    reconstruction_weights,
)


def _ring_patch():
    hole = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    hole[..., 1:3, 1:3] = True  # 2x2 hole inside a 1 px ring
    return hole


def test_weights_are_10x_on_the_ring():
    w = reconstruction_weights(_ring_patch(), 10.0)
    assert w[0, 0, 1, 1] == 1.0 and w[0, 0, 0, 0] == 10.0
    assert w.sum() == 4 * 1 + 12 * 10


def test_reconstruction_hand_worked():
    hole = _ring_patch()
    w = reconstruction_weights(hole, 10.0)
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    assert reconstruction_loss(pred, target, w) == 0
    pred[0, 0, 1, 1] = 0.5  # one hole pixel, error 0.5
    assert math.isclose(reconstruction_loss(pred, target, w).item(), 0.25 / 48, rel_tol=1e-6)
    assert math.isclose(reconstruction_loss(pred, target, w, "l1").item(), 0.5 / 48, rel_tol=1e-6)
    ring = target.clone()
    ring[0, 0, 0, 0] = 0.5  # the same error on a ring pixel costs exactly 10x
    ratio = reconstruction_loss(ring, target, w) / reconstruction_loss(pred, target, w)
    assert math.isclose(ratio.item(), 10.0, rel_tol=1e-6)


def test_gan_losses_hand_worked():
    zero = torch.zeros(5)
    assert math.isclose(discriminator_loss(zero, zero).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(generator_adversarial_loss(zero).item(), math.log(2), rel_tol=1e-6)
    big = torch.full((5,), 20.0)
    assert discriminator_loss(big, -big).item() < 1e-6  # perfect D
    assert generator_adversarial_loss(big).item() < 1e-6  # D fooled: non-saturating loss ~ 0
    assert generator_adversarial_loss(-big).item() > 19  # D confident it is fake: large, not saturated


def test_joint_weights_and_modes():
    rec, adv = torch.tensor(2.0), torch.tensor(3.0)
    assert math.isclose(generator_loss(rec, adv, LossConfig()).item(), 0.999 * 2 + 0.001 * 3, rel_tol=1e-6)
    assert generator_loss(rec, None, LossConfig(mode="l2")).item() == 2.0
    assert generator_loss(rec, adv, LossConfig(mode="adv")).item() == 3.0
