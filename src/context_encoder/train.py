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
from .errors import CheckpointError, ConfigError
from .inpaint import composite, prediction_region
from .losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    reconstruction_loss,
    reconstruction_weights,
    uses_discriminator,
)
from .masks import apply_mask, fill_value, sample_masks
from .models import Discriminator, Generator, build_models
from .progress import Progress
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)


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


def make_optimizers(
    gen: nn.Module, disc: nn.Module, cfg: Config, device: torch.device
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for G and D; G's learning rate is `g_lr_mult` x D's in joint mode, as in the released code."""
    t = cfg.train
    g_lr = t.lr * (t.g_lr_mult if cfg.loss.mode == "joint" else 1.0)
    fused = t.fused_adam and device.type in ("cpu", "cuda")
    kwargs = {"betas": (t.beta1, t.beta2), **({"fused": True} if fused else {})}
    return torch.optim.Adam(gen.parameters(), lr=g_lr, **kwargs), torch.optim.Adam(disc.parameters(), lr=t.lr, **kwargs)


def train_step(
    gen: Generator,
    disc: Discriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: Tensor,
    mask: Tensor,
    fill: Tensor,
    loss_cfg: LossConfig,
) -> dict[str, Tensor]:
    """One iteration on a batch `real` (B, 3, S, S) with holes `mask` (B, 1, S, S); returns detached losses."""
    full_image = gen.full_image
    target = prediction_region(real, full_image)  # what G must predict, (B, 3, P, P)
    weights = reconstruction_weights(prediction_region(mask, full_image), loss_cfg.overlap_weight)  # (B, 1, P, P)
    fake = gen(apply_mask(real, mask, fill))  # (B, 3, P, P)
    stats: dict[str, Tensor] = {}
    adversarial = uses_discriminator(loss_cfg)

    # (1) Update D: maximise log D(x) + log(1 - D(G(context)))
    if adversarial:
        disc.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        real_logits, fake_logits = disc(target), disc(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        loss_d.backward()
        opt_d.step()
        stats["loss_d"] = loss_d.detach()
        stats["d_real"] = torch.sigmoid(real_logits.detach()).mean()
        stats["d_fake"] = torch.sigmoid(fake_logits.detach()).mean()

    # (2) Update G: maximise log D(G(context)) and minimise the weighted reconstruction error
    opt_g.zero_grad(set_to_none=True)
    rec = reconstruction_loss(fake, target, weights, loss_cfg.reconstruction)
    adv = None
    if adversarial:
        disc.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        adv = generator_adversarial_loss(disc(fake))
        stats["loss_g_adv"] = adv.detach()
    loss_g = generator_loss(rec, adv, loss_cfg)
    loss_g.backward()
    opt_g.step()
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
def save_samples(gen: Generator, images: Tensor, masks: Tensor, fill: Tensor, path: Path) -> Path:
    device = next(gen.parameters()).device
    images, masks = images.to(device), masks.to(device)
    masked = apply_mask(images, masks, fill)
    gen.eval()
    filled = composite(images, gen(masked), masks)
    gen.train()
    return save_png(image_grid([images, hole_view(masked, masks), filled]), path)


def _check_resumable(saved: Config, requested: Config) -> None:
    for section in ("model", "mask", "loss"):
        if getattr(saved, section) != getattr(requested, section):
            raise CheckpointError(f"cannot resume: the checkpoint's [{section}] differs from the requested config")


def train(
    cfg: Config,
    run_dir: str | Path,
    resume: str | Path | dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Train per `cfg` into `run_dir`; with `resume` (a path or a loaded checkpoint), continue from it.

    Returns the path of the last checkpoint.

    When resuming, `cfg` must match the checkpoint's model, mask and loss sections; its `train`
    section (e.g. a larger `train.steps`) and data folders are taken from `cfg`.
    """
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    state = None
    if resume is not None:
        state = resume if isinstance(resume, dict) else load_checkpoint(resume)
        _check_resumable(checkpoint_config(state), cfg)
    t = cfg.train
    gen, disc = build_models(cfg.model, cfg.full_image, t.seed, device)
    opt_g, opt_d = make_optimizers(gen, disc, cfg, device)
    mask_rng = torch.Generator().manual_seed(t.seed + 1)
    step = 0
    if state is not None:
        gen.load_state_dict(state["generator"])
        disc.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        mask_rng.set_state(state["mask_rng"])
        step = int(state["step"])
        log.info("resumed from %s at step %d", state["path"], step)
    if step >= t.steps:
        raise ConfigError(f"the checkpoint is already at step {step} >= train.steps={t.steps}; raise train.steps")

    train_paths, val_paths = training_paths(cfg.data)
    log.info("%d training images, %d held out", len(train_paths), len(val_paths))
    s = cfg.model.image_size
    dataset = ImageDataset(train_paths, s, cfg.load_size, cfg.data.flip, t.seed, cfg.data.cache_max_images)
    sample_set = ImageDataset(val_paths or train_paths, s, cfg.load_size, flip=False)
    fixed_images, fixed_masks = _fixed_batch(cfg, sample_set)
    batches = training_loader(dataset, t.batch_size, t.seed, step, cfg.data.workers, device.type == "cuda")

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(cfg.to_json() + "\n")
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    fill = fill_value(cfg.mask.fill_rgb, device)
    center = cfg.mask.kind == "center"
    center_masks = sample_masks(cfg.mask, t.batch_size, s, mask_rng).to(device) if center else None

    def checkpoint() -> Path:
        payload = {
            "config": cfg.to_dict(),
            "step": step,
            "generator": gen.state_dict(),
            "discriminator": disc.state_dict(),
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(),
            "mask_rng": mask_rng.get_state(),
        }
        return save_checkpoint(ckpt_path, payload)

    bar = Progress(t.steps, step, desc=f"train {cfg.name}", enabled=progress)
    sums: dict[str, Tensor] = {}
    window_start, window_steps = time.perf_counter(), 0
    gen.train()
    disc.train()
    with _stop_on_signals() as stop, open(run_dir / "stats.jsonl", "a") as stats_file:
        while step < t.steps:
            real = next(batches).to(device, non_blocking=True)
            mask = center_masks if center_masks is not None else sample_masks(cfg.mask, len(real), s, mask_rng)
            out = train_step(gen, disc, opt_g, opt_d, real, mask.to(device), fill, cfg.loss)
            for k, v in out.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            step += 1
            window_steps += 1
            bar.update()

            if step % t.log_every == 0 or step == t.steps:  # the only host sync for loss values
                elapsed = time.perf_counter() - window_start
                record = {k: round(v.item() / window_steps, 6) for k, v in sums.items()}
                if not all(math.isfinite(v) for v in record.values()):
                    warnings.warn(f"non-finite loss at step {step}: {record}", RuntimeWarning, stacklevel=1)
                record = {"step": step, **record, "img_per_s": round(window_steps * t.batch_size / elapsed, 2)}
                record["time"] = round(time.time(), 3)
                stats_file.write(json.dumps(record) + "\n")
                stats_file.flush()
                shown = {k: record[k] for k in ("loss_d", "loss_g_adv", "loss_rec") if k in record}
                bar.set_postfix(
                    " ".join(f"{k}={v:.4f}" for k, v in shown.items()) + f" {record['img_per_s']:.1f} img/s"
                )
                sums, window_start, window_steps = {}, time.perf_counter(), 0
            if step % t.sample_every == 0 or step == t.steps:
                save_samples(gen, fixed_images, fixed_masks, fill, run_dir / "samples" / f"step_{step:07d}.png")
            if step % t.checkpoint_every == 0 or step == t.steps or stop:
                checkpoint()
            if stop:
                bar.close()
                raise TrainingInterrupted(step, ckpt_path, stop["signum"])
    bar.close()
    log.info("finished %d steps; checkpoint %s", step, ckpt_path)
    return ckpt_path
