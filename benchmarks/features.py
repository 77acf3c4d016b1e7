"""The Table 2 analogue: context-encoder features against an autoencoder, random init and labels.

    python benchmarks/features.py [--datasets cifar10 intel-scenes] [--steps 1500] [--seeds 3]

Per data set (../shared/data/<name>/{train,test}/<class>/): pretrain a context encoder (random-region
holes, reconstruction loss) and a plain autoencoder (same network, nothing hidden) with the same
budget, then probe each encoder and a randomly initialised one with (a) a linear classifier on frozen
features and (b) fine-tuning on 10% of the labels; the supervised upper bound fine-tunes the random
network on all (used) labels. Writes docs/results/features.md and features.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from context_encoder.checkpoint import load_checkpoint
from context_encoder.features import run_probe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIGS = {"cifar10": "features_cifar", "intel-scenes": "features_scenes"}


def pretrain(name: str, config: str, data: Path, steps: int, runs: Path, mask: str) -> Path:
    out = runs / name
    ckpt = out / "checkpoints" / "last.pt"
    if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= steps:
        return out
    start = ["--resume", str(out)] if ckpt.is_file() else ["--config", config, "--data", str(data), "--out", str(out)]
    cmd = [
        sys.executable,
        "-m",
        "context_encoder",
        "train",
        *start,
        "-q",
        "--set",
        f"train.steps={steps}",
        "--set",
        f"mask.kind={mask}",
    ]
    subprocess.run(cmd, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=1500, help="pretraining steps of each self-supervised model")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=10000, help="labelled training images used by the probes")
    parser.add_argument("--test-limit", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    report = [
        "# Feature learning: the Table 2 analogue",
        "",
        f"Regenerate with `python benchmarks/features.py --steps {args.steps} --seeds {args.seeds}`.",
        "",
    ]
    everything = {}
    for ds in args.datasets:
        config, data = CONFIGS[ds], SHARED / ds
        runs = ROOT / "runs" / f"features-{ds}"
        ce = pretrain("context-encoder", config, data / "train", args.steps, runs, "random-region")
        ae = pretrain("autoencoder", config, data / "train", args.steps, runs, "none")
        common = {"limit": args.limit, "test_limit": args.test_limit, "seeds": args.seeds}
        rows = {}
        for label, kw in (
            ("context encoder", {"checkpoint": ce}),
            ("autoencoder", {"checkpoint": ae}),
            ("random init", {"config": config}),
        ):
            rows[label] = {
                "linear": run_probe(data, mode="linear", **kw, **common),
                "finetune 10%": run_probe(data, mode="finetune", labels_fraction=0.1, **kw, **common),
            }
        rows["supervised (upper bound)"] = {"finetune 100%": run_probe(data, config=config, mode="finetune", **common)}
        everything[ds] = rows
        report += [
            f"## {ds}",
            "",
            "| encoder | linear (frozen) | fine-tune, 10% labels | fine-tune, all labels |",
            "|---|---|---|---|",
        ]
        for label, res in rows.items():
            cells = [res.get(k) for k in ("linear", "finetune 10%", "finetune 100%")]
            text = [f"{c['mean']:.1%} +- {c['std']:.1%}" if c else "" for c in cells]
            report.append(f"| {label} | " + " | ".join(text) + " |")
        pre = {k: rows[k]["linear"]["pretrain_seconds"] for k in ("context encoder", "autoencoder")}
        report += [
            "",
            f"Pretraining: {args.steps} steps of batch 64 each "
            f"(context encoder {pre['context encoder'] / 60:.0f} min, autoencoder {pre['autoencoder'] / 60:.0f} min "
            f"on a 2-core CPU). Probes: {args.limit} labelled training images at most, {args.test_limit} test "
            f"images, {args.seeds} seeds; top-1 accuracy mean +- std.",
            "",
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features.json").write_text(json.dumps(everything, indent=2, default=str) + "\n")
    (args.out / "features.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
