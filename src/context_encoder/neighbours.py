"""Nearest neighbours under a representation, and the paper's Fig. 8 as a figure.

Pathak et al. (2016, Fig. 8) show, for a few query images, their nearest training images under
context-encoder features next to those under other features. `neighbour_figure` draws that comparison
for whole images: per query, one row per representation (its name, the query, its k nearest training
images by cosine distance), optionally framed green where a neighbour shares the query's class and
red where it does not.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

LABEL_WIDTH = 120  # px, the column of row names
HEADER = 16  # px, the row of column captions
PAD = 2  # px between tiles
GROUP_GAP = 8  # px between the rows of one query and the next
FRAME = 2  # px, class-match frame inside a neighbour tile
MATCH, MISMATCH = (40, 160, 60), (200, 50, 40)


@torch.no_grad()
def nearest(query: Tensor, database: Tensor, k: int) -> Tensor:
    """Indices (Q, k) of each query row's k nearest `database` rows by cosine distance, nearest first."""
    q = F.normalize(query.flatten(1).float(), dim=1)
    d = F.normalize(database.flatten(1).float(), dim=1)
    return (q @ d.T).topk(min(k, len(d)), dim=1).indices


def _tile(image: Tensor, tile: int) -> Image.Image:
    """A (3, S, S) image, uint8 or float in [0, 1], as a tile x tile PIL image (nearest-neighbour scaling)."""
    arr = image if image.dtype == torch.uint8 else (image.clamp(0, 1) * 255).round().to(torch.uint8)
    img = Image.fromarray(arr.permute(1, 2, 0).contiguous().numpy())
    return img if img.size == (tile, tile) else img.resize((tile, tile), Image.NEAREST)


def figure_size(queries: int, representations: int, k: int, tile: int) -> tuple[int, int]:
    """(width, height) of `neighbour_figure`'s image."""
    width = LABEL_WIDTH + (k + 1) * (tile + PAD) + PAD
    height = HEADER + queries * representations * (tile + PAD) + (queries - 1) * GROUP_GAP + PAD
    return width, height


def neighbour_figure(
    queries: Tensor,
    database: Tensor,
    features: Mapping[str, tuple[Tensor, Tensor]],
    k: int = 5,
    tile: int = 64,
    labels: tuple[Tensor, Tensor] | None = None,
) -> Image.Image:
    """Each query (Q, 3, S, S) with its `k` nearest `database` images (N, 3, S, S) under each representation.

    `features` maps a row name ("context encoder", "pixels", ...) to (query features (Q, ...), database
    features (N, ...)). `labels` (query labels (Q,), database labels (N,)) frames each neighbour by
    whether its class is the query's. Layout: `figure_size`.
    """
    q, rows = len(queries), len(features)
    grid = Image.new("RGB", figure_size(q, rows, k, tile), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    captions = ["query"] + [f"nearest {i + 1}" for i in range(k)]
    for c, text in enumerate(captions):
        draw.text((LABEL_WIDTH + PAD + c * (tile + PAD) + 2, 2), text[: tile // 6], fill=(0, 0, 0))
    found = {name: nearest(fq, fd, k) for name, (fq, fd) in features.items()}
    for i in range(q):
        for r, name in enumerate(features):
            top = HEADER + (i * rows + r) * (tile + PAD) + i * GROUP_GAP
            draw.text((4, top + tile // 2 - 5), name[: LABEL_WIDTH // 6], fill=(0, 0, 0))
            grid.paste(_tile(queries[i], tile), (LABEL_WIDTH + PAD, top))
            for j, idx in enumerate(found[name][i].tolist()):
                left = LABEL_WIDTH + PAD + (j + 1) * (tile + PAD)
                grid.paste(_tile(database[idx], tile), (left, top))
                if labels is not None:
                    colour = MATCH if labels[1][idx] == labels[0][i] else MISMATCH
                    draw.rectangle((left, top, left + tile - 1, top + tile - 1), outline=colour, width=FRAME)
    return grid
