"""Feature-learning probes: how well does a pretrained encoder transfer to classification?

    context-encoder probe --checkpoint runs/ce --data ../shared/data/cifar10 --mode linear --seeds 3
    context-encoder probe --init random --config features_cifar --data ... --mode finetune --labels-fraction 0.1

Class labels come from folder names: DATA/train/<class>/... and DATA/test/<class>/.... `linear` freezes
the encoder (eval mode, BatchNorm statistics fixed), average-pools its output to 2x2 and trains a
linear classifier on those features; `finetune` trains the encoder and a linear head together,
optionally on a class-balanced fraction of the training labels. Top-1 accuracy on the test split,
mean and spread over seeds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import load_checkpoint
from .config import Config, TrainConfig, load_config
from .data import readable_images
from .errors import CheckpointError, DataError
from .loading import load_model
from .models import WholeImageEncoder, make_generator
from .perf import Precision, resolve_speed
from .protocol import load_images, spread
from .train import training_seconds

log = logging.getLogger(__name__)


def labelled_split(root: Path, split: str, limit: int | None) -> tuple[list[Path], Tensor, list[str]]:
    """Images of ROOT/split/<class>/ with integer labels; `limit` spreads evenly over classes."""
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{root} has no {split}/ folder: probes need DATA/train/<class>/ and DATA/test/<class>/")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder} has no class sub-folders (expected {split}/<class>/image files)")
    paths = spread(readable_images(folder), limit)
    labels = []
    for p in paths:
        rel = p.relative_to(folder).parts
        if len(rel) < 2:
            raise DataError(f"{p} is not inside a class folder of {folder}")
        labels.append(classes.index(rel[0]))
    return paths, torch.tensor(labels), classes


def load_encoder(checkpoint: str | Path | None, config: str | None, seed: int = 0) -> tuple[nn.Module, Config]:
    """The encoder of a checkpoint's generator, or a randomly initialised one of `config`'s architecture."""
    if checkpoint is not None:
        model = load_model(checkpoint)
        gen, cfg = model.gen, model.cfg
        if not hasattr(gen, "encoder"):
            raise CheckpointError(f"{checkpoint} holds no generator encoder")
    else:
        if config is None:
            raise DataError("--init random needs --config (the architecture to initialise)")
        cfg = load_config(config)
        from .models import init_weights

        gen = make_generator(cfg.model, cfg.full_image)
        init_weights(gen, torch.Generator().manual_seed(seed))
    return WholeImageEncoder(gen), cfg


class Probe(nn.Module):
    """Encoder -> average pool to 2x2 -> flatten -> linear classifier."""

    def __init__(self, encoder: nn.Module, channels: int, classes: int):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(channels * 4, classes)

    def features(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.encoder(x), 2).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@functools.cache
def _precision() -> Precision:
    cpu = torch.device("cpu")
    return Precision(resolve_speed(TrainConfig(), cpu), cpu)


def _autocast() -> contextlib.AbstractContextManager:
    """The autocast training's `auto` precision picks on this CPU (bf16 with native bf16 instructions, else none)."""
    return _precision().autocast()


@torch.no_grad()
def _features(probe: Probe, images: Tensor, batch: int = 256) -> Tensor:
    probe.encoder.eval()
    with _autocast():
        feats = [probe.features(images[i : i + batch] * 2 - 1) for i in range(0, len(images), batch)]
    return torch.cat(feats).float()


def _balanced_subset(labels: Tensor, fraction: float, gen: torch.Generator) -> Tensor:
    """Indices of a class-balanced random `fraction` of the labels (at least one per class)."""
    keep = []
    for c in labels.unique():
        idx = (labels == c).nonzero().flatten()
        n = max(1, round(fraction * len(idx)))
        keep.append(idx[torch.randperm(len(idx), generator=gen)[:n]])
    return torch.cat(keep).sort().values


