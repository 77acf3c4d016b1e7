"""Reading and writing the safetensors format (no pickle, no extra dependency).

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" of strings, then the
raw little-endian tensor bytes. See https://github.com/huggingface/safetensors for the specification.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

from .errors import CheckpointError
from .outputs import atomic_write

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "U8": torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}
MAX_HEADER = 100 * 2**20


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` (CPU, any of F32/F16/BF16/I64/U8) and string `metadata` atomically.

    A failed write (full disk) is an `OutputError` and leaves any previous file at `path` as it was.
    """
    header: dict[str, object] = {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _NAMES:
            raise ValueError(f"{name}: dtype {t.dtype} is not supported")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keep the data 8-byte aligned
    with atomic_write(path) as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
    return Path(path)


def read_header(path: str | Path) -> tuple[dict, int]:
    """(header dict, byte offset of the data); a malformed file raises `CheckpointError`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) != 8:
                raise ValueError("file too short")
            (n,) = struct.unpack("<Q", prefix)
            if n > MAX_HEADER:
                raise ValueError(f"header of {n} bytes")
            raw = f.read(n)
            if len(raw) != n:
                raise ValueError("truncated header")
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except FileNotFoundError:
        raise CheckpointError(f"weights file not found: {path}") from None
    except (OSError, ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"corrupt weights file {path}: {_first_line(exc)}") from None
    return header, 8 + n


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def metadata(path: str | Path) -> dict[str, str]:
    """The file's `__metadata__` (strings to strings, as the format requires; anything else raises)."""
    meta = read_header(path)[0].get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"corrupt weights file {path}: __metadata__ must map names to strings")
    return dict(meta)


def _shape(info: object, name: str) -> tuple[torch.dtype, list[int], int, int]:
    """(dtype, shape, begin, end) of one header entry; anything malformed raises `ValueError`."""
    if not isinstance(info, dict):
        raise ValueError(f"{name!r}: entry is not a JSON object")
    code = info.get("dtype")
    dtype = _DTYPES.get(code) if isinstance(code, str) else None
    if dtype is None:
        raise ValueError(f"{name!r}: unknown dtype {code!r}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d < 2**40 for d in shape):
        raise ValueError(f"{name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise ValueError(f"{name!r}: data_offsets must be two integers, got {offsets!r}")
    return dtype, shape, offsets[0], offsets[1]


def load_file(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; any inconsistency raises `CheckpointError` before anything is returned."""
    header, start = read_header(path)
    try:
        data = Path(path).read_bytes()[start:]
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file {path}: {_first_line(exc)}") from None
    tensors = {}
    try:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype, shape, begin, end = _shape(info, name)
            count = math.prod(shape)
            size = count * torch.empty((), dtype=dtype).element_size()
            if not 0 <= begin <= end <= len(data) or end - begin != size:
                raise ValueError(f"{name!r}: byte range {begin}-{end} does not fit shape {shape}")
            chunk = bytearray(data[begin:end])
            flat = torch.frombuffer(chunk, dtype=dtype) if count else torch.empty(0, dtype=dtype)
            tensors[name] = flat.reshape(shape).clone()
    except ValueError as exc:
        raise CheckpointError(f"corrupt weights file {path}: {exc}") from None
    return tensors
