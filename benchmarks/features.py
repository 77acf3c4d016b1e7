"""The Table 2 analogue: context-encoder features against an autoencoder, random init and labels.

    python benchmarks/features.py [--datasets cifar10 intel-scenes] [--steps 800 2000] [--seeds 3]
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
import shutil
import subprocess
import sys
from pathlib import Path

from context_encoder.checkpoint import load_checkpoint
from context_encoder.features import run_probe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CONFIGS = {"cifar10": "features_cifar", "intel-scenes": "features_scenes"}


def pretrain(name: str, config: str, data: Path, steps: int, runs: Path, mask: str) -> Path:
    """RUNS/steps-N/NAME trained to `steps`; a longer budget starts from a copy of the longest shorter one.

    The feature presets use a constant learning rate, so extending a finished shorter run is the same
    training as running the longer budget from the start.
    """
    out = runs / f"steps-{steps}" / name
    ckpt = out / "checkpoints" / "last.pt"
    if ckpt.is_file() and load_checkpoint(ckpt)["step"] >= steps:
        return out
    if not ckpt.is_file():
        done = {
            int(d.parent.name.removeprefix("steps-")): d
            for d in runs.glob(f"steps-*/{name}")
            if (d / "checkpoints" / "last.pt").is_file()
        }
        shorter = [n for n in done if n < steps]
        if shorter:
            shutil.copytree(done[max(shorter)], out, dirs_exist_ok=True)
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
    where = cache.relative_to(ROOT / "runs")
    print(f"{where} {key}: {result['mean']:.1%} +- {result['std']:.1%} ({result['probe_seconds']} s)", flush=True)
    return result


def ordering(rows: dict, steps: int) -> list[str]:
    """Whether the paper's ordering (context encoder > autoencoder, random init) holds, per protocol."""
    lines = []
    for protocol in ("linear", "finetune 10%"):
        ce = rows[f"context encoder, {steps} steps"][protocol]
        others = {k: rows[k][protocol] for k in (f"autoencoder, {steps} steps", "random init")}
        margins = {k: ce["mean"] - r["mean"] for k, r in others.items()}
        noise = max(ce["std"], *(r["std"] for r in others.values()))
        verdict = (
            "holds"
            if all(m > 2 * noise for m in margins.values())
            else "holds, but by less than twice the seed spread"
            if all(m > 0 for m in margins.values())
            else "does not hold"
        )
        gaps = ", ".join(f"{m * 100:+.1f} points vs {k.split(',')[0]}" for k, m in margins.items())
        lines.append(f"- {steps} steps, {protocol}: the paper's ordering {verdict} (context encoder {gaps}).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[800, 2000],
        help="pretraining budgets (steps of batch 64) of both models",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=5000, help="labelled training images used by the probes")
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    report = [
        "# Feature learning: the Table 2 analogue",
        "",
        f"Regenerate with `python benchmarks/features.py --steps {' '.join(map(str, args.steps))} --seeds {args.seeds} "
        f"--limit {args.limit} --test-limit {args.test_limit}`; finished steps and probes are cached under "
        "`runs/features-*`, so an interrupted run resumes (about 75 min from scratch on a 2-core CPU).",
        "",
        "The paper's Table 2 (Pathak et al. 2016, AlexNet, ImageNet pretraining, PASCAL VOC classification "
        "mAP): random init 53.3, autoencoder 53.8, context encoder 56.5, ImageNet labels 78.2. Here the same "
        "comparison is made small: the DCGAN-style encoder of the context encoder at 32 px (CIFAR-10) or 64 px "
        "(intel-scenes), channel-wise bottleneck, whole-image output, random-region holes, reconstruction "
        "loss, pretrained on the "
        "unlabelled training images of each set, then probed with the labels of that set.",
        "",
    ]
    everything = {}
    for ds in args.datasets:
        config, data = CONFIGS[ds], SHARED / ds
        runs = ROOT / "runs" / f"features-{ds}"
        common = {"data": data, "limit": args.limit, "test_limit": args.test_limit, "seeds": args.seeds}
        tag = f"probes-{args.limit}-{args.test_limit}-{args.seeds}"
        rows, pretrain_s = {}, {}
        for steps in args.steps:
            ce = pretrain("context-encoder", config, data / "train", steps, runs, "random-region")
            ae = pretrain("autoencoder", config, data / "train", steps, runs, "none")
            for key, name, ckpt in (("ce", "context encoder", ce), ("ae", "autoencoder", ae)):
                label = f"{name}, {steps} steps"
                cache = runs / f"steps-{steps}" / tag
                rows[label] = {
                    "linear": cached_probe(cache, f"{key}-linear", mode="linear", checkpoint=ckpt, **common),
                    "finetune 10%": cached_probe(
                        cache, f"{key}-finetune10", mode="finetune", labels_fraction=0.1, checkpoint=ckpt, **common
                    ),
                }
                pretrain_s[label] = rows[label]["linear"]["pretrain_seconds"]
        cache = runs / tag
        rows["random init"] = {
            "linear": cached_probe(cache, "random-linear", mode="linear", config=config, **common),
            "finetune 10%": cached_probe(
                cache, "random-finetune10", mode="finetune", labels_fraction=0.1, config=config, **common
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
        times = ", ".join(f"{k} {v / 60:.0f} min" for k, v in pretrain_s.items())
        report += [
            "",
            f"Pretraining time on a 2-core CPU: {times}. Probes: {args.limit} labelled training images at most, "
            f"{args.test_limit} test images, {args.seeds} seeds; top-1 accuracy mean +- std.",
            "",
            *(line for steps in args.steps for line in ordering(rows, steps)),
            "",
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features.json").write_text(json.dumps(everything, indent=2, default=str) + "\n")
    notes = args.out / "features_notes.md"  # the hand-written reading of the tables, kept across regenerations
    if notes.is_file():
        report += ["", notes.read_text().rstrip()]
    (args.out / "features.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
