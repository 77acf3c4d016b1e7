"""Command line: `context-encoder COMMAND`. Parsing and printing only; the work is in the modules.

train     train a context encoder (train.py)           inpaint   fill holes in any image (loading.py, inpaint.py)
models    list the shipped models (pretrained.py)      export    a checkpoint as a safetensors model file
evaluate  model vs baselines, same masks (evaluate.py) probe     feature-learning probes (features.py)
serve     the local web app (web/)                     demo      built-in photos, shipped models vs classical
presets   list the config presets                      config    print a resolved config

Over 400 lines on purpose: ten subcommands, each with its parser (`_add_<command>`, every option's help
text) and its handler (`_<command>`, a few lines that call the module doing the work). Choices come from
where they are defined: fill methods from the registry (`methods`), settings from the config's types.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__, methods
from .config import DEVICES, HOLE_MASK_KINDS, INFERENCE_PRECISIONS, ProbeSettings
from .decode import SERVER_MAX_PIXELS
from .errors import ContextEncoderError, InputError

if TYPE_CHECKING:
    from .inpaint import Inpainter
    from .photo_file import PhotoFile

EPILOG = """examples:
  context-encoder demo
  context-encoder inpaint photo.jpg --mask holes.png -o filled.png
  context-encoder inpaint photo.jpg --mask holes.png --refine patch -o filled.png
  context-encoder inpaint --batch photos/ --masks masks/ --skip-existing -o filled/
  context-encoder train --config tiny --data photos/ --set train.steps=20 --out runs/try
  context-encoder serve
"""

TRAIN_EPILOG = """examples:
  context-encoder train --config cifar10 --data ../shared/data/cifar10/train
  context-encoder train --config tiny --data photos/ --set train.steps=20 --out runs/try
  context-encoder train --config scenes_region --data DIR_A --data DIR_B --out runs/region
  context-encoder train --resume runs/try --set train.steps=40
  torchrun --nproc_per_node 4 -m context_encoder train --config paper_center --data DIR --out runs/big
