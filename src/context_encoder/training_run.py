"""A training run's state and records: the run-state object the loop moves on, and what it writes.

`TrainingRun` holds the networks, optimizers and step, and writes the checkpoints after checking the
weights (the divergence guard); `Logbook` keeps the log window's loss sums and writes stats.jsonl,
TensorBoard events, validation records and sample grids (rank 0). `context_encoder.train` sets a run up
and runs its loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from .checkpoint import check_finite, non_finite, save_checkpoint
from .config import Config
from .distributed import DistInfo, mean_over_ranks, unwrap
from .errors import CheckpointError, ContextEncoderError, first_line
from .masks import apply_mask, composite
from .models import Discriminator, Generator
from .optim import EMA
from .outputs import append_record, open_log
from .perf import Precision, Speed
from .progress import Progress
from .tensorboard_log import TensorBoardLog
from .viz import hole_view, image_grid, save_png

log = logging.getLogger(__name__)

# A discriminator is saturated when it tells real from fake almost perfectly (the paper's adversarial
# loss then gives G no useful gradient): d_real above this and d_fake below 1 minus it, for
# SATURATED_LOGS log records in a row, gets one warning.
SATURATION = 0.99
SATURATED_LOGS = 3


class TrainingDiverged(ContextEncoderError):
    """Raised when a loss or a weight becomes NaN or infinite; no checkpoint is written with such weights."""

    exit_code = 3

    def __init__(self, step: int, what: str, kept: str):
        super().__init__(f"training diverged at step {step}: {what}; {kept} (lower train.lr or check the data)")
        self.step = step


@torch.no_grad()
def sample_grid(gen: Generator, images: Tensor, masks: Tensor, fill: Tensor | str) -> Image.Image:
    """original | masked input | filled, one row per image, with `gen` in eval mode."""
    device = next(gen.parameters()).device
    images, masks = images.to(device), masks.to(device)
    masked = apply_mask(images, masks, fill)
    was_training = gen.training
    gen.eval()
    filled = composite(images, gen(masked, masks), masks)
    gen.train(was_training)
    return image_grid([images, hole_view(masked, masks), filled])


def check_resumable(saved: Config, requested: Config) -> None:
    for section in ("model", "mask", "loss"):
        if getattr(saved, section) != getattr(requested, section):
            raise CheckpointError(f"cannot resume: the checkpoint's [{section}] differs from the requested config")


def load_resumed(state: dict[str, Any], parts: dict[str, Any]) -> None:
    """Load each checkpoint entry into its part (module, optimizer, generator, scaler); refuse bad ones."""
    path = state["path"]
    for key in ("generator", "discriminator", "generator_ema"):
        weights = state.get(key) if key in parts else None
        if isinstance(weights, dict) and all(isinstance(v, Tensor) for v in weights.values()):
            check_finite(weights, f"cannot resume from {path} ({key})")
    try:
        for key, part in parts.items():
            if key == "mask_rng":
                part.set_state(state[key])
            elif key == "grad_scalers":
                part.load_state_dict(state.get(key, {}))
            else:
                part.load_state_dict(state[key])
    except KeyError as exc:
        raise CheckpointError(f"cannot resume from {path}: it has no {exc.args[0]!r}") from None
    except (RuntimeError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"cannot resume from {path}: {first_line(exc)}") from None


class Saturation:
    """Counts log records in a row whose discriminator is saturated; warns once when there are enough."""

    def __init__(self) -> None:
        self.run, self.warned = 0, False

    def update(self, record: dict[str, Any], step: int) -> None:
        real, fake = record.get("d_real"), record.get("d_fake")
        if real is None or fake is None:
            return
        self.run = self.run + 1 if real > SATURATION and fake < 1 - SATURATION else 0
        if self.run >= SATURATED_LOGS and not self.warned:
            self.warned = True
            log.warning(
                "the discriminator is saturated at step %d (d_real %.3f, d_fake %.3f for %d log records): the "
                "adversarial loss no longer guides G; consider a lower train.lr or loss.lambda_adv",
                step,
                real,
                fake,
                self.run,
            )


@dataclass
class TrainingRun:
    """What one training run holds while it runs: its networks and optimizers, where it writes, and how far it is.

    `checkpoint` and `guard_weights` read the step and the best validation PSNR from here, so the loop only
    moves them on. `saved_step` is the step of the last.pt on disk, when known (for the messages that say
    which checkpoint is kept).
    """

    cfg: Config
    run_dir: Path
    info: DistInfo
    device: torch.device
    speed: Speed
    precision: Precision
    gen: Generator
    disc: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    mask_rng: torch.Generator
    ema: EMA | None
    gen_run: nn.Module  # the networks as they run: DDP-wrapped and compiled where asked for
    disc_run: nn.Module
    step: int = 0
    best_val: float | None = None  # the best validation number `train.select` names so far
    saved_step: int | None = None

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.speed.channels_last else torch.contiguous_format

    def sampled(self) -> nn.Module:
        """The generator that samples and validation see: the moving average when kept."""
        return self.ema.module if self.ema is not None else unwrap(self.gen)

    def kept(self) -> str:
        if not self.ckpt_path.is_file():
            return "no checkpoint was written"
        at = f" (step {self.saved_step})" if self.saved_step is not None else ""
        return f"the last good checkpoint {self.ckpt_path}{at} is kept"

    def guard_weights(self) -> None:
        """Stop before NaN or infinite weights reach a checkpoint (same weights, same verdict on every rank)."""
        named = [(f"generator.{k}", v) for k, v in unwrap(self.gen).state_dict().items()]
        named += [(f"discriminator.{k}", v) for k, v in unwrap(self.disc).state_dict().items()]
        if self.ema is not None:
            named += [(f"generator_ema.{k}", v) for k, v in self.ema.module.state_dict().items()]
        bad = non_finite(named)
        if bad:
            raise TrainingDiverged(
                self.step, f"{len(bad)} weight tensor(s) hold NaN or inf (first: {bad[0]})", self.kept()
            )

    def checkpoint(self, path: Path | None = None) -> Path:
        """Write everything needed to resume to `path` (default: last.pt), after checking the weights."""
        path = path or self.ckpt_path
        payload = {
            "config": self.cfg.to_dict(),
            "step": self.step,
            "generator": unwrap(self.gen).state_dict(),
            "discriminator": unwrap(self.disc).state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "mask_rng": self.mask_rng.get_state(),
            "grad_scalers": self.precision.state_dict(),
            "world_size": self.info.world_size,
            "best_val": self.best_val,
            "best_val_metric": self.cfg.train.select,
        }
        if self.ema is not None:
            payload["generator_ema"] = self.ema.module.state_dict()
        self.guard_weights()
        written = save_checkpoint(path, payload)
        if path == self.ckpt_path:
            self.saved_step = self.step
        return written


class Logbook:
    """The run's records: loss sums over the current log window, stats.jsonl and TensorBoard (rank 0), the
    progress bar, and the saturation warning."""

    def __init__(self, run: TrainingRun, progress: bool):
        t, main = run.cfg.train, run.info.is_main
        self.run = run
        self.bar = Progress(t.steps, run.step, desc=f"train {run.cfg.name}", enabled=progress and main)
        self.sums: dict[str, Tensor] = {}
        self.window_start, self.window_steps = time.perf_counter(), 0
        self.stats = open_log(run.run_dir / "stats.jsonl") if main else None
        self.board = TensorBoardLog(run.run_dir, run.step) if main and t.tensorboard else None
        self.saturation = Saturation()

    def add(self, losses: dict[str, Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.window_steps += 1
        self.bar.update()

    def write(self) -> None:
        """One record of the window's mean losses (the only host sync for loss values); a non-finite one stops."""
        run, step = self.run, self.run.step
        means = mean_over_ranks({k: v / self.window_steps for k, v in self.sums.items()}, run.info)
        elapsed = time.perf_counter() - self.window_start
        record = {k: round(v.item(), 6) for k, v in means.items()}
        batch_size = run.cfg.train.batch_size
        record = {"step": step, **record, "img_per_s": round(self.window_steps * batch_size / elapsed, 2)}
        if self.stats is not None:  # non-finite values go in as null
            append_record(self.stats, {**record, "time": round(time.time(), 3)})
        if self.board is not None:  # non-finite values go in as they are: the curve shows where
            self.board.scalars("train", record, step)
            lrs = {"generator": run.opt_g.param_groups[0]["lr"], "discriminator": run.opt_d.param_groups[0]["lr"]}
            self.board.scalars("lr", lrs, step)
            self.board.flush()
        diverged = [f"{k}={v}" for k, v in record.items() if not math.isfinite(v)]
        if diverged:
            raise TrainingDiverged(step, f"non-finite {', '.join(diverged)}", run.kept())
        self.saturation.update(record, step)
        shown_keys = ("loss_d", "loss_g_adv", "loss_rec", "loss_perceptual")
        shown = " ".join(f"{k}={record[k]:.4f}" for k in shown_keys if k in record)
        self.bar.set_postfix(f"{shown} {record['img_per_s']:.1f} img/s")
        self.sums, self.window_start, self.window_steps = {}, time.perf_counter(), 0

    def validate(self, validator: Callable[[nn.Module], dict[str, float]]) -> None:
        """Validate the sampled generator; a new best of `train.select` writes best.pt."""
        run = self.run
        val = {"step": run.step, **validator(run.sampled())}
        append_record(self.stats, val)
        if self.board is not None:
            self.board.scalars("val", {k.removeprefix("val_"): v for k, v in val.items()}, run.step)
        value = val[f"val_{run.cfg.train.select}"]
        lower_better = run.cfg.train.select != "psnr"
        if run.best_val is None or (value < run.best_val if lower_better else value > run.best_val):
            run.best_val = value
            run.checkpoint(run.run_dir / "checkpoints" / "best.pt")

    def sample(self, fixed: tuple[Tensor, Tensor], fill: Tensor | str) -> None:
        grid = sample_grid(self.run.sampled(), *fixed, fill)
        save_png(grid, self.run.run_dir / "samples" / f"step_{self.run.step:07d}.png")
        if self.board is not None:
            self.board.image("samples", grid, self.run.step)

    def close(self) -> None:
        if self.stats is not None:
            self.stats.close()
        if self.board is not None:
            self.board.close()
