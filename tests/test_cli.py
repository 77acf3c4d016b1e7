import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder.cli import main
from context_encoder.data import load_image

from .conftest import train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory, photo_dir):
    return train_tiny(tmp_path_factory.mktemp("cli") / "run", photo_dir, "train.steps=4")


def _photo(path, size=32, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_train_then_inpaint_center(trained, tmp_path, capsys):
    assert (trained / "checkpoints" / "last.pt").is_file()
    src = _photo(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert main(["inpaint", str(src), "--checkpoint", str(trained), "-o", str(out)]) == 0
    a, b = np.asarray(load_image(src)), np.asarray(load_image(out))
    hole = np.zeros((32, 32), bool)
    hole[9:23, 9:23] = True  # tiny preset: 16 px centre, 1 px overlap
    assert (a[~hole] == b[~hole]).all()  # known pixels untouched
    assert (a[hole] != b[hole]).any()
    single = tmp_path / "single.png"
    assert main(["inpaint", str(src), "--checkpoint", str(trained), "--no-flip-average", "-o", str(single)]) == 0
    c = np.asarray(load_image(single))
    assert (c[~hole] == a[~hole]).all() and (c[hole] != b[hole]).any()  # one pass of G: another fill


def test_resume_from_the_cli(trained, capsys):
    assert main(["train", "--resume", str(trained), "-q", "--set", "train.steps=6"]) == 0
    state = torch.load(trained / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 6
    assert main(["train", "--resume", str(trained), "-q", "--set", "train.steps=6"]) == 2
    assert "already at step 6" in capsys.readouterr().err


def test_inpaint_any_size_and_bad_input(trained, tmp_path, capsys):
    big = _photo(tmp_path / "big.png", size=40)
    out = tmp_path / "o.png"
    assert main(["inpaint", str(big), "--checkpoint", str(trained), "--box", "2,3,5,4", "-o", str(out)]) == 0
    a, b = np.asarray(load_image(big)), np.asarray(load_image(out))
    hole = np.zeros((40, 40), bool)
    hole[3:7, 2:7] = True
    assert (a[~hole] == b[~hole]).all() and (a[hole] != b[hole]).any()
    (tmp_path / "junk.png").write_bytes(b"junk")
    assert main(["inpaint", str(tmp_path / "junk.png"), "--checkpoint", str(trained), "-o", str(out)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small_mask.png")
    rc = main(
        ["inpaint", str(big), "--checkpoint", str(trained), "--mask", str(tmp_path / "small_mask.png"), "-o", str(out)]
    )
    assert rc == 2 and "is 10x10 but the image is 40x40" in capsys.readouterr().err
    assert main(["inpaint", str(big), "--checkpoint", str(tmp_path / "nope.pt"), "-o", str(out)]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["inpaint", str(big), "--model", "no-such-model", "-o", str(out)]) == 2
    assert "no shipped model or file named 'no-such-model'" in capsys.readouterr().err
    assert main(["inpaint", str(big), "--checkpoint", str(trained), "--box", "50,50,3,3", "-o", str(out)]) == 2
    assert "outside the 40x40 image" in capsys.readouterr().err
    before = big.read_bytes()  # -o onto the photo or the mask is refused, and neither is touched
    assert main(["inpaint", str(big), "--checkpoint", str(trained), "--box", "2,3,5,4", "-o", str(big)]) == 2
    assert "is the input image" in capsys.readouterr().err and big.read_bytes() == before
    mask = tmp_path / "m.png"
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(mask)
    assert main(["inpaint", str(big), "--checkpoint", str(trained), "--mask", str(mask), "-o", str(mask)]) == 2
    assert "is the input mask" in capsys.readouterr().err
    assert main(["inpaint", str(big), "--model", "", "--box", "2,3,5,4", "-o", str(out)]) == 2
    assert "--model is empty" in capsys.readouterr().err
    exact = tmp_path / "exact.png"
    args = ["inpaint", str(big), "--checkpoint", str(trained), "--box", "2,3,5,4"]
    assert main([*args, "--precision", "fp32", "-o", str(exact)]) == 0
    assert (np.asarray(load_image(exact))[~hole] == a[~hole]).all()


def option_choices(command: str, option: str) -> list:
    """The choices the command line offers for `command`'s `option`."""
    import argparse

    from context_encoder.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(next(a for a in commands.choices[command]._actions if option in a.option_strings).choices)


def test_cli_choices_are_the_configs():
    """The parser's choices are the config's types: one place for each (`typing.get_args`)."""
    from context_encoder.config import DEVICES, HOLE_MASK_KINDS
    from context_encoder.perf import INFERENCE_PRECISIONS

    assert option_choices("inpaint", "--precision") == list(INFERENCE_PRECISIONS) == ["auto", "fp32", "bf16"]
    assert option_choices("inpaint", "--device") == option_choices("serve", "--device") == list(DEVICES)
    assert option_choices("evaluate", "--mask") == list(HOLE_MASK_KINDS)
    assert "none" not in HOLE_MASK_KINDS and "mixed" in HOLE_MASK_KINDS


def test_inpaint_batch_folder(trained, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, size in enumerate((24, 50, 33)):
        _photo(folder / f"p{i}.png", size=size, seed=i)
    assert (
        main(["inpaint", "--batch", str(folder), "--checkpoint", str(trained), "--center", "-o", str(tmp_path / "out")])
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]


def test_train_on_an_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--config", "tiny", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "error: no readable images" in err and "Traceback" not in err


def test_module_entry_point_and_help():
    out = subprocess.run([sys.executable, "-m", "context_encoder", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "inpaint" in out.stdout
    out = subprocess.run([sys.executable, "-m", "context_encoder", "presets"], capture_output=True, text=True)
    assert out.returncode == 0 and "paper_center" in out.stdout and "71.1M" in out.stdout


def test_sigterm_to_the_process_group_with_loader_workers_saves_and_stops(photo_dir, tmp_path):
    """Loader workers ignore the signal; the training process checkpoints the finished step and exits 143."""
    import os
    import signal
    import time

    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "context_encoder",
        "train",
        "--config",
        "tiny",
        "--data",
        str(photo_dir),
        "--out",
        str(out),
        "-q",
        "--set",
        "train.steps=100000",
        "--set",
        "data.workers=1",
        "--set",
        "train.log_every=1",
        "--set",
        "train.checkpoint_every=100000",
        "--set",
        "train.sample_every=100000",
    ]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    deadline = time.time() + 120
    while not (out / "stats.jsonl").is_file() or not (out / "stats.jsonl").read_text().strip():
        assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted at step" in err and "Traceback" not in err
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["step"] >= 1


def test_progress_to_a_log_writes_plain_lines_now_and_then(monkeypatch):
    import io

    from context_encoder import progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    log = io.StringIO()  # not a terminal: no live bar, no escape codes
    bar = progress.Progress(1000, desc="train tiny", stream=log, every=100, min_interval=30, max_interval=180)
    bar.set_postfix("loss 0.5")
    for _ in range(100):  # 100 updates in 10 s: enough steps, too soon
        clock[0] += 0.1
        bar.update()
    assert log.getvalue() == ""
    clock[0] = 30.0
    bar.update()  # 101 steps and 30 s: one line
    assert log.getvalue() == "train tiny 101/1000 10% elapsed 0m30s eta 4m27s loss 0.5\n"
    clock[0] = 250.0
    bar.update()  # one step, but over three minutes since the last line
    assert len(log.getvalue().splitlines()) == 2
    bar.update(898)
    bar.close()
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("train tiny 1000/1000 100% elapsed 4m10s eta 0m00s") and "\r" not in log.getvalue()
    bar.close()  # closing twice adds nothing
    assert log.getvalue().splitlines() == lines


def test_every_option_of_every_command_has_help():
    import argparse

    from context_encoder.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert sub.description, f"{name} has no description"
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings[0]} has no help text"
    train_help = commands.choices["train"].format_help()
    assert "inpaint" not in train_help.split("examples:")[1]  # train's own examples


def test_inpaint_says_which_model_it_used(tmp_path, capsys):
    from PIL import Image

    Image.new("RGB", (40, 30), (90, 120, 30)).save(tmp_path / "p.png")
    from context_encoder.loading import default_model
    from context_encoder.pretrained import read_metadata, shipped_path

    name = default_model(False)
    refine = read_metadata(shipped_path(name))["inference"]["refine"]  # the model's stored default
    said = "blended, flip-averaged" + ("" if refine == "none" else f", {refine}-refined")
    rc = main(["inpaint", str(tmp_path / "p.png"), "--center", "--device", "cpu", "-o", str(tmp_path / "o.png")])
    assert rc == 0 and f"model: {name} ({said}, cpu)" in capsys.readouterr().err
    rc = main(["inpaint", str(tmp_path / "p.png"), "--center", "--refine", "none", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert rc == 0 and f"model: {name} (blended, flip-averaged, " in err and "refined" not in err
