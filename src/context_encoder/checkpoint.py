"""Checkpoints: written atomically, read with `weights_only=True`, self-describing (they hold the config)."""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import Config, config_from_dict
from .errors import CheckpointError, ContextEncoderError, first_line
from .outputs import atomic_write

FORMAT = "context-encoder/1"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` via a temporary file, fsync and rename: a crash never leaves half a file.

    A failed write (full disk) is an `OutputError` and leaves the previous checkpoint as it was.
    """
    path = Path(path)
    with atomic_write(path) as f:
        try:
            torch.save({"format": FORMAT, **payload}, f)
        except RuntimeError as exc:  # torch's writer reports the file's OSError as its own error
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, OSError):
                raise cause from None
            raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (no arbitrary pickle); a missing or foreign file is a `CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / "last.pt"
        path = candidate if candidate.is_file() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        raise CheckpointError(
            f"{path} is a model weights file, not a training checkpoint: inpaint --model and load_model take it; "
            "export and train --resume need a checkpoint (.pt) or a run directory"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's own text suggests weights_only=False: never here
        if "global" in str(exc).lower():  # "Unsupported global: GLOBAL x.Y was not an allowed global"
            raise CheckpointError(
                f"{path} is not a plain checkpoint (it needs pickle, which is refused for safety)"
            ) from None
        raise CheckpointError(f"cannot read checkpoint {path}: damaged, or not a PyTorch file") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a context-encoder checkpoint")
    state["path"] = str(path)
    return state


def checkpoint_config(state: dict[str, Any]) -> Config:
    """The config a checkpoint was trained with; a missing or invalid one is a `CheckpointError`."""
    where = state.get("path", "the checkpoint")
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{where} holds no config (it cannot rebuild its model)")
    try:
        return config_from_dict(state["config"])
    except ContextEncoderError as exc:
        raise CheckpointError(f"{where}: its config is invalid: {exc}") from None


def generator_weights(state: dict[str, Any], ema: bool = True) -> tuple[dict[str, Any], bool]:
    """(G's state dict, whether it is the moving average): the EMA weights when kept and `ema`, else G's own.

    The one place that choice is made: export, inference and the feature probes all read G through it.
    """
    if ema and state.get("generator_ema"):
        weights, is_ema = state["generator_ema"], True
    elif state.get("generator"):
        weights, is_ema = state["generator"], False
    else:
        raise CheckpointError(f"{state.get('path', 'the checkpoint')} holds no generator weights")
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise CheckpointError(f"{state.get('path', 'the checkpoint')}: its generator weights are not tensors")
    return weights, is_ema


def non_finite(tensors: Iterable[tuple[str, Tensor]]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity (one host sync per call)."""
    named = [(k, v) for k, v in tensors if v.is_floating_point() and v.numel()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(v).all() for _, v in named]).cpu()
    return [k for (k, _), ok in zip(named, finite.tolist()) if not ok]


def check_finite(weights: dict[str, Tensor], where: str | Path) -> None:
    """Refuse weights with NaN or infinite values (a diverged run) with a one-line `CheckpointError`."""
    bad = non_finite(weights.items())
    if bad:
        raise CheckpointError(
            f"{where}: {len(bad)} of {len(weights)} weight tensors hold NaN or infinite values (first: {bad[0]}); "
            "the training run diverged"
        )
