"""Configuration: frozen dataclasses holding every constant of the method, TOML presets, overrides.

Each section is passed on its own to the code that needs it (the generator gets `ModelConfig`, the
masks get `MaskConfig`, ...). The whole tree goes where a run or a trained model is handled as a
whole: the training loop, checkpoints and exported weights (which store it), and inference and
evaluation, which rebuild a model from it and need its geometry. Defaults are the values of the
paper (Pathak et al., CVPR 2016) and its released Torch code (`train.lua`, `train_random.lua`); where
the two differ the code's value is the default and the paper's is named in the comment.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from .errors import ConfigError
from .geometry import center_bounds, max_overlap

PRESET_DIR = Path(__file__).resolve().parent / "configs"

# The choices of the config's string settings: each is a field's type, checked by `validate` and offered by the
# command line (`typing.get_args`). A new choice is one name here and its implementation.
MaskKind = Literal["center", "random-block", "random-region", "mixed", "none"]  # the samplers: `masks.TRAINING_MASKS`
HoleFill = Literal["mean", "harmonic"]
Encoder = Literal["dcgan", "alexnet", "alexnet-nopool"]
Bottleneck = Literal["fc", "channelwise"]
Context = Literal["none", "fourier"]
LossMode = Literal["l2", "adv", "joint"]
Reconstruction = Literal["l2", "l1"]
Mix = Literal["balanced", "pooled"]
Switch = Literal["auto", "on", "off"]
TrainPrecision = Literal["auto", "fp32", "bf16", "fp16"]  # autocast dtype in training (perf.resolve_speed)
InferencePrecision = Literal["auto", "fp32", "bf16"]  # the generator's arithmetic at inference (perf.inference_dtype)
Device = Literal["auto", "cpu", "cuda", "mps"]  # where a model runs (perf.resolve_device)
LrSchedule = Literal["constant", "cosine"]
LpipsNet = Literal["alex", "vgg"]  # the LPIPS backbones (`context_encoder.lpips`)
Selection = Literal["psnr", "lpips_alex", "lpips_vgg"]  # the validation number best.pt is chosen by

TRAINING_MASK_KINDS: tuple[str, ...] = get_args(MaskKind)
HOLE_MASK_KINDS = tuple(k for k in TRAINING_MASK_KINDS if k != "none")  # the kinds that hide something
DEVICES: tuple[str, ...] = get_args(Device)
INFERENCE_PRECISIONS: tuple[str, ...] = get_args(InferencePrecision)


@dataclass(frozen=True)
class ModelConfig:
    """Generator and discriminator shapes (paper Fig. 9a)."""

    image_size: int = 128  # px, side of the square input; a power of two >= 32
    nef: int = 64  # encoder filters in the first conv
    ngf: int = 64  # decoder filters in the last up-conv before the output
    ndf: int = 64  # discriminator filters in the first conv
    bottleneck: Bottleneck = "fc"  # "fc": released 4000-unit fully connected layer; "channelwise": paper Sec. 3.1
    bottleneck_dim: int = 4000  # units of the "fc" bottleneck (released inpainting models: 4000)
    skip: bool = False  # beyond the paper: U-Net skip connections from encoder to decoder (centre-cropped)
    residual: bool = False  # beyond the paper: G predicts a correction added to its input (zero at init)
    encoder: Encoder = "dcgan"  # "dcgan" (Fig. 9a) | "alexnet" | "alexnet-nopool" (Fig. 9b, feature learning, 227 px)
    # beyond the paper: "fourier" adds residual spectral blocks (the global branch of LaMa's fast Fourier
    # convolution, Suvorov et al. 2022) on the encoder's S/8 map. Each output there mixes every position of
    # the map from the first block on, an answer to the paper's remark that convolutions relate distant
    # context and the hole poorly; "none" is the faithful encoder.
    context: Context = "none"
    context_blocks: int = 2  # spectral blocks with context = "fourier"


@dataclass(frozen=True)
class MaskConfig:
    """Where the hole is and what fills it (paper Sec. 3.3)."""

    kind: MaskKind = "center"  # "center" | "random-block" | "random-region" | "mixed" (either, per image) | "none"
    overlap: int = 4  # px of context ring the centre prediction overlaps (released 4, paper 7)
    fill_rgb: tuple[float, float, float] = (117.0, 104.0, 123.0)  # hole fill, 0-255: released mean pixel
    fill: HoleFill = "mean"  # "mean": fill_rgb (paper) | "harmonic": smooth membrane over the hole border (beyond)
    block_max_count: int = 5  # random-block: at most this many blocks per image
    block_min_frac: float = 0.125  # random-block: smallest block side, fraction of the image side
    block_max_frac: float = 0.333  # random-block: largest block side, fraction of the image side
    max_coverage: float = 0.25  # random-block: union of blocks covers at most this fraction (paper: 1/4)
    region_coverage_min: float = 0.20  # random-region: hole fraction lower bound (released 20%)
    region_coverage_max: float = 0.30  # random-region: hole fraction upper bound (released 30%)
    region_cells_per_px: float = 0.06  # random-region: noise cells per pixel before bicubic upsampling


@dataclass(frozen=True)
class LossConfig:
    """Joint objective L = lambda_rec * L_rec + lambda_adv * L_adv (paper Eq. 3)."""

    mode: LossMode = "joint"  # "l2": reconstruction only; "adv": adversarial only; "joint": both
    reconstruction: Reconstruction = "l2"  # "l2" | "l1" (the paper found them equivalent)
    lambda_rec: float = 0.999  # weight of the reconstruction loss in joint mode
    lambda_adv: float = 0.001  # weight of the adversarial loss in joint mode
    overlap_weight: float = 10.0  # reconstruction weight of the overlap ring / known pixels vs the hole
    # beyond the paper: weight of a perceptual term added to G's loss, the LPIPS distance (Zhang et al. 2018) of
    # `perceptual_net` between the photo and the photo with G's prediction in the hole (0: off). The network in
    # the loss is no fair judge of the model it trains: report the other one (validation records both)
    perceptual: float = 0.0
    perceptual_net: LpipsNet = "alex"
    # (no effect with model.residual: a residual G passes the known pixels through, so their error is zero)


@dataclass(frozen=True)
class DataConfig:
    """Image folders and the released augmentation."""

    train_dir: str = ""  # folder of training images, searched recursively; --data sets it
    extra_dirs: tuple[str, ...] = ()  # further training folders mixed in (--data A --data B ...)
    mix: Mix = "balanced"  # with extra_dirs: "balanced" (each folder drawn equally often) | "pooled" (each image)
    val_dir: str = ""  # held-out folder; empty: a deterministic slice of every training folder is held out
    val_fraction: float = 0.02  # share of each training folder held out when val_dir is empty
    load_size: int = 350  # px, shorter side is resized to this before the random crop (released 350; 0: image_size)
    flip: bool = True  # random horizontal flip
    zoom: float = 1.0  # beyond the released augmentation: a random square crop of 1/zoom to all of the shorter
    # side is cut first and shrunk to load_size (never enlarged: images near load_size are not zoomed)
    saturation: float = 0.0  # beyond the released augmentation: colour saturation scaled by a random factor
    # in [1 - saturation, 1 + saturation] (0: off)
    workers: int | Literal["auto"] = "auto"  # DataLoader worker processes (0: in the training process; "auto": below)
    cache_max_images: int = 2000  # keep decoded, resized images in memory when the set has at most this many


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping."""

    steps: int = 116_000  # iterations, one D step then one G step each (released: ~116k)
    batch_size: int = 64  # images per step
    lr: float = 2e-4  # Adam learning rate of D (and of G outside joint mode)
    g_lr_mult: float = 10.0  # G's learning rate is lr times this in joint mode (released code)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    fused_adam: Switch = "auto"  # "auto" | "on" | "off": fused Adam kernel (same maths, ~4x faster step on CPU)
    precision: TrainPrecision = "auto"  # autocast dtype (auto: bf16 on a GPU or a CPU with native bf16
    # instructions, fp16 on a GPU without bf16, else fp32; see perf.py)
    channels_last: Switch = "auto"  # "auto" | "on" | "off": NHWC memory format (auto: on for CUDA only)
    compile: Switch = "auto"  # "auto" | "on" | "off": torch.compile the networks (auto: off)
    sync_bn: bool = False  # SyncBatchNorm across processes under torchrun (batch statistics of the global batch)
    seed: int = 0  # seeds init, data order, augmentation and masks
    # fine-tuning: G (and its moving average) starts from these weights instead of a random init: a shipped
    # model name, an exported .safetensors file, a checkpoint or a run directory whose [model] equals this one's
    # (D and the optimizers start fresh; empty: random init)
    init: str = ""
    device: Device = "auto"  # "auto" | "cpu" | "cuda" | "mps"
    log_every: int = 50  # steps between stats.jsonl records (and host syncs for loss values)
    sample_every: int = 500  # steps between PNG sample grids
    sample_count: int = 8  # images in a sample grid
    checkpoint_every: int = 1000  # steps between checkpoints (one is always written at the end)
    # beyond the paper: the usual GAN stabilisers (off by default, on in the presets of shipped models)
    ema_decay: float = 0.0  # exponential moving average of G's weights for samples, validation, export (0: off)
    lr_schedule: LrSchedule = "constant"  # "constant" (paper) | "cosine": both lrs decay to lr_min_factor x at the end
    lr_min_factor: float = 0.1  # final lr as a fraction of the initial one, for the cosine schedule
    val_every: int = 0  # steps between hole-PSNR validations on held-out images; best.pt keeps the best (0: off)
    val_images: int = 256  # held-out images used for validation
    # the validation number best.pt keeps the best of: hole PSNR, or the LPIPS distance of the filled image
    # (lpips_alex | lpips_vgg, lower is better; validation then records both networks)
    select: Selection = "psnr"
    # TensorBoard event files in <run dir>/tensorboard: the stats.jsonl numbers, learning rates, validation
    # and sample grids, for `tensorboard --logdir runs` (rank 0 writes; needs the `tensorboard` extra)
    tensorboard: bool = False


