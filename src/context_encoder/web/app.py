"""The web app: a FastAPI server for the painting page in `static/` and a small HTTP API.

    POST /api/inpaint   multipart form: image, mask (PNG, non-zero = hole), model?, method? -> image/png
    GET  /api/models    the models this server offers, the fill methods and the upload limits
    GET  /healthz       liveness and the state of the inference queue

Uploads are parsed in memory (nothing is written to disk), checked against the byte and pixel limits
before any image is decoded, and filled in a thread pool behind a bounded queue: the event loop only
parses and checks requests, so `/healthz` and the page stay responsive while images are being filled,
and when more than `queue_size` requests wait the server answers 503 with a Retry-After header.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import io
import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field
from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from ..data import to_rgb
from ..errors import ContextEncoderError, InputError
from ..inpaint import Inpainter, _as_mask_array

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
METHODS = ("model", "telea")
ModelFactory = Callable[[], Inpainter]

_EXIF_ORIENTATION = 0x0112  # values 5-8 rotate by 90 degrees: width and height swap
_MAX_PARTS = 16
_MAX_FIELD_BYTES = 1024
# The page loads nothing from elsewhere: scripts, styles and requests stay on this server.
_CSP = "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'"


# ----------------------------------------------------------------------------------------------- models


class ModelRegistry:
    """Named model factories, each called at most once (on first use, in a worker thread) and cached."""

    def __init__(self, factories: Mapping[str, ModelFactory], summaries: Mapping[str, Mapping[str, Any]]):
        self._factories = dict(factories)
        self._summaries = {name: dict(summaries.get(name, {})) for name in self._factories}
        self._loaded: dict[str, Inpainter] = {}
        self._locks = {name: threading.Lock() for name in self._factories}

    @property
    def names(self) -> list[str]:
        return list(self._factories)

    @property
    def default(self) -> str | None:
        return next(iter(self._factories), None)

    def check(self, name: str) -> None:
        """400 for a name this server does not offer, listing the ones it does."""
        if name not in self._factories:
            known = ", ".join(self._factories) or "none: start the server with --model or --checkpoint"
            raise HTTPException(400, f"unknown model '{name}' (known: {known})")

    def get(self, name: str) -> Inpainter:
        """The model `name`, loading it on first use; concurrent first uses load it once."""
        with self._locks[name]:
            if name not in self._loaded:
                start = time.perf_counter()
                inpainter = self._factories[name]()
                self._loaded[name] = inpainter
                cfg = inpainter.cfg
                self._summaries[name].update(
                    image_size=cfg.model.image_size,
                    mask=cfg.mask.kind,
                    full_image=cfg.full_image,
                    parameters=sum(p.numel() for p in inpainter.gen.parameters()),
                )
                log.info("loaded model %s in %.2f s", name, time.perf_counter() - start)
            return self._loaded[name]

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "loaded": name in self._loaded, "summary": self._summaries[name]} for name in self._factories
        ]


def _shipped_summary(info: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a `list_pretrained()` entry worth showing (not the whole training config)."""
    cfg = info.get("config", {})
    out = {k: info[k] for k in ("data", "steps", "parameters", "megabytes", "metrics") if k in info}
    if cfg:
        out.update(image_size=cfg["model"]["image_size"], mask=cfg["mask"]["kind"])
    return out


def _load_shipped(name: str) -> Inpainter:
    from ..pretrained import load_pretrained

    return Inpainter(*load_pretrained(name))


def _load_checkpoint(path: Path) -> Inpainter:
    from ..inpaint import as_inpainter

    return as_inpainter(path)


def shipped_models() -> tuple[dict[str, ModelFactory], dict[str, dict[str, Any]]]:
    """Factories and summaries of every model shipped with the package (possibly none)."""
    from ..pretrained import list_pretrained

    shipped = list_pretrained()
    return (
        {name: functools.partial(_load_shipped, name) for name in shipped},
        {name: _shipped_summary(info) for name, info in shipped.items()},
    )


# ------------------------------------------------------------------------------------------------ queue


