"""Training: one D step then one G step per iteration (paper Sec. 3.2, released `train.lua`).

A run directory holds `config.json` (the resolved config), `stats.jsonl` (one JSON record per
`log_every` steps, append-only), `samples/step_NNNNNNN.png` (original | masked | filled, on a fixed
held-out batch) and `checkpoints/last.pt` (everything needed to resume bit for bit).
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from .config import Config, LossConfig
from .data import ImageDataset, training_loader, training_paths
from .distributed import DistInfo, barrier, init_distributed, local_batch, mean_over_ranks, unwrap, wrap
from .errors import CheckpointError, ConfigError
from .fill import generator_filler
from .losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    reconstruction_loss,
    reconstruction_weights,
    uses_discriminator,
)
from .masks import apply_mask, composite, hole_fill, prediction_region, sample_masks
from .metrics import l1_error, psnr
from .models import Discriminator, Generator, build_models
from .optim import EMA, lr_factor, make_optimizers
from .perf import Precision, Speed, resolve_speed
from .progress import Progress
from .protocol import score, scoring_set
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)


class Validator:
    """Hole PSNR and L1 of a generator's raw fill on fixed held-out images with fixed seeded masks.

    The protocol of `evaluate` (`context_encoder.protocol`): images centre-cropped and resized to the
    model's size, pixels in [0, 1], the model's own mask kind.
    """

    def __init__(self, cfg: Config, paths: list[Path], count: int, device: torch.device):
        self.images, self.masks = scoring_set(paths, cfg.model.image_size, cfg.mask, count, cfg.train.seed + 3, False)
        self.images, self.masks = self.images.to(device), self.masks.to(device)
        self.cfg = cfg

    @torch.no_grad()
    def __call__(self, gen: nn.Module) -> dict[str, float]:
        metrics = {"psnr": psnr, "l1": l1_error}
        results, _ = score({"model": generator_filler(gen, self.cfg)}, self.images, self.masks, metrics=metrics)
        r = results["model"]["hole"]
        return {"val_psnr": round(r["psnr"], 4), "val_l1": round(r["l1"], 5)}


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the checkpoint of the last finished step is on disk."""

    def __init__(self, step: int, checkpoint: Path, signum: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.step, self.checkpoint, self.signum = step, checkpoint, signum


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an explicitly requested device that is missing is an error."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if name == "auto":
        return torch.device(next(k for k in ("cuda", "mps", "cpu") if available[k]))
    if not available.get(name, False):
        raise ConfigError(f"train.device='{name}' was requested but is not available here (use 'auto' or 'cpu')")
    return torch.device(name)


def train_step(
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: Tensor,
    mask: Tensor,
    fill: Tensor | str,
    loss_cfg: LossConfig,
    precision: Precision | None = None,
) -> dict[str, Tensor]:
    """One iteration on a batch `real` (B, 3, S, S) with holes `mask` (B, 1, S, S); returns detached losses.

    `gen` and `disc` may be DDP- or compile-wrapped; losses are computed in fp32 under any autocast.
    """
    precision = precision or Precision()
    full_image = unwrap(gen).full_image
    target = prediction_region(real, full_image)  # what G must predict, (B, 3, P, P)
    weights = reconstruction_weights(prediction_region(mask, full_image), loss_cfg.overlap_weight)  # (B, 1, P, P)
    with precision.autocast():
        fake = gen(apply_mask(real, mask, fill), mask)  # (B, 3, P, P)
    stats: dict[str, Tensor] = {}
    adversarial = uses_discriminator(loss_cfg)

    # (1) Update D: maximise log D(x) + log(1 - D(G(context)))
    if adversarial:
        disc.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with precision.autocast():
            real_logits, fake_logits = disc(target).float(), disc(fake.detach()).float()
        loss_d = discriminator_loss(real_logits, fake_logits)
        precision.step(loss_d, opt_d, "d")
        stats["loss_d"] = loss_d.detach()
        stats["d_real"] = torch.sigmoid(real_logits.detach()).mean()
        stats["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()

    # (2) Update G: maximise log D(G(context)) and minimise the weighted reconstruction error
    opt_g.zero_grad(set_to_none=True)
    rec = reconstruction_loss(fake.float(), target, weights, loss_cfg.reconstruction)
    adv = None
    if adversarial:
        disc.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        plain_d = getattr(disc, "module", disc)  # outside DDP: D's weights get no gradient to all-reduce here
        with precision.autocast():
            adv = generator_adversarial_loss(plain_d(fake).float())
        stats["loss_g_adv"] = adv.detach()
    loss_g = generator_loss(rec, adv, loss_cfg)
    precision.step(loss_g, opt_g, "g")
    stats["loss_rec"] = rec.detach()
    stats["loss_g"] = loss_g.detach()
    return stats


@contextmanager
def _stop_on_signals() -> Iterator[dict[str, int]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step; a second signal aborts at once."""
    flag: dict[str, int] = {}

    def handler(signum: int, frame: Any) -> None:
        if flag:
            raise KeyboardInterrupt
        flag["signum"] = signum
        log.warning("signal %d received: saving a checkpoint after this step", signum)

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: signals stay with the caller
        pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def next_run_dir(root: Path, name: str) -> Path:
    """`root/NNNNN-name`, numbered one past the highest existing run."""
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name.split("-", 1)[0]) for p in root.iterdir() if p.name.split("-", 1)[0].isdigit()]
    return root / f"{max(numbers, default=-1) + 1:05d}-{name}"


def _fixed_batch(cfg: Config, dataset: ImageDataset) -> tuple[Tensor, Tensor]:
    """A fixed batch of images (centre-cropped) with fixed masks, for comparable sample grids."""
    n = min(cfg.train.sample_count, len(dataset))
    images = torch.stack([dataset[i * len(dataset) // n] for i in range(n)])
    masks = sample_masks(cfg.mask, n, cfg.model.image_size, torch.Generator().manual_seed(cfg.train.seed + 2))
    return images, masks


@torch.no_grad()
def save_samples(gen: Generator, images: Tensor, masks: Tensor, fill: Tensor | str, path: Path) -> Path:
    device = next(gen.parameters()).device
    images, masks = images.to(device), masks.to(device)
    masked = apply_mask(images, masks, fill)
    was_training = gen.training
    gen.eval()
    filled = composite(images, gen(masked, masks), masks)
    gen.train(was_training)
    return save_png(image_grid([images, hole_view(masked, masks), filled]), path)


def _check_resumable(saved: Config, requested: Config) -> None:
    for section in ("model", "mask", "loss"):
        if getattr(saved, section) != getattr(requested, section):
            raise CheckpointError(f"cannot resume: the checkpoint's [{section}] differs from the requested config")


def _setup(cfg: Config, info: DistInfo) -> tuple[torch.device, Speed]:
    device = resolve_device(cfg.train.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    return device, resolve_speed(cfg.train, device)


def train(
    cfg: Config,
    run_dir: str | Path,
    resume: str | Path | dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train per `cfg` into `run_dir`; with `resume` (a path or a loaded checkpoint), continue from it.

    Returns the path of the last checkpoint. Under `torchrun` every process calls this; rank 0 writes.

    When resuming, `cfg` must match the checkpoint's model, mask and loss sections; its `train`
    section (e.g. a larger `train.steps`) and data folders are taken from `cfg`.
    """
    run_dir = Path(run_dir)
    t = cfg.train
    info = init_distributed(resolve_device(t.device).type)
    device, speed = _setup(cfg, info)
    batch = local_batch(t.batch_size, info)  # images per process
    state = None
    if resume is not None:
        state = resume if isinstance(resume, dict) else load_checkpoint(resume)
        _check_resumable(checkpoint_config(state), cfg)
    gen, disc = build_models(cfg.model, cfg.full_image, t.seed, device)
    opt_g, opt_d = make_optimizers(gen, disc, cfg, speed.fused_adam)
    precision = Precision(speed, device)
    mask_rng = torch.Generator().manual_seed(t.seed + 1)
    step, best_psnr = 0, -math.inf
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        mask_rng.set_state(state["mask_rng"])
        precision.load_state_dict(state.get("grad_scalers", {}))
        best_psnr = state.get("best_val_psnr", best_psnr)
        step = int(state["step"])
        log.info("resumed from %s at step %d", state["path"], step)
    if step >= t.steps:
        raise ConfigError(f"the checkpoint is already at step {step} >= train.steps={t.steps}; raise train.steps")
    ema = EMA(gen, t.ema_decay) if t.ema_decay > 0 else None
    if ema is not None and state is not None and "generator_ema" in state:
        ema.module.load_state_dict(state["generator_ema"])
    memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
    gen, disc = gen.to(memory_format=memory_format), disc.to(memory_format=memory_format)
    gen_run, disc_run = wrap(gen, info, device, t.sync_bn), wrap(disc, info, device, t.sync_bn)
    if speed.compile:
        gen_run, disc_run = torch.compile(gen_run, dynamic=False), torch.compile(disc_run, dynamic=False)

    train_paths, val_paths = training_paths(cfg.data)
    s = cfg.model.image_size
    dataset = ImageDataset(
        train_paths,
        s,
        cfg.load_size,
        flip=cfg.data.flip,
        seed=t.seed,
        cache_max_images=cfg.data.cache_max_images,
        zoom=cfg.data.zoom,
        saturation=cfg.data.saturation,
    )
    batches = training_loader(
        dataset,
        t.batch_size,
        seed=t.seed,
        start_step=step,
        workers=cfg.workers,
        pin_memory=device.type == "cuda",
        rank=info.rank,
        world_size=info.world_size,
    )
    fill = hole_fill(cfg.mask, device)
    mine = slice(info.rank * batch, (info.rank + 1) * batch)  # this process's slice of each global batch
    center_masks = sample_masks(cfg.mask, t.batch_size, s, mask_rng).to(device) if cfg.mask.kind == "center" else None
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    validator = None
    if info.is_main:
        log.info(
            "%d training images, %d held out; %s on %s x%d",
            len(train_paths),
            len(val_paths),
            speed,
            device,
            info.world_size,
        )
        sample_set = ImageDataset(val_paths or train_paths, s, cfg.load_size, flip=False)
        fixed_images, fixed_masks = _fixed_batch(cfg, sample_set)
        validator = Validator(cfg, val_paths or train_paths, t.val_images, device) if t.val_every else None
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(cfg.to_json() + "\n")

    def checkpoint(path: Path = ckpt_path) -> Path:
        payload = {
            "config": cfg.to_dict(),
            "step": step,
            "generator": unwrap(gen).state_dict(),
            "discriminator": unwrap(disc).state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "mask_rng": mask_rng.get_state(),
            "grad_scalers": precision.state_dict(),
            "world_size": info.world_size,
            "best_val_psnr": best_psnr,
        }
        if ema is not None:
            payload["generator_ema"] = ema.module.state_dict()
        return save_checkpoint(path, payload)

    bar = Progress(t.steps, step, desc=f"train {cfg.name}", enabled=progress and info.is_main)
    sums: dict[str, Tensor] = {}
    window_start, window_steps = time.perf_counter(), 0
    gen_run.train()
    disc_run.train()
    stats_file = open(run_dir / "stats.jsonl", "a") if info.is_main else None  # noqa: SIM115
    try:
        with _stop_on_signals() as stop:
            while step < t.steps:
                real = next(batches).to(device, non_blocking=True).contiguous(memory_format=memory_format)
                factor = lr_factor(step, t.steps, t.lr_schedule, t.lr_min_factor)
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
                mask = center_masks if center_masks is not None else sample_masks(cfg.mask, t.batch_size, s, mask_rng)
                out = train_step(
                    gen_run, disc_run, opt_g, opt_d, real, mask[mine].to(device), fill, cfg.loss, precision
                )
                if ema is not None:
                    ema.update(unwrap(gen), step)
                for k, v in out.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                step += 1
                window_steps += 1
                bar.update()

                log_now = step % t.log_every == 0 or step == t.steps
                if log_now:  # the only host sync for loss values
                    means = mean_over_ranks({k: v / window_steps for k, v in sums.items()}, info)
                    elapsed = time.perf_counter() - window_start
                    record = {k: round(v.item(), 6) for k, v in means.items()}
                    if not all(math.isfinite(v) for v in record.values()):
                        warnings.warn(f"non-finite loss at step {step}: {record}", RuntimeWarning, stacklevel=1)
                    record = {"step": step, **record, "img_per_s": round(window_steps * t.batch_size / elapsed, 2)}
                    if stats_file is not None:
                        stats_file.write(json.dumps({**record, "time": round(time.time(), 3)}) + "\n")
                        stats_file.flush()
                    shown = " ".join(
                        f"{k}={record[k]:.4f}" for k in ("loss_d", "loss_g_adv", "loss_rec") if k in record
                    )
                    bar.set_postfix(f"{shown} {record['img_per_s']:.1f} img/s")
                    sums, window_start, window_steps = {}, time.perf_counter(), 0
                if validator is not None and (step % t.val_every == 0 or step == t.steps):
                    val = {"step": step, **validator(ema.module if ema is not None else unwrap(gen))}
                    stats_file.write(json.dumps(val) + "\n")
                    stats_file.flush()
                    if val["val_psnr"] > best_psnr:
                        best_psnr = val["val_psnr"]
                        checkpoint(run_dir / "checkpoints" / "best.pt")
                if info.is_main and (step % t.sample_every == 0 or step == t.steps):
                    path = run_dir / "samples" / f"step_{step:07d}.png"
                    save_samples(ema.module if ema is not None else unwrap(gen), fixed_images, fixed_masks, fill, path)
                # under torchrun every rank must stop at the same step: agree on the flag at log steps
                stopping = _agree(bool(stop), info, device) if (log_now or not info.enabled) else False
                if info.is_main and (step % t.checkpoint_every == 0 or step == t.steps or stopping):
                    checkpoint()
                if stopping:
                    bar.close()
                    barrier(info)
                    raise TrainingInterrupted(step, ckpt_path, stop.get("signum", signal.SIGTERM))
    finally:
        if stats_file is not None:
            stats_file.close()
    bar.close()
    barrier(info)
    log.info("finished %d steps; checkpoint %s", step, ckpt_path)
    return ckpt_path


def _agree(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when any rank's flag is set (one all-reduce); the flag itself for one process."""
    if not info.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def training_seconds(run_dir: str | Path) -> float | None:
    """Training time of a run from its stats.jsonl: the sum of the logged windows (None without stats)."""
    stats = Path(run_dir) / "stats.jsonl"
    if not stats.is_file():
        return None
    cfg_file = Path(run_dir) / "config.json"
    batch = json.loads(cfg_file.read_text())["train"]["batch_size"] if cfg_file.is_file() else 64
    records = [json.loads(x) for x in stats.read_text().splitlines() if "img_per_s" in x]
    total, last = 0.0, 0
    for r in records:
        if r["step"] > last:
            total += (r["step"] - last) * batch / r["img_per_s"]
        last = r["step"]
    return total
