import json

import pytest
import torch

from context_encoder import pretrained
from context_encoder.cli import main
from context_encoder.errors import CheckpointError, InputError
from context_encoder.loading import load_model
from context_encoder.safetensors_io import load_file, metadata, save_file

from .conftest import train_tiny


def test_safetensors_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.randn(2).half(), "d": torch.zeros(0)}
    path = save_file(tensors, tmp_path / "x.safetensors", {"k": "v"})
    back = load_file(path)
    assert set(back) == set(tensors) and metadata(path) == {"k": "v"}
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    assert header["a"]["dtype"] == "F32" and header["a"]["shape"] == [3, 4]  # the public format


@pytest.fixture(scope="module")
def exported(tmp_path_factory, photo_dir):
    root = tmp_path_factory.mktemp("pre")
    run = root / "run"
    train_tiny(run, photo_dir, "train.steps=2", "train.ema_decay=0.9")
    info = root / "info.json"
    metrics = {"photos": {"psnr": 20.0, "best_baseline": "telea", "baseline_psnr": 19.0}}
    info.write_text(json.dumps({"data": "synthetic", "metrics": metrics}))
    weights = root / "weights"
    assert main(["export", str(run), "--out", str(weights / "tiny-test.safetensors"), "--info", str(info)]) == 0
    return run, weights


def test_export_then_load_matches_the_checkpoint(exported, monkeypatch, capsys):
    run, weights = exported
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    gen = load_model("tiny-test").gen
    ref = load_model(run).gen  # EMA weights, fp32
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(gen(x), ref(x), atol=2e-3, rtol=0)  # stored in fp16
    listing = pretrained.list_pretrained()
    assert listing["tiny-test"]["steps"] == 2 and listing["tiny-test"]["ema"] is True
    assert listing["tiny-test"]["data"] == "synthetic"
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "tiny-test" in listed and "photos 20.00 dB (best baseline telea 19.00)" in listed
    with pytest.raises(InputError, match="no shipped model or file named 'nope' \\(shipped models: tiny-test\\)"):
        load_model("nope")


def test_corrupt_weights_are_refused(exported, tmp_path):
    _, weights = exported
    good = (weights / "tiny-test.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[: len(good) // 2])  # truncated data
    with pytest.raises(CheckpointError):
        load_model(bad)
    bad.write_bytes(b"\xff" * 16)
    with pytest.raises(CheckpointError):
        load_model(bad)
    n = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [1] + header[name]["shape"]  # a tensor that does not fit the model
    raw = json.dumps(header).encode()
    bad.write_bytes(len(raw).to_bytes(8, "little") + raw + good[8 + n :])
    with pytest.raises(CheckpointError):
        load_model(bad)


def test_demo_with_a_shipped_model(exported, photo_dir, monkeypatch, tmp_path, capsys):
    pytest.importorskip("skimage")
    pytest.importorskip("cv2")
    import shutil

    _, weights = exported
    shipped = tmp_path / "weights"
    shipped.mkdir()
    from context_encoder import demo

    shutil.copy(weights / "tiny-test.safetensors", shipped / "scenes128-center.safetensors")
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", shipped)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert out.count("scenes128-center") == 4 and "Telea PSNR" in out
    assert (tmp_path / "demo" / "demo_model_size.png").is_file() and not (tmp_path / "demo" / "demo.png").exists()
    shutil.copy(weights / "tiny-test.safetensors", shipped / "scenes-region.safetensors")  # a centre model, misnamed
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert not (tmp_path / "demo" / "demo.png").exists()  # the full-resolution part wants a free-form model
    capsys.readouterr()
    region = train_tiny(tmp_path / "region", photo_dir, "train.steps=2", "mask.kind=random-region")
    assert main(["export", str(region), "--out", str(shipped / "scenes128-region.safetensors")]) == 0
    monkeypatch.setattr(demo, "PHOTOS", ("chelsea",))  # the smallest photo: the full-resolution part is slower
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "+ photo texture" in out and "Telea" in out and (tmp_path / "demo" / "demo.png").is_file()
    assert "filled by scenes128-region" in out and out.count("scenes128-region free-form blobs") == 1
    assert out.count("centre square") == 1  # one model per kind of hole, each made for it
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "none")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 1
    assert "no shipped models" in capsys.readouterr().err
