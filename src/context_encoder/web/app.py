"""The FastAPI app: the painting page in `static/` and the API routes, each a few lines handing the work to
`forms`, `fill`, `work` and `registry`; and `serve`, which runs it with uvicorn.

The event loop only parses forms and reads image headers; decoding, filling and encoding run in the
`WorkQueue`'s threads, so `/healthz` and the page stay responsive while images are being filled. Every
request first passes the `Guard` (Host and Origin checks, security headers); an upload takes a place in
the queue before its body is read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..decode import SERVER_MAX_PIXELS
from ..errors import InputError
from . import fill
from .forms import read_form
from .guard import LOCAL_HOSTS, AccessPolicy, Guard
from .registry import ModelFactory, ModelRegistry, checkpoint_models, shipped_models
from .schemas import (
    INPAINT_RESPONSES,
    TICKET_DESCRIPTION,
    CancelResult,
    Health,
    Limits,
    ModelInfo,
    ModelList,
    QueuePosition,
    inpaint_request_body,
)
from .work import TICKET, WorkQueue

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page loads nothing from elsewhere: scripts, styles and requests stay on this server; no site may frame it.
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP}
_DESCRIPTION = (
    "Paint a hole in a photo and fill it with a context encoder (Pathak et al., CVPR 2016) or a classical "
    "method. The page at `/` uses this API; images are processed in memory at full resolution and never stored."
)


def create_app(
    models: Mapping[str, ModelFactory] | None = None,
    *,
    max_bytes: int = 20 * 2**20,
    max_pixels: int = SERVER_MAX_PIXELS,
    workers: int = 1,
    queue_size: int = 8,
    read_timeout: float = 30.0,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
    png_level: int = 1,
    preload: bool = False,
) -> FastAPI:
    """The web app: the painting page at `/` and the API under `/api`.

    `models` maps names to factories that build an `Inpainter`; each is called on the first request that
    uses it, and the result is kept. The default is every model shipped with the package (possibly none:
    the classical methods work without models). `max_bytes` bounds the request body and `max_pixels` each
    image; `workers` threads fill images while up to `queue_size` further requests wait. A request takes
    its place before its body is read (503 when there is none), so at most `workers + queue_size` bodies
    are in memory; a body must arrive within `read_timeout` seconds (408). Requests are answered for the
    Host names localhost, 127.0.0.1, [::1] and `allowed_hosts` (else 400), and POSTs only from the
    server's own pages and `allowed_origins` (else 403). `summaries` adds descriptions of the models;
    `png_level` is the zlib level of the returned PNG (1: fast, larger files; 9: slow, smallest). With
    `preload`, every model is loaded here, and one that cannot be is a `CheckpointError` naming it.
    """
    if models is None:
        models, shipped = shipped_models()
        summaries = {**shipped, **(summaries or {})}
    if max_bytes < 1 or max_pixels < 1 or read_timeout <= 0:
        raise ValueError("max_bytes, max_pixels and read_timeout must be positive")
    policy = AccessPolicy(allowed_hosts, allowed_origins)  # a malformed entry is refused before models load
    registry = ModelRegistry(models, summaries or {})
    if preload:
        registry.load_all()
    queue = WorkQueue(workers, queue_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # noqa: ANN202
        yield
        queue.shutdown()

    app = FastAPI(title="Context Encoder inpainting", version=_version(), description=_DESCRIPTION, lifespan=lifespan)
    app.state.registry, app.state.queue = registry, queue
    app.add_middleware(Guard, policy=policy)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    limits = Limits(max_bytes=max_bytes, max_pixels=max_pixels, read_timeout=read_timeout)
    _service_routes(app, queue)
    _inpainting_routes(app, registry, queue, limits, png_level)
    return app


def _service_routes(app: FastAPI, queue: WorkQueue) -> None:
    """The painting page and the liveness check."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)

    @app.get("/healthz", response_model=Health, summary="Liveness check", tags=["service"])
    async def healthz() -> Health:
        """Answers at once, also while images are being filled, with the state of the inference queue."""
        return Health(queue=queue.stats())


