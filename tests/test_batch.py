"""`inpaint --batch DIR`: masks paired by stem, outputs named as their inputs, resume, failures counted, shards."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from context_encoder.batch import parse_shard
from context_encoder.cli import main
from context_encoder.errors import InputError

from .conftest import smooth_image, train_tiny


@pytest.fixture(scope="module")
def model(tmp_path_factory, photo_dir):
    out = tmp_path_factory.mktemp("batch") / "run"
    return train_tiny(out, photo_dir, "train.steps=2", "mask.kind=random-block")


def _folder(root, names, masks=True, seed=0):
    """Photos `names` in root/photos and, with `masks`, a PNG mask of each one's stem in root/masks."""
    photos, mask_dir = root / "photos", root / "masks"
    photos.mkdir()
    mask_dir.mkdir()
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        h, w = 40 + 4 * i, 48
        Image.fromarray(smooth_image(rng, h, w)).save(photos / name)
        if masks:
            hole = np.zeros((h, w), np.uint8)
            hole[8 + i : 20 + i, 10:30] = 255
            Image.fromarray(hole).save(mask_dir / f"{name.rsplit('.', 1)[0]}.png")
    return photos, mask_dir


def _batch(model, photos, out, *extra) -> int:
    return main(["inpaint", "--batch", str(photos), "--checkpoint", str(model), "-o", str(out), *extra])


def test_masks_are_paired_by_stem_and_outputs_keep_names_and_formats(model, tmp_path, capsys):
    photos, masks = _folder(tmp_path, ["a.jpg", "b.png", "c.webp"])
    out = tmp_path / "out"
    assert _batch(model, photos, out, "--masks", str(masks)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png", "c.webp"]
    assert [Image.open(out / n).format for n in ("a.jpg", "b.png", "c.webp")] == ["JPEG", "PNG", "WEBP"]
    # each photo got its own mask: outside it the PNG is untouched, inside it changed
    b_in, b_out = np.asarray(Image.open(photos / "b.png")), np.asarray(Image.open(out / "b.png"))
    hole = np.asarray(Image.open(masks / "b.png")) > 0
    assert np.array_equal(b_in[~hole], b_out[~hole]) and not np.array_equal(b_in[hole], b_out[hole])
    assert "batch: filled 3, failed 0 of 3 photos" in capsys.readouterr().err


def test_photos_without_masks_are_listed_before_any_work(model, tmp_path, capsys):
    photos, masks = _folder(tmp_path, ["a.png", "b.png", "c.png"])
    (masks / "b.png").unlink()
    (masks / "c.png").unlink()
    out = tmp_path / "out"
    assert _batch(model, photos, out, "--masks", str(masks)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: 2 of 3 photos have no mask of the same name in {masks}: b.png, c.png"]
    assert not out.exists() or not any(out.iterdir())


def test_a_failing_photo_is_counted_and_the_rest_are_filled(model, tmp_path, capsys):
    photos, masks = _folder(tmp_path, ["a.png", "b.png", "c.png"])
    (photos / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really")  # corrupt
    Image.new("L", (7, 7)).save(masks / "c.png")  # a mask of the wrong size
    out = tmp_path / "out"
    assert _batch(model, photos, out, "--masks", str(masks)) == 1
    err = capsys.readouterr().err
    assert "error: b.png: cannot read image" in err and "error: c.png: mask" in err and "is 7x7" in err
    assert "batch: filled 1, failed 2 of 3 photos" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]


def test_skip_existing_resumes_and_shards_split_the_folder(model, tmp_path, capsys):
    names = [f"p{i}.png" for i in range(5)]
    photos, masks = _folder(tmp_path, names)
    out = tmp_path / "out"
    assert _batch(model, photos, out, "--masks", str(masks), "--shard", "2/2") == 0
    assert sorted(p.name for p in out.iterdir()) == ["p1.png", "p3.png"]
    assert "shard 2/2 (2 of them)" in capsys.readouterr().err
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert _batch(model, photos, out, "--masks", str(masks), "--skip-existing") == 0
    err = capsys.readouterr().err
    assert "batch: filled 3, skipped 2 already done, failed 0 of 5 photos" in err
    assert sorted(p.name for p in out.iterdir()) == names
    assert all((out / n).stat().st_mtime_ns == t for n, t in before.items())  # the done ones were not rewritten


def test_batch_refusals(model, tmp_path, capsys):
    photos, masks = _folder(tmp_path, ["a.png"])
    cases = [
        (["--masks", str(masks), "--shard", "3/2"], "--shard must be K/N with 1 <= K <= N"),
        (["--masks", str(masks), "--box", "1,1,4,4"], "--masks DIR gives each photo its own mask"),
        (["--masks", str(tmp_path / "nowhere")], "--masks folder not found"),
    ]
    for extra, message in cases:
        assert _batch(model, photos, tmp_path / "out", *extra) == 2
        assert message in capsys.readouterr().err
    # the mask folder as -o: outputs named as the photos would replace the masks
    assert _batch(model, photos, masks, "--masks", str(masks)) == 2
    assert "would replace the mask" in capsys.readouterr().err
    photo = photos / "a.png"
    for flag in (["--masks", str(masks)], ["--skip-existing"], ["--shard", "1/2"]):
        assert main(["inpaint", str(photo), "--checkpoint", str(model), "-o", str(tmp_path / "x.png"), *flag]) == 2
        assert "goes with --batch DIR" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "expected"), [("1/1", (1, 1)), (" 3 / 8 ", (3, 8))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0", ""])
def test_parse_shard_refuses(text):
    with pytest.raises(InputError, match="--shard must be K/N"):
        parse_shard(text)
