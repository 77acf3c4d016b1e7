"""Training and inference throughput: the plain path against the fast path, side by side in one run.

    python benchmarks/throughput.py                    # every preset
    python benchmarks/throughput.py --preset paper_center --steps 6

plain: what a straightforward port does: eager fp32, contiguous tensors, PyTorch's default Adam, and the
       4000-unit bottleneck as the released 4x4 conv / up-conv modules.
fast:  the library's training step with `auto` speed settings for this device (see perf.py).

Both paths train the same networks on the same in-memory batch, interleaved step by step so machine
noise hits both alike; medians are reported. Also measured: FLOPs of one training step (PyTorch's
FlopCounterMode) and the achieved FLOP/s against a large fp32 matmul timed in the same run, data-loading
images/s on real photographs, inference latency (batch 1) and throughput (batch 64), peak memory.
The last line is `fast/plain = R` (paper_center's ratio when it was measured).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from context_encoder.config import Config, apply_overrides, load_config
from context_encoder.data import ImageDataset, readable_images, training_loader
from context_encoder.masks import hole_fill, sample_masks
from context_encoder.models import FullyConnectedBottleneck, build_models
from context_encoder.optim import make_optimizers
from context_encoder.perf import Precision, resolve_speed
from context_encoder.train import resolve_device, train_step

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA = {"cifar10": "cifar10/train", "tiny": "cifar10/train"}  # others: intel-scenes/train
PRESETS = ["tiny", "cifar10", "scenes64", "paper_center", "paper_random"]
RECIPE_STEPS = 116_000  # released recipe: ~116k iterations of batch 64


class ConvFCBottleneck(nn.Module):
    """The released layers 6-7 as written: 4x4 valid conv to (D, 1, 1), 4x4 up-conv back (same maths)."""

    def __init__(self, fc: FullyConnectedBottleneck):
        super().__init__()
        dim, c_in16 = fc.encode.weight.shape
        c_out = fc.c_out
        self.encode = nn.Conv2d(c_in16 // 16, dim, 4, bias=False)
        self.encode_bn = nn.BatchNorm2d(dim)
        self.decode = nn.ConvTranspose2d(dim, c_out, 4, bias=False)
        self.decode_bn = nn.BatchNorm2d(c_out)
        with torch.no_grad():
            self.encode.weight.copy_(fc.encode.weight.view(dim, -1, 4, 4))
            self.decode.weight.copy_(fc.decode.weight.t().reshape(dim, c_out, 4, 4))
        self.encode_bn.load_state_dict(fc.encode_bn.state_dict())
        self.decode_bn.load_state_dict(fc.decode_bn.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = nn.functional.leaky_relu(self.encode_bn(self.encode(x)), 0.2)
        return torch.relu(self.decode_bn(self.decode(z)))


def matmul_flops(n: int = 3072, repeats: int = 10) -> float:
    """FLOP/s of an n x n fp32 matmul (best of `repeats`): the practical compute ceiling of this device."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


VARIANTS = {  # fast path with one setting forced, to check what `auto` chose
    "channels_last": ["train.channels_last=on"],
    "bf16": ["train.precision=bf16"],
    "compile": ["train.compile=on"],
}


def _setup(cfg: Config, path: str, device: torch.device):
    gen, disc = build_models(cfg.model, cfg.full_image, 0, device)
    if path in VARIANTS:
        cfg = apply_overrides(cfg, VARIANTS[path])
    speed = resolve_speed(cfg.train, device)
    if path == "plain":
        if isinstance(gen.bottleneck, FullyConnectedBottleneck):
            gen.bottleneck = ConvFCBottleneck(gen.bottleneck).to(device)
        opt_g, opt_d = make_optimizers(gen, disc, cfg, fused=False)
        return gen, disc, opt_g, opt_d, Precision(), torch.contiguous_format
    opt_g, opt_d = make_optimizers(gen, disc, cfg, fused=speed.fused_adam)
    fmt = torch.channels_last if speed.channels_last else torch.contiguous_format
    gen, disc = gen.to(memory_format=fmt), disc.to(memory_format=fmt)
    if speed.compile:
        gen, disc = torch.compile(gen, dynamic=False), torch.compile(disc, dynamic=False)
    return gen, disc, opt_g, opt_d, Precision(speed, device), fmt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_rates(cfg: Config, device: torch.device, steps: int, variants: tuple[str, ...] = ()) -> dict:
    """Median images/s of the plain and fast training steps (and variants), interleaved, plus FLOPs per step."""
    b, s = cfg.train.batch_size, cfg.model.image_size
    real = torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    mask = sample_masks(cfg.mask, b, s, torch.Generator().manual_seed(1)).to(device)
    fill = hole_fill(cfg.mask, device)
    paths = {p: _setup(cfg, p, device) for p in ("plain", "fast", *variants)}
    with FlopCounterMode(display=False) as counter:
        g, d, og, od, prec, fmt = paths["fast"]
        train_step(g, d, og, od, real.contiguous(memory_format=fmt), mask, fill, cfg.loss, prec)
    flops = counter.get_total_flops()
    times: dict[str, list[float]] = {p: [] for p in paths}
    for i in range(steps + 1):  # the first round is warm-up
        for name, (g, d, og, od, prec, fmt) in paths.items():
            x = real.contiguous(memory_format=fmt)
            _sync(device)
            t0 = time.perf_counter()
            out = train_step(g, d, og, od, x, mask, fill, cfg.loss, prec)
            out["loss_g"].item()
            _sync(device)
            if i:
                times[name].append(time.perf_counter() - t0)
    rates = {k: b / statistics.median(v) for k, v in times.items()}
    return {
        **{f"{k}_img_s": v for k, v in rates.items()},
        "flops_per_step": flops,
        "fast_step_s": statistics.median(times["fast"]),
    }


