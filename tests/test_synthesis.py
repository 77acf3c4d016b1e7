"""Patch refinement (refine = "patch"): texture copied from the photo, guided by the network fill."""

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from context_encoder.config import apply_overrides, load_config
from context_encoder.inpaint import InferenceOptions, Inpainter, local_pieces, merge_pieces, split_holes
from context_encoder.masks import hole_components
from context_encoder.models import build_models
from context_encoder.synthesis import SynthesisSettings, synthesize

PATCH = InferenceOptions(refine="patch")


def _model(kind="random-region"):
    cfg = apply_overrides(load_config("tiny"), [f"mask.kind={kind}", "model.residual=true", "mask.fill=harmonic"])
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    return Inpainter(gen, cfg)


def _stripes(h, w, period=6):
    """Vertical stripes: a texture any blur loses and any copy from the context keeps."""
    x = (np.arange(w) // (period // 2)) % 2 * 200 + 28
    img = np.repeat(np.repeat(x[None, :, None], h, 0), 3, 2).astype(np.uint8)
    img[..., 1] //= 2
    return img


def _energy(img, mask):
    g = np.abs(np.diff(img.astype(float), axis=1))[mask[:, 1:]]
    return g.mean()


@pytest.mark.parametrize("kind", ["random-region", "center"])
def test_known_pixels_bit_identical_and_holes_filled(kind):
    img = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    mask = np.zeros((70, 90), bool)
    mask[:12, :15] = True  # on the border
    mask[30:40, 40:70] = True
    mask[-3:, -4:] = True  # a corner
    out = np.asarray(_model(kind)(img, mask, PATCH))
    assert (out[~mask] == img[~mask]).all()
    assert (out[mask] != img[mask]).mean() > 0.5


def test_texture_comes_from_the_photo():
    """On stripes, the network fill of an untrained model is smooth; the refined fill copies stripes."""
    img = _stripes(64, 96)
    mask = np.zeros((64, 96), bool)
    mask[20:44, 30:60] = True
    model = _model()
    plain, refined = np.asarray(model(img, mask)), np.asarray(model(img, mask, PATCH))
    truth = _energy(img, mask)
    assert _energy(plain, mask) < 0.5 * truth
    assert 0.7 * truth < _energy(refined, mask) < 1.3 * truth
    image = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    guide = torch.from_numpy(plain.copy()).permute(2, 0, 1).float() / 255
    copy = synthesize(image, torch.from_numpy(mask), guide, SynthesisSettings(restore_low=0))
    colours = {tuple(c) for c in image.reshape(3, -1).t().tolist()}
    copied = np.mean([tuple(c) in colours for c in copy[:, torch.from_numpy(mask)].t().tolist()])
    assert copied == 1.0  # without the low-frequency reset, every hole pixel is a pixel of the photo


def test_synthesis_follows_the_guide():
    """Two textures side by side; a guide that says "left texture" makes the fill copy from the left."""
    h, w = 48, 96
    img = np.zeros((3, h, w))
    img[:, :, : w // 2] = 0.2 + 0.1 * (np.arange(w // 2) % 2)  # dark stripes
    img[:, :, w // 2 :] = 0.8 + 0.1 * (np.arange(w - w // 2) % 2)  # light stripes
    image = torch.tensor(img, dtype=torch.float32)
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[16:32, 40:56] = True
    for level in (0.25, 0.85):
        guide = torch.full((3, h, w), level)
        out = synthesize(image, hole, guide, SynthesisSettings(membrane=0.0))  # the guide alone
        assert abs(float(out[:, hole].mean()) - level) < 0.1
        assert torch.equal(out[:, ~hole], image[:, ~hole])


def test_too_little_context_falls_back_to_the_guide():
    image = torch.rand(3, 10, 10)
    hole = torch.ones(10, 10, dtype=torch.bool)
    hole[0, 0] = False
    guide = torch.full((3, 10, 10), 0.5)
    out = synthesize(image, hole, guide, SynthesisSettings())
    assert torch.equal(out[:, hole], guide[:, hole])


def test_split_holes_cuts_long_strokes_into_cells():
    mask = np.zeros((40, 200), bool)
    mask[10:20, 5:195] = True
    labels, boxes = hole_components(mask)
    pieces, piece_boxes = split_holes(labels, 64)
    assert len(boxes) == 1 and len(piece_boxes) == 4
    assert ((pieces > 0) == mask).all()
    for k, (top, left, bottom, right) in enumerate(piece_boxes, start=1):
        ys, xs = np.nonzero(pieces == k)
        assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (top, left, bottom, right)
        assert right - left <= 64


def test_pieces_of_a_stroke_cross_fade(monkeypatch):
    """Each piece's window counts fully on the piece and linearly less up to SEAM x its side beyond its box."""
    inpaint = importlib.import_module("context_encoder.inpaint")  # the package's `inpaint` is the function

    mask = np.zeros((40, 200), bool)
    mask[10:20, 5:195] = True
    pieces, boxes = split_holes(hole_components(mask)[0], 64)
    w = inpaint._piece_weight(pieces, 2, boxes[1], (0, 0)).numpy()  # the second piece: columns 64-127
    assert (w[pieces == 2] == 1).all() and w.max() == 1
    reach = inpaint.SEAM * 64
    assert w[15, 63] == pytest.approx(1 - 1 / reach) and w[15, 128] == pytest.approx(1 - 1 / reach)
    assert (w[:, : int(64 - reach)] == 0).all() and (w[:, int(128 + reach) :] == 0).all()
    assert (np.diff(w[15, 40:64]) >= 0).all() and (np.diff(w[15, 128:150]) <= 0).all()
    monkeypatch.setattr(inpaint, "SEAM", 0.0)
    assert np.array_equal(inpaint._piece_weight(pieces, 2, boxes[1], (0, 0)).numpy(), (pieces == 2).astype(np.float32))


def test_cross_fading_leaves_known_pixels_and_single_holes_alone(monkeypatch):
    inpaint = importlib.import_module("context_encoder.inpaint")  # the package's `inpaint` is the function

    img = np.random.default_rng(3).integers(0, 256, (48, 300, 3), dtype=np.uint8)
    stroke = np.zeros((48, 300), bool)
    stroke[20:26, 4:296] = True  # thin and long: several pieces
    box = np.zeros((48, 300), bool)
    box[10:40, 100:140] = True  # thick: one window
    model = _model()
    faded = {k: np.asarray(model(img, m)) for k, m in (("stroke", stroke), ("box", box))}
    monkeypatch.setattr(inpaint, "SEAM", 0.0)
    hard = {k: np.asarray(model(img, m)) for k, m in (("stroke", stroke), ("box", box))}
    assert (faded["stroke"][~stroke] == img[~stroke]).all() and (faded["stroke"] != hard["stroke"]).any()
    assert (faded["box"] == hard["box"]).all()


def test_only_thin_holes_are_cut_into_pieces():
    mask = np.zeros((200, 300), bool)
    mask[10:40, 5:290] = True  # a stroke 30 px wide: every pixel within 15 px of a known one
    mask[80:150, 20:100] = True  # a 70 px box: its middle is 35 px from the nearest known pixel
    mask[188:200, 200:300] = True  # thin although on the border (outside the image counts as hole)
    labels, boxes = hole_components(mask)
    pieces, piece_boxes, cut = local_pieces(labels, boxes, 64)
    assert ((pieces > 0) == mask).all() and len(piece_boxes) == pieces.max()
    box_pieces = np.unique(pieces[80:150, 20:100])
    assert len(box_pieces) == 1 and piece_boxes[box_pieces[0] - 1] == (80, 20, 150, 100)
    assert cut == len(piece_boxes) - 1 and box_pieces[0] == len(piece_boxes)  # the pieces first, the whole box last
    assert len(np.unique(pieces[10:40, 5:290])) == 5  # cut along the 64 px grid
    # cut at row 192 and column 256, then each column's two slivers (rows 188-192 and 192-200) merged
    assert len(np.unique(pieces[188:200, 200:300])) == 2
    for k, (top, left, bottom, right) in enumerate(piece_boxes, start=1):
        ys, xs = np.nonzero(pieces == k)
        assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (top, left, bottom, right)
    only_box, one_box = hole_components(labels == labels[100, 50])
    assert local_pieces(only_box, one_box, 64)[0] is only_box  # nothing thin: unchanged
    assert local_pieces(only_box, one_box, 64)[2] == 0
    assert local_pieces(labels, boxes, 64, reach=10)[2] == 0  # within 10 px of known pixels: nothing is thin


def test_a_4000_px_photo():
    img = _stripes(64, 4000)
    mask = np.zeros((64, 4000), bool)
    mask[20:40, 100:160] = True
    mask[30:50, 3900:3990] = True
    out = np.asarray(_model()(Image.fromarray(img), mask, PATCH))
    assert (out[~mask] == img[~mask]).all() and (out[mask] != 0).all()


def test_refine_none_is_the_plain_fill():
    img = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), bool)
    mask[10:30, 5:45] = True
    model = _model()
    default = np.asarray(model(img, mask))
    assert (np.asarray(model(img, mask, InferenceOptions(refine="none"))) == default).all()
    assert (np.asarray(model(img, mask, PATCH)) != default).any()


def test_synthesis_settings_reach_the_refined_fill():
    img = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)  # stripes any setting fills exactly
    mask = np.zeros((48, 64), bool)
    mask[16:32, 20:44] = True
    model = _model()
    default = np.asarray(model(img, mask, PATCH))
    assert (np.asarray(model(img, mask, PATCH, SynthesisSettings())) == default).all()
    changed = np.asarray(model(img, mask, PATCH, SynthesisSettings(membrane=1.0, radius=2)))
    assert (changed != default).any() and (changed[~mask] == img[~mask]).all()


