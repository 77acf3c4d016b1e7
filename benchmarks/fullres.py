"""Inpainting at each photo's own resolution: the network fill against exemplar and diffusion baselines.

    python benchmarks/fullres.py                                  # every method, stroke and box holes
    python benchmarks/fullres.py --limit 3 --methods net net+patch
    python benchmarks/fullres.py --sets tuning tuning768 --synthesis membrane=0.3   # choosing a setting
    python benchmarks/fullres.py --update --methods net+patch     # only the default again, other scores kept

Sets (when present): ../shared/data/eval/kodak24 and mcmaster18, and `imagenet-test` (the `test/` half of
../shared/data/imagenet-photos: photos at their published size, objects and buildings), photographs never
used for training, long side capped at 1024 px; for choosing settings, never the test sets: `tuning`, the
photos of ../shared/data/bsds500-train that the 128 px models hold out from training (`data.val_fraction`
0.06), `tuning768`, the same enlarged to Kodak's long side of 768 px, where strokes are wider in pixels,
and `imagenet-tuning`, the `tuning/` half of imagenet-photos.
Methods: the classical methods marked `fullres` in the registry (`context_encoder.methods`: OpenCV's Telea,
PatchMatch, frequency-selective reconstruction), any other classical one by name, `net` (the shipped model
with its stored inference options; by default the model ranked best for free-form holes) and `net+<refiner>`
for every other refiner (`net+patch`: refine="patch"; `--synthesis KEY=VALUE` changes its
`SynthesisSettings`). Every method fills the same seeded holes; scores are on the hole (see
`context_encoder.fullres`), win rates count the images on which a method beats `--reference`. Writes
fullres.json, fullres.md and fullres.png per set under `--out` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import fields, replace
from pathlib import Path

from context_encoder import methods as registry
from context_encoder.baselines import REFERENCE
from context_encoder.config import load_config
from context_encoder.data import holdout_split, readable_images
from context_encoder.fill import FullResMethod
from context_encoder.fullres import baseline_methods, markdown_tables, run_fullres
from context_encoder.loading import default_model, load_model
from context_encoder.masks import FULLRES_MASKS
from context_encoder.perf import INFERENCE_PRECISIONS
from context_encoder.synthesis import SynthesisSettings

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# name: (folder, held-out tuning photos only, long side to resize to)
SETS = {
    "kodak24": (SHARED / "eval" / "kodak24", False, None),
    "mcmaster18": (SHARED / "eval" / "mcmaster18", False, None),
    "tuning": (SHARED / "bsds500-train", True, None),
    "tuning768": (SHARED / "bsds500-train", True, 768),
    "imagenet-tuning": (SHARED / "imagenet-photos" / "tuning", False, None),
    "imagenet-test": (SHARED / "imagenet-photos" / "test", False, None),
}
TEST_SETS = ["kodak24", "mcmaster18", "imagenet-test"]
TUNING_SETS = ["tuning", "tuning768", "imagenet-tuning"]  # settings are chosen on these, never on TEST_SETS
# the share of each folder the 128 px recipes hold out from training: these photos are never trained on
TUNING_FRACTION = load_config("scenes128_center").data.val_fraction
# the network with each refiner: "net" (its fill as it is), "net+patch", ...
NETWORKS = {("net" if r == registry.NO_REFINE else f"net+{r}"): r for r in registry.names("refiner")}
BASELINES = registry.reference_baselines()  # the classical methods that need no database
METHODS = (*registry.names("classical", fullres=True), *NETWORKS)  # the default


def network_method(
    model: str, refine: str, synthesis: SynthesisSettings | None = None, precision: str = "auto"
) -> FullResMethod:
    """The model's fill with its stored inference options, `refine`, the synthesis settings and `precision`."""
    inpainter = load_model(model, precision=precision)
    return inpainter.method(replace(inpainter.options, refine=refine), synthesis)


def build_methods(
    names: list[str], model: str, synthesis: SynthesisSettings | None = None, precision: str = "auto"
) -> dict[str, FullResMethod]:
    methods = baseline_methods([n for n in names if n in BASELINES])
    for name, refine in NETWORKS.items():
        if name in names:
            methods[name] = network_method(model, refine, synthesis, precision)
    return {n: methods[n] for n in names if n in methods}  # in the order asked for