def linear_probe(
    probe: Probe, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, seed: int, epochs: int = 100
) -> float:
    """Frozen features, standardised; a linear classifier trained with Adam; returns test top-1 accuracy."""
    gen = torch.Generator().manual_seed(seed)
    ftr, fte = _features(probe, train_x), _features(probe, test_x)
    mean, std = ftr.mean(0), ftr.std(0).clamp(min=1e-6)
    ftr, fte = (ftr - mean) / std, (fte - mean) / std
    head = nn.Linear(ftr.shape[1], int(train_y.max()) + 1)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(ftr), generator=gen).split(256):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(head(ftr[idx]), train_y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return (head(fte).argmax(1) == test_y).float().mean().item()


def finetune_probe(
    probe: Probe, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, seed: int, epochs: int = 15
) -> float:
    """Encoder and head trained together (random flips, Adam 1e-3); returns test top-1 accuracy."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        probe.head.weight.normal_(0, 0.01, generator=gen)
        probe.head.bias.zero_()
    opt = torch.optim.Adam(probe.parameters(), lr=1e-3)
    for _ in range(epochs):
        probe.train()
        for idx in torch.randperm(len(train_x), generator=gen).split(64):
            x = train_x[idx] * 2 - 1
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            opt.zero_grad(set_to_none=True)
            with _autocast():
                logits = probe(x)
            F.cross_entropy(logits.float(), train_y[idx]).backward()
            opt.step()
    probe.eval()
    with torch.no_grad(), _autocast():
        logits = torch.cat([probe(test_x[i : i + 256] * 2 - 1) for i in range(0, len(test_x), 256)])
    return (logits.argmax(1) == test_y).float().mean().item()


def run_probe(
    data: str | Path,
    *,
    checkpoint: str | Path | None = None,
    config: str | None = None,
    mode: str = "linear",
    labels_fraction: float = 1.0,
    seeds: int = 3,
    limit: int | None = None,
    test_limit: int | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
) -> dict:
    """The `probe` command: accuracy over `seeds` seeds, with timings; writes probe.json under `out`."""
    if mode not in ("linear", "finetune"):
        raise DataError(f"--mode must be linear or finetune, got '{mode}'")
    if not 0 < labels_fraction <= 1:
        raise DataError(f"--labels-fraction must lie in (0, 1], got {labels_fraction}")
    root = Path(data)
    train_paths, train_y, classes = labelled_split(root, "train", limit)
    test_paths, test_y, test_classes = labelled_split(root, "test", test_limit)
    missing = sorted(set(test_classes) - set(classes))
    if missing:
        raise DataError(f"class '{missing[0]}' is in test/ but not in train/")
    test_y = torch.tensor([classes.index(test_classes[i]) for i in test_y.tolist()])
    _, cfg = load_encoder(checkpoint, config)
    size = cfg.model.image_size
    train_x = load_images(train_paths, size, "train images")
    test_x = load_images(test_paths, size, "test images")
    accs, t0 = [], time.perf_counter()
    for seed in range(seeds):
        encoder, _ = load_encoder(checkpoint, config, seed)
        with torch.no_grad():
            channels = encoder(torch.zeros(1, 3, size, size)).shape[1]
        probe = Probe(encoder, channels, len(classes))
        idx = _balanced_subset(train_y, labels_fraction, torch.Generator().manual_seed(seed))
        fn = linear_probe if mode == "linear" else finetune_probe
        kwargs = {"epochs": epochs} if epochs else {}
        accs.append(fn(probe, train_x[idx], train_y[idx], test_x, test_y, seed, **kwargs))
        log.info("seed %d: top-1 %.4f", seed, accs[-1])
    pretrain_s = None
    if checkpoint is not None:
        pretrain_s = training_seconds(Path(load_checkpoint(checkpoint)["path"]).parent.parent)
    result = {
        "init": str(checkpoint) if checkpoint else "random",
        "mode": mode,
        "labels_fraction": labels_fraction,
        "train_images": len(idx),
        "test_images": len(test_x),
        "classes": classes,
        "accuracy": accs,
        "mean": statistics.mean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "probe_seconds": round(time.perf_counter() - t0, 1),
        "pretrain_seconds": round(pretrain_s, 1) if pretrain_s is not None else None,
    }
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "probe.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def summarize(result: dict) -> str:
    return (
        f"{result['init']}: {result['mode']} probe, {result['labels_fraction']:.0%} labels, "
        f"top-1 {result['mean']:.2%} +- {result['std']:.2%} over {len(result['accuracy'])} seeds "
        f"(probe {result['probe_seconds']} s"
        + (f", pretraining {result['pretrain_seconds']} s)" if result["pretrain_seconds"] is not None else ")")
    )
