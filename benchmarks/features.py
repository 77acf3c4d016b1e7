"""The paper's Table 2 and Fig. 8, made small: context-encoder features against an autoencoder, random init and labels.

    python benchmarks/features.py                   # pretrain (start, resume or skip), probe, write the report
    python benchmarks/features.py --pretrain-only   # only start or resume the pretraining runs
    python benchmarks/features.py --probes-only     # only probes, figures and report (pretraining must be done)
    python benchmarks/features.py --smoke           # tiny budgets on the same data, written to a temporary folder
    python benchmarks/features.py --rows random supervised   # only these rows (no pretraining needed), cached

Per data set (DATA_ROOT/<name>/{train,test}/<class>/): a context encoder (random-region holes,
reconstruction loss) and an autoencoder (the same network, nothing hidden) are pretrained with the same
budget on the unlabelled training images (presets features_cifar[_autoencoder], features_scenes[_autoencoder]).
Then each encoder, a randomly initialised one and, as the upper bound, a random one trained with every label,
is probed as `context_encoder.features` describes: linear classifiers on every conv block's frozen, pooled
output, and fine-tuning on 10% of the labels, for 3 seeds. Every choice is made on a validation split of
the training images. Writes OUT/features.md, features.json and one nearest-neighbour figure per data set.

Finished pretraining runs are skipped, interrupted ones resumed (RUNS/<data set>-<encoder>); every probe
result (data set, encoder, probe, seed) is kept in RUNS/probes-<data set>.json as soon as it exists and
reused while the protocol and the checkpoint's step are unchanged, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from context_encoder.checkpoint import load_checkpoint
from context_encoder.cli import main as cli
from context_encoder.config import ProbeSettings, load_config
from context_encoder.features import aggregate, load_encoder, pooled_features, probe_once
from context_encoder.labelled import LabelledSet, load_labelled
from context_encoder.neighbours import neighbour_figure
from context_encoder.protocol import spread
from context_encoder.train import training_seconds
from context_encoder.viz import save_png

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ENCODERS = {"context-encoder": "context encoder", "autoencoder": "autoencoder"}


@dataclass(frozen=True)
class DataSet:
    presets: dict[str, str]  # pretrained encoder -> its preset
    limit: int | None  # training images the probes use, evenly over classes (None: all)
    test_limit: int | None  # test images (None: all)


DATASETS = {
    # 1,000 training images per class keep CIFAR-10's probes to about 1.5 hours on one CPU core, most of it
    # fine-tuning (3 lr ratios x 20 epochs, 3 seeds, 4 rows); sun-scenes' 2,496 photos take about half an hour
    "cifar10": DataSet(
        {"context-encoder": "features_cifar", "autoencoder": "features_cifar_autoencoder"}, 10_000, None
    ),
    "sun-scenes": DataSet(
        {"context-encoder": "features_scenes", "autoencoder": "features_scenes_autoencoder"}, None, None
    ),
}
# (mode, share of the labels) of each probe; "supervised" is the random init fine-tuned with every label
PROBES = {"linear": ("linear", 1.0), "finetune10": ("finetune", 0.1), "supervised": ("finetune", 1.0)}
SMOKE_TRAIN = ["train.steps=2", "train.batch_size=8", "train.checkpoint_every=1", "train.log_every=1"]
SMOKE_TRAIN += ["train.sample_every=1000", "data.workers=0"]
SMOKE_PROBES = ProbeSettings(weight_decays=(1e-3, 1e-1), linear_epochs=3, lr_ratios=(0.1, 1.0), finetune_epochs=1)
FIGURE_QUERIES, FIGURE_NEIGHBOURS = 6, 5


class ProbeCache:
    """Probe results in one JSON file, {key: {"stamp": ..., "result": ...}}, rewritten after each new result."""

    def __init__(self, path: Path):
        self.path = path
        self.entries = json.loads(path.read_text()) if path.is_file() else {}
        self.computed = 0  # results computed (not read back) in this process

    def get(self, key: str, stamp: dict) -> dict | None:
        entry = self.entries.get(key)
        return entry["result"] if entry is not None and entry["stamp"] == stamp else None

    def put(self, key: str, stamp: dict, result: dict) -> None:
        self.entries[key] = {"stamp": stamp, "result": result}
        self.computed += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.entries, indent=1) + "\n")
        tmp.replace(self.path)  # an interrupted write never leaves half a cache


def checkpoint_step(run: Path) -> int | None:
    """The step of RUN's last checkpoint, None before the first one."""
    return int(load_checkpoint(run)["step"]) if (run / "checkpoints" / "last.pt").is_file() else None