def test_the_membrane_share_of_the_guide():
    """With the guide wholly the membrane, the network's fill no longer matters; with none of it, it does."""
    image = torch.from_numpy(_stripes(48, 64)).permute(2, 0, 1).float() / 255
    hole = torch.zeros(48, 64, dtype=torch.bool)
    hole[16:32, 20:44] = True
    dark, light = torch.full((3, 48, 64), 0.1), torch.full((3, 48, 64), 0.9)
    only = SynthesisSettings(membrane=1.0)
    assert torch.equal(synthesize(image, hole, dark, only), synthesize(image, hole, light, only))
    none = SynthesisSettings(membrane=0.0)
    assert not torch.equal(synthesize(image, hole, dark, none), synthesize(image, hole, light, none))


def test_square_filters_equal_the_2d_pools():
    """Valid sources and patches touching the hole come from `masks.dilate`, the box blur from sums of shifted
    slices: the same values as one 2-D pool."""

    synthesis = importlib.import_module("context_encoder.synthesis")
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        hole = torch.rand(37, 53, generator=gen) < torch.rand(1, generator=gen).item()
        r = int(torch.randint(1, 5, (1,), generator=gen))
        known = F.pad(~hole, (r, r, r, r), value=False)
        valid = (-F.max_pool2d(-known[None, None].float(), 2 * r + 1, 1))[0, 0] > 0.5
        assert torch.equal(synthesis._valid_sources(hole, r), valid)
        near = F.max_pool2d(hole[None, None].float(), 2 * r + 1, 1, r)[0, 0] > 0
        assert torch.equal(synthesis._near(hole, r), near)
        x = torch.rand(3, 37, 53, generator=gen)
        blur = F.avg_pool2d(F.pad(x[None], (r, r, r, r), mode="replicate"), 2 * r + 1, 1)[0]
        torch.testing.assert_close(synthesis._box_blur(x, r), blur)


