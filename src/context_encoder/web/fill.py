"""One fill request: checked on the event loop, then decoded, filled by the chosen method and encoded (PNG, or the
input's own format) in a worker thread, with headers that say what was done and how long it took.

A cancelled request stops between these stages (`work.cancel_point`) and, while the method fills, at its next
torch operation (`work.stoppable`); a classical method that is one OpenCV or PatchMatch call runs to its end.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image

from ..errors import ContextEncoderError
from ..fill import FillMethod, filler_method
from ..geometry import bounding_box, pil_box, widen_box
from ..methods import NETWORK, entries, get, install_hint
from ..methods import available as registry_available
from ..photo_file import save_options
from .forms import Form
from .images import Upload, check_sizes, decode_upload
from .registry import ModelRegistry
from .schemas import InpaintFields, MethodInfo
from .work import cancel_point, stoppable

log = logging.getLogger(__name__)

# The answer's formats: Pillow's name, media type, file extension, whether it keeps transparency.
FORMATS = {
    "png": ("PNG", "image/png", "png", True),
    "jpeg": ("JPEG", "image/jpeg", "jpg", False),
    "webp": ("WEBP", "image/webp", "webp", True),
}
_INPUT_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}  # Pillow's names; MPO: a camera's JPEG; else PNG


def answer_format(requested: str, input_format: str | None) -> str:
    """The answer's format (a key of `FORMATS`): the one `requested`, or for "input" the input's own (JPEG and
    WebP; PNG for every other format, lossless)."""
    return _INPUT_FORMATS.get(input_format or "", "png") if requested == "input" else requested


@functools.cache
def available(method: str) -> bool:
    """Whether the packages a classical method needs (the `baselines` extra) are installed (looked up once)."""
    return registry_available(method)


def web_methods() -> list[FillMethod]:
    """The methods a request may name: the network and the featured classical methods (`methods.REGISTRY`)."""
    return [NETWORK, *entries("classical", featured=True)]


def method_list(models: ModelRegistry) -> list[MethodInfo]:
    """The fill methods and whether this server can use them."""
    return [
        MethodInfo(
            name=m.name,
            kind=m.kind,
            label=m.label,
            available=bool(models.names) if m.kind == "network" else available(m.name),
            description=m.description,
        )
        for m in web_methods()
    ]


@dataclass(frozen=True)
class FillJob:
    image: bytes | bytearray
    mask: bytes | bytearray
    method: str
    model: str | None  # None for a baseline
    max_pixels: int
    options: Mapping[str, bool | str]  # inference options the request overrides; empty: the model's own
    feather: int = 0  # px of soft edge around the holes; 0: only hole pixels change
    format: str = "png"  # the answer's, a key of `FORMATS`


@dataclass(frozen=True)
class Filled:
    body: bytes
    media_type: str
    extension: str
    headers: dict[str, str]


def prepare(form: Form, registry: ModelRegistry, max_pixels: int) -> FillJob:
    """Check a request where it is cheap (fields, model name, image sizes from the headers) and make its job."""
    fields = form.fields(InpaintFields)
    model = None
    if fields.method == NETWORK.name:
        model = fields.model or registry.default
        if model is None:
            others = ", ".join(m.name for m in web_methods() if m.kind != "network")
            raise HTTPException(
                400, f"this server has no models: use a classical method ({others}) or start it with --checkpoint"
            )
        registry.check(model)
    elif not available(fields.method):
        raise HTTPException(
            501, f"method '{fields.method}' needs the {get(fields.method).extra} extra: {install_hint(fields.method)}"
        )
    image, mask = form.file("image"), form.file("mask")
    input_format = check_sizes(image, mask, max_pixels)
    out = answer_format(fields.format, input_format)
    return FillJob(image, mask, fields.method, model, max_pixels, fields.options(), fields.feather, out)


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
    top, left, bottom, right = widen_box(bounding_box(hole), width, hole.shape)
    dist = np.sqrt(hole_distance(hole[top:bottom, left:right], width).astype(np.float32))
    weights = np.zeros(hole.shape, np.uint8)
    ramp = np.float32(255 / (width + 1))
    weights[top:bottom, left:right] = np.rint(np.maximum(np.float32(255) - dist * ramp, 0))
    return weights


def _fill(job: FillJob, registry: ModelRegistry, img: Image.Image, hole: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(left, top, fill): the job's method's (h, w, 3) uint8 fill of the image's part at (left, top).

    Only the part that the method reads is cut out and filled: a model's windows (`Inpainter.context_box`), a
    classical method's `reach` around the holes, or all of the photo (PatchMatch copies patches from anywhere).
    """
    entry = get(job.method)
    if entry.kind == "network":
        assert job.model is not None
        inpainter = registry.get(job.model)
        options = dataclasses.replace(inpainter.options, **job.options) if job.options else inpainter.options
        box = inpainter.context_box(hole, options)
        method = entry.build(inpainter, options)
    else:
        method = filler_method(entry.build())
        whole = (0, 0, img.height, img.width)
        box = pil_box(widen_box(bounding_box(hole), entry.reach, hole.shape) if entry.reach is not None else whole)
    try:
        part = img if box == (0, 0, img.width, img.height) else img.crop(box)
        with stoppable():
            fill = method(np.asarray(part), hole[box[1] : box[3], box[0] : box[2]])
    except ContextEncoderError as exc:  # InputError among them: a hole this model cannot fill
        raise HTTPException(400, str(exc)) from None
    return box[0], box[1], fill


