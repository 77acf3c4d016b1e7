"""The models a server offers: named factories, each loaded on first use and kept, with what is known about them."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from ..errors import CheckpointError, ContextEncoderError, first_line
from ..inpaint import Inpainter
from ..loading import load_model, preferred_models

log = logging.getLogger(__name__)

ModelFactory = Callable[[], Inpainter]


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
        """The model used when a request names none: the shipped model `inpaint` takes for a painted hole
        (`loading.preferred_models`) when this server offers it, else the first."""
        for preferred in preferred_models(arbitrary_holes=True):
            if preferred in self._factories:
                return preferred
        return next(iter(self._factories), None)

    def check(self, name: str) -> None:
        """400 for a name this server does not offer, listing the ones it does."""
        if name not in self._factories:
            known = ", ".join(self._factories) or "none: start the server with --model or --checkpoint"
            raise HTTPException(400, f"unknown model '{name}' (known: {known})")

    def get(self, name: str) -> Inpainter:
        """The model `name`, loading it on first use; concurrent first uses load it once.

        A factory that fails is the server's problem, not the request's: its exception passes on (the app
        answers 500 with an id and logs the traceback; the answer does not repeat its message, which may
        name files on the server).
        """
        try:
            return self._load(name)
        except Exception:
            log.error("could not load model %s", name)
            raise

    def _load(self, name: str) -> Inpainter:
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

    def load_all(self) -> None:
        """Load every model now, as a server does before it listens: the first that fails raises a
        `CheckpointError` of one line naming the model, its file and the problem."""
        for name in self._factories:
            try:
                self._load(name)
            except ContextEncoderError as exc:  # its message names the file already
                raise CheckpointError(f"model '{name}' cannot be loaded: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - a factory may fail in any way; its first line says how
                where = self._summaries[name].get("checkpoint") or self._summaries[name].get("file") or name
                raise CheckpointError(f"model '{name}' ({where}) cannot be loaded: {first_line(exc)}") from None

    def describe(self) -> list[dict[str, Any]]:
        """Name, whether loaded, and summary of each model, in order."""
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


def shipped_models(device: str = "cpu") -> tuple[dict[str, ModelFactory], dict[str, dict[str, Any]]]:
    """Factories (loading on `device`) and summaries of every model shipped with the package (possibly none)."""
    from ..pretrained import list_pretrained

    shipped = list_pretrained()
    return (
        {name: functools.partial(load_model, name, device=device) for name in shipped},
        {name: _shipped_summary(info) for name, info in shipped.items()},
    )


def checkpoint_name(path: Path) -> str:
    """A model name after the checkpoint: `best`, `RUN-best` for RUN/checkpoints/best.pt, `RUN` for a run directory."""
    if path.is_dir():
        return path.name
    if path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem


def checkpoint_models(path: Path, device: str = "cpu") -> tuple[dict[str, ModelFactory], dict[str, dict[str, Any]]]:
    """The factory (loading on `device`) and summary of the one model in `path` (a checkpoint file or run
    directory), by its name."""
    name = checkpoint_name(path)
    return {name: functools.partial(load_model, path, device=device)}, {name: {"checkpoint": str(path)}}