@pytest.mark.parametrize(
    "change",
    [{"radius": 0}, {"search_dims": -1}, {"membrane": 1.5}, {"iterations": -1}, {"final_vote": "max"}]
    + [{"coarse_holes": "keep"}, {"coherence": 1.0}, {"search_pixels_thick": -1}],
)
def test_settings_out_of_range_are_refused(change):
    with pytest.raises(ValueError, match=next(iter(change))):
        SynthesisSettings(**change)


def test_coarse_holes_shrink_or_grow():
    """A coarse pixel is in a growing hole when any of its 2x2 finer pixels is (a max pool with ceil mode), in a
    shrinking one when all are (a min pool; the odd last row and column count their pixels only); a thin stroke
    closes as it shrinks, and the finest halving grows for a level that is only voted."""
    synthesis = importlib.import_module("context_encoder.synthesis")
    gen = torch.Generator().manual_seed(3)
    for h, w in ((8, 10), (9, 7), (1, 5)):
        hole = torch.rand(h, w, generator=gen) < 0.6
        grown = F.max_pool2d(hole[None, None].float(), 2, ceil_mode=True)[0, 0] > 0
        shrunk = -F.max_pool2d(-hole[None, None].float(), 2, ceil_mode=True)[0, 0] > 0
        assert torch.equal(synthesis._halve_hole(hole), grown)
        assert torch.equal(synthesis._halve_hole(hole, shrink=True), shrunk)
    stroke = torch.zeros(64, 64, dtype=torch.bool)
    stroke[20:22] = True  # 2 px wide, on one row of 2x2 cells: closes at the second halving
    stroke[41:43] = True  # straddles two rows of cells: closes at the first
    grow = synthesis._hole_pyramid(stroke, 8, 1)
    shrink = synthesis._hole_pyramid(stroke, 8, 1, shrink=True)
    assert [int(h.sum()) for h in grow[:3]] == [256, 96, 32]
    assert [int(h.sum()) for h in shrink[:3]] == [256, 32, 0]
    first = synthesis._hole_pyramid(stroke, 8, 1, shrink=True, grow_first=True)
    assert torch.equal(first[1], grow[1]) and int(first[2].sum()) < int(grow[2].sum())