def pretrain(preset: str, data: Path, run: Path, overrides: list[str]) -> int:
    """Start, resume or skip one pretraining run; returns the steps it has."""
    target = load_config(preset, overrides).train.steps
    step = checkpoint_step(run)
    if step is not None and step >= target:
        print(f"{run.name}: finished ({step} steps)", flush=True)
        return step
    if step is None:
        args = ["train", "--config", preset, "--data", str(data), "--out", str(run)]
    else:
        args = ["train", "--resume", str(run)]
        print(f"{run.name}: resuming at step {step} of {target}", flush=True)
    for item in [*overrides, f"train.steps={target}"]:
        args += ["--set", item]
    code = cli(args)
    if code != 0:
        raise SystemExit(code)
    return target


def require_finished(preset: str, run: Path, overrides: list[str]) -> int:
    """RUN's steps; exits with the command that finishes it when it has not reached its preset's budget."""
    target, step = load_config(preset, overrides).train.steps, checkpoint_step(run)
    if step is None or step < target:
        hint = f"--resume {run}" if step is not None else f"--config {preset} --data DATA --out {run}"
        sys.exit(
            f"{run} is at step {step or 0} of {target}: finish it (context-encoder train {hint}) or drop --probes-only"
        )
    return step


class DataSetProbes:
    """Every probe of one data set, each (encoder, probe, seed) read from the cache or computed once."""

    def __init__(self, name: str, root: Path, runs: Path, settings: ProbeSettings, limits: tuple, cache: ProbeCache):
        self.name, self.root, self.runs = name, root, runs
        self.settings, self.limits, self.cache = settings, limits, cache
        self.spec = DATASETS[name]
        self._data: LabelledSet | None = None  # loaded on first need: a fully cached data set reads no image

    @property
    def data(self) -> LabelledSet:
        if self._data is None:
            size = load_config(self.spec.presets["context-encoder"]).model.image_size
            self._data = load_labelled(self.root, size, *self.limits)
        return self._data

    def run(self, encoder: str) -> Path:
        return self.runs / f"{self.name}-{encoder}"

    def probe(self, encoder: str, probe: str, seeds: list[int]) -> list[dict]:
        """`probe` of `encoder` (a pretrained one, "random" or "supervised") for each seed."""
        mode, fraction = PROBES[probe]
        settings = replace(self.settings, lr_ratios=(1.0,)) if encoder == "supervised" else self.settings
        pretrained = encoder in ENCODERS
        step = checkpoint_step(self.run(encoder)) if pretrained else None
        stamp = json.loads(json.dumps({"settings": settings.to_dict(), "limits": self.limits, "step": step}))
        results, model, features = [], None, None
        for seed in seeds:
            key = f"{encoder}/{probe}/seed{seed}"
            result = self.cache.get(key, stamp)
            if result is None:
                if pretrained and model is None:
                    model, _ = load_encoder(self.run(encoder), None)
                encoder_now = model if pretrained else load_encoder(None, self.spec.presets["context-encoder"], seed)[0]
                if pretrained and mode == "linear" and features is None:  # frozen: the same features every seed
                    features = tuple(
                        pooled_features(model, x, settings.grid) for x in (self.data.train_x, self.data.test_x)
                    )
                result = probe_once(
                    self.data,
                    encoder_now,
                    mode=mode,
                    seed=seed,
                    labels_fraction=fraction,
                    settings=settings,
                    features=features if pretrained else None,
                )
                self.cache.put(key, stamp, result)
                print(f"{self.name} {key}: top-1 {result['accuracy']:.1%} ({result['seconds']} s)", flush=True)
            results.append(result)
        return results

    def figure(self, out: Path) -> Path:
        """Fig. 8: test images and their nearest training images under each encoder's features and raw pixels."""
        data = self.data
        queries = torch.tensor(spread(list(range(len(data.test_y))), FIGURE_QUERIES))
        rows = {}
        for encoder, label in ENCODERS.items():
            model, _ = load_encoder(self.run(encoder), None)
            rows[label] = tuple(last_block(model, x, self.settings.grid) for x in (data.test_x[queries], data.train_x))
        pixels = [x.float() / 127.5 - 1 for x in (data.test_x[queries], data.train_x)]  # the encoders' input range
        rows["pixels"] = tuple(pixels)
        labels = (data.test_y[queries], data.train_y)
        img = neighbour_figure(data.test_x[queries], data.train_x, rows, FIGURE_NEIGHBOURS, tile=64, labels=labels)
        return save_png(img, out / f"features_neighbours_{self.name}.png")


