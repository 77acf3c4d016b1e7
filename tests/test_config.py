import dataclasses
import json

import pytest

from context_encoder.cli import main
from context_encoder.config import Config, apply_overrides, config_from_dict, list_presets, load_config
from context_encoder.errors import ConfigError
from context_encoder.models import build_models

PRESETS = [
    "cifar10",
    "features_cifar",
    "features_cifar_autoencoder",
    "features_scenes",
    "features_scenes_autoencoder",
    "paper_center",
    "paper_random",
    "scenes64",
    "scenes_center",
    "scenes_region",
    "scenes128_center",
    "scenes128_center_fourier",
    "scenes128_region",
    "cifar10_center",
    "tiny",
]


def test_every_named_preset_is_committed_and_loads():
    assert sorted(PRESETS) == list_presets()
    for name in PRESETS:
        cfg = load_config(name)
        assert cfg.name == name
        build_models(dataclasses.replace(cfg.model, nef=4, ngf=4, ndf=4, bottleneck_dim=8), cfg.full_image)


@pytest.mark.parametrize("preset", ["features_cifar", "features_scenes"])
def test_feature_learning_presets_differ_from_their_autoencoder_only_in_the_mask(preset):
    ce, ae = load_config(preset), load_config(f"{preset}_autoencoder")
    assert ce.mask.kind == "random-region" and ae.mask.kind == "none" and ce.loss.mode == "l2"
    as_ae = dataclasses.replace(ce, mask=dataclasses.replace(ce.mask, kind="none"), name=ae.name)
    assert as_ae == ae  # same network, data, loss and budget
    assert ce.train.batch_size == 64 and ce.train.checkpoint_every == 500
    assert ce.train.steps >= (20_000 if ce.model.image_size == 32 else 5_000)


def test_presets_have_one_source():
    """The package reads its presets from the repository's configs/ (a link in a checkout, a copy in a wheel)."""
    from pathlib import Path

    from context_encoder.config import PRESET_DIR

    repo = Path(__file__).resolve().parents[1] / "configs"
    if not repo.is_dir():
        pytest.skip("not a source checkout")
    assert sorted(p.name for p in PRESET_DIR.glob("*.toml")) == sorted(p.name for p in repo.glob("*.toml"))
    for path in repo.glob("*.toml"):
        assert (PRESET_DIR / path.name).read_bytes() == path.read_bytes(), f"{path.name} drifted"


def test_paper_defaults_are_named_fields():
    cfg = load_config("paper_center")
    assert cfg.model.image_size == 128 and cfg.model.bottleneck == "fc" and cfg.model.bottleneck_dim == 4000
    assert cfg.mask.overlap == 4 and cfg.mask.fill_rgb == (117.0, 104.0, 123.0)
    assert (cfg.loss.lambda_rec, cfg.loss.lambda_adv, cfg.loss.overlap_weight) == (0.999, 0.001, 10.0)
    assert (cfg.train.lr, cfg.train.g_lr_mult, cfg.train.beta1, cfg.train.batch_size) == (2e-4, 10.0, 0.5, 64)
    assert load_config("paper_random").full_image and not cfg.full_image


def test_overrides_required_names_and_types():
    cfg = apply_overrides(
        load_config("tiny"),
        [
            "train.steps=7",
            "train.batch_size=3",
            "model.image_size=64",
            "model.bottleneck=fc",
            "loss.mode=l2",
            "mask.fill_rgb=[0, 0, 0]",
            "train.lr=1e-3",
        ],
    )
    assert (cfg.train.steps, cfg.train.batch_size, cfg.model.image_size) == (7, 3, 64)
    assert cfg.model.bottleneck == "fc" and cfg.loss.mode == "l2" and cfg.mask.fill_rgb == (0.0, 0.0, 0.0)
    assert cfg.train.lr == 1e-3 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=3", "unknown config key 'train.stepz'"),
        ("nope.steps=3", "unknown config key"),
        ("train.steps=3.5", "expected int"),
        ("train.steps=many", "expected int"),
        ("train.flip=1", "unknown config key"),
        ("data.flip=1", "expected bool"),
        ("model.image_size=48", "power of two"),
        ("model.image_size=16", "power of two"),
        ("mask.overlap=8", "leaves no hole"),
        ("model.bottleneck=conv", "model.bottleneck must be one of"),
        ("loss.mode=gan", "loss.mode must be one of"),
        ("data.load_size=16", "data.load_size"),
        ("data.load_size=-1", "data.load_size"),
        ("data.zoom=0.5", "data.zoom"),
        ("data.workers=many", "data.workers"),
        ("train.steps", "section.key=value"),
        ("train.lr=inf", "train.lr must be a finite number, got inf"),
        ("train.lr=nan", "train.lr must be a finite number, got nan"),
    ],
)
def test_bad_overrides_are_one_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(load_config("tiny"), [override])


def test_cli_config_error_is_one_line_and_exit_code_2(capsys):
    assert main(["config", "tiny", "--set", "train.stepz=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown config key") and "\n" not in err and "Traceback" not in err
    assert main(["train", "--config", "no_such_preset", "--data", "."]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe[train]\nsteps = 3\n", "not UTF-8 text (byte 0); TOML files are UTF-8"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "invalid TOML: nested too deeply"),
        (b"[train]\nsteps = \n", "invalid TOML"),
    ],
)
def test_unreadable_config_files_are_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_huge_bad_value_is_shown_cut_short(capsys):
    assert main(["config", "tiny", "--set", "train.steps=" + "[" * 3000 + "]" * 3000]) == 2
    err = capsys.readouterr().err.strip()
    assert "expected int, got '[[[" in err and err.endswith("...") and len(err) < 200


def test_config_round_trips_through_json():
    cfg = load_config("paper_random", ["train.steps=5"])
    again = config_from_dict(json.loads(cfg.to_json()))
    assert again == cfg and isinstance(again, Config)


def test_unknown_toml_key_is_an_error(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[model]\nimage_size = 32\ncolour = 1\n")
    with pytest.raises(ConfigError, match="model.colour"):
        load_config(p)
    p.write_text("[model\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)