def test_a_hole_that_closes_at_the_coarse_levels_is_still_filled():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 96, 96, generator=gen)
    hole = torch.zeros(96, 96, dtype=torch.bool)
    hole[40:41, 10:80] = True  # one pixel wide: gone after the first halving
    guide = torch.zeros_like(image)
    out = synthesize(image, hole, guide, SynthesisSettings(coarse_side=8))
    assert torch.equal(out[:, ~hole], image[:, ~hole])
    assert bool((out[:, hole] > 0).all())  # copied from the photo (all positive), not the guide's zeros


def test_search_costs_are_patch_distances_plus_the_guide_term():
    """The search's cost, from one table row per source: mean squared patch difference plus guide_weight times the
    mean squared difference of low frequencies, infinite for sources touching the hole; compared by principal
    components, a full basis keeps every cost and a short one keeps the leading part of each patch."""
    synthesis = importlib.import_module("context_encoder.synthesis")
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 30, 41, generator=gen)
    hole = torch.zeros(30, 41, dtype=torch.bool)
    hole[9:17, 12:30] = True
    r, weight = 2, 4.0
    estimate = torch.rand(3, 30, 41, generator=gen)
    patches, lf = synthesis._patches(image, r), synthesis._box_blur(image, r).reshape(3, -1).t()
    weight_map = torch.rand(30, 41, generator=gen) * 8  # a guide weight per target patch's centre
    for guide in (weight_map, weight):  # the number last: the checks below use its level
        level = synthesis._Level(image, hole, r, dims=0, guide_weight=guide)
        targets = level._target_rows(estimate)
        src = torch.randint(0, 30 * 41, (level.targets,), generator=gen)
        cost = level._cost(targets, level._target_norms(targets), src)
        target_patches = synthesis._patches(estimate, r)[level.target_index]
        lf_distance = ((lf[level.target_index] - lf[src]) ** 2).mean(1)
        w = guide if isinstance(guide, float) else guide.flatten()[level.target_index]
        expected = ((target_patches - patches[src]) ** 2).mean(1) + w * lf_distance
        valid = level.valid[src]
        assert bool(valid.any()) and bool((~valid).any())
        torch.testing.assert_close(cost[valid], expected[valid], rtol=1e-4, atol=1e-5)
        assert bool(torch.isinf(cost[~valid]).all())

    full = synthesis._Level(image, hole, r, dims=3 * (2 * r + 1) ** 2 - 1, guide_weight=weight)
    torch.testing.assert_close(full.basis.t() @ full.basis, torch.eye(full.basis.shape[1]), atol=1e-4, rtol=0)
    short = synthesis._Level(image, hole, r, dims=8, guide_weight=weight)
    torch.testing.assert_close(short.table[:, :8], patches @ short.basis * short.patch_scale, atol=1e-5, rtol=1e-4)
    rows = short._target_rows(estimate)
    short_cost = short._cost(rows, short._target_norms(rows), src)
    assert bool((short_cost[valid] <= cost[valid] + 1e-5).all())  # a projection never lengthens a difference


