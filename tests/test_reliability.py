"""Nothing lost, nothing let in: atomic outputs checked up front, the divergence guard, the pixel cap,
hostile files answered by one-line errors, and a fuzz test of the image, mask and weights readers.

Each case is listed in docs/reliability.md with the command that reproduces it.

Over 400 lines on purpose: one case a test, each named after the row of docs/reliability.md it checks.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from context_encoder import outputs
from context_encoder.checkpoint import load_checkpoint, save_checkpoint
from context_encoder.cli import main
from context_encoder.data import ImageDataset, load_image, load_mask, max_pixels, readable_images
from context_encoder.errors import CheckpointError, ConfigError, ContextEncoderError, DataError
from context_encoder.inpaint import mask_array
from context_encoder.loading import inpaint, load_model
from context_encoder.outputs import OutputError, remove_orphans, write_bytes
from context_encoder.pretrained import read_metadata
from context_encoder.safetensors_io import load_file, metadata, save_file

from .conftest import train_tiny

# ----------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def run(tmp_path_factory, photo_dir):
    return train_tiny(tmp_path_factory.mktemp("reliability") / "run", photo_dir, "train.steps=2")


def _photo(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _png_header(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels and holds almost no data: what a decompression bomb shows first."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


class _FullDisk:
    """A file whose writes fail like a full disk once `room` bytes are written."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def _fill_disk(monkeypatch, room: int = 100, only: str | None = None) -> None:
    """Make atomic writes (of files named `only`, or all) fail with ENOSPC after `room` bytes."""
    real = outputs._open_temp

    def open_temp(tmp: Path):
        f = real(tmp)
        return _FullDisk(f, room) if only is None or tmp.name.startswith(f".{only}.") else f

    monkeypatch.setattr(outputs, "_open_temp", open_temp)


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


# ------------------------------------------------------------------ 1. outputs: checked first, written whole


def test_atomic_write_keeps_the_old_file_on_a_full_disk(tmp_path, monkeypatch):
    target = write_bytes(tmp_path / "a.bin", b"old content")
    _fill_disk(monkeypatch, room=4)
    with pytest.raises(OutputError, match="cannot write .*a.bin: No space left on device"):
        write_bytes(target, b"new content, longer than the room left")
    with pytest.raises(OutputError):
        write_bytes(tmp_path / "new.bin", b"x" * 100)
    assert target.read_bytes() == b"old content" and not (tmp_path / "new.bin").exists()
    assert _temps(tmp_path) == []


def test_atomic_write_keeps_the_old_file_when_fsync_fails(tmp_path, monkeypatch):
    target = write_bytes(tmp_path / "a.bin", b"old")

    def fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(outputs.os, "fsync", fsync)
    with pytest.raises(OutputError, match="Input/output error"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and _temps(tmp_path) == []


def test_inpaint_on_a_full_disk_keeps_the_old_output(run, tmp_path, monkeypatch, capsys):
    src = _photo(tmp_path / "in.png")
    old = _photo(tmp_path / "existing.png", seed=1).read_bytes()
    _fill_disk(monkeypatch)
    assert main(["inpaint", str(src), "--checkpoint", str(run), "--center", "-o", str(tmp_path / "existing.png")]) == 2
    assert "No space left on device" in _one_line_error(capsys)
    assert main(["inpaint", str(src), "--checkpoint", str(run), "--center", "-o", str(tmp_path / "new.png")]) == 2
    assert (tmp_path / "existing.png").read_bytes() == old and not (tmp_path / "new.png").exists()
    assert _temps(tmp_path) == []


def test_checkpoint_and_weights_writes_on_a_full_disk(run, tmp_path, monkeypatch):
    state = load_checkpoint(run)
    ckpt = save_checkpoint(tmp_path / "last.pt", {"step": 1, "config": state["config"]})
    weights = save_file({"w": torch.ones(4)}, tmp_path / "w.safetensors")
    before = ckpt.read_bytes(), weights.read_bytes()
    _fill_disk(monkeypatch, room=1000)
    with pytest.raises(OutputError, match="last.pt: No space left on device"):
        save_checkpoint(ckpt, {"step": 2, "config": state["config"], "big": torch.zeros(10_000)})
    with pytest.raises(OutputError, match="No space left on device"):
        save_file({"w": torch.zeros(10_000)}, weights)
    assert (ckpt.read_bytes(), weights.read_bytes()) == before and _temps(tmp_path) == []
    assert load_checkpoint(ckpt)["step"] == 1


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("out/x.xyz", "cannot write '.xyz' images"),
        ("out/x.xbm", "cannot write '.xbm' images"),  # Pillow knows XBM but cannot write RGB as XBM
        ("out/", "is a folder"),
        ("{folder}", "is a folder"),
        ("{file}/x.png", "is a file, not a folder"),
    ],
)
def test_bad_output_paths_fail_before_any_work(run, tmp_path, monkeypatch, capsys, output, message):
    src = _photo(tmp_path / "in.png")
    (tmp_path / "afile").write_text("x")
    output = output.format(folder=tmp_path, file=tmp_path / "afile")
    monkeypatch.chdir(tmp_path)
    with mock.patch("context_encoder.loading.load_model", side_effect=AssertionError("the model was loaded")):
        assert main(["inpaint", str(src), "--checkpoint", str(run), "--center", "-o", output]) == 2
    assert message in _one_line_error(capsys)


