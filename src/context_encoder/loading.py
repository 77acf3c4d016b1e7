"""The one model loader: a shipped model name, a `.safetensors` file, a checkpoint or a run directory in,
a ready `Inpainter` out.

    inpainter = load_model("scenes128-center")              # shipped with the package
    inpainter = load_model("exported.safetensors")          # written by `context-encoder export`
    inpainter = load_model("runs/00000-cifar10")            # a run directory (its last checkpoint)
    inpainter = load_model("runs/x/checkpoints/best.pt", options=InferenceOptions(flip_average=False))
    filled = inpainter("photo.jpg", "holes.png")

The generator, its config (`inpainter.cfg`) and its options (`inpainter.options`) come from the file:
weights files store the options they were measured with; checkpoints take `InferenceOptions()`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .checkpoint import check_finite, checkpoint_config, generator_weights, load_checkpoint
from .config import Config, config_from_dict
from .errors import CheckpointError, ContextEncoderError, InputError
from .inpaint import InferenceOptions, Inpainter
from .models import make_generator
from .pretrained import read_metadata, shipped_names, shipped_path
from .safetensors_io import load_file

Source = Inpainter | str | Path


def load_model(
    source: Source,
    device: str | torch.device = "cpu",
    options: InferenceOptions | None = None,
    ema: bool = True,
    precision: str = "auto",
) -> Inpainter:
    """A ready `Inpainter` (generator in eval mode on `device`) from `source`.

    `source`: an `Inpainter` (returned as it is, or with `options`), the name of a shipped model
    (`context-encoder models`), a `.safetensors` file written by `export`, a checkpoint (`.pt`) or a
    run directory. `options` replace the ones the file stores; `ema=False` reads a checkpoint's raw
    generator weights instead of their moving average; `precision` is the generator's arithmetic
    ("auto", "fp32" or "bf16"; see `Inpainter`).
    """
    if isinstance(source, Inpainter):
        if precision not in ("auto", source.precision):
            source = Inpainter(source.gen, source.cfg, source.device, source.options, precision)
        return source if options is None else source.with_options(options)
    name = str(source)
    shipped = shipped_path(name) if isinstance(source, str) else None
    path = shipped or Path(source)
    if path.exists():
        gen, cfg, stored = _read_weights(path) if path.suffix == ".safetensors" else _read_checkpoint(path, ema)
    elif path.suffix or len(path.parts) > 1:
        raise InputError(f"model file not found: {path}")
    else:
        known = ", ".join(shipped_names()) or "none installed"
        raise InputError(f"no shipped model or file named '{name}' (shipped models: {known})")
    return Inpainter(gen, cfg, device, options or stored, precision)


HOLE_KINDS = ("square", "free-form")  # the keys of a shipped model's measured "ranking"


def preferred_models(arbitrary_holes: bool, made_for_only: bool = False) -> tuple[str, ...]:
    """Shipped models for a kind of hole, best measured first (with `made_for_only`, only those trained for it).

    Each shipped file stores a "ranking": {kind: mean hole PSNR} measured on one protocol per kind for
    every model (`python -m benchmarks.ship_models --rank`): "square" is the strict 128 px centre
    protocol (`benchmarks/centre128.py`), "free-form" the full-resolution brush-stroke protocol
    (`context_encoder.fullres`), both on photos no model trained on. Models are ordered by that score;
    a model without one follows, those trained for the kind of hole first, then by name.
    """
    kind = "free-form" if arbitrary_holes else "square"
    entries = []
    for name in shipped_names():
        meta = read_metadata(shipped_path(name))
        score = (meta.get("ranking") or {}).get(kind)
        made_for = config_from_dict(meta.get("config", {})).full_image == arbitrary_holes
        if made_for_only and not made_for:
            continue
        entries.append((score is None, -(score or 0.0), not made_for, name))
    return tuple(e[-1] for e in sorted(entries))


def default_model(arbitrary_holes: bool) -> str:
    """The shipped model `inpaint` uses when none is named: the first of `preferred_models`."""
    name = next(iter(preferred_models(arbitrary_holes)), None)
    if name is None:
        raise InputError("no shipped model installed: pass --model NAME|FILE.safetensors or --checkpoint CKPT")
    return name


def inpaint(
    model: Source,
    image: Image.Image | np.ndarray | str | Path,
    mask: Image.Image | np.ndarray | Tensor | str | Path,
    options: InferenceOptions | None = None,
) -> Image.Image:
    """Fill the holes of `image` (any size, any Pillow mode) where `mask` is non-zero.

    `model` is anything `load_model` takes: an `Inpainter`, a shipped model name, a weights file, a
    checkpoint or a run directory.
    """
    return load_model(model, options=options)(image, mask)


def _read_weights(path: Path) -> tuple[torch.nn.Module, Config, InferenceOptions]:
    """Generator, config and stored options of a safetensors file; corrupt or foreign files raise."""
    meta = read_metadata(path)
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} has no context-encoder config in its metadata")
    if not isinstance(meta.get("inference", {}), dict):
        raise CheckpointError(f"{path}: its metadata 'inference' is not a JSON object")
    try:
        cfg = config_from_dict(meta["config"])
        options = InferenceOptions.from_dict(meta.get("inference", {}))
    except ContextEncoderError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    gen = make_generator(cfg.model, cfg.full_image)
    _load_state(gen, load_file(path), path)
    return gen.eval(), cfg, options


def _read_checkpoint(path: Path, ema: bool) -> tuple[torch.nn.Module, Config, InferenceOptions]:
    state = load_checkpoint(path)
    cfg = checkpoint_config(state)
    gen = make_generator(cfg.model, cfg.full_image)
    _load_state(gen, generator_weights(state, ema)[0], Path(state["path"]))
    return gen.eval(), cfg, InferenceOptions()


def _load_state(gen: torch.nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Load `state` into `gen`; weights of another shape, or with NaN or infinite values, are refused."""
    reference = gen.state_dict()
    if set(state) != set(reference) or any(state[k].shape != reference[k].shape for k in state):
        raise CheckpointError(f"{path}: the generator weights do not match the model its config describes")
    check_finite(state, path)
    gen.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
