"""Feature-learning probes: how well does a pretrained encoder transfer to classification?

    context-encoder probe --checkpoint runs/ce --data ../shared/data/cifar10 --mode linear --seeds 3
    context-encoder probe --init random --config features_cifar --data ... --mode finetune --labels-fraction 0.1

Class labels come from folder names: DATA/train/<class>/... and DATA/test/<class>/.... The protocol is the
one of the self-supervised literature, at this project's scale:

- every seed carves a class-balanced validation split out of the *training* images (`val_fraction`) and
  draws the labelled subset that trains the classifier (`labels_fraction` of the training images, from
  the rest). Every choice (weight decay, learning-rate ratio, epoch, best layer) is made on the
  validation split; the test split is read once, for the top-1 accuracy of what was chosen;
- `linear`: the encoder is frozen (eval mode, BatchNorm statistics fixed). The output of each conv block
  is average-pooled to a `grid` x `grid` map, flattened and standardised, and one multinomial logistic
  regression per layer and weight decay is trained on it (`logistic.py`). Features are extracted once per
  encoder; the layer with the best validation accuracy is the headline number, every layer is reported;
- `finetune`: encoder and a linear head on its pooled output are trained together, the pretrained
  encoder at `lr_ratio` times the head's learning rate, with flips and small shifts; the ratio and the
  epoch are chosen on the validation split.

Mean and spread over seeds; each seed is a full replicate (split, labelled subset, random init, order).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import load_checkpoint
from .config import Config, ProbeSettings, TrainConfig, load_config
from .errors import CheckpointError, DataError
from .labelled import LabelledSet, Split, load_labelled, probe_split
from .loading import load_model
from .logistic import LinearHead, accuracy_of, select_linear
from .models import WholeImageEncoder, init_weights, make_generator
from .outputs import write_text
from .perf import Precision, resolve_speed
from .train import training_seconds

log = logging.getLogger(__name__)


def load_encoder(checkpoint: str | Path | None, config: str | None, seed: int = 0) -> tuple[WholeImageEncoder, Config]:
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
        gen = make_generator(cfg.model, cfg.full_image)
        init_weights(gen, torch.Generator().manual_seed(seed))
    return WholeImageEncoder(gen), cfg


@functools.cache
def _precision() -> Precision:
    cpu = torch.device("cpu")
    return Precision(resolve_speed(TrainConfig(), cpu), cpu)


def _autocast() -> contextlib.AbstractContextManager:
    """The autocast training's `auto` precision picks on this CPU (bf16 with native bf16 instructions, else none)."""
    return _precision().autocast()


def _inputs(images: Tensor) -> Tensor:
    """uint8 images (N, 3, S, S) as the model's input range [-1, 1]."""
    return images.float() / 127.5 - 1


@torch.no_grad()
def pooled_features(encoder: WholeImageEncoder, images: Tensor, grid: int = 3, batch: int = 256) -> dict[str, Tensor]:
    """Each conv block's output average-pooled to grid x grid: {"conv1": (N, C1 * grid^2), "conv2": ...}.

    The encoder runs in eval mode (fixed BatchNorm statistics); features are float32.
    """
    encoder.eval()
    outs: list[list[Tensor]] = [[] for _ in encoder.block_ends]
    for start in range(0, len(images), batch):
        with _autocast():
            blocks = encoder.blocks(_inputs(images[start : start + batch]))
        for out, h in zip(outs, blocks):
            out.append(F.adaptive_avg_pool2d(h.float(), grid).flatten(1))
    return {f"conv{i + 1}": torch.cat(out) for i, out in enumerate(outs)}


class Classifier(nn.Module):
    """Encoder -> its output average-pooled to grid x grid -> flatten -> linear layer: what fine-tuning trains."""

    def __init__(self, encoder: WholeImageEncoder, channels: int, classes: int, grid: int):
        super().__init__()
        self.encoder, self.grid = encoder, grid
        self.head = nn.Linear(channels * grid * grid, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.adaptive_avg_pool2d(self.encoder(x), self.grid).flatten(1))


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random horizontal flips and shifts of up to 1/8 of the side (reflection-padded), per image."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    s, pad = x.shape[-1], x.shape[-1] // 8
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, len(x)), generator=gen).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + s, dx[i] : dx[i] + s] for i in range(len(x))])


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch: int = 256) -> float:
    """Top-1 accuracy of `model` (eval mode) on uint8 images."""
    model.eval()
    with _autocast():
        logits = torch.cat([model(_inputs(images[i : i + batch])).float() for i in range(0, len(images), batch)])
    return (logits.argmax(1) == labels).float().mean().item()


