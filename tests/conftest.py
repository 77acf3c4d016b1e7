"""Shared fixtures: one thread (about 6x faster for tiny models on 2 cores), small generated photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)


def _shared_data() -> Path:
    """The project's shared photographs: $CONTEXT_ENCODER_SHARED_DATA, ../shared/data beside the checkout, or /work."""
    candidates = [
        os.environ.get("CONTEXT_ENCODER_SHARED_DATA", ""),
        Path(__file__).resolve().parents[2] / "shared" / "data",
        "/work/shared/data",
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), Path(candidates[1]))


SHARED_DATA = _shared_data()


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour field (uint8 HxWx3): structured enough to inpaint, unlike white noise."""
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC))


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 small RGB images in nested folders, in several formats and sizes."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(24):
        sub = root / f"class{i % 3}"
        sub.mkdir(exist_ok=True)
        h, w = 32 + (i % 4) * 4, 36 + (i % 3) * 6
        img = Image.fromarray(smooth_image(rng, h, w))
        img.save(sub / f"img{i:02d}.{['png', 'jpg', 'bmp'][i % 3]}")
    return root


@pytest.fixture()
def tiny_cfg(photo_dir: Path):
    from context_encoder.config import apply_overrides, load_config

    def make(*overrides: str):
        return apply_overrides(load_config("tiny"), [f'data.train_dir="{photo_dir.as_posix()}"', *overrides])

    return make


def train_tiny(out: Path, data: Path, *settings: str) -> Path:
    """Train the tiny preset through the command line into `out` with `--set` overrides; returns `out`."""
    from context_encoder.cli import main

    args = ["train", "--config", "tiny", "--data", str(data), "--out", str(out), "-q"]
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 0
    return out
