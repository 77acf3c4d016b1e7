import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder import baselines as bl
from context_encoder import fullres as fr
from context_encoder.errors import ContextEncoderError
from context_encoder.masks import box_mask, stroke_mask
from context_encoder.metrics import ssim

from .conftest import smooth_image

SIZES = [(96, 128), (200, 150), (33, 50)]


@pytest.mark.parametrize("h,w", SIZES)
def test_stroke_masks_cover_the_drawn_fraction(h, w):
    covers = []
    for seed in range(12):
        m = stroke_mask(h, w, torch.Generator().manual_seed(seed))
        assert m.shape == (h, w) and m.dtype == torch.bool
        covers.append(m.float().mean().item())
        assert torch.equal(m, stroke_mask(h, w, torch.Generator().manual_seed(seed)))  # deterministic per seed
    assert all(0.05 <= c <= 0.15 for c in covers)  # never empty, never the whole image
    assert len(set(covers)) > 6  # seeds give different holes
    m = stroke_mask(h, w, torch.Generator().manual_seed(0), coverage=(0.3, 0.4))
    assert 0.3 <= m.float().mean() <= 0.4


@pytest.mark.parametrize("h,w", SIZES)
def test_box_masks_are_one_object_sized_rectangle(h, w):
    for seed in range(12):
        m = box_mask(h, w, torch.Generator().manual_seed(seed))
        assert torch.equal(m, box_mask(h, w, torch.Generator().manual_seed(seed)))
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        bh, bw = len(rows), len(cols)
        assert m.sum() == bh * bw and rows[-1] - rows[0] + 1 == bh and cols[-1] - cols[0] + 1 == bw  # one rectangle
        assert 0.10 <= m.float().mean() <= 0.25
    with pytest.raises(ValueError, match="area"):
        box_mask(h, w, torch.Generator(), area=(0.2, 1.0))


def test_draw_hole_depends_only_on_seed_and_index():
    a = fr.draw_hole("stroke", 64, 80, seed=3, index=5)
    assert np.array_equal(a, fr.draw_hole("stroke", 64, 80, seed=3, index=5))
    assert not np.array_equal(a, fr.draw_hole("stroke", 64, 80, seed=3, index=6))
    assert not np.array_equal(a, fr.draw_hole("stroke", 64, 80, seed=4, index=5))
    with pytest.raises(ContextEncoderError, match="unknown mask kind 'blob'"):
        fr.draw_hole("blob", 8, 8, 0, 0)


def test_grow_pads_grows_and_stays_inside():
    from context_encoder.geometry import grow_box

    assert grow_box((10, 10, 20, 30), 5, 0, (100, 100)) == (5, 5, 25, 35)
    assert grow_box((0, 90, 4, 100), 2, 10, (100, 100)) == (0, 86, 10, 100)  # shifted back inside at the corner
    assert grow_box((10, 10, 20, 20), 0, 500, (50, 60)) == (0, 0, 50, 60)  # larger than the image: all of it


def test_hole_ssim_on_crops_equals_the_whole_image_ssim():
    rng = np.random.default_rng(0)
    truth = smooth_image(rng, 90, 120)
    filled = np.clip(truth.astype(int) + rng.integers(-30, 30, truth.shape), 0, 255).astype(np.uint8)
    hole = fr.draw_hole("stroke", 90, 120, 0, 0)
    hole[0:10, 100:120] = True  # a second hole at the border
    filled = np.where(hole[..., None], filled, truth)
    scores = fr.hole_scores(filled, truth, hole, {})
    whole = ssim(fr._tensor(filled), fr._tensor(truth), fr._tensor(hole)).item()
    assert scores["ssim"] == pytest.approx(whole, abs=1e-4)  # float32 on crops, float64 on the whole image
    assert set(scores) == {"psnr", "l1", "ssim", "sharpness"}
    assert fr.hole_scores(truth, truth, hole, {})["sharpness"] == pytest.approx(1.0)