"""


def _device(name: str) -> str:
    """`--device`: auto is the GPU when there is one (CUDA, then Apple's MPS), else the CPU (`perf.resolve_device`)."""
    from .perf import resolve_device

    return str(resolve_device(name, "--device"))


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import checkpoint_config, load_checkpoint
    from .config import apply_overrides, load_config
    from .distributed import launched_by_torchrun, shutdown_distributed
    from .train import TrainingInterrupted, next_run_dir, train

    overrides = list(args.set)
    if args.data:  # the first folder is data.train_dir, any further ones data.extra_dirs
        first, *extra = (json.dumps(Path(d).as_posix()) for d in args.data)
        overrides += [f"data.train_dir={first}", f"data.extra_dirs=[{', '.join(extra)}]"]
    state = None
    if args.resume:
        state = load_checkpoint(args.resume)
        ckpt = Path(state["path"])
        run_dir = (
            Path(args.out) if args.out else (ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent)
        )
        base = load_config(args.config) if args.config else checkpoint_config(state)
        cfg = apply_overrides(base, overrides)
    else:
        if not args.config:
            raise ContextEncoderError("train needs --config FILE|PRESET (or --resume RUN_DIR)")
        cfg = load_config(args.config, overrides)
        run_dir = Path(args.out) if args.out else next_run_dir(Path("runs"), cfg.name)
    if launched_by_torchrun() and not args.out and not args.resume:
        raise ContextEncoderError("under torchrun pass --out DIR so every process agrees on the run directory")
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        print(f"run directory: {run_dir}", file=sys.stderr)
    try:
        ckpt = train(cfg, run_dir, resume=state, progress=not args.quiet)
    except TrainingInterrupted as exc:
        if main_process:
            print(f"{exc}; continue with: context-encoder train --resume {run_dir}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        shutdown_distributed()
    if main_process:
        print(ckpt)
    return 0


def box_hole(size: tuple[int, int], box: str) -> np.ndarray:
    """`--box X,Y,W,H`: the (H, W) bool rectangular hole in an image of `size` (W, H), clipped to it."""
    w, h = size
    try:
        x, y, bw, bh = (int(v) for v in box.split(","))
    except ValueError:
        raise InputError(f"--box must be X,Y,W,H in pixels, got '{box}'") from None
    if bw <= 0 or bh <= 0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        raise InputError(f"--box {box} lies outside the {w}x{h} image or is empty")
    out = np.zeros((h, w), dtype=bool)
    out[max(0, y) : y + bh, max(0, x) : x + bw] = True
    return out


def _hole(args: argparse.Namespace, size: tuple[int, int], inpainter: Inpainter) -> np.ndarray:
    """The hole of `inpaint` for an image of `size` (W, H): --mask, --box or --center; without any of them, a
    centre model's own centre hole (a whole-image model needs one of them)."""
    from .decode import hole_array

    if args.mask is not None:
        return hole_array(args.mask, size, f"mask {args.mask}")
    if args.box is not None:
        return box_hole(size, args.box)
    if args.center or not inpainter.cfg.full_image:
        return inpainter.center_hole(size)
    raise InputError("this model fills arbitrary holes: pass --mask MASK.png (non-zero = hole), --box or --center")


def _inpaint(args: argparse.Namespace) -> int:
    from .batch import parse_shard, plan_batch, run_batch
    from .loading import default_model, load_model
    from .options import InferenceOptions
    from .photo_file import read_photo_file
    from .viz import check_image_output

    for flag, given in (("--masks", args.masks), ("--skip-existing", args.skip_existing), ("--shard", args.shard)):
        if given and not args.batch:
            raise InputError(f"{flag} goes with --batch DIR")
    if args.masks and (args.mask or args.box or args.center):
        raise InputError("--masks DIR gives each photo its own mask: leave out --mask, --box and --center")
    if args.batch:
        masks = Path(args.masks) if args.masks else None
        shard = parse_shard(args.shard) if args.shard else None
        plan = plan_batch(Path(args.batch), args.output, masks, shard, args.skip_existing)
    elif args.image:
        plan = None
        if not Path(args.image).is_file():
            raise InputError(f"image not found: {args.image}")
        carried = read_photo_file(args.image)  # once: its format decides a suffixless output's, before any work
        output = check_image_output(args.output, default=carried.format)
    else:
        raise InputError("pass an IMAGE or --batch DIR")
    if args.mask is not None and not Path(args.mask).is_file():
        raise InputError(f"mask not found: {args.mask}")
    if plan is None:
        for name, path in (("image", args.image), ("mask", args.mask)):
            if path is not None and Path(path).resolve() == output.resolve():
                raise InputError(
                    f"-o {output} is the input {name}: writing there would overwrite it; choose another path"
                )
    for flag, value in (("--model", args.model), ("--checkpoint", args.checkpoint)):
        if value is not None and not str(value).strip():
            raise InputError(f"{flag} is empty: name a shipped model (context-encoder models) or a file")
    source = args.checkpoint or args.model or default_model(arbitrary_holes=not args.center)
    inpainter = load_model(source, device=_device(args.device), precision=args.precision)
    options = InferenceOptions(
        blend=not args.no_blend, flip_average=not args.no_flip_average, refine=args.refine or inpainter.options.refine
    )
    inpainter = inpainter.with_options(options)
    print(f"model: {source} ({options.describe()}, {inpainter.device})", file=sys.stderr)
    if plan is None:
        _fill_file(args, inpainter, Path(args.image), args.mask, output, carried)
        print(output)
        return 0
    if plan.skipped:
        print(f"--skip-existing: {plan.skipped} outputs exist already", file=sys.stderr)
    result = run_batch(
        plan, lambda item: _fill_file(args, inpainter, item.photo, item.mask or args.mask, item.output, None)
    )
    return 1 if result.failed else 0


def _fill_file(
    args: argparse.Namespace,
    inpainter: Inpainter,
    photo: Path,
    mask: str | Path | None,
    dst: Path,
    carried: PhotoFile | None,
) -> None:
    """Fill one photo file into `dst`, keeping what the file carries besides its pixels (`photo_file`; `carried`
    where it was read already)."""
    from .decode import hole_array
    from .photo_file import read_photo_file, save_filled
    from .viz import image_format

    if carried is None:  # the header: size, format, metadata (the pixels are read by the fill)
        carried = read_photo_file(photo)
    fmt = image_format(dst, default=carried.format)
    if mask is not None:
        hole = hole_array(mask, carried.size, f"mask {mask}")
    else:
        hole = _hole(args, carried.size, inpainter)
    if not hole.any():
        print(f"notice: the mask is empty; {dst} equals the input", file=sys.stderr)
    for line in carried.notices(fmt):
        print(f"notice: {photo.name}: {line}", file=sys.stderr)
    save_filled(inpainter(photo, hole), hole, dst, fmt, carried)


def _models(args: argparse.Namespace) -> int:
    from .pretrained import list_pretrained

    models = list_pretrained()
    if not models:
        print("no shipped models in this installation")
        return 0
    print(f"{'name':<16} {'size':>4} {'mask':<14} {'params':>7} {'MB':>5} {'steps':>6}  data / held-out hole PSNR")
    for name, m in models.items():
        cfg = m["config"]
        metrics = "; ".join(
            f"{k} {v['psnr']:.2f} dB (best baseline {v['best_baseline']} {v['baseline_psnr']:.2f})"
            for k, v in m.get("metrics", {}).items()
        )
        print(
            f"{name:<16} {cfg['model']['image_size']:>4} {cfg['mask']['kind']:<14} {m['parameters'] / 1e6:>6.1f}M "
            f"{m['megabytes']:>5} {m['steps']:>6}  {m.get('data', '')}"
        )
        if metrics:
            print(f"{'':<16} {metrics}")
    return 0


def _read_info(path: str) -> dict:
    """The JSON object of `export --info FILE`; a missing, unreadable or non-object file is an `InputError`."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"--info file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read --info file {path}: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"--info file {path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(info, dict):
        raise InputError(f"--info file {path} must hold a JSON object, got {type(info).__name__}")
    return info


def _export(args: argparse.Namespace) -> int:
    import torch

    from .outputs import check_output_file
    from .pretrained import export, export_onnx, read_metadata, shipped_names, shipped_path, write_onnx

    out = check_output_file(args.out, suffixes={f".{args.format}"}, what="export")
    info = _read_info(args.info) if args.info else {}
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise InputError("ONNX export needs the onnx package: pip install -e '.[onnx]'") from None
        source = Path(args.checkpoint)
        if source.suffix == ".safetensors" or (not source.exists() and args.checkpoint in shipped_names()):
            from .loading import load_model

            model = load_model(args.checkpoint)  # a shipped model or an exported file: its own metadata
            meta = {**read_metadata(shipped_path(args.checkpoint) or source), **info}
            print(write_onnx(model.gen, out, meta))
        else:
            print(export_onnx(args.checkpoint, out, info))
        return 0
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    print(export(args.checkpoint, out, info, dtype=dtype))
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .config import list_presets, load_config
    from .models import count_parameters, make_generator

    print(f"{'preset':<16} {'size':>5} {'mask':<14} {'bottleneck':<12} {'loss':<6} {'G params':>9} {'steps':>8}")
    for name in list_presets():
        cfg = load_config(name)
        params = count_parameters(make_generator(cfg.model, cfg.full_image)) / 1e6
        m = cfg.model
        print(
            f"{name:<16} {m.image_size:>5} {cfg.mask.kind:<14} {m.bottleneck:<12} {cfg.loss.mode:<6} "
            f"{params:>8.1f}M {cfg.train.steps:>8}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .baselines import parse_baselines
    from .evaluate import markdown_table, run_evaluation
    from .options import InferenceOptions

    _positive(args, "limit", "nn_index")
    blend, flip = args.blend or args.as_inpaint, args.flip_average or args.as_inpaint
    results = run_evaluation(
        args.data,
        args.out,
        checkpoint=args.checkpoint,
        mask=args.mask,
        size=args.size,
        baselines=parse_baselines(args.baselines),
        limit=args.limit,
        seed=args.seed,
        nn_data=args.nn_data,
        nn_index=args.nn_index,
        options=InferenceOptions(blend=blend, flip_average=flip),
        perceptual=not args.no_lpips,
    )
    for region in next(iter(results.values())):
        print(markdown_table(results, region) + "\n")
    print(f"reports: {Path(args.out) / 'metrics.md'}, {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'grid.png'}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    from .features import run_probe, summarize

    if (args.checkpoint is None) == (args.init is None):
        raise ContextEncoderError("pass exactly one of --checkpoint CKPT or --init random")
    _positive(args, "seeds", "limit", "test_limit", "epochs")
    if not 0 < args.labels_fraction <= 1:
        raise InputError(f"--labels-fraction must be in (0, 1], got {args.labels_fraction}")
    defaults = ProbeSettings()
    settings = ProbeSettings(
        grid=args.grid,
        val_fraction=args.val_fraction,
        weight_decays=tuple(args.weight_decays or defaults.weight_decays),
        lr_ratios=tuple(args.lr_ratios or defaults.lr_ratios),
    )
    result = run_probe(
        args.data,
        checkpoint=args.checkpoint,
        config=args.config,
        mode=args.mode,
        labels_fraction=args.labels_fraction,
        seeds=args.seeds,
        limit=args.limit,
        test_limit=args.test_limit,
        epochs=args.epochs,
        settings=settings,
        out=args.out,
    )
    print(summarize(result))
    return 0


def _serve(args: argparse.Namespace) -> int:
    _positive(args, "workers", "max_pixels")
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be a port number from 1 to 65535, got {args.port}")
    from .web import serve

    serve(
        host=args.host,
        port=args.port,
        model=args.model,
        checkpoint=args.checkpoint,
        workers=args.workers,
        allowed_hosts=args.allow_host,
        allowed_origins=args.allow_origin,
        device=_device(args.device),
        max_pixels=args.max_pixels,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .outputs import check_output_folder

    check_output_folder(args.out)

    run_demo(Path(args.out))
    return 0


def _config(args: argparse.Namespace) -> int:
    from .config import load_config

    print(load_config(args.config, args.set).to_json())
    return 0


def _positive(args: argparse.Namespace, *names: str) -> None:
    """Refuse a zero or negative count given for any of the options `names` (None: not given)."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


class _Commands:
    """The subcommands' parsers: each one-line help is also the description its own --help shows."""

    def __init__(self, commands: argparse._SubParsersAction):
        self.commands = commands

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser:
        kwargs.setdefault("description", kwargs.get("help"))
        return self.commands.add_parser(name, **kwargs)


SETTING = {
    "action": "append",
    "default": [],
    "metavar": "KEY=VALUE",
    "help": "override a config value, e.g. train.steps=100 (repeatable)",
}


def _add_train(sub: _Commands) -> None:
    p = sub.add_parser(
        "train",
        help="train a context encoder",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="TOML file or preset name (see `context-encoder presets`)")
    p.add_argument(
        "--data",
        action="append",
        help="folder of training images (searched recursively); repeat to mix folders (data.extra_dirs, data.mix)",
    )
    p.add_argument("--set", **SETTING)
    p.add_argument("--out", help="run directory (default: runs/NNNNN-<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR|CKPT", help="continue a run from its last checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)


def _add_inpaint(sub: _Commands) -> None:
    p = sub.add_parser("inpaint", help="fill holes in an image of any size")
    p.add_argument("image", nargs="?", help="image file (any size, any format Pillow reads)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        help="shipped model name (see `context-encoder models`) or a .safetensors file from `export`; "
        "default: the shipped model measured best for the kind of hole (a square for --center, else free-form; "
        "see docs/models.md)",
    )
    which.add_argument("--checkpoint", help="checkpoint written by `train` (.pt file or run directory) or .safetensors")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--mask", help="mask image of the same size; non-zero pixels are holes (several are fine)")
    group.add_argument("--center", action="store_true", help="a centred square hole (default for centre models)")
    group.add_argument("--box", help="a rectangular hole X,Y,W,H in pixels")
    p.add_argument(
        "--batch",
        metavar="DIR",
        help="fill every image in this folder (with --masks DIR, --center, --box or one same-size --mask)",
    )
    p.add_argument(
        "--masks",
        metavar="DIR",
        help="with --batch: each photo's mask is the image of the same name (any image suffix) in this folder",
    )
    p.add_argument(
        "--skip-existing", action="store_true", help="with --batch: leave photos whose output exists (resume a run)"
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="with --batch: fill only the K-th of N equal shares of the sorted photos (photo i goes to share i mod N)",
    )
    p.add_argument("--no-blend", action="store_true", help="paste the raw prediction without seam blending")
    p.add_argument(
        "--no-flip-average", action="store_true", help="one fill per hole (default: mean of it and its mirror image's)"
    )
    p.add_argument(
        "--refine",
        choices=methods.names("refiner"),
        help="what is done with the network's fill: "
        + "; ".join(f"{m.name}: {m.description}" for m in methods.entries("refiner"))
        + " (default: the model's stored setting)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output image, format by suffix (.png, .jpg, ...; none: the input's); with --batch a folder, where each "
        "result has its input's name and format. EXIF, ICC profile, DPI, JPEG quality and alpha are kept",
    )
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="where the model runs (default auto: a GPU if any)"
    )
    p.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="the network's arithmetic (default auto: bf16 where the CPU or GPU has native bf16, about twice as "
        "fast; fp32 elsewhere)",
    )
    p.set_defaults(func=_inpaint)


def _add_models(sub: _Commands) -> None:
    p = sub.add_parser("models", help="list the shipped pretrained models")
    p.set_defaults(func=_models)


def _add_export(sub: _Commands) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint's generator as a safetensors model file (inpaint --model FILE loads it) or as ONNX",
    )
    p.add_argument(
        "checkpoint",
        help="checkpoint (.pt) or run directory; for --format onnx also a shipped model name or a .safetensors file",
    )
    p.add_argument("--out", required=True, help="output file, .safetensors or .onnx as --format says")
    p.add_argument(
        "--format",
        choices=["safetensors", "onnx"],
        default="safetensors",
        help="safetensors (default; loaded by inpaint --model) or onnx (fp32 generator; inputs image and, for "
        "residual models, mask; batch size dynamic; needs the onnx extra)",
    )
    p.add_argument("--info", help="JSON file of extra metadata (data, metrics, ...)")
    p.add_argument(
        "--dtype",
        choices=["fp16", "fp32"],
        default="fp16",
        help="safetensors weight precision (default fp16: half the size; fp32 gives the checkpoint's pixels "
        "exactly); ONNX is always fp32",
    )
    p.set_defaults(func=_export)


