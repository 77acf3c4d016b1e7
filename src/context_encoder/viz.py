"""Image grids for samples and reports."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .data import tensor_to_pil


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


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (temp file + rename) so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)
    return path


@torch.no_grad()
def hole_view(masked: Tensor, mask: Tensor) -> Tensor:
    """The masked input as shown to people: the hole drawn white so it stands out."""
    return torch.where(mask, torch.ones_like(masked), masked)
