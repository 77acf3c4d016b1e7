"""Any-size inpainting with a trained generator.

`Inpainter` fills holes of any shape in images of any size as its `InferenceOptions` (`options`) say;
`context_encoder.loading.load_model` builds one from a shipped model, a weights file, a checkpoint or a
run directory. Images and masks are read by `context_encoder.decode`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from . import methods
from .config import Config
from .decode import ImageInput, MaskInput, hole_array, image_array
from .decode import mask_array as mask_array  # re-exported: it was defined here before `decode`
from .errors import InputError
from .fill import Filler, FullResMethod, predict
from .geometry import Box, bounding_box, center_bounds, pil_box, widen_box
from .holes import hole_components, solve_laplace, thick_holes
from .masks import apply_mask, center_mask, center_region, hole_fill, prediction_region
from .options import RAW as RAW  # re-exported: the options were defined here before `options`
from .options import InferenceOptions
from .perf import inference_dtype
from .synthesis import SynthesisSettings

log = logging.getLogger(__name__)


def harmonic_offset(diff: Tensor, known: Tensor, hole: Tensor) -> Tensor:
    """Smooth correction that makes a prediction meet its context: Laplace's equation inside the hole.

    `diff` (B, 3, H, W) is (true - predicted) where `known` (B, 1, H, W) marks pixels whose truth is
    known and predicted; the result equals `diff` there, is harmonic inside `hole` (pixels outside both
    count as 0), and is 0 elsewhere. Adding it to the prediction removes colour casts and seams the way
    Poisson blending does. Solved coarse to fine (`holes.solve_laplace`): the 300 plain Jacobi sweeps used
    before gave the shipped models' fills the same pixels (at most one level apart) at about twice the cost,
    and converge far less on large holes (a ramp over a 60 px square: 0.27 off against 0.05).
    """
    inside = (hole & ~known).expand(len(diff), 1, *diff.shape[-2:])
    boundary = torch.where(known, diff, torch.zeros_like(diff))
    out = torch.zeros_like(diff)
    # a window whose prediction already equals its truth on every known pixel (a residual whole-image
    # generator passes them through) needs no correction: the membrane over a zero boundary is zero
    active = boundary.flatten(1).ne(0).any(1).nonzero().flatten()
    if len(active) > 0:
        field = solve_laplace(boundary[active], ~inside[active])
        out[active] = torch.where(inside[active], field.to(diff.dtype), 0.0)
    return out


def context_window(box: Box, cfg: Config) -> tuple[int, int, int]:
    """(top, left, side) of the square context window for a hole's bounding box, in image pixels.

    Centre models: the hole's longer side (plus 1 px each way) fills the model's hole square.
    Whole-image models: the window is twice the hole's longer side, as holes covered up to about a
    quarter of the image in training, and never smaller than the model's input, nor at most `SNAP` times
    larger: such windows are taken at the photo's own scale (1:1), since resampling a window down and its
    fill back up blurs both (on the tuning photos of `benchmarks/fullres.py`, brush strokes cut into
    pieces whose windows were 3% larger than the model's input scored 0.2-0.3 dB below the same at 1:1).
    """
    top, left, bottom, right = box
    extent = max(bottom - top, right - left) + 2
    s = cfg.model.image_size
    if cfg.full_image:
        side = max(2 * extent, s)
        if side <= SNAP * s:
            side = s
    else:
        lo, hi = center_bounds(s, cfg.mask.overlap)
        side = max(math.ceil(extent * s / (hi - lo)), 8)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    return round(cy - side / 2), round(cx - side / 2), side


def _crop(arr: Tensor, top: int, left: int, side: int) -> Tensor:
    """`side` x `side` crop of a (C, H, W) tensor at (top, left) as float; outside the image the edge repeats.
    A uint8 tensor (a photo) comes out in [0, 1], a bool one (a mask) as 0 / 1."""
    _, h, w = arr.shape
    pads = (max(0, -left), max(0, left + side - w), max(0, -top), max(0, top + side - h))
    inside = arr[:, max(0, top) : min(h, top + side), max(0, left) : min(w, left + side)]
    inside = _as_float(inside)
    if any(pads):  # pad the crop, not the image: a window over a 1 MP photo's edge cost a copy of the photo
        inside = torch.nn.functional.pad(inside[None], pads, mode="replicate")[0]
    return inside


def _as_float(x: Tensor) -> Tensor:
    """`x` as floats: a uint8 tensor (a photo) in [0, 1], a bool one (a mask) as 0 / 1."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _window(arr: Tensor, geometry: tuple[int, int, int], size: int) -> Tensor:
    """The window `geometry` (top, left, side) of `arr` (C, H, W) resized to `size` px: (C, size, size) floats."""
    top, left, side = geometry
    if side > LARGE_WINDOW:
        return _window_down(arr, top, left, side, size)
    return _resize(_crop(arr, top, left, side)[None], size)[0]


def _resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize (B, C, H, W) to `size` x `size` (or (height, width)): antialiased bilinear down, bicubic up, by
    the height (the windows are square)."""
    height, width = (size, size) if isinstance(size, int) else size
    if x.shape[-2:] == (height, width):
        return x
    if x.shape[-2] > height:
        return torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", antialias=True)
    return torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic", align_corners=False)


LARGE_WINDOW = 2048  # px: context windows larger than this are resampled a band of rows at a time


@functools.lru_cache(maxsize=16)
def _resample_matrix(n_in: int, n_out: int) -> Tensor:
    """(n_out, n_in): the weights `_resize` applies along one axis (antialiased bilinear down, bicubic up)."""
    rows = []
    for start in range(0, n_in, 512):  # the resize of each unit vector, 512 at a time
        count = min(512, n_in - start)
        basis = torch.zeros(count, n_in)
        basis[torch.arange(count), torch.arange(start, start + count)] = 1.0
        basis = basis[:, None, :, None].expand(-1, 1, n_in, 2)
        # a width of 2, not 1: torch's antialiased resize treats an axis of one pixel differently
        rows.append(_resize(basis, (n_out, 2))[:, 0, :, 0])
    return torch.cat(rows).t().contiguous()


def _folded(weights: Tensor, start: int, length: int) -> tuple[Tensor, int]:
    """`weights` (n, side) over window positions start..start+side-1, folded onto the image's positions
    0..length-1 (a position outside repeats the edge, as `_crop` pads): (n, covered) and the first covered one."""
    side = weights.shape[1]
    first, last = max(0, start), min(length, start + side)
    at = (torch.arange(start, start + side).clamp(0, length - 1) - first).clamp(0, last - first - 1)
    folded = torch.zeros(weights.shape[0], last - first)
    return folded.index_add_(1, at, weights), first


def _window_down(arr: Tensor, top: int, left: int, side: int, size: int) -> Tensor:
    """`_resize(_crop(arr, top, left, side)[None], size)[0]` without the float crop: the resize's weights as two
    matrices, applied a band of rows at a time (a window over a 48 MP photo is 1.7 GB of floats)."""
    _, h, w = arr.shape
    down = _resample_matrix(side, size)
    rows, r0 = _folded(down, top, h)
    cols, c0 = _folded(down, left, w)
    out = torch.zeros(arr.shape[0], size, cols.shape[1])
    for start in range(0, rows.shape[1], 256):
        band = arr[:, r0 + start : r0 + min(start + 256, rows.shape[1]), c0 : c0 + cols.shape[1]]
        out += torch.matmul(rows[:, start : start + 256], _as_float(band))
    return torch.matmul(out, cols.t())


def _window_values(filled: Tensor, side: int, region: tuple[int, int, int, int], inside: np.ndarray) -> Tensor:
    """(C, n): `_resize(filled[None], side)[0]` at the window's pixels `region` (top, left, bottom, right,
    relative to the window) where `inside` is True, computed a band of rows at a time for a large window."""
    top, left, bottom, right = region
    if side <= LARGE_WINDOW:
        return _resize(filled[None], side)[0][:, top:bottom, left:right][:, torch.from_numpy(inside)]
    up = _resample_matrix(filled.shape[-1], side)
    cols = up[left:right].t()
    parts = []
    for start in range(top, bottom, 256):
        stop = min(bottom, start + 256)
        band = torch.matmul(torch.matmul(up[start:stop], filled), cols)  # (C, rows, columns)
        parts.append(band[:, torch.from_numpy(inside[start - top : stop - top])])
    return torch.cat(parts, 1)


class Inpainter:
    """Fills holes of any shape in images of any size with a trained generator.

    Each hole (8-connected component of the mask) gets a square context window around it, scaled to
    the model's input size, filled by the generator and pasted back at full resolution; a thin hole (a
    brush stroke) is cut into pieces of the model's size first, each with its own window
    (`local_pieces`). Known pixels
    are returned bit-identical. `options` (see `InferenceOptions`) say how: seam blending, flip
    averaging; a call may pass its own.

    `precision` is the generator's arithmetic: "auto" (bf16 autocast where the hardware has native bf16,
    see `perf.inference_dtype`, else fp32), "fp32" or "bf16". Where it measured faster the generator also
    runs channels-last (NHWC; `gen` is converted in place), which changes no result beyond float rounding.
    """

    def __init__(
        self,
        gen: nn.Module,
        cfg: Config,
        device: str | torch.device = "cpu",
        options: InferenceOptions | None = None,
        precision: str = "auto",
    ):
        self.cfg, self.device, self.precision = cfg, torch.device(device), precision
        self._dtype = inference_dtype(precision, self.device)  # an unknown precision raises here
        # channels-last: on a GPU, and on a CPU with bf16 or a 128 px model, where it measured 1.1-1.4x faster;
        # a 32 px model in fp32 on a CPU ran 0.8-0.9x as fast with it (`python -m benchmarks.inference_speed`)
        nhwc = self.device.type == "cuda" or (
            self.device.type == "cpu" and (self._dtype is not None or cfg.model.image_size >= 128)
        )
        self._format = torch.channels_last if nhwc else torch.contiguous_format
        self.gen = gen.to(device, memory_format=self._format).eval()
        self.options = options or InferenceOptions()

    def with_options(self, options: InferenceOptions) -> Inpainter:
        """The same model (shared weights) with other options."""
        return Inpainter(self.gen, self.cfg, self.device, options, self.precision)

    def _predict(self, masked: Tensor, holes: Tensor, flip_average: bool) -> Tensor:
        """The generator's fp32 output, run in this inpainter's precision and memory format."""
        masked = masked.contiguous(memory_format=self._format)
        if self._dtype is None:
            return predict(self.gen, masked, holes, flip_average)
        with torch.autocast(self.device.type, dtype=self._dtype):
            return predict(self.gen, masked, holes, flip_average).float()

    @torch.no_grad()
    def fill_windows(self, windows: Tensor, holes: Tensor, options: InferenceOptions | None = None) -> Tensor:
        """windows (N, 3, S, S) in [0, 1] with hole masks (N, 1, S, S) -> filled windows in [0, 1].

        A centre-mode model fills its own centre hole too, around any hole inside it.
        """
        opts = options or self.options
        s, cfg = self.cfg.model.image_size, self.cfg
        x = (windows * 2 - 1).to(self.device)
        holes = holes.to(self.device)
        model_holes = holes if cfg.full_image else holes | center_mask(s, cfg.mask.overlap, len(x), self.device)
        masked = apply_mask(x, model_holes, hole_fill(cfg.mask, self.device))
        pred = self._predict(masked, model_holes, opts.flip_average)
        canvas = x.clone()
        prediction_region(canvas, cfg.full_image).copy_(pred)  # a view: the centre, or the whole window
        region = torch.ones_like(holes) if cfg.full_image else center_region(s, len(x), self.device)
        if opts.blend:
            known = region & ~model_holes
            canvas = canvas + harmonic_offset(x - canvas, known, model_holes)
        return ((torch.where(model_holes, canvas, x) + 1) / 2).clamp(0, 1).cpu()

    def filler(self, options: InferenceOptions | None = None) -> Filler:
        """This model as an evaluation method on model-size [0, 1] images (`context_encoder.protocol`): each image
        is one window, filled as `fill_windows` fills it."""

        def fill(images: Tensor, masks: Tensor) -> Tensor:
            return torch.where(masks, self.fill_windows(images, masks, options).to(images.device), images)

        return fill

    def method(
        self, options: InferenceOptions | None = None, synthesis: SynthesisSettings | None = None
    ) -> FullResMethod:
        """This model as a full-resolution method ((H, W, 3) uint8 and an (H, W) hole in, the filled uint8 out): how
        the web app, the demo and the full-resolution benchmarks call it (`methods.NETWORK`)."""

        opts = options or self.options
        opts = opts if synthesis is None else dataclasses.replace(opts, synthesis=synthesis)

        def method(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
            return np.asarray(self(image, hole, options=opts))

        return method

    def center_hole(self, size: tuple[int, int]) -> np.ndarray:
        """The (H, W) bool centred square hole for an image of `size` (W, H): the model's own hole relative to
        its input for a centre model (a whole-image model: 45% of the shorter side)."""
        w, h = size
        s = self.cfg.model.image_size
        lo, hi = center_bounds(s, self.cfg.mask.overlap)
        frac = 0.45 if self.cfg.full_image else (hi - lo) / s
        side = max(1, round(min(w, h) * frac))
        top, left = (h - side) // 2, (w - side) // 2
        out = np.zeros((h, w), dtype=bool)
        out[top : top + side, left : left + side] = True
        return out

    def context_box(self, hole: np.ndarray, options: InferenceOptions | None = None) -> tuple[int, int, int, int]:
        """(left, top, right, bottom): the part of the image that filling `hole` (with some hole pixels) reads.

        Every hole's context window (`context_window`) is centred in the holes' bounding box and no larger
        than the window of that whole box, so the box widened by half that window holds them all; patch
        refinement also reads its own margin around the box (`SynthesisSettings.margin`, at least 16 px).
        The corner is kept on a multiple of 2 (windows are placed with `round`, which rounds halves to
        even) and, for patch refinement, of the model size (the grid `split_holes` cuts along), so filling
        this part gives the same pixels as filling the whole image, at a fraction of its memory.
        """
        opts = options or self.options
        box = bounding_box(hole)
        reach = context_window(box, self.cfg)[2] // 2 + 2
        if opts.refine == methods.NO_REFINE:
            return pil_box(widen_box(box, reach, hole.shape, align=2))
        margin = math.ceil(opts.synthesis.margin * max(box[2] - box[0], box[3] - box[1]))
        align = math.lcm(2, self.cfg.model.image_size)
        return pil_box(widen_box(box, max(reach, margin, 16) + 1, hole.shape, align))

    def __call__(
        self,
        image: ImageInput,
        mask: MaskInput,
        options: InferenceOptions | None = None,
        synthesis: SynthesisSettings | None = None,
    ) -> Image.Image:
        """The filled image (RGB). `mask`: non-zero = hole, the image's size; several holes are fine.

        `options` replace this inpainter's; `synthesis` replaces their `synthesis` (the patch synthesis of a
        refiner such as "patch", whose defaults are the measured choice).
        """
        img = image_array(image, copy=False)  # only read: the output is a copy
        hole = hole_array(mask, (img.shape[1], img.shape[0]))
        if not hole.any():
            log.info("the mask is empty: nothing to fill")
            return Image.fromarray(img)
        if hole.all():
            raise InputError("the mask covers the whole image: there is no context to fill from")
        opts = options or self.options
        holes_t = torch.from_numpy(hole)
        # one float copy of the photo: the network's fill goes into its holes, then the refiner's (in place)
        guided = self._fill_holes(img, hole, opts)
        refine = methods.get(opts.refine, "refiner").build()  # e.g. texture from the photo, guided by the fill
        if refine is not None:
            guided = refine(guided, holes_t, guided, synthesis or opts.synthesis)
        out = img.copy()  # known pixels bit-identical; only the holes' values are converted
        out[hole] = guided[:, holes_t].clamp_(0, 1).mul_(255).round_().byte().t().numpy()
        return Image.fromarray(out)

    def _fill_holes(self, img: np.ndarray, hole: np.ndarray, opts: InferenceOptions) -> Tensor:
        """The photo `img` (H, W, 3) uint8 as (3, H, W) floats in [0, 1] with the network's fill in every hole.

        Each piece (`local_pieces`) gets its window (`context_window`), filled in batches and pasted back
        with its weight (`_piece_weight`): where a hole was cut into pieces, their fills cross-fade. Windows
        are cut from the uint8 photo and the fills summed per hole pixel, so beyond the one float copy of the
        photo that is returned, memory grows with the holes, not with the photo.
        """
        s = self.cfg.model.image_size
        labels, boxes, cut = local_pieces(*hole_components(hole), piece_side(self.cfg), s // THIN)
        photo = torch.from_numpy(img).permute(2, 0, 1)  # (3, H, W) uint8, a view
        holes_t = torch.from_numpy(hole)
        count = int(hole.sum())
        rank = np.full(hole.shape, -1, dtype=np.int32)  # each hole pixel's place in the per-hole-pixel sums
        rank[hole] = np.arange(count, dtype=np.int32)
        geometry = [context_window(b, self.cfg) for b in boxes]
        total, weight = torch.zeros(3, count), torch.zeros(count)
        h, w = hole.shape
        # a whole-image model's pieces of a cut hole overlap and cross-fade, which averages much as flip averaging
        # does (on the tuning photos' strokes flipping them gained 0.02 dB for 1.5 times the time): not flipped
        unflipped = cut if self.cfg.full_image else 0
        groups = ((0, unflipped, dataclasses.replace(opts, flip_average=False)), (unflipped, len(boxes), opts))
        for first, end, group_opts in groups:
            for start in range(first, end, 32):  # windows in batches
                chunk = geometry[start : min(start + 32, end)]
                crops = torch.stack([_window(photo, g, s) for g in chunk])
                masks = torch.stack([_window(holes_t[None], g, s) > 0.01 for g in chunk])
                filled = self.fill_windows(crops, masks, group_opts)
                for i, (top, left, side) in enumerate(chunk):
                    label = start + i + 1
                    t0, l0, t1, l1 = max(0, top), max(0, left), min(h, top + side), min(w, left + side)
                    inside = hole[t0:t1, l0:l1]
                    wt = _piece_weight(labels[t0:t1, l0:l1], label, boxes[label - 1], (t0, l0))[inside]
                    values = _window_values(filled[i], side, (t0 - top, l0 - left, t1 - top, l1 - left), inside)
                    at = torch.from_numpy(rank[t0:t1, l0:l1][inside]).long()
                    total.index_add_(1, at, wt * values)
                    weight.index_add_(0, at, wt)
        del labels, rank
        guided = _as_float(photo)
        guided[:, holes_t] = total / weight.clamp(min=1e-12)
        return guided


SNAP = 1.1  # a whole-image model's window up to this much larger than its input is cropped to it, not resized
SEAM = 0.25  # neighbouring pieces' fills cross-fade over this fraction of a piece's longer side (0: hard seams)


def _piece_weight(labels: np.ndarray, label: int, box: tuple[int, int, int, int], origin: tuple[int, int]) -> Tensor:
    """How much piece `label`'s window counts at each pixel of `labels` (a crop at `origin`): 1 on the piece,
    falling linearly to 0 at `SEAM` times the piece's longer side from its box, so where a hole was cut into
    pieces, neighbouring windows' fills cross-fade instead of meeting at a hard seam."""
    own = torch.from_numpy(labels == label).float()
    top, left, bottom, right = box
    reach = SEAM * max(bottom - top, right - left)
    if reach < 1:
        return own
    ys = torch.arange(origin[0], origin[0] + labels.shape[0], dtype=torch.float32)
    xs = torch.arange(origin[1], origin[1] + labels.shape[1], dtype=torch.float32)
    dy = (top - ys).clamp(min=0) + (ys - (bottom - 1)).clamp(min=0)
    dx = (left - xs).clamp(min=0) + (xs - (right - 1)).clamp(min=0)
    near = (1 - torch.maximum(dy[:, None], dx[None, :]) / reach).clamp(min=0)
    return torch.maximum(own, near)