@pytest.mark.parametrize("searched", [True, False])
def test_the_mean_vote_in_chunks_equals_the_plain_average(monkeypatch, searched):
    """Each hole pixel gets the mean of what the target patches covering it copy there, whatever the chunk size."""
    synthesis = importlib.import_module("context_encoder.synthesis")
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(3, 14, 19, generator=gen)
    hole = torch.zeros(14, 19, dtype=torch.bool)
    hole[0:4, 2:7] = True
    hole[8:12, 12:18] = True
    r, width = 1, 19
    level = synthesis._Level(image, hole, r, dims=0 if searched else -1)
    field = level.random_field(gen)
    targets = set(level.target_index.tolist())
    expected = image.clone()
    for y, x in hole.nonzero().tolist():
        copies = [
            image[:, field[(y - dy) * width + x - dx] // width + dy, field[(y - dy) * width + x - dx] % width + dx]
            for dy in range(-r, r + 1)
            for dx in range(-r, r + 1)
            if 0 <= y - dy < 14 and 0 <= x - dx < 19 and (y - dy) * width + x - dx in targets
        ]
        expected[:, y, x] = torch.stack(copies).mean(0)
    for elements in (9, 50, 1 << 20):
        monkeypatch.setattr(synthesis, "VOTE_ELEMENTS", elements)
        level = synthesis._Level(image, hole, r, dims=0 if searched else -1)
        torch.testing.assert_close(level.vote(field), expected)
        torch.testing.assert_close(level.vote(field), expected)  # again: from the kept geometry where searched


def test_slivers_of_a_cut_stroke_merge_but_never_across_holes_or_beyond_a_cell():
    mask = np.zeros((128, 128), bool)
    mask[60:68, 10:120] = True  # a horizontal stroke across the row-64 grid line: 2 rows of slivers
    mask[100:104, 60:68] = True  # a separate small hole across the column-64 line
    labels, _ = hole_components(mask)
    cut, cut_boxes = split_holes(labels, 32)
    merged, boxes = merge_pieces(labels, cut, cut_boxes, 32)
    assert ((merged > 0) == mask).all() and merged.max() == len(boxes) < len(cut_boxes)
    for k, (top, left, bottom, right) in enumerate(boxes, start=1):
        ys, xs = np.nonzero(merged == k)
        assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (top, left, bottom, right)
        assert max(bottom - top, right - left) <= 32
        assert len(np.unique(labels[merged == k])) == 1  # one hole per piece
    assert len(np.unique(merged[60:68, 10:120])) == 4  # 110 px of stroke in pieces of at most 32 px
    assert len(np.unique(merged[100:104, 60:68])) == 1  # the small hole's two halves are one piece again


def test_the_options_synthesis_settings_are_the_ones_used():
    """`InferenceOptions.synthesis` configures the patch refinement; the call's `synthesis` argument overrides it."""
    img = _stripes(48, 64)
    mask = np.zeros((48, 64), bool)
    mask[16:30, 20:40] = True
    model = _model()
    coarse = SynthesisSettings(radius=2, coarse_iterations=1, iterations=0)
    via_options = np.asarray(model(img, mask, InferenceOptions(refine="patch", synthesis=coarse)))
    via_argument = np.asarray(model(img, mask, PATCH, coarse))
    assert (via_options == via_argument).all()
    assert (via_options != np.asarray(model(img, mask, PATCH))).any()  # the defaults give another fill
    assert (np.asarray(model.method(PATCH, coarse)(img, mask)) == via_options).all()


def _coherent_share(field: Tensor, level) -> float:
    """The share of hole targets whose right-hand neighbour copies from the pixel right of their source."""
    at = level.target_index
    right = at + 1
    keep = (right % level.width != 0) & level.hole.flatten()[at]
    return float((field[right[keep]] == field[at[keep]] + 1).float().mean())


def test_coherence_makes_neighbours_copy_one_piece():
    """A flat hole in a random texture: every source is about as far from it as any other, so without coherence
    each target keeps whatever its own search found; charging continued copies less makes neighbours continue
    each other's."""
    synthesis = importlib.import_module("context_encoder.synthesis")
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 64, 64, generator=gen)
    hole = torch.zeros(64, 64, dtype=torch.bool)
    hole[20:44, 16:48] = True
    estimate = torch.where(hole, torch.full_like(image, 0.5), image)
    level = synthesis._Level(estimate, hole, 2, dims=0)
    shares = {}
    for coherence in (0.0, 0.5):
        g = torch.Generator().manual_seed(1)
        field = level.random_field(g)
        for _ in range(3):
            field = level.search(field, estimate, g, coherence)
        shares[coherence] = _coherent_share(field, level)
    assert shares[0.5] > shares[0.0] + 0.15, shares


