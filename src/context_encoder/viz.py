"""Image grids for samples and reports, PNGs written atomically, and which format an output path asks for (its
suffix); filled photos are written by `photo_file`."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .data import tensor_to_pil
from .outputs import OutputError, atomic_write, check_output_file

COMMON_SUFFIXES = (".png", ".jpg", ".webp", ".tiff", ".bmp")  # named in the error for an unknown suffix


def image_grid(columns: list[Tensor], min_tile: int = 96, pad: int = 2, labels: list[str] | None = None) -> Image.Image:
    """One row per image, one column per tensor in `columns` (each (N, 3, S, S) in [-1, 1]).

    Small tiles are enlarged by an integer factor (nearest neighbour) to at least `min_tile` px;
    `labels` puts a caption above each column.
    """
    n, _, s, _ = columns[0].shape
    scale = max(1, -(-min_tile // s))
    tile = s * scale
    top = 16 if labels else 0
    grid = Image.new("RGB", (len(columns) * (tile + pad) + pad, top + n * (tile + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for c, col in enumerate(columns):
        if labels:
            draw.text((pad + c * (tile + pad) + 2, 2), labels[c][: tile // 6], fill=(0, 0, 0))
        for r in range(n):
            img = tensor_to_pil(col[r])
            if scale > 1:
                img = img.resize((tile, tile), Image.NEAREST)
            grid.paste(img, (pad + c * (tile + pad), top + pad + r * (tile + pad)))
    return grid


@functools.cache
def _writes_rgb(fmt: str) -> bool:
    """Whether Pillow can write an RGB image in `fmt` here (some formats need a plug-in or another mode)."""
    try:
        Image.new("RGB", (2, 2)).save(io.BytesIO(), format=fmt)
    except Exception:  # noqa: BLE001 - each plug-in fails its own way
        return False
    return True


def image_format(path: str | Path, default: str | None = None) -> str:
    """The Pillow format that writes RGB images to `path`, from its suffix; without a suffix, `default` (the
    input's format) where one is given. An unknown or unwritable format is an `OutputError`."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        if default is not None and default in Image.SAVE and _writes_rgb(default):
            return default
        raise OutputError(f"the output {path} has no file extension (e.g. .png): it says which format to write")
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE or not _writes_rgb(fmt):
        raise OutputError(f"cannot write '{suffix}' images ({path}); use e.g. {', '.join(COMMON_SUFFIXES)}")
    return fmt


def check_image_output(path: str | Path, default: str | None = None) -> Path:
    """Check, before any work, that an RGB image can be written to `path` (format, folder); returns the `Path`.
    `default` is the format used where `path` has no suffix (the input's)."""
    p = check_output_file(path)
    image_format(p, default)
    return p


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (temporary file, rename) so a reader never sees half a file."""
    path = Path(path)
    with atomic_write(path) as f:
        img.save(f, format="PNG")
    return path


@torch.no_grad()
def hole_view(masked: Tensor, mask: Tensor) -> Tensor:
    """The masked input as shown to people: the hole drawn white so it stands out."""
    return torch.where(mask, torch.ones_like(masked), masked)
