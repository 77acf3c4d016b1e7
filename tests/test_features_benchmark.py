"""benchmarks/features.py: one command pretrains, probes and reports; a second run reuses everything finished."""

import json

import numpy as np
import pytest
from benchmarks import features as bench
from PIL import Image

from context_encoder.features import probe_once


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 4)):
        for k in range(3):
            folder = root / "cifar10" / split / f"class{k}"
            folder.mkdir(parents=True)
            for i in range(n):
                rgb = np.roll([200, 40, 40], k)
                arr = np.clip(rgb + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(folder / f"{i}.png")
    return root


def test_smoke_run_then_a_second_run_skips_finished_work(data_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--smoke", "--data-root", str(data_root), "--datasets", "cifar10", "--seeds", "1", "--out", str(out)]
    bench.main(args)
    report = (out / "features.md").read_text()
    for row in ("context encoder", "autoencoder", "random init", "supervised (upper bound)"):
        assert f"| {row} |" in report
    assert "| encoder | conv1 | conv2 | conv3 |" in report and "features_neighbours_cifar10.png" in report
    with Image.open(out / "features_neighbours_cifar10.png") as img:
        assert img.size[0] > 6 * 64 and img.size[1] > 18 * 64
    cache = json.loads((out / "runs" / "probes-cifar10.json").read_text())
    assert len(cache) == 7  # (context encoder, autoencoder, random) x (linear, finetune10) + supervised, 1 seed
    assert "7 probe results computed" in capsys.readouterr().out

    def refuse(*args, **kwargs):
        raise AssertionError("finished work was redone")

    monkeypatch.setattr(bench, "cli", refuse)  # no training
    monkeypatch.setattr(bench, "probe_once", refuse)  # no probe
    bench.main(args)
    printed = capsys.readouterr().out
    assert "cifar10-context-encoder: finished" in printed and "0 probe results computed" in printed
    assert (out / "features.md").read_text() == report

    monkeypatch.setattr(bench, "probe_once", probe_once)
    bench.main([*args, "--seeds", "2"])  # a second seed: only its 7 probes run, the first seed's are reused
    assert "7 probe results computed" in capsys.readouterr().out


def test_probes_only_refuses_unfinished_pretraining(data_root, tmp_path):
    args = ["--smoke", "--data-root", str(data_root), "--datasets", "cifar10", "--out", str(tmp_path), "--probes-only"]
    with pytest.raises(SystemExit, match="is at step 0 of 2"):
        bench.main(args)


def test_rows_probe_without_pretraining_and_are_reused_by_the_report(data_root, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = ["--smoke", "--data-root", str(data_root), "--datasets", "cifar10", "--seeds", "1", "--out", str(out)]
    bench.main([*args, "--rows", "random", "supervised"])
    printed = capsys.readouterr().out
    assert "cifar10 random linear:" in printed and "cifar10 supervised supervised:" in printed
    assert "3 probe results computed" in printed and not (out / "runs" / "cifar10-context-encoder").exists()
    with pytest.raises(SystemExit, match="is at step 0 of 2"):  # a pretrained row needs its finished run
        bench.main([*args, "--rows", "context-encoder"])
    bench.main(args)  # the full run computes only the pretrained encoders' 4 probes
    assert "4 probe results computed" in capsys.readouterr().out