@pytest.fixture
def searches(monkeypatch) -> list[tuple[int, float]]:
    """(level height, coherence) of every `_Level.search` call made while the test runs, in order."""
    synthesis = importlib.import_module("context_encoder.synthesis")
    calls = []
    search = synthesis._Level.search

    def spy(self, field, estimate, gen, coherence=0.0):
        calls.append((self.height, coherence))
        return search(self, field, estimate, gen, coherence)

    monkeypatch.setattr(synthesis._Level, "search", spy)
    return calls


def test_coherence_only_where_the_full_resolution_level_is_a_mean_vote(searches):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 96, 96, generator=gen)
    hole = torch.zeros(96, 96, dtype=torch.bool)
    hole[30:60, 20:70] = True
    for settings, expected in [
        # every level searched, each pixel copying its own patch's source; then a mean vote at full resolution
        (SynthesisSettings(coarse_side=16, margin=1.0), set()),
        (SynthesisSettings(coarse_side=16, margin=1.0, final_vote="mean"), {96}),
        # the full resolution only voted: the level below it
        (SynthesisSettings(coarse_side=16, margin=1.0, search_pixels=96 * 96 // 2), {48}),
        (SynthesisSettings(coarse_side=16, margin=1.0, search_pixels=96 * 96 // 2, coherence=0.0), set()),
    ]:
        searches.clear()
        synthesize(image, hole, image, settings)
        assert {h for h, c in searches if c} == expected, settings
        assert all(c in (0.0, settings.coherence) for _, c in searches)


def test_thick_holes_search_up_to_their_own_size(searches):
    """A region with a thick hole (a box, not a stroke) is searched only up to `search_pixels_thick` pixels and
    voted above, a region of thin holes up to `search_pixels`."""
    image = torch.rand(3, 160, 160, generator=torch.Generator().manual_seed(0))
    box = torch.zeros(160, 160, dtype=torch.bool)
    box[40:120, 40:120] = True  # its centre is 40 px from the context: thick
    stroke = torch.zeros(160, 160, dtype=torch.bool)
    stroke[70:90, 10:150] = True
    settings = SynthesisSettings(coarse_side=32, margin=1.0, search_pixels_thick=160 * 160 // 2)
    for hole, finest in ((box, 80), (stroke, 160)):
        searches.clear()
        synthesize(image, hole, image, settings)
        assert max(h for h, _ in searches) == finest  # the largest level searched
