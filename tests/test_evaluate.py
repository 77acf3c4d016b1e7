import json
import logging
import math

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder import baselines as bl
from context_encoder.cli import main
from context_encoder.config import MaskConfig
from context_encoder.errors import ContextEncoderError
from context_encoder.masks import center_region
from context_encoder.metrics import l1_error, l2_error, psnr, ssim, ssim_map
from context_encoder.protocol import seeded_masks, spread

from .conftest import train_tiny


def _pair():
    target = torch.zeros(2, 3, 4, 4)
    pred = target.clone()
    pred[0, :, 0, 0] = 0.5  # image 0: one region pixel off by 0.5 in all channels
    pred[1, 0, 3, 3] = 1.0  # image 1: off by 1.0 outside the region (must not count)
    region = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    region[:, :, :2, :2] = True  # 4 pixels per image
    return pred, target, region


def test_l1_l2_psnr_hand_worked():
    pred, target, region = _pair()
    torch.testing.assert_close(l1_error(pred, target, region), torch.tensor([0.5 / 4, 0.0]))
    torch.testing.assert_close(l2_error(pred, target, region), torch.tensor([0.25 / 4, 0.0]))
    p = psnr(pred, target, region)
    assert math.isclose(p[0].item(), 10 * math.log10(16), rel_tol=1e-6)  # mse 1/16 -> 12.04 dB
    assert p[1].item() == pytest.approx(100.0)  # perfect: capped


def test_psnr_is_averaged_per_image_not_pooled():
    target = torch.zeros(2, 3, 2, 2)
    pred = target.clone()
    pred[0] += 0.1  # mse 0.01 -> 20 dB
    pred[1] += 0.01  # mse 1e-4 -> 40 dB
    region = torch.ones(2, 1, 2, 2, dtype=torch.bool)
    assert psnr(pred, target, region).mean().item() == pytest.approx(30.0, rel=1e-5)  # pooled mse would give 23 dB


def test_ssim_hand_worked_and_against_scikit_image():
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)  # constant images: luminance term only
    torch.testing.assert_close(
        ssim_map(a.double(), b.double()), torch.full((1, 1, 16, 16), expected, dtype=torch.double)
    )
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    region = torch.ones(1, 1, 32, 32, dtype=torch.bool)
    assert ssim(x, x, region).item() == pytest.approx(1.0)
    metrics = pytest.importorskip("skimage.metrics")
    y = (x + 0.1 * torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    ref = metrics.structural_similarity(
        x[0].permute(1, 2, 0).double().numpy(),
        y[0].permute(1, 2, 0).double().numpy(),
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(y, x, region).item() == pytest.approx(ref, abs=0.02)  # borders are handled differently


def test_center_region_and_seeded_masks():
    r = center_region(32, 2)
    assert r.sum() == 2 * 16 * 16 and r[0, 0, 8, 8] and not r[0, 0, 7, 8]
    cfg = MaskConfig(kind="random-region")
    a, b = seeded_masks(cfg, 5, 32, seed=3), seeded_masks(cfg, 3, 32, seed=3)
    assert torch.equal(a[:3], b)  # image i's mask does not depend on how many images there are
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], None) == [1, 2]


@pytest.mark.parametrize("name", ["mean", "telea", "navier-stokes", "biharmonic", "harmonic", "patchmatch", "fsr"])
def test_baselines_keep_known_pixels_and_fill_smoothly(name):
    needs = {"telea": "cv2", "navier-stokes": "cv2", "fsr": "cv2", "biharmonic": "skimage", "patchmatch": "patchmatch"}
    if name in needs:
        pytest.importorskip(needs[name])
    if name == "fsr" and not hasattr(pytest.importorskip("cv2"), "xphoto"):
        pytest.skip("OpenCV without its contrib modules")
    ramp = torch.linspace(0, 1, 32)
    images = torch.stack([ramp[None, :].expand(32, 32)] * 3)[None]  # horizontal ramp
    masks = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    masks[..., 12:20, 12:20] = True
    out = bl.build_baselines([name])[name](images, masks)
    assert torch.equal(out[~masks.expand_as(out)], images[~masks.expand_as(images)])
    err = (out - images)[masks.expand_as(out)].abs().mean().item()
    assert err < (0.06 if name != "mean" else 0.3)  # a ramp is easy for smooth interpolators