def finetune(
    make_encoder: Callable[[], WholeImageEncoder],
    data: LabelledSet,
    split: Split,
    settings: ProbeSettings,
    seed: int,
) -> tuple[Classifier, dict]:
    """Fine-tune a fresh encoder and head on `split.fit` for every lr ratio; keep what validates best.

    Only the training images are passed in: the choice of (lr ratio, epoch) cannot see the test split.
    Every ratio starts from the same head initialisation and sees the same batches. Returns the chosen
    classifier and {"val_accuracy", "lr_ratio", "epochs"}.
    """
    fit_x, fit_y = data.train_x[split.fit], data.train_y[split.fit]
    val_x, val_y = data.train_x[split.val], data.train_y[split.val]
    best: tuple[float, float, int, dict] | None = None
    for ratio in settings.lr_ratios:
        gen = torch.Generator().manual_seed(seed)
        encoder = make_encoder().eval()  # eval: the shape probe below must not move BatchNorm statistics
        with torch.no_grad():
            channels = encoder(torch.zeros(1, *fit_x.shape[1:])).shape[1]
        model = Classifier(encoder, channels, len(data.classes), settings.grid)
        with torch.no_grad():
            model.head.weight.normal_(0, 0.01, generator=gen)
            model.head.bias.zero_()
        lr = settings.finetune_lr
        opt = torch.optim.Adam(
            [{"params": model.encoder.parameters(), "lr": lr * ratio}, {"params": model.head.parameters(), "lr": lr}]
        )
        for epoch in range(1, settings.finetune_epochs + 1):
            model.train()
            for idx in torch.randperm(len(fit_x), generator=gen).split(settings.batch_size):
                x = _augment(_inputs(fit_x[idx]), gen)
                opt.zero_grad(set_to_none=True)
                with _autocast():
                    logits = model(x)
                F.cross_entropy(logits.float(), fit_y[idx]).backward()
                opt.step()
            acc = classifier_accuracy(model, val_x, val_y)
            if best is None or acc > best[0]:
                best = (acc, ratio, epoch, copy.deepcopy(model.state_dict()))
            log.debug("lr ratio %g, epoch %d: validation top-1 %.4f", ratio, epoch, acc)
    assert best is not None, "settings.lr_ratios is empty"
    model.load_state_dict(best[3])
    return model, {"val_accuracy": best[0], "lr_ratio": best[1], "epochs": best[2]}


def linear_probe(
    train_features: dict[str, Tensor],
    test_features: dict[str, Tensor],
    data: LabelledSet,
    split: Split,
    settings: ProbeSettings,
    seed: int,
) -> dict:
    """Per layer: the weight decay chosen on validation, then test top-1; the best layer is chosen on validation."""
    layers = {}
    for name, feats in train_features.items():
        head: LinearHead = select_linear(
            feats[split.fit],
            data.train_y[split.fit],
            feats[split.val],
            data.train_y[split.val],
            classes=len(data.classes),
            weight_decays=settings.weight_decays,
            epochs=settings.linear_epochs,
            seed=seed,
        )
        test = accuracy_of(head, test_features[name], data.test_y)  # read only after the choice is made
        layers[name] = {
            "dims": feats.shape[1],
            "weight_decay": head.weight_decay,
            "val_accuracy": head.val_accuracy,
            "accuracy": test,
        }
    best = max(layers, key=lambda n: layers[n]["val_accuracy"])
    return {"best_layer": best, "accuracy": layers[best]["accuracy"], "layers": layers}


def probe_once(
    data: LabelledSet,
    encoder: WholeImageEncoder,
    *,
    mode: str,
    seed: int,
    labels_fraction: float = 1.0,
    settings: ProbeSettings | None = None,
    features: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None,
) -> dict:
    """One seed of a probe of `encoder`, which is left unchanged (fine-tuning trains copies).

    `features`: the (train, test) `pooled_features` of this encoder at `settings.grid`, when the caller
    already has them (a frozen encoder gives the same ones every seed); extracted here otherwise.
    """
    t0, settings = time.perf_counter(), settings or ProbeSettings()
    split = probe_split(data.train_y, seed, settings.val_fraction, labels_fraction)
    if mode == "linear":
        if features is None:
            features = (
                pooled_features(encoder, data.train_x, settings.grid),
                pooled_features(encoder, data.test_x, settings.grid),
            )
        result = linear_probe(*features, data, split, settings, seed)
    elif mode == "finetune":
        model, result = finetune(lambda: copy.deepcopy(encoder), data, split, settings, seed)
        result["accuracy"] = classifier_accuracy(model, data.test_x, data.test_y)  # read only after the choice
    else:
        raise DataError(f"--mode must be linear or finetune, got '{mode}'")
    log.info("seed %d, %s: top-1 %.4f", seed, mode, result["accuracy"])
    counts = {"fit_images": len(split.fit), "val_images": len(split.val), "test_images": len(data.test_y)}
    return {"seed": seed, **counts, **result, "seconds": round(time.perf_counter() - t0, 1)}


