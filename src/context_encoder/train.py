"""Training: one D step then one G step per iteration (paper Sec. 3.2, released `train.lua`).

A run directory holds `config.json` (the resolved config), `stats.jsonl` (one strict JSON record per
`log_every` steps, append-only; non-finite values are null), `samples/step_NNNNNNN.png` (original |
masked | filled, on a fixed held-out batch), `checkpoints/last.pt` (everything needed to resume bit
for bit) and, with `train.tensorboard`, `tensorboard/` (those numbers, learning rates and grids as
TensorBoard event files).

Divergence guard: a NaN or infinite loss or weight stops the run (`TrainingDiverged`) before any
checkpoint is written with it, so `last.pt` and `best.pt` keep the last good weights; a discriminator
that stays saturated (d_real ~ 1, d_fake ~ 0) gets a warning.

The loop is small parts around one run-state object (`training_run.TrainingRun`: the networks,
optimizers and step, with the checkpoint and the divergence guard): setting it up (`_start`), the run's
data (`_Feed`), one iteration (`_step`) and its records (`training_run.Logbook`).
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import checkpoint_config, load_checkpoint
from .config import Config, LossConfig
from .data import ImageDataset, load_image, training_loader, training_paths
from .distributed import DistInfo, barrier, init_distributed, local_batch, unwrap, wrap
from .errors import ConfigError, DataError
from .fill import generator_filler
from .losses import (
    discriminator_loss,
    generator_adversarial_loss,
    generator_loss,
    perceptual_loss,
    reconstruction_loss,
    reconstruction_weights,
    uses_discriminator,
)
from .lpips import load_lpips
from .masks import apply_mask, hole_fill, prediction_region, sample_masks
from .metrics import l1_error, psnr
from .models import Discriminator, Generator, build_models
from .optim import EMA, lr_factor, make_optimizers
from .outputs import OutputError, check_output_folder, remove_orphans, write_text
from .perf import Precision, resolve_device, resolve_speed
from .pretrained import read_generator
from .protocol import Metric, lpips_metrics, score, scoring_set, spread
from .tensorboard_log import require_tensorboard
from .training_run import Logbook, TrainingDiverged, TrainingRun, check_resumable, load_resumed

log = logging.getLogger(__name__)


class Validator:
    """Hole PSNR and L1 of a generator's raw fill on fixed held-out images with fixed seeded masks.

    The protocol of `evaluate` (`context_encoder.protocol`): images centre-cropped and resized to the
    model's size, pixels in [0, 1], the model's own mask kind.
    """

    def __init__(self, cfg: Config, paths: list[Path], count: int, device: torch.device):
        chosen = spread(paths, count)
        usable = [p for p in chosen if _decodes(p)]  # a truncated held-out file is skipped, as in training
        if len(usable) < len(chosen):
            log.warning("validation skips %d held-out image(s) that cannot be decoded", len(chosen) - len(usable))
        if not usable:
            raise DataError("no held-out image can be decoded for validation")
        self.images, self.masks = scoring_set(usable, cfg.model.image_size, cfg.mask, None, cfg.train.seed + 3, False)
        self.images, self.masks = self.images.to(device), self.masks.to(device)
        self.cfg = cfg
        self.metrics: dict[str, Metric] = {"psnr": psnr, "l1": l1_error}
        if cfg.loss.perceptual > 0 or cfg.train.select != "psnr":  # both networks: the trained-on one and a judge
            self.metrics.update(lpips_metrics())

    @torch.no_grad()
    def __call__(self, gen: nn.Module) -> dict[str, float]:
        results, _ = score({"model": generator_filler(gen, self.cfg)}, self.images, self.masks, metrics=self.metrics)
        r = results["model"]["hole"]
        return {f"val_{k}": round(v, 5 if k != "psnr" else 4) for k, v in r.items()}


def _decodes(path: Path) -> bool:
    try:
        load_image(path)
    except DataError:
        return False
    return True


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the checkpoint of the last finished step is on disk."""

    def __init__(self, step: int, checkpoint: Path, signum: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved to {checkpoint}")
        self.step, self.checkpoint, self.signum = step, checkpoint, signum


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
    perceptual = None
    if loss_cfg.perceptual > 0:
        distance = load_lpips(loss_cfg.perceptual_net).to(fake.device)
        hole = prediction_region(mask, full_image)
        perceptual = perceptual_loss(fake.float(), target, hole, distance)
        stats["loss_perceptual"] = perceptual.detach()
    loss_g = generator_loss(rec, adv, loss_cfg, perceptual)
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


def _init_generator(gen: Generator, cfg: Config, source: str) -> None:
    """Load the generator weights of `source` (a shipped model, weights file, checkpoint or run) into `gen`."""
    init, init_cfg, _ = read_generator(source)
    if init_cfg.model != cfg.model or init_cfg.full_image != cfg.full_image:
        raise ConfigError(
            f"train.init: {source} is a different network ([model] or hole layout differ from this config's); "
            "fine-tuning needs the same one"
        )
    gen.load_state_dict(init.state_dict())
    log.info("generator initialised from %s", source)


def _start(cfg: Config, run_dir: Path, resume: str | Path | dict[str, Any] | None) -> TrainingRun:
    """Set up a run: processes, device and speed, the networks and optimizers, fresh, fine-tuned or resumed."""
    t = cfg.train
    if t.tensorboard:  # checked on every process, so that all of them stop, before any work
        require_tensorboard()
    info = init_distributed(resolve_device(t.device).type)
    if info.is_main:  # before any work: a run directory that cannot be written is an error now, not later
        check_output_folder(run_dir, "run directory")
        remove_orphans(run_dir / "checkpoints")
    if cfg.loss.perceptual > 0:  # missing LPIPS weights are refused before any work, not at the first step
        load_lpips(cfg.loss.perceptual_net)
    device = resolve_device(t.device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    speed = resolve_speed(t, device)
    state = None
    if resume is not None:
        state = resume if isinstance(resume, dict) else load_checkpoint(resume)
        check_resumable(checkpoint_config(state), cfg)
    gen, disc = build_models(cfg.model, cfg.full_image, t.seed, device)
    opt_g, opt_d = make_optimizers(gen, disc, cfg, speed.fused_adam)
    precision = Precision(speed, device)
    mask_rng = torch.Generator().manual_seed(t.seed + 1)
    step, best_val = 0, None
    if state is not None:
        parts = {"generator": gen, "discriminator": disc, "opt_g": opt_g, "opt_d": opt_d, "mask_rng": mask_rng}
        load_resumed(state, {**parts, "grad_scalers": precision})
        if state.get("best_val_metric", "psnr") == t.select:  # a best kept by another number starts over
            best_val = state.get("best_val", state.get("best_val_psnr"))
        step = int(state["step"])
        log.info("resumed from %s at step %d", state["path"], step)
    if state is None and t.init:
        _init_generator(gen, cfg, t.init)
    if step >= t.steps:
        raise ConfigError(f"the checkpoint is already at step {step} >= train.steps={t.steps}; raise train.steps")
    ema = EMA(gen, t.ema_decay) if t.ema_decay > 0 else None
    if ema is not None and state is not None and "generator_ema" in state:
        load_resumed(state, {"generator_ema": ema.module})
    memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
    gen, disc = gen.to(memory_format=memory_format), disc.to(memory_format=memory_format)
    gen_run, disc_run = wrap(gen, info, device, t.sync_bn), wrap(disc, info, device, t.sync_bn)
    if speed.compile:
        gen_run, disc_run = torch.compile(gen_run, dynamic=False), torch.compile(disc_run, dynamic=False)
    run = TrainingRun(
        cfg, run_dir, info, device, speed, precision, gen, disc, opt_g, opt_d, mask_rng, ema, gen_run, disc_run
    )
    run.step, run.best_val = step, best_val
    if state is not None and Path(state["path"]).resolve() == run.ckpt_path.resolve():
        run.saved_step = int(state["step"])
    return run


@dataclass
class _Feed:
    """The run's data: the endless training batches, the hole masks, and (rank 0) the fixed sample batch and the
    validator."""

    batches: Iterator[Tensor]
    fill: Tensor | str  # what the generator's input holds in the hole
    mine: slice  # this process's slice of each global batch
    center_masks: Tensor | None  # the fixed centre masks, when the holes are the centre square
    fixed: tuple[Tensor, Tensor] | None  # images and masks of the sample grids
    validator: Validator | None


def _feed(run: TrainingRun) -> _Feed:
    """The data of a run, from its step on; rank 0 also writes the resolved config."""
    cfg, t, info, s = run.cfg, run.cfg.train, run.info, run.cfg.model.image_size
    train_paths, val_paths = training_paths(cfg.data)
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
        start_step=run.step,
        workers=cfg.workers,
        pin_memory=run.device.type == "cuda",
        rank=info.rank,
        world_size=info.world_size,
    )
    batch = local_batch(t.batch_size, info)  # images per process
    center = cfg.mask.kind == "center"
    center_masks = sample_masks(cfg.mask, t.batch_size, s, run.mask_rng).to(run.device) if center else None
    feed = _Feed(
        batches,
        hole_fill(cfg.mask, run.device),
        slice(info.rank * batch, (info.rank + 1) * batch),
        center_masks,
        None,
        None,
    )
    if info.is_main:
        log.info(
            "%d training images, %d held out; %s on %s x%d",
            len(train_paths),
            len(val_paths),
            run.speed,
            run.device,
            info.world_size,
        )
        sample_set = ImageDataset(val_paths or train_paths, s, cfg.load_size, flip=False)
        feed.fixed = _fixed_batch(cfg, sample_set)
        feed.validator = Validator(cfg, val_paths or train_paths, t.val_images, run.device) if t.val_every else None
        write_text(run.run_dir / "config.json", cfg.to_json() + "\n")
    return feed


def _step(run: TrainingRun, feed: _Feed) -> dict[str, Tensor]:
    """One training iteration at the run's step: the learning rates of the schedule, a batch, `train_step`."""
    t, s = run.cfg.train, run.cfg.model.image_size
    real = next(feed.batches).to(run.device, non_blocking=True).contiguous(memory_format=run.memory_format)
    factor = lr_factor(run.step, t.steps, t.lr_schedule, t.lr_min_factor)
    for opt in (run.opt_g, run.opt_d):
        for group in opt.param_groups:
            group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
    mask = (
        feed.center_masks
        if feed.center_masks is not None
        else sample_masks(run.cfg.mask, t.batch_size, s, run.mask_rng)
    )
    losses = train_step(
        run.gen_run,
        run.disc_run,
        run.opt_g,
        run.opt_d,
        real,
        mask[feed.mine].to(run.device),
        feed.fill,
        run.cfg.loss,
        run.precision,
    )
    if run.ema is not None:
        run.ema.update(unwrap(run.gen), run.step)
    run.step += 1
    return losses


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
    run = _start(cfg, Path(run_dir), resume)
    feed = _feed(run)
    t, info = cfg.train, run.info
    book = Logbook(run, progress)
    run.gen_run.train()
    run.disc_run.train()
    try:
        with _stop_on_signals() as stop:
            while run.step < t.steps:
                book.add(_step(run, feed))
                step = run.step
                log_now = step % t.log_every == 0 or step == t.steps
                val_now = bool(t.val_every) and (step % t.val_every == 0 or step == t.steps)
                if log_now:
                    book.write()
                if log_now or val_now or step % t.checkpoint_every == 0:
                    run.guard_weights()
                if feed.validator is not None and val_now:
                    book.validate(feed.validator)
                if feed.fixed is not None and (step % t.sample_every == 0 or step == t.steps):
                    book.sample(feed.fixed, feed.fill)
                # under torchrun every rank must stop at the same step: agree on the flag at log steps
                stopping = _agree(bool(stop), info, run.device) if (log_now or not info.enabled) else False
                if info.is_main and (step % t.checkpoint_every == 0 or step == t.steps or stopping):
                    run.checkpoint()
                if stopping:
                    book.bar.close()
                    barrier(info)
                    raise TrainingInterrupted(step, run.ckpt_path, stop.get("signum", signal.SIGTERM))
    except OutputError as exc:  # a full disk: the checkpoint on disk is the last one written whole
        book.bar.close()
        raise OutputError(f"training stopped at step {run.step}: {exc}; {run.kept()}") from None
    except TrainingDiverged:
        book.bar.close()
        raise
    finally:
        book.close()
    book.bar.close()
    barrier(info)
    if info.is_main:
        log.info("finished %d steps; checkpoint %s", run.step, run.ckpt_path)
    return run.ckpt_path


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
