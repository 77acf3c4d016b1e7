"""One fill request: checked on the event loop, then decoded, filled by the chosen method and encoded as PNG
in a worker thread, with headers that say what was done and how long it took."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import io
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image

from ..config import Config
from ..errors import ContextEncoderError
from ..inpaint import context_window
from ..synthesis import SynthesisSettings
from .forms import Form
from .images import check_sizes, decode_upload
from .registry import ModelRegistry
from .schemas import InpaintFields, MethodInfo

log = logging.getLogger(__name__)


BASELINES = {  # method -> (the module it needs, description)
    "telea": ("cv2", "OpenCV's Telea fast-marching fill (classical diffusion baseline)"),
    "patchmatch": ("patchmatch", "PatchMatch (Barnes et al. 2009): copies patches of the photo (exemplar baseline)"),
}


@functools.cache
def available(method: str) -> bool:
    """Whether the package a baseline needs (the `baselines` extra) is installed (looked up once)."""
    return importlib.util.find_spec(BASELINES[method][0]) is not None


def methods(registry: ModelRegistry) -> list[MethodInfo]:
    """The fill methods and whether this server can use them."""
    model = MethodInfo(
        name="model", available=bool(registry.names), description="the context encoder chosen with `model`"
    )
    return [model] + [MethodInfo(name=m, available=available(m), description=d) for m, (_, d) in BASELINES.items()]


@dataclass(frozen=True)
class FillJob:
    image: bytes | bytearray
    mask: bytes | bytearray
    method: str
    model: str | None  # None for a baseline
    max_pixels: int
    options: Mapping[str, bool | str]  # inference options the request overrides; empty: the model's own
    feather: int = 0  # px of soft edge around the holes; 0: only hole pixels change


def prepare(form: Form, registry: ModelRegistry, max_pixels: int) -> FillJob:
    """Check a request where it is cheap (fields, model name, image sizes from the headers) and make its job."""
    fields = form.fields(InpaintFields)
    model = None
    if fields.method == "model":
        model = fields.model or registry.default
        if model is None:
            raise HTTPException(400, "this server has no models: use method 'telea' or start it with --checkpoint")
        registry.check(model)
    elif not available(fields.method):
        raise HTTPException(
            501, f"method '{fields.method}' needs the baselines extra: pip install 'context-encoder[baselines]'"
        )
    image, mask = form.file("image"), form.file("mask")
    check_sizes(image, mask, max_pixels)
    return FillJob(image, mask, fields.method, model, max_pixels, fields.options(), fields.feather)


# px around the holes that OpenCV's Telea reads (its fast marching reaches a few times its 3 px radius beyond
# them); the tests check that filling this part gives the whole image's pixels
TELEA_REACH = 32


def _hole_box(hole: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the holes' bounding box; bottom and right exclusive."""
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _widen(hole: np.ndarray, reach: int, align: int = 1) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the holes' box widened by `reach`, clipped to the image, its corner moved
    down to a multiple of `align`."""
    top, left, bottom, right = _hole_box(hole)
    h, w = hole.shape
    top, left = max(0, top - reach) // align * align, max(0, left - reach) // align * align
    return left, top, min(w, right + reach), min(h, bottom + reach)


def context_box(hole: np.ndarray, cfg: Config, refine: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): the part of the image that filling `hole` with a model of `cfg` reads.

    Every hole's context window (`inpaint.context_window`) is centred in the holes' bounding box and no larger
    than the window of that whole box, so the box widened by half that window holds them all; patch
    refinement also reads its own margin around the box (`SynthesisSettings.margin`, at least 16 px).
    The corner is kept on a multiple of 2 (windows are placed with `round`, which rounds halves to
    even) and, for patch refinement, of the model size (the grid `split_holes` cuts along), so filling
    this part gives the same pixels as filling the whole image, at a fraction of its memory.
    """
    box = _hole_box(hole)
    reach = context_window(box, cfg)[2] // 2 + 2
    if refine != "patch":
        return _widen(hole, reach, align=2)
    margin = math.ceil(SynthesisSettings().margin * max(box[2] - box[0], box[3] - box[1]))
    return _widen(hole, max(reach, margin, 16) + 1, align=math.lcm(2, cfg.model.image_size))


