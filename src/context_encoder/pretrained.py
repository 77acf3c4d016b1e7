"""Shipped models: safetensors weights with their config, inference options and training summary.

    context-encoder models                                   # list them
    inpainter = context_encoder.load_model("scenes128-center")  # load one (context_encoder.loading)

Each model is one file `weights/<name>.safetensors`: the generator's (EMA) weights in fp16 and, in the
file's metadata, the resolved training config, the `InferenceOptions` it was measured with, the
training data and steps and the held-out metrics. `export` writes the same format from any checkpoint;
`export_onnx` writes the generator as an ONNX graph with the same metadata. Reading needs no network and
no pickle.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_finite, checkpoint_config, generator_weights, load_checkpoint, non_finite
from .config import Config, config_from_dict
from .errors import CheckpointError, ContextEncoderError, InputError
from .models import count_parameters, make_generator
from .options import InferenceOptions
from .outputs import atomic_write
from .safetensors_io import load_file, metadata, save_file

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_names() -> list[str]:
    """Names of the models inside the package, sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def shipped_path(name: str) -> Path | None:
    """The weights file of the shipped model `name`, or None. Only listed names resolve: a name is
    never joined to the weights folder as a path, so `../x` cannot reach outside it."""
    return WEIGHTS_DIR / f"{name}.safetensors" if name in shipped_names() else None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A weights file's metadata with every value decoded from JSON; a value that is not JSON raises."""
    out = {}
    for key, value in metadata(path).items():
        try:
            out[key] = json.loads(value)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{path}: its metadata '{key}' is not valid JSON") from None
    return out


def read_generator(source: str | Path, ema: bool = True) -> tuple[torch.nn.Module, Config, InferenceOptions]:
    """The generator (eval mode, CPU), its config and stored inference options from a shipped model name, a
    `.safetensors` file, a checkpoint (`.pt`) or a run directory: what `load_model` and `train.init` read.

    Weights files give the options they store, checkpoints `InferenceOptions()`; `ema=False` reads a
    checkpoint's raw generator weights instead of their moving average.
    """
    name = str(source)
    shipped = shipped_path(name) if isinstance(source, str) else None
    path = shipped or Path(source)
    if path.exists():
        return _read_weights(path) if path.suffix == ".safetensors" else _read_checkpoint(path, ema)
    if path.suffix or len(path.parts) > 1:
        raise InputError(f"model file not found: {path}")
    known = ", ".join(shipped_names()) or "none installed"
    raise InputError(f"no shipped model or file named '{name}' (shipped models: {known})")


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


