"""Coarse-to-fine patch synthesis guided by a network fill: texture from the photo, structure from the network.

Beyond the paper, which names the idea in its conclusion (context encoders as "initialization for
non-parametric methods"); Yang et al. (CVPR 2017) follow it with neural patch synthesis. Here the
synthesis is the classical one: the expectation-maximisation patch synthesis of Wexler, Shechtman
and Irani (2007) over an image pyramid, with the randomised nearest-neighbour search of PatchMatch
(Barnes et al. 2009), run in vectorised form (every target patch at once) with torch.

What the network adds: at the coarsest level the hole starts as the guide instead of noise or a smear,
and at every level each source patch is charged for how far its low frequencies (a box blur the size of
a patch) lie from the guide's, `guide_weight` times in thin holes (brush strokes, where the network sees
its context at 1:1 and is right about colour and layout) and `guide_weight_thick` times in thick ones (a
box over an object, where the network's fill is a smooth average and a strong pull towards it copies fog).
Each finer level starts from the coarser level's patch field voted with its own, sharper patches, and the
last vote copies each pixel from its own patch's source (the mean of the covering patches where that level
was too large to search), so the layout is the network's (through the coarse levels) and the texture the
photo's. The guide is the network's fill, optionally averaged with the harmonic
membrane over the hole's border (`membrane`; off by default, see `SynthesisSettings`). Known pixels are
never changed.

Cost: the search runs only on levels with at most `search_pixels` pixels; above that the
nearest-neighbour field is upsampled and the patches are voted without a new search, so the work at
full resolution is one gather per pixel and patch offset. Patches are compared by their leading
principal components (`search_dims`), which PatchTable-style methods (Barnes et al. 2015) also do to
shrink the per-candidate work; the table of a level is then one small convolution of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .holes import dilate, harmonic_fill, hole_components, thick_holes


@dataclass(frozen=True)
class SynthesisSettings:
    """Knobs of the synthesis; the defaults are the measured choice (docs/results/fullres.md)."""

    # Chosen by LPIPS and PSNR together on the tuning photos (20 of imagenet-photos/tuning, strokes and boxes,
    # `benchmarks/fullres.py --sets imagenet-tuning`; docs/results/fullres.md), never on a test set. The previous
    # defaults (2 iterations, the coarser estimate upsampled, low frequencies reset to the guide's, one guide
    # weight) made strokes grain and boxes fog: LPIPS-alex 0.106 / 0.631 on strokes / boxes against 0.089 / 0.477.
    # patches are (2r+1)^2 pixels. 3 -> 2 once copies were coherent: LPIPS-alex / vgg and PSNR, 768 px tuning photos,
    # strokes 0.074 / 0.098 / 21.32 dB -> 0.073 / 0.097 / 21.51 dB, boxes 0.466 / 0.485 -> 0.473 / 0.485 (+0.04 dB);
    # ImageNet tuning photos, strokes 0.087 / 0.110 -> 0.087 / 0.108 (+0.09 dB), boxes 0.464 / 0.473 -> 0.453 / 0.468
    # (+0.06 dB); and a third faster (radius 1: 0.084 / 0.097 on the 768 px strokes; 4: 0.075 / 0.102)
    radius: int = 2
    # px: the pyramid stops when the hole region's longer side is this small (64 -> 16 with shrinking holes: boxes
    # LPIPS-alex 0.472 -> 0.467; with growing holes a level that small has too few source patches to be made)
    coarse_side: int = 16
    # a coarser level's hole: "shrink", a coarse pixel is in it when all of its 2x2 finer pixels are (PyPatchMatch's
    # masked downsampling: a thin hole closes at the coarse levels, where the layout is set from the context
    # around it and the guide), or "grow", when any of them is (the previous rule). Tuning photos, strokes /
    # boxes, LPIPS-alex: 0.087 / 0.477 growing, 0.086 / 0.467 shrinking (unguided 0.111 -> 0.098 on strokes)
    coarse_holes: str = "shrink"
    coarse_iterations: int = 6  # EM iterations at the coarsest level
    # EM iterations at the finer levels that are searched (2 -> 4: LPIPS-alex 0.093 -> 0.089 on strokes, PSNR
    # +0.13 dB; 6 gained nothing more)
    iterations: int = 4
    guide_weight: float = 4.0  # weight of the low-frequency distance to the network fill
    guide_decay: float = 1.0  # the guide weight is multiplied by this at each level finer than the coarsest
    # in a thick hole (one with a pixel farther than `guide_reach` px from every known pixel: a box over an
    # object, not a brush stroke) the network's fill is a smooth average (fog), a poor guide for which patches
    # to copy: there the guide weight is `guide_weight_thick` instead (boxes: 4 -> 0.5, LPIPS-alex 0.506 -> 0.477,
    # LPIPS-vgg 0.491 -> 0.479, PSNR -0.27 dB; strokes, all thin, unchanged; a weight falling with the distance
    # to the context did less, 0.496, since the ring of strong guide along a box's edge stays fog)
    guide_weight_thick: float = 0.5
    guide_reach: int = 32  # px at full resolution: the model's input / 4, the thin-hole reach of `inpaint`
    search_pixels: int = 250_000  # levels with more pixels get `large_iterations` instead of `iterations`
    # `search_pixels` where a thick hole is in the region: a box's layout is set at the coarser levels, and the
    # finer ones are voted coherently from the finest one searched (tuning photos, boxes, LPIPS-alex / vgg: 0.465 /
    # 0.476 -> 0.462 / 0.469 at their own size, 0.495 / 0.493 -> 0.470 / 0.486 at 768 px, -0.2 dB; strokes lost
    # 0.007 and more so, and keep `search_pixels`; 30,000 and 120,000 px did no better; docs/results/fullres.md)
    search_pixels_thick: int = 60_000
    large_iterations: int = 0  # EM iterations on levels above `search_pixels` (0: voted from the upsampled field)
    # where the full-resolution level is a mean vote (see `final_vote`), on the finest level that is searched a
    # candidate that continues a neighbour's copy is charged (1 - coherence) of its cost: neighbours then copy whole
    # pieces of the photo, and the mean vote keeps their texture instead of averaging many pieces into a smooth smear
    # (768 px tuning photos, strokes: LPIPS-alex / vgg 0.083 / 0.105 -> 0.074 / 0.098, -0.26 dB; where every level
    # is searched each pixel copies its own source, which is sharp already, and coherence only cost PSNR)
    coherence: float = 0.5
    margin: float = 0.5  # context around the holes' bounding box, as a fraction of its longer side
    # at full resolution: "mean" of the covering patches | "copy" each pixel's own source | "auto": copy where
    # that level was searched, the mean where its field was only upsampled (above `search_pixels`), whose copies
    # are off by up to a pixel (768 px tuning photos, voted level: strokes LPIPS-alex 0.105 copied, 0.084 mean,
    # PSNR +0.5 dB; searched ImageNet tuning photos: 0.089 copied, 0.097 mean)
    final_vote: str = "auto"
    # a finer level starts from "vote": the coarser level's field voted with this level's patches (the photo's
    # detail at this scale), or "image": the coarser estimate upsampled (smooth, so the search prefers flat
    # patches: boxes LPIPS-alex 0.542 with "image", 0.515 with "vote")
    upsample: str = "vote"
    # the vote of the search iterations on levels finer than the coarsest: "mean" | "copy" (copy: no better)
    em_vote: str = "mean"
    # px: box radius below which the fill's low frequencies are reset to the guide's (0: off). 1 kept the
    # network's blur under a fine grain of copied pixels: off, LPIPS-alex 0.106 -> 0.095 on strokes, 0.628 -> 0.542
    # on boxes, for 0.3 and 0.1 dB of PSNR
    restore_low: int = 0
    # share of the harmonic membrane over the hole's border in the guide (the rest is the network's fill):
    # 0.5 helped while the network filled strokes in windows shrunk to half (20.19 to 21.56 dB on the tuning
    # photos at Kodak's size); with windows at 1:1 the network's fill alone is the better guide (tuning photos,
    # strokes, seeds 0 and 7: 21.38-22.02 dB with 0, 21.17-21.83 dB with 0.5; docs/results/fullres.md)
    membrane: float = 0.0
    # patches are compared by their first `search_dims` principal components (of each level's source patches)
    # instead of all 3 (2r+1)^2 values: the search's gathers shrink to a fraction and the tables come from one
    # convolution instead of cutting every patch (0: compare whole patches)
    # (tuning photos, 768 px strokes: 22.08 dB / 5.03% with whole patches and with 32 components, 22.06 / 5.04%
    # with 24; on their own size 21.66 / 5.36%, 21.63 / 5.38%, 21.61 / 5.39%; docs/results/fullres.md). 29: with
    # the 3 low-frequency columns a table row is 32 floats, a width the convolution making the table is fast at
    search_dims: int = 29

    def __post_init__(self) -> None:
        checks = {
            "radius": self.radius >= 1,
            "coarse_side": self.coarse_side >= 1,
            "coarse_iterations": self.coarse_iterations >= 1,
            "iterations": self.iterations >= 0,
            "large_iterations": self.large_iterations >= 0,
            "guide_weight": self.guide_weight >= 0,
            "guide_decay": self.guide_decay >= 0,
            "guide_weight_thick": self.guide_weight_thick >= 0,
            "guide_reach": self.guide_reach >= 1,
            "search_pixels": self.search_pixels >= 0,
            "search_pixels_thick": self.search_pixels_thick >= 0,
            "coherence": 0 <= self.coherence < 1,
            "margin": self.margin >= 0,
            "restore_low": self.restore_low >= 0,
            "membrane": 0 <= self.membrane <= 1,
            "search_dims": self.search_dims >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SynthesisSettings.{name} is out of range: {getattr(self, name)}")
        if self.upsample not in ("vote", "image"):
            raise ValueError(f"SynthesisSettings.upsample must be 'vote' or 'image', got '{self.upsample}'")
        if self.em_vote not in ("copy", "mean"):
            raise ValueError(f"SynthesisSettings.em_vote must be 'copy' or 'mean', got '{self.em_vote}'")
        if self.coarse_holes not in ("shrink", "grow"):
            raise ValueError(f"SynthesisSettings.coarse_holes must be 'shrink' or 'grow', got '{self.coarse_holes}'")
        if self.final_vote not in ("copy", "mean", "auto"):
            raise ValueError(f"SynthesisSettings.final_vote must be 'copy', 'mean' or 'auto', got '{self.final_vote}'")


def synthesize(image: Tensor, hole: Tensor, guide: Tensor, settings: SynthesisSettings | None = None, seed: int = 0):
    """Fill `hole` (H, W) bool of `image` (3, H, W) in [0, 1] with patches of the image, guided by `guide`.

    `guide` (3, H, W) is the network's fill (its values outside the hole are ignored). Returns the filled
    (3, H, W) image; pixels outside the hole are `image`'s own. Passing one float tensor as both `image` and
    `guide` (the photo with the network's fill in the hole) fills it in place and returns it.
    """
    s = settings or SynthesisSettings()
    if not bool(hole.any()):
        return image.clone()
    if bool(hole.all()):
        raise ValueError("the hole covers the whole image: there are no source patches")
    top, left, bottom, right = _crop_box(hole, s.margin)
    for box in ((top, left, bottom, right), (0, 0, *hole.shape)):  # the crop, else the whole image
        top, left, bottom, right = box
        if int(_valid_sources(hole[top:bottom, left:right], s.radius).sum()) >= 16:
            break
    else:
        return torch.where(hole[None], guide, image)  # no patches to copy: the network's fill as it is
    crop, h = image[:, top:bottom, left:right], hole[top:bottom, left:right]
    if guide is image and image.dtype == torch.float32 and not s.membrane and not s.restore_low:
        # the caller's image already holds the guide in the hole (as `Inpainter` passes it): the hole is filled in
        # place, and no copy of the photo is made (a 48 MP photo is 576 MB of floats)
        _synthesize_crop(crop, h, crop, s, seed, in_place=True)
        return image
    x = crop.float()
    g = guide[:, top:bottom, left:right].float()
    if s.membrane:
        g = torch.lerp(g, harmonic_fill(x[None], h[None, None])[0], s.membrane)
    guided = torch.where(h[None], g, x)
    filled = _synthesize_crop(x, h, guided, s, seed)
    if s.restore_low:  # structure from the guide: its low frequencies, the synthesis's high ones
        filled = filled + _box_blur(guided - filled, s.restore_low)
    out = image.clone()
    out[:, top:bottom, left:right] = torch.where(h[None], filled.to(image.dtype), crop)
    return out


def _crop_box(hole: Tensor, margin: float) -> tuple[int, int, int, int]:
    ys, xs = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
    top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    pad = max(16, math.ceil(margin * max(bottom - top, right - left)))
    height, width = hole.shape
    return max(0, top - pad), max(0, left - pad), min(height, bottom + pad), min(width, right + pad)


def _hole_pyramid(hole: Tensor, coarse_side: int, radius: int, shrink: bool = False, grow_first: bool = False):
    """The hole at each pyramid level, fine to coarse (a list of tensors); a coarse pixel is in the hole when any
    of its fine pixels is, with `shrink` when all of them are (except for the first halving with `grow_first`).
    It stops at `coarse_side`, or earlier where a coarser level would keep fewer than 16 source patches."""
    holes = [hole]
    while max(holes[-1].shape) > coarse_side and min(holes[-1].shape) >= 4 * radius:
        h2 = _halve_hole(holes[-1], shrink and not (grow_first and len(holes) == 1))
        if int(_valid_sources(h2, radius).sum()) < 16:
            break
        holes.append(h2)
    return holes


def _pyramid(image: Tensor, holes: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """[(image, hole)] from fine to coarse, at the sizes of `holes` (from `_hole_pyramid`)."""
    levels = [(image, holes[0])]
    for h2 in holes[1:]:
        x2 = F.interpolate(levels[-1][0][None], size=h2.shape, mode="bilinear", antialias=True, align_corners=False)
        levels.append((x2[0], h2))
    return levels


def _halve_hole(hole: Tensor, shrink: bool = False) -> Tensor:
    """(ceil(H/2), ceil(W/2)) bool: a coarse pixel is in the hole when any of its 2x2 fine pixels is (a max pool
    with ceil_mode, without its float copy of the mask), with `shrink` when every one of them inside the image is."""
    height, width = hole.shape
    # odd sizes: the last row or column of cells has one fine pixel, padded with its copy (edges replicated, bool)
    if height % 2:
        hole = torch.cat([hole, hole[-1:]], 0)
    if width % 2:
        hole = torch.cat([hole, hole[:, -1:]], 1)
    cells = hole.reshape(-(-height // 2), 2, -(-width // 2), 2)
    return cells.all(3).all(1) if shrink else cells.any(3).any(1)


def _valid_sources(hole: Tensor, r: int) -> Tensor:
    """(H, W) bool: the patch of radius r centred there lies wholly in the known pixels (and the image)."""
    return _inside_image(~_near(hole, r), r)


def _inside_image(valid: Tensor, r: int) -> Tensor:
    """`valid` (H, W) bool with the r px border cleared: a patch centred there would leave the image."""
    if r:
        valid[:r], valid[-r:], valid[:, :r], valid[:, -r:] = False, False, False, False
    return valid


def _near(hole: Tensor, r: int) -> Tensor:
    """(H, W) bool: within r px (Chebyshev) of a hole pixel, i.e. the patch centred there touches the hole."""
    return torch.from_numpy(dilate(hole.numpy(), r))


def _box_blur(x: Tensor, r: int) -> Tensor:
    """Mean over (2r+1)^2 squares of (C, H, W), edges replicated, as a row pass and a column pass."""
    # sums of shifted slices, in place: several times faster than avg_pool2d or a depthwise convolution on a
    # CPU, with no temporaries beyond the padded image (a convolution's were four times avg_pool2d's at 4 MP)
    height, width = x.shape[-2:]
    padded = F.pad(x[None], (r, r, 0, 0), mode="replicate")[0]
    rows = padded[..., :width].clone()
    for i in range(1, 2 * r + 1):
        rows += padded[..., i : i + width]
    padded = F.pad(rows[None], (0, 0, r, r), mode="replicate")[0]
    out = padded[..., :height, :].clone()
    for i in range(1, 2 * r + 1):
        out += padded[..., i : i + height, :]
    return out.mul_(1 / (2 * r + 1) ** 2)


def _synthesize_crop(
    image: Tensor, hole: Tensor, guided: Tensor, s: SynthesisSettings, seed: int, in_place: bool = False
) -> Tensor:
    """`guided` is the image with the guide in the hole; returns the synthesised image (hole filled), with
    `in_place` `guided` itself."""
    gen = torch.Generator().manual_seed(seed)
    is_thick = _thick_pixels(hole, s)
    search_pixels = s.search_pixels if is_thick is None else s.search_pixels_thick
    # a finest level that is only voted reads each target's source from its parent, which must then be a target too:
    # its hole grows into the next level
    voted_finest = hole.numel() > search_pixels and not s.large_iterations
    holes = _hole_pyramid(hole, s.coarse_side, s.radius, s.coarse_holes == "shrink", grow_first=voted_finest)
    # which levels search: the coarsest, those of at most `search_pixels` pixels, all with `large_iterations`
    small = [level == len(holes) - 1 or h.numel() <= search_pixels for level, h in enumerate(holes)]
    # the guide weights of the levels that compare patches, made and their full-resolution map gone before the
    # image pyramid is built (a 48 MP photo's map is 192 MB)
    weights = _guide_weights(is_thick, s)
    del is_thick
    level_weights = {
        level: _level_weights(weights, tuple(h.shape))
        for level, h in enumerate(holes)
        if small[level] or s.large_iterations > 0
    }
    del weights
    # EM iterations per level: the coarsest level's own count, then by whether the level is searched
    level_iterations = [
        s.coarse_iterations if level == len(holes) - 1 else s.iterations if small[level] else s.large_iterations
        for level in range(len(holes))
    ]
    # coherence matters where the full-resolution level is a mean vote (of a field only upsampled from the finest
    # searched level), not where each pixel copies its own patch's source
    mean_final = s.final_vote == "mean" or (s.final_vote == "auto" and level_iterations[0] == 0)
    coherent_level = min(level_weights) if mean_final else -1
    # one pyramid of the image with the guide in the hole: the hole's own pixels never leak into a level
    levels = _pyramid(guided, holes)
    field, estimate, coarse_shape, field_voted = None, None, (0, 0), False
    for level in range(len(levels) - 1, -1, -1):
        x, h = levels[level]
        searched = level in level_weights
        weight = 0.0  # a level that is not searched compares no patches
        if searched:
            weight = level_weights.pop(level) * s.guide_decay ** (len(levels) - 1 - level)
        level_s = _Level(x, h, s.radius, s.search_dims if searched else -1, weight)
        into = x if in_place and level == 0 else None  # where this level's votes go (else a copy of `x`)
        iterations = level_iterations[level]
        if field is None:
            field = level_s.random_field(gen)
            estimate = x
        else:
            field = level_s.repair(level_s.upsample_field(field, coarse_shape), gen)
            field_voted = s.upsample == "vote"
            if field_voted and (level == 0 or iterations > 0):  # an estimate no search or output reads: not voted
                estimate = level_s.vote(field, into=into)
            elif not field_voted:
                up = F.interpolate(estimate[None], size=h.shape, mode="bilinear", align_corners=False)[0]
                estimate = torch.where(h[None], up, x)
        coarse_shape = tuple(h.shape)
        if level_s.targets == 0:  # the hole closed at this level: nothing to search
            iterations = 0
        copy_em = s.em_vote == "copy" and level < len(levels) - 1
        for _ in range(iterations):
            field = level_s.search(field, estimate, gen, s.coherence if level == coherent_level else 0.0)
            estimate = level_s.vote(field, copy=copy_em, into=into)
        copy = level == 0 and (s.final_vote == "copy" or (s.final_vote == "auto" and iterations > 0))
        if copy or (iterations == 0 and not field_voted):
            estimate = level_s.vote(field, copy=copy, into=into)
        if level:
            levels[level] = None  # type: ignore[call-overload]  # finer levels read its field, not its image
    if in_place and estimate is not guided:
        guided[:, hole] = estimate[:, hole]
        return guided
    return estimate


def _thick_pixels(hole: Tensor, s: SynthesisSettings) -> np.ndarray | None:
    """(H, W) bool: the pixels of thick holes (a hole with a pixel farther than `guide_reach` px from every known
    one: a box over an object, not a brush stroke; the thin/thick rule of `inpaint.local_pieces`), or None where
    there is none, or where the settings treat thick holes like thin ones."""
    if s.guide_weight_thick == s.guide_weight and s.search_pixels_thick == s.search_pixels:
        return None
    labels, boxes = hole_components(hole.numpy())
    thick = thick_holes(labels, len(boxes), s.guide_reach)
    return thick[labels] if thick.any() else None


def _guide_weights(is_thick: np.ndarray | None, s: SynthesisSettings) -> float | Tensor:
    """The guide weight at full resolution: a number where it is the same everywhere, else an (H, W) map,
    `guide_weight_thick` on thick holes (`is_thick`, from `_thick_pixels`) and `guide_weight` elsewhere."""
    if is_thick is None or s.guide_weight_thick == s.guide_weight:
        return s.guide_weight
    weights = np.where(is_thick, np.float32(s.guide_weight_thick), np.float32(s.guide_weight))  # float32 at once
    return torch.from_numpy(weights)


def _level_weights(weights: float | Tensor, shape: tuple[int, int]) -> float | Tensor:
    """Full-resolution guide weights at a pyramid level's size (area average)."""
    if not isinstance(weights, Tensor):
        return weights
    return F.interpolate(weights[None, None], size=shape, mode="area")[0, 0]


VOTE_ELEMENTS = 1 << 20  # a mean vote handles about this many (pixel, patch offset) pairs at a time


class _Level:
    """One pyramid level: its target patches (those touching the hole) and its valid source patches.

    Each source patch is one row of a table made once per level: its first principal components (or all its
    (2r+1)^2 * 3 values) and its low frequencies, scaled so that the squared distance between a target's row
    and a source's is the search's cost. Target rows are cut once per iteration from the estimate, so comparing
    a target with a candidate source is one row gather and a dot product.
    """

    def __init__(self, image: Tensor, hole: Tensor, radius: int, dims: int = 0, guide_weight: float | Tensor = 0.0):
        """`image` (3, H, W) holds the guide in the hole, `hole` (H, W) marks it. Patches are compared by
        their first `dims` principal components (0: all their values; -1: no search on this level), plus
        `guide_weight` (a number, or an (H, W) map read at each target patch's centre) times the distance of
        their low frequencies to the guide's."""
        self.r = r = radius
        self.height, self.width = hole.shape
        near = _near(hole, r)  # patches that touch the hole
        self.valid = _inside_image(~near, r).flatten()  # per pixel: can a patch centred there be a source?
        self._valid_index: Tensor | None = None
        self.hole = hole
        self.searched = dims >= 0
        # int32 on a level that is not searched (half the memory of a 48 MP photo's target indices)
        self.target_index = _flat_nonzero(near.flatten(), torch.int64 if self.searched else torch.int32)
        self.targets = len(self.target_index)
        self._neighbours: dict[tuple[int, int], Tensor] = {}
        self._target_index_cut: Tensor | None = None  # `_cut_index` of the targets, kept
        self._hole_pixels: tuple[Tensor, Tensor] | None = None  # `vote`'s (rows, columns) of the hole, kept
        self._geometry: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # `vote`'s, kept on searched levels
        self.image = image
        self.basis = None  # (3 (2r+1)^2, dims): the principal directions patches are compared along
        if dims < 0:
            return
        # one row per source: its patch and its low frequencies, scaled so that the cost `search` minimises (mean
        # squared patch difference + the target's guide weight x mean squared low-frequency difference) comes from
        # one dot product of rows and the two parts' norms; a target's row carries the guide's low frequencies at
        # the target, times its weight
        size = 3 * (2 * r + 1) ** 2
        self.patch_scale, self.lf_scale = size**-0.5, 3**-0.5
        if 0 < dims < size:
            sample = self.valid_index[torch.linspace(0, len(self.valid_index) - 1, 4096).long().unique()]
            self.basis = _principal_directions(self._cut(image, sample), dims)
            # a channel's low frequency (box blur of radius r) is its mean over the patch: a projection too, so
            # the whole table is one convolution
            means = torch.kron(torch.eye(3), torch.full(((2 * r + 1) ** 2, 1), 1 / (2 * r + 1) ** 2))  # (size, 3)
            self.scaled_basis = self.basis * self.patch_scale
            self.table = _projected_patches(image, r, torch.cat([self.scaled_basis, means * self.lf_scale], 1))
        else:
            lf = _box_blur(image, r).reshape(3, -1).t()  # (H*W, 3)
            self.table = torch.cat([_patches(image, r) * self.patch_scale, lf * self.lf_scale], 1)
        if isinstance(guide_weight, Tensor):
            self.target_weight = guide_weight.flatten().index_select(0, self.target_index).float()
        else:
            self.target_weight = torch.full((self.targets,), float(guide_weight))
        lf = self.table[:, -3:].index_select(0, self.target_index)
        self.guide_lf = lf * self.target_weight[:, None]
        self.guide_lf_norms = (lf**2).sum(1) * self.target_weight
        norms = (self.table[:, :-3] ** 2).sum(1)
        self.patch_norms = torch.where(self.valid, norms, torch.full_like(norms, math.inf))  # no invalid source
        self.lf_norms = (self.table[:, -3:] ** 2).sum(1)

    @property
    def valid_index(self) -> Tensor:
        """The flat indices of the valid sources (int32 on a level that is not searched: a quarter of the memory
        of int64 per pixel at 48 MP)."""
        if self._valid_index is None:
            self._valid_index = _flat_nonzero(self.valid, torch.int64 if self.searched else torch.int32)
        return self._valid_index

    def random_field(self, gen: torch.Generator) -> Tensor:
        """(H*W,) flat source index per pixel: random valid sources."""
        pick = torch.randint(0, len(self.valid_index), (self.height * self.width,), generator=gen)
        return self.valid_index[pick]

    def upsample_field(self, field: Tensor, coarse_shape: tuple[int, int]) -> Tensor:
        """A coarser level's field at this level's size: each source doubled plus the pixel's offset in its cell.

        On a level that is not searched only the target patches' sources are read (by the vote), so only they
        are computed, as int32: the parent of a target is a target of the coarser level (a hole pixel's parent
        is a hole pixel there, and r px here are at most r px there), which holds its source."""
        ch, cw = coarse_shape
        if not self.searched:
            out = torch.zeros(self.height * self.width, dtype=torch.int32)
            for start in range(0, self.targets, 1 << 20):
                at = self.target_index[start : start + (1 << 20)]
                yy, xx = at // self.width, at % self.width
                src = field[(yy // 2).clamp(max=ch - 1) * cw + (xx // 2).clamp(max=cw - 1)].long()
                sy = (2 * (src // cw) + yy % 2).clamp(0, self.height - 1)
                sx = (2 * (src % cw) + xx % 2).clamp(0, self.width - 1)
                out[at] = (sy * self.width + sx).int()
            return out
        yy, xx = torch.meshgrid(torch.arange(self.height), torch.arange(self.width), indexing="ij")
        cy, cx = (yy // 2).clamp(max=ch - 1), (xx // 2).clamp(max=cw - 1)
        src = field[(cy * cw + cx).flatten()]
        sy = (2 * (src // cw) + (yy % 2).flatten()).clamp(0, self.height - 1)
        sx = (2 * (src % cw) + (xx % 2).flatten()).clamp(0, self.width - 1)
        return sy * self.width + sx

    def repair(self, field: Tensor, gen: torch.Generator) -> Tensor:
        """Replace invalid sources of target patches by random valid ones."""
        src = field[self.target_index]
        bad = ~self.valid[src]
        if bool(bad.any()):
            field = field.clone()
            pick = torch.randint(0, len(self.valid_index), (int(bad.sum()),), generator=gen)
            src[bad] = self.valid_index[pick]
            field[self.target_index] = src
        return field

    def _cost(self, targets: Tensor, target_norms: Tensor, src: Tensor) -> Tensor:
        """The cost of copying source rows `src` to `targets` (rows like the table's); invalid sources cost
        infinity."""
        rows = self.table.index_select(0, src)  # index_select: several times faster than rows[src] on a CPU
        dots = rows.mul_(targets).sum(1)  # in place: a third of the time of a product into a new tensor
        lf = self.lf_norms.index_select(0, src).mul_(self.target_weight)
        return lf.add_(target_norms).add_(self.patch_norms.index_select(0, src)).sub_(dots.mul_(2))

    def _cut_index(self, at: Tensor) -> Tensor:
        """((2r+1)^2 * len(at),): the flat indices of the patches around the flat pixel indices `at`, edges
        replicated, in `unfold`'s order (row offset, then column offset, then pixel)."""
        r, height, width = self.r, self.height, self.width
        d = torch.arange(-r, r + 1)
        ys = ((at // width)[None, None] + d[:, None, None]).clamp(0, height - 1)  # (2r+1, 1, N)
        xs = ((at % width)[None, None] + d[None, :, None]).clamp(0, width - 1)  # (1, 2r+1, N)
        return (ys * width + xs).reshape(-1)

    def _cut(self, image: Tensor, at: Tensor) -> Tensor:
        """(len(at), 3 (2r+1)^2): `_patches(image)` at the flat pixel indices `at` only, cut without the rest."""
        values = _gather(_pixels(image), self._cut_index(at))  # (3, (2r+1)^2 * N)
        return values.reshape(-1, len(at)).t().contiguous()

    def _target_rows(self, estimate: Tensor) -> Tensor:
        """(targets, table columns): the target patches of `estimate` as the table holds patches, with the guide's
        low frequencies."""
        if self._target_index_cut is None:
            self._target_index_cut = self._cut_index(self.target_index)
        patches = _gather(_pixels(estimate), self._target_index_cut).reshape(-1, self.targets)
        patches = patches.t() * self.patch_scale if self.basis is None else patches.t() @ self.scaled_basis
        return torch.cat([patches, self.guide_lf], 1)

    def _target_norms(self, targets: Tensor) -> Tensor:
        """(targets,): the part of each target's cost that no source changes (its patch and weighted guide norms)."""
        return (targets[:, :-3] ** 2).sum(1) + self.guide_lf_norms

    def _neighbour(self, dy: int, dx: int) -> Tensor:
        """(targets,) flat index of the pixel (dy, dx) from each target, clamped to the image; kept per level."""
        if (dy, dx) not in self._neighbours:
            ty, tx = self.target_index // self.width, self.target_index % self.width
            ny, nx = (ty + dy).clamp(0, self.height - 1), (tx + dx).clamp(0, self.width - 1)
            self._neighbours[dy, dx] = ny * self.width + nx
        return self._neighbours[dy, dx]

    def search(self, field: Tensor, estimate: Tensor, gen: torch.Generator, coherence: float = 0.0) -> Tensor:
        """One PatchMatch pass for every target patch at once: jump-flood propagation, then random search. A
        propagated candidate continues its neighbour's copy; with `coherence` it is charged only (1 - coherence)
        of its cost, so that neighbours keep copying one piece of the photo together."""
        height, width = self.height, self.width
        targets = self._target_rows(estimate)
        target_norms = self._target_norms(targets)
        src = field[self.target_index]
        best = self._cost(targets, target_norms, src)
        field = field.clone()

        # candidates as flat indices: a shift of (dy, dx) is a shift of dy * width + dx, clamped to the image; one
        # that crosses the left or right edge lands on a neighbouring row instead, which is still a candidate
        last = height * width - 1

        def consider(cand: Tensor, discount: float = 1.0) -> None:
            nonlocal src, best
            cand = cand.clamp_(0, last)
            cost = self._cost(targets, target_norms, cand)
            if discount != 1.0:
                cost.mul_(discount)
            better = cost < best
            src, best = torch.where(better, cand, src), torch.where(better, cost, best)

        for step in (4, 2, 1):
            for dy, dx in ((0, step), (0, -step), (step, 0), (-step, 0)):
                consider(field.index_select(0, self._neighbour(dy, dx)) - (dy * width + dx), 1.0 - coherence)
                field[self.target_index] = src  # the next propagation reads the neighbours' improved sources
        radius = max(height, width) // 2
        while radius >= 1:  # each target's own search: it reads no neighbour, so the field is written once after
            jitter = torch.randint(-radius, radius + 1, (2, self.targets), generator=gen)
            consider(src + jitter[0] * width + jitter[1])
            radius //= 2
        field[self.target_index] = src
        return field

    def _vote_geometry(self, hy: Tensor, hx: Tensor, is_target: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """For each patch offset (dy, dx) and hole pixel (hy, hx): the flat index of the patch centre covering the
        pixel at that offset, the flat shift from a patch's centre to that offset, whether that centre is a target
        patch (as 0/1; `is_target` (H*W,) marks target centres), and each pixel's count of covering target
        patches (at least 1)."""
        r, height, width = self.r, self.height, self.width
        d = torch.arange(-r, r + 1)
        dy, dx = d.repeat_interleave(len(d))[:, None], d.repeat(len(d))[:, None]  # ((2r+1)^2, 1)
        py, px = hy[None] - dy, hx[None] - dx  # the centres of the patches that cover each pixel at (dy, dx)
        inside = (py >= 0) & (py < height) & (px >= 0) & (px < width)
        centre = py.clamp(0, height - 1) * width + px.clamp(0, width - 1)
        use = (inside & is_target[centre]).float()
        return centre, dy * width + dx, use, use.sum(0).clamp(min=1)

    def vote(self, field: Tensor, copy: bool = False, into: Tensor | None = None) -> Tensor:
        """Each hole pixel: the mean of what the target patches covering it copy there (Wexler et al.), or
        with `copy` what its own patch's source holds at its centre. Written into `into` (this level's image,
        whose hole the vote never reads: sources are known pixels), else into a copy of this level's image."""
        r, height, width = self.r, self.height, self.width
        if self._hole_pixels is None:
            flat = _flat_nonzero(self.hole.flatten(), torch.int64 if self.searched else torch.int32)
            self._hole_pixels = flat // width, flat % width
        hy, hx = self._hole_pixels
        if copy:
            values = _gather(_pixels(self.image), field[hy * width + hx].long())
            out = self.image.clone() if into is None else into
            out[:, hy, hx] = values
            return out
        # in chunks of hole pixels, so that a large hole's (2r+1)^2 copies stay small; a searched level, voted
        # after each search, keeps the chunks' geometry
        total = torch.zeros(3, len(hy))
        pixels = _pixels(self.image)
        chunk = max(1, VOTE_ELEMENTS // (2 * r + 1) ** 2)
        is_target = None
        for i, start in enumerate(range(0, len(hy), chunk)):
            if i < len(self._geometry):
                geometry = self._geometry[i]
            else:
                if is_target is None:  # once per vote, for all of its chunks
                    is_target = torch.zeros(height * width, dtype=torch.bool)
                    is_target[self.target_index] = True
                geometry = self._vote_geometry(hy[start : start + chunk], hx[start : start + chunk], is_target)
                if self.searched:
                    self._geometry.append(geometry)
            centre, shift, use, count = geometry
            # a target's source lies r px or more inside the image (a valid source), so source + shift stays in it;
            # the clamp only guards the entries `use` zeroes, whose centre is no target
            copied = (field[centre] + shift).clamp_(0, height * width - 1)  # ((2r+1)^2, pixels)
            values = _gather(pixels, copied.flatten()).reshape(3, *copied.shape)
            total[:, start : start + chunk] = values.mul_(use).sum(1) / count
        out = self.image.clone() if into is None else into
        out[:, hy, hx] = total
        return out


def _pixels(image: Tensor) -> tuple[Tensor, bool]:
    """`image` (3, H, W) as one row per pixel, (H*W, 3) and True, where its memory is laid out so (channels
    last: a photo converted from an (H, W, 3) array), else as its planes, (3, H*W) and False; a view either
    way when it can be."""
    if image.stride(0) == 1 and image.stride(2) == 3:
        return image.permute(1, 2, 0).reshape(-1, 3), True
    return image.reshape(3, -1), False


def _gather(pixels: tuple[Tensor, bool], at: Tensor) -> Tensor:
    """(3, len(at)): the pixels (from `_pixels`) at the flat indices `at`, gathered along the memory's own
    layout: in a channels-last image a pixel's three values are one read, where gathering its planes was twenty
    times slower (strided reads over a 24 MP photo)."""
    values, rows = pixels
    return values.index_select(0, at).t() if rows else values.index_select(1, at)


def _flat_nonzero(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """The indices of the True entries of the 1-D `mask` as `dtype`, found in chunks (no int64 copy of them all)."""
    step = 1 << 22
    parts = [mask[i : i + step].nonzero().flatten().add_(i).to(dtype) for i in range(0, len(mask), step)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=dtype)


def _principal_directions(patches: Tensor, dims: int) -> Tensor:
    """(D, dims): the leading principal directions of the rows of `patches` (N, D)."""
    centred = patches - patches.mean(0)
    _, vectors = torch.linalg.eigh(centred.t() @ centred)  # ascending eigenvalues
    return vectors[:, -dims:].flip(1).contiguous()


def _projected_patches(image: Tensor, r: int, basis: Tensor) -> Tensor:
    """(H*W, columns): `_patches(image, r) @ basis` as one convolution, without cutting the patches."""
    k = 2 * r + 1
    weight = basis.t().reshape(-1, 3, k, k).contiguous(memory_format=torch.channels_last)  # `unfold`'s order
    padded = F.pad(image[None], (r, r, r, r), mode="replicate").contiguous(memory_format=torch.channels_last)
    # channels-last: the output is already one row per pixel, and the convolution ran 2-4x faster (one thread)
    return F.conv2d(padded, weight).permute(0, 2, 3, 1).reshape(-1, len(weight))


def _patches(image: Tensor, r: int) -> Tensor:
    """(H*W, 3 (2r+1)^2): the patch around every pixel, edges replicated."""
    padded = F.pad(image[None], (r, r, r, r), mode="replicate")
    return F.unfold(padded, 2 * r + 1)[0].t().contiguous()
