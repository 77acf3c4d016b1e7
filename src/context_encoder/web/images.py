"""Uploaded images: sizes checked from the headers, then decoded with EXIF orientation; masks as hole arrays.

The HTTP side of the one decoder (`context_encoder.decode`): its answers are status codes, its work bounded in
memory; what a pixel means (`to_rgb`, `mask_array`) is the decoder's.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError

from ..decode import ALPHA_MODES, mask_array, to_rgb
from ..errors import ContextEncoderError
from ..photo_file import PhotoFile, colour_profile, describe

_EXIF_ORIENTATION = 0x0112  # values 5-8 rotate by 90 degrees: width and height swap


def open_image(data: bytes | bytearray, what: str, max_pixels: int) -> Image.Image:
    """A lazily decoded image: only its header is read. 400 if it is no image, 413 if too many pixels."""
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the {what} has more than the limit of {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise HTTPException(400, f"the {what} is not in an image format this server can read") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise HTTPException(400, f"the {what} is not an image this server can decode ({exc})") from None
    w, h = img.size
    if w * h > max_pixels:
        raise HTTPException(413, f"the {what} is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
    if w < 1 or h < 1:
        raise HTTPException(400, f"the {what} is empty ({w}x{h})")
    return img


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after EXIF orientation, as the browser shows the image and `to_rgb` decodes it.

    Reads only EXIF found with the header (JPEG, WebP, an early PNG eXIf chunk): `getexif()` would
    decode a whole PNG here, on the event loop.
    """
    w, h = img.size
    raw = img.info.get("exif")
    if not raw:
        return w, h
    try:
        exif = Image.Exif()
        exif.load(raw)
        rotated = exif.get(_EXIF_ORIENTATION) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as `to_rgb` does
        rotated = False
    return (h, w) if rotated else (w, h)


def check_sizes(image: bytes | bytearray, mask: bytes | bytearray, max_pixels: int) -> str | None:
    """The cheap checks, from the headers only (fit for the event loop): both within the pixel limit, same size.
    Returns the image's format as Pillow names it ("PNG", "JPEG", ...)."""
    opened = open_image(image, "image", max_pixels)
    image_size = oriented_size(opened)
    mask_size = oriented_size(open_image(mask, "mask", max_pixels))
    if mask_size != image_size:
        raise HTTPException(
            400, f"the mask is {mask_size[0]}x{mask_size[1]} but the image is {image_size[0]}x{image_size[1]}"
        )
    return opened.format


def _decode(img: Image.Image, what: str) -> Image.Image:
    try:
        img.load()
        return img
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"the {what} is too large to decode ({exc})") from None
    except Exception as exc:  # noqa: BLE001
        raise HTTPException(400, f"the {what} could not be decoded ({exc})") from None


def _rgb(img: Image.Image) -> Image.Image:
    """`to_rgb`, without its full-size copy when there is nothing to change (an RGB image shown as stored)."""
    if img.mode == "RGB" and img.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return img
    return to_rgb(img)


def decode_hole(mask: bytes | bytearray, max_pixels: int) -> np.ndarray:
    """The (H, W) bool hole array of a mask image, as `mask_array` reads it (EXIF orientation, alpha, any mode).

    A colour mask goes to `mask_array` as the brightest of its colour channels (plus its alpha): the same
    holes, without copying its decoded pixels whole into NumPy (at 40 MP a browser's RGBA mask is 160 MB,
    and Pillow's `tobytes` briefly doubles that).
    """
    img = _decode(open_image(mask, "mask", max_pixels), "mask")
    ImageOps.exif_transpose(img, in_place=True)  # as `mask_array` does, without a copy when there is nothing to do
    pixels: Image.Image | np.ndarray = img
    if img.mode in ("RGB", "RGBA"):
        bands = [ImageChops.lighter(ImageChops.lighter(img.getchannel(0), img.getchannel(1)), img.getchannel(2))]
        bands += [img.getchannel(3)] if img.mode == "RGBA" else []
        del img, pixels  # the colour image is freed here
        arrays = [np.asarray(band) for band in bands]
        del bands
        pixels = np.stack(arrays, axis=2) if len(arrays) == 2 else arrays[0]  # (H, W, 2) colour and alpha, or (H, W)
    try:
        return mask_array(pixels)
    except ContextEncoderError as exc:
        raise HTTPException(400, f"unusable mask: {exc}") from None


@dataclass
class Upload:
    """A decoded request: what the fill method reads, what the fill is pasted into, and what the answer keeps."""

    image: Image.Image  # RGB, EXIF orientation applied, transparency on white: what the methods fill
    hole: np.ndarray  # (H, W) bool
    canvas: Image.Image  # RGB, the answer: the fill is pasted into it; `image` itself unless the alpha is kept
    alpha: Image.Image | None  # "L": the photo's transparency, put back on `canvas`; None: opaque, or not kept
    icc_profile: bytes | None  # the photo's RGB colour profile, given to the answer
    photo: PhotoFile  # what the photo's file carries besides its pixels (EXIF, DPI, JPEG tables), for the answer


def _alpha(img: Image.Image) -> Image.Image | None:
    """The transparency of a decoded, oriented image ("L"), or None when it has none or is opaque throughout."""
    if img.mode not in ALPHA_MODES and not (img.mode == "P" and "transparency" in img.info):
        return None
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA") else img.convert("RGBA").getchannel("A")
    return None if alpha.getextrema() == (255, 255) else alpha


def decode_upload(
    image: bytes | bytearray, mask: bytes | bytearray, max_pixels: int, keep_alpha: bool = False
) -> Upload:
    """The image (RGB, EXIF orientation applied) and its (H, W) bool hole array (non-zero mask pixels).

    The mask is decoded first and dropped once it is a bool array, so its decoded pixels (4 bytes each
    from a browser's canvas) and the image's are never in memory together. With `keep_alpha`, a photo with
    transparency also gives its alpha and its colours as stored (`canvas`: Pillow drops the alpha without
    compositing), so that the answer keeps both; the methods still read it on white.
    """
    hole = decode_hole(mask, max_pixels)
    opened = open_image(image, "image", max_pixels)
    icc = colour_profile(opened, b"RGB ")  # a grey or CMYK profile fits no RGB answer
    decoded = _decode(opened, "image")
    carried = describe(opened)  # the header's metadata, once the file is known to decode
    alpha = None
    if keep_alpha and decoded.mode != "RGB":
        ImageOps.exif_transpose(decoded, in_place=True)  # oriented once, for the alpha and the colours alike
        alpha = _alpha(decoded)
    img = _rgb(decoded)
    if hole.shape != (img.height, img.width):
        raise HTTPException(
            400, f"the mask is {hole.shape[1]}x{hole.shape[0]} but the image is {img.width}x{img.height}"
        )
    canvas = img if alpha is None else decoded.convert("RGB")
    return Upload(img, hole, canvas, alpha, icc, carried)
