"""Training images/s of each preset with the default training path, on real photographs.

    python benchmarks/train_speed.py [--presets tiny cifar10 ...] [--steps N] [--data DIR]

Runs `train()` for a few steps per preset into a temporary folder and reports the median images/s over
the logged windows after the first (warm-up) window. Defaults use ../shared/data when it exists.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from context_encoder.config import load_config
from context_encoder.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_DATA = {
    "tiny": SHARED / "cifar10" / "train",
    "cifar10": SHARED / "cifar10" / "train",
    "scenes64": SHARED / "intel-scenes" / "train",
    "paper_center": SHARED / "intel-scenes" / "train",
    "paper_random": SHARED / "intel-scenes" / "train",
}
STEPS = {"tiny": 60, "cifar10": 40, "scenes64": 24, "paper_center": 8, "paper_random": 8}


def measure(preset: str, data: Path, steps: int) -> dict:
    log_every = max(1, steps // 4)
    overrides = [
        f'data.train_dir="{data.as_posix()}"',
        f"train.steps={steps}",
        f"train.log_every={log_every}",
        f"train.sample_every={10 * steps}",
        f"train.checkpoint_every={10 * steps}",
    ]
    cfg = load_config(preset, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        train(cfg, Path(tmp) / "run", progress=False)
        records = [json.loads(x) for x in (Path(tmp) / "run" / "stats.jsonl").read_text().splitlines()]
    rates = [r["img_per_s"] for r in records[1:]] or [records[0]["img_per_s"]]
    return {"preset": preset, "batch": cfg.train.batch_size, "steps": steps, "img_per_s": statistics.median(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(STEPS))
    parser.add_argument("--steps", type=int, default=0, help="steps per preset (default: per-preset)")
    parser.add_argument("--data", type=Path, help="image folder for every preset")
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'preset':<14} {'batch':>5} {'steps':>5} {'img/s':>8}")
    for preset in args.presets:
        r = measure(preset, args.data or DEFAULT_DATA[preset], args.steps or STEPS[preset])
        print(f"{r['preset']:<14} {r['batch']:>5} {r['steps']:>5} {r['img_per_s']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
