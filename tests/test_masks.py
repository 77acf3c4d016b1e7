import numpy as np
import pytest
import torch
import torch.nn.functional as F

from context_encoder.config import MaskConfig
from context_encoder.masks import (
    apply_mask,
    center_bounds,
    center_mask,
    dilate,
    fill_value,
    random_block_mask,
    random_region_mask,
    sample_masks,
)


def test_center_bounds_match_the_released_geometry():
    assert center_bounds(128, 4) == (36, 92)  # 64 px centre minus a 4 px ring: 56 px hole
    assert center_bounds(128, 7) == (39, 89)  # the paper's 7 px
    assert center_bounds(32, 1) == (9, 23)


def test_center_mask_hand_worked():
    m = center_mask(8, overlap=0, batch=2)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 2:6] = True
    assert m.shape == (2, 1, 8, 8) and m.dtype == torch.bool
    assert torch.equal(m[0, 0], expected) and torch.equal(m[1, 0], expected)
    m = center_mask(32, overlap=1)
    assert m.sum() == 14 * 14 and m[0, 0, 8, 8] == 0 and m[0, 0, 9, 9] == 1 and m[0, 0, 22, 22] == 1


@pytest.mark.parametrize("size", [32, 64, 128])
def test_random_block_coverage_bounds(size):
    g = torch.Generator().manual_seed(0)
    m = random_block_mask(64, size, g)
    cover = m.float().mean(dim=(1, 2, 3))
    assert (cover > 0).all() and (cover <= 0.25).all()
    assert len({tuple(x.nonzero().flatten().tolist()[:8]) for x in m}) > 32  # per-sample masks differ


@pytest.mark.parametrize("size", [32, 64, 128])
def test_random_region_coverage_bounds(size):
    g = torch.Generator().manual_seed(0)
    m = random_region_mask(32, size, g)
    cover = m.float().mean(dim=(1, 2, 3))
    assert (cover >= 0.2 - 1 / size**2).all() and (cover <= 0.3 + 1 / size**2).all()
    assert not torch.equal(m[0], m[1])  # one mask per sample


def test_masks_are_reproducible_from_the_generator():
    for kind in ("random-block", "random-region", "mixed"):
        cfg = MaskConfig(kind=kind)
        a = sample_masks(cfg, 4, 64, torch.Generator().manual_seed(5))
        b = sample_masks(cfg, 4, 64, torch.Generator().manual_seed(5))
        c = sample_masks(cfg, 4, 64, torch.Generator().manual_seed(6))
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_fill_with_the_released_mean_pixel():
    f = fill_value((117.0, 104.0, 123.0))
    torch.testing.assert_close(f.flatten(), torch.tensor([2 * 117 / 255 - 1, 2 * 104 / 255 - 1, 2 * 123 / 255 - 1]))
    img = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1, 2] = True
    out = apply_mask(img, mask, f)
    torch.testing.assert_close(out[0, :, 1, 2], f.flatten())
    assert out.abs().sum() == f.abs().sum()


def test_mixed_masks_draw_blocks_or_regions_per_image():
    m = sample_masks(MaskConfig(kind="mixed"), 64, 64, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)  # the same stream: all blocks first, then all regions
    blocks, regions = random_block_mask(64, 64, g), random_region_mask(64, 64, g)
    is_block = [torch.equal(a, b) for a, b in zip(m, blocks)]
    is_region = [torch.equal(a, r) for a, r in zip(m, regions)]
    assert all(b != r for b, r in zip(is_block, is_region))  # each image is exactly one of the two
    assert 10 < sum(is_block) < 54  # both kinds occur, at about even odds


def test_harmonic_fill_keeps_known_pixels_and_interpolates_smooth_images():
    from context_encoder.masks import harmonic_fill

    y, x = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    img = torch.stack([0.6 * x + 0.2 * y, x * 0 + 0.3, -0.5 * y])[None]  # linear: harmonic, so exactly recoverable
    mask = torch.zeros(1, 1, 48, 48, dtype=torch.bool)
    mask[..., 10:30, 14:40] = True
    mask[..., 0:6, 0:48] = True  # a hole touching the border
    out = harmonic_fill(img, mask)
    assert torch.equal(out[~mask.expand_as(out)], img[~mask.expand_as(img)])
    mean_err = (out - img)[mask.expand_as(img)].abs().mean().item()
    flat_err = (img.mean() - img)[mask.expand_as(img)].abs().mean().item()
    assert mean_err < 0.03 < flat_err  # far closer than any constant fill
    assert torch.equal(apply_mask(img, mask, "harmonic"), out)
    with pytest.raises(ValueError, match="unknown hole fill"):
        apply_mask(img, mask, "nope")


def test_laplace_sweeps_match_the_plain_jacobi_iteration():
    """The in-place sweeps: each one the 4-neighbour mean of the previous field on free pixels, edges replicated."""
    import torch.nn.functional as F

    from context_encoder.masks import laplace_sweeps

    gen = torch.Generator().manual_seed(0)
    field = torch.rand(2, 3, 9, 14, generator=gen)
    free = torch.rand(2, 1, 9, 14, generator=gen) < 0.5
    expected = field
    for _ in range(5):
        p = F.pad(expected, (1, 1, 1, 1), mode="replicate")
        mean = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4
        expected = torch.where(free, mean, expected)
    torch.testing.assert_close(laplace_sweeps(field, free, 5), expected)
    torch.testing.assert_close(laplace_sweeps(field, free[:1], 5)[:1], expected[:1])
    assert torch.equal(laplace_sweeps(field, free, 0), field)


def test_dilate_matches_max_pooling_for_any_radius():
    rng = np.random.default_rng(0)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 50, 2))
        radius = int(rng.integers(0, 35))
        mask = rng.random((h, w)) < rng.random() * 0.1
        k = torch.from_numpy(mask)[None, None].float()
        pooled = F.max_pool2d(k, (1, 2 * radius + 1), 1, (0, radius))
        ref = F.max_pool2d(pooled, (2 * radius + 1, 1), 1, (radius, 0))[0, 0].numpy() > 0
        assert (dilate(mask, radius) == ref).all(), (h, w, radius)


def test_the_mask_tables_name_every_kind():
    """Training kinds (`config.MaskKind`) and full-resolution protocol kinds are two tables, named apart."""
    from context_encoder.config import TRAINING_MASK_KINDS, MaskConfig
    from context_encoder.masks import FULLRES_MASKS, TRAINING_MASKS

    assert tuple(TRAINING_MASKS) == TRAINING_MASK_KINDS
    assert not set(TRAINING_MASKS) & set(FULLRES_MASKS)
    for kind in TRAINING_MASKS:
        masks = sample_masks(MaskConfig(kind=kind), 2, 32, torch.Generator().manual_seed(0))
        assert masks.shape == (2, 1, 32, 32) and masks.dtype == torch.bool
        assert masks.any() == (kind != "none")
    for kind, draw in FULLRES_MASKS.items():
        hole = draw(40, 60, torch.Generator().manual_seed(0))
        assert hole.shape == (40, 60) and hole.any(), kind
