"""The one model loader and the one inference recipe: sources, round trips, stored options, layering."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from context_encoder import pretrained
from context_encoder.cli import main
from context_encoder.errors import CheckpointError, InputError
from context_encoder.inpaint import InferenceOptions
from context_encoder.loading import default_model, load_model, preferred_models
from context_encoder.safetensors_io import save_file

from .conftest import train_tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory, photo_dir):
    return train_tiny(tmp_path_factory.mktemp("loading") / "run", photo_dir, "train.steps=3", "train.ema_decay=0.9")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("photo") / "p.png"
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(path)
    return path


def _inpaint(source: str, photo: Path, out: Path, *extra: str) -> bytes:
    assert main(["inpaint", str(photo), "--checkpoint", source, "--box", "10,12,14,9", "-o", str(out), *extra]) == 0
    return out.read_bytes()


def test_export_round_trips_through_inpaint(run, photo, tmp_path):
    """`export` then `inpaint --model FILE.safetensors` gives the checkpoint's pixels (exactly in fp32)."""
    exact, half = tmp_path / "exact.safetensors", tmp_path / "half.safetensors"
    assert main(["export", str(run), "--out", str(exact), "--dtype", "fp32"]) == 0
    assert main(["export", str(run), "--out", str(half)]) == 0
    reference = _inpaint(str(run), photo, tmp_path / "ref.png")
    assert _inpaint(str(exact), photo, tmp_path / "exact.png") == reference
    out = tmp_path / "model.png"
    assert main(["inpaint", str(photo), "--model", str(exact), "--box", "10,12,14,9", "-o", str(out)]) == 0
    assert out.read_bytes() == reference
    _inpaint(str(half), photo, tmp_path / "half.png")
    a = np.asarray(Image.open(tmp_path / "ref.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "half.png"), dtype=int)
    assert np.abs(a - b).max() <= 2  # fp16 weights: a grey level or two at most


def test_every_source_kind_loads_the_same_generator(run, tmp_path):
    exported = tmp_path / "m.safetensors"
    assert main(["export", str(run), "--out", str(exported), "--dtype", "fp32"]) == 0
    models = [load_model(s) for s in (run, run / "checkpoints" / "last.pt", exported, str(exported))]
    states = [m.gen.state_dict() for m in models]
    for state in states[1:]:
        assert all((state[k] == states[0][k]).all() for k in state)
    assert all(m.options == InferenceOptions() for m in models)
    assert load_model(models[0]) is models[0]


def test_stored_options_are_read_back_and_can_be_overridden(run, tmp_path):
    path = tmp_path / "fast.safetensors"
    fast = InferenceOptions(blend=True, flip_average=False)
    pretrained.export(run, path, options=fast)
    assert pretrained.read_metadata(path)["inference"] == {"blend": True, "flip_average": False, "refine": "none"}
    assert load_model(path).options == fast
    raw = InferenceOptions(blend=False, flip_average=False)
    assert load_model(path, options=raw).options == raw
    assert InferenceOptions.from_dict({"seam_blending": False, "flip_average": True}) == InferenceOptions(False, True)
    with pytest.raises(InputError, match="unknown inference option 'refine_harder'"):
        InferenceOptions.from_dict({"refine_harder": True})


def test_shipped_names_never_resolve_as_paths(tmp_path, monkeypatch):
    for name in pretrained.shipped_names():
        assert pretrained.shipped_path(name).parent == pretrained.WEIGHTS_DIR
    for hostile in ("../weights/scenes-center", "../../x", "/etc/passwd", "scenes-center/../../x", ""):
        assert pretrained.shipped_path(hostile) is None
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="model file not found"):
        load_model("../../x.safetensors")
    with pytest.raises(InputError, match="no shipped model or file named 'nope'"):
        load_model("nope")


def test_foreign_and_broken_weights_files_are_refused(run, tmp_path):
    bad = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, bad, {"note": '"hello"'})
    with pytest.raises(CheckpointError, match="has no context-encoder config"):
        load_model(bad)
    save_file({"w": torch.zeros(2)}, bad, {"config": "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(bad)
    save_file({"w": torch.zeros(2)}, bad, {"config": json.dumps({"model": {"image_size": 30}})})
    with pytest.raises(CheckpointError, match="image_size must be a power of two"):
        load_model(bad)


def test_default_model_is_the_best_measured_for_the_hole(tmp_path, monkeypatch):
    def ship(name: str, kind: str, ranking: dict | None) -> None:
        meta = {"config": json.dumps({"mask": {"kind": kind}})}
        if ranking is not None:
            meta["ranking"] = json.dumps(ranking)
        save_file({"w": torch.zeros(1)}, tmp_path / f"{name}.safetensors", meta)

    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(InputError, match="no shipped model installed"):
        default_model(arbitrary_holes=True)
    ship("a-center", "center", None)  # unmeasured: after every measured model
    ship("b-center", "center", {"square": 17.1, "free-form": 18.0})
    ship("c-region", "mixed", {"square": 16.0, "free-form": 18.5})
    ship("d-center", "center", {"square": 17.4, "free-form": 17.0})
    assert preferred_models(arbitrary_holes=False) == ("d-center", "b-center", "c-region", "a-center")
    assert preferred_models(arbitrary_holes=True) == ("c-region", "b-center", "d-center", "a-center")
    assert default_model(arbitrary_holes=False) == "d-center"
    ship("e-region", "random-region", None)  # among unmeasured models, those made for the hole come first
    assert preferred_models(arbitrary_holes=True)[-2:] == ("e-region", "a-center")
    assert preferred_models(arbitrary_holes=False)[-2:] == ("a-center", "e-region")


def test_the_shipped_models_are_ranked():
    if not pretrained.shipped_names():
        pytest.skip("no shipped model installed")
    for name, meta in pretrained.list_pretrained().items():
        assert set(meta.get("ranking", {})) >= {"square", "free-form"}, f"{name} has no ranking: ship_models --rank"


# Which package modules each module may import (directly, at module level or inside functions): its own layer
# and those above it in this list. Training sits beside inference and evaluation, not above them; weights
# storage (`pretrained`) and inference (`inpaint`) both sit on the options they share; the web app's modules
# are layered among themselves below the command line's level.
LAYERS = [
    {"errors", "geometry"},
    {"config", "progress", "safetensors_io", "outputs"},
    {
        "holes",
        "decode",
        "masks",
        "metrics",
        "data",
        "models",
        "losses",
        "lpips",
        "viz",
        "perf",
        "optim",
        "distributed",
        "synthesis",
        "tensorboard_log",
        "logistic",
        "neighbours",
    },
    {"checkpoint", "fill", "photo_file", "batch"},
    {"protocol", "baselines", "labelled"},
    {"methods"},
    {"options"},
    {"inpaint", "pretrained"},
    {"training_run"},
    {"train", "fullres", "loading"},
    {"evaluate", "features", "demo"},
    {"web.work", "web.guard", "web.forms", "web.images"},
    {"web.schemas", "web.registry"},
    {"web.fill"},
    {"web.app", "web.__init__", "cli", "__init__", "__main__"},
]
PACKAGE = Path(pretrained.__file__).parent


def _module_name(path: Path) -> str:
    """ "config" for config.py, "web.fill" for web/fill.py, "web.__init__" for web/__init__.py."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _target(parts: tuple[str, ...]) -> str:
    """The module that `from <parts> import ...` reads: a .py file, or a package's __init__."""
    if (PACKAGE.joinpath(*parts)).is_dir():
        parts = (*parts, "__init__")
    return ".".join(parts) if parts else "__init__"


def _package_imports(path: Path) -> set[str]:
    """The package modules `path` imports, relative imports of any level, by `_module_name`."""
    package = path.relative_to(PACKAGE).parent.parts  # the package the module is in: () or ("web",)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level < 1:
            continue
        base = package[: len(package) - (node.level - 1)]
        if node.module:
            found.add(_target((*base, *node.module.split("."))))
            continue
        for alias in node.names:  # `from . import x`: a module, or a name the package defines
            module = (*base, alias.name)
            is_module = PACKAGE.joinpath(*module).with_suffix(".py").exists() or PACKAGE.joinpath(*module).is_dir()
            found.add(_target(module) if is_module else _target(base))
    return found


def _import_graph() -> dict[str, set[str]]:
    return {_module_name(p): _package_imports(p) - {_module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_one_above_it():
    level = {name: i for i, names in enumerate(LAYERS) for name in names}
    graph = _import_graph()
    assert set(graph) == set(level), (
        f"modules missing from LAYERS: {set(graph) - set(level)}, gone: {set(level) - set(graph)}"
    )
    for name, deps in graph.items():
        for dep in deps:
            assert dep in level, f"{name} imports unknown module {dep}"
            assert level[dep] <= level[name], f"{name} (layer {level[name]}) imports {dep} (layer {level[dep]})"
    assert not graph["train"] & {"inpaint", "evaluate", "loading"}
    assert not graph["pretrained"] & {"inpaint", "loading"}  # weights storage reads the options, not inference


def test_the_imports_have_no_cycle():
    graph = _import_graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph.get(name, ())):
            assert state.get(dep) != "open", f"import cycle: {' -> '.join([*path, name, dep])}"
            if dep not in state:
                visit(dep, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_export_of_a_weights_file_says_what_it_needs(run, tmp_path, capsys):
    weights = tmp_path / "m.safetensors"
    assert main(["export", str(run), "--out", str(weights)]) == 0
    assert main(["export", str(weights), "--out", str(tmp_path / "again.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "is a model weights file, not a training checkpoint" in err and "install safetensors" not in err


def test_options_carry_the_synthesis_settings_and_round_trip(run, tmp_path):
    """`InferenceOptions.synthesis` is stored only when it is not the default, so older dicts read as before."""
    from context_encoder.synthesis import SynthesisSettings

    default = InferenceOptions()
    assert default.synthesis == SynthesisSettings() and "synthesis" not in default.to_dict()
    tuned = InferenceOptions(refine="patch", synthesis=SynthesisSettings(radius=2, guide_weight=3))
    stored = json.loads(json.dumps(tuned.to_dict()))
    assert stored["synthesis"]["radius"] == 2 and InferenceOptions.from_dict(stored) == tuned
    assert InferenceOptions.from_dict({"blend": True, "flip_average": False}) == InferenceOptions(flip_average=False)
    path = tmp_path / "tuned.safetensors"
    pretrained.export(run, path, options=tuned)
    assert load_model(path).options == tuned
    with pytest.raises(InputError, match="unknown inference option 'synthesis.radious'"):
        InferenceOptions.from_dict({"synthesis": {"radious": 2}})
    with pytest.raises(InputError, match="synthesis"):
        InferenceOptions.from_dict({"synthesis": {"radius": 0}})
    with pytest.raises(InputError, match="'synthesis.radius' must be a int"):
        InferenceOptions.from_dict({"synthesis": {"radius": 2.5}})