def hole_distance(hole: np.ndarray, limit: int) -> np.ndarray:
    """(H, W) integers: each pixel's squared Euclidean distance to the nearest hole pixel (0 in the holes), exact
    below `limit + 1` px; `(limit + 1) ** 2` from there on.

    Two passes: the distance to the nearest hole pixel in the same column, then the nearest over the
    columns at most `limit` px away (2 * limit + 1 array operations, so only small limits are cheap).
    """
    h, w = hole.shape
    far = limit + 1
    rows = np.arange(h, dtype=np.int32)[:, None]
    above = rows - np.maximum.accumulate(np.where(hole, rows, -h - far), axis=0)
    below = np.minimum.accumulate(np.where(hole, rows, 2 * h + far)[::-1], axis=0)[::-1] - rows
    small = 2 * far * far < 2**15  # int16 halves the memory traffic of the passes below
    column = np.minimum(np.minimum(above, below), far).astype(np.int16 if small else np.int32) ** 2
    out = column.copy()
    for dx in range(1, min(limit, w - 1) + 1):
        np.minimum(out[:, dx:], column[:, :-dx] + dx * dx, out=out[:, dx:])
        np.minimum(out[:, :-dx], column[:, dx:] + dx * dx, out=out[:, :-dx])
    return np.minimum(out, far * far)


def feather_weights(hole: np.ndarray, width: int) -> np.ndarray:
    """(H, W) uint8: the weight of the fill in the output, 255 in the holes and falling linearly outside them
    to 0 at `width + 1` px: weight 1 - d / (width + 1) at distance d (so 1 / (width + 1) at `width` px).

    Only the holes' box widened by `width` is computed.
    """
    left, top, right, bottom = _widen(hole, width)
    dist = np.sqrt(hole_distance(hole[top:bottom, left:right], width).astype(np.float32))
    weights = np.zeros(hole.shape, np.uint8)
    ramp = np.float32(255 / (width + 1))
    weights[top:bottom, left:right] = np.rint(np.maximum(np.float32(255) - dist * ramp, 0))
    return weights


def _fill(job: FillJob, registry: ModelRegistry, img: Image.Image, hole: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(left, top, fill): the job's method's (h, w, 3) uint8 fill of the image's part at (left, top).

    Only the part that the method reads is cut out and filled (see `context_box`); PatchMatch copies
    patches from anywhere in the photo, so it gets all of it.
    """
    if job.method == "model":
        assert job.model is not None
        inpainter = registry.get(job.model)
        options = dataclasses.replace(inpainter.options, **job.options) if job.options else None
        box = context_box(hole, inpainter.cfg, (options or inpainter.options).refine)

        def method(image: np.ndarray, part: np.ndarray) -> np.ndarray:
            return np.asarray(inpainter(image, part, options=options))
    else:
        from ..fullres import baseline_methods

        method = baseline_methods([job.method])[job.method]
        box = _widen(hole, TELEA_REACH) if job.method == "telea" else (0, 0, img.width, img.height)
    try:
        part = img if box == (0, 0, img.width, img.height) else img.crop(box)
        fill = method(np.asarray(part), hole[box[1] : box[3], box[0] : box[2]])
    except ContextEncoderError as exc:  # InputError among them: a hole this model cannot fill
        raise HTTPException(400, str(exc)) from None
    return box[0], box[1], fill


def run(job: FillJob, registry: ModelRegistry, png_level: int) -> tuple[bytes, dict[str, str]]:
    """Decode, fill and encode one request (in a worker thread): the PNG and the headers describing the work.

    Known pixels come back bit-identical (with `feather`, those at least `feather + 1` px from the holes); an empty mask
    returns the image unchanged. The fill is pasted into the decoded image through the hole (or the feather's
    weights), and that image is encoded: no full-size copies beyond it.
    """
    start = time.perf_counter()
    img, hole = decode_upload(job.image, job.mask, job.max_pixels)
    holes = int(np.count_nonzero(hole))
    if holes == hole.size:
        raise HTTPException(400, "the mask covers the whole image: there is no context to fill from")
    if holes:
        weights = feather_weights(hole, job.feather) if job.feather else hole
        region = weights > 0 if job.feather else hole  # what is filled: the holes and their soft edge
        if job.feather and region.all():
            raise HTTPException(400, f"the holes grown by feather={job.feather} px cover the whole image")
        left, top, fill = _fill(job, registry, img, region)
        h, w = fill.shape[:2]
        img.paste(Image.fromarray(fill), (left, top), Image.fromarray(weights[top : top + h, left : left + w]))
    fill_s = time.perf_counter() - start
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=png_level)
    total = time.perf_counter() - start
    log.info(
        "%s %s: %dx%d, %d hole px, %.2f s (%.2f s decode and fill, %.2f s PNG)",
        job.method,
        job.model or "",
        img.width,
        img.height,
        holes,
        total,
        fill_s,
        total - fill_s,
    )
    headers = {"X-Inpaint-Method": job.method, "X-Inpaint-Hole-Pixels": str(holes), "X-Inpaint-Seconds": f"{total:.3f}"}
    if job.model:
        headers["X-Inpaint-Model"] = job.model
    return buf.getvalue(), headers
