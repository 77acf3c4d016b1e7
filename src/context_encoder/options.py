"""How a trained generator's fill becomes the output: `InferenceOptions`, the one place these defaults live.

It sits below both the weights files (`pretrained`, which store the options a model was measured with)
and inference (`inpaint`, which applies them), so neither reaches the other for it. The patch synthesis
of `refine="patch"` is configured by the `synthesis` field (`synthesis.SynthesisSettings`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from . import methods
from .errors import InputError
from .synthesis import SynthesisSettings


@dataclass(frozen=True)
class InferenceOptions:
    """How a trained generator's fill is turned into the output.

    A shipped model stores the options it was measured with beside its weights, and loading reads them
    back; the command line, the web app, `evaluate` and the benchmarks pass one of these objects.
    """

    blend: bool = True  # seam blending: a harmonic correction in the hole so the fill meets its context
    flip_average: bool = True  # mean of the fills of each window and of its mirror image (twice the work)
    # what is done with the network's fill: a refiner of `methods.REFINERS` ("none": the fill, upsampled;
    # "patch": texture from the photo, beyond the paper)
    refine: str = methods.NO_REFINE
    synthesis: SynthesisSettings = field(default_factory=SynthesisSettings)  # the patch synthesis of "patch"

    def __post_init__(self) -> None:
        refiners = methods.names("refiner")
        if self.refine not in refiners:
            raise InputError(f"refine must be one of {', '.join(refiners)}, got '{self.refine}'")
        if not isinstance(self.synthesis, SynthesisSettings):
            raise InputError(f"synthesis must be a SynthesisSettings, got {self.synthesis!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `synthesis` only when it differs from the defaults (so older readers see the keys
        they know, and a model stored with the defaults follows them)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "synthesis"}
        if self.synthesis != SynthesisSettings():
            out["synthesis"] = dataclasses.asdict(self.synthesis)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceOptions:
        """From `to_dict()` output (or the older `seam_blending` key); unknown keys or values of the wrong type raise.

        A dict without `synthesis` (every one stored before it was an option) gets the default settings.
        """
        data = dict(data)
        if "seam_blending" in data:
            data["blend"] = data.pop("seam_blending")
        if "synthesis" in data:
            if not isinstance(data["synthesis"], dict):
                raise InputError(f"inference option 'synthesis' must be an object, got {data['synthesis']!r}")
            settings = _checked(SynthesisSettings, data["synthesis"], "synthesis.")
            try:
                data["synthesis"] = SynthesisSettings(**settings)
            except ValueError as exc:
                raise InputError(f"inference option 'synthesis': {exc}") from None
        return cls(**_checked(cls, data, ""))

    def describe(self) -> str:
        """A short label: 'blended, flip-averaged', 'raw' when nothing is on."""
        words = [w for w, on in (("blended", self.blend), ("flip-averaged", self.flip_average)) if on]
        if self.refine != methods.NO_REFINE:
            words.append(f"{self.refine}-refined")
        return ", ".join(words) or "raw"


def _checked(cls: type, data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """`data` with its keys and value types checked against the fields of the dataclass `cls` (an int is a float)."""
    types = {f.name: type(f.default) for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    known = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for key, value in data.items():
        if key not in known:
            raise InputError(f"unknown inference option '{prefix}{key}' (known: {', '.join(sorted(known))})")
        expected = types.get(key)
        if expected is float and type(value) is int:
            value = float(value)
        if expected is not None and type(value) is not expected:
            raise InputError(f"inference option '{prefix}{key}' must be a {expected.__name__}, got {value!r}")
        out[key] = value
    return out


RAW = InferenceOptions(blend=False, flip_average=False)  # the generator's own output, as validation scores it
