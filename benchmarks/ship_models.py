"""Export a trained run as a shipped model, with its held-out metrics, and regenerate docs/models.md.

    python -m benchmarks.ship_models --name scenes128-region --run runs/scenes128-region \
        --data "SUN scenes, CamVid, BSDS500 and intel-scenes train/ (40 photos held out for validation)"
    python -m benchmarks.ship_models --name scenes128-region --run runs/scenes128-region-l1 \
        --continues scenes128-region --data "..."             # a fine-tune of a shipped model
    python -m benchmarks.ship_models --rescore scenes128-center scenes128-region
    python -m benchmarks.ship_models --rank                      # every shipped model; or name some
    python -m benchmarks.ship_models --store-refine scenes128-region=patch   # inpaint's default fill
    python -m benchmarks.ship_models --docs-only

The checkpoint is the run's best.pt (highest validation hole PSNR) when it has one, else last.pt.
Every shipped model is scored by `benchmarks/quality.py`'s protocol (same images and seeded masks
for the model, filled as `inpaint` fills them (`InferenceOptions()`, which the file then stores), and
for every classical baseline) on each held-out set; the numbers go into the model file's metadata and
docs/models.md is rebuilt from the metadata of all models. `--rescore` scores shipped models again
under the current protocol and rewrites only their metadata (the weights stay byte for byte).

`--rank` measures every shipped model on one protocol per kind of hole and stores the scores as the
file's "ranking", which `inpaint` and the web app follow to pick the default model
(`loading.preferred_models`): "square" is the mean hole PSNR of the strict 128 px centre protocol
(`benchmarks/centre128.py`) over kodak24 and mcmaster18, "free-form" the mean hole PSNR of the
full-resolution brush-stroke protocol (`context_encoder.fullres`) over the same photos; both as
`inpaint` fills (the model's stored options), on photos no model trained on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from benchmarks.quality import SETS, SHARED
from context_encoder.checkpoint import load_checkpoint
from context_encoder.config import load_config
from context_encoder.evaluate import compare_with_baselines
from context_encoder.inpaint import InferenceOptions
from context_encoder.loading import load_model
from context_encoder.pretrained import WEIGHTS_DIR, export, list_pretrained, read_metadata, shipped_path
from context_encoder.safetensors_io import load_file, save_file
from context_encoder.train import training_seconds

ROOT = Path(__file__).resolve().parents[1]


def validation_log(run: Path) -> list[list[float]]:
    stats = run / "stats.jsonl"
    return [[r["step"], r["val_psnr"]] for r in map(json.loads, stats.read_text().splitlines()) if "val_psnr" in r]


def recipe(config: dict, name: str) -> str:
    """The one command that trains this model: its preset and its data folders (shared data shown relative).

    `config` is the run's config as a dict; relative data folders are taken from the repository root,
    where the training command is run.
    """

    def shown(folder: str) -> str:
        # an absolute `folder` stays as it is; ../shared may be a symbolic link, so the folder is compared as
        # written and with links resolved, against the shared folder as written and resolved
        for path in (Path(os.path.normpath(ROOT / folder)), (ROOT / folder).resolve()):
            for base in (Path(os.path.normpath(SHARED)), SHARED.resolve()):
                if path.is_relative_to(base):
                    return f"../shared/data/{path.relative_to(base).as_posix()}"
        return "DIR"

    data_cfg = config["data"]
    data = " ".join(f"--data {shown(f)}" for f in (data_cfg["train_dir"], *data_cfg["extra_dirs"]))
    mix = f" --set data.mix={data_cfg['mix']}" if data_cfg["extra_dirs"] and data_cfg["mix"] != "balanced" else ""
    sets = "".join(f" --set {key}={value}" for key, value in overrides(config))
    return f"context-encoder train --config {config['name']} {data}{mix}{sets} --out runs/{name}"


def overrides(config: dict) -> list[tuple[str, str]]:
    """The (section.key, value) pairs in which a run's config differs from its preset, data folders aside."""
    preset = json.loads(json.dumps(load_config(config["name"]).to_dict()))  # tuples as lists, as in the run's JSON
    found = []
    for section, values in config.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if section == "data" and key in ("train_dir", "extra_dirs", "mix"):
                continue
            if preset.get(section, {}).get(key) != value:
                found.append((f"{section}.{key}", value if isinstance(value, str) else json.dumps(value)))
    return found


