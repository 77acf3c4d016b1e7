"""Speed options resolved per device: `auto` means what the benchmarks measured fastest there.

Measured with `benchmarks/throughput.py` (numbers in `docs/performance.md`), torch 2.13 CPU:
- on a 2-core AMD EPYC with native bf16 (AVX-512 BF16), bf16 autocast trained 1.5-1.7x faster than
  fp32; on an AVX2-only EPYC (no native bf16) it was over 30x slower. So on a CPU `auto` picks bf16
  exactly when the CPU reports native bf16 instructions (x86 avx512_bf16 or amx_bf16), else fp32
  (ARM's bf16 extensions are not measured here, so ARM stays on fp32);
- channels-last: within +-10% of contiguous, so `auto` keeps contiguous on a CPU;
- `torch.compile`: about 40 s of compilation for a tiny model and no measured gain, so `auto` = off;
- fused Adam: about 4x faster optimizer step than the default, always on where available.
On CUDA `auto` = bf16 autocast where the GPU supports it (else fp16 with a grad scaler) and
channels-last, the usual fast settings for convnets on tensor cores (not measured here: no GPU).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

import torch

from .config import INFERENCE_PRECISIONS, TrainConfig
from .errors import ConfigError, InputError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Speed:
    """The resolved choices for one device."""

    precision: str  # "fp32" | "bf16" | "fp16"
    channels_last: bool
    compile: bool
    fused_adam: bool

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.precision)

    @property
    def needs_scaler(self) -> bool:
        return self.precision == "fp16"


def _on_off(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when this CPU has x86 bf16 arithmetic instructions (avx512_bf16 or amx_bf16), on any OS.

    Asks PyTorch's own CPU feature detection (cpuinfo, the library ATen dispatches on), which works on
    Linux, Windows and macOS alike. `torch.backends.cpu.get_cpu_capability()` is not enough: it names
    only the vector width ATen dispatches to ("AVX512" on CPUs with and without bf16), and oneDNN's
    `_is_mkldnn_bf16_supported` is also true on AVX-512 CPUs without bf16, where oneDNN emulates it.
    """
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        found = capabilities()
        return bool(found.get("avx512_bf16") or found.get("amx_bf16"))
    # older PyTorch: the same cpuinfo query for one flag (every CPU with AMX so far also has avx512_bf16)
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check()) if check is not None else False


def resolve_speed(t: TrainConfig, device: torch.device) -> Speed:
    """Turn the `auto`/`on`/`off` settings into concrete choices for `device`, warning on fallbacks."""
    cuda = device.type == "cuda"
    precision = t.precision
    if precision == "auto":
        if cuda:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"
    elif precision == "fp16" and device.type == "cpu":
        warnings.warn("train.precision='fp16' has no fast CPU kernels; training in fp32", stacklevel=2)
        precision = "fp32"
    compile_ = _on_off(t.compile, False)
    if compile_ and not hasattr(torch, "compile"):
        warnings.warn("torch.compile is not available in this PyTorch; running eagerly", stacklevel=2)
        compile_ = False
    fused = _on_off(t.fused_adam, device.type in ("cpu", "cuda"))
    if fused and device.type not in ("cpu", "cuda"):
        warnings.warn(f"fused Adam is not available on {device.type}; using the default Adam", stacklevel=2)
        fused = False
    return Speed(precision, _on_off(t.channels_last, cuda), compile_, fused)


def resolve_device(name: str, setting: str = "train.device") -> torch.device:
    """The device `name` (`config.DEVICES`) stands for: `auto` picks CUDA, then Apple's MPS, then the CPU.

    An explicitly requested device that is missing is a `ConfigError` naming the `setting` it came from
    (`train.device`, `--device`). The one resolver of training, the command line and the web app.
    """
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if name == "auto":
        return torch.device(next(k for k in ("cuda", "mps", "cpu") if available[k]))
    if not available.get(name, False):
        raise ConfigError(f"{setting}='{name}' was requested but is not available here (use 'auto' or 'cpu')")
    return torch.device(name)


def inference_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of inference for `precision` on `device` (None: plain fp32).

    "auto" is bf16 where the hardware does bf16 arithmetic natively (a CUDA GPU that supports it, an x86
    CPU with avx512_bf16 or amx_bf16) and fp32 elsewhere. Measured on a 2-core AMD EPYC with AVX-512 BF16
    (`python -m benchmarks.inference_speed`, docs/performance.md): the 128 px generators run 1.5-2.7x faster
    with bf16 and channels-last; their outputs stay within a level or two of 255 of fp32 (mean 1e-4).
    An unknown `precision` is an `InputError`.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got '{precision}'")
    if precision == "fp32":
        return None
    if device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
    else:
        native = device.type == "cpu" and cpu_has_native_bf16()
    if precision == "bf16" or native:
        return torch.bfloat16
    return None


class Precision:
    """Autocast and (for fp16) gradient scaling around the two optimizer steps."""

    def __init__(self, speed: Speed | None = None, device: torch.device | None = None):
        self.dtype = speed.amp_dtype if speed else None
        self.device_type = device.type if device is not None else "cpu"
        use_scaler = speed is not None and speed.needs_scaler
        self.scalers = {k: torch.amp.GradScaler(self.device_type) for k in ("g", "d")} if use_scaler else {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, which: str) -> None:
        """backward + optimizer step, through the grad scaler of network `which` ("g" or "d") when there is one."""
        scaler = self.scalers.get(which)
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, dict]:
        return {k: s.state_dict() for k, s in self.scalers.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for k, s in self.scalers.items():
            if k in state:
                s.load_state_dict(state[k])