@torch.no_grad()
def inference(cfg: Config, device: torch.device, repeats: int = 10) -> dict:
    gen, _ = build_models(cfg.model, cfg.full_image, 0, device)
    gen.eval()
    s = cfg.model.image_size
    out = {}
    for batch, key in ((1, "latency_b1_ms"), (64, "img_s_b64")):
        x = torch.randn(batch, 3, s, s, device=device)
        m = sample_masks(cfg.mask, batch, s, torch.Generator().manual_seed(0)).to(device)
        gen(x, m)
        times = []
        for _ in range(repeats if batch == 1 else max(2, repeats // 4)):
            _sync(device)
            t0 = time.perf_counter()
            gen(x, m)
            _sync(device)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[key] = med * 1000 if batch == 1 else batch / med
    return out


def loading_rate(cfg: Config, data: Path, batches: int = 20) -> float:
    """Images/s the configured DataLoader delivers on real photographs (decode, resize, crop, flip)."""
    paths = readable_images(data)
    ds = ImageDataset(paths, cfg.model.image_size, cfg.load_size, cache_max_images=cfg.data.cache_max_images)
    it = training_loader(ds, cfg.train.batch_size, seed=0, start_step=0, workers=cfg.workers)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * cfg.train.batch_size / (time.perf_counter() - t0)


def peak_memory(preset: str, device: torch.device) -> dict:
    """Peak RSS (and GPU memory) of a fresh process training the preset's fast path for 2 steps."""
    code = f"""
import json, resource, torch, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from throughput import _setup, load_config, sample_masks, hole_fill, train_step
cfg = load_config({preset!r}); device = torch.device({str(device)!r})
b, s = cfg.train.batch_size, cfg.model.image_size
g, d, og, od, prec, fmt = _setup(cfg, "fast", device)
x = (torch.rand(b, 3, s, s) * 2 - 1).to(device).contiguous(memory_format=fmt)
m = sample_masks(cfg.mask, b, s, torch.Generator().manual_seed(1)).to(device)
for _ in range(2):
    train_step(g, d, og, od, x, m, hole_fill(cfg.mask, device), cfg.loss, prec)
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
print(json.dumps({{"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "peak_gpu_mib": gpu}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(preset: str, steps: int, device: torch.device, peak: float, variants: tuple[str, ...] = ()) -> dict:
    cfg = load_config(preset)
    r = {
        "preset": preset,
        "batch": cfg.train.batch_size,
        "device": str(device),
        **training_rates(cfg, device, steps, variants),
    }
    r["ratio"] = r["fast_img_s"] / r["plain_img_s"]
    r["achieved_tflops"] = r["flops_per_step"] / r["fast_step_s"] / 1e12
    r["fraction_of_matmul"] = r["achieved_tflops"] * 1e12 / peak
    data = SHARED / DATA.get(preset, "intel-scenes/train")
    r["load_img_s"] = loading_rate(cfg, data) if data.is_dir() else None
    r.update(inference(cfg, device))
    r.update(peak_memory(preset, device))
    r["recipe_hours"] = RECIPE_STEPS * cfg.train.batch_size / r["fast_img_s"] / 3600
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="preset to measure (repeatable; default: all)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps per path (default: by preset size)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        choices=sorted(VARIANTS),
        help="also time the fast path with these settings forced on",
    )
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    peak = matmul_flops()
    name = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    print(
        f"# {name}, torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul {peak / 1e9:.1f} GFLOP/s"
    )
    header = (
        f"{'preset':<13} {'plain img/s':>11} {'fast img/s':>10} {'ratio':>6} {'GFLOP/step':>10} "
        f"{'GFLOP/s':>8} {'of mm':>6} {'load img/s':>10} {'b1 ms':>7} {'b64 img/s':>9} {'RSS MiB':>8}"
    )
    print(header)
    results = []
    for preset in args.preset or PRESETS:
        steps = args.steps or (3 if preset.startswith("paper") else 10)
        r = measure(preset, steps, device, peak, tuple(args.variants))
        results.append(r)
        load = f"{r['load_img_s']:>10.0f}" if r["load_img_s"] else f"{'-':>10}"
        print(
            f"{preset:<13} {r['plain_img_s']:>11.1f} {r['fast_img_s']:>10.1f} {r['ratio']:>6.2f} "
            f"{r['flops_per_step'] / 1e9:>10.1f} {r['achieved_tflops'] * 1e3:>8.1f} {r['fraction_of_matmul']:>6.0%} "
            f"{load} {r['latency_b1_ms']:>7.1f} {r['img_s_b64']:>9.1f} {r['peak_rss_mib']:>8.0f}",
            flush=True,
        )
        for v in args.variants:
            print(f"  fast + {v:<14} {r[f'{v}_img_s']:>8.1f} img/s = {r[f'{v}_img_s'] / r['fast_img_s']:.2f} x fast")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "device": name,
                "torch": torch.__version__,
                "matmul_flops": peak,
                "threads": torch.get_num_threads(),
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    print(f"# written {args.json}; peak RSS of this process {rss} MiB")
    main_result = next((r for r in results if r["preset"] == "paper_center"), results[-1])
    print(f"fast/plain = {main_result['ratio']:.2f}")


if __name__ == "__main__":
    main()
