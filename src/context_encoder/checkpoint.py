"""Checkpoints: written atomically, read with `weights_only=True`, self-describing (they hold the config)."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import Config, config_from_dict
from .errors import CheckpointError

FORMAT = "context-encoder/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` via a temporary file, fsync and rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (no arbitrary pickle); a missing or foreign file is a `CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / "last.pt"
        path = candidate if candidate.is_file() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a context-encoder checkpoint")
    state["path"] = str(path)
    return state


def checkpoint_config(state: dict[str, Any]) -> Config:
    return config_from_dict(state["config"])


def generator_weights(state: dict[str, Any], ema: bool = True) -> tuple[dict[str, Any], bool]:
    """(G's state dict, whether it is the moving average): the EMA weights when kept and `ema`, else G's own.

    The one place that choice is made: export, inference and the feature probes all read G through it.
    """
    if ema and state.get("generator_ema"):
        return state["generator_ema"], True
    if not state.get("generator"):
        raise CheckpointError(f"{state.get('path', 'the checkpoint')} holds no generator weights")
    return state["generator"], False
