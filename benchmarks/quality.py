"""Inpainting quality of a trained model against the classical baselines, per held-out set.

    python benchmarks/quality.py --model scenes128-center         # a shipped model
    python benchmarks/quality.py --checkpoint runs/x --limit 500  # or any checkpoint

Sets (when present): ../shared/data/eval/kodak24 and mcmaster18 (photographs never used for
training), the CIFAR-10 and intel-scenes test splits. Every method fills the same images with the
same seeded masks (the model's own mask kind), with the protocol of `context-encoder evaluate`. Prints,
per set, the model's hole PSNR and L1 next to the best baseline's, and the PSNR difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from context_encoder.evaluate import compare_with_baselines
from context_encoder.inpaint import InferenceOptions
from context_encoder.loading import load_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = {
    "kodak24": SHARED / "eval" / "kodak24",
    "mcmaster18": SHARED / "eval" / "mcmaster18",
    "cifar10-test": SHARED / "cifar10" / "test",
    "intel-scenes-test": SHARED / "intel-scenes" / "test",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="shipped model name or .safetensors file")
    which.add_argument("--checkpoint", help="checkpoint or run directory")
    parser.add_argument("--limit", type=int, default=1000, help="images per set at most (evenly spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-blend", action="store_true", help="score the raw prediction, without seam blending")
    parser.add_argument(
        "--no-flip-average", action="store_true", help="one fill per image, not the mean with its mirror"
    )
    args = parser.parse_args()
    name = args.model or args.checkpoint
    options = InferenceOptions(blend=not args.no_blend, flip_average=not args.no_flip_average)
    inpainter = load_model(name, options=options)
    cfg = inpainter.cfg
    print(f"# {name}: {cfg.model.image_size} px, {cfg.mask.kind} masks; hole metrics, pixels in [0, 1]")
    print(
        f"{'set':<18} {'n':>5} {'model PSNR':>10} {'best baseline':>14} {'its PSNR':>8} {'PSNR gain':>9} "
        f"{'model L1':>8} {'best L1':>7}"
    )
    out = {}
    for set_name in args.sets:
        folder = SETS[set_name]
        if not folder.is_dir():
            print(f"{set_name:<18} (missing: {folder})")
            continue
        r = compare_with_baselines(inpainter, folder, args.limit, args.seed)
        out[set_name] = r
        m, b = r["methods"]["model"], r["methods"][r["best_baseline"]]
        b1 = r["methods"][r["best_l1_baseline"]]
        print(
            f"{set_name:<18} {r['images']:>5} {m['psnr']:>10.2f} {r['best_baseline']:>14} {b['psnr']:>8.2f} "
            f"{r['psnr_gain']:>+9.2f} {m['l1']:>8.2%} {b1['l1']:>7.2%} ({r['best_l1_baseline']})",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"model": name, "limit": args.limit, "seed": args.seed, "sets": out}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