THIN = 4  # a hole is thin when each of its pixels lies within (model input) / THIN px of a known one


def piece_side(cfg: Config) -> int:
    """Side of the squares a thin hole is cut into. Whole-image models: the largest piece whose window (twice
    its side plus a pixel each way, `context_window`) is the model's input at 1:1; on the tuning photos' strokes
    (`benchmarks/fullres.py --sets tuning tuning768`, `scenes128-region`) pieces of 62 px scored 22.0-22.4 dB
    where pieces of 128 px, seen shrunk to half, scored 20.9-21.6 dB. Centre models: their input size."""
    s = cfg.model.image_size
    return s // 2 - 2 if cfg.full_image else s


def local_pieces(
    labels: np.ndarray, boxes: list[tuple[int, int, int, int]], cell: int, reach: int | None = None
) -> tuple[np.ndarray, list[tuple[int, int, int, int]], int]:
    """The context-window pieces of labelled holes: thin holes (strokes, lines: every pixel within `reach`,
    by default `cell` / `THIN`, px of a known one) cut into `cell` px squares (`split_holes`), every other
    hole whole. Returns (labels, boxes, cut): the first `cut` boxes are pieces of thin holes, the rest whole.

    A long stroke then gets windows of about its own width instead of one the size of its bounding box,
    which the network would see shrunk many times over (on the tuning photos, 12 of bsds500-train with
    seeded strokes: 21.3 dB instead of 19.8 dB with `scenes-region`); a thick hole keeps one window, since
    a piece deep inside it would see nothing but hole (boxes: 16.3 dB whole, 16.0 dB cut).
    """
    reach = cell // THIN if reach is None else reach
    if not boxes or reach < 1:
        return labels, boxes, 0
    thick = thick_holes(labels, len(boxes), reach)
    if thick.sum() == len(boxes):
        return labels, boxes, 0
    is_thick = thick[labels]
    thin = np.where(is_thick, 0, labels)
    out, pieces = merge_pieces(thin, *split_holes(thin, cell), cell)
    whole = np.flatnonzero(thick)
    renumber = np.zeros(len(thick), dtype=labels.dtype)
    renumber[whole] = np.arange(len(pieces) + 1, len(pieces) + 1 + len(whole))
    out = np.where(is_thick, renumber[labels], out)
    return out, pieces + [boxes[k - 1] for k in whole], len(pieces)