def synthesis_settings(pairs: list[str]) -> SynthesisSettings | None:
    """`SynthesisSettings` with KEY=VALUE overrides (values typed like the field's default); None for none."""
    if not pairs:
        return None
    types = {f.name: type(f.default) for f in fields(SynthesisSettings)}
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"--synthesis: expected KEY=VALUE with KEY one of {', '.join(types)}, got '{pair}'")
        try:
            changes[key] = types[key](value)
        except ValueError:
            raise SystemExit(f"--synthesis: {key} must be a {types[key].__name__}, got '{value}'") from None
    try:
        return SynthesisSettings(**changes)
    except ValueError as e:
        raise SystemExit(f"--synthesis: {e}") from None


def earlier_results(path: Path, args: argparse.Namespace, long_side: int | None, model: str) -> dict:
    """The results at `path` to update, checked to have been made with the same seed, sizes, holes and model."""
    if not path.is_file():
        raise SystemExit(f"--update: no earlier results at {path}")
    results = json.loads(path.read_text())
    meta = results["meta"]
    want = {"seed": args.seed, "max_side": args.max_side, "long_side": long_side, "model": model}
    for key, value in want.items():
        if meta.get(key) != value:
            raise SystemExit(f"--update: {path} was made with {key}={meta.get(key)}, not {value}")
    missing = [k for k in args.masks if k not in results["kinds"]]
    if missing:
        raise SystemExit(f"--update: {path} has no {', '.join(missing)} holes")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*BASELINES, *NETWORKS])
    parser.add_argument("--masks", nargs="+", default=list(FULLRES_MASKS), choices=list(FULLRES_MASKS))
    parser.add_argument("--sets", nargs="+", default=TEST_SETS, choices=list(SETS))
    parser.add_argument("--model", help="shipped model or .safetensors file (default: best ranked for free-form holes)")
    parser.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="the generator's arithmetic (default auto)",
    )
    parser.add_argument("--synthesis", nargs="+", default=[], metavar="KEY=VALUE", help="SynthesisSettings overrides")
    parser.add_argument("--limit", type=int, help="images per set at most (evenly spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-side", type=int, default=1024, help="long side cap in px")
    parser.add_argument("--reference", default=REFERENCE, help="method the win rates are counted against")
    parser.add_argument("--no-perceptual", action="store_true", help="skip VIF-P, MS-SSIM and LPIPS (the slow scores)")
    parser.add_argument(
        "--perceptual",
        nargs="+",
        choices=["vifp", "ms_ssim", "lpips_alex", "lpips_vgg"],
        help="compute only these of the slow scores (default: all that are available)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/results/fullres"))
    parser.add_argument(
        "--update",
        action="store_true",
        help="run only --methods again and keep the other methods' scores from the set's fullres.json under --out "
        "(same photos, holes and settings; every method still runs on the figure's photos)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    model = args.model or default_model(arbitrary_holes=True)
    settings = synthesis_settings(args.synthesis)
    for set_name in args.sets:
        folder, tuning, long_side = SETS[set_name]
        if not folder.is_dir():
            print(f"# {set_name}: missing ({folder})")
            continue
        reuse, names = None, args.methods
        if args.update:
            reuse = earlier_results(args.out / set_name / "fullres.json", args, long_side, model)
            names = [*reuse["meta"]["methods"], *(n for n in args.methods if n not in reuse["meta"]["methods"])]
        methods = build_methods(names, model, settings, args.precision)
        reference = args.reference if args.reference in methods else None
        paths = holdout_split(readable_images(folder), folder, TUNING_FRACTION)[1] if tuning else None
        results = run_fullres(
            methods,
            folder,
            masks=args.masks,
            limit=args.limit,
            seed=args.seed,
            max_side=args.max_side,
            reference=reference,
            out=args.out / set_name,
            perceptual=False if args.no_perceptual else (args.perceptual or True),
            paths=paths,
            long_side=long_side,
            meta={"set": set_name, "model": model, "synthesis": args.synthesis}
            | ({"run_again": args.methods} if reuse else {}),
            reuse=reuse,
            fresh=args.methods,
        )
        print(markdown_tables(results), flush=True)
    print(f"# written under {args.out}/")


if __name__ == "__main__":
    main()
