"""One fill request: checked on the event loop, then decoded, filled by the chosen method and encoded as PNG
in a worker thread, with headers that say what was done and how long it took."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image

from ..errors import ContextEncoderError
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
    return FillJob(image, mask, fields.method, model, max_pixels, fields.options())


def _baseline(method: str, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """A classical method's fill of an (H, W, 3) uint8 image at full resolution."""
    from ..fullres import baseline_methods

    return baseline_methods([method])[method](image, hole)


def _fill(job: FillJob, registry: ModelRegistry, img: Image.Image, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The (H, W, 3) fill by the job's method; only its hole pixels are used."""
    if job.method != "model":
        return _baseline(job.method, rgb, hole)
    assert job.model is not None
    inpainter = registry.get(job.model)
    options = dataclasses.replace(inpainter.options, **job.options) if job.options else None
    try:
        return np.asarray(inpainter(img, hole, options=options))
    except ContextEncoderError as exc:  # InputError among them: a hole this model cannot fill
        raise HTTPException(400, str(exc)) from None


def run(job: FillJob, registry: ModelRegistry, png_level: int) -> tuple[bytes, dict[str, str]]:
    """Decode, fill and encode one request (in a worker thread): the PNG and the headers describing the work.

    Known pixels come back bit-identical; an empty mask returns the image unchanged.
    """
    start = time.perf_counter()
    img, hole = decode_upload(job.image, job.mask, job.max_pixels)
    rgb = np.array(img)  # a writable copy, as torch.from_numpy wants
    holes = int(hole.sum())
    if holes == 0:
        out = rgb
    elif bool(hole.all()):
        raise HTTPException(400, "the mask covers the whole image: there is no context to fill from")
    else:
        out = np.where(hole[..., None], _fill(job, registry, img, rgb, hole), rgb)
    fill_s = time.perf_counter() - start
    buf = io.BytesIO()
    Image.fromarray(out).save(buf, "PNG", compress_level=png_level)
    total = time.perf_counter() - start
    log.info(
        "%s %s: %dx%d, %d hole px, %.2f s (%.2f s decode and fill, %.2f s PNG)",
        job.method,
        job.model or "",
        rgb.shape[1],
        rgb.shape[0],
        holes,
        total,
        fill_s,
        total - fill_s,
    )
    headers = {"X-Inpaint-Method": job.method, "X-Inpaint-Hole-Pixels": str(holes), "X-Inpaint-Seconds": f"{total:.3f}"}
    if job.model:
        headers["X-Inpaint-Model"] = job.model
    return buf.getvalue(), headers
