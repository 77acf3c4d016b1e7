"""The Table 2 analogue: context-encoder features against an autoencoder, random init and labels.

    python benchmarks/features.py [--datasets cifar10 intel-scenes] [--steps 800] [--seeds 3]
                                   [--limit 5000] [--test-limit 2000]

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


def cached_probe(cache: Path, key: str, **kwargs) -> dict:
    """run_probe, remembered under CACHE/KEY.json so an interrupted benchmark resumes where it stopped."""
    file = cache / f"{key}.json"
    if file.is_file():
        return json.loads(file.read_text())
    result = run_probe(**kwargs)
    cache.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{cache.parent.name} {key}: {result['mean']:.1%} +- {result['std']:.1%} ({result['probe_seconds']} s)")
    return result


def ordering(rows: dict) -> list[str]:
    """Whether the paper's ordering (context encoder > autoencoder, random init) holds, per protocol."""
    lines = []
    for protocol in ("linear", "finetune 10%"):
        ce = rows["context encoder"][protocol]
        others = {k: rows[k][protocol] for k in ("autoencoder", "random init")}
        margins = {k: ce["mean"] - r["mean"] for k, r in others.items()}
        noise = max(ce["std"], *(r["std"] for r in others.values()))
        verdict = (
            "holds"
            if all(m > 2 * noise for m in margins.values())
            else "holds, within twice the seed spread"
            if all(m > 0 for m in margins.values())
            else "does not hold"
        )
        gaps = ", ".join(f"{m * 100:+.1f} points over {k}" for k, m in margins.items())
        lines.append(f"- {protocol}: the paper's ordering {verdict} (context encoder {gaps}).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=800, help="pretraining steps of each self-supervised model")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000, help="labelled training images used by the probes")
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    report = [
        "# Feature learning: the Table 2 analogue",
        "",
        f"Regenerate with `python benchmarks/features.py --steps {args.steps} --seeds {args.seeds} "
        f"--limit {args.limit} --test-limit {args.test_limit}` (about 75 min on a 2-core CPU).",
        "",
    ]
    everything = {}
    for ds in args.datasets:
        config, data = CONFIGS[ds], SHARED / ds
        runs = ROOT / "runs" / f"features-{ds}"
        ce = pretrain("context-encoder", config, data / "train", args.steps, runs, "random-region")
        ae = pretrain("autoencoder", config, data / "train", args.steps, runs, "none")
        common = {"data": data, "limit": args.limit, "test_limit": args.test_limit, "seeds": args.seeds}
        cache = runs / f"probes-{args.limit}-{args.test_limit}-{args.seeds}"
        rows = {}
        for key, label, kw in (
            ("ce", "context encoder", {"checkpoint": ce}),
            ("ae", "autoencoder", {"checkpoint": ae}),
            ("random", "random init", {"config": config}),
        ):
            rows[label] = {
                "linear": cached_probe(cache, f"{key}-linear", mode="linear", **kw, **common),
                "finetune 10%": cached_probe(
                    cache, f"{key}-finetune10", mode="finetune", labels_fraction=0.1, **kw, **common
                ),
            }
        rows["supervised (upper bound)"] = {
            "finetune 100%": cached_probe(cache, "supervised", config=config, mode="finetune", **common)
        }
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
            *ordering(rows),
            "",
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features.json").write_text(json.dumps(everything, indent=2, default=str) + "\n")
    (args.out / "features.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
