"""Inpainting at each photo's own resolution: the network fill against exemplar and diffusion baselines.

    python benchmarks/fullres.py                                  # every method, stroke and box holes
    python benchmarks/fullres.py --limit 3 --methods telea patchmatch fsr net

Sets (when present): ../shared/data/eval/kodak24 and mcmaster18, photographs never used for training,
long side capped at 1024 px. Methods: `telea` (OpenCV, diffusion), `patchmatch` (PyPatchMatch,
exemplar), `fsr` (OpenCV contrib's frequency-selective reconstruction), `net` (the shipped model with
its stored inference options) and `net+patch` (the same with refine="patch"). Every method fills the
same seeded holes; scores are on the hole (see `context_encoder.fullres`),
win rates count the images on which a method beats `--reference`. Writes fullres.json, fullres.md and
fullres.png per set under `--out` and prints the tables.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from context_encoder.fullres import FullResMethod, baseline_methods, markdown_tables, run_fullres
from context_encoder.loading import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {"kodak24": SHARED / "eval" / "kodak24", "mcmaster18": SHARED / "eval" / "mcmaster18"}
METHODS = ("telea", "patchmatch", "fsr", "net", "net+patch")
BASELINES = ("telea", "patchmatch", "fsr")


def network_method(model: str, refine: str) -> FullResMethod:
    """The model's fill with its stored inference options and `refine`."""
    inpainter = load_model(model)
    options = replace(inpainter.options, refine=refine)

    def method(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return np.asarray(inpainter(image, hole, options))

    return method


def build_methods(names: list[str], model: str) -> dict[str, FullResMethod]:
    methods = baseline_methods([n for n in names if n in BASELINES])
    for name, refine in (("net", "none"), ("net+patch", "patch")):
        if name in names:
            methods[name] = network_method(model, refine)
    return {n: methods[n] for n in names if n in methods}  # in the order asked for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--masks", nargs="+", default=["stroke", "box"], choices=["stroke", "box"])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--model", default="scenes-region", help="shipped model name or .safetensors file")
    parser.add_argument("--limit", type=int, help="images per set at most (evenly spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=1024, help="long side cap in px")
    parser.add_argument("--reference", default="patchmatch", help="method the win rates are counted against")
    parser.add_argument("--no-perceptual", action="store_true", help="skip VIF-P and MS-SSIM (the slow scores)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/fullres"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    methods = build_methods(args.methods, args.model)
    reference = args.reference if args.reference in methods else None
    for set_name in args.sets:
        folder = SETS[set_name]
        if not folder.is_dir():
            print(f"# {set_name}: missing ({folder})")
            continue
        results = run_fullres(
            methods,
            folder,
            masks=args.masks,
            limit=args.limit,
            seed=args.seed,
            max_side=args.max_side,
            reference=reference,
            out=args.out / set_name,
            perceptual=not args.no_perceptual,
        )
        print(markdown_tables(results), flush=True)
    print(f"# written under {args.out}/")


if __name__ == "__main__":
    main()
