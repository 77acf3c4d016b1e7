import logging

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.config import DataConfig
from context_encoder.data import (
    ImageDataset,
    StreamSampler,
    holdout_split,
    load_image,
    load_mask,
    readable_images,
    to_rgb,
    training_paths,
)
from context_encoder.errors import DataError


def test_pillow_modes_become_rgb(tmp_path):
    grey16 = Image.fromarray((np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16))
    grey16.save(tmp_path / "g16.png")
    Image.new("L", (40, 40), 128).save(tmp_path / "g.jpg")
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(tmp_path / "transparent.png")
    Image.new("P", (40, 40), 3).save(tmp_path / "pal.gif")
    Image.new("CMYK", (40, 40), (0, 0, 0, 0)).save(tmp_path / "cmyk.tiff")
    for p in sorted(tmp_path.iterdir()):
        img = load_image(p)
        assert img.mode == "RGB" and img.size == (40, 40), p
    assert load_image(tmp_path / "transparent.png").getpixel((0, 0)) == (255, 255, 255)  # on white
    assert load_image(tmp_path / "g16.png").getpixel((39, 39))[0] > 200  # 16-bit scaled, not clipped
    assert to_rgb(Image.new("LA", (2, 2))).mode == "RGB"


def test_corrupt_files_are_skipped_with_a_count(tmp_path, caplog):
    Image.new("RGB", (40, 40), (1, 2, 3)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        paths = readable_images(tmp_path)
    assert [p.name for p in paths] == ["good.png"]
    assert "skipped 2 unreadable image file(s)" in caplog.text


def test_truncated_file_is_replaced_at_load_time(tmp_path, caplog):
    Image.new("RGB", (40, 40), (200, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 40), (0, 200, 0)).save(tmp_path / "b.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 2])  # header fine, pixels missing
    ds = ImageDataset(sorted(tmp_path.glob("*.png")), 32, 32)
    with caplog.at_level(logging.WARNING):
        x = ds[0]
    assert x.shape == (3, 32, 32) and ds.failures == 1 and "a.png" in caplog.text


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no readable images"):
        readable_images(tmp_path)
    with pytest.raises(DataError, match="not found"):
        readable_images(tmp_path / "missing")
    with pytest.raises(DataError, match="pass --data"):
        training_paths(DataConfig())


def test_holdout_split_is_deterministic_and_stable(photo_dir):
    paths = readable_images(photo_dir)
    train, held = holdout_split(paths, photo_dir, 0.25)
    assert set(train).isdisjoint(held) and len(train) + len(held) == len(paths) and held
    assert holdout_split(list(reversed(paths)), photo_dir, 0.25)[1] == list(reversed(held))
    train2, held2 = holdout_split(paths[:-3], photo_dir, 0.25)  # removing files moves nobody else
    assert set(held2) == set(held) - set(paths[-3:])


def test_augmentation_is_a_function_of_seed_and_position(photo_dir):
    paths = readable_images(photo_dir)
    ds = ImageDataset(paths, 32, 36, flip=True, seed=1)
    a, b = ds[(3, 10)], ds[(3, 10)]
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    crops = {ds[(3, n)].sum().item() for n in range(20)}
    assert len(crops) > 1  # different sample numbers give different crops/flips
    assert ds[0].shape == (3, 32, 32)


def test_zoom_shows_closer_views_without_enlarging(tmp_path):
    ramp = np.tile(np.linspace(0, 255, 128).round().astype(np.uint8)[None, :, None], (128, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    small = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(small).save(tmp_path / "small.png")
    paths = [tmp_path / "ramp.png", tmp_path / "small.png"]

    def spans(ds):  # horizontal extent of the ramp each sample shows, in [-1, 1] units
        return [float(ds[(0, n)][0].max() - ds[(0, n)][0].min()) for n in range(30)]

    whole = ImageDataset(paths, 32, 32, flip=False)
    zoomed = ImageDataset(paths, 32, 32, flip=False, zoom=4.0)
    assert min(spans(whole)) > 1.9  # the whole ramp, shrunk
    views = sorted(spans(zoomed))
    assert views[0] > 0.4 and views[-1] > 1.9 and views[3] < 1.5
    assert torch.equal(zoomed[(0, 7)], zoomed[(0, 7)])  # still a function of the sample number
    assert torch.equal(zoomed[0], whole[0])  # evaluation items: no zoom
    exact = torch.from_numpy(small).permute(2, 0, 1).float() / 127.5 - 1
    assert all(torch.allclose(zoomed[(1, n)], exact, atol=1e-6) for n in range(5))  # 32 px: not enlarged


def test_saturation_jitter_changes_colour_strength_only(tmp_path):
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(80, 176, (48, 48, 3), dtype=np.uint8)).save(tmp_path / "a.png")  # no clipping
    plain = ImageDataset([tmp_path / "a.png"], 32, 32, flip=True)
    jitter = ImageDataset([tmp_path / "a.png"], 32, 32, flip=True, saturation=0.5)

    def chroma(x):  # spread of each pixel's channels around its grey value
        return float((x - x.mean(0, keepdim=True)).abs().mean())

    ratios = [chroma(jitter[(0, n)]) / chroma(plain[(0, n)]) for n in range(40)]
    assert min(ratios) < 0.8 and max(ratios) > 1.2  # weaker and stronger colour, both drawn
    assert 0.45 < min(ratios) and max(ratios) < 1.55  # within [1 - 0.5, 1 + 0.5]
    luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)  # what Pillow keeps when it scales colour
    same = [torch.allclose((jitter[(0, n)] * luma).sum(0), (plain[(0, n)] * luma).sum(0), atol=0.03) for n in range(10)]
    assert all(same)  # the same crop and flip, only the colour strength differs
    assert torch.equal(jitter[0], plain[0])  # evaluation items: untouched


def test_stream_resumes_at_any_position():
    full = StreamSampler(10, seed=3)
    it = iter(full)
    first = [next(it) for _ in range(25)]
    resumed = iter(StreamSampler(10, seed=3, start=13))
    assert [next(resumed) for _ in range(12)] == first[13:]
    assert sorted(i for i, _ in first[:10]) == list(range(10))  # each epoch is a permutation


def test_mask_files(tmp_path):
    arr = np.zeros((6, 5, 3), np.uint8)
    arr[1, 2, 0] = 255  # any non-zero channel is hole
    Image.fromarray(arr).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png")
    assert m.shape == (1, 1, 6, 5) and m.sum() == 1 and m[0, 0, 1, 2]
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "g.png")
    assert load_mask(tmp_path / "g.png").all()


def _folder(root, n, colour):
    root.mkdir()
    for i in range(n):
        Image.new("RGB", (34, 34), colour).save(root / f"{i:03d}.png")
    return root


def test_several_training_folders_balanced_or_pooled(tmp_path):
    big = _folder(tmp_path / "big", 60, (200, 0, 0))
    small = _folder(tmp_path / "small", 9, (0, 0, 200))
    cfg = DataConfig(train_dir=str(big), extra_dirs=(str(small),), val_fraction=0.2)
    train, held = training_paths(cfg)
    from_small = [p for p in train if p.parent == small]
    assert len(from_small) == len(train) - len(from_small)  # balanced: each folder half the stream
    counts = {p: from_small.count(p) for p in set(from_small)}
    assert max(counts.values()) - min(counts.values()) <= 1  # small folder repeated evenly
    held_small = [p for p in held if p.parent == small]
    assert held_small and len(held_small) == len(held) - len(held_small)  # validation balanced too
    assert not set(train) & set(held)

    pooled_train, pooled_held = training_paths(DataConfig(train_dir=str(big), extra_dirs=(str(small),), mix="pooled"))
    assert sorted(pooled_train + pooled_held) == sorted(readable_images(big) + readable_images(small))
    assert training_paths(DataConfig(train_dir=str(big))) == holdout_split(readable_images(big), big, 0.02)


def test_repeated_data_flag_trains_on_the_mix(tmp_path):
    import json

    from context_encoder.cli import main

    a, b = _folder(tmp_path / "a", 12, (200, 0, 0)), _folder(tmp_path / "b b", 5, (0, 0, 200))
    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(a), "--data", str(b), "--out", str(out), "-q"]
    assert main([*args, "--set", "train.steps=2", "--set", "train.val_every=0"]) == 0
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["train_dir"] == a.as_posix() and data["extra_dirs"] == [b.as_posix()] and data["mix"] == "balanced"
