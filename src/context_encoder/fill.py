"""What a fill method is, and a generator applied to model-size batches (the step inference, evaluation and
validation share).

A fill method comes in one of two shapes: a `Filler` fills batches of float images (the model-size
protocol, `protocol.score`), a `FullResMethod` one uint8 photo at its own size (`fullres`, the web app, the
demo); `filler_method` and `batch_filler` turn one into the other. Every method, learned or classical, is
one `FillMethod` entry of the registry in `context_encoder.methods`.

`fill_batch` takes (B, 3, S, S) images at the model's own size with their holes and returns them
filled, known pixels unchanged; `context_encoder.inpaint` builds any-size inpainting on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from .config import Config
from .errors import InputError
from .masks import apply_mask, center_region, composite, hole_fill

Filler = Callable[[Tensor, Tensor], Tensor]  # (images (B, 3, H, W) in [0, 1], holes (B, 1, H, W) bool) -> filled
FullResMethod = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (H, W, 3) uint8, (H, W) bool -> (H, W, 3) uint8
MethodKind = Literal["network", "classical", "refiner"]


@dataclass(frozen=True)
class FillMethod:
    """One entry of the fill-method registry (`context_encoder.methods`): what it is called, what it needs, and
    how it is built. Adding a method is one of these beside its implementation; the command line, the web
    app, `evaluate`, the demo and the benchmarks find it in the registry.
    """

    name: str  # what the command line, the web form and the reports call it
    kind: MethodKind  # "network": a trained model; "classical": a fill from the photo alone; "refiner": after a network
    label: str  # how figures and the web page's menu name it
    description: str  # one line for the API's method list and the docs
    # classical: () -> Filler, or (database (N, 3, S, S)) -> Filler with `database`; refiner: () -> the function
    # (image (3, H, W), hole (H, W), guide (3, H, W), synthesis settings) -> (3, H, W), or None for no refinement;
    # network: (inpainter, options, synthesis) -> FullResMethod
    build: Callable[..., Any]
    extra: str | None = None  # the optional dependencies it needs: pip install 'context-encoder[<extra>]'
    modules: tuple[str, ...] = ()  # top-level modules it imports: looked up, not imported, to tell if it is available
    reach: int | None = None  # classical: px around the holes the fill reads (None: all of the image)
    featured: bool = False  # offered by the web app and shown by the demo beside the network
    fullres: bool = False  # compared at full resolution by default (`benchmarks/fullres.py`)
    database: bool = False  # searches a folder of training images (`evaluate --nn-data`)


def filler_method(fill: Filler) -> FullResMethod:
    """A `Filler` as a `FullResMethod`: one photo as a batch of one (any size works for fills that do not resize,
    every classical one)."""

    def method(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255.0  # a writable copy
        out = fill(images, torch.from_numpy(np.array(hole))[None, None])[0]
        return (out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()

    return method


def batch_filler(method: FullResMethod) -> Filler:
    """A `FullResMethod` as a `Filler`: each [0, 1] image of the batch rounded to uint8 and filled on its own, known
    pixels kept as they were."""

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        out = []
        for img, hole in zip(images, masks):
            arr = (img.permute(1, 2, 0) * 255).round().byte().numpy()
            filled = np.asarray(method(arr, hole[0].numpy()), dtype=np.float32) / 255
            out.append(torch.where(hole, torch.from_numpy(filled).permute(2, 0, 1), img))
        return torch.stack(out)

    return fill


def predict(gen: nn.Module, masked: Tensor, mask: Tensor, flip_average: bool = False) -> Tensor:
    """The generator's output for masked inputs; with `flip_average`, the mean of its outputs for the
    inputs and for their mirror images (mirrored back): one batch of 2B, about twice the work."""
    if not flip_average:
        return gen(masked, mask)
    both = gen(torch.cat([masked, masked.flip(-1)]), torch.cat([mask, mask.flip(-1)]))
    plain, mirrored = both.chunk(2)
    return (plain + mirrored.flip(-1)) / 2


@torch.no_grad()
def fill_batch(gen: nn.Module, cfg: Config, image: Tensor, mask: Tensor, flip_average: bool = False) -> Tensor:
    """Fill the holes of `image` (B, 3, S, S) in [-1, 1] where `mask` (B, 1, S, S) is True.

    Pixels outside the hole are returned unchanged. For a centre-mode model the hole must lie inside
    the S/2 centre square the generator predicts. `flip_average`: see `predict`.
    """
    s = cfg.model.image_size
    if image.shape[-2:] != (s, s):
        raise InputError(f"image is {image.shape[-1]}x{image.shape[-2]}; this model takes {s}x{s}")
    if not cfg.full_image and bool((mask & ~center_region(s, 1, mask.device)).any()):
        raise InputError(f"this centre-hole model only fills holes inside the central {s // 2} px square")
    masked = apply_mask(image, mask, hole_fill(cfg.mask, image.device))
    was_training = gen.training
    gen.eval()
    pred = predict(gen, masked, mask, flip_average)
    gen.train(was_training)
    return composite(image, pred, mask)


def generator_filler(gen: nn.Module, cfg: Config, flip_average: bool = False) -> Filler:
    """The generator's raw fill (no seam blending) as a `Filler` on [0, 1] images: how validation scores."""

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        device = next(gen.parameters()).device
        out = fill_batch(gen, cfg, images.to(device) * 2 - 1, masks.to(device), flip_average).to(images.device)
        return torch.where(masks, (out + 1) / 2, images)  # known pixels bit-identical in [0, 1]

    return fill