def _inpainting_routes(app: FastAPI, registry: ModelRegistry, queue: WorkQueue, limits: Limits, png_level: int) -> None:
    """The API: the models and methods, the fill, where a request stands in the queue, and cancelling it."""

    @app.get("/api/models", response_model=ModelList, summary="List the models and fill methods", tags=["inpainting"])
    async def list_models() -> ModelList:
        """The models this server offers (name plus whatever summary is known), the fill methods and the
        upload limits."""
        return ModelList(
            default=registry.default,
            models=[ModelInfo(**m) for m in registry.describe()],
            methods=fill.method_list(registry),
            limits=limits,
        )

    @app.post(
        "/api/inpaint",
        summary="Fill the holes of an image",
        response_class=Response,
        responses=INPAINT_RESPONSES,
        openapi_extra={"requestBody": inpaint_request_body()},
        tags=["inpainting"],
    )
    async def inpaint(request: Request, ticket: str | None = Query(None, description=TICKET_DESCRIPTION)) -> Response:
        """Send the image and a same-size mask as multipart/form-data; the answer is the filled image at the
        input's full resolution, as PNG or in the `format` asked for. In a PNG answer pixels outside the hole
        are returned bit-identical (with `feather`, those at least feather + 1 px from it); an empty mask
        returns the image unchanged. With a `ticket`, GET /api/queue tells where the request stands and POST
        /api/cancel cancels it. A request cancelled, or whose client disconnects, before its turn is dropped;
        one that has started stops at its next cancel point (between the stages, and at each torch operation
        of a model or of the texture synthesis) and frees its worker for the next request at once."""
        with queue.admit(_checked(ticket)) as place:  # before the body is read: a refused upload is never buffered
            form = await read_form(request, limits.max_bytes, limits.read_timeout)
            job = fill.prepare(form, registry, limits.max_pixels)
            done = await place.run(fill.run, job, registry, png_level, gone=functools.partial(_disconnect, request))
        disposition = f'inline; filename="inpainted.{done.extension}"'
        headers = {**done.headers, "Cache-Control": "no-store", "Content-Disposition": disposition}
        return Response(done.body, media_type=done.media_type, headers=headers)

    @app.get("/api/queue", response_model=QueuePosition, summary="Where a request stands", tags=["inpainting"])
    async def queue_position(ticket: str | None = Query(None, description=TICKET_DESCRIPTION)) -> QueuePosition:
        """The stage of the POST /api/inpaint sent with this `ticket` and the number of fills it waits for;
        without a ticket, what a request sent now would wait for. Answers at once, also while images are
        being filled: a page polls it to show its place in the queue."""
        return QueuePosition(**queue.position(_checked(ticket)))

    @app.post("/api/cancel", response_model=CancelResult, summary="Cancel a request", tags=["inpainting"])
    async def cancel(ticket: str = Query(description=TICKET_DESCRIPTION)) -> CancelResult:
        """Cancel the POST /api/inpaint sent with this `ticket`. Waiting for a thread, it is dropped at once;
        running, it stops at its next cancel point and the next request starts without waiting for it (what
        cannot be stopped: one OpenCV Telea or PatchMatch call, decoding the image, loading a model). The
        cancelled request is answered 499. Answers at once."""
        return CancelResult(state=queue.cancel(_checked(ticket)))


_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def _checked(ticket: str | None) -> str | None:
    """The ticket, or 400 when it is no `TICKET` (a client's own token, never one of the server's)."""
    if ticket is not None and not TICKET.fullmatch(ticket):
        raise HTTPException(400, "ticket must be 8-64 letters, digits, '-' or '_'")
    return ticket


async def _disconnect(request: Request) -> None:
    """Returns once the client has closed the connection; to be awaited only after the body has been read (the
    client then has nothing more to send: the server's next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _version() -> str:
    from .. import __version__

    return __version__


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | None = None,
    checkpoint: str | None = None,
    *,
    allowed_hosts: Sequence[str] = (),
    allowed_origins: Sequence[str] = (),
    max_connections: int = 64,
    device: str = "cpu",
    **limits: Any,
) -> None:
    """Run the web app with uvicorn until interrupted, printing its URL first.

    Offers every shipped model, only `model`, or only the generator of `checkpoint` (a .pt file or run
    directory; the model is named after the file). Every model is loaded before the server listens: one
    that cannot be is a `CheckpointError` naming its file and the problem. Requests are answered for `host`
    too (unless it is a wildcard such as 0.0.0.0: then name the addresses clients use in `allowed_hosts`). Beyond
    `max_connections` open connections uvicorn answers 503. Models run on `device`. `limits` go to
    `create_app` (max_bytes, max_pixels, workers, queue_size, read_timeout).
    """
    import uvicorn

    if model is not None and checkpoint is not None:
        raise InputError("pass --model or --checkpoint, not both")
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():
            raise InputError(f"no checkpoint at {path}")
        factories, summaries = checkpoint_models(path, device)
    else:
        factories, summaries = shipped_models(device)
        if model is not None:
            if model not in factories:
                raise InputError(f"unknown model '{model}' (known: {', '.join(factories) or 'none installed'})")
            factories = {model: factories[model]}
        elif not factories:
            log.warning("no shipped models installed: only the classical methods work (pass --checkpoint CKPT)")
    hosts = list(allowed_hosts)
    if host in _WILDCARD_HOSTS:
        log.warning("listening on all addresses: only %s are answered; add --allow-host NAME", "/".join(LOCAL_HOSTS))
    else:
        hosts.append(host)
    app = create_app(
        factories, summaries=summaries, allowed_hosts=hosts, allowed_origins=allowed_origins, preload=True, **limits
    )
    shown = f"[{host}]" if ":" in host else host
    print(f"context-encoder web app: http://{shown}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", limit_concurrency=max_connections)