def last_block(model: torch.nn.Module, images: torch.Tensor, grid: int) -> torch.Tensor:
    """The encoder's output (its last conv block), pooled as the linear probe pools it: (N, C * grid^2)."""
    return list(pooled_features(model, images, grid).values())[-1]


def cell(stats: dict | None, extra: str = "") -> str:
    return f"{stats['mean']:.1%} +- {stats['std']:.1%}{extra}" if stats else ""


def ordering(rows: dict) -> list[str]:
    """Whether the paper's ordering (context encoder above autoencoder and random init) holds, per probe."""
    lines = []
    for probe, text in (("linear", "linear (best layer)"), ("finetune10", "fine-tuned on 10% of the labels")):
        ce, others = rows["context encoder"][probe], {k: rows[k][probe] for k in ("autoencoder", "random init")}
        margins = {k: ce["mean"] - r["mean"] for k, r in others.items()}
        noise = max(ce["std"], *(r["std"] for r in others.values()))
        verdict = (
            "holds"
            if all(m > 2 * noise for m in margins.values())
            else "holds, but by less than twice the seed spread"
            if all(m > 0 for m in margins.values())
            else "does not hold"
        )
        gaps = ", ".join(f"{m * 100:+.1f} points vs {k}" for k, m in margins.items())
        lines.append(f"- {text}: the paper's ordering {verdict} (context encoder {gaps}).")
    return lines


def report_header(args: argparse.Namespace, settings: ProbeSettings) -> list[str]:
    ratios, decays = (", ".join(f"{v:g}" for v in values) for values in (settings.lr_ratios, settings.weight_decays))
    commands = [
        f"context-encoder train --config {preset} --data ../shared/data/{ds}/train --out runs/features/{ds}-{encoder}"
        for ds in args.datasets
        for encoder, preset in DATASETS[ds].presets.items()
    ]
    return [
        "# Feature learning: the Table 2 analogue",
        "",
        "The paper's Table 2 (Pathak et al. 2016: AlexNet pretrained on ImageNet, PASCAL VOC classification "
        "mAP): random init 53.3, autoencoder 53.8, context encoder 56.5, ImageNet labels 78.2. Here the same "
        "comparison is made small: the DCGAN encoder of the context encoder at 32 px (CIFAR-10) or 64 px "
        "(sun-scenes, 14 classes), channel-wise bottleneck, whole-image output, random-region holes, "
        "reconstruction loss, pretrained on the unlabelled training images of each set and probed with its labels.",
        "",
        "Regenerate: one pretraining run at a time, then the probes (finished runs and probe results are kept "
        "in `runs/features/`, so an interrupted run resumes):",
        "",
        "```bash",
        *commands,
        "python benchmarks/features.py --probes-only",
        "```",
        "",
        f"Protocol: {args.seeds} seeds; each holds out {settings.val_fraction:.0%} of every class's training "
        "images for validation and makes every choice on them: per layer the weight decay of the linear "
        f"classifier ({decays}) and the best layer; for fine-tuning the encoder's learning rate as a fraction of "
        f"the head's ({ratios}; 1 only for the supervised row, whose encoder starts random) and the epoch (at most "
        f"{settings.finetune_epochs}). Linear: every conv block's output average-pooled to "
        f"{settings.grid}x{settings.grid}, standardised, multinomial logistic regression ({settings.linear_epochs} "
        f"epochs of Adam). Fine-tuning: Adam, head learning rate {settings.finetune_lr:g}, batch "
        f"{settings.batch_size}, flips and shifts of up to 1/8 of the side, a linear head on the encoder's output "
        f"pooled to {settings.grid}x{settings.grid}. Top-1 accuracy on the test split, mean +- std over seeds.",
        "",
    ]


