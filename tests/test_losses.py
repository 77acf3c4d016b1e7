import math

import torch

from context_encoder.config import LossConfig
from context_encoder.losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    perceptual_loss,
    reconstruction_loss,
    reconstruction_weights,
)
from context_encoder.lpips import LPIPS


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
    # the perceptual term is added at its weight in every mode
    p = torch.tensor(5.0)
    assert math.isclose(generator_loss(rec, None, LossConfig(mode="l2", perceptual=0.5), p).item(), 4.5, rel_tol=1e-6)
    assert math.isclose(generator_loss(rec, adv, LossConfig(perceptual=0.1), p).item(), 2.501, rel_tol=1e-6)


def test_perceptual_loss_sees_only_the_hole():
    torch.manual_seed(0)
    distance = LPIPS("alex")
    for head in distance.heads:  # random backbone, unit heads: a distance that is not zero everywhere
        head.data.fill_(1.0)
    target = torch.rand(2, 3, 40, 40) * 2 - 1
    hole = torch.zeros(2, 1, 40, 40, dtype=torch.bool)
    hole[..., 10:30, 12:28] = True
    pred = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    loss = perceptual_loss(pred, target, hole, distance)
    loss.backward()
    assert loss.item() > 0
    grad = pred.grad.abs().sum(1, keepdim=True)
    assert float(grad[~hole].abs().max()) == 0 and float(grad[hole].sum()) > 0
    # a prediction that equals the photo in the hole costs nothing, whatever it holds elsewhere
    elsewhere = torch.where(hole, target, pred.detach())
    assert perceptual_loss(elsewhere, target, hole, distance).item() == 0