OPTIONS = InferenceOptions()  # how `inpaint` fills, how models are scored, and what their files store


def held_out_metrics(name: str, source, limit: int) -> dict:
    inpainter = load_model(source, options=OPTIONS)
    metrics = {}
    for set_name, folder in SETS.items():
        if folder.is_dir():
            r = compare_with_baselines(inpainter, folder, limit, 0)
            model, best = r["methods"]["model"], r["methods"][r["best_baseline"]]
            best_l1 = r["methods"][r["best_l1_baseline"]]
            metrics[set_name] = {
                "images": r["images"],
                "psnr": round(model["psnr"], 2),
                "l1": round(model["l1"], 4),
                "ssim": round(model["ssim"], 3),
                "best_baseline": r["best_baseline"],
                "baseline_psnr": round(best["psnr"], 2),
                "baseline_l1": round(best["l1"], 4),
                "best_l1_baseline": r["best_l1_baseline"],
                "best_l1": round(best_l1["l1"], 4),
                "baselines": {k: [round(v["psnr"], 2), round(v["l1"], 4)] for k, v in r["methods"].items()},
            }
            print(f"{name} {set_name}: {metrics[set_name]}", flush=True)
    return metrics


def ship(name: str, run: Path, data: str, limit: int, continues: str | None = None) -> Path:
    """Export `run` as the shipped model `name`; with `continues`, the run fine-tuned that shipped model.

    A fine-tune's steps, minutes and validation curve are counted on from those of the model it started
    from (read from that model's file before it is replaced), and its recipe is both commands.
    """
    first = read_metadata(shipped_path(continues)) if continues else None
    ckpt = run / "checkpoints" / ("best.pt" if (run / "checkpoints" / "best.pt").is_file() else "last.pt")
    state = load_checkpoint(ckpt)
    metrics = held_out_metrics(name, ckpt, limit)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    info = {
        "data": data,
        "checkpoint_step": int(state["step"]),
        "run_steps": int(last["step"]),
        "training_minutes": round((training_seconds(run) or 0) / 60, 1),
        "validation": validation_log(run),
        "metrics": metrics,
    }
    if first is not None:
        offset = int(first["run_steps"])
        config = json.loads((run / "config.json").read_text())
        config["train"]["init"] = previous_stage(first, continues)
        info.update(
            checkpoint_step=offset + info["checkpoint_step"],
            run_steps=offset + info["run_steps"],
            training_minutes=round(first["training_minutes"] + info["training_minutes"], 1),
            validation=first["validation"] + [[offset + s, p] for s, p in info["validation"]],
            recipe=[*first.get("recipe", [recipe(first["config"], continues)]), recipe(config, run.name)],
        )
    return export(ckpt, WEIGHTS_DIR / f"{name}.safetensors", info, options=OPTIONS)


def previous_stage(meta: dict, name: str) -> str:
    """The run a fine-tune of shipped model `name` (metadata `meta`) started from: the last stage's `--out` in
    its recipe (a model fine-tuned twice started from the first fine-tune's run), not the file it replaces."""
    found = re.search(r"--out (\S+)", meta["recipe"][-1]) if meta.get("recipe") else None
    return found.group(1) if found else f"runs/{name}"


def rewrite_metadata(path: Path, meta: dict) -> Path:
    """Write `meta` as the model file's metadata; the tensors are written back unchanged."""
    return save_file(load_file(path), path, {k: json.dumps(v) for k, v in meta.items()})


def rescore(name: str, limit: int) -> Path:
    """Score a shipped model again and rewrite its metrics; the tensors are written back unchanged."""
    path = shipped_path(name)
    if path is None:
        raise SystemExit(f"no shipped model named {name}")
    meta = read_metadata(path)
    refine = meta.get("inference", {}).get("refine", OPTIONS.refine)  # a stored default refinement stays
    meta.update(inference={**OPTIONS.to_dict(), "refine": refine}, metrics=held_out_metrics(name, name, limit))
    return rewrite_metadata(path, meta)