def report_dataset(name: str, per_seed: dict, pretraining: dict, figure: str) -> tuple[list[str], dict]:
    """The data set's section of the report, and its mean/std rows."""
    rows = {label: {p: aggregate(rs) for p, rs in res.items()} for label, res in per_seed.items()}
    layers = list(rows["random init"]["linear"]["layers"])
    lines = [
        f"## {name}",
        "",
        "| encoder | linear, best layer (per seed) | fine-tune, 10% labels | fine-tune, all labels |",
    ]
    lines.append("|---|---|---|---|")
    for label, res in rows.items():
        lin = res.get("linear")
        best = f" ({', '.join(lin['best_layers'])})" if lin else ""
        lines.append(f"| {label} | {cell(lin, best)} | {cell(res.get('finetune10'))} | {cell(res.get('supervised'))} |")
    lines += ["", "Linear probe of every layer (weight decay chosen on validation per layer and seed):", ""]
    lines += ["| encoder | " + " | ".join(layers) + " |", "|---|" + "---|" * len(layers)]
    for label, res in rows.items():
        if "linear" in res:
            lines.append(f"| {label} | " + " | ".join(cell(res["linear"]["layers"][n]) for n in layers) + " |")
    chosen = [
        f"{label}: " + ", ".join(f"{r['lr_ratio']:g} (epoch {r['epochs']})" for r in res[p])
        for label, res in per_seed.items()
        for p in res
        if p != "linear"
    ]
    counts = {p: per_seed["random init"][p][0] for p in ("linear", "finetune10")}
    steps = ", ".join(f"{k} {v['steps']:,} steps of batch {v['batch']}" + v["time"] for k, v in pretraining.items())
    lines += [
        "",
        "Fine-tuning, encoder/head learning-rate ratio and epoch chosen on validation, per seed: "
        + "; ".join(chosen)
        + ".",
        "",
        f"Images: {counts['linear']['fit_images']} labelled training images for the linear probe and the supervised "
        f"row, {counts['finetune10']['fit_images']} for fine-tuning on 10%, {counts['linear']['val_images']} for "
        f"validation, {counts['linear']['test_images']} test images. Pretraining: {steps}.",
        "",
        *ordering(rows),
        "",
        f"![nearest neighbours, {name}]({figure})",
        "",
        f"Nearest training images (cosine distance; green frame: same class as the query) of {FIGURE_QUERIES} "
        "test images under the context encoder's and the autoencoder's last conv block (pooled as for the "
        "linear probe) and under raw pixels: the paper's Fig. 8 for whole images.",
        "",
    ]
    return lines, rows


def dataset_probes(args: argparse.Namespace, ds: str, settings: ProbeSettings) -> DataSetProbes:
    spec = DATASETS[ds]
    limits = (args.limit or spec.limit, args.test_limit or spec.test_limit)
    cache = ProbeCache(args.runs / f"probes-{ds}.json")
    return DataSetProbes(ds, args.data_root / ds, args.runs, settings, limits, cache)


def probe_rows(args: argparse.Namespace, ds: str, settings: ProbeSettings, overrides: list[str]) -> None:
    """Only the rows in `args.rows` of one data set, into its probe cache (the full report reuses them), printed.

    The random-init and supervised rows need no pretraining, so they can run while an encoder still trains.
    """
    seeds = list(range(args.seeds))
    for encoder in args.rows:
        if encoder in ENCODERS:
            require_finished(DATASETS[ds].presets[encoder], args.runs / f"{ds}-{encoder}", overrides)
    probes = dataset_probes(args, ds, settings)
    for encoder in args.rows:
        for probe in ("supervised",) if encoder == "supervised" else ("linear", "finetune10"):
            print(f"{ds} {encoder} {probe}: {cell(aggregate(probes.probe(encoder, probe, seeds)))}", flush=True)
    print(f"{ds}: {probes.cache.computed} probe results computed, the others read from {probes.cache.path}")


