import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.cli import main
from context_encoder.config import apply_overrides, load_config
from context_encoder.errors import CheckpointError, DataError
from context_encoder.features import Probe, linear_probe, load_encoder, run_probe
from context_encoder.models import build_models

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def _write_set(root, n_train=12, n_test=6):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for name, rgb in COLOURS.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(np.array(rgb) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return _write_set(tmp_path_factory.mktemp("labelled"))


def test_linear_probe_well_above_chance_and_frozen(labelled):
    result = run_probe(labelled, config="tiny", seeds=2, epochs=30)
    assert result["mean"] > 0.8  # chance is 1/3
    assert len(result["accuracy"]) == 2 and result["test_images"] == 18

    encoder, _ = load_encoder(None, "tiny")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    probe = Probe(encoder, 64, 3)
    x, y = torch.rand(12, 3, 32, 32), torch.arange(12) % 3
    linear_probe(probe, x, y, x, y, seed=0, epochs=3)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics untouched


def test_finetune_with_a_fraction_of_labels(labelled, tmp_path):
    result = run_probe(labelled, config="tiny", mode="finetune", labels_fraction=0.5, seeds=1, epochs=5, out=tmp_path)
    assert result["train_images"] == 18 and (tmp_path / "probe.json").is_file()
    assert result["mean"] > 0.5


@pytest.mark.parametrize(
    "encoder, size, shape",
    [("dcgan", 32, (64, 4, 4)), ("alexnet", 227, (256, 6, 6)), ("alexnet-nopool", 227, (256, 6, 6))],
)
def test_feature_shapes_and_gradients(encoder, size, shape):
    overrides = [f"model.encoder={encoder}", f"model.image_size={size}"]
    if encoder != "dcgan":
        overrides += ["mask.kind=random-region", "loss.mode=l2"]
    cfg = apply_overrides(load_config("tiny"), overrides)
    g, _ = build_models(cfg.model, cfg.full_image)
    x = torch.randn(2, 3, size, size)
    assert g.encode(x).shape == (2, *shape)
    out = g(x)
    assert out.shape == (2, 3, size, size) if cfg.full_image else (2, 3, size // 2, size // 2)
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


def test_alexnet_short_run_and_autoencoder(labelled, tmp_path):
    common = ["--data", str(labelled / "train"), "-q", "--set", "train.steps=2", "--set", "train.batch_size=4"]
    alex = [
        "--set",
        "model.image_size=227",
        "--set",
        "model.encoder=alexnet",
        "--set",
        "mask.kind=random-region",
        "--set",
        "loss.mode=l2",
        "--set",
        "data.load_size=0",
    ]
    assert main(["train", "--config", "tiny", "--out", str(tmp_path / "alex"), *common, *alex]) == 0
    ae = ["--set", "mask.kind=none", "--set", "loss.mode=l2"]
    assert main(["train", "--config", "tiny", "--out", str(tmp_path / "ae"), *common, *ae]) == 0
    result = run_probe(labelled, checkpoint=tmp_path / "ae", seeds=1, epochs=5)
    assert result["pretrain_seconds"] is not None and result["mean"] > 0.4


def test_bad_input(labelled, tmp_path, capsys):
    flat = tmp_path / "flat"
    (flat / "train").mkdir(parents=True)
    (flat / "test").mkdir()
    Image.new("RGB", (32, 32)).save(flat / "train" / "a.png")
    with pytest.raises(DataError, match="no class sub-folders"):
        run_probe(flat, config="tiny")
    extra = _write_set(tmp_path / "extra", 2, 2)
    (extra / "test" / "purple").mkdir()
    Image.new("RGB", (32, 32)).save(extra / "test" / "purple" / "x.png")
    with pytest.raises(DataError, match="class 'purple' is in test/ but not in train/"):
        run_probe(extra, config="tiny")
    with pytest.raises(DataError, match="has no train/ folder"):
        run_probe(tmp_path / "nowhere", config="tiny")
    torch.save(
        {"format": "context-encoder/1", "config": load_config("tiny").to_dict(), "step": 0}, tmp_path / "empty.pt"
    )
    with pytest.raises(CheckpointError, match="holds no generator"):
        run_probe(labelled, checkpoint=tmp_path / "empty.pt")
    assert main(["probe", "--data", str(labelled)]) == 1
    assert "exactly one of --checkpoint" in capsys.readouterr().err
