"""TensorBoard event files for a training run (`train.tensorboard = true`; the `tensorboard` extra).

The run's numbers also go to `stats.jsonl` and its sample grids to `samples/`; this is a second view of
them for `tensorboard --logdir runs`. Event files are appended as training goes (not written atomically
like the other outputs) and flushed at every log step and at the end. Tags:

    train/<name>     the losses and discriminator outputs of each `stats.jsonl` record, and img_per_s
    lr/generator     the learning rates in force at the logged step (after the schedule)
    lr/discriminator
    val/psnr         hole PSNR and L1 of the held-out validation (train.val_every)
    val/l1
    samples          original | masked input | filled, on the fixed held-out batch
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import ConfigError, first_line

FOLDER = "tensorboard"  # inside the run directory: `tensorboard --logdir runs` finds every run's


def require_tensorboard() -> type:
    """PyTorch's `SummaryWriter`; a one-line `ConfigError` when the `tensorboard` package is missing or unusable."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(
            "train.tensorboard = true needs the tensorboard package: "
            "pip install 'context-encoder[tensorboard]' (or pip install tensorboard)"
        )
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # e.g. a release too old for this PyTorch
        raise ConfigError(
            f"train.tensorboard = true: the installed tensorboard cannot be used ({first_line(exc)})"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """Scalars and images for one run under `run_dir/tensorboard`; only the process that writes makes one.

    `start_step` is the last finished step training starts (or resumes) from: events a previous process
    wrote after it (steps trained after its last checkpoint, now trained again) are hidden by TensorBoard.
    """

    def __init__(self, run_dir: str | Path, start_step: int = 0):
        self.folder = Path(run_dir) / FOLDER
        self.writer = require_tensorboard()(log_dir=str(self.folder), purge_step=start_step + 1)

    def scalars(self, prefix: str, values: dict[str, Any], step: int) -> None:
        """Each number in `values` as `prefix/name` (a record's `step` is the x axis, not a scalar)."""
        for name, value in values.items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def image(self, tag: str, image: Image.Image, step: int) -> None:
        """An RGB image (a sample grid) at `step`."""
        self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
