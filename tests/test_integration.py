"""Integration on real photographs, when the project's shared data folder is present."""

import json

import pytest

from context_encoder.config import apply_overrides, load_config
from context_encoder.train import train

from .conftest import SHARED_DATA

CIFAR = SHARED_DATA / "cifar10" / "test" / "airplane"


@pytest.mark.skipif(not CIFAR.is_dir(), reason="shared CIFAR-10 folder not present")
def test_tiny_preset_trains_on_real_photos(tmp_path):
    cfg = apply_overrides(load_config("tiny"), [f'data.train_dir="{CIFAR.as_posix()}"', "train.steps=6"])
    ckpt = train(cfg, tmp_path / "run", progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert ckpt.is_file() and records[-1]["step"] == 6
    assert all(0 < r["loss_rec"] < 10 for r in records)
