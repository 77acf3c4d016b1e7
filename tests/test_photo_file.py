"""`inpaint -o` keeps the photo: format, JPEG quality, EXIF, ICC profile, DPI, alpha, grey; losses in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from context_encoder.cli import main

from .conftest import SHARED_DATA, smooth_image, train_tiny

KODAK = SHARED_DATA / "eval" / "kodak24"


@pytest.fixture(scope="module")
def model(tmp_path_factory, photo_dir):
    """A tiny whole-image model: it fills boxes anywhere in a photo of any size."""
    return train_tiny(
        tmp_path_factory.mktemp("photo-file") / "run", photo_dir, "train.steps=2", "mask.kind=random-block"
    )


def _pixels(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A real photo's corner where the shared photos are here, else a smooth colour field."""
    kodak = sorted(KODAK.glob("*.png"))
    if kodak:
        return np.asarray(Image.open(kodak[seed % len(kodak)]).convert("RGB"))[:h, :w].copy()
    return smooth_image(np.random.default_rng(seed), h, w)


def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _inpaint(model, src, out, *extra) -> int:
    return main(["inpaint", str(src), "--checkpoint", str(model), "--box", "20,16,24,20", "-o", str(out), *extra])


def test_jpeg_keeps_exif_icc_dpi_and_its_quality(model, tmp_path, capsys):
    src = tmp_path / "camera.jpg"
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x013B] = "TestCam", "X1", "A. Person"  # make, model, artist
    exif[0x0112] = 6  # orientation: the stored pixels are to be turned 90 degrees clockwise
    icc = _srgb()
    Image.fromarray(_pixels()).save(src, quality=92, exif=exif, icc_profile=icc, dpi=(300, 300), subsampling=2)
    out = tmp_path / "filled.jpg"
    assert _inpaint(model, src, out) == 0
    with Image.open(src) as a, Image.open(out) as b:
        assert b.format == "JPEG" and b.size == (96, 128)  # upright: the orientation was applied to the pixels
        got = b.getexif()
        assert (got[0x010F], got[0x0110], got[0x013B]) == ("TestCam", "X1", "A. Person")
        assert 0x0112 not in got  # ... so it is not applied twice
        assert b.info["icc_profile"] == icc and tuple(round(v) for v in b.info["dpi"]) == (300, 300)
        assert b.quantization == a.quantization  # the same quality, not Pillow's default 75
        assert JpegImagePlugin.get_sampling(b) == JpegImagePlugin.get_sampling(a) == 2
        upright = np.asarray(a.transpose(Image.Transpose.ROTATE_270).convert("RGB"), dtype=float)
        filled = np.asarray(b.convert("RGB"), dtype=float)
    assert 0.8 < out.stat().st_size / src.stat().st_size < 1.25  # not re-encoded smaller and worse
    known = np.ones(upright.shape[:2], bool)
    known[0:56, 0:56] = False  # the box (x 20-44, y 16-36 upright) and the 16 px JPEG blocks it touches
    known_error = np.abs(filled - upright)[known].mean()
    assert known_error < 2.0  # the photo around the hole comes back as it went in (one more JPEG round)
    assert "notice" not in capsys.readouterr().err


def test_rgba_keeps_its_alpha_and_the_colours_under_it(model, tmp_path, capsys):
    rgba = np.dstack([_pixels(seed=1), np.tile(np.linspace(0, 255, 128).astype(np.uint8), (96, 1))])
    src = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(src)
    out = tmp_path / "filled.png"
    assert _inpaint(model, src, out) == 0
    with Image.open(out) as b:
        assert b.mode == "RGBA"
        got = np.asarray(b)
    hole = np.zeros((96, 128), bool)
    hole[16:36, 20:44] = True
    assert np.array_equal(got[..., 3], rgba[..., 3])  # alpha untouched, in the hole too
    assert np.array_equal(got[~hole], rgba[~hole])  # every known pixel as it was, also where transparent
    assert not np.array_equal(got[hole, :3], rgba[hole, :3])  # the hole was filled
    assert "notice" not in capsys.readouterr().err
    # a format without alpha says so in one line
    assert _inpaint(model, src, tmp_path / "flat.jpg") == 0
    err = capsys.readouterr().err
    assert "JPEG has no alpha channel: the transparency is dropped" in err and "Traceback" not in err


def test_no_extension_keeps_the_input_format_and_grey_stays_grey(model, tmp_path):
    src = tmp_path / "grey.jpg"
    Image.fromarray(_pixels(seed=2)).convert("L").save(src, quality=80)
    out = tmp_path / "filled"
    assert _inpaint(model, src, out) == 0
    with Image.open(out) as a, Image.open(src) as b:
        assert (a.format, a.mode) == ("JPEG", "L") and a.quantization == b.quantization


def test_sixteen_bits_per_channel_are_stated_in_one_line(model, tmp_path, capsys):
    src = tmp_path / "deep.png"
    deep = (np.asarray(Image.fromarray(_pixels(seed=3)).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(src)
    assert Image.open(src).mode == "I;16"
    assert _inpaint(model, src, tmp_path / "out.png") == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("notice")]
    assert notices == ["notice: deep.png: the input has 16 bits per channel; the output has 8"]
    assert Image.open(tmp_path / "out.png").mode == "L"


def test_a_cmyk_profile_is_not_put_on_rgb_pixels(model, tmp_path):
    from context_encoder.photo_file import read_photo_file

    src = tmp_path / "print.jpg"
    Image.fromarray(_pixels(seed=4)).convert("CMYK").save(src, icc_profile=b"\0" * 16 + b"CMYK" + b"\0" * 108)
    assert read_photo_file(src).icc_profile is None
    assert _inpaint(model, src, tmp_path / "out.jpg") == 0
    with Image.open(tmp_path / "out.jpg") as b:
        assert b.mode == "RGB" and "icc_profile" not in b.info
