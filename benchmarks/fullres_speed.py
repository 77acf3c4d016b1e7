"""Seconds per photo at 0.4, 1 and 4 megapixels: the network fill, its patch refinement and the baselines.

    python -m benchmarks.fullres_speed                      # from the repository root
    python -m benchmarks.fullres_speed --methods net --repeats 1
    python -m benchmarks.fullres_speed --threads 1          # one core (default: torch's, all cores)
    python -m benchmarks.fullres_speed --phone --methods net+patch   # 12, 24, 48 MP: time and peak memory

The photo is a Kodak image resized (Lanczos) to each size at 3:2 (a smooth synthetic image when the
shared data is missing), with a seeded 10% brush-stroke hole. Each method runs in a fresh process (so
its peak resident memory is its own) on every size: one untimed warm-up call on a small image, then the
median of `--repeats` calls (one at 4 MP unless `--big-repeats` says otherwise). Prints seconds per
image, seconds per megapixel and peak RSS per method; methods the installed version lacks are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.fullres import BASELINES, NETWORKS, network_method
from context_encoder import methods as registry
from context_encoder.fullres import baseline_methods
from context_encoder.loading import default_model
from context_encoder.masks import stroke_mask
from context_encoder.synthesis import SynthesisSettings

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "kodak24" / "kodim05.png"
METHODS = (*NETWORKS, *registry.names("classical", featured=True))  # the default: the web app's methods
# the patch synthesis as it was before LPIPS chose its settings, timed beside today's as `net+patch-previous`
PREVIOUS = SynthesisSettings(
    radius=3, iterations=2, upsample="image", restore_low=1, guide_weight_thick=4.0, final_vote="copy"
)
# today's synthesis with the coarse levels' holes grown as before they shrank (`net+patch-grow`)
GROW = SynthesisSettings(coarse_holes="grow", coarse_side=64)
# today's synthesis without coherent copies, thick holes searched as thin ones (`net+patch-incoherent`; the
# rest as today)
INCOHERENT = SynthesisSettings(coherence=0.0, search_pixels_thick=250_000)
# today's synthesis with 7 x 7 patches, as before 5 x 5 (`net+patch-radius3`)
RADIUS3 = SynthesisSettings(radius=3)
VARIANTS = {
    "net+patch-previous": PREVIOUS,
    "net+patch-grow": GROW,
    "net+patch-incoherent": INCOHERENT,
    "net+patch-radius3": RADIUS3,
}
SIZES_MP = (0.4, 1.0, 4.0)
PHONE_MP = (12.0, 24.0, 48.0)  # `--phone`: phone-camera sizes, each in a process of its own (its own peak memory)
HOLE = (0.095, 0.105)  # stroke coverage: 10% of the image


def photo(megapixels: float) -> np.ndarray:
    """(H, W, 3) uint8 at about `megapixels` and 3:2: a Kodak image resized, or a smooth synthetic one."""
    w = round((megapixels * 1e6 * 1.5) ** 0.5)
    h = round(w / 1.5)
    if KODAK.is_file():
        src = Image.open(KODAK).convert("RGB")
    else:
        coarse = np.random.default_rng(0).uniform(0, 255, size=(6, 9, 3)).astype(np.uint8)
        src = Image.fromarray(coarse).resize((96, 64), Image.BICUBIC)
    return np.array(src.resize((w, h), Image.LANCZOS if src.width > w else Image.BICUBIC))


def hole(h: int, w: int) -> np.ndarray:
    return stroke_mask(h, w, torch.Generator().manual_seed(0), coverage=HOLE).numpy()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(name: str, sizes: list[float], repeats: int, big_repeats: int, model: str) -> dict:
    """Time one method on every size in this process; {"skipped": reason} when it is unavailable."""
    if name in VARIANTS:
        method = network_method(model, "patch", VARIANTS[name])
    elif name in NETWORKS:
        method = network_method(model, NETWORKS[name])
    else:
        method = baseline_methods([name])[name]
    small = photo(0.05)
    method(small, hole(*small.shape[:2]))  # warm-up: lazy initialisation is not what we measure
    result = {"loaded_rss_mb": peak_rss_mb(), "sizes": {}}  # model, libraries and one small fill
    for mp in sizes:
        image = photo(mp)
        mask = hole(*image.shape[:2])
        times = []
        for _ in range(big_repeats if mp > 2 else repeats):
            start = time.perf_counter()
            method(image, mask)
            times.append(time.perf_counter() - start)
        actual = image.shape[0] * image.shape[1] / 1e6
        result["sizes"][str(mp)] = {"megapixels": actual, "seconds": statistics.median(times), "runs": len(times)}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_worker(name: str, args: argparse.Namespace, sizes: list[float] | None = None) -> dict:
    """`worker` in a fresh Python process (its own peak memory); {"failed": last error line} when it crashes."""
    sizes = args.sizes if sizes is None else sizes
    cmd = [sys.executable, "-m", "benchmarks.fullres_speed", "--worker", name, "--model", args.model]
    cmd += ["--sizes", *map(str, sizes), "--repeats", str(args.repeats), "--big-repeats", str(args.big_repeats)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)} if args.threads else None
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"failed": lines[-1] if lines else f"exit code {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*NETWORKS, *VARIANTS, *BASELINES])
    parser.add_argument("--sizes", nargs="+", type=float, default=list(SIZES_MP), help="megapixels")
    parser.add_argument(
        "--phone",
        action="store_true",
        help=f"sizes {' / '.join(f'{mp:g}' for mp in PHONE_MP)} MP, each in its own process: peak memory per size",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per size (median)")
    parser.add_argument("--big-repeats", type=int, default=1, help="timed calls per size above 2 MP")
    parser.add_argument("--model", help="shipped model or .safetensors file (default: best ranked for free-form holes)")
    parser.add_argument("--threads", type=int, help="torch threads of every method's process (default: torch's)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or default_model(arbitrary_holes=True)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.phone:
        args.sizes = list(PHONE_MP)
    if args.worker:
        print(json.dumps(worker(args.worker, args.sizes, args.repeats, args.big_repeats, args.model)))
        return
    source = "Kodak kodim05" if KODAK.is_file() else "synthetic"
    threads = torch.get_num_threads()
    print(f"# {source} photo, 10% stroke hole, model {args.model}, {threads} torch thread(s); median s/image")
    print("# (seconds per megapixel); peak RSS of the method's process, and its peak after loading and warm-up")
    head = " ".join(f"{f'{mp:g} MP':>16}" for mp in args.sizes)
    print(f"{'method':<18} {head} {'peak RSS':>9} {'warm-up':>10}")
    results = {}
    for name in args.methods:
        if args.phone:  # one process per size: each size's own peak
            runs = [run_worker(name, args, [mp]) for mp in args.sizes]
            failed = [r for r in runs if "skipped" in r or "failed" in r]
            r = results[name] = failed[0] if failed else {"sizes": {k: v for r in runs for k, v in r["sizes"].items()}}
            if not failed:
                r["peak_rss_mb_per_size"] = {str(mp): run["peak_rss_mb"] for mp, run in zip(args.sizes, runs)}
                r["peak_rss_mb"], r["loaded_rss_mb"] = max(x["peak_rss_mb"] for x in runs), runs[0]["loaded_rss_mb"]
        else:
            r = results[name] = run_worker(name, args)
        if "skipped" in r or "failed" in r:
            print(f"{name:<18} ({'skipped' if 'skipped' in r else 'failed'}: {r.get('skipped') or r['failed']})")
            continue
        cells = [f"{s['seconds']:.2f} ({s['seconds'] / s['megapixels']:.2f})" for s in r["sizes"].values()]
        rss = f"{r['peak_rss_mb']:>6.0f} MB {r['loaded_rss_mb']:>7.0f} MB"
        print(f"{name:<18} {' '.join(f'{c:>16}' for c in cells)} {rss}", flush=True)
        if "peak_rss_mb_per_size" in r:
            peaks = " ".join(f"{f'{v:.0f} MB':>16}" for v in r["peak_rss_mb_per_size"].values())
            print(f"{'  peak RSS':<18} {peaks}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        setup = {"photo": source, "model": args.model, "threads": threads, "repeats": args.repeats}
        args.json.write_text(json.dumps({"setup": setup, "methods": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