def merge_pieces(
    labels: np.ndarray, pieces: np.ndarray, boxes: list[tuple[int, int, int, int]], cell: int
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Merge pieces of the same hole (`labels`) while their joint bounding box still fits a `cell` square.

    A stroke crossing a grid line or corner leaves slivers, each of which would cost a window of its own;
    smallest first, each piece joins the piece of its hole with which it makes the smallest joint box.
    """
    n = len(boxes)
    if n < 2:
        return pieces, boxes
    ys, xs = np.nonzero(pieces)
    parent = np.zeros(n + 1, dtype=np.int64)
    parent[pieces[ys, xs]] = labels[ys, xs]
    parent = parent[1:]
    b = np.array(boxes, dtype=np.int64)  # (n, 4): top, left, bottom, right
    alive = np.ones(n, dtype=bool)
    into = np.arange(n)
    for p in np.argsort(np.bincount(pieces[ys, xs], minlength=n + 1)[1:], kind="stable"):
        top, left = np.minimum(b[:, 0], b[p, 0]), np.minimum(b[:, 1], b[p, 1])
        extent = np.maximum(np.maximum(b[:, 2], b[p, 2]) - top, np.maximum(b[:, 3], b[p, 3]) - left)
        ok = alive & (parent == parent[p]) & (extent <= cell)
        ok[p] = False
        if not ok.any():
            continue
        q = int(np.flatnonzero(ok)[np.argmin(extent[ok])])
        b[q] = (top[q], left[q], max(b[q, 2], b[p, 2]), max(b[q, 3], b[p, 3]))
        alive[p], into[p] = False, q
    while True:  # follow chains: a piece merged into one that was merged later
        nxt = into[into]
        if np.array_equal(nxt, into):
            break
        into = nxt
    renumber = np.zeros(n, dtype=pieces.dtype)
    renumber[alive] = np.arange(1, int(alive.sum()) + 1)
    table = np.concatenate([[0], renumber[into]]).astype(pieces.dtype)
    return table[pieces], [tuple(int(v) for v in row) for row in b[alive]]


def split_holes(labels: np.ndarray, cell: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Cut each labelled hole along a grid of `cell` px squares: (labels, boxes) of the pieces, 1-based.

    A long stroke then gets several context windows of about its own width instead of one window the
    size of its bounding box, which the network would see shrunk many times over.
    """
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    columns = -(-w // cell)
    key = labels[ys, xs].astype(np.int64) * (columns * (-(-h // cell))) + (ys // cell) * columns + xs // cell
    _, piece = np.unique(key, return_inverse=True)
    n = int(piece.max()) + 1
    top, left = np.full(n, h), np.full(n, w)
    bottom, right = np.zeros(n, int), np.zeros(n, int)
    np.minimum.at(top, piece, ys)
    np.minimum.at(left, piece, xs)
    np.maximum.at(bottom, piece, ys + 1)
    np.maximum.at(right, piece, xs + 1)
    out = np.zeros_like(labels)
    out[ys, xs] = piece + 1
    return out, [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(top, left, bottom, right)]
