"""Exports outside the package's own format: ONNX (checked against PyTorch with onnxruntime) and torch.hub."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.checkpoint import checkpoint_config, generator_weights, load_checkpoint
from context_encoder.cli import main
from context_encoder.config import config_from_dict
from context_encoder.models import make_generator

from .conftest import train_tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "settings",
    [
        (),  # centre model, mean fill
        ("model.skip=true",),  # centre model with skip connections (the 128 px shipped model's layout)
        ('mask.kind="random-block"', 'mask.fill="harmonic"', "model.residual=true"),  # residual, whole image
    ],
    ids=["center", "center-skip", "residual-whole-image"],
)
def test_onnx_export_matches_pytorch(settings, tmp_path, photo_dir, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from context_encoder.pretrained import onnx_metadata

    run = train_tiny(tmp_path / "run", photo_dir, "train.steps=2", *settings)
    out = tmp_path / "model.onnx"
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left

    state = load_checkpoint(run)
    cfg = checkpoint_config(state)
    gen = make_generator(cfg.model, cfg.full_image)
    gen.load_state_dict(generator_weights(state)[0])
    gen.eval()
    s = cfg.model.image_size
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 3, s, s, generator=g) * 2 - 1  # batch 3: not the batch size traced at export
    mask = (torch.rand(3, 1, s, s, generator=g) > 0.7).float()
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    residual = cfg.model.residual
    assert names == (["image", "mask"] if residual else ["image"])
    feeds = {"image": image.numpy(), "mask": mask.numpy()} if residual else {"image": image.numpy()}
    (got,) = session.run(None, feeds)
    with torch.no_grad():
        want = gen(image, mask) if residual else gen(image)
    assert got.shape == tuple(want.shape)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=0, atol=1e-4)

    meta = onnx_metadata(out)
    assert config_from_dict(meta["config"]) == cfg
    assert meta["inference"] == {"blend": True, "flip_average": True, "refine": "none"}
    assert meta["steps"] == 2


def test_onnx_export_refuses_a_wrong_suffix(tmp_path, photo_dir, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["export", str(tmp_path / "missing"), "--format", "onnx", "--out", str(out)]) == 2
    assert ".onnx" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["cifar10_center", "scenes128_center", "scenes128_region"])
def test_torch_hub_loads_the_shipped_models_from_a_clone(entry):
    from context_encoder.inpaint import Inpainter
    from context_encoder.pretrained import shipped_names

    if entry.replace("_", "-") not in shipped_names():
        pytest.skip(f"{entry} is not installed")
    inpainter = torch.hub.load(str(REPO), entry, source="local", trust_repo=True)
    assert isinstance(inpainter, Inpainter) and not inpainter.gen.training
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    holes = np.zeros((48, 40), dtype=bool)
    holes[16:28, 12:26] = True
    filled = np.asarray(inpainter(Image.fromarray(image), holes))
    assert filled.shape == image.shape and np.array_equal(filled[~holes], image[~holes])  # known pixels kept


def test_onnx_export_from_a_weights_file_matches_its_generator(tmp_path, photo_dir, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from context_encoder.loading import load_model
    from context_encoder.pretrained import onnx_metadata, read_metadata

    run = train_tiny(tmp_path / "run", photo_dir, "train.steps=2")
    weights = tmp_path / "m.safetensors"
    assert main(["export", str(run), "--out", str(weights), "--dtype", "fp32"]) == 0
    out = tmp_path / "m.onnx"
    assert main(["export", str(weights), "--format", "onnx", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(out)
    gen = load_model(weights).gen
    s = load_model(weights).cfg.model.image_size
    image = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(1)) * 2 - 1
    (got,) = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": image.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), gen(image), rtol=0, atol=1e-4)
    assert onnx_metadata(out) == read_metadata(weights)
