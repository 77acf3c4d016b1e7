"""The paper's layout, strictly: 128 px images, the whole 64 px centre square unknown and scored.

    python -m benchmarks.centre128 --models scenes-center scenes128-center
    python -m benchmarks.centre128 --models runs/scenes128-center --limit 200 --json /tmp/c.json
    python -m benchmarks.centre128 --holes random-region --models scenes-region scenes128-region

`--holes random-region` (or `random-block`) scores the whole-image models the same way, on seeded
holes of their training kind (free-form blobs of 20-30% of the image; blocks) instead of the centre.

Every method fills the same images (centre-cropped and resized to 128 px, `protocol.load_images`)
with the same hole: the 64 x 64 centre square, nothing of it known (the paper's models were trained
with a 4 px ring of it visible; here nobody sees that ring). Methods:

- each model in `--models` (a shipped name, a .safetensors file, a checkpoint or a run directory),
  filling as `inpaint` does: one context window around the hole, scaled so that the hole fits the
  model's own (for a 128 px centre model, whose hole leaves a 4 px ring of its 64 px square visible,
  the window is 151 px shrunk to 128);
- every classical baseline of `evaluate.CLASSICAL` (the registry's classical methods that need no
  database: Telea, Navier-Stokes, biharmonic, the membrane, the mean colour, PatchMatch, FSR).

Sets (when present): ../shared/data/eval/kodak24 and mcmaster18 (photographs never used here),
intel-scenes test and sun-scenes test (no model trains on a test split); and, only when asked for
(`--sets validation`), the photos the 128 px recipes hold out from their four training folders
(`data.val_fraction`), on which a choice between models can be made without a test set. Prints one table per set
(hole PSNR, L1, SSIM) and, with `--json`, keeps the results: a later run with the same file, limit
and seed scores only the methods it does not hold yet (so a new model does not recompute the
baselines); `--markdown` writes the tables below the text an existing file has above its first table.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.fullres import TUNING_FRACTION
from benchmarks.quality import SHARED
from context_encoder.baselines import build_baselines
from context_encoder.config import HOLE_MASK_KINDS, MaskConfig
from context_encoder.data import holdout_split, readable_images
from context_encoder.evaluate import CLASSICAL
from context_encoder.fill import Filler, batch_filler
from context_encoder.inpaint import Inpainter
from context_encoder.loading import load_model
from context_encoder.masks import center_mask
from context_encoder.methods import NO_REFINE
from context_encoder.protocol import load_images, score, seeded_masks, spread

SIZE = 128  # px; the hole is the S/2 = 64 px centre square
SETS = {
    "kodak24": SHARED / "eval" / "kodak24",
    "mcmaster18": SHARED / "eval" / "mcmaster18",
    "intel-scenes-test": SHARED / "intel-scenes" / "test",
    "sun-scenes-test": SHARED / "sun-scenes" / "test",
}
# the 128 px recipes' training folders (configs/scenes128_*.toml), each holding out `TUNING_FRACTION` of its photos
TRAINING_FOLDERS = [SHARED / f for f in ("sun-scenes/train", "camvid/train", "bsds500-train", "intel-scenes/train")]
VALIDATION = "validation"


def set_images(set_name: str) -> list[Path]:
    """The image paths of a set: a folder's readable images, or the training folders' held-out photos."""
    if set_name == VALIDATION:
        present = [f for f in TRAINING_FOLDERS if f.is_dir()]
        return [p for f in present for p in holdout_split(readable_images(f), f, TUNING_FRACTION)[1]]
    return readable_images(SETS[set_name]) if SETS[set_name].is_dir() else []


def model_filler(inpainter: Inpainter) -> Filler:
    """A model as a `Filler` on 128 px images: each image through `Inpainter.__call__`, as `inpaint` fills.

    The network's own fill (`refine="none"`): these are the model's protocols, at its own scale; the patch
    synthesis that a model may store as its default is measured at full resolution (`benchmarks/fullres.py`).
    """
    return batch_filler(inpainter.method(replace(inpainter.options, refine=NO_REFINE)))


def strict_scores(
    methods: dict[str, Filler],
    folder: Path | list[Path],
    limit: int | None = None,
    overlap: int = 0,
    progress: bool = True,
    holes: str = "center",
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], int]:
    """({method: hole metric means}, images) on `folder`'s images (or the image paths given) at 128 px with the
    centre square unknown (less an `overlap` px ring), or with seeded holes of another `MaskConfig.kind`."""
    paths, name = (readable_images(folder), folder.name) if isinstance(folder, Path) else (folder, "images")
    images = load_images(spread(paths, limit), SIZE, name, progress)
    if holes == "center":
        masks = center_mask(SIZE, overlap, len(images))
    else:
        masks = seeded_masks(MaskConfig(kind=holes), len(images), SIZE, seed)
    means, _ = score(methods, images, masks)
    return {name: per_region["hole"] for name, per_region in means.items()}, len(images)


def label(source: str) -> str:
    path = Path(source)
    return path.name if path.is_dir() else (path.stem if path.suffix else source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], help="shipped names, weight files, checkpoints or runs")
    parser.add_argument("--baselines", default=",".join(CLASSICAL), help="comma-separated classical methods")
    parser.add_argument("--limit", type=int, default=500, help="images per set at most (evenly spread)")
    parser.add_argument(
        "--holes",
        default="center",
        choices=HOLE_MASK_KINDS,
        help="the centre square (the paper's protocol) or seeded holes of the training mask kinds",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the holes other than the centre square")
    parser.add_argument(
        "--overlap", type=int, default=0, help="px of the square's border left visible (0: the strict protocol)"
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=[*SETS, VALIDATION])
    parser.add_argument("--json", type=Path, help="keep the results here (and reuse what it holds)")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    key = f"limit={args.limit}" + (f",overlap={args.overlap}" if args.overlap else "")
    if args.holes != "center":
        key += f",holes={args.holes},seed={args.seed}"
    store = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    results = store.setdefault(key, {})
    models = {label(m): m for m in args.models}
    baselines = [b for b in args.baselines.split(",") if b]
    for set_name in args.sets:
        paths = set_images(set_name)
        if not paths:
            print(f"{set_name}: no images (is ../shared/data there?), skipped")
            continue
        have = results.setdefault(set_name, {})
        todo_models = [m for m in models if m not in have]
        todo_baselines = [b for b in baselines if b not in have]
        if todo_models or todo_baselines:
            methods: dict[str, Filler] = {m: model_filler(load_model(models[m])) for m in todo_models}
            methods.update(build_baselines(todo_baselines))
            means, n = strict_scores(methods, paths, args.limit, args.overlap, holes=args.holes, seed=args.seed)
            for name, hole in means.items():
                have[name] = {"images": n, **{k: round(v, 5) for k, v in hole.items()}}
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(store, indent=1) + "\n")
    text = tables(results, args.sets)
    print(text)
    if args.markdown:
        args.markdown.write_text(kept_header(args.markdown) + text)


def kept_header(path: Path) -> str:
    """The hand-written text above an existing report's first table, so that regenerating keeps it."""
    if not path.is_file():
        return ""
    head = path.read_text().split("\n### ", 1)[0]
    return "" if head.startswith("### ") else head.rstrip() + "\n\n"


def tables(results: dict, sets: list[str]) -> str:
    lines = []
    for set_name in sets:
        rows = results.get(set_name)
        if not rows:
            continue
        n = next(iter(rows.values()))["images"]
        lines += [f"### {set_name} ({n} images)", "", "| method | PSNR (dB) | L1 | SSIM |", "|---|---|---|---|"]
        for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["psnr"]):
            lines.append(f"| {name} | {r['psnr']:.2f} | {100 * r['l1']:.2f}% | {r['ssim']:.3f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
