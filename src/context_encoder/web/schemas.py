"""The API's schema: pydantic models of the JSON answers and of the inpainting form, and the OpenAPI parts
FastAPI cannot infer for a form the app streams itself (its body and its answers' headers).

This and the routes' docstrings are the one description of the HTTP API; FastAPI serves it at
`/openapi.json` and `/docs`. The fill methods a form may name, and the refiners, are read from the registry
(`context_encoder.methods`): the network and the classical methods marked `featured`.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from ..methods import NETWORK, entries, names
from .work import CLIENT_GONE

_CLASSICAL = entries("classical", featured=True)  # the classical methods the web app offers
Method = Literal[(NETWORK.name, *(m.name for m in _CLASSICAL))]  # type: ignore[valid-type]
Refine = Literal[names("refiner")]  # type: ignore[valid-type]
METHODS: tuple[str, ...] = get_args(Method)
MAX_FEATHER = 64  # px: the widest soft edge a request may ask for (its cost grows with the width)
TICKET_DESCRIPTION = (
    "a token the client chooses (8-64 letters, digits, `-` or `_`; a random one, so that others cannot guess "
    "it) to name its request while it is in the queue"
)


class ModelInfo(BaseModel):
    name: str = Field(description="the value to send as the form field `model`")
    loaded: bool = Field(description="whether the model is already in memory (the first request loads it)")
    summary: dict[str, Any] = Field(
        description="what is known about it: shipped models data, steps, metrics, image size and mask kind; "
        "others image size and mask kind once loaded"
    )


class MethodInfo(BaseModel):
    name: Method = Field(description="the value to send as the form field `method`")
    kind: Literal["network", "classical"] = Field(description="a trained model, or a fill from the photo alone")
    label: str = Field(description="how the page's menu names it")
    available: bool = Field(
        description="false: `model` on a server without models, a classical method without its packages (the "
        "`baselines` extra)"
    )
    description: str


class Limits(BaseModel):
    max_bytes: int = Field(description="the largest request body accepted, in bytes (413 beyond)")
    max_pixels: int = Field(description="the most pixels an image or mask may have (413 beyond)")
    read_timeout: float = Field(description="seconds a request body may take to arrive (408 beyond)")


class ModelList(BaseModel):
    default: str | None = Field(description="the model used when a request names none")
    models: list[ModelInfo]
    methods: list[MethodInfo]
    limits: Limits


class QueueState(BaseModel):
    workers: int = Field(description="threads that fill images")
    running: int = Field(description="requests being filled now")
    waiting: int = Field(description="requests admitted and read, waiting for a thread")
    stopping: int = Field(
        description="cancelled requests still stopping in their thread: they hold a place but no longer a worker"
    )
    uploading: int = Field(description="requests admitted, still sending their body or being checked")
    queue_size: int = Field(
        description="places beyond the workers; a request finding all `workers + queue_size` taken gets 503"
    )


class QueuePosition(BaseModel):
    state: Literal["uploading", "waiting", "running"] | None = Field(
        description="the request with this ticket: `uploading` (admitted, its body arriving or being checked), "
        "`waiting` (for a thread), `running` (being filled); null when no admitted request has the ticket (not "
        "yet admitted, already answered, or no ticket given)"
    )
    ahead: int = Field(
        description="how many of the running and earlier waiting fills must end before this request can start "
        "(0 once a thread is free for it); with state null, what a request sent now would wait for"
    )
    running: int = Field(description="requests being filled now")
    waiting: int = Field(description="requests waiting for a thread (those whose client has gone are not counted)")
    workers: int = Field(description="threads that fill images")


class CancelResult(BaseModel):
    state: Literal["uploading", "waiting", "running"] | None = Field(
        description="what the request with this ticket was doing when it was cancelled: `uploading` (it will not "
        "be filled), `waiting` (dropped from the queue at once), `running` (it stops at its next cancel point, and "
        "the next request no longer waits for it); null when no admitted request has the ticket (not yet "
        "admitted, or already answered): nothing was cancelled"
    )


class Health(BaseModel):
    status: str = "ok"
    queue: QueueState


class InpaintFields(BaseModel):
    """The text fields of the inpainting form; each may be left out."""

    model: str | None = Field(None, description="a name from GET /api/models (default: the first)")
    method: Method = Field(
        NETWORK.name,
        description=f"`{NETWORK.name}` fills with the context encoder; the classical baselines to compare with: "
        + "; ".join(f"`{m.name}`, {m.description}" for m in _CLASSICAL),
    )
    blend: bool | None = Field(
        None,
        description="method `model` only: blend each fill into its surroundings (a harmonic correction, like "
        "Poisson blending) or not; left out, the model's own setting",
    )
    flip_average: bool | None = Field(
        None,
        description="method `model` only: average the fills of each hole's window as it is and mirrored (about "
        "twice the generator work) or not; left out, the model's own setting",
    )

    refine: Refine | None = Field(
        None,
        description="method `model` only, what is done with the network's fill: "
        + "; ".join(f"`{m.name}`, {m.description}" for m in entries("refiner"))
        + "; left out, the model's own",
    )

    feather: int = Field(
        0,
        ge=0,
        le=MAX_FEATHER,
        description="any method: the width in px of a soft edge around the holes. The pixels closer to a hole "
        "than feather + 1 px are filled too and mixed with the photo, the fill weighing 1 - d / (feather + 1) at "
        "d px; 0, the default, changes only the hole pixels",
    )

    format: Literal["png", "jpeg", "webp", "input"] = Field(
        "png",
        description="the answer's format: `png` (the default: lossless, known pixels bit-identical, transparency "
        "kept), `jpeg` or `webp` (quality 95; a JPEG photo as JPEG keeps its own quantisation tables), or `input`: "
        "the image's own, JPEG for a JPEG, WebP for a WebP and PNG for any other; EXIF (less the orientation) and "
        "DPI are kept",
    )

    def options(self) -> dict[str, bool | str]:
        """The inference options this request sets (empty: the model's own options)."""
        chosen = {"blend": self.blend, "flip_average": self.flip_average, "refine": self.refine}
        return {name: value for name, value in chosen.items() if value is not None}


_FILES = {
    "image": "the photo: any format Pillow reads (PNG, JPEG, WebP, ...), any size up to the pixel limit; EXIF "
    "orientation is applied; the methods see transparency on white, a PNG or WebP answer keeps it",
    "mask": "an image of the same size (PNG): non-zero pixels (in any of R, G, B) are the hole; several holes "
    "of any shape are fine",
}


def _form_property(prop: dict[str, Any]) -> dict[str, Any]:
    """A form has no null, an optional field is left out: `anyOf [T, null]` becomes T, a null default goes."""
    prop = dict(prop)
    kinds = [kind for kind in prop.pop("anyOf", []) if kind.get("type") != "null"]
    if kinds:
        prop.update(kinds[0])
    if "default" in prop and prop["default"] is None:
        del prop["default"]
    return prop


def inpaint_request_body() -> dict[str, Any]:
    """The OpenAPI request body of POST /api/inpaint: the two files and `InpaintFields`."""
    files = {name: {"type": "string", "format": "binary", "description": text} for name, text in _FILES.items()}
    fields = InpaintFields.model_json_schema()["properties"]
    schema = {
        "type": "object",
        "required": list(_FILES),
        "properties": {**files, **{name: _form_property(prop) for name, prop in fields.items()}},
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    example = {"detail": "what went wrong, in one sentence"}
    answer = {"description": description, "content": {"application/json": {"example": example}}}
    return {**answer, "headers": headers} if headers else answer


INPAINT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the filled image, the input's size: RGB, or RGBA for a transparent photo answered as PNG "
        "or WebP; PNG, or the `format` asked for",
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "headers": {
            "X-Inpaint-Method": _header("the method that filled the image"),
            "X-Inpaint-Model": _header("the model that filled it (method `model` only)"),
            "X-Inpaint-Hole-Pixels": _header("the number of hole pixels in the mask"),
            "X-Inpaint-Seconds": _header("the server's time for decoding, filling and encoding"),
        },
    },
    400: _error(
        "not a decodable image or mask; a mask of another size than the (EXIF-oriented) image or covering all of "
        "it; an unknown model or method, a bad option value or ticket; a malformed form or a missing file; a Host "
        "header this server does not answer for (any route)"
    ),
    403: _error("sent from a page of another origin (its Origin header) than the server's own or an allowed one"),
    408: _error("the body took longer than read_timeout to arrive (see GET /api/models); the connection is closed"),
    413: _error(
        "a request body over max_bytes (checked from Content-Length and while streaming), or an image with more "
        "than max_pixels pixels (read from its header, before decoding); see GET /api/models"
    ),
    500: _error(
        "a model that fails to load, or an unexpected failure: 'internal error (id ...)', the id of the traceback "
        "in the server's log"
    ),
    501: _error("a classical method asked for whose packages (the `baselines` extra) are not installed"),
    CLIENT_GONE: _error(
        "the request was cancelled (POST /api/cancel) or its client closed the connection: dropped before it "
        "started, or stopped at its next cancel point (the answer is mostly for the server's log)"
    ),
    503: _error(
        "every place in the queue is taken: decided before the body is read, which is then dropped (not sent at "
        "all after `Expect: 100-continue`); the connection is closed",
        **{"Retry-After": _header("seconds after which a place in the queue is expected to be free")},
    ),
}