class WorkQueue:
    """A pool of `workers` threads that admits at most `queue_size` jobs waiting beyond the running ones.

    A job counts as pending from admission until its thread finishes it, even when the client that asked
    for it has gone away, so the bound holds for the work actually queued.
    """

    def __init__(self, workers: int, queue_size: int):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers, self.queue_size = workers, queue_size
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=32)

    def try_submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        """The job's future, or None when the queue is full."""
        with self._lock:
            if self._pending >= self.workers + self.queue_size:
                return None
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inpaint")
            executor = self._executor
        try:
            return executor.submit(self._run, fn, *args)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._pending -= 1
            return None

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._pending -= 1
                self._durations.append(time.perf_counter() - start)

    def retry_after(self) -> int:
        """Seconds after which a refused client may expect a free slot: the queue's expected drain time."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 1.0
            pending = self._pending
        return max(1, min(600, math.ceil(typical * pending / self.workers)))

    def stats(self) -> dict[str, int]:
        with self._lock:
            pending = self._pending
        return {
            "workers": self.workers,
            "running": min(pending, self.workers),
            "waiting": max(0, pending - self.workers),
            "queue_size": self.queue_size,
        }

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------------------- request parsing


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    data: bytearray = field(default_factory=bytearray)


class _Form:
    """The parts of a multipart/form-data body, kept in memory."""

    def __init__(self, parts: list[_Part]):
        self.parts = parts

    def _first(self, name: str) -> _Part | None:
        return next((p for p in self.parts if p.name == name), None)

    def file(self, name: str) -> bytearray:
        part = self._first(name)
        if part is None or not part.data:
            raise HTTPException(400, f"the form has no '{name}' file (send multipart/form-data: 'image' and 'mask')")
        return part.data

    def text(self, name: str) -> str | None:
        part = self._first(name)
        if part is None:
            return None
        if part.filename is not None or len(part.data) > _MAX_FIELD_BYTES:
            raise HTTPException(400, f"form field '{name}' must be a short text value")
        return part.data.decode("utf-8", errors="replace").strip() or None


async def _read_form(request: Request, max_bytes: int) -> _Form:
    """Stream the request body through a multipart parser, in memory, refusing more than `max_bytes` (413)."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(400, "send multipart/form-data with an 'image' file and a 'mask' file")
    too_large = HTTPException(413, f"the upload is larger than the limit of {max_bytes / 2**20:.1f} MiB")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large

    parts: list[_Part] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}
    headers: dict[bytes, bytes] = {}

    def on_part_begin() -> None:
        if len(parts) >= _MAX_PARTS:
            raise HTTPException(400, f"the form has more than {_MAX_PARTS} parts")
        parts.append(_Part())
        headers.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        headers[bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        part = parts[-1]
        part.name = disposition.get(b"name", b"").decode("utf-8", errors="replace")
        filename = disposition.get(b"filename")
        part.filename = None if filename is None else filename.decode("utf-8", errors="replace")
        part.content_type = headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data += data[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise HTTPException(400, f"malformed multipart/form-data body: {exc}") from None
    return _Form(parts)


# ----------------------------------------------------------------------------------------------- images


def _open(data: bytes | bytearray, what: str, max_pixels: int) -> Image.Image:
    """A lazily decoded image: only its header is read. 400 if it is no image, 413 if too many pixels."""
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the {what} has more than the limit of {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise HTTPException(400, f"the {what} is not in an image format this server can read") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise HTTPException(400, f"the {what} is not an image this server can decode ({exc})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise HTTPException(413, f"the {what} is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    if w < 1 or h < 1:
        raise HTTPException(400, f"the {what} is empty ({w}x{h})")
    return img


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after EXIF orientation, as the browser shows the image and `to_rgb` decodes it.

    Reads only EXIF found with the header (JPEG, WebP, an early PNG eXIf chunk): `getexif()` would
    decode a whole PNG here, on the event loop.
    """
    w, h = img.size
    raw = img.info.get("exif")
    if not raw:
        return w, h
    try:
        exif = Image.Exif()
        exif.load(raw)
        rotated = exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as `to_rgb` does
        rotated = False
    return (h, w) if rotated else (w, h)


def _decode(img: Image.Image, what: str) -> Image.Image:
    try:
        img.load()
        return img
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"the {what} is too large to decode ({exc})") from None
    except Exception as exc:  # noqa: BLE001
        raise HTTPException(400, f"the {what} could not be decoded ({exc})") from None


def _mask_image(img: Image.Image) -> Image.Image:
    """A mask in a mode whose pixel values mean hole (non-zero) or known: grey, palette or colour."""
    if img.mode in ("LA", "La"):
        return img.getchannel(0)
    if img.mode in ("1", "L", "P", "RGB", "RGBA", "I", "F") or img.mode.startswith("I;16"):
        return img
    return img.convert("RGB")


def _model(registry: ModelRegistry, name: str | None) -> Inpainter:
    """The loaded model; a factory that fails is the server's problem (500), not the request's."""
    assert name is not None
    try:
        return registry.get(name)
    except Exception as exc:
        log.exception("could not load model %s", name)
        raise HTTPException(500, f"could not load model '{name}': {exc}") from None


def _telea(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """OpenCV's Telea fill of an (H, W, 3) uint8 image at full resolution."""
    import torch

    from ..baselines import opencv_fill

    fill = opencv_fill("telea")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    m = torch.from_numpy(hole)[None, None]
    out = fill(x, m)[0]
    return (out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@dataclass
class _Job:
    image: bytes | bytearray
    mask: bytes | bytearray
    method: str
    model: str | None
    max_pixels: int


def _process(job: _Job, registry: ModelRegistry, png_level: int) -> tuple[bytes, dict[str, str]]:
    """Decode, fill and encode one request (runs in a worker thread). Known pixels stay bit-identical."""
    start = time.perf_counter()
    img = to_rgb(_decode(_open(job.image, "image", job.max_pixels), "image"))
    rgb = np.array(img)  # a writable copy, as torch.from_numpy wants
    try:
        hole = _as_mask_array(_mask_image(_decode(_open(job.mask, "mask", job.max_pixels), "mask")))
    except InputError as exc:
        raise HTTPException(400, f"unusable mask: {exc}") from None
    if hole.shape != rgb.shape[:2]:
        raise HTTPException(
            400, f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {rgb.shape[1]}x{rgb.shape[0]}"
        )
    holes = int(hole.sum())
    if holes == 0:
        out = rgb
    elif bool(hole.all()):
        raise HTTPException(400, "the mask covers the whole image: there is no context to fill from")
    else:
        inpainter = _model(registry, job.model) if job.method == "model" else None
        try:
            filled = _telea(rgb, hole) if inpainter is None else np.asarray(inpainter(img, hole))
        except ContextEncoderError as exc:  # InputError among them: a hole this model cannot fill
            raise HTTPException(400, str(exc)) from None
        out = np.where(hole[..., None], filled, rgb)
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
    info = {
        "X-Inpaint-Method": job.method,
        "X-Inpaint-Hole-Pixels": str(holes),
        "X-Inpaint-Seconds": f"{total:.3f}",
    }
    if job.method == "model" and job.model:
        info["X-Inpaint-Model"] = job.model
    return buf.getvalue(), info


# ----------------------------------------------------------------------------------------------- schema


class ModelInfo(BaseModel):
    name: str = Field(description="the value to send as the form field `model`")
    loaded: bool = Field(description="whether the model is already in memory (the first request loads it)")
    summary: dict[str, Any] = Field(description="what is known about it: image size, mask kind, data, metrics, ...")


class MethodInfo(BaseModel):
    name: str = Field(description="the value to send as the form field `method`")
    available: bool
    description: str


class ModelList(BaseModel):
    default: str | None = Field(description="the model used when a request names none")
    models: list[ModelInfo]
    methods: list[MethodInfo]
    limits: dict[str, int] = Field(description="max_bytes (request body) and max_pixels (per image)")


class Health(BaseModel):
    status: str = "ok"
    queue: dict[str, int] = Field(description="workers, running and waiting jobs, queue_size")


_INPAINT_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image", "mask"],
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "binary",
                        "description": "the photo: any format Pillow reads (PNG, JPEG, WebP, ...), any size up to "
                        "the pixel limit; EXIF orientation is applied, transparency goes on white",
                    },
                    "mask": {
                        "type": "string",
                        "format": "binary",
                        "description": "an image of the same size (PNG): non-zero pixels (in any of R, G, B) "
                        "are the hole; several holes of any shape are fine",
                    },
                    "model": {"type": "string", "description": "a name from GET /api/models (default: the first)"},
                    "method": {
                        "type": "string",
                        "enum": list(METHODS),
                        "default": "model",
                        "description": "`model` fills with the context encoder, `telea` with OpenCV's Telea "
                        "method (a classical baseline to compare with)",
                    },
                },
            }
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"example": {"detail": "what went wrong, in one sentence"}}},
    }


