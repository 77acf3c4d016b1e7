"""Reading and writing safetensors files through the `safetensors` package (no pickle, no code execution).

The format and its parser are the reference implementation's (https://github.com/huggingface/safetensors):
an 8-byte header length, a JSON header naming each tensor's dtype, shape and byte range plus an optional
`__metadata__` of strings, then the raw tensor bytes; the package checks every range against the file.
What this module adds is this project's contract for files: writes are atomic (a full disk leaves the
previous file as it was) and any malformed, truncated or missing file is one `CheckpointError` line
naming the file. Refusing NaN or infinite weights is the loader's job (`checkpoint.check_finite`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as _load_bytes
from safetensors.torch import save as _save_bytes

from .errors import CheckpointError
from .outputs import reason, write_bytes

_PREFIX = re.compile(r"^Error while deserializing( header)?: ")  # the package's wording, said once already


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` (moved to the CPU) and string `metadata` atomically.

    A failed write (full disk) is an `OutputError` and leaves any previous file at `path` as it was.
    """
    cpu = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    meta = {str(k): str(v) for k, v in metadata.items()} if metadata else None
    return write_bytes(path, _save_bytes(cpu, metadata=meta))


def _refusal(path: Path, exc: Exception) -> CheckpointError:
    """One line for a file that cannot be read (missing, a folder, no permission) or is not valid safetensors."""
    if isinstance(exc, FileNotFoundError):
        return CheckpointError(f"weights file not found: {path}")
    if isinstance(exc, OSError):
        return CheckpointError(f"cannot read weights file {path}: {reason(exc)}")
    text = str(exc).strip()
    text = _PREFIX.sub("", text.splitlines()[0]) if text else type(exc).__name__
    return CheckpointError(f"corrupt weights file {path}: {text}")


def metadata(path: str | Path) -> dict[str, str]:
    """The file's `__metadata__` (strings to strings, as the format requires); reads the header only."""
    path = Path(path)
    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except (OSError, SafetensorError) as exc:
        raise _refusal(path, exc) from None


def load_file(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, in memory (no file mapping is kept open); a bad file raises
    `CheckpointError` before anything is returned."""
    path = Path(path)
    try:
        return _load_bytes(path.read_bytes())
    except (OSError, SafetensorError) as exc:
        raise _refusal(path, exc) from None
