"""The generator's arithmetic and memory format at inference: fp32 / channels-last / bf16, side by side.

    python -m benchmarks.inference_speed                       # the shipped models, batches 2, 8 and 54
    python -m benchmarks.inference_speed --batches 54 --repeats 9

For each shipped model and batch of windows (54 is a 1 MP photo with a 10% stroke: 27 windows, each with
its mirror image), the median seconds of a forward pass on one thread in four settings, interleaved in
one run, and each one's speed-up over plain fp32; also the largest and mean difference of the bf16 output
from fp32 (outputs in [-1, 1]). `Inpainter` uses channels-last on a CPU or GPU always and bf16 where
`perf.inference_dtype` says the hardware has it natively; bf16 on a CPU without it is emulated and slow.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from context_encoder.loading import load_model
from context_encoder.perf import cpu_has_native_bf16
from context_encoder.pretrained import shipped_names

SETTINGS = ("fp32", "channels-last", "bf16", "channels-last + bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="shipped models (default: all)")
    parser.add_argument("--batches", type=int, nargs="+", default=[2, 8, 54])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"native bf16 on this CPU: {cpu_has_native_bf16()}; one thread; median of {args.repeats} calls")
    print(f"| model | batch | {' | '.join(SETTINGS)} | bf16 max / mean diff |")
    print("|---|---|" + "---|" * (len(SETTINGS) + 1))
    for name in args.models or shipped_names():
        gen = load_model(name, precision="fp32").gen.to(memory_format=torch.contiguous_format)
        s = gen.image_size
        for batch in args.batches:
            g = torch.Generator().manual_seed(0)
            x = torch.rand(batch, 3, s, s, generator=g) * 2 - 1
            mask = torch.rand(batch, 1, s, s, generator=g) > 0.8
            times: dict[str, list[float]] = {k: [] for k in SETTINGS}
            outputs = {}
            with torch.no_grad():
                for _ in range(args.repeats + 1):  # the first round warms up
                    for setting in SETTINGS:
                        fmt = torch.channels_last if "channels-last" in setting else torch.contiguous_format
                        gen.to(memory_format=fmt)
                        cast = torch.autocast("cpu", torch.bfloat16) if "bf16" in setting else contextlib.nullcontext()
                        xi = x.contiguous(memory_format=fmt)
                        start = time.perf_counter()
                        with cast:
                            out = gen(xi, mask).float()
                        times[setting].append(time.perf_counter() - start)
                        outputs[setting] = out
            med = {k: statistics.median(v[1:]) for k, v in times.items()}
            diff = (outputs["bf16"] - outputs["fp32"]).abs()
            cells = [f"{med[k]:.3f} s ({med['fp32'] / med[k]:.2f}x)" for k in SETTINGS]
            print(f"| {name} | {batch} | {' | '.join(cells)} | {diff.max():.4f} / {diff.mean():.5f} |")


if __name__ == "__main__":
    main()