# -------------------------------------------------------------------------------------------------- app


def create_app(
    models: dict[str, Callable[[], Inpainter]] | None = None,
    *,
    max_bytes: int = 20 * 2**20,
    max_pixels: int = 40_000_000,
    workers: int = 1,
    queue_size: int = 8,
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
    png_level: int = 1,
) -> FastAPI:
    """The web app: the painting page at `/` and the API under `/api`.

    `models` maps names to factories that build an `Inpainter`; each is called on the first request that
    uses it, and the result is kept. The default is every model shipped with the package (possibly none:
    the Telea method works without models). `max_bytes` bounds the request body and `max_pixels` each
    image (both 413 beyond); `workers` threads fill images while up to `queue_size` further requests wait
    (503 with Retry-After beyond). `summaries` adds descriptions shown by `GET /api/models`; `png_level`
    is the zlib level of the returned PNG (1: fast, larger files; 9: slow, smallest).
    """
    if models is None:
        models, shipped = shipped_models()
        summaries = {**shipped, **(summaries or {})}
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive")
    registry = ModelRegistry(models, summaries or {})
    queue = WorkQueue(workers, queue_size)
    telea_available = importlib.util.find_spec("cv2") is not None

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        yield
        queue.shutdown()

    app = FastAPI(
        title="Context Encoder inpainting",
        version=_version(),
        description="Paint a hole in a photo and fill it with a context encoder (Pathak et al., CVPR 2016) or "
        "OpenCV's Telea method. The page at `/` uses this API; images are processed in memory at full "
        "resolution and never stored.",
        lifespan=lifespan,
    )
    app.state.registry, app.state.queue = registry, queue

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP}
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get(
        "/healthz",
        response_model=Health,
        summary="Liveness check",
        description="Answers at once, also while images are being filled, with the state of the inference queue.",
        tags=["service"],
    )
    async def healthz() -> Health:
        return Health(queue=queue.stats())

    @app.get(
        "/api/models",
        response_model=ModelList,
        summary="List the models and fill methods",
        description="The models this server offers (name plus whatever summary is known; image size and mask "
        "kind once loaded), the fill methods and the upload limits.",
        tags=["inpainting"],
    )
    async def list_models() -> ModelList:
        return ModelList(
            default=registry.default,
            models=[ModelInfo(**m) for m in registry.describe()],
            methods=[
                MethodInfo(
                    name="model",
                    available=bool(registry.names),
                    description="the context encoder chosen with `model`",
                ),
                MethodInfo(
                    name="telea",
                    available=telea_available,
                    description="OpenCV's Telea fast-marching fill (classical baseline)",
                ),
            ],
            limits={"max_bytes": max_bytes, "max_pixels": max_pixels},
        )

    @app.post(
        "/api/inpaint",
        summary="Fill the holes of an image",
        description="Send the image and a same-size mask (non-zero = hole) as multipart/form-data; the answer is "
        "the filled image as PNG at the input's full resolution. Pixels outside the hole are returned "
        "bit-identical; an empty mask returns the image unchanged. Headers `X-Inpaint-Method`, "
        "`X-Inpaint-Model` and `X-Inpaint-Seconds` describe the work done.",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}}, "description": "the filled image (PNG, RGB, the input's size)"},
            400: _error("not an image, mask of another size, unknown model or method, malformed form"),
            413: _error("request body larger than max_bytes, or an image with more than max_pixels pixels"),
            501: _error("method `telea` asked for but OpenCV is not installed"),
            503: _error("too many requests waiting; retry after the number of seconds in Retry-After"),
        },
        openapi_extra={"requestBody": _INPAINT_FORM},
        tags=["inpainting"],
    )
    async def inpaint(request: Request) -> Response:
        form = await _read_form(request, max_bytes)
        method = form.text("method") or "model"
        if method not in METHODS:
            raise HTTPException(400, f"unknown method '{method}' (known: {', '.join(METHODS)})")
        model = form.text("model")
        if method == "model":
            model = model or registry.default
            if model is None:
                raise HTTPException(400, "this server has no models: use method 'telea' or start it with --checkpoint")
            registry.check(model)
        elif not telea_available:
            raise HTTPException(501, "method 'telea' needs OpenCV: pip install 'context-encoder[baselines]'")
        image_bytes, mask_bytes = form.file("image"), form.file("mask")
        # Cheap checks on the headers here; decoding and filling in the pool.
        image_size = _oriented_size(_open(image_bytes, "image", max_pixels))
        mask_size = _open(mask_bytes, "mask", max_pixels).size
        if mask_size != image_size:
            raise HTTPException(
                400, f"the mask is {mask_size[0]}x{mask_size[1]} but the image is {image_size[0]}x{image_size[1]}"
            )
        job = _Job(image_bytes, mask_bytes, method, model if method == "model" else None, max_pixels)
        future = queue.try_submit(_process, job, registry, png_level)
        if future is None:
            retry = queue.retry_after()
            raise HTTPException(503, f"the server is busy; try again in {retry} s", headers={"Retry-After": str(retry)})
        try:
            png, info = await asyncio.wrap_future(future)
        except HTTPException:
            raise
        except Exception as exc:
            log.exception("inpainting failed")
            raise HTTPException(500, f"inpainting failed: {type(exc).__name__}: {exc}") from None
        return Response(
            png,
            media_type="image/png",
            headers={**info, "Cache-Control": "no-store", "Content-Disposition": 'inline; filename="inpainted.png"'},
        )

    return app


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------------------------------ serve


