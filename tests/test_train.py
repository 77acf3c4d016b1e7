import importlib
import json
import os
import signal
from dataclasses import replace

import pytest
import torch

from context_encoder import lpips
from context_encoder.checkpoint import load_checkpoint
from context_encoder.errors import CheckpointError, ConfigError, InputError
from context_encoder.loading import load_model
from context_encoder.masks import center_mask, fill_value, sample_masks
from context_encoder.models import build_models
from context_encoder.optim import make_optimizers
from context_encoder.train import TrainingInterrupted, train, train_step

train_mod = importlib.import_module("context_encoder.train")  # the package exports a function of that name


def _smooth_batch(n=8, size=32):
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def test_overfits_one_fixed_batch(tiny_cfg):
    cfg = tiny_cfg()
    g, d = build_models(cfg.model, cfg.full_image, seed=0)
    opt_g, opt_d = make_optimizers(g, d, cfg)
    x, m, f = _smooth_batch(), center_mask(32, cfg.mask.overlap, 8), fill_value(cfg.mask.fill_rgb)
    losses = [train_step(g, d, opt_g, opt_d, x, m, f, cfg.loss)["loss_rec"].item() for _ in range(100)]
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_residual_generator_on_harmonic_fill_learns(tiny_cfg):
    cfg = tiny_cfg("model.residual=true", "mask.fill=harmonic", "mask.kind=random-block", "loss.mode=l2")
    g, d = build_models(cfg.model, cfg.full_image, seed=0)
    opt_g, opt_d = make_optimizers(g, d, cfg)
    x = _smooth_batch()
    m = sample_masks(cfg.mask, 8, 32, torch.Generator().manual_seed(0))
    losses = [train_step(g, d, opt_g, opt_d, x, m, "harmonic", cfg.loss)["loss_rec"].item() for _ in range(60)]
    assert losses[-1] < losses[0] / 2, (losses[0], losses[-1])  # it improves on the membrane it starts from


@pytest.mark.parametrize("mode", ["l2", "adv", "joint"])
def test_loss_modes_update_the_right_networks(tiny_cfg, mode):
    cfg = tiny_cfg(f"loss.mode={mode}")
    g, d = build_models(cfg.model, cfg.full_image, seed=0)
    opt_g, opt_d = make_optimizers(g, d, cfg)
    g_lr = opt_g.param_groups[0]["lr"]
    assert g_lr == pytest.approx(2e-3 if mode == "joint" else 2e-4)  # released: G gets 10x only in joint mode
    d0 = [p.clone() for p in d.parameters()]
    out = train_step(g, d, opt_g, opt_d, _smooth_batch(), center_mask(32, 1, 8), fill_value((0, 0, 0)), cfg.loss)
    d_changed = any(not torch.equal(a, b) for a, b in zip(d0, d.parameters()))
    assert d_changed == (mode != "l2")
    assert ("loss_d" in out) == (mode != "l2")
    assert all(torch.isfinite(v) for v in out.values())


def _run(cfg, out, **kw):
    return train(cfg, out, progress=False, **kw)


