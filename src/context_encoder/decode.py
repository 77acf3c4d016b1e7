"""Reading images and masks, the one decoder of the command line, the library and the web app.

Files, Pillow images, NumPy arrays and tensors in; RGB images, (H, W, 3) uint8 arrays and (H, W) bool
hole arrays (True = fill) out. Every image read is held to one pixel cap (`max_pixels`), refused
before decoding where the header tells; a file that fails to decode is a `DataError` naming it, never
an image with a missing part. Masks: non-zero pixels are holes, and an alpha channel that is not
opaque everywhere says where the mask is painted (`mask_from_array`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .errors import ConfigError, DataError, InputError, first_line

ImageInput = Image.Image | np.ndarray | str | Path  # a file, a Pillow image or an (H, W[, C]) uint8 array
MaskInput = Image.Image | np.ndarray | Tensor | str | Path  # also a tensor, channels first
IMAGE_SUFFIXES = frozenset(ext.lower() for ext in Image.registered_extensions())
# The pixel cap of every image read (files, data folders): 70 MP, a 64 MP phone camera's 9248 x 6936 with room
# (a 48 MP photo with a long brush stroke fills in about 1.9 GB; docs/performance.md); larger images are refused
# before decoding. The environment variable CONTEXT_ENCODER_MAX_PIXELS sets another; the web app has its own.
MAX_PIXELS = 70_000_000
MAX_PIXELS_ENV = "CONTEXT_ENCODER_MAX_PIXELS"
# The web app's default cap on uploads (`serve --max-pixels`): 40 MP, an 8000 x 5000 photo. Below the command
# line's: a server fills for others, several at once.
SERVER_MAX_PIXELS = 40_000_000
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")  # the modes with transparency (`to_rgb` puts them on white)
_MASK_MODES = ("1", "L", "LA", "RGB", "RGBA", "I", "F")


def max_pixels() -> int:
    """The pixel cap in force: $CONTEXT_ENCODER_MAX_PIXELS when set, else `MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, got '{raw}'")
    return value


def check_pixels(size: tuple[int, int], what: str) -> None:
    """Refuse (`DataError`) an image of `size` (W, H) that is empty or has more pixels than `max_pixels()`."""
    w, h = size
    limit = max_pixels()
    if w < 1 or h < 1:
        raise DataError(f"{what} is empty ({w}x{h} pixels)")
    if w * h > limit:
        raise DataError(
            f"{what} is {w}x{h} = {w * h:,} pixels; the limit is {limit:,} (set {MAX_PIXELS_ENV} to change it)"
        )


@contextmanager
def opened(path: str | Path, what: str) -> Iterator[Image.Image]:
    """An image file opened lazily (header only), refused with a `DataError` when it has too many pixels or
    cannot be parsed."""
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit  # a larger cap asked for here also lifts Pillow's own check
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the cap below decides
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")  # corrupt EXIF or TIFF tags
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found[1]):,} pixels" if found else "too many pixels"
        limits = f"the limit is {limit:,} (set {MAX_PIXELS_ENV} to change it)"
        raise DataError(f"{what} {path} has {pixels}; {limits}") from None
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise DataError(f"cannot read {what} {path}: {first_line(exc)}") from None
    with img:
        check_pixels(img.size, f"{what} {path}")
        yield img


def _decoded(path: str | Path, what: str, convert: Callable[[Image.Image], Any]) -> Any:
    """`convert` applied to the fully decoded image file; every decoding failure is a `DataError`.

    A truncated file is an error (Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` is left False), never
    an image with a grey or missing part.
    """
    with opened(path, what) as img, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        try:
            img.load()
            return convert(img)
        except Image.DecompressionBombError:
            raise DataError(f"{what} {path} has too many pixels to decode") from None
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
            raise DataError(f"cannot read {what} {path}: {first_line(exc)}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: 16-bit and float greys are rescaled, transparency goes on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def mask_from_array(arr: np.ndarray) -> np.ndarray:
    """(H, W) bool holes from an (H, W) or channels-last (H, W, C) mask array.

    Non-zero = hole. With an alpha channel (C = 2 or 4) that is not opaque everywhere, the alpha says
    where the mask is painted: transparent pixels are never holes, and when the colour is blank
    wherever it is painted (black strokes on transparency) the alpha alone is the mask.
    """
    if arr.ndim == 2:
        return arr != 0
    if arr.ndim != 3:
        raise InputError(f"mask must be 2-D (H x W) or H x W x channels, got shape {arr.shape}")
    channels = arr.shape[2]
    if channels not in (2, 4):
        return (arr != 0).any(axis=2)
    colour, painted = (arr[..., : channels - 1] != 0).any(axis=2), arr[..., channels - 1] != 0
    if painted.all():  # opaque: the colours alone say where the holes are
        return colour
    if not colour[painted].any():  # blank colour: the alpha is the mask
        return painted
    return colour & painted


def mask_from_image(img: Image.Image) -> np.ndarray:
    """(H, W) bool holes of a mask image in any Pillow mode, EXIF orientation applied (see `mask_from_array`)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    elif img.mode in ("RGBa", "La"):
        img = img.convert(img.mode.upper())
    elif img.mode not in _MASK_MODES and not img.mode.startswith("I;16"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV: read as the colours they show
    return mask_from_array(np.asarray(img))


def load_image(path: str | Path) -> Image.Image:
    """Open and decode an image file as RGB; raises `DataError` naming the file when it cannot.

    Refused before decoding: files with more pixels than `max_pixels()` (from the header). Refused
    while decoding: truncated or corrupt files.
    """
    return _decoded(path, "image", to_rgb)


def load_mask(path: str | Path) -> Tensor:
    """A mask image as a bool tensor (1, 1, H, W): True (the hole) where the mask is non-zero.

    Same checks as `load_image`; an alpha channel is read as `mask_from_array` says.
    """
    return torch.from_numpy(_decoded(path, "mask", mask_from_image))[None, None]


def image_array(image: ImageInput, copy: bool = True) -> np.ndarray:
    """An (H, W, 3) uint8 copy of `image`: a file (read by `load_image`), a PIL image or an array; with
    `copy=False` a writable C-ordered uint8 (H, W, 3) array is returned as it is (for callers that only read it).

    Every kind is held to the pixel cap (`max_pixels`); a lazily opened PIL
    image that fails to decode (truncated, corrupt) is a `DataError`.
    """
    own = False  # whether `arr` below is already a copy made here
    if isinstance(image, (str, Path)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        check_pixels(image.size, "the image")
        try:
            image = np.array(to_rgb(image))  # writable: this copy can be the one returned
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
            raise DataError(f"cannot decode the image: {str(exc).strip() or type(exc).__name__}") from None
        own = True
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"image must be H x W x 3 (RGB), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"image array must be uint8, got {arr.dtype}")
    check_pixels((arr.shape[1], arr.shape[0]), "the image")
    if (own or not copy) and arr.shape[2] == 3 and arr.flags.c_contiguous and arr.flags.writeable and arr is image:
        return arr
    return np.array(arr[..., :3], dtype=np.uint8, order="C")  # a writable copy


def mask_array(mask: MaskInput) -> np.ndarray:
    """(H, W) bool holes (True = fill) from a mask file, a PIL image, an array or a tensor.

    Non-zero pixels are holes; an alpha channel that is not opaque everywhere says where the mask is
    painted (`mask_from_array`). Arrays are (H, W) or channels-last (H, W, C);
    tensors are (H, W), (C, H, W) or (1, C, H, W), channels first as in PyTorch.
    """
    if isinstance(mask, (str, Path)):
        return load_mask(mask)[0, 0].numpy()
    if isinstance(mask, Image.Image):
        check_pixels(mask.size, "the mask")
        try:
            return mask_from_image(mask)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
            raise DataError(f"cannot decode the mask: {str(exc).strip() or type(exc).__name__}") from None
    if isinstance(mask, Tensor):
        arr = mask.detach().cpu().numpy()
        while arr.ndim > 3 and arr.shape[0] == 1:  # (1, C, H, W) -> (C, H, W)
            arr = arr[0]
        if arr.ndim == 3:
            arr = (arr != 0).any(axis=0)
    else:
        arr = np.asarray(mask)
        while arr.ndim > 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4) and arr.shape[0] in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)  # channels first
        if arr.ndim == 3:
            arr = mask_from_array(arr)
    if arr.ndim != 2:
        raise InputError(f"mask must be 2-D (H x W), got shape {tuple(np.shape(mask))}")
    check_pixels((arr.shape[1], arr.shape[0]), "the mask")
    return arr != 0


def hole_array(mask: MaskInput, size: tuple[int, int], what: str = "mask") -> np.ndarray:
    """`mask_array(mask)`, which must be an image of `size` (W, H): else an `InputError` naming `what`."""
    arr = mask_array(mask)
    w, h = size
    if arr.shape != (h, w):
        raise InputError(f"{what} is {arr.shape[1]}x{arr.shape[0]} but the image is {w}x{h}")
    return arr
