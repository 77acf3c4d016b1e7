"""Classical inpainting baselines behind one interface, `fill(images, masks) -> images`, and their registry entries.

Images are (B, 3, H, W) float tensors in [0, 1], masks (B, 1, H, W) bool (True = hole); the output
keeps every known pixel. Diffusion-like methods (`telea`, `navier-stokes`, `biharmonic`, `harmonic`)
continue the border smoothly; exemplar methods copy texture from the image itself (`patchmatch`) or
extrapolate it from its Fourier basis (`fsr`). OpenCV (with its contrib modules), scikit-image and
PyPatchMatch come with the `baselines` extra (`pip install 'context-encoder[baselines]'`) and are
imported only when a baseline that needs them is built.

A new baseline is its fill function here and one `FillMethod` entry in `BASELINES`, at the end of this
file: the command line (`evaluate --baselines`), `evaluate`, the web app (with `featured`), the demo and
the benchmarks find it through `context_encoder.methods`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
from torch import Tensor

from .errors import ContextEncoderError
from .fill import Filler, FillMethod
from .holes import harmonic_fill

log = logging.getLogger(__name__)

# PatchMatch compares 7x7 patches (radius 3), the size of Barnes et al. (2009) and of the package's examples: on
# Kodak photos with stroke holes radius 2-7 scored within 0.3 dB of each other, and radius 7 took twice as long.
PATCHMATCH_RADIUS = 3


def _require(module: str, package: str):  # noqa: ANN202
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ContextEncoderError(f"this baseline needs {package}: pip install 'context-encoder[baselines]'") from None


def _to_uint8(img: Tensor) -> np.ndarray:
    return (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def _from_uint8(arr: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255.0


def _keep_known(images: Tensor, masks: Tensor, filled: Tensor) -> Tensor:
    return torch.where(masks, filled, images)


def mean_fill(images: Tensor, masks: Tensor) -> Tensor:
    """Each hole filled with the mean colour of its image's known pixels."""
    known = (~masks).float()
    mean = (images * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
    return _keep_known(images, masks, mean.expand_as(images))


def membrane_fill(images: Tensor, masks: Tensor) -> Tensor:
    """Harmonic (membrane) inpainting: Laplace's equation in each hole, the known pixels as boundary.

    The multigrid solver of `holes.harmonic_fill`, which is also what a residual generator starts from.
    """
    return _keep_known(images, masks, harmonic_fill(images, masks))


def opencv_fill(method: str, radius: int = 3) -> Filler:
    """OpenCV's `cv2.inpaint`: Telea's fast marching method or the Navier-Stokes method."""
    cv2 = _require("cv2", "OpenCV (opencv-python-headless)")
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        out = [
            _from_uint8(cv2.inpaint(_to_uint8(img), m[0].numpy().astype(np.uint8), radius, flag))
            for img, m in zip(images, masks)
        ]
        return _keep_known(images, masks, torch.stack(out))

    return fill


def patchmatch_fill(patch_size: int = PATCHMATCH_RADIUS, seed: int = 0) -> Filler:
    """PatchMatch inpainting (Barnes et al. 2009) from PyPatchMatch: the hole is synthesised coarse to
    fine from patches of the known part of the same image, so texture survives at any resolution.

    `patch_size` is the patch radius (patches span 2 * patch_size + 1 px); the randomised search is
    reseeded with `seed` before every image, so a fill depends only on its input.
    """
    pm = _require("patchmatch.patch_match", "PyPatchMatch (pypatchmatch)")
    if not getattr(pm, "patchmatch_available", True):
        raise ContextEncoderError("PyPatchMatch's compiled library did not load: reinstall pypatchmatch")

    def fill(images: Tensor, masks: Tensor) -> Tensor:
        out = []
        for img, m in zip(images, masks):
            if hasattr(pm, "set_random_seed"):
                pm.set_random_seed(seed)
            hole = m[0].numpy().astype(np.uint8)  # non-zero = hole
            out.append(_from_uint8(pm.inpaint(_to_uint8(img), hole, patch_size=patch_size)))
        return _keep_known(images, masks, torch.stack(out))

    return fill


def _require_xphoto():  # noqa: ANN202
    cv2 = _require("cv2", "OpenCV with its contrib modules (opencv-contrib-python-headless)")
    if not hasattr(cv2, "xphoto"):  # the plain opencv wheel lacks the contrib modules
        raise ContextEncoderError(
            "fsr needs OpenCV's contrib modules (cv2.xphoto): pip install 'context-encoder[baselines]'"
        )
    return cv2


def fsr_fill(images: Tensor, masks: Tensor) -> Tensor:
    """Frequency-selective reconstruction (Genser et al. 2018; OpenCV contrib's `xphoto.inpaint`, fast mode):
    each block around the hole is approximated by a sparse sum of Fourier basis functions fitted to its
    known pixels, which continues regular textures and edges."""
    cv2 = _require_xphoto()
    out = []
    for img, m in zip(images, masks):
        src = np.ascontiguousarray(_to_uint8(img)[..., ::-1])  # FSR expects BGR
        valid = np.where(m[0].numpy(), 0, 255).astype(np.uint8)  # xphoto's convention: 0 = hole, non-zero = known
        dst = np.empty_like(src)
        cv2.xphoto.inpaint(src, valid, dst, cv2.xphoto.INPAINT_FSR_FAST)
        out.append(_from_uint8(dst[..., ::-1]))
    return _keep_known(images, masks, torch.stack(out))  # FSR also smooths known pixels slightly


def _require_restoration():  # noqa: ANN202
    return _require("skimage.restoration", "scikit-image")


def biharmonic_fill(images: Tensor, masks: Tensor) -> Tensor:
    """scikit-image's `inpaint_biharmonic`: the smoothest surface matching the hole's boundary."""
    restoration = _require_restoration()
    out = [
        torch.from_numpy(
            restoration.inpaint_biharmonic(img.permute(1, 2, 0).double().numpy(), m[0].numpy(), channel_axis=-1)
        )
        .permute(2, 0, 1)
        .float()
        for img, m in zip(images, masks)
    ]
    return _keep_known(images, masks, torch.stack(out).clamp(0, 1))


class HogNearestNeighbour:
    """The paper's NN-inpainting baseline: paste the hole from the training image whose context looks closest.

    Every database image is described by per-cell HOG histograms (8x8 px cells, 9 orientations); a
    query is compared only on the cells its hole does not touch, and the best match's pixels fill the
    hole. Database images are centre-cropped and resized like the evaluation images.
    """

    def __init__(self, database: Tensor, cell: int = 8):
        self.feature = _require("skimage.feature", "scikit-image")
        self.color = _require("skimage.color", "scikit-image")
        self.cell = cell
        self.database = database  # (N, 3, S, S) in [0, 1]
        self.features = torch.stack([self._cells(img) for img in database]).flatten(1)  # (N, R*C*9)
        self.sq = (self.features**2).float()

    def _cells(self, img: Tensor) -> Tensor:
        grey = self.color.rgb2gray(img.permute(1, 2, 0).numpy())
        h = self.feature.hog(
            grey, orientations=9, pixels_per_cell=(self.cell, self.cell), cells_per_block=(1, 1), feature_vector=False
        )
        return torch.from_numpy(h.reshape(h.shape[0], h.shape[1], -1)).float()  # (R, C, 9)

    def _valid_cells(self, mask: Tensor) -> Tensor:
        """(R, C, 9) weights: 1 for cells the hole does not touch."""
        c = self.cell
        s = mask.shape[-1] // c * c
        touched = mask[0, :s, :s].reshape(s // c, c, s // c, c).any(dim=3).any(dim=1)
        return (~touched).float()[..., None].expand(-1, -1, 9)

    def __call__(self, images: Tensor, masks: Tensor) -> Tensor:
        out = []
        for img, m in zip(images, masks):
            w = self._valid_cells(m).flatten()
            q = self._cells(img).flatten() * w
            dist = self.sq @ w - 2 * self.features @ q  # ||w*(q - f)||^2 up to a constant
            out.append(self.database[int(dist.argmin())])
        return _keep_known(images, masks, torch.stack(out))


def _checked(fill: Filler, require: Callable[[], object]) -> Callable[[], Filler]:
    """A factory returning `fill` once `require` (its packages' import) succeeds: a missing extra fails at build."""

    def build() -> Filler:
        require()
        return fill

    return build


# px around the holes that OpenCV's Telea reads (its fast marching reaches a few times its 3 px radius beyond
# them); the web app's tests check that filling this part gives the whole image's pixels
TELEA_REACH = 32
EXTRA = "baselines"
# The classical method full-resolution fills are compared with image by image (win rates in `benchmarks/fullres.py`):
# the exemplar fill that keeps texture, as the network with refine="patch" does.
REFERENCE = "patchmatch"

# The classical methods, in the order `--baselines all` runs them: the classical part of `methods.REGISTRY`.
BASELINES: dict[str, FillMethod] = {
    m.name: m
    for m in (
        FillMethod(
            name="mean",
            kind="classical",
            label="mean colour",
            description="each hole filled with its image's mean known colour",
            build=lambda: mean_fill,
        ),
        FillMethod(
            name="telea",
            kind="classical",
            label="OpenCV Telea",
            description="OpenCV's Telea fast-marching fill (classical diffusion baseline)",
            build=partial(opencv_fill, "telea"),
            extra=EXTRA,
            modules=("cv2",),
            reach=TELEA_REACH,
            featured=True,
            fullres=True,
        ),
        FillMethod(
            name="navier-stokes",
            kind="classical",
            label="OpenCV Navier-Stokes",
            description="OpenCV's Navier-Stokes fill (classical diffusion baseline)",
            build=partial(opencv_fill, "navier-stokes"),
            extra=EXTRA,
            modules=("cv2",),
        ),
        FillMethod(
            name="biharmonic",
            kind="classical",
            label="biharmonic",
            description="scikit-image's biharmonic fill: the smoothest surface matching the hole's border",
            build=_checked(biharmonic_fill, _require_restoration),
            extra=EXTRA,
            modules=("skimage",),
        ),
        FillMethod(
            name="harmonic",
            kind="classical",
            label="membrane",
            description="the harmonic membrane over each hole's border (this package's Laplace solver)",
            build=lambda: membrane_fill,
        ),
        FillMethod(
            name="nn-hog",
            kind="classical",
            label="NN-HOG",
            description="the paper's nearest-neighbour fill: the training image whose context's HOG is closest",
            build=HogNearestNeighbour,
            extra=EXTRA,
            modules=("skimage",),
            database=True,
        ),
        FillMethod(
            name="patchmatch",
            kind="classical",
            label="PatchMatch",
            description="PatchMatch (Barnes et al. 2009): copies patches of the photo (exemplar baseline)",
            build=patchmatch_fill,
            extra=EXTRA,
            modules=("patchmatch",),
            featured=True,
            fullres=True,
        ),
        FillMethod(
            name="fsr",
            kind="classical",
            label="FSR",
            description="frequency-selective reconstruction (OpenCV contrib): a sparse Fourier fit per block",
            build=_checked(fsr_fill, _require_xphoto),
            extra=EXTRA,
            modules=("cv2",),
            fullres=True,
        ),
    )
}


def build_baselines(names: Sequence[str], nn_database: Callable[[], Tensor] | None = None) -> dict[str, Filler]:
    """Fillers by name; `nn_database` loads the NN-inpainting database on demand (None: nn-hog unavailable)."""
    fillers: dict[str, Filler] = {}
    for name in names:
        entry = BASELINES.get(name)
        if entry is None:
            raise ContextEncoderError(f"unknown baseline '{name}' (known: {', '.join(BASELINES)})")
        if not entry.database:
            fillers[name] = entry.build()
        elif nn_database is None:
            raise ContextEncoderError(f"{name} needs a folder of training images to search: pass --nn-data DIR")
        else:
            fillers[name] = entry.build(nn_database())
    return fillers


def parse_baselines(text: str | None) -> list[str]:
    """`all`, a comma-separated list, or nothing."""
    if not text:
        return []
    names = list(BASELINES) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ContextEncoderError(f"unknown baseline '{unknown[0]}' (known: {', '.join(BASELINES)}, all)")
    return names
