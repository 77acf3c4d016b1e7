import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.cli import main
from context_encoder.config import ProbeSettings, apply_overrides, load_config
from context_encoder.errors import CheckpointError, ConfigError, DataError
from context_encoder.features import load_encoder, pooled_features, probe_once, run_probe
from context_encoder.labelled import load_labelled, probe_split
from context_encoder.logistic import accuracy_of, fit_logistic, select_linear
from context_encoder.models import WholeImageEncoder, build_models
from context_encoder.neighbours import figure_size, nearest, neighbour_figure

COLOURS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
FAST = ProbeSettings(linear_epochs=20, finetune_epochs=3, lr_ratios=(0.1, 1.0))


def short_finetune(epochs: int) -> ProbeSettings:
    return ProbeSettings(finetune_epochs=epochs, lr_ratios=(1.0,))


def _write_set(root, n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
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


def test_linear_probe_well_above_chance_every_layer_and_frozen(labelled):
    result = run_probe(labelled, config="tiny", seeds=2, settings=FAST)
    assert result["mean"] > 0.8  # chance is 1/3
    assert len(result["accuracy"]) == 2 and result["seeds"][0]["test_images"] == 18
    assert list(result["layers"]) == ["conv1", "conv2", "conv3"] and len(result["best_layers"]) == 2
    for seed in result["seeds"]:
        assert seed["accuracy"] == seed["layers"][seed["best_layer"]]["accuracy"]
        assert all(layer["weight_decay"] in FAST.weight_decays for layer in seed["layers"].values())

    encoder, _ = load_encoder(None, "tiny")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    data = load_labelled(labelled, 32)
    probe_once(data, encoder, mode="linear", seed=0, settings=FAST)
    probe_once(data, encoder, mode="finetune", seed=0, settings=short_finetune(1))
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm statistics untouched: fine-tuning copies


def test_finetune_with_a_fraction_of_labels(labelled, tmp_path):
    result = run_probe(labelled, config="tiny", mode="finetune", labels_fraction=0.5, seeds=1, epochs=5, out=tmp_path)
    seed = result["seeds"][0]
    assert seed["fit_images"] == 18 and seed["val_images"] == 3 and (tmp_path / "probe.json").is_file()
    assert seed["lr_ratio"] in ProbeSettings().lr_ratios and 1 <= seed["epochs"] <= 5
    assert result["mean"] > 0.5


@pytest.mark.parametrize(
    "size, encoder, shapes",
    [
        (32, "dcgan", [(16, 16, 16), (32, 8, 8), (64, 4, 4)]),
        (64, "dcgan", [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)]),
        (227, "alexnet", [(96, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13), (256, 6, 6)]),
    ],
)
def test_every_conv_block_is_tapped_and_pooled(size, encoder, shapes):
    overrides = [f"model.image_size={size}", f"model.encoder={encoder}", "mask.kind=random-region", "loss.mode=l2"]
    cfg = apply_overrides(load_config("tiny"), overrides)
    gen, _ = build_models(cfg.model, cfg.full_image)
    enc = WholeImageEncoder(gen)
    x = torch.rand(2, 3, size, size)
    blocks = enc.blocks(x * 2 - 1)
    assert [b.shape[1:] for b in blocks] == shapes
    torch.testing.assert_close(blocks[-1], enc(x * 2 - 1))  # the last block is the encoder's output
    images = (x * 255).round().to(torch.uint8)
    for grid in (2, 3):
        feats = pooled_features(enc, images, grid)
        assert list(feats) == [f"conv{i + 1}" for i in range(len(shapes))]
        assert [f.shape for f in feats.values()] == [(2, c * grid * grid) for c, _, _ in shapes]


def test_validation_split_is_balanced_disjoint_and_seeded(labelled):
    labels = torch.arange(300) % 3
    split = probe_split(labels, seed=0, val_fraction=0.1, labels_fraction=0.1)
    fit, val = set(split.fit.tolist()), set(split.val.tolist())
    assert not fit & val
    assert [int((labels[split.val] == c).sum()) for c in range(3)] == [10, 10, 10]
    assert [int((labels[split.fit] == c).sum()) for c in range(3)] == [10, 10, 10]  # 10% of each class's images
    again = probe_split(labels, seed=0, val_fraction=0.1, labels_fraction=0.1)
    assert torch.equal(again.val, split.val) and torch.equal(again.fit, split.fit)
    assert not torch.equal(probe_split(labels, seed=1, val_fraction=0.1).val, split.val)
    everything = probe_split(labels, seed=0, val_fraction=0.1)  # all labels: every image outside validation
    assert len(everything.fit) == 270 and not set(everything.fit.tolist()) & set(everything.val.tolist())

    data = load_labelled(labelled, 32)
    split = probe_split(data.train_y, seed=3, val_fraction=0.25, labels_fraction=0.5)
    val_paths = {data.train_paths[i] for i in split.val.tolist()}
    fit_paths = {data.train_paths[i] for i in split.fit.tolist()}
    assert val_paths and fit_paths and not val_paths & fit_paths
    assert not val_paths & set(data.test_paths) and all(p.parent.parent.name == "train" for p in val_paths)
    with pytest.raises(DataError, match="needs 2"):
        probe_split(torch.tensor([0, 1, 1]), seed=0, val_fraction=0.1)