@dataclass(frozen=True)
class Config:
    """The whole tree: one section per concern."""

    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "run"  # label used for run directories

    @property
    def full_image(self) -> bool:
        """True when the generator predicts the whole image (random masks), False for the centre patch."""
        return self.mask.kind != "center"

    @property
    def workers(self) -> int:
        """Loader processes: `data.workers`, or for "auto" half the CPU cores (at least 1, at most 8).

        Measured (docs/performance.md): one worker decodes 7-70x faster than the presets train on a
        2-core CPU, so loading never limits training; GPUs consume faster, hence more on larger hosts.
        """
        if self.data.workers == "auto":
            return max(1, min(8, (os.cpu_count() or 2) // 2))
        return int(self.data.workers)

    @property
    def load_size(self) -> int:
        """Shorter side before cropping: `data.load_size`, or the image size when that is 0."""
        return self.data.load_size or self.model.image_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass(frozen=True)
class ProbeSettings:
    """The feature probes' fixed choices (`features.py`); the others are made on a validation split."""

    grid: int = 3  # each layer's output is average-pooled to grid x grid before the linear classifier
    val_fraction: float = 0.1  # share of each class's training images held out for validation
    weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # linear probe: L2 strengths tried
    linear_epochs: int = 40  # linear probe: passes over the labelled subset (Adam, cosine decay to 0)
    lr_ratios: tuple[float, ...] = (0.01, 0.1, 1.0)  # fine-tuning: encoder lr / head lr, tried
    finetune_epochs: int = 20  # fine-tuning: passes over the labelled subset; the best epoch on validation is kept
    finetune_lr: float = 1e-3  # fine-tuning: Adam learning rate of the head
    batch_size: int = 64  # fine-tuning batch

    def __post_init__(self) -> None:
        counts = (self.grid, self.linear_epochs, self.finetune_epochs, self.batch_size)
        if min(counts) < 1 or not 0 < self.val_fraction < 1 or self.finetune_lr <= 0:
            raise ConfigError("probe grid, epochs and batch size must be >= 1, the validation fraction in (0, 1)")
        if not self.weight_decays or min(self.weight_decays) < 0:
            raise ConfigError(f"probe weight decays must be numbers >= 0, got {self.weight_decays}")
        if not self.lr_ratios or min(self.lr_ratios) <= 0:
            raise ConfigError(f"probe learning-rate ratios must be numbers > 0, got {self.lr_ratios}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field annotation, converting only where no information is lost."""
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis and isinstance(value, (list, tuple)):  # tuple[T, ...]
            return tuple(_coerce(v, args[0], where) for v in value)
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    elif origin is Literal:  # the value's type here; whether it is one of the choices, in `validate`
        if all(isinstance(v, str) for v in typing.get_args(annotation)) and isinstance(value, str):
            return value
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{where}: expected {name}, got {_shown(value)}")


def _section_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{where}{key}' (known: {', '.join(sorted(known))})")
        kwargs[key] = _coerce(value, hints[key], f"{where}{key}")
    return cls(**kwargs)


_SECTIONS = {"model": ModelConfig, "mask": MaskConfig, "loss": LossConfig, "data": DataConfig, "train": TrainConfig}


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a validated `Config` from a nested dict (a TOML file, `config.json`, a checkpoint)."""
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "name":
            kwargs["name"] = _coerce(value, str, "name")
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"config section '{key}' must be a table, got {_shown(value)}")
            kwargs[key] = _section_from_dict(_SECTIONS[key], value, f"{key}.")
        else:
            raise ConfigError(f"unknown config section '{key}' (known: name, {', '.join(_SECTIONS)})")
    return validate(Config(**kwargs))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A TOML path, or the name of a bundled preset (`cifar10`, `paper_center`, ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = PRESET_DIR / f"{Path(str(name_or_path)).stem}.toml"
    if path.suffix in ("", ".toml") and preset.is_file() and not path.parent.name:
        return preset
    raise ConfigError(f"config file not found: {name_or_path} (presets: {', '.join(list_presets())})")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_config(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML preset or file and apply `section.key=value` overrides."""
    path = resolve_config_path(name_or_path)
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: nested too deeply") from None
    data.setdefault("name", path.stem)
    return apply_overrides(config_from_dict(data), overrides)


def _shown(value: Any, limit: int = 60) -> str:
    """`repr(value)` cut to `limit` characters, so that an error about a huge value stays a readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _parse_value(text: str) -> Any:
    """A TOML literal (`3`, `2e-4`, `true`, `[1, 2]`, `"x"`), or the bare text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text


def apply_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """Apply `section.key=value` strings; an unknown key or a wrong type raises `ConfigError`."""
    data = cfg.to_dict()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form section.key=value")
        parts = key.split(".")
        if len(parts) == 1 and parts[0] == "name":
            data["name"] = _parse_value(text.strip())
            continue
        if len(parts) != 2 or parts[0] not in _SECTIONS:
            raise ConfigError(f"unknown config key '{key}' (sections: {', '.join(_SECTIONS)})")
        section, name = parts
        if name not in data[section]:
            known = ", ".join(sorted(data[section]))
            raise ConfigError(f"unknown config key '{key}' (known in [{section}]: {known})")
        data[section][name] = _parse_value(text.strip())
    return config_from_dict(data)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def validate(cfg: Config) -> Config:
    """Reject impossible geometry and unknown choices with one clear sentence."""
    for section in _SECTIONS:
        _check_choices(getattr(cfg, section), section)
    _validate_model(cfg)
    _validate_mask(cfg.mask, cfg.model.image_size)
    _validate_loss(cfg.loss)
    _validate_data(cfg.data, cfg.model.image_size)
    _validate_train(cfg.train)
    return cfg


def _check_choices(section: Any, where: str) -> None:
    """Every `Literal` field of a section holds one of its choices, and every number is finite."""
    hints = typing.get_type_hints(type(section))
    for f in fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}.{f.name} must be a finite number, got {value}")
        if typing.get_origin(hints[f.name]) is Literal:
            choices, value = get_args(hints[f.name]), getattr(section, f.name)
            if value not in choices:
                raise ConfigError(f"{where}.{f.name} must be one of {', '.join(choices)}, got '{value}'")


def _validate_model(cfg: Config) -> None:
    m, kind, mode = cfg.model, cfg.mask.kind, cfg.loss.mode
    if m.encoder != "dcgan":
        if m.image_size != 227 or kind == "center" or mode != "l2" or m.skip or m.residual:
            raise ConfigError(
                "model.encoder='alexnet' is the paper's feature-learning net: model.image_size=227, a random or "
                "'none' mask, loss.mode='l2' (the paper's adversarial loss diverged with it), no skips, no residual"
            )
    elif not _is_power_of_two(m.image_size) or m.image_size < 32:
        raise ConfigError(f"model.image_size must be a power of two >= 32, got {m.image_size}")
    for name in ("nef", "ngf", "ndf", "bottleneck_dim"):
        if getattr(m, name) < 1:
            raise ConfigError(f"model.{name} must be >= 1, got {getattr(m, name)}")
    if m.context != "none" and (m.encoder != "dcgan" or m.context_blocks < 1):
        raise ConfigError("model.context needs the dcgan encoder and model.context_blocks >= 1")


def _validate_mask(k: MaskConfig, image_size: int) -> None:
    top, bottom = center_bounds(image_size, k.overlap)
    if k.overlap < 0 or bottom - top < 2:
        raise ConfigError(
            f"mask.overlap={k.overlap} leaves no hole in the {image_size // 2} px centre of a "
            f"{image_size} px image (need 0 <= overlap <= {max_overlap(image_size)})"
        )
    if not all(0.0 <= v <= 255.0 for v in k.fill_rgb):
        raise ConfigError(f"mask.fill_rgb values must lie in [0, 255], got {k.fill_rgb}")
    if not 0.0 < k.max_coverage <= 1.0:
        raise ConfigError(f"mask.max_coverage must lie in (0, 1], got {k.max_coverage}")
    if not 0.0 < k.block_min_frac <= k.block_max_frac <= 1.0 or k.block_max_count < 1:
        raise ConfigError("mask.block_* must satisfy 0 < block_min_frac <= block_max_frac <= 1, block_max_count >= 1")
    if k.block_min_frac**2 > k.max_coverage:
        raise ConfigError(f"mask.block_min_frac={k.block_min_frac} makes one block cover more than max_coverage")
    if not 0.0 < k.region_coverage_min <= k.region_coverage_max < 1.0:
        raise ConfigError("mask.region_coverage_* must satisfy 0 < region_coverage_min <= region_coverage_max < 1")
    if k.region_cells_per_px <= 0:
        raise ConfigError(f"mask.region_cells_per_px must be > 0, got {k.region_cells_per_px}")


def _validate_loss(lo: LossConfig) -> None:
    for name in ("lambda_rec", "lambda_adv", "overlap_weight", "perceptual"):
        value = getattr(lo, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"loss.{name} must be a finite number >= 0, got {value}")


def _validate_data(d: DataConfig, image_size: int) -> None:
    if 0 < d.load_size < image_size:
        raise ConfigError(
            f"data.load_size ({d.load_size}) must be 0 or >= model.image_size ({image_size}); raise data.load_size"
        )
    if d.load_size < 0:
        raise ConfigError(f"data.load_size must be >= 0, got {d.load_size}")
    if not (math.isfinite(d.zoom) and d.zoom >= 1.0):
        raise ConfigError(f"data.zoom must be >= 1 (1: off), got {d.zoom}")
    if not (math.isfinite(d.saturation) and 0.0 <= d.saturation <= 1.0):
        raise ConfigError(f"data.saturation must be in [0, 1] (0: off), got {d.saturation}")
    if not 0.0 <= d.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must lie in [0, 1), got {d.val_fraction}")
    if d.workers != "auto" and (isinstance(d.workers, str) or d.workers < 0):
        raise ConfigError(f"data.workers must be 'auto' or an integer >= 0, got {d.workers!r}")


def _validate_train(t: TrainConfig) -> None:
    for name in ("steps", "batch_size", "log_every", "sample_every", "sample_count", "checkpoint_every"):
        if getattr(t, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must lie in [0, 1), got {t.ema_decay}")
    if not 0.0 <= t.lr_min_factor <= 1.0:
        raise ConfigError(f"train.lr_min_factor must lie in [0, 1], got {t.lr_min_factor}")
    if t.val_every < 0 or t.val_images < 1:
        raise ConfigError("train.val_every must be >= 0 and train.val_images >= 1")
    if not (t.lr > 0 and t.g_lr_mult > 0 and 0 <= t.beta1 < 1 and 0 <= t.beta2 < 1):
        raise ConfigError("train.lr and train.g_lr_mult must be > 0; train.beta1/beta2 must lie in [0, 1)")


__all__ = [
    "Config",
    "ModelConfig",
    "MaskConfig",
    "LossConfig",
    "DataConfig",
    "TrainConfig",
    "ProbeSettings",
    "load_config",
    "apply_overrides",
    "config_from_dict",
    "list_presets",
    "replace",
]