def _encode(up: Upload, fmt: str, png_level: int) -> bytes:
    """The filled image in `fmt` (a key of `FORMATS`), with the photo's colour profile and its transparency (kept
    by `decode_upload` only for a format that has it)."""
    name = FORMATS[fmt][0]
    img = up.canvas
    if up.alpha is not None:
        img.putalpha(up.alpha)  # in place: RGB becomes RGBA
    # the photo's EXIF (less the orientation, applied), DPI and, JPEG to JPEG, its own quantisation tables, as
    # `inpaint` keeps them; the colour profile below (an RGB one only: the answer is RGB)
    options = save_options(name, up.photo, img.mode)
    if name == "PNG":
        options["compress_level"] = png_level
    if name == "WEBP" and up.alpha is not None:
        options["exact"] = True  # keep the colours of transparent pixels, as PNG does
    options["icc_profile"] = up.icc_profile  # None: none, also where the image's own info holds an unfit one
    buf = io.BytesIO()
    img.save(buf, name, **options)
    return buf.getvalue()


def run(job: FillJob, registry: ModelRegistry, png_level: int) -> Filled:
    """Decode, fill and encode one request (in a worker thread): the image and the headers describing the work.

    Known pixels come back bit-identical in a lossless answer (with `feather`, those at least `feather + 1` px
    from the holes; a PNG or WebP photo's transparency is kept as it was); an empty mask returns the image
    unchanged. The fill is pasted into the decoded image through the hole (or the feather's weights), and
    that image is encoded: no full-size copies beyond it. A cancelled job stops between the stages and at
    the torch operations of its fill (`work.Cancelled`).
    """
    start = time.perf_counter()
    up = decode_upload(job.image, job.mask, job.max_pixels, keep_alpha=FORMATS[job.format][3])
    cancel_point()
    img, hole = up.image, up.hole
    holes = int(np.count_nonzero(hole))
    if holes == hole.size:
        raise HTTPException(400, "the mask covers the whole image: there is no context to fill from")
    if holes:
        weights = feather_weights(hole, job.feather) if job.feather else hole
        region = weights > 0 if job.feather else hole  # what is filled: the holes and their soft edge
        if job.feather and region.all():
            raise HTTPException(400, f"the holes grown by feather={job.feather} px cover the whole image")
        left, top, fill = _fill(job, registry, img, region)
        cancel_point()
        h, w = fill.shape[:2]
        up.canvas.paste(Image.fromarray(fill), (left, top), Image.fromarray(weights[top : top + h, left : left + w]))
    fill_s = time.perf_counter() - start
    body = _encode(up, job.format, png_level)
    total = time.perf_counter() - start
    log.info(
        "%s %s: %dx%d, %d hole px, %.2f s (%.2f s decode and fill, %.2f s %s)",
        job.method,
        job.model or "",
        img.width,
        img.height,
        holes,
        total,
        fill_s,
        total - fill_s,
        job.format.upper(),
    )
    headers = {"X-Inpaint-Method": job.method, "X-Inpaint-Hole-Pixels": str(holes), "X-Inpaint-Seconds": f"{total:.3f}"}
    if job.model:
        headers["X-Inpaint-Model"] = job.model
    _, media_type, extension, _ = FORMATS[job.format]
    return Filled(body, media_type, extension, headers)