def _add_evaluate(sub: _Commands) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint and classical baselines on the same images and masks")
    p.add_argument(
        "--checkpoint",
        help="model to score: checkpoint, run directory, .safetensors file or shipped model name "
        "(optional with --size and --baselines)",
    )
    p.add_argument("--data", required=True, help="folder of held-out images (searched recursively)")
    p.add_argument("--mask", choices=HOLE_MASK_KINDS, help="default: the model's")
    p.add_argument("--size", type=int, help="image size (default: the model's; must match it)")
    p.add_argument("--baselines", help=f"comma-separated: {','.join(methods.names('classical'))}, or all")
    p.add_argument("--limit", type=int, help="evaluate this many images, evenly spread over the sorted folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the random masks (default 0)")
    p.add_argument("--out", default="eval", help="report folder (default: eval)")
    searching = "/".join(m.name for m in methods.entries("classical") if m.database)  # the nearest-neighbour fills
    p.add_argument("--nn-data", help=f"training images searched by {searching} (default: the checkpoint's train_dir)")
    p.add_argument("--nn-index", type=int, default=2000, help=f"images in the {searching} index (default 2000)")
    p.add_argument("--blend", action="store_true", help="score the model with the seam blending of `inpaint`")
    p.add_argument(
        "--flip-average", action="store_true", help="score the mean of the fills of each image and its mirror"
    )
    p.add_argument("--as-inpaint", action="store_true", help="both, as `inpaint` fills by default (shipped metrics)")
    p.add_argument("--no-lpips", action="store_true", help="skip LPIPS (AlexNet and VGG16; the slowest scores)")
    p.set_defaults(func=_evaluate)