def _checkpoint_name(path: Path) -> str:
    """A model name after the checkpoint file: `best`, or `RUN-best` for RUN/checkpoints/best.pt."""
    if path.is_dir():
        return path.name
    if path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    checkpoint: str | None = None,
    **limits: Any,
) -> None:
    """Run the web app with uvicorn until interrupted, printing its URL first.

    Offers every shipped model, only `model`, or only the generator of `checkpoint` (a .pt file or run
    directory; the model is named after the file). `limits` go to `create_app` (max_bytes, max_pixels,
    workers, queue_size).
    """
    import uvicorn

    if model is not None and checkpoint is not None:
        raise InputError("pass --model or --checkpoint, not both")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise InputError(f"no checkpoint at {path}")
        name = _checkpoint_name(path)
        app = create_app(
            {name: functools.partial(_load_checkpoint, path)}, summaries={name: {"checkpoint": str(path)}}, **limits
        )
    else:
        factories, summaries = shipped_models()
        if model is not None:
            if model not in factories:
                raise InputError(f"unknown model '{model}' (known: {', '.join(factories) or 'none installed'})")
            factories = {model: factories[model]}
        elif not factories:
            log.warning("no shipped models installed: only the Telea method works (pass --checkpoint CKPT)")
        app = create_app(factories, summaries=summaries, **limits)
    shown = f"[{host}]" if ":" in host else host
    print(f"context-encoder web app: http://{shown}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
