"""Any image, any mask: windows around each hole, seam blending, known pixels bit-identical."""

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.cli import box_hole
from context_encoder.config import apply_overrides, load_config
from context_encoder.errors import InputError
from context_encoder.fill import predict
from context_encoder.inpaint import InferenceOptions, Inpainter, harmonic_offset
from context_encoder.loading import inpaint
from context_encoder.masks import hole_components
from context_encoder.models import build_models


def _model(kind="center", residual=False):
    extra = ["model.residual=true", "mask.fill=harmonic"] if residual else []
    cfg = apply_overrides(load_config("tiny"), [f"mask.kind={kind}", *extra])
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    return Inpainter(gen, cfg)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind,residual", [("center", False), ("random-region", False), ("random-region", True)])
@pytest.mark.parametrize("shape", [(16, 16), (37, 53), (300, 4000)])
def test_any_size_several_holes_known_pixels_untouched(kind, residual, shape):
    h, w = shape
    img = _image(h, w)
    mask = np.zeros((h, w), bool)
    mask[: h // 4, : w // 5] = True  # touches the top-left border
    mask[h // 2 : h // 2 + max(2, h // 6), w // 2 : w // 2 + max(2, w // 7)] = True
    mask[-2:, -3:] = True  # bottom-right corner
    out = np.asarray(_model(kind, residual)(Image.fromarray(img), mask))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out[~mask] == img[~mask]).all()  # bit-identical context
    assert (out[mask] != img[mask]).mean() > 0.5  # holes really filled


@pytest.mark.parametrize("refine", ["none", "patch"])
def test_an_array_photo_is_read_not_written(refine):
    """`inpaint` reads a caller's uint8 array without copying it, so it must never write into it."""
    img = _image(60, 90, seed=3)
    before = img.copy()
    mask = np.zeros((60, 90), bool)
    mask[20:40, 30:60] = True
    model = _model("random-region", residual=True)
    out = np.asarray(model(img, mask, options=InferenceOptions(refine=refine)))
    assert np.array_equal(img, before) and not np.array_equal(out[mask], img[mask])


def test_modes_and_inputs(tmp_path):
    model = _model()
    grey = Image.fromarray(np.full((20, 30), 90, np.uint8), "L")
    rgba = Image.new("RGBA", (30, 20), (10, 200, 30, 128))
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 10:20] = 255
    for img in (grey, rgba, grey.convert("P")):
        assert model(img, mask).size == (30, 20)
    Image.fromarray(mask).save(tmp_path / "m.png")
    grey.save(tmp_path / "g.png")
    assert inpaint(model, tmp_path / "g.png", tmp_path / "m.png").mode == "RGB"


def test_empty_full_and_mismatched_masks():
    model = _model()
    img = _image(20, 20)
    same = model(Image.fromarray(img), np.zeros((20, 20), bool))
    assert (np.asarray(same) == img).all()
    with pytest.raises(InputError, match="no context"):
        model(Image.fromarray(img), np.ones((20, 20), bool))
    with pytest.raises(InputError, match="mask is 10x20 but the image is 20x20"):
        model(Image.fromarray(img), np.ones((20, 10), bool))


def test_hole_components_hand_worked():
    m = np.zeros((6, 7), bool)
    m[0, 0] = m[1, 1] = True  # diagonal neighbours: one 8-connected hole
    m[4:6, 3:7] = True
    m[0, 6] = True
    labels, boxes = hole_components(m)
    assert boxes == [(0, 0, 2, 2), (0, 6, 1, 7), (4, 3, 6, 7)]
    assert labels[1, 1] == labels[0, 0] == 1 and labels[5, 6] == 3 and labels[2, 2] == 0
    # a U shape whose arms meet only at the bottom is one hole
    u = np.zeros((5, 5), bool)
    u[:, 0] = u[:, 4] = u[4, :] = True
    assert len(hole_components(u)[1]) == 1