def _add_probe(sub: _Commands) -> None:
    p = sub.add_parser(
        "probe",
        help="measure an encoder's features: linear classifiers on frozen layers, or fine-tuning on labels",
        description="Top-1 accuracy on DATA/test of classifiers trained on DATA/train's labels. Each seed holds "
        "out a class-balanced validation split of the training images; weight decay, learning-rate ratio, "
        "epoch and best layer are chosen on it, never on the test images.",
    )
    p.add_argument("--checkpoint", help="pretrained checkpoint whose generator encoder is probed")
    p.add_argument("--init", choices=["random"], help="a randomly initialised encoder instead (needs --config)")
    p.add_argument("--config", help="architecture for --init random (preset or TOML)")
    p.add_argument("--data", required=True, help="folder with train/<class>/ and test/<class>/")
    p.add_argument(
        "--mode",
        default="linear",
        choices=["linear", "finetune"],
        help="linear: a linear classifier on each conv block's frozen, pooled output (the best layer on "
        "validation is the headline); finetune: encoder and head trained together (default linear)",
    )
    p.add_argument(
        "--labels-fraction",
        type=float,
        default=1.0,
        help="labelled training images as a share of each class's training images, drawn outside the "
        "validation split (default 1: all of them but the validation split)",
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="repeats with different seeds, for a mean and spread (default 3)"
    )
    p.add_argument("--limit", type=int, help="training images at most (evenly spread over classes)")
    p.add_argument("--test-limit", type=int, help="test images at most (evenly spread over classes)")
    p.add_argument(
        "--epochs",
        type=int,
        help=f"epochs (default {ProbeSettings.linear_epochs} linear; {ProbeSettings.finetune_epochs} finetune, "
        "of which the best on validation is kept)",
    )
    p.add_argument(
        "--grid",
        type=int,
        default=ProbeSettings.grid,
        help="each layer's output is average-pooled to GRID x GRID before the classifier "
        f"(default {ProbeSettings.grid})",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=ProbeSettings.val_fraction,
        help=f"share of each class's training images held out for validation (default {ProbeSettings.val_fraction})",
    )
    p.add_argument(
        "--weight-decays",
        type=float,
        nargs="+",
        metavar="WD",
        help="linear: L2 strengths tried, the best on validation is kept (default "
        + " ".join(f"{v:g}" for v in ProbeSettings.weight_decays)
        + ")",
    )
    p.add_argument(
        "--lr-ratios",
        type=float,
        nargs="+",
        metavar="R",
        help="finetune: encoder learning rate as a fraction of the head's, tried; the best on validation is kept "
        "(default " + " ".join(f"{v:g}" for v in ProbeSettings.lr_ratios) + ")",
    )
    p.add_argument("--out", help="folder for probe.json (every seed's choices and accuracies)")
    p.set_defaults(func=_probe)