def test_nn_hog_retrieves_the_matching_context():
    pytest.importorskip("skimage")
    g = torch.Generator().manual_seed(0)
    database = torch.nn.functional.interpolate(torch.rand(6, 3, 4, 4, generator=g), size=32, mode="bilinear")
    masks = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    masks[..., 8:24, 8:24] = True
    query = database[4:5].clone()
    query[masks.expand_as(query)] = 0.5  # the hole's content is unknown to the method
    out = bl.HogNearestNeighbour(database)(query, masks)
    torch.testing.assert_close(out, database[4:5])


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    real = bl.importlib.import_module

    def fake(name, *a):
        if name.startswith("cv2"):
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(bl.importlib, "import_module", fake)
    with pytest.raises(ContextEncoderError, match=r"pip install 'context-encoder\[baselines\]'"):
        bl.build_baselines(["telea"])
    with pytest.raises(ContextEncoderError, match="unknown baseline 'magic'"):
        bl.parse_baselines("telea,magic")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, photo_dir):
    return train_tiny(tmp_path_factory.mktemp("eval") / "run", photo_dir, "train.steps=2")


def test_evaluate_command_writes_three_files(checkpoint, photo_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(photo_dir),
            "--baselines",
            "mean",
            "--limit",
            "10",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| context-encoder |" in printed and "| mean |" in printed and "(center)" in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["meta"]["images"] == 10 and set(data["results"]) == {"context-encoder", "mean"}
    for method in data["results"].values():
        assert set(method) == {"hole", "center"} and 0 < method["hole"]["l1"] < 1
        assert method["center"]["psnr"] > method["hole"]["psnr"]  # the ring is known, so easier
    assert (out / "metrics.md").read_text().startswith("# Inpainting evaluation")
    assert Image.open(out / "grid.png").size[0] > 4 * 96


def test_evaluate_bad_input(checkpoint, photo_dir, tmp_path, capsys, caplog):
    base = ["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "e")]
    assert main([*base, "--data", str(photo_dir), "--size", "64"]) == 2
    assert "differs from the model's image size 32" in capsys.readouterr().err
    assert main([*base, "--data", str(tmp_path)]) == 2
    assert "no readable images" in capsys.readouterr().err
    assert main([*base, "--data", str(photo_dir), "--mask", "random-block"]) == 2
    assert "fills the centre hole only" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(photo_dir), "--out", str(tmp_path / "e")]) == 2
    assert "pass --checkpoint or --size" in capsys.readouterr().err


def test_random_mask_model_warns_on_centre_masks(photo_dir, tmp_path, caplog):
    out = tmp_path / "run"
    train_tiny(out, photo_dir, "train.steps=1", "mask.kind=random-block")
    with caplog.at_level(logging.WARNING):
        rc = main(
            [
                "evaluate",
                "--checkpoint",
                str(out),
                "--data",
                str(photo_dir),
                "--mask",
                "center",
                "--limit",
                "4",
                "--out",
                str(tmp_path / "e"),
            ]
        )
    assert rc == 0 and "trained with random-block masks, evaluated with center masks" in caplog.text
    np.testing.assert_array_equal(
        sorted(json.loads((tmp_path / "e" / "metrics.json").read_text())["results"]), ["context-encoder"]
    )


def test_sharpness_ratio():
    from context_encoder.metrics import sharpness_ratio

    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    region = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    assert sharpness_ratio(x, x, region).item() == pytest.approx(1.0)
    flat = torch.full_like(x, 0.5)
    assert sharpness_ratio(flat, x, region).item() == 0.0
    assert sharpness_ratio(x * 2, x, region).item() == pytest.approx(2.0, rel=1e-5)


def test_evaluate_with_seam_blending(checkpoint, photo_dir, tmp_path):
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(checkpoint),
            "--data",
            str(photo_dir),
            "--limit",
            "4",
            "--blend",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    data = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert rc == 0 and data["meta"]["inference"] == {"blend": True, "flip_average": False, "refine": "none"}
    assert list(data["results"]) == ["context-encoder (blended)"]


def test_evaluate_as_inpaint_fills(checkpoint, photo_dir, tmp_path):
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(photo_dir), "--limit", "4"]
    assert main([*args, "--as-inpaint", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--blend", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["meta"]["inference"] == {"blend": True, "flip_average": True, "refine": "none"}
    [(name, scores)] = a["results"].items()
    assert name == "context-encoder (blended, flip-averaged)"
    assert scores["hole"]["psnr"] != b["results"]["context-encoder (blended)"]["hole"]["psnr"]  # a different fill


def test_score_with_extra_metrics():
    from context_encoder.metrics import METRICS, sharpness_ratio
    from context_encoder.protocol import score

    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(3, 1, 16, 16, dtype=torch.bool)
    masks[..., 4:12, 4:12] = True
    results, kept = score(
        {"mean": bl.mean_fill},
        images,
        masks,
        {"hole": masks},
        keep=[0, 2],
        metrics={**METRICS, "sharpness": sharpness_ratio},
    )
    assert set(results["mean"]["hole"]) == {"l1", "l2", "psnr", "ssim", "sharpness"}
    assert results["mean"]["hole"]["sharpness"] < 0.3 and kept["mean"].shape == (2, 3, 16, 16)  # flat fill
