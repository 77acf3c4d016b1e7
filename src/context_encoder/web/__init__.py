"""Local web app: paint a hole in the browser, fill it with a model or a classical method, compare, download.

Needs the `web` extra (`pip install 'context-encoder[web]'`: FastAPI, uvicorn, python-multipart); they are
imported only when this subpackage's app module is used.

    context-encoder serve --checkpoint runs/scenes128-center/checkpoints/best.pt
    from context_encoder.web import create_app, serve
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ContextEncoderError

if TYPE_CHECKING:
    from .app import create_app, serve

__all__ = ["WebExtraMissing", "create_app", "serve"]


class WebExtraMissing(ContextEncoderError, ImportError):
    """FastAPI, uvicorn or python-multipart is not installed (the command line prints the install hint)."""


def __getattr__(name: str) -> Any:
    """Import FastAPI only when `create_app` or `serve` is first used."""
    if name in ("create_app", "serve"):
        try:
            from . import app
        except ImportError as exc:
            missing = exc.name or str(exc)
            raise WebExtraMissing(
                f"the web app needs {missing}: pip install 'context-encoder[web]' (fastapi, uvicorn, python-multipart)"
            ) from exc
        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