def test_a_read_only_output_folder_fails_before_any_work(run, tmp_path, monkeypatch, capsys):
    src = _photo(tmp_path / "in.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    with mock.patch("context_encoder.loading.load_model", side_effect=AssertionError("the model was loaded")):
        assert main(["inpaint", str(src), "--checkpoint", str(run), "-o", str(locked / "sub" / "x.png")]) == 2
    assert "is not writable" in _one_line_error(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_for_real(run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert main(["inpaint", str(_photo(tmp_path / "in.png")), "--checkpoint", str(run), "-o", str(locked / "x.png")])
    assert "is not writable" in _one_line_error(capsys)


def test_batch_never_writes_onto_its_inputs(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    before = {p.name: p.read_bytes() for p in (_photo(folder / "a.png"), _photo(folder / "b.jpg", seed=1))}
    assert main(["inpaint", "--batch", str(folder), "--checkpoint", str(run), "--center", "-o", str(folder)]) == 2
    assert "would replace the input" in _one_line_error(capsys)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_batch_outputs_keep_their_inputs_names_and_never_collide(run, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.png")
    _photo(folder / "a.jpg", seed=1)
    _photo(folder / "b.png", seed=2)
    out = tmp_path / "out"
    assert main(["inpaint", "--batch", str(folder), "--checkpoint", str(run), "--center", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.png", "b.png"]
    _photo(folder / "A.JPG", seed=3)  # a.jpg and A.JPG are one file on macOS and Windows
    assert main(["inpaint", "--batch", str(folder), "--checkpoint", str(run), "--center", "-o", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "A.JPG and" in line and "a.jpg would both be written" in line


def test_orphaned_temporary_files_of_dead_processes_are_removed(tmp_path, tiny_cfg):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    orphan, live = folder / f".last.pt.{pid}.tmp", folder / ".best.pt.1.tmp"  # pid 1 is always running
    orphan.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert remove_orphans(folder) == [orphan] and live.exists()
    foreign = folder / f".notes.txt.{pid}.tmp"
    for path in (orphan, foreign):
        path.write_bytes(b"left behind")
    write_bytes(folder / "last.pt", b"x")  # the next write of last.pt removes its own leftovers only
    assert not orphan.exists() and foreign.exists() and live.exists()
    orphan.write_bytes(b"half a checkpoint")
    from context_encoder.train import train

    train(tiny_cfg("train.steps=1"), tmp_path / "run", progress=False)  # the next start cleans up
    assert not orphan.exists() and live.exists()


def test_disk_full_during_training_keeps_the_checkpoint(photo_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    train_tiny(out, photo_dir, "train.steps=2")
    good = (out / "checkpoints" / "last.pt").read_bytes()
    _fill_disk(monkeypatch, room=1000, only="last.pt")
    args = ["train", "--resume", str(out), "-q", "--set", "train.steps=4", "--set", "train.checkpoint_every=2"]
    assert main(args) == 2
    line = _one_line_error(capsys)
    assert "training stopped at step 4" in line and "No space left on device" in line and "(step 2) is kept" in line
    assert (out / "checkpoints" / "last.pt").read_bytes() == good and _temps(out) == []


def test_the_stats_log_drops_a_cut_line_and_writes_strict_json(tmp_path):
    from context_encoder.outputs import append_record, open_log

    path = tmp_path / "stats.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "loss')  # the disk filled up mid-line
    with open_log(path) as log:
        append_record(log, {"step": 3, "loss": float("nan"), "psnr": float("inf"), "n": 4})
    assert [_strict_json(x) for x in path.read_text().splitlines()] == [
        {"step": 1},
        {"step": 3, "loss": None, "psnr": None, "n": 4},
    ]


def test_evaluate_report_folder_is_checked_before_any_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    _photo(tmp_path / "img.png")
    args = ["evaluate", "--data", str(tmp_path), "--size", "32", "--baselines", "mean"]
    assert main([*args, "--out", str(tmp_path / "afile")]) == 2
    assert "is a file, not a folder" in _one_line_error(capsys)


# ------------------------------------------------------------------------- 2. divergence is noticed


def _strict_json(line: str) -> dict:
    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(line, parse_constant=refuse)


def test_non_finite_training_stops_without_a_checkpoint(photo_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(photo_dir), "--out", str(out), "-q"]
    assert main([*args, "--set", "train.steps=4", "--set", "train.lr=inf"]) == 2  # refused before any step
    assert "train.lr must be a finite number" in _one_line_error(capsys)
    # a finite learning rate so large that the first update overflows the forward pass that follows it
    assert main([*args, "--set", "train.steps=4", "--set", "train.lr=3e38", "--set", "train.log_every=1"]) == 3
    line = _one_line_error(capsys)
    assert "training diverged at step" in line and "no checkpoint was written" in line
    assert not (out / "checkpoints" / "last.pt").exists()
    records = [_strict_json(x) for x in (out / "stats.jsonl").read_text().splitlines()]
    assert records and any(v is None for v in records[-1].values())  # null, not a bare NaN token


def test_a_diverging_resumed_run_keeps_the_last_good_checkpoint(photo_dir, tmp_path, monkeypatch, capsys):
    import importlib

    train_mod = importlib.import_module("context_encoder.train")
    out = tmp_path / "run"
    train_tiny(out, photo_dir, "train.steps=2")
    good = (out / "checkpoints" / "last.pt").read_bytes()
    real_step = train_mod.train_step

    def step_then_blow_up(gen, *args, **kwargs):  # the weights turn NaN after the step, as with a huge lr
        stats = real_step(gen, *args, **kwargs)
        with torch.no_grad():
            next(gen.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(train_mod, "train_step", step_then_blow_up)
    args = ["train", "--resume", str(out), "-q", "--set", "train.steps=6", "--set", "train.checkpoint_every=1"]
    assert main(args) == 3
    line = _one_line_error(capsys)
    assert "diverged at step 3" in line and "weight tensor(s) hold NaN" in line and "(step 2) is kept" in line
    assert (out / "checkpoints" / "last.pt").read_bytes() == good
    for record in (out / "stats.jsonl").read_text().splitlines():
        json.dumps(_strict_json(record), allow_nan=False)


def test_a_saturated_discriminator_is_reported(tiny_cfg, tmp_path, monkeypatch, caplog):
    import importlib

    train_mod = importlib.import_module("context_encoder.train")
    real_step = train_mod.train_step

    def saturated(*args, **kwargs):  # what train.lr=1e3 gives after a few steps: D is always right
        return {**real_step(*args, **kwargs), "d_real": torch.tensor(1.0), "d_fake": torch.tensor(0.0)}

    monkeypatch.setattr(train_mod, "train_step", saturated)
    train_mod.train(tiny_cfg("train.steps=4", "train.log_every=1"), tmp_path / "run", progress=False)
    assert caplog.text.count("the discriminator is saturated at step 3") == 1


def test_load_model_and_export_refuse_non_finite_weights(run, tmp_path, capsys):
    state = load_checkpoint(run)
    del state["path"], state["format"]
    name = next(iter(state["generator"]))
    state["generator"][name] = torch.full_like(state["generator"][name], float("nan"))
    bad = save_checkpoint(tmp_path / "nan.pt", state)
    with pytest.raises(CheckpointError, match="hold NaN or infinite values"):
        load_model(bad)
    assert main(["export", str(bad), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "the training run diverged" in _one_line_error(capsys) and not (tmp_path / "x.safetensors").exists()
    state["generator"][name] = torch.full_like(state["generator"][name], 1e6)  # finite, beyond fp16
    big = save_checkpoint(tmp_path / "big.pt", state)
    assert main(["export", str(big), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "export with --dtype fp32" in _one_line_error(capsys)


# ------------------------------------------------------------------------------------ 3. hostile images


@pytest.fixture()
def bombs(tmp_path):
    huge = tmp_path / "huge.png"  # beyond Pillow's own limit: it raises DecompressionBombError at open
    huge.write_bytes(_png_header(60000, 60000))
    big = tmp_path / "big.png"  # beyond our cap only: 144 MP
    big.write_bytes(_png_header(12000, 12000))
    return huge, big


def test_the_pixel_cap_refuses_images_before_decoding(bombs, run, tmp_path, capsys):
    huge, big = bombs
    for path in (huge, big):
        for read in (load_image, load_mask):
            with pytest.raises(DataError, match="the limit is 70,000,000"):
                read(path)
        with pytest.raises(DataError, match="pixels; the limit"):
            inpaint(run, path, np.zeros((1, 1), bool))
        out = str(tmp_path / "o.png")
        assert main(["inpaint", str(path), "--checkpoint", str(run), "--center", "-o", out]) == 2
        assert "CONTEXT_ENCODER_MAX_PIXELS" in _one_line_error(capsys)
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's own warning, beyond its 89 MP
        lazy = Image.open(big)  # a PIL image not yet decoded is held to the cap too
    with pytest.raises(DataError, match="144,000,000 pixels"):
        inpaint(run, lazy, np.zeros((12000, 12000), bool))


def test_the_pixel_cap_follows_the_environment(tmp_path, monkeypatch):
    path = _photo(tmp_path / "p.png", 40, 50)
    monkeypatch.setenv("CONTEXT_ENCODER_MAX_PIXELS", "1999")
    assert max_pixels() == 1999
    with pytest.raises(DataError, match="50x40 = 2,000 pixels; the limit is 1,999"):
        load_image(path)
    with pytest.raises(DataError, match="the limit is 1,999"):
        mask_array(np.zeros((40, 50), bool))
    monkeypatch.setenv("CONTEXT_ENCODER_MAX_PIXELS", "2000")
    assert load_image(path).size == (50, 40)
    monkeypatch.setenv("CONTEXT_ENCODER_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="must be a positive whole number"):
        load_image(path)


def test_oversized_and_truncated_files_in_data_folders_are_skipped_and_counted(bombs, tmp_path, caplog):
    folder = bombs[0].parent
    _photo(folder / "good.png")
    jpeg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(jpeg, "JPEG")
    (folder / "cut.jpg").write_bytes(jpeg.getvalue()[:-20])
    paths = readable_images(folder)
    assert sorted(p.name for p in paths) == ["cut.jpg", "good.png"]  # the header of cut.jpg is fine
    assert "skipped 2 unreadable image file(s)" in caplog.text
    ds = ImageDataset(paths, 32, 32)
    assert ds[0].shape == (3, 32, 32) and ds.failures == 1  # cut.jpg: skipped when decoded, counted


def test_truncated_jpegs_are_errors(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    rng = np.random.default_rng(0)
    for progressive in (False, True):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(buf, "JPEG", progressive=progressive)
        data = buf.getvalue()
        path = tmp_path / "cut.jpg"
        for n in range(0, len(data), 7):  # every 7th prefix, down to the last byte
            path.write_bytes(data[:n])
            with pytest.raises(DataError):
                load_image(path)
        path.write_bytes(data[:-1])
        with pytest.raises(DataError, match="truncated"):
            load_image(path)


def test_a_truncated_image_is_a_cli_error(run, tmp_path, capsys):
    buf = io.BytesIO()
    Image.open(_photo(tmp_path / "src.png")).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:-20])
    out = tmp_path / "o.png"
    assert main(["inpaint", str(tmp_path / "cut.jpg"), "--checkpoint", str(run), "--center", "-o", str(out)]) == 2
    assert "image file is truncated" in _one_line_error(capsys) and not out.exists()


# ------------------------------------------------------------------------ 4. other tracebacks and surprises


def _safetensors(header: dict, data: bytes = b"\0" * 16) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}, "`-1`"),
        ({"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}, '"4"'),
        ({"w": {"dtype": "F32", "shape": [4.5], "data_offsets": [0, 16]}}, "4.5"),
        ({"w": {"dtype": "X9", "shape": [4], "data_offsets": [0, 16]}}, "X9"),
        ({"w": {"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}}, ""),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0]}}, ""),
        ({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 16]}}, "shape"),
        ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, ""),
        ({"w": [1, 2]}, "`1`"),
    ],
)
def test_malformed_safetensors_tensors(tmp_path, header, message):
    """Each malformed header is one line naming the file and, where there is one, the offending value."""
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors(header))
    for read in (load_file, metadata):
        with pytest.raises(CheckpointError, match=f"^corrupt weights file {re.escape(str(path))}: .*{message}") as err:
            read(path)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"config": 5}, "corrupt weights file .*`5`"),
        ("a string", "corrupt weights file .*a string"),
        ({"config": "{not json"}, "'config' is not valid JSON"),
        ({"config": '"a string"'}, "has no context-encoder config"),
        ({"config": "{}", "inference": "[1]"}, "'inference' is not a JSON object"),
    ],
)
def test_bad_safetensors_metadata(tmp_path, meta, message):
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors({"__metadata__": meta, "w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}))
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_checkpoints_without_a_config_or_needing_pickle(tmp_path, capsys):
    import argparse

    torch.save({"format": "context-encoder/1", "generator": {"w": torch.zeros(1)}}, tmp_path / "noconfig.pt")
    torch.save({"format": "context-encoder/1", "x": argparse.Namespace()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="holds no config"):
        load_model(tmp_path / "noconfig.pt")
    photo = str(_photo(tmp_path / "p.png"))
    assert main(["inpaint", photo, "--checkpoint", str(tmp_path / "pickled.pt"), "-o", str(tmp_path / "o.png")]) == 2
    line = _one_line_error(capsys)
    assert (
        line
        == f"error: {tmp_path / 'pickled.pt'} is not a plain checkpoint (it needs pickle, which is refused for safety)"
    )


def test_resuming_from_a_damaged_checkpoint(run, tmp_path, capsys):
    state = load_checkpoint(run)
    del state["path"], state["format"], state["opt_g"]
    save_checkpoint(tmp_path / "noopt.pt", state)
    args = ["-q", "--set", "train.steps=6", "--out", str(tmp_path / "r")]
    assert main(["train", "--resume", str(tmp_path / "noopt.pt"), *args]) == 2
    assert "cannot resume from" in (line := _one_line_error(capsys)) and "it has no 'opt_g'" in line
    state = load_checkpoint(run)
    del state["path"], state["format"]
    state["discriminator"] = {k: v * float("nan") for k, v in state["discriminator"].items()}
    save_checkpoint(tmp_path / "nan.pt", state)
    assert main(["train", "--resume", str(tmp_path / "nan.pt"), *args]) == 2
    assert "(discriminator): " in (line := _one_line_error(capsys)) and "hold NaN or infinite values" in line


def test_export_info_file_problems(run, tmp_path, capsys):
    out = str(tmp_path / "m.safetensors")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "reserved.json").write_text('{"config": {}}')
    cases = {"missing.json": "not found", "bad.json": "not valid JSON", "list.json": "must hold a JSON object"}
    cases["reserved.json"] = "may not set config"
    for name, message in cases.items():
        assert main(["export", str(run), "--out", out, "--info", str(tmp_path / name)]) == 2
        assert message in _one_line_error(capsys)
    assert main(["export", str(run), "--out", str(tmp_path / "m.bin")]) == 2
    assert "use one of: .safetensors" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["evaluate", "--data", ".", "--size", "32", "--baselines", "mean", "--limit=-3"],
            "--limit must be a positive",
        ),
        (
            ["evaluate", "--data", ".", "--size", "32", "--baselines", "mean", "--limit", "0"],
            "--limit must be a positive",
        ),
        (["inpaint", "--batch", "no-such-folder", "--center", "-o", "out"], "--batch folder not found"),
        (["serve", "--workers", "0"], "--workers must be a positive number"),
        (["serve", "--port", "99999"], "--port must be a port number from 1 to 65535"),
        (
            ["probe", "--init", "random", "--config", "tiny", "--data", ".", "--seeds", "0"],
            "--seeds must be a positive",
        ),
    ],
)
def test_argument_checks(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert message in _one_line_error(capsys)


def test_a_one_pixel_high_image_is_filled(run, tmp_path):
    src = _photo(tmp_path / "thin.png", h=1, w=50)
    out = tmp_path / "o.png"
    assert main(["inpaint", str(src), "--checkpoint", str(run), "--center", "-o", str(out)]) == 0
    assert Image.open(out).size == (50, 1)
    assert mask_array(torch.ones(1, 1, 1, 50)).shape == (1, 50)
    assert mask_array(np.ones((1, 50, 3), np.uint8)).shape == (1, 50)


def test_alpha_channel_masks(tmp_path):
    black_strokes = np.zeros((20, 30, 4), np.uint8)  # black paint on transparency: the alpha is the mask
    black_strokes[5:10, 5:15, 3] = 255
    white_on_clear = np.full((20, 30, 4), 255, np.uint8)  # white everywhere, painted only in the box
    white_on_clear[..., 3] = 0
    white_on_clear[5:10, 5:15, 3] = 255
    opaque = np.zeros((20, 30, 4), np.uint8)  # classic opaque mask: the colours decide, as before
    opaque[..., 3] = 255
    opaque[5:10, 5:15, :3] = 255
    expected = np.zeros((20, 30), bool)
    expected[5:10, 5:15] = True
    for arr in (black_strokes, white_on_clear, opaque):
        Image.fromarray(arr, "RGBA").save(tmp_path / "m.png")
        assert (load_mask(tmp_path / "m.png")[0, 0].numpy() == expected).all()
        assert (mask_array(Image.fromarray(arr, "RGBA")) == expected).all()
        assert (mask_array(arr) == expected).all()
    la = np.stack([np.zeros((20, 30), np.uint8), black_strokes[..., 3]], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert (load_mask(tmp_path / "la.png")[0, 0].numpy() == expected).all()
    assert not mask_array(np.zeros((20, 30, 4), np.uint8)).any()  # nothing painted: no hole


# ---------------------------------------------------------------------------------------------- fuzzing

FUZZ_EXAMPLES = {
    "images": 200,
    "weights": 100,
}  # 300 cases in all, about 4 s on one core; stated in docs/reliability.md


def _fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases on every run and machine
        database=None,  # no .hypothesis folder in the checkout
        suppress_health_check=[HealthCheck.too_slow],
    )


def _valid_images() -> list[bytes]:
    """Small valid files in the formats and modes photos and masks come in."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65535, (12, 16), dtype=np.uint16))
    cases = [("PNG", rgb, {}), ("JPEG", rgb, {}), ("JPEG", rgb, {"progressive": True}), ("GIF", rgb, {})]
    cases += [("BMP", rgb, {}), ("TIFF", rgb, {}), ("WEBP", rgb, {}), ("PPM", rgb, {}), ("TGA", rgb, {})]
    cases += [("PNG", rgb.convert("RGBA"), {}), ("PNG", rgb.convert("LA"), {}), ("PNG", grey16, {})]
    cases += [("PNG", rgb.convert("P"), {"transparency": 0}), ("ICO", rgb, {})]
    files = []
    for fmt, img, options in cases:
        buf = io.BytesIO()
        img.save(buf, fmt, **options)
        files.append(buf.getvalue())
    return files


VALID_IMAGES = _valid_images()


@st.composite
def mutated(draw, files: list[bytes]) -> bytes:
    """A valid file with a few bytes overwritten, a slice cut out or the end cut off."""
    data = bytearray(draw(st.sampled_from(files)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "truncate"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            del data[at:]
    return bytes(data)


def _reads_or_refuses(read, data: bytes, folder: Path, name: str) -> None:
    """`read` the bytes as a file: it loads, or raises one of our errors with a one-line message."""
    path = folder / name
    path.write_bytes(data)
    with mock.patch.dict(os.environ, {"CONTEXT_ENCODER_MAX_PIXELS": "1000000"}):  # keep each decode small
        try:
            read(path)
        except ContextEncoderError as exc:
            assert "\n" not in str(exc)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@_fuzz(FUZZ_EXAMPLES["images"])
@given(data=st.one_of(st.binary(max_size=512), mutated(VALID_IMAGES)))
def test_fuzz_image_and_mask_readers(fuzz_dir, data):
    _reads_or_refuses(load_image, data, fuzz_dir, "x.png")
    _reads_or_refuses(load_mask, data, fuzz_dir, "x.png")


def _valid_weights() -> bytes:
    a, b = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), torch.arange(5)
    header = {
        "__metadata__": {"k": '"v"', "config": "{}"},
        "a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
        "b": {"dtype": "I64", "shape": [5], "data_offsets": [48, 88]},
    }
    return _safetensors(header, a.numpy().tobytes() + b.numpy().tobytes())


VALID_WEIGHTS = _valid_weights()
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@_fuzz(FUZZ_EXAMPLES["weights"])
@given(data=st.one_of(st.binary(max_size=256), mutated([VALID_WEIGHTS]), st.dictionaries(st.text(max_size=4), JSON)))
def test_fuzz_safetensors_readers(fuzz_dir, data):
    if isinstance(data, dict):  # any JSON header in front of some bytes
        data = _safetensors(data, b"\0" * 88)
    for read in (load_file, metadata, read_metadata):
        _reads_or_refuses(read, data, fuzz_dir, "w.safetensors")
