"""The fill-method registry: one entry per method, and every consumer derives from it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from context_encoder import methods
from context_encoder.baselines import BASELINES, build_baselines, parse_baselines
from context_encoder.errors import ContextEncoderError
from context_encoder.fill import batch_filler, filler_method
from context_encoder.options import InferenceOptions

from .test_cli import option_choices

ROOT = Path(__file__).resolve().parents[1]


def test_every_entry_is_complete_and_of_its_kind():
    assert methods.names("network") == ("model",)
    assert methods.names("refiner")[0] == methods.NO_REFINE == InferenceOptions().refine
    assert methods.names("classical") == tuple(BASELINES)
    for entry in methods.entries():
        assert entry.label and entry.description and callable(entry.build), entry.name
        assert entry.kind in ("network", "classical", "refiner")
        assert (entry.reach is None) or entry.kind == "classical"
    assert methods.reference_baselines() == tuple(n for n in BASELINES if not BASELINES[n].database)
    with pytest.raises(ContextEncoderError, match="unknown refiner method 'telea'"):
        methods.get("telea", "refiner")


def test_the_command_line_offers_the_registry():
    assert option_choices("inpaint", "--refine") == list(methods.names("refiner"))
    assert parse_baselines("all") == list(methods.names("classical"))


def test_the_two_shapes_of_a_fill_method_agree():
    """`filler_method` (batch to photo) and `batch_filler` (photo to batch) give the same pixels as the `Filler`."""
    fill = build_baselines(["harmonic"])["harmonic"]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    hole = np.zeros((20, 24), bool)
    hole[5:12, 6:15] = True
    as_photo = filler_method(fill)(image, hole)
    assert as_photo.dtype == np.uint8 and (as_photo[~hole] == image[~hole]).all()
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    again = batch_filler(filler_method(fill))(batch, torch.from_numpy(hole)[None, None])
    assert torch.equal(again[0], torch.from_numpy(as_photo).permute(2, 0, 1).float() / 255)


# Run in a fresh process: a method registered before the command line, the web app and `evaluate` are imported,
# as an entry added to `baselines.BASELINES` or `methods.REFINERS` is.
_REGISTERED = """
import io, json
import numpy as np, torch
from PIL import Image
from context_encoder import methods
from context_encoder.fill import FillMethod

def grey_fill(images, masks):
    return torch.where(masks, torch.full_like(images, 0.5), images)

def darken(image, hole, guide, settings):
    return torch.where(hole[None], guide * 0.5, image)

methods.register(FillMethod(name="grey", kind="classical", label="Grey", description="every hole grey",
                            build=lambda: grey_fill, featured=True, fullres=True))
methods.register(FillMethod(name="darken", kind="refiner", label="darker", description="the fill, darker",
                            build=lambda: darken))

from fastapi.testclient import TestClient
from benchmarks import fullres as bench
from context_encoder import demo, evaluate
from context_encoder.baselines import parse_baselines
from context_encoder.cli import build_parser
from context_encoder.options import InferenceOptions
from context_encoder.web import create_app
from context_encoder.web.schemas import METHODS, InpaintFields
from tests.test_cli import option_choices

client = TestClient(create_app({}), base_url="http://localhost")
listed = {m["name"]: m for m in client.get("/api/models").json()["methods"]}
schema = client.get("/openapi.json").json()
form = schema["paths"]["/api/inpaint"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
image, hole = np.full((24, 32, 3), 200, np.uint8), np.zeros((24, 32), np.uint8)
hole[8:16, 10:20] = 255
files = {}
for name, arr in (("image", image), ("mask", hole)):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    files[name] = (name + ".png", buf.getvalue())
res = client.post("/api/inpaint", files=files, data={"method": "grey"})
filled = np.asarray(Image.open(io.BytesIO(res.content)))
print(json.dumps({
    "cli_baselines": parse_baselines("all"),
    "cli_help": next(
        a.help for a in build_parser()._subparsers._group_actions[0].choices["evaluate"]._actions
        if "--baselines" in a.option_strings
    ),
    "cli_refine": option_choices("inpaint", "--refine"),
    "evaluate": list(evaluate.CLASSICAL),
    "schema_methods": list(METHODS),
    "schema_form_methods": form["properties"]["method"]["enum"],
    "schema_refine": form["properties"]["refine"]["enum"],
    "menu": listed["grey"],
    "fill": [res.status_code, int(filled[12, 15, 0]), int(filled[0, 0, 0])],
    "options": InferenceOptions(refine="darken").refine,
    "demo": list(demo._featured()),
    "benchmark": list(bench.METHODS),
}))
"""


def test_a_registered_method_appears_everywhere():
    pytest.importorskip("fastapi")
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTERED], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["cli_baselines"][-1] == "grey" and found["evaluate"][-1] == "grey" and "grey" in found["cli_help"]
    assert found["cli_refine"][-1] == "darken" and found["schema_refine"][-1] == "darken"
    assert "grey" in found["schema_methods"] and "grey" in found["schema_form_methods"]
    assert found["menu"] == {
        "name": "grey",
        "kind": "classical",
        "label": "Grey",
        "available": True,
        "description": "every hole grey",
    }
    assert found["fill"] == [200, 128, 200]  # the hole grey, the rest as it was
    assert found["options"] == "darken" and "Grey" in found["demo"] and "grey" in found["benchmark"]