def test_same_seed_same_losses(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.steps=6")
    _run(cfg, tmp_path / "a")
    _run(cfg, tmp_path / "b")
    a = (tmp_path / "a" / "stats.jsonl").read_text().splitlines()
    b = (tmp_path / "b" / "stats.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k not in ("time", "img_per_s")} for x in lines]  # noqa: E731
    assert strip(a) == strip(b) and len(a) == 3
    c = _run(tiny_cfg("train.steps=6", "train.seed=1"), tmp_path / "c")
    assert strip((tmp_path / "c" / "stats.jsonl").read_text().splitlines()) != strip(a) and c.exists()


@pytest.mark.parametrize("kind", ["center", "random-region"])
def test_resume_equals_uninterrupted(tiny_cfg, tmp_path, kind):
    full = _run(tiny_cfg("train.steps=8", f"mask.kind={kind}"), tmp_path / "full")
    half = _run(tiny_cfg("train.steps=4", f"mask.kind={kind}"), tmp_path / "half")
    resumed = _run(tiny_cfg("train.steps=8", f"mask.kind={kind}"), tmp_path / "half", resume=half)
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 8
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    assert torch.equal(a["mask_rng"], b["mask_rng"])


def test_run_directory_contents(tiny_cfg, tmp_path):
    ckpt = _run(tiny_cfg(), tmp_path / "run")
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 10
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000005.png", "step_0000010.png"]
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10]
    assert {"loss_d", "loss_g_adv", "loss_rec", "img_per_s"} <= set(records[0])
    model = load_model(ckpt)  # a checkpoint alone rebuilds its model
    gen, cfg = model.gen, model.cfg
    assert cfg.train.steps == 10 and not gen.training
    assert not list(run.glob("checkpoints/*.tmp")) and not list(run.glob("checkpoints/.*"))


def test_resume_refuses_a_different_model(tiny_cfg, tmp_path):
    ckpt = _run(tiny_cfg("train.steps=2"), tmp_path / "r")
    with pytest.raises(CheckpointError, match=r"\[model\] differs"):
        _run(tiny_cfg("train.steps=4", "model.nef=4"), tmp_path / "r", resume=ckpt)


def test_init_starts_the_generator_from_other_weights(tiny_cfg, tmp_path):
    first = _run(tiny_cfg("train.steps=3"), tmp_path / "a")
    trained = load_model(first, ema=False, precision="fp32").gen.state_dict()
    captured = {}
    real = train_mod._init_generator

    def spy(gen, cfg, source):
        real(gen, cfg, source)
        captured.update({k: v.clone() for k, v in gen.state_dict().items()})

    train_mod._init_generator = spy
    try:
        _run(tiny_cfg("train.steps=1", f'train.init="{first.parent.parent.as_posix()}"'), tmp_path / "b")
    finally:
        train_mod._init_generator = real
    assert captured and all(torch.equal(captured[k], trained[k].float()) for k in trained)
    with pytest.raises(ConfigError, match="train.init: .* different network"):
        _run(tiny_cfg("train.steps=1", "model.nef=4", f'train.init="{first.as_posix()}"'), tmp_path / "c")
    with pytest.raises(InputError, match="model file not found"):
        _run(tiny_cfg("train.steps=1", f'train.init="{(tmp_path / "none.pt").as_posix()}"'), tmp_path / "d")


def _signal_during_step(monkeypatch, step: int, signum: int):
    """Make the training loop receive `signum` while it runs step number `step`; returns the real step function."""
    calls = {"n": 0}
    real_step = train_mod.train_step

    def step_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == step:
            os.kill(os.getpid(), signum)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", step_then_signal)
    return real_step


def test_sigterm_saves_a_checkpoint_then_stops(tiny_cfg, tmp_path, monkeypatch):
    _signal_during_step(monkeypatch, 3, signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as info:
        _run(tiny_cfg("train.checkpoint_every=100"), tmp_path / "run")
    assert info.value.step == 3 and info.value.signum == signal.SIGTERM
    assert load_checkpoint(tmp_path / "run")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a context-encoder checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize(
    "overrides",
    [["train.precision=bf16"], ["train.channels_last=on"], ["train.fused_adam=off"], ["loss.reconstruction=l1"]],
)
def test_speed_variants_train(tiny_cfg, tmp_path, overrides):
    ckpt = _run(tiny_cfg("train.steps=2", "train.log_every=1", *overrides), tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert ckpt.is_file() and all(0 < r["loss_rec"] < 10 for r in records)


def test_missing_device_is_an_error_and_fp16_on_cpu_falls_back(tiny_cfg, tmp_path):
    from context_encoder.errors import ConfigError
    from context_encoder.perf import resolve_speed

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.device='cuda' was requested but is not available"):
            _run(tiny_cfg("train.device=cuda"), tmp_path / "gpu")
    with pytest.warns(UserWarning, match="fp16"):
        speed = resolve_speed(tiny_cfg("train.precision=fp16").train, torch.device("cpu"))
    assert speed.precision == "fp32"
    from context_encoder.perf import cpu_has_native_bf16

    auto = resolve_speed(tiny_cfg("train.precision=auto").train, torch.device("cpu"))
    expected = "bf16" if cpu_has_native_bf16() else "fp32"
    assert (auto.precision, auto.channels_last, auto.compile, auto.fused_adam) == (expected, False, False, True)


def test_bf16_detection_follows_the_cpu_features(tiny_cfg, monkeypatch):
    """`auto` precision on a CPU: bf16 exactly when PyTorch reports x86 bf16 instructions (agrees with the kernel)."""
    from pathlib import Path

    from context_encoder import perf

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else None
    if flags is not None and hasattr(torch.cpu, "get_capabilities"):
        assert perf.cpu_has_native_bf16() == any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))
    cfg = tiny_cfg("train.precision=auto").train
    for reported, expected in (({"avx512_bf16": True}, "bf16"), ({"amx_bf16": True}, "bf16"), ({"avx2": True}, "fp32")):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda found=reported: found, raising=False)
        perf.cpu_has_native_bf16.cache_clear()
        assert perf.resolve_speed(cfg, torch.device("cpu")).precision == expected
    perf.cpu_has_native_bf16.cache_clear()  # the real answer again for later tests