def mean_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    out = image.copy()
    out[hole] = image[~hole].mean(axis=0).round().astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fullres")
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(96, 128), (170, 180), (300, 120)]):
        Image.fromarray(smooth_image(rng, h, w)).save(root / f"p{i}.png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_run_fullres_writes_scores_figure_and_tables(photos, tmp_path):
    pytest.importorskip("cv2")
    methods = {"telea": fr.baseline_methods(["telea"])["telea"], "mean": mean_fill}
    out = tmp_path / "fr"
    r = fr.run_fullres(
        methods, photos, masks=("stroke", "box"), reference="mean", max_side=256, out=out, progress=False
    )
    assert r["meta"]["images"] == 3 and list(r["kinds"]) == ["stroke", "box"]
    for data in r["kinds"].values():
        assert [img["file"] for img in data["images"]] == ["p0.png", "p1.png", "p2.png"]
        assert data["images"][2]["size"] == [256, 102]  # long side capped, aspect kept
        for img in data["images"]:
            assert set(img["methods"]) == {"telea", "mean"}
            assert {"psnr", "l1", "ssim", "sharpness", "seconds"} <= set(img["methods"]["telea"])
        telea = data["summary"]["telea"]
        assert set(telea["mean"]) >= {"psnr", "l1", "ssim", "sharpness"} and telea["s_per_mp"] > 0
        assert 0 <= telea["win_rate"]["psnr"] <= 1 and 0 <= telea["win_rate"]["l1"] <= 1
        assert "win_rate" not in data["summary"]["mean"]
        assert telea["mean"]["psnr"] > data["summary"]["mean"]["mean"]["psnr"]  # smooth photos: diffusion wins
    saved = json.loads((out / "fullres.json").read_text())
    assert saved["kinds"]["box"]["images"][0]["methods"]["mean"]["psnr"] == pytest.approx(
        r["kinds"]["box"]["images"][0]["methods"]["mean"]["psnr"]
    )
    md = (out / "fullres.md").read_text()
    assert "stroke masks (3 images" in md and "box masks" in md and "| telea |" in md
    assert "wins vs mean (PSNR / L1" in md
    grid = Image.open(out / "fullres.png")
    assert grid.size[0] > 4 * fr.FIGURE_TILE and grid.size[1] > 2 * fr.FIGURE_TILE  # 4 columns, rows of both kinds


def test_reused_scores_and_methods_run_again(photos, monkeypatch):
    """With earlier results, only the methods named fresh run again, except on the figure's photos; every other
    score is the earlier one, and results of other photos are refused."""
    monkeypatch.setattr(fr, "FIGURE_ROWS", 1)
    calls = []

    def grey(image, hole):
        out = image.copy()
        out[hole] = 128
        return out

    def counted(name, fill):
        def method(image, hole):
            calls.append(name)
            return fill(image, hole)

        return method

    first = fr.run_fullres({"mean": mean_fill, "grey": grey}, photos, perceptual=False, progress=False)
    old = first["kinds"]["stroke"]["images"]
    for img in old:
        img["methods"]["mean"]["psnr"] = -1.0  # marks a kept score: no fill gives it
    methods = {"mean": counted("mean", mean_fill), "grey": counted("grey", mean_fill)}  # "grey" now fills the mean
    again = fr.run_fullres(methods, photos, perceptual=False, progress=False, reuse=first, fresh=["grey"])
    shown = set(fr.spread(list(range(3)), 1))
    assert calls.count("grey") == 3 and calls.count("mean") == len(shown) == 1
    for i, img in enumerate(again["kinds"]["stroke"]["images"]):
        fresh_mean = img["methods"]["grey"]["psnr"]  # both fills are the mean now
        assert fresh_mean != old[i]["methods"]["grey"]["psnr"]
        assert img["methods"]["mean"]["psnr"] == (pytest.approx(fresh_mean) if i in shown else -1.0)
    with pytest.raises(ContextEncoderError, match="other photos"):
        fr.run_fullres(methods, photos, limit=2, perceptual=False, progress=False, reuse=first, fresh=["grey"])
    first["meta"]["perceptual"] = ["lpips_vgg"]
    with pytest.raises(ContextEncoderError, match="slow scores"):
        fr.run_fullres(methods, photos, perceptual=False, progress=False, reuse=first, fresh=["grey"])


def test_same_holes_whatever_the_method_and_limit(photos):
    seen = []

    def spy(image, hole):
        seen.append(hole.copy())
        return mean_fill(image, hole)

    fr.run_fullres({"spy": spy}, photos, limit=2, perceptual=False, progress=False)
    assert len(seen) == 2 and np.array_equal(seen[0], fr.draw_hole("stroke", *seen[0].shape, 0, 0))
    assert np.array_equal(seen[1], fr.draw_hole("stroke", *seen[1].shape, 0, 1))


def test_a_method_that_changes_known_pixels_is_caught(photos):
    def sloppy(image, hole):
        out = mean_fill(image, hole)
        out[~hole] ^= 1
        return out

    with pytest.raises(ContextEncoderError, match="'sloppy' changed known pixels"):
        fr.run_fullres({"ok": mean_fill, "sloppy": sloppy}, photos, limit=1, progress=False)
    with pytest.raises(ContextEncoderError, match="reference method 'patchmatch'"):
        fr.run_fullres({"ok": mean_fill}, photos, reference="patchmatch", progress=False)


def test_perceptual_scores_and_their_absence(monkeypatch, caplog):
    rng = np.random.default_rng(2)
    truth = smooth_image(rng, 170, 200)
    hole = fr.draw_hole("box", 170, 200, 0, 0)
    filled = mean_fill(truth, hole)
    backends = fr.perceptual_backends()
    if {"vifp", "ms_ssim"} <= set(backends):
        scores = fr.hole_scores(filled, truth, hole, backends)
        assert 0 <= scores["vifp"] < 1 and 0 <= scores["ms_ssim"] < 1
        perfect = fr.hole_scores(truth, truth, hole, backends)
        assert perfect["vifp"] == pytest.approx(1.0) and perfect["ms_ssim"] == pytest.approx(1.0)
        for name in ("lpips_alex", "lpips_vgg"):
            if name in backends:  # a mean-coloured box is far from the photo; the photo itself is at distance 0
                assert scores[name] > 0.05 and perfect[name] == pytest.approx(0.0, abs=1e-6)
    real = fr.importlib.import_module

    def fake(name, *a):
        if name.startswith("sewar"):
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(fr.importlib, "import_module", fake)
    with caplog.at_level(logging.WARNING, logger="context_encoder.fullres"):
        assert "vifp" not in fr.perceptual_backends()
    assert len(caplog.records) == 1 and "skipping vifp" in caplog.text and "pip install sewar" in caplog.text


@pytest.mark.parametrize("name", ["patchmatch", "fsr"])
def test_exemplar_baselines_fill_a_full_size_hole(name):
    pytest.importorskip("patchmatch.patch_match" if name == "patchmatch" else "cv2")
    if name == "fsr" and not hasattr(pytest.importorskip("cv2"), "xphoto"):
        pytest.skip("OpenCV without its contrib modules")
    rng = np.random.default_rng(3)
    image = smooth_image(rng, 72, 96)
    hole = fr.draw_hole("stroke", 72, 96, 0, 0)
    method = fr.baseline_methods([name])[name]
    out = method(image, hole)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~hole], image[~hole])
    assert (
        np.abs(out.astype(int) - image)[hole].mean() < np.abs(mean_fill(image, hole).astype(int) - image)[hole].mean()
    )
    assert np.array_equal(out, method(image, hole))  # seeded: the same fill twice