def store_refine(name: str, refine: str) -> Path:
    """Make `refine` the refinement `inpaint` and the web app use by default with this model.

    Only the file's stored inference options change (the tensors and metrics stay): the held-out metrics
    and the ranking are of the network's own fill, the refinement is measured at full resolution.
    """
    path = shipped_path(name)
    if path is None:
        raise SystemExit(f"no shipped model named {name}")
    meta = read_metadata(path)
    meta["inference"] = InferenceOptions(**{**meta.get("inference", {}), "refine": refine}).to_dict()
    return rewrite_metadata(path, meta)


RANK_SETS = ("kodak24", "mcmaster18")


def ranking(name: str) -> dict[str, float]:
    """{"square": dB, "free-form": dB}: the model's mean hole PSNR over `RANK_SETS` on each protocol."""
    import numpy as np
    import torch

    from benchmarks.centre128 import model_filler, strict_scores
    from benchmarks.fullres import network_method
    from context_encoder.fullres import run_fullres

    inpainter = load_model(name)
    square, free = [], []
    for set_name in RANK_SETS:
        folder = SETS[set_name]
        square.append(strict_scores({name: model_filler(inpainter)}, folder, progress=False)[0][name]["psnr"])
        with torch.no_grad():
            r = run_fullres(
                {name: network_method(name, "none")}, folder, masks="stroke", perceptual=False, progress=False
            )
        free.append(r["kinds"]["stroke"]["summary"][name]["mean"]["psnr"])
    return {"square": round(float(np.mean(square)), 3), "free-form": round(float(np.mean(free)), 3)}


def rank(names: list[str]) -> None:
    """Store each shipped model's `ranking`; the tensors are written back unchanged."""
    for name in names:
        path = shipped_path(name)
        meta = read_metadata(path)
        meta["ranking"] = ranking(name)
        rewrite_metadata(path, meta)
        print(f"{name}: {meta['ranking']}", flush=True)