def probe_dataset(args: argparse.Namespace, ds: str, settings: ProbeSettings, overrides: list[str]) -> tuple:
    """Every probe of one data set (cached), its figure and its report section."""
    spec, seeds = DATASETS[ds], list(range(args.seeds))
    pretraining = {}
    for encoder, preset in spec.presets.items():
        run, cfg = args.runs / f"{ds}-{encoder}", load_config(preset, overrides)
        seconds = training_seconds(run)
        pretraining[ENCODERS[encoder]] = {
            "steps": require_finished(preset, run, overrides),
            "batch": cfg.train.batch_size,
            "time": "" if seconds is None else f" ({seconds / 60:.0f} min)" if seconds >= 60 else f" ({seconds:.0f} s)",
        }
    probes = dataset_probes(args, ds, settings)
    cache = probes.cache
    per_seed = {
        label: {p: probes.probe(e, p, seeds) for p in ("linear", "finetune10")} for e, label in ENCODERS.items()
    }
    per_seed["random init"] = {p: probes.probe("random", p, seeds) for p in ("linear", "finetune10")}
    per_seed["supervised (upper bound)"] = {"supervised": probes.probe("supervised", "supervised", seeds)}
    figure = probes.figure(args.out)
    lines, rows = report_dataset(ds, per_seed, pretraining, figure.name)
    print(f"{ds}: {cache.computed} probe results computed, the others read from {cache.path}", flush=True)
    return lines, {"pretraining": pretraining, "rows": rows, "per_seed": per_seed}


def probe_everything(args: argparse.Namespace, settings: ProbeSettings, overrides: list[str]) -> None:
    """Probes, figures and the report of every data set: OUT/features.md and features.json."""
    args.out.mkdir(parents=True, exist_ok=True)
    report, everything = report_header(args, settings), {"settings": settings.to_dict(), "datasets": {}}
    for ds in args.datasets:
        lines, everything["datasets"][ds] = probe_dataset(args, ds, settings, overrides)
        report += lines
    (args.out / "features.json").write_text(json.dumps(everything, indent=1, default=str) + "\n")
    notes = args.out / "features_notes.md"  # the hand-written reading of the tables, kept across regenerations
    if notes.is_file():
        report += ["", notes.read_text().rstrip()]
    (args.out / "features.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS), help="data sets")
    parser.add_argument(
        "--data-root", type=Path, default=SHARED, help="folder holding the data sets (default ../shared/data)"
    )
    parser.add_argument("--seeds", type=int, help="probe seeds (default 3; with --smoke 2)")
    parser.add_argument("--limit", type=int, help="training images the probes use (default: per data set)")
    parser.add_argument("--test-limit", type=int, help="test images the probes use (default: all)")
    parser.add_argument(
        "--out", type=Path, help="report folder (default docs/results; with --smoke a new temporary one)"
    )
    parser.add_argument(
        "--runs", type=Path, help="pretraining runs and probe caches (default runs/features; smoke: OUT/runs)"
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--pretrain-only", action="store_true", help="start or resume the pretraining runs, then stop")
    only.add_argument("--probes-only", action="store_true", help="probes, figures and report; pretraining must be done")
    only.add_argument(
        "--rows",
        nargs="+",
        choices=[*ENCODERS, "random", "supervised"],
        help="only probe these rows (kept for the report) and print them; starts no pretraining",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (2 pretraining steps, 100 images, 2 seeds)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.smoke:
        args.out = args.out or Path(tempfile.mkdtemp(prefix="features-smoke-"))
        args.limit, args.test_limit = args.limit or 100, args.test_limit or 50
    args.seeds = args.seeds or (2 if args.smoke else 3)
    args.out = args.out or ROOT / "docs" / "results"
    args.runs = args.runs or (args.out / "runs" if args.smoke else ROOT / "runs" / "features")
    train_overrides = SMOKE_TRAIN if args.smoke else []
    if args.rows:
        for ds in args.datasets:
            probe_rows(args, ds, SMOKE_PROBES if args.smoke else ProbeSettings(), train_overrides)
        return
    if not args.probes_only:
        for ds in args.datasets:
            for encoder, preset in DATASETS[ds].presets.items():
                pretrain(preset, args.data_root / ds / "train", args.runs / f"{ds}-{encoder}", train_overrides)
    if not args.pretrain_only:
        probe_everything(args, SMOKE_PROBES if args.smoke else ProbeSettings(), train_overrides)
        print(f"report: {args.out / 'features.md'}")


if __name__ == "__main__":
    main()
