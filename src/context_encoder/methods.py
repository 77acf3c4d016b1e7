"""The fill-method registry: every way this package fills a hole, learned or classical, by name.

    from context_encoder import methods
    methods.names("classical")                 # what `evaluate --baselines` accepts
    methods.get(name).build()                  # a classical method's `Filler`
    methods.entries("classical", featured=True)  # what the web app offers beside the network

Each entry is a `fill.FillMethod`: name, kind ("network", "classical" or "refiner"), label, description,
the optional extra it needs and a factory. The command line's choices (`--baselines`, `--refine`), the web
app's form schema and method menu, `evaluate`'s classical baselines, the demo and the benchmarks are all
read from here, so a method is spelled in two places only: its entry and its implementation.

- a classical baseline: its function and one entry in `baselines.BASELINES`;
- a refiner (`InferenceOptions.refine`, what is done with the network's fill): its function and one entry
  in `REFINERS` below (its factory returns it);
- a network: the trained models are the shipped weights files and checkpoints (`loading.load_model`); the
  one `network` entry says how any of them fills a photo.

`register` adds an entry at run time (a method defined outside the package); the command line, the web
app's schema and `evaluate` read the registry when they are built or imported, so register first.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .baselines import BASELINES
from .errors import ContextEncoderError
from .fill import FillMethod, FullResMethod, MethodKind
from .synthesis import synthesize

NO_REFINE = "none"  # the refiner that keeps the network's fill as it is (the options' default)


def _network_method(inpainter: Any, options: Any = None, synthesis: Any = None) -> FullResMethod:
    return inpainter.method(options, synthesis)  # `inpaint.Inpainter.method`


NETWORK = FillMethod(
    name="model",
    kind="network",
    label="Context encoder",
    description="the context encoder chosen with `model`",
    build=_network_method,
)

REFINERS: dict[str, FillMethod] = {
    m.name: m
    for m in (
        FillMethod(
            name=NO_REFINE,
            kind="refiner",
            label="network fill only",
            description="the network's fill as it is, upsampled",
            build=lambda: None,
        ),
        FillMethod(
            name="patch",
            kind="refiner",
            label="photo texture",
            description="texture copied from the photo into the network's fill (coarse-to-fine patch synthesis "
            "guided by it)",
            build=lambda: synthesize,
        ),
    )
}

REGISTRY: dict[str, FillMethod] = {NETWORK.name: NETWORK, **BASELINES, **REFINERS}
_TABLES = {"classical": BASELINES, "refiner": REFINERS}  # the tables by kind, which `register` also extends


def register(entry: FillMethod) -> FillMethod:
    """Add `entry` to the registry (and to its kind's table: `baselines.BASELINES`, `REFINERS`); a name that is
    taken is an error. Returns it."""
    if entry.name in REGISTRY:
        raise ContextEncoderError(f"a fill method named '{entry.name}' is already registered")
    if entry.kind not in _TABLES:
        raise ContextEncoderError(f"only classical methods and refiners can be registered, not a {entry.kind}")
    _TABLES[entry.kind][entry.name] = REGISTRY[entry.name] = entry
    return entry


def get(name: str, kind: MethodKind | None = None) -> FillMethod:
    """The entry `name` (of `kind`, when given); an unknown name is an error listing the known ones."""
    entry = REGISTRY.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        known = ", ".join(names(kind) if kind else REGISTRY)
        raise ContextEncoderError(f"unknown {kind or 'fill'} method '{name}' (known: {known})")
    return entry


def entries(
    kind: MethodKind | None = None, *, featured: bool | None = None, fullres: bool | None = None
) -> list[FillMethod]:
    """The entries of `kind` (every kind: None) in registry order; `featured`, `fullres`: those whose flag is so."""
    return [
        m
        for m in REGISTRY.values()
        if (kind is None or m.kind == kind)
        and (featured is None or m.featured == featured)
        and (fullres is None or m.fullres == fullres)
    ]


def names(kind: MethodKind | None = None, **filters: bool) -> tuple[str, ...]:
    """The names of `entries(kind, **filters)`."""
    return tuple(m.name for m in entries(kind, **filters))


def available(name: str) -> bool:
    """Whether the packages `name` imports are installed (looked up, not imported)."""
    return all(importlib.util.find_spec(module) is not None for module in get(name).modules)


def install_hint(name: str) -> str:
    """What to install for `name`: "pip install 'context-encoder[baselines]'" (empty when it needs nothing)."""
    extra = get(name).extra
    return f"pip install 'context-encoder[{extra}]'" if extra else ""


def reference_baselines() -> tuple[str, ...]:
    """The classical methods a model is held to (`evaluate.compare_with_baselines`): all but those that search a
    database of training images."""
    return tuple(m.name for m in entries("classical") if not m.database)