def test_ema_schedule_validation_and_best_checkpoint(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "train.steps=6", "train.ema_decay=0.5", "train.lr_schedule=cosine", "train.val_every=3", "train.val_images=4"
    )
    ckpt = _run(cfg, tmp_path / "run")
    state = load_checkpoint(ckpt)
    assert "generator_ema" in state and state["opt_g"]["param_groups"][0]["lr"] < 2e-3  # decayed
    vals = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines() if "val_psnr" in x]
    assert [v["step"] for v in vals] == [3, 6] and all(v["val_psnr"] > 5 for v in vals)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["best_val"] == max(v["val_psnr"] for v in vals)
    ema_gen, raw_gen = load_model(ckpt).gen, load_model(ckpt, ema=False).gen
    assert any(not torch.equal(a, b) for a, b in zip(ema_gen.parameters(), raw_gen.parameters()))


def test_lr_factor():
    from context_encoder.optim import lr_factor

    assert lr_factor(5, 10, "constant", 0.1) == 1.0
    assert lr_factor(0, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(5, 10, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(10, 10, "cosine", 0.1) == pytest.approx(0.1)


def test_interrupted_run_with_ema_and_schedule_resumes_exactly(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("train.steps=6", "train.ema_decay=0.5", "train.lr_schedule=cosine")
    full = _run(cfg, tmp_path / "full")
    real_step = _signal_during_step(monkeypatch, 3, signal.SIGINT)
    with pytest.raises(TrainingInterrupted):
        _run(cfg, tmp_path / "cut")
    monkeypatch.setattr(train_mod, "train_step", real_step)
    resumed = _run(cfg, tmp_path / "cut", resume=tmp_path / "cut")
    a, b = load_checkpoint(full), load_checkpoint(resumed)
    for key in ("generator", "generator_ema", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


def test_tensorboard_event_files_hold_the_logged_numbers_and_samples(tiny_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    import math

    cfg = tiny_cfg(
        "train.tensorboard=true", "train.steps=4", "train.sample_every=4", "train.val_every=4", "train.val_images=4"
    )
    run = tmp_path / "run"
    _run(cfg, run)
    board = _events(run)
    tags = board.Tags()
    for tag in ("train/loss_rec", "train/loss_d", "train/img_per_s", "lr/generator", "lr/discriminator", "val/psnr"):
        assert tag in tags["scalars"], tag
    loss = board.Scalars("train/loss_rec")
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines() if "loss_rec" in x]
    assert [e.step for e in loss] == [r["step"] for r in stats] == [2, 4]  # tiny preset: log_every = 2
    assert all(math.isfinite(e.value) for e in loss)
    assert [e.value for e in loss] == pytest.approx([r["loss_rec"] for r in stats], abs=1e-6)
    assert board.Scalars("lr/generator")[0].value == pytest.approx(2e-3)  # joint mode: G at 10x D's lr
    assert [e.step for e in board.Images("samples")] == [4]
    # resuming keeps the events up to the checkpoint's step and adds the new ones after it
    _run(replace(cfg, train=replace(cfg.train, steps=6, val_every=0)), run, resume=run)
    assert [e.step for e in _events(run).Scalars("train/loss_rec")] == [2, 4, 6]


def test_tensorboard_without_the_package_is_one_line_before_any_work(photo_dir, tmp_path, monkeypatch, capsys):
    import sys

    from context_encoder.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    out = tmp_path / "run"
    args = ["train", "--config", "tiny", "--data", str(photo_dir), "--out", str(out), "-q"]
    assert main([*args, "--set", "train.tensorboard=true"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: train.tensorboard = true needs the tensorboard package: pip install "
        "'context-encoder[tensorboard]' (or pip install tensorboard)"
    ]
    assert "Traceback" not in err
    assert not (out / "stats.jsonl").exists()


@pytest.mark.skipif(not (lpips.available("alex") and lpips.available("vgg")), reason="LPIPS weights not installed")
def test_perceptual_term_validation_and_selection_by_lpips(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "mask.kind=random-block",  # a whole-image model: 32 px predictions, the least LPIPS takes
        "loss.perceptual=0.5",
        "train.select=lpips_vgg",
        "train.steps=4",
        "train.val_every=2",
        "train.val_images=4",
    )
    _run(cfg, tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    losses = [r for r in records if "loss_g" in r]
    assert losses and all(r["loss_perceptual"] > 0 for r in losses)
    assert all(r["loss_g"] > r["loss_rec"] for r in losses)  # the term is in G's objective
    vals = [r for r in records if "val_psnr" in r]
    assert [v["step"] for v in vals] == [2, 4] and all(0 < v["val_lpips_alex"] and 0 < v["val_lpips_vgg"] for v in vals)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert best["best_val_metric"] == "lpips_vgg" and best["best_val"] == min(v["val_lpips_vgg"] for v in vals)
