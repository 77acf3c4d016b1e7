"""Reading and writing the safetensors format (no pickle, no extra dependency).

Layout: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} plus an optional "__metadata__" of strings, then the
raw little-endian tensor bytes. See https://github.com/huggingface/safetensors for the specification.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from .errors import CheckpointError

_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64, "U8": torch.uint8}
_NAMES = {v: k for k, v in _DTYPES.items()}
MAX_HEADER = 100 * 2**20


def save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `tensors` (CPU, any of F32/F16/BF16/I64/U8) and string `metadata` atomically."""
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


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
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"corrupt weights file {path}: {exc}") from None
    return header, 8 + n


def metadata(path: str | Path) -> dict[str, str]:
    return dict(read_header(path)[0].get("__metadata__", {}))


def load_file(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; any inconsistency raises `CheckpointError` before anything is returned."""
    header, start = read_header(path)
    data = Path(path).read_bytes()[start:]
    tensors = {}
    try:
        for name, info in header.items():
            if name == "__metadata__":
                continue
            dtype = _DTYPES[info["dtype"]]
            begin, end = info["data_offsets"]
            shape = [int(d) for d in info["shape"]]
            count = 1
            for d in shape:
                count *= d
            if not 0 <= begin <= end <= len(data) or end - begin != count * torch.empty((), dtype=dtype).element_size():
                raise ValueError(f"{name}: byte range {begin}-{end} does not fit shape {shape}")
            chunk = bytearray(data[begin:end])
            flat = torch.frombuffer(chunk, dtype=dtype) if count else torch.empty(0, dtype=dtype)
            tensors[name] = flat.reshape(shape).clone()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt weights file {path}: {exc}") from None
    return tensors