def test_missing_patchmatch_names_the_extra(monkeypatch):
    real = bl.importlib.import_module

    def fake(name, *a):
        if name.startswith("patchmatch"):
            raise ImportError(name)
        return real(name, *a)

    monkeypatch.setattr(bl.importlib, "import_module", fake)
    with pytest.raises(ContextEncoderError, match=r"PyPatchMatch.*pip install 'context-encoder\[baselines\]'"):
        bl.build_baselines(["patchmatch"])


def test_chosen_files_resized_to_one_long_side(photos):
    """The tuning sets: a list of files in place of the folder's listing, each resized (up too) to one long side."""
    paths = [photos / "p2.png", photos / "p0.png"]
    r = fr.run_fullres({"mean": mean_fill}, photos, paths=paths, long_side=400, meta={"set": "two"}, progress=False)
    images = r["kinds"]["stroke"]["images"]
    assert [img["file"] for img in images] == ["p2.png", "p0.png"]
    assert [img["size"] for img in images] == [[400, 160], [300, 400]]  # 300 x 120 and 96 x 128, enlarged
    assert r["meta"]["set"] == "two" and r["meta"]["long_side"] == 400
    assert fr.markdown_tables(r).startswith("### two: stroke masks (2 images")


def test_benchmark_synthesis_overrides():
    from benchmarks.fullres import synthesis_settings

    from context_encoder.synthesis import SynthesisSettings

    assert synthesis_settings([]) is None
    s = synthesis_settings(["membrane=0.25", "radius=2", "final_vote=mean"])
    assert s == SynthesisSettings(membrane=0.25, radius=2, final_vote="mean")
    for bad in (["membrane"], ["colour=3"], ["radius=wide"]):
        with pytest.raises(SystemExit, match="--synthesis"):
            synthesis_settings(bad)