def docs() -> str:
    models = list_pretrained()
    lines = [
        "# Shipped models",
        "",
        "Inside the package as safetensors files (G's fp16 weights, the config and this",
        "summary in the file's metadata); `context-encoder models` lists them, `context_encoder.load_model(name)`",
        "loads one, `context-encoder inpaint --model NAME` uses one. Regenerate this page and the metrics with",
        "`python -m benchmarks.ship_models` (see its --help).",
        "",
        "| name | input | holes | G params | file | training | data |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        c = m["config"]
        lines.append(
            f"| `{name}` | {c['model']['image_size']} px | {c['mask']['kind']} | {m['parameters'] / 1e6:.1f}M | "
            f"{m['megabytes']} MB | {m['run_steps']} steps, {m['training_minutes']:.0f} min (2-core CPU) | "
            f"{m['data']} |"
        )
    ranked = {n: m["ranking"] for n, m in models.items() if m.get("ranking")}
    if ranked:
        lines += [
            "",
            "Which model `inpaint` and the web app use when none is named: the best measured for the kind of",
            "hole (`python -m benchmarks.ship_models --rank`: mean hole PSNR over kodak24 and mcmaster18, as",
            "`inpaint` fills; squares on the strict 128 px centre protocol, free-form holes on the",
            "full-resolution brush strokes of `docs/results/fullres.md`):",
            "",
            "| name | square hole (dB) | free-form hole (dB) |",
            "|---|---|---|",
        ]
        for kind in ("square", "free-form"):
            best = max(ranked, key=lambda n: ranked[n].get(kind, float("-inf")))
            ranked[best] = {**ranked[best], f"best-{kind}": True}
        for n, r in ranked.items():
            cells = [
                f"**{r[k]:.2f}** (default)" if r.get(f"best-{k}") else f"{r[k]:.2f}" for k in ("square", "free-form")
            ]
            lines.append(f"| `{n}` | " + " | ".join(cells) + " |")
    for name, m in models.items():
        lines += [
            "",
            f"## {name}",
            "",
            "Recipe: "
            + " then ".join(f"`{r}`" for r in m.get("recipe", [recipe(m["config"], name)]))
            + f" (config `configs/{m['config']['name']}.toml`). Checkpoint: step "
            f"{m['checkpoint_step']} of {m['run_steps']}"
            + (", chosen by validation hole PSNR" if m.get("validation") else ", the last")
            + (
                "; weights: the moving average of G."
                if m.get("ema")
                else "; weights: G as trained (no moving average)."
            ),
            "",
            "Held-out hole metrics (pixels in [0, 1]; images centre-cropped and resized to the model's input; the",
            "same seeded masks for every method; the model fills them as `inpaint` does"
            + (
                ", with seam blending and flip averaging):"
                if m.get("inference", {}).get("flip_average")
                else ", with seam blending):"
            ),
            "",
            "| set | images | model PSNR | model L1 | best baseline | its PSNR | its L1 | PSNR gain "
            "| lowest baseline L1 | bar |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for set_name, r in m["metrics"].items():
            l1_name, l1_best = r.get("best_l1_baseline", r["best_baseline"]), r.get("best_l1", r["baseline_l1"])
            bar = "met" if r["psnr"] > r["baseline_psnr"] and r["l1"] < l1_best else "not met"
            lines.append(
                f"| {set_name} | {r['images']} | {r['psnr']:.2f} | {r['l1']:.2%} | {r['best_baseline']} | "
                f"{r['baseline_psnr']:.2f} | {r['baseline_l1']:.2%} | {r['psnr'] - r['baseline_psnr']:+.2f} | "
                f"{l1_best:.2%} ({l1_name}) | {bar} |"
            )
        refine = m.get("inference", {}).get("refine", "none")
        if refine != "none":
            lines += [
                "",
                f'`inpaint` and the web app refine this model\'s fill by default (`refine="{refine}"`, stored in the '
                "file; measured at full resolution in [results/fullres.md](results/fullres.md)); the tables here "
                "are of the network's own fill.",
            ]
        every = {k: r["baselines"] for k, r in m["metrics"].items() if "baselines" in r}
        if every:
            methods = list(next(iter(every.values())))
            lines += [
                "",
                "Every method on the same images and masks (hole PSNR in dB / L1):",
                "",
                "| set | " + " | ".join(methods) + " |",
                "|---|" + "---|" * len(methods),
            ]
            for set_name, row in every.items():
                cells = [f"{row[k][0]:.2f} / {row[k][1]:.2%}" for k in methods]
                lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
        if m.get("validation"):
            curve = ", ".join(f"{int(s)}: {p:.2f}" for s, p in m["validation"])
            lines += ["", f"Validation hole PSNR during training (step: dB): {curve}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name")
    parser.add_argument("--run", type=Path)
    parser.add_argument("--data", default="")
    parser.add_argument(
        "--continues", metavar="NAME", help="the run fine-tuned this shipped model (its file is replaced by --name's)"
    )
    parser.add_argument("--limit", type=int, default=1000, help="images per held-out set at most")
    parser.add_argument("--rescore", nargs="+", metavar="NAME", help="score these shipped models again")
    parser.add_argument("--docs-only", action="store_true")
    parser.add_argument(
        "--store-refine",
        nargs="+",
        metavar="NAME=REFINE",
        help="store the refinement inpaint uses by default with these shipped models (none | patch)",
    )
    parser.add_argument(
        "--rank", nargs="*", metavar="NAME", help="measure and store the ranking of these shipped models (none: all)"
    )
    args = parser.parse_args()
    if args.store_refine:
        for pair in args.store_refine:
            name, sep, refine = pair.partition("=")
            if not sep:
                raise SystemExit(f"--store-refine: expected NAME=REFINE, got '{pair}'")
            print(store_refine(name, refine))
    elif args.rank is not None:
        rank(args.rank or list(list_pretrained()))
    elif args.rescore:
        for name in args.rescore:
            print(rescore(name, args.limit))
    elif not args.docs_only:
        print(ship(args.name, args.run, args.data, args.limit, args.continues))
    notes = ROOT / "docs" / "models_notes.md"  # hand-written discussion appended below the generated tables
    (ROOT / "docs" / "models.md").write_text(docs() + ("\n" + notes.read_text() if notes.is_file() else ""))
    print(f"written {ROOT / 'docs' / 'models.md'}")


if __name__ == "__main__":
    main()