def aggregate(per_seed: Sequence[dict]) -> dict:
    """Mean and spread (sample std) over seeds of the top-1 accuracy and, for linear probes, of each layer's."""

    def stats(values: list[float]) -> dict:
        return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}

    out = {"accuracy": [r["accuracy"] for r in per_seed], **stats([r["accuracy"] for r in per_seed])}
    if "layers" in per_seed[0]:
        out["layers"] = {n: stats([r["layers"][n]["accuracy"] for r in per_seed]) for n in per_seed[0]["layers"]}
        out["best_layers"] = [r["best_layer"] for r in per_seed]
    return out


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
    settings: ProbeSettings | None = None,
    out: str | Path | None = None,
) -> dict:
    """The `probe` command: seeds 0..seeds-1, mean and spread, timings; writes probe.json under `out`.

    `epochs` overrides the mode's epochs in `settings`.
    """
    if mode not in ("linear", "finetune"):
        raise DataError(f"--mode must be linear or finetune, got '{mode}'")
    if not 0 < labels_fraction <= 1:
        raise DataError(f"--labels-fraction must lie in (0, 1], got {labels_fraction}")
    settings = settings or ProbeSettings()
    if epochs:
        settings = replace(settings, **{"linear_epochs" if mode == "linear" else "finetune_epochs": epochs})
    encoder, cfg = load_encoder(checkpoint, config)
    labelled = load_labelled(data, cfg.model.image_size, limit, test_limit)
    t0, per_seed, features = time.perf_counter(), [], None
    for seed in range(seeds):
        if checkpoint is None:
            encoder, _ = load_encoder(None, config, seed)
            features = None
        elif mode == "linear" and features is None:  # a frozen pretrained encoder: extract once for every seed
            features = (
                pooled_features(encoder, labelled.train_x, settings.grid),
                pooled_features(encoder, labelled.test_x, settings.grid),
            )
        per_seed.append(
            probe_once(
                labelled,
                encoder,
                mode=mode,
                seed=seed,
                labels_fraction=labels_fraction,
                settings=settings,
                features=features,
            )
        )
    pretrain_s = None
    if checkpoint is not None:
        pretrain_s = training_seconds(Path(load_checkpoint(checkpoint)["path"]).parent.parent)
    result = {
        "init": str(checkpoint) if checkpoint else "random",
        "mode": mode,
        "labels_fraction": labels_fraction,
        "settings": settings.to_dict(),
        "classes": labelled.classes,
        **aggregate(per_seed),
        "seeds": per_seed,
        "probe_seconds": round(time.perf_counter() - t0, 1),
        "pretrain_seconds": round(pretrain_s, 1) if pretrain_s is not None else None,
    }
    if out is not None:
        write_text(Path(out) / "probe.json", json.dumps(result, indent=2) + "\n")
    return result


def summarize(result: dict) -> str:
    """The command's printed result: the headline accuracy, then one line per layer (linear) or the choices."""
    n, first = len(result["accuracy"]), result["seeds"][0]
    head = (
        f"{result['init']}: {result['mode']} probe, {result['labels_fraction']:.0%} labels "
        f"({first['fit_images']} fit, {first['val_images']} validation, {first['test_images']} test images), "
        f"top-1 {result['mean']:.2%} +- {result['std']:.2%} over {n} seeds (probe {result['probe_seconds']} s"
        + (f", pretraining {result['pretrain_seconds']} s)" if result["pretrain_seconds"] is not None else ")")
    )
    lines = [head]
    if "layers" in result:
        lines.append(f"  best layer on validation, per seed: {', '.join(result['best_layers'])}")
        for name, s in result["layers"].items():
            decays = ", ".join(f"{r['layers'][name]['weight_decay']:g}" for r in result["seeds"])
            lines.append(f"  {name}: top-1 {s['mean']:.2%} +- {s['std']:.2%} (weight decay {decays})")
    else:
        chosen = ", ".join(f"ratio {r['lr_ratio']:g} epoch {r['epochs']}" for r in result["seeds"])
        lines.append(f"  chosen on validation, per seed: {chosen}")
    return "\n".join(lines)
