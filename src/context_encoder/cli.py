"""Command line: `context-encoder {train, inpaint, presets, config}`. Parsing and printing only."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import ContextEncoderError

EPILOG = """examples:
  context-encoder train --config cifar10 --data ../shared/data/cifar10/train
  context-encoder train --config tiny --data photos/ --set train.steps=20 --out runs/try
  context-encoder train --resume runs/try --set train.steps=40
  context-encoder inpaint photo.png --checkpoint runs/try/checkpoints/last.pt --center -o filled.png
"""


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import checkpoint_config, load_checkpoint
    from .config import apply_overrides, load_config
    from .distributed import launched_by_torchrun, shutdown_distributed
    from .train import TrainingInterrupted, next_run_dir, train

    overrides = list(args.set)
    if args.data:
        overrides.append(f'data.train_dir="{Path(args.data).as_posix()}"')
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


def _inpaint(args: argparse.Namespace) -> int:
    from .checkpoint import load_generator
    from .data import load_image, load_mask, pil_to_tensor, tensor_to_pil
    from .errors import InputError
    from .inpaint import fill_batch
    from .masks import center_mask

    gen, cfg = load_generator(args.checkpoint)
    image = load_image(args.image)
    s = cfg.model.image_size
    if image.size != (s, s):
        raise InputError(f"{args.image} is {image.size[0]}x{image.size[1]}; this model takes {s}x{s} images")
    if args.mask:
        mask = load_mask(args.mask)
        if mask.shape[-2:] != (s, s):
            raise InputError(f"mask {args.mask} is {mask.shape[-1]}x{mask.shape[-2]}, image is {s}x{s}")
    elif args.center or not cfg.full_image:
        mask = center_mask(s, cfg.mask.overlap)
    else:
        raise InputError("this model fills arbitrary holes: pass --mask MASK.png (non-zero = hole) or --center")
    if not bool(mask.any()):
        print("notice: the mask is empty; the output equals the input", file=sys.stderr)
    out = fill_batch(gen, cfg, pil_to_tensor(image)[None], mask)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_pil(out[0]).save(args.output)
    print(args.output)
    return 0


def _presets(args: argparse.Namespace) -> int:
    from .config import list_presets, load_config
    from .models import Generator, count_parameters

    print(f"{'preset':<14} {'size':>5} {'mask':<14} {'bottleneck':<12} {'loss':<6} {'G params':>9} {'steps':>8}")
    for name in list_presets():
        cfg = load_config(name)
        params = count_parameters(Generator(cfg.model, cfg.full_image)) / 1e6
        m = cfg.model
        print(
            f"{name:<14} {m.image_size:>5} {cfg.mask.kind:<14} {m.bottleneck:<12} {cfg.loss.mode:<6} "
            f"{params:>8.1f}M {cfg.train.steps:>8}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .baselines import parse_baselines
    from .evaluate import markdown_table, run_evaluation

    results = run_evaluation(
        args.data,
        args.out,
        args.checkpoint,
        args.mask,
        args.size,
        parse_baselines(args.baselines),
        args.limit,
        args.seed,
        args.nn_data,
        args.nn_index,
    )
    for region in next(iter(results.values())):
        print(markdown_table(results, region) + "\n")
    print(f"reports: {Path(args.out) / 'metrics.md'}, {Path(args.out) / 'metrics.json'}, {Path(args.out) / 'grid.png'}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), steps=args.steps, progress=not args.quiet)
    return 0


def _config(args: argparse.Namespace) -> int:
    from .config import load_config

    print(load_config(args.config, args.set).to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="context-encoder",
        description="Context Encoders (Pathak et al., CVPR 2016): inpainting and feature learning in PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    setting = {
        "action": "append",
        "default": [],
        "metavar": "KEY=VALUE",
        "help": "override a config value, e.g. train.steps=100 (repeatable)",
    }

    p = sub.add_parser(
        "train", help="train a context encoder", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="TOML file or preset name (see `context-encoder presets`)")
    p.add_argument("--data", help="folder of training images (searched recursively); sets data.train_dir")
    p.add_argument("--set", **setting)
    p.add_argument("--out", help="run directory (default: runs/NNNNN-<config name>)")
    p.add_argument("--resume", metavar="RUN_DIR|CKPT", help="continue a run from its last checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("inpaint", help="fill a hole in an image with a trained checkpoint")
    p.add_argument("image", help="image file at the model's input size")
    p.add_argument("--checkpoint", required=True, help="checkpoint written by `train` (a .pt file or run directory)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--mask", help="mask image of the same size; non-zero pixels are the hole")
    group.add_argument("--center", action="store_true", help="the model's central hole (default for centre models)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    p.set_defaults(func=_inpaint)

    p = sub.add_parser("evaluate", help="score a checkpoint and classical baselines on the same images and masks")
    p.add_argument("--checkpoint", help="checkpoint written by `train` (optional with --size and --baselines)")
    p.add_argument("--data", required=True, help="folder of held-out images (searched recursively)")
    p.add_argument("--mask", choices=["center", "random-block", "random-region"], help="default: the model's")
    p.add_argument("--size", type=int, help="image size (default: the model's; must match it)")
    p.add_argument("--baselines", help="comma-separated: mean,telea,navier-stokes,biharmonic,nn-hog, or all")
    p.add_argument("--limit", type=int, help="evaluate this many images, evenly spread over the sorted folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the random masks (default 0)")
    p.add_argument("--out", default="eval", help="report folder (default: eval)")
    p.add_argument("--nn-data", help="training images searched by nn-hog (default: the checkpoint's train_dir)")
    p.add_argument("--nn-index", type=int, default=2000, help="images in the nn-hog index (default 2000)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("demo", help="train a small model on built-in sample photos and fill held-out holes")
    p.add_argument("--out", default="demo", help="output folder (default: demo)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)

    p = sub.add_parser("presets", help="list the bundled config presets")
    p.set_defaults(func=_presets)

    p = sub.add_parser("config", help="print a resolved config as JSON")
    p.add_argument("config", help="TOML file or preset name")
    p.add_argument("--set", **setting)
    p.set_defaults(func=_config)
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