def test_choices_never_read_the_test_split(labelled, tmp_path):
    """Same training images, different test images and labels: every choice and validation score is the same."""
    other = tmp_path / "other"
    shutil.copytree(labelled / "train", other / "train")
    _write_set(tmp_path / "scratch", n_train=1, n_test=6, seed=7)
    shutil.copytree(tmp_path / "scratch" / "test", other / "test")
    for name in ("red", "green"):  # swap two classes' test images: test labels now disagree with the pixels
        (other / "test" / name).rename(other / "test" / f"{name}-tmp")
    (other / "test" / "red-tmp").rename(other / "test" / "green")
    (other / "test" / "green-tmp").rename(other / "test" / "red")

    def choices(result: dict) -> list:
        keep = ("val_accuracy", "lr_ratio", "epochs", "best_layer", "fit_images", "val_images")
        out = [{k: r[k] for k in keep if k in r} for r in result["seeds"]]
        for r, o in zip(result["seeds"], out):
            if "layers" in r:
                o["layers"] = {n: (v["weight_decay"], v["val_accuracy"]) for n, v in r["layers"].items()}
        return out

    for mode, settings in (("linear", FAST), ("finetune", ProbeSettings(finetune_epochs=2, lr_ratios=(0.1, 1.0)))):
        a = run_probe(labelled, config="tiny", mode=mode, seeds=2, settings=settings)
        b = run_probe(other, config="tiny", mode=mode, seeds=2, settings=settings)
        assert choices(a) == choices(b), mode
        assert a["accuracy"] != b["accuracy"]  # the test split itself did change


def test_linear_classifier_separates_a_separable_set():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=gen) * 3

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 4
        return centres[y] + torch.randn(n, 32, generator=gen), y

    (fx, fy), (vx, vy), (tx, ty) = sample(200), sample(40), sample(400)
    head = select_linear(fx, fy, vx, vy, classes=4, weight_decays=(1e-4, 1e-2, 1.0), epochs=30, seed=0)
    assert head.val_accuracy > 0.95 and accuracy_of(head, tx, ty) > 0.95
    weights, biases = fit_logistic((fx - fx.mean(0)) / fx.std(0), fy, 4, (0.0, 1.0), epochs=30, seed=0)
    assert weights.shape == (2, 32, 4) and biases.shape == (2, 4)
    assert weights[1].norm() < weights[0].norm()  # the weight decay shrinks the weights


def test_nearest_neighbour_figure():
    database = torch.eye(6)
    assert nearest(database[[4, 1]] + 0.01, database, 2)[:, 0].tolist() == [4, 1]
    images = (torch.rand(10, 3, 32, 32) * 255).to(torch.uint8)
    feats = {"context encoder": (torch.randn(3, 8), torch.randn(10, 8)), "pixels": (images[:3], images)}
    labels = (torch.tensor([0, 1, 2]), torch.arange(10) % 3)
    img = neighbour_figure(images[:3], images, feats, k=4, tile=40, labels=labels)
    # 120 px of row names + 5 tiles of 40 px + 2 px gaps; a caption row, 3 queries x 2 rows, 8 px between queries
    assert img.size == figure_size(3, 2, 4, 40) == (120 + 5 * 42 + 2, 16 + 6 * 42 + 2 * 8 + 2) and img.mode == "RGB"
    # under raw pixels a query is its own nearest neighbour: the first neighbour tile repeats the query tile
    arr = np.asarray(img)
    top, query_left, first_left = 16 + 42, 122, 122 + 42  # the "pixels" row of the first query
    inner = slice(top + 5, top + 35)
    assert np.array_equal(arr[inner, query_left + 5 : query_left + 35], arr[inner, first_left + 5 : first_left + 35])


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


def test_probe_command(labelled, tmp_path, capsys):
    args = ["probe", "--init", "random", "--config", "tiny", "--data", str(labelled), "--seeds", "1"]
    assert main([*args, "--epochs", "5", "--grid", "2", "--weight-decays", "0.01", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "conv1:" in out and "conv3:" in out and "best layer on validation" in out
    assert main([*args, "--mode", "finetune", "--epochs", "1", "--lr-ratios", "0.1", "--labels-fraction", "0.5"]) == 0
    assert "ratio 0.1 epoch 1" in capsys.readouterr().out
    assert main([*args, "--val-fraction", "1.5"]) == 2
    assert "validation fraction" in capsys.readouterr().err


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
    with pytest.raises(ConfigError, match="learning-rate ratios"):
        ProbeSettings(lr_ratios=(0.0,))
    assert main(["probe", "--data", str(labelled)]) == 1
    assert "exactly one of --checkpoint" in capsys.readouterr().err