def _load_state(gen: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load `state` into `gen`; weights of another shape, or with NaN or infinite values, are refused."""
    reference = gen.state_dict()
    if set(state) != set(reference) or any(state[k].shape != reference[k].shape for k in state):
        raise CheckpointError(f"{path}: the generator weights do not match the model its config describes")
    check_finite(state, path)
    gen.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})


def list_pretrained() -> dict[str, dict[str, Any]]:
    """name -> summary (config, inference options, data, steps, metrics, ...) of every shipped model."""
    out = {}
    for name in shipped_names():
        path = WEIGHTS_DIR / f"{name}.safetensors"
        out[name] = {"file": str(path), "megabytes": round(path.stat().st_size / 2**20, 1), **read_metadata(path)}
    return out


RESERVED = frozenset({"config", "steps", "parameters", "ema", "inference"})  # metadata export writes itself


def export(
    checkpoint: str | Path,
    out: str | Path,
    info: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float16,
    options: InferenceOptions | None = None,
) -> Path:
    """Write a checkpoint's generator (EMA weights when kept) as safetensors with its config, inference
    options (`options`, default `InferenceOptions()`) and `info` metadata.

    Weights with NaN or infinite values (a diverged run) are refused; the file is written atomically.
    """
    _check_info(info)
    state = load_checkpoint(checkpoint)
    weights, ema = generator_weights(state)
    check_finite(weights, state["path"])
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.items()}
    if non_finite(tensors.items()):
        raise InputError(f"{state['path']}: the weights exceed the range of {dtype}; export with --dtype fp32")
    meta = _metadata(state, ema, options, info)
    return save_file(tensors, out, {k: json.dumps(v) for k, v in meta.items()})


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    info: dict[str, Any] | None = None,
    options: InferenceOptions | None = None,
    opset: int = 17,
) -> Path:
    """Write a checkpoint's generator (EMA weights when kept, fp32, eval mode) as an ONNX model.

    Inputs: `image` (B, 3, S, S) in [-1, 1] with its hole already filled (`mask.fill`) and, for a
    residual generator, `mask` (B, 1, S, S) float, 1 in the hole; the batch size B is dynamic. Output:
    `prediction`, the generator's output ((B, 3, S/2, S/2) for centre models, (B, 3, S, S) for
    whole-image ones). The file's `metadata_props` carry the same JSON metadata as `export`'s. Needs the
    `onnx` extra; the file is written atomically.
    """
    _check_info(info)
    state = load_checkpoint(checkpoint)
    cfg = checkpoint_config(state)
    weights, ema = generator_weights(state)
    check_finite(weights, state["path"])
    gen = make_generator(cfg.model, cfg.full_image)
    gen.load_state_dict(weights)
    return write_onnx(gen, out, _metadata(state, ema, options, info), opset)


def write_onnx(gen: torch.nn.Module, out: str | Path, meta: dict[str, Any], opset: int = 17) -> Path:
    """Write a generator (any weights; exported in fp32, eval mode) as ONNX with `meta` (its "config" included)
    as JSON `metadata_props`; the inputs and output are `export_onnx`'s."""
    import onnx

    cfg = config_from_dict(meta["config"])
    gen = copy.deepcopy(gen).float().cpu().eval()
    s = cfg.model.image_size
    residual = bool(getattr(gen, "residual", False))
    args: tuple[torch.Tensor, ...] = (torch.zeros(2, 3, s, s),) + ((torch.zeros(2, 1, s, s),) if residual else ())
    names = ["image", "mask"][: len(args)]
    buffer = io.BytesIO()
    # The TorchScript exporter (dynamo=False) needs only the `onnx` package and traces these fixed-shape
    # networks exactly; the dynamo exporter would also need `onnxscript`, one more dependency for no gain here.
    with warnings.catch_warnings():  # the exporter's deprecation notice and the tracer's notes on shape asserts
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            gen,
            args,
            buffer,
            input_names=names,
            output_names=["prediction"],
            dynamic_axes={name: {0: "batch"} for name in [*names, "prediction"]},
            opset_version=opset,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    with atomic_write(out) as f:
        f.write(model.SerializeToString())
    return Path(out)


def onnx_metadata(path: str | Path) -> dict[str, Any]:
    """An ONNX file's `metadata_props`, each value decoded from JSON (needs the `onnx` extra)."""
    import onnx

    return {p.key: json.loads(p.value) for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _check_info(info: dict[str, Any] | None) -> None:
    reserved = set(info or {}) & RESERVED
    if reserved:
        raise InputError(f"the extra metadata may not set {', '.join(sorted(reserved))}: export writes those itself")


def _metadata(
    state: dict[str, Any], ema: bool, options: InferenceOptions | None, info: dict[str, Any] | None
) -> dict[str, Any]:
    """The metadata every exported file carries: config, steps, parameters, EMA, inference options, `info`."""
    cfg = checkpoint_config(state)
    return {
        "config": cfg.to_dict(),
        "steps": int(state["step"]),
        "parameters": count_parameters(make_generator(cfg.model, cfg.full_image)),
        "ema": ema,
        "inference": (options or InferenceOptions()).to_dict(),
        **(info or {}),
    }