def _flood_fill_components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The reference: a breadth-first flood fill from each unlabelled hole pixel in raster order, 8 neighbours."""
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    boxes = []
    for y0 in range(h):
        for x0 in range(w):
            if not mask[y0, x0] or labels[y0, x0]:
                continue
            label = len(boxes) + 1
            labels[y0, x0] = label
            queue, box = [(y0, x0)], [y0, x0, y0 + 1, x0 + 1]
            while queue:
                y, x = queue.pop()
                box = [min(box[0], y), min(box[1], x), max(box[2], y + 1), max(box[3], x + 1)]
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = label
                            queue.append((ny, nx))
            boxes.append(tuple(box))
    return labels, boxes


@pytest.mark.parametrize("density", [0.05, 0.3, 0.5, 0.7, 0.95])
def test_hole_components_match_a_flood_fill(density):
    rng = np.random.default_rng(int(density * 100))
    shapes = [(1, 1), (1, 17), (17, 1), (2, 2), (9, 13), (24, 24), (31, 40)]
    for h, w in shapes:
        for _ in range(4):
            mask = rng.random((h, w)) < density
            labels, boxes = hole_components(mask)
            expected_labels, expected_boxes = _flood_fill_components(mask)
            assert labels.dtype == np.int32 and np.array_equal(labels, expected_labels), (h, w, mask)
            assert boxes == expected_boxes
    empty, full = np.zeros((5, 6), bool), np.ones((5, 6), bool)
    assert hole_components(empty)[1] == [] and not hole_components(empty)[0].any()
    assert hole_components(full)[1] == [(0, 0, 5, 6)] and (hole_components(full)[0] == 1).all()


def test_harmonic_offset_is_linear_between_boundaries():
    """A ramp is harmonic: known only on a 2 px ring of a 64 px window, the offset rebuilds it inside."""
    ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    known = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    known[..., :2, :] = known[..., -2:, :] = known[..., :, :2] = known[..., :, -2:] = True
    diff = torch.where(known, ramp, torch.full_like(ramp, 5.0))  # inside values must not matter
    off = harmonic_offset(diff, known, ~known)
    inner = ~known[0, 0]
    error = (off[0, :, inner] - ramp[0, :, inner]).abs().max()
    assert error < 0.05, error  # 2.5% of the ramp's range (300 plain Jacobi sweeps are 0.27 off here)
    assert (off[0, :, known[0, 0]] == 0).all()  # the offset is only added inside the hole


def test_harmonic_offset_skips_windows_already_meeting_their_context():
    """Windows whose boundary difference is zero get a zero offset; the others the same as solved alone."""
    g = torch.Generator().manual_seed(0)
    diff = torch.randn(3, 3, 32, 32, generator=g)
    known = torch.rand(3, 1, 32, 32, generator=g) > 0.3
    diff[1] = torch.where(known[1], 0.0, diff[1])  # window 1 already meets its context
    off = harmonic_offset(diff, known, ~known)
    assert (off[1] == 0).all()
    for i in (0, 2):
        alone = harmonic_offset(diff[i : i + 1], known[i : i + 1], ~known[i : i + 1])
        assert torch.equal(off[i : i + 1], alone) and off[i].abs().max() > 0
    shared = harmonic_offset(diff, known[:1], ~known[:1])  # one mask for the whole batch
    for i in range(3):
        assert torch.equal(shared[i : i + 1], harmonic_offset(diff[i : i + 1], known[:1], ~known[:1]))


def test_blending_removes_a_colour_cast():
    """A generator that is right up to a constant cast: blending takes the cast away inside the hole."""
    cfg = apply_overrides(load_config("tiny"), ["mask.kind=random-region"])

    class Cast(torch.nn.Module):
        full_image = True

        def __init__(self, truth):
            super().__init__()
            self.truth, self.w = truth, torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, mask=None):
            return (self.truth + 0.3).clamp(-1, 1)

    ramp = torch.linspace(-0.5, 0.5, 32)
    truth = torch.stack([ramp[None, :].expand(32, 32)] * 3)[None]
    img = ((truth[0] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    mask = np.zeros((32, 32), bool)
    mask[12:20, 12:20] = True
    cast = Inpainter(
        Cast(truth), cfg, options=InferenceOptions(blend=False, flip_average=False)
    )  # the oracle ignores its input
    blended = Inpainter(Cast(truth), cfg, options=InferenceOptions(blend=True, flip_average=False))
    window = box_hole((32, 32), "12,12,8,8")
    assert (window == mask).all()
    err_raw = np.abs(np.asarray(cast(img, mask)).astype(int) - img)[mask].mean()
    err_blend = np.abs(np.asarray(blended(img, mask)).astype(int) - img)[mask].mean()
    assert err_raw > 30 and err_blend < 5


@pytest.mark.parametrize("kind", ["center", "random-region"])
def test_flip_average_is_mirror_equivariant(kind):
    """The averaged fill of a mirrored input is the mirrored fill; a single pass of G is not."""
    inpainter = _model(kind)  # random weights (an untrained residual G would be equivariant already)
    gen, s = inpainter.gen, inpainter.cfg.model.image_size
    x = torch.rand(3, 3, s, s, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = torch.zeros(3, 1, s, s, dtype=torch.bool)
    m[..., s // 4 : s // 2, s // 3 : 3 * s // 4] = True  # off-centre: the mirror image is a different input
    with torch.no_grad():
        single, single_m = predict(gen, x, m), predict(gen, x.flip(-1), m.flip(-1))
        avg, avg_m = predict(gen, x, m, flip_average=True), predict(gen, x.flip(-1), m.flip(-1), flip_average=True)
    scale = float(single.abs().max())  # an untrained G's outputs are small: compare relative to them

    def close(a, b):
        return float((a - b).abs().max()) <= 1e-4 * scale

    assert not close(single_m, single.flip(-1))
    assert close(avg_m, avg.flip(-1))
    assert close(avg, (single + single_m.flip(-1)) / 2)
    assert inpainter.options.flip_average  # what `inpaint` does by default


def test_precision_fp32_bf16_agree_and_bad_precision_is_refused():
    cfg = apply_overrides(load_config("tiny"), ["mask.kind=random-region"])
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    with torch.no_grad():
        for p in gen.parameters():  # a generator with a visible output, not the near-constant fill at init
            p.mul_(3)
    img, mask = _image(40, 56), np.zeros((40, 56), bool)
    mask[10:30, 12:40] = True
    exact = np.asarray(Inpainter(gen, cfg, precision="fp32")(img, mask)).astype(int)
    fast = np.asarray(Inpainter(gen, cfg, precision="bf16")(img, mask)).astype(int)
    assert (fast[~mask] == img[~mask]).all()
    diff = np.abs(fast - exact)[mask]
    assert 0 < diff.max() <= 12 and diff.mean() < 2  # bf16 rounds, but fills the same picture
    assert Inpainter(gen, cfg, precision="fp32").with_options(InferenceOptions()).precision == "fp32"
    with pytest.raises(InputError, match="precision must be one of"):
        Inpainter(gen, cfg, precision="fp8")


def test_channels_last_inference_matches_contiguous_fp32():
    cfg = apply_overrides(load_config("tiny"), ["mask.kind=random-region"])
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    x = torch.rand(3, 3, cfg.model.image_size, cfg.model.image_size) * 2 - 1
    with torch.no_grad():
        plain = gen.eval()(x)
    inp = Inpainter(gen, cfg, precision="bf16")  # with bf16 the generator runs channels-last
    assert inp.gen.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        nhwc = inp.gen(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, nhwc, atol=1e-5)


def test_whole_image_windows_are_never_resized_up_and_near_sizes_snap_to_1_to_1():
    """A whole-image model sees a small hole, or one whose window would be a little over its input, at 1:1."""
    from context_encoder.inpaint import SNAP, context_window, piece_side

    cfg = _model("random-region").cfg
    s = cfg.model.image_size  # 32
    assert context_window((10, 10, 14, 14), cfg)[2] == s  # a 4 px hole: twice it would be 12 px, upscaled
    assert context_window((0, 0, 15, 15), cfg)[2] == s  # 2 x (15 + 2) = 34 px is within SNAP of 32: cropped 1:1
    big = context_window((0, 0, 40, 30), cfg)
    assert big[2] == 2 * 42 > SNAP * s  # a larger hole: twice its extent, shrunk to the input
    assert piece_side(cfg) == s // 2 - 2 and 2 * (piece_side(cfg) + 2) == s  # a piece's window is the input
    centre = _model("center").cfg
    assert piece_side(centre) == s and context_window((10, 10, 14, 14), centre)[2] < s  # centre models: as before


@pytest.mark.parametrize("top,left,side", [(-5, -7, 20), (10, 12, 8), (40, 60, 30), (-3, 50, 64), (-30, -30, 120)])
def test_window_crops_repeat_the_edge_outside_the_image(top, left, side):
    from context_encoder.inpaint import _crop

    arr = torch.arange(3 * 45 * 70, dtype=torch.float32).reshape(3, 45, 70)
    crop = _crop(arr, top, left, side)
    assert crop.shape == (3, side, side)
    ys = (torch.arange(top, top + side)).clamp(0, 44)
    xs = (torch.arange(left, left + side)).clamp(0, 69)
    assert torch.equal(crop, arr[:, ys][:, :, xs])  # each pixel is the nearest one of the image


@pytest.mark.parametrize(("top", "left", "side"), [(-40, 30, 300), (10, -5, 257), (200, 150, 180)])
def test_large_windows_are_resampled_as_the_small_ones(monkeypatch, top, left, side):
    """The banded resampling of windows above LARGE_WINDOW gives what cropping and resizing gives."""
    inpaint_mod = importlib.import_module("context_encoder.inpaint")
    gen = torch.Generator().manual_seed(0)
    photo = torch.randint(0, 256, (3, 333, 311), dtype=torch.uint8, generator=gen)
    holes = torch.rand(1, 333, 311, generator=gen) > 0.7
    small = [inpaint_mod._window(a, (top, left, side), 64) for a in (photo, holes)]
    filled = torch.rand(3, 64, 64, generator=gen)
    t0, l0 = max(0, top), max(0, left)
    t1, l1 = min(333, top + side), min(311, left + side)
    inside = holes[0, t0:t1, l0:l1].numpy()
    region = (t0 - top, l0 - left, t1 - top, l1 - left)
    values = inpaint_mod._window_values(filled, side, region, inside)
    monkeypatch.setattr(inpaint_mod, "LARGE_WINDOW", 100)  # the same windows through the banded path
    large = [inpaint_mod._window(a, (top, left, side), 64) for a in (photo, holes)]
    for a, b in zip(small, large):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=0)
    torch.testing.assert_close(inpaint_mod._window_values(filled, side, region, inside), values, atol=2e-5, rtol=0)
