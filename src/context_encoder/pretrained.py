"""Shipped models: safetensors weights with their config and training summary, inside the package.

    context-encoder models                 # list them
    gen, cfg = context_encoder.load_pretrained("scenes-center")

Each model is one file `weights/<name>.safetensors`: the generator's (EMA) weights in fp16 and, in the
file's metadata, the resolved training config, the training data and steps and the held-out metrics.
Loading reads no network and no pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .checkpoint import checkpoint_config, load_checkpoint
from .config import Config, config_from_dict
from .errors import CheckpointError, InputError
from .models import Generator, count_parameters, make_generator
from .safetensors_io import load_file, metadata, save_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def list_pretrained() -> dict[str, dict[str, Any]]:
    """name -> summary (config, data, steps, metrics, ...) of every shipped model."""
    out = {}
    for path in sorted(WEIGHTS_DIR.glob("*.safetensors")):
        meta = metadata(path)
        out[path.stem] = {
            "file": str(path),
            "megabytes": round(path.stat().st_size / 2**20, 1),
            **{k: json.loads(v) for k, v in meta.items()},
        }
    return out


def is_pretrained(name: str) -> bool:
    return (WEIGHTS_DIR / f"{name}.safetensors").is_file()


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[Generator, Config]:
    """A generator from a safetensors file written by `export`; corrupt or mismatched files raise."""
    meta = metadata(path)
    if "config" not in meta:
        raise CheckpointError(f"{path} has no context-encoder config in its metadata")
    cfg = config_from_dict(json.loads(meta["config"]))
    state = load_file(path)
    gen = make_generator(cfg.model, cfg.full_image)
    reference = gen.state_dict()
    if set(state) != set(reference) or any(state[k].shape != reference[k].shape for k in state):
        raise CheckpointError(f"corrupt weights file {path}: tensors do not match the model in its config")
    gen.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    return gen.to(device).eval(), cfg


def load_pretrained(name: str, device: str | torch.device = "cpu") -> tuple[Generator, Config]:
    """The shipped generator `name` (eval mode) and its training config."""
    if not is_pretrained(name):
        known = ", ".join(list_pretrained()) or "none installed"
        raise InputError(f"unknown model '{name}' (known: {known})")
    return load_weights(WEIGHTS_DIR / f"{name}.safetensors", device)


def export(
    checkpoint: str | Path, out: str | Path, info: dict[str, Any] | None = None, dtype: torch.dtype = torch.float16
) -> Path:
    """Write a checkpoint's generator (EMA weights when kept) as safetensors with config and `info` metadata."""
    state = load_checkpoint(checkpoint)
    cfg = checkpoint_config(state)
    weights = state.get("generator_ema") or state["generator"]
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.items()}
    gen = make_generator(cfg.model, cfg.full_image)
    meta = {
        "config": cfg.to_dict(),
        "steps": int(state["step"]),
        "parameters": count_parameters(gen),
        "ema": "generator_ema" in state,
        **(info or {}),
    }
    return save_file(tensors, out, {k: json.dumps(v) for k, v in meta.items()})