def _add_serve(sub: _Commands) -> None:
    p = sub.add_parser("serve", help="local web app: paint a hole in the browser, fill it, compare, download")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="offer only this shipped model (default: every shipped model)")
    which.add_argument("--checkpoint", help="offer the generator of this checkpoint (.pt file or run directory)")
    p.add_argument("--workers", type=int, default=1, help="images filled at once (default 1)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=SERVER_MAX_PIXELS,
        help=f"largest upload, in pixels (default {SERVER_MAX_PIXELS:,}, an 8000 x 5000 photo; a 48 MP photo with "
        "a long brush stroke takes about 1.9 GB to fill)",
    )
    p.add_argument("--device", choices=DEVICES, default="auto", help="where models run (default auto: a GPU if any)")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this Host name, NAME or NAME:PORT (repeatable; always answered: "
        "localhost, 127.0.0.1, [::1] and --host)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="also accept uploads from pages of this origin, e.g. https://photos.example (repeatable; "
        "always accepted: the server's own pages)",
    )
    p.set_defaults(func=_serve)


def _add_demo(sub: _Commands) -> None:
    p = sub.add_parser("demo", help="fill holes in built-in photos with the shipped models and classical methods")
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.set_defaults(func=_demo)


def _add_presets(sub: _Commands) -> None:
    p = sub.add_parser("presets", help="list the bundled config presets")
    p.set_defaults(func=_presets)


def _add_config(sub: _Commands) -> None:
    p = sub.add_parser("config", help="print a resolved config as JSON")
    p.add_argument("config", help="TOML file or preset name")
    p.add_argument("--set", **SETTING)
    p.set_defaults(func=_config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="context-encoder",
        description="Context Encoders (Pathak et al., CVPR 2016): inpainting and feature learning in PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for add in (
        _add_train,
        _add_inpaint,
        _add_models,
        _add_export,
        _add_evaluate,
        _add_probe,
        _add_serve,
        _add_demo,
        _add_presets,
        _add_config,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except ContextEncoderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file the modules do not check themselves (a full disk, a vanished folder)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
