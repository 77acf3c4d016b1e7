"""What a photo file holds besides its pixels, carried over to the filled result.

A fill changes the hole's pixels and nothing else, so the written file keeps what the input file had:
its format (when the output path names none), JPEG quantisation tables and chroma subsampling (a JPEG
comes back at the quality it went in, not at Pillow's default 75), EXIF (less the orientation, which
reading applies to the pixels), the ICC colour profile, the DPI, the alpha channel (untouched, with the
RGB under it), and a greyscale photo stays grey. What cannot be kept is named in one line: more than
8 bits per channel (Pillow holds colour at 8 bits), or an alpha channel going to a format without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin

from .decode import ALPHA_MODES, opened
from .errors import DataError
from .outputs import atomic_write

ORIENTATION = 0x0112  # the EXIF tag `ImageOps.exif_transpose` applies
LOSSY_QUALITY = 95  # JPEG / WebP quality where the input has no quantisation tables to reuse
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}  # formats that hold an alpha channel as written here
_ICC_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}
_DPI_FORMATS = {"JPEG", "PNG", "TIFF"}
_EXIF_FORMATS = {"JPEG", "PNG", "WEBP", "TIFF"}


@dataclass(frozen=True)
class PhotoFile:
    """What `read_photo_file` found in a file besides the pixels `decode.load_image` returns."""

    format: str | None  # Pillow's name of the input's format ("JPEG", "PNG", ...)
    size: tuple[int, int]  # (W, H) of the upright pixels (EXIF orientation applied, as `decode.load_image` does)
    grey: bool  # one channel (L, I;16, ...): the result is written grey
    exif: bytes | None  # the EXIF block with the orientation tag removed
    icc_profile: bytes | None  # only a profile for RGB (or grey, for a grey photo) pixels
    dpi: tuple[float, float] | None
    qtables: dict | None  # JPEG quantisation tables
    subsampling: int | None  # JPEG chroma subsampling (Pillow's code: 0 4:4:4, 1 4:2:2, 2 4:2:0)
    rgba: np.ndarray | None  # (H, W, 4) uint8 upright pixels where the photo has transparency
    bits: int  # bits per channel of the input

    def notices(self, fmt: str) -> list[str]:
        """One line for each thing of the input that a file in `fmt` will not keep."""
        lines = []
        if self.bits > 8:
            lines.append(f"the input has {self.bits} bits per channel; the output has 8")
        if self.rgba is not None and fmt not in _ALPHA_FORMATS:
            lines.append(f"{fmt} has no alpha channel: the transparency is dropped (transparent pixels on white)")
        return lines


def read_photo_file(path: str | Path) -> PhotoFile:
    """The metadata, quality and alpha of the image file `path`; a file that cannot be read is a `DataError`."""
    with opened(path, "image") as img:
        try:
            return describe(img, alpha=True)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
            raise DataError(f"cannot read image {path}: {str(exc).strip() or type(exc).__name__}") from None


def describe(img: Image.Image, alpha: bool = False) -> PhotoFile:
    """What the opened image `img` carries besides its pixels, from its header (and, with `alpha`, its
    transparency, which decodes it)."""
    exif = img.getexif()  # the image's own: the orientation is put back after the copy without it
    orientation = exif.pop(ORIENTATION, None)
    exif_bytes = exif.tobytes() if len(exif) else None
    if orientation is not None:
        exif[ORIENTATION] = orientation
    turned = orientation in (5, 6, 7, 8)  # a quarter turn: width and height swap
    size = (img.height, img.width) if turned else img.size
    grey = img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F") or (
        img.mode == "P" and img.palette is not None and img.palette.mode == "L"
    )
    icc = colour_profile(img, b"GRAY" if grey else b"RGB ")  # a CMYK or Lab one does not describe the output
    dpi = img.info.get("dpi")
    is_jpeg = img.format == "JPEG"
    rgba = None
    if alpha and (img.mode in ALPHA_MODES or "transparency" in img.info):
        rgba = np.asarray(ImageOps.exif_transpose(img).convert("RGBA"))
        if (rgba[..., 3] == 255).all():
            rgba = None  # an alpha channel that hides nothing: nothing to keep
    return PhotoFile(
        format=img.format,
        size=size,
        grey=grey,
        exif=exif_bytes,
        icc_profile=icc,
        dpi=tuple(float(v) for v in dpi) if dpi else None,  # type: ignore[arg-type]
        qtables=img.quantization if is_jpeg and getattr(img, "quantization", None) else None,
        subsampling=JpegImagePlugin.get_sampling(img) if is_jpeg else None,
        rgba=rgba,
        bits=_bits(img),
    )


def colour_profile(img: Image.Image, space: bytes) -> bytes | None:
    """`img`'s ICC profile where it describes pixels of colour space `space` (b"RGB " or b"GRAY", the profile
    header's bytes 16-20), else None."""
    icc = img.info.get("icc_profile") or None
    return icc if icc is not None and icc[16:20] == space else None


def _bits(img: Image.Image) -> int:
    """Bits per channel, from the header where Pillow reads deep colour as 8 bits (PNG, TIFF)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return 16 if img.mode.startswith("I;16") else 32
    if img.format == "PNG":
        fp = getattr(img, "fp", None)
        if fp is not None:
            at = fp.tell()
            fp.seek(24)  # signature (8), IHDR length and type (8), width and height (8), then the bit depth
            depth = fp.read(1)
            fp.seek(at)
            return max(8, depth[0]) if depth else 8
    if img.format == "TIFF":
        bits = img.tag_v2.get(258)  # BitsPerSample
        if bits:
            return max(8, *bits) if isinstance(bits, tuple) else max(8, int(bits))
    return 8


def save_filled(result: Image.Image, hole: np.ndarray, path: str | Path, fmt: str, photo: PhotoFile) -> Path:
    """Write `result` (the filled RGB photo; `hole` (H, W) bool marks what the fill changed) to `path` in `fmt`,
    atomically, with what `photo` carries."""
    image = result
    if photo.rgba is not None and fmt in _ALPHA_FORMATS:
        rgba = photo.rgba.copy()  # the input's own RGB and alpha outside the hole, the fill's RGB in it
        rgba[hole, :3] = np.asarray(result.convert("RGB"))[hole]
        image = Image.fromarray(rgba, "RGBA")
    elif photo.grey:
        image = result.convert("L")
    path = Path(path)
    with atomic_write(path) as f:
        image.save(f, format=fmt, **save_options(fmt, photo, image.mode))
    return path


def save_options(fmt: str, photo: PhotoFile, mode: str = "RGB") -> dict:
    """Pillow's save options for a result (an image in `mode`) in `fmt` that keep what `photo` carries: EXIF, ICC
    profile, DPI, and a JPEG's own quantisation tables and subsampling (`LOSSY_QUALITY` where there are none to
    reuse, or where a grey JPEG's one table would have to serve a colour result)."""
    options: dict = {}
    if photo.exif and fmt in _EXIF_FORMATS:
        options["exif"] = photo.exif
    if photo.icc_profile and fmt in _ICC_FORMATS:
        options["icc_profile"] = photo.icc_profile
    if photo.dpi and fmt in _DPI_FORMATS:
        options["dpi"] = photo.dpi
    if fmt == "JPEG":
        if photo.qtables and (mode == "L" or len(photo.qtables) >= 2):
            options["qtables"] = photo.qtables
            if photo.subsampling is not None and photo.subsampling >= 0:
                options["subsampling"] = photo.subsampling
        else:
            options["quality"] = LOSSY_QUALITY
    elif fmt == "WEBP":
        options["quality"] = LOSSY_QUALITY
    return options
