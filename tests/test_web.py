"""The web app's HTTP API with an in-process client: results, limits, bad input, the queue under load, cancelling
a request, the answer's format, and `serve`'s check of its models before it listens.

Over 400 lines on purpose: one module per surface under test, the HTTP API, with the fixtures it shares.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import logging
import re
import socket
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
pytest.importorskip("python_multipart")
try:  # the client Starlette's TestClient prefers; plain httpx works too
    import httpx2 as httpx
except ImportError:
    httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from context_encoder.config import load_config  # noqa: E402
from context_encoder.decode import SERVER_MAX_PIXELS as MAX_PIXELS  # noqa: E402
from context_encoder.inpaint import InferenceOptions, Inpainter  # noqa: E402
from context_encoder.models import build_models  # noqa: E402
from context_encoder.web import create_app, fill  # noqa: E402

from .conftest import smooth_image  # noqa: E402

torch.set_num_threads(1)
needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV (baselines extra) missing")


@pytest.fixture(scope="module")
def tiny() -> Inpainter:
    cfg = load_config("tiny")
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    return Inpainter(gen, cfg)


@pytest.fixture(scope="module")
def client(tiny: Inpainter):
    with local(create_app(models={"tiny": lambda: tiny})) as c:
        yield c


def local(app, **kw) -> TestClient:
    """An in-process client that calls the app by a name it answers for (TestClient's own is testserver)."""
    return TestClient(app, base_url="http://localhost", **kw)


def png(arr: np.ndarray | Image.Image, fmt: str = "PNG", **kw) -> bytes:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    return smooth_image(np.random.default_rng(seed), h, w)


def hole(h: int = 64, w: int = 80) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[20:34, 28:52] = True
    return m


def mask_png(m: np.ndarray) -> bytes:
    return png(m.astype(np.uint8) * 255)


def form(image: bytes, mask: bytes, **fields: str) -> dict:
    files = {"image": ("photo.png", image, "image/png"), "mask": ("mask.png", mask, "image/png")}
    return {"files": files, "data": fields}


def decode(res) -> np.ndarray:
    assert res.status_code == 200, res.text
    assert res.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(res.content)))


def assert_filled(out: np.ndarray, img: np.ndarray, m: np.ndarray) -> None:
    assert out.shape == img.shape
    changed = (out != img).any(axis=2)
    assert not changed[~m].any(), "known pixels must come back bit-identical"
    assert changed[m].mean() > 0.5, "the hole must be filled with something new"


def test_inpaint_with_the_model(client: TestClient) -> None:
    img, m = photo(), hole()
    res = client.post("/api/inpaint", **form(png(img), mask_png(m)))
    assert_filled(decode(res), img, m)
    assert res.headers["x-inpaint-method"] == "model" and res.headers["x-inpaint-model"] == "tiny"
    assert float(res.headers["x-inpaint-seconds"]) >= 0


def test_inpaint_names_the_model_and_takes_a_browser_style_rgba_mask(client: TestClient) -> None:
    img, m = photo(seed=1), hole()
    rgba = np.zeros((*m.shape, 4), np.uint8)
    rgba[m] = 255  # white opaque hole on a transparent canvas, as a canvas exports it
    res = client.post("/api/inpaint", **form(png(img), png(rgba), model="tiny", method="model"))
    assert_filled(decode(res), img, m)


@needs_opencv
def test_inpaint_with_telea(client: TestClient) -> None:
    img, m = photo(seed=2), hole()
    res = client.post("/api/inpaint", **form(png(img), mask_png(m), method="telea"))
    assert_filled(decode(res), img, m)
    assert res.headers["x-inpaint-method"] == "telea" and "x-inpaint-model" not in res.headers


def test_inpaint_with_patchmatch_and_patch_refinement(client: TestClient) -> None:
    pytest.importorskip("patchmatch")
    img, m = photo(seed=3), hole()
    res = client.post("/api/inpaint", **form(png(img), mask_png(m), method="patchmatch"))
    assert_filled(decode(res), img, m)
    assert res.headers["x-inpaint-method"] == "patchmatch"
    plain = decode(client.post("/api/inpaint", **form(png(img), mask_png(m))))
    refined = decode(client.post("/api/inpaint", **form(png(img), mask_png(m), refine="patch")))
    assert_filled(refined, img, m)
    assert (refined[m] != plain[m]).any()
    assert client.post("/api/inpaint", **form(png(img), mask_png(m), refine="sharpen")).status_code == 400


def test_inference_options_per_request(client: TestClient, tiny: Inpainter) -> None:
    """`flip_average` and `blend` override the model's own options for one request, and only its hole pixels."""
    img, m = photo(seed=7), hole()

    def fill(**fields: str) -> np.ndarray:
        return decode(client.post("/api/inpaint", **form(png(img), mask_png(m), **fields)))

    # unblended, as blending the untrained model's near-constant fill hides the one-grey-level differences
    single, averaged = fill(blend="false", flip_average="false"), fill(blend="false", flip_average="true")
    assert_filled(single, img, m)
    np.testing.assert_array_equal(single[~m], averaged[~m])
    assert (single[m] != averaged[m]).any()
    default = fill()  # the model's own options: blended and averaged
    np.testing.assert_array_equal(default, fill(blend="true", flip_average="1"))
    assert (default[m] != averaged[m]).any()
    assert tiny.options == InferenceOptions()  # the requests did not change the model
    res = client.post("/api/inpaint", **form(png(img), mask_png(m), blend="maybe"))
    assert res.status_code == 400 and "blend" in res.json()["detail"]


def test_empty_mask_returns_the_image_unchanged(client: TestClient) -> None:
    img = photo(seed=3)
    res = client.post("/api/inpaint", **form(png(img), mask_png(np.zeros(img.shape[:2], bool))))
    np.testing.assert_array_equal(decode(res), img)


def test_grey_and_jpeg_inputs_come_back_as_rgb_of_the_same_size(client: TestClient) -> None:
    grey = photo(seed=4)[..., 0]
    m = hole()
    out = decode(client.post("/api/inpaint", **form(png(grey), mask_png(m))))
    assert out.shape == (*grey.shape, 3)
    np.testing.assert_array_equal(out[~m], np.repeat(grey[..., None], 3, axis=2)[~m])
    jpeg = png(photo(seed=5), "JPEG", quality=90)
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert_filled(decode(client.post("/api/inpaint", **form(jpeg, mask_png(m)))), decoded, m)


def test_exif_rotated_photo_takes_a_mask_of_the_size_shown(client: TestClient) -> None:
    img = Image.fromarray(photo(48, 80, seed=6))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 48 wide, 80 high
    data = png(img, "JPEG", quality=95, exif=exif)
    m = np.zeros((80, 48), bool)
    m[30:50, 10:30] = True
    out = decode(client.post("/api/inpaint", **form(data, mask_png(m))))
    assert out.shape == (80, 48, 3)
    res = client.post("/api/inpaint", **form(data, mask_png(np.zeros((48, 80), bool))))
    assert res.status_code == 400 and "48x80" in res.json()["detail"]


def test_upload_over_max_bytes_is_413(tiny: Inpainter) -> None:
    img, m = photo(), hole()
    body = form(png(img), mask_png(m))
    with local(create_app({"tiny": lambda: tiny}, max_bytes=2000)) as c:
        res = c.post("/api/inpaint", **body)
        assert res.status_code == 413 and "limit" in res.json()["detail"]
        # without Content-Length (chunked upload) the limit is enforced while streaming
        request = c.build_request("POST", "/api/inpaint", **body)
        raw = request.read()

        def chunks():
            for i in range(0, len(raw), 512):
                yield raw[i : i + 512]

        res = c.post("/api/inpaint", content=chunks(), headers={"content-type": request.headers["content-type"]})
        assert res.status_code == 413
        small = photo(8, 8)
        ok = c.post("/api/inpaint", **form(png(small), mask_png(np.zeros((8, 8), bool))))
        assert ok.status_code == 200


def test_image_over_max_pixels_is_413(tiny: Inpainter) -> None:
    with local(create_app({"tiny": lambda: tiny}, max_pixels=64 * 64)) as c:
        res = c.post("/api/inpaint", **form(png(photo(64, 80)), mask_png(hole())))
        assert res.status_code == 413 and "pixels" in res.json()["detail"]
        assert c.post("/api/inpaint", **form(png(photo(64, 64)), mask_png(hole(64, 64)))).status_code == 200


def _png_header(width: int, height: int) -> bytes:
    """A PNG that only claims its size (no pixel data): what a decompression bomb looks like to the server."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_huge_images_are_refused_before_decoding(client: TestClient) -> None:
    m = mask_png(hole())
    for side in (7000, 30000):  # over max_pixels; over Pillow's own bomb limit
        res = client.post("/api/inpaint", **form(_png_header(side, side), m))
        assert res.status_code == 413 and "40,000,000" in res.json()["detail"]


def test_not_an_image_is_400_with_a_json_message(client: TestClient) -> None:
    m = mask_png(hole())
    for junk in (b"hello, not an image", png(photo())[:60]):  # text; a PNG cut after its header
        res = client.post("/api/inpaint", **form(junk, m))
        assert res.status_code == 400
        assert res.headers["content-type"] == "application/json"
        assert "image" in res.json()["detail"]
    res = client.post("/api/inpaint", **form(png(photo()), b"GIF89a-broken"))
    assert res.status_code == 400 and "mask" in res.json()["detail"]


def test_size_mismatch_is_400(client: TestClient) -> None:
    res = client.post("/api/inpaint", **form(png(photo(64, 80)), mask_png(hole(64, 64))))
    assert res.status_code == 400
    assert "64x64" in res.json()["detail"] and "80x64" in res.json()["detail"]


def test_unknown_model_is_400_listing_the_known_ones(client: TestClient) -> None:
    res = client.post("/api/inpaint", **form(png(photo()), mask_png(hole()), model="nope"))
    assert res.status_code == 400
    assert "nope" in res.json()["detail"] and "tiny" in res.json()["detail"]


def test_other_bad_requests_are_400(client: TestClient) -> None:
    img, m = png(photo()), mask_png(hole())
    cases = [
        client.post("/api/inpaint", **form(img, m, method="magic")),
        client.post("/api/inpaint", files={"image": ("a.png", img, "image/png")}),  # no mask
        client.post("/api/inpaint", json={"image": "x"}),  # not a form
        client.post("/api/inpaint", **form(img, mask_png(np.ones((64, 80), bool)))),  # nothing left to fill from
    ]
    for res in cases:
        assert res.status_code == 400, res.text
        assert res.json()["detail"]


def test_nothing_is_written_to_disk(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 1+ MB upload (where Starlette's form parser would spool to a temporary file) stays in memory."""

    def refuse(*args, **kwargs):
        raise AssertionError("the app wrote a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    data = png(noise, compress_level=0)
    assert len(data) > 2**20
    m = np.zeros((700, 700), bool)
    m[300:340, 300:360] = True
    assert_filled(decode(client.post("/api/inpaint", **form(data, mask_png(m)))), noise, m)


def test_models_healthz_and_page(client: TestClient) -> None:
    assert client.post("/api/inpaint", **form(png(photo()), mask_png(hole()))).status_code == 200  # loads it
    info = client.get("/api/models").json()
    assert info["default"] == "tiny"
    assert [m["name"] for m in info["models"]] == ["tiny"]
    assert {m["name"] for m in info["methods"]} == {"model", "telea", "patchmatch"}
    assert info["limits"] == {"max_bytes": 20 * 2**20, "max_pixels": MAX_PIXELS, "read_timeout": 30.0}
    tiny = info["models"][0]
    assert tiny["loaded"] and tiny["summary"]["image_size"] == 32
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "mask.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    static = Path(__file__).resolve().parents[1] / "src" / "context_encoder" / "web" / "static"
    for path in static.iterdir():  # works offline: no CDN, nothing loaded from elsewhere
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", path.read_text()), path.name


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/inpaint", "/api/models", "/api/queue", "/api/cancel", "/healthz"} <= set(paths)
    routes = [("/api/inpaint", "post"), ("/api/models", "get"), ("/api/queue", "get"), ("/api/cancel", "post")]
    for path, method in [*routes, ("/healthz", "get")]:
        route = paths[path][method]
        assert route["summary"] and route["description"]
    inpaint = paths["/api/inpaint"]["post"]
    form_schema = inpaint["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(form_schema["required"]) == {"image", "mask"}
    fields = {"image", "mask", "model", "method", "blend", "flip_average", "refine", "feather", "format"}
    assert set(form_schema["properties"]) == fields
    assert form_schema["properties"]["method"]["enum"] == ["model", "telea", "patchmatch"]
    assert form_schema["properties"]["flip_average"]["type"] == "boolean"
    assert form_schema["properties"]["feather"] == {
        **form_schema["properties"]["feather"],
        "type": "integer",
        "default": 0,
    }
    assert form_schema["properties"]["format"]["enum"] == ["png", "jpeg", "webp", "input"]
    for route in (inpaint, paths["/api/queue"]["get"], paths["/api/cancel"]["post"]):
        assert [(p["name"], p["in"]) for p in route["parameters"]] == [("ticket", "query")]
    position = paths["/api/queue"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert position.endswith("/QueuePosition")
    assert "Retry-After" in inpaint["responses"]["503"]["headers"]
    assert {"image/png", "image/jpeg", "image/webp"} <= set(inpaint["responses"]["200"]["content"])
    assert {"400", "413", "503"} <= set(inpaint["responses"])


def test_no_models_still_offers_telea(tiny: Inpainter) -> None:
    with local(create_app({})) as c:
        info = c.get("/api/models").json()
        assert info["models"] == [] and info["default"] is None
        res = c.post("/api/inpaint", **form(png(photo()), mask_png(hole())))
        assert res.status_code == 400 and "no models" in res.json()["detail"]
        if importlib.util.find_spec("cv2") is not None:
            res = c.post("/api/inpaint", **form(png(photo()), mask_png(hole()), method="telea"))
            assert res.status_code == 200


def test_model_is_loaded_once_and_lazily(tiny: Inpainter) -> None:
    calls = []

    def factory() -> Inpainter:
        calls.append(1)
        return tiny

    with local(create_app({"tiny": factory, "other": factory})) as c:
        assert not calls
        for _ in range(2):
            assert c.post("/api/inpaint", **form(png(photo()), mask_png(hole()))).status_code == 200
        assert len(calls) == 1
        assert [m["loaded"] for m in c.get("/api/models").json()["models"]] == [True, False]


class _Gated(Inpainter):
    """The tiny model, but each fill first waits for `gate` (or sleeps `delay` seconds)."""

    def __init__(self, base: Inpainter, gate: threading.Event | None = None, delay: float = 0.0):
        super().__init__(base.gen, base.cfg, options=base.options)
        self.gate, self.delay = gate, delay

    def __call__(self, image, mask, options=None):
        if self.gate is not None:
            assert self.gate.wait(20)
        time.sleep(self.delay)
        return super().__call__(image, mask, options)


def _async_client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost", timeout=60)


async def _wait_for(client, running: int, waiting: int) -> float:
    """Poll /healthz until the queue shows `running` and `waiting` jobs; the slowest answer's seconds."""
    slowest = 0.0
    for _ in range(400):
        start = time.perf_counter()
        res = await client.get("/healthz")
        slowest = max(slowest, time.perf_counter() - start)
        assert res.status_code == 200
        queue = res.json()["queue"]
        if (queue["running"], queue["waiting"]) == (running, waiting):
            return slowest
        await asyncio.sleep(0.01)
    raise AssertionError(f"the queue never showed {running} running and {waiting} waiting")


def test_full_queue_answers_503_with_retry_after_and_healthz_stays_responsive(tiny: Inpainter) -> None:
    gate = threading.Event()
    app = create_app({"tiny": lambda: _Gated(tiny, gate)}, workers=1, queue_size=1)
    body = form(png(photo()), mask_png(hole()))

    async def run():
        async with _async_client(app) as client:
            first = asyncio.create_task(client.post("/api/inpaint", **body))
            await _wait_for(client, running=1, waiting=0)
            second = asyncio.create_task(client.post("/api/inpaint", **body))
            slowest = await _wait_for(client, running=1, waiting=1)  # inference blocked, the loop is not
            refused = await client.post("/api/inpaint", **body)
            gate.set()
            done = await asyncio.gather(first, second)
            return refused, done, slowest

    try:
        refused, done, slowest = asyncio.run(run())
    finally:
        gate.set()
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1 and "busy" in refused.json()["detail"]
    assert [r.status_code for r in done] == [200, 200]
    assert slowest < 2.0


def test_20_concurrent_requests_answer_200_or_503_never_500(tiny: Inpainter) -> None:
    app = create_app({"tiny": lambda: _Gated(tiny, delay=0.1)}, workers=2, queue_size=3)
    img, m = photo(), hole()
    body = form(png(img), mask_png(m))

    async def run():
        async with _async_client(app) as client:
            tasks = [asyncio.create_task(client.post("/api/inpaint", **body)) for _ in range(20)]
            health = await client.get("/healthz")
            answers = await asyncio.gather(*tasks)
            return answers, health, await client.get("/healthz")

    answers, during, after = asyncio.run(run())
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503}, codes
    assert codes.count(200) >= 1
    assert codes.count(503) >= 1, "20 requests at once must overflow a queue of 2 workers + 3 places"
    for r in answers:
        if r.status_code == 200:
            assert_filled(decode(r), img, m)
        else:
            assert r.headers["retry-after"].isdigit()
    assert during.status_code == 200 and after.status_code == 200
    idle = {"workers": 2, "running": 0, "waiting": 0, "stopping": 0, "uploading": 0, "queue_size": 3}
    assert after.json()["queue"] == idle


def tiny_checkpoint(path: Path, model: Inpainter) -> Path:
    """A training checkpoint holding `model`'s generator and config, as `train` writes one."""
    from context_encoder.checkpoint import save_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, {"step": 1, "config": model.cfg.to_dict(), "generator": model.gen.state_dict()})


def test_serve_builds_the_app_and_prints_its_url(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path, tiny: Inpainter
) -> None:
    from context_encoder.cli import main
    from context_encoder.errors import InputError
    from context_encoder.web import serve

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    ckpt = tiny_checkpoint(tmp_path / "exp" / "checkpoints" / "best.pt", tiny)
    serve(checkpoint=str(ckpt), port=8123, max_pixels=1000)
    assert "http://127.0.0.1:8123/" in capsys.readouterr().out
    assert started["host"] == "127.0.0.1" and started["port"] == 8123 and started["limit_concurrency"] == 64
    with local(started["app"]) as c:
        info = c.get("/api/models").json()
        assert [m["name"] for m in info["models"]] == ["exp-best"] and info["limits"]["max_pixels"] == 1000
        assert info["models"][0]["loaded"], "loaded before the server listens"
    with pytest.raises(InputError):
        serve(checkpoint=str(tmp_path / "missing.pt"))
    with pytest.raises(InputError, match="unknown model"):
        serve(model="no-such-model")

    # the command line: the bound address is answered, and the names and origins given
    args = ["serve", "--checkpoint", str(ckpt), "--host", "192.168.7.7", "--allow-host", "box.lan"]
    assert main([*args, "--allow-origin", "https://app.example", "--allow-origin", "http://box.lan:9000"]) == 0
    for base, status in [("http://192.168.7.7:8000", 200), ("http://box.lan", 200), ("http://evil.example", 400)]:
        assert TestClient(started["app"], base_url=base).get("/healthz").status_code == status, base
    with local(started["app"]) as c:
        body = form(png(photo()), mask_png(hole()), method="magic")  # refused by the form check, not the origin
        for origin, status in [("https://app.example", 400), ("http://box.lan:9000", 400), ("https://x.example", 403)]:
            assert c.post("/api/inpaint", **body, headers={"Origin": origin}).status_code == status, origin
    with pytest.raises(InputError, match="origin"):
        serve(checkpoint=str(ckpt), allowed_origins=["not a url"])
    # the upload cap: 40 MP unless --max-pixels says otherwise (the command line's own cap is 70 MP)
    assert main(["serve", "--checkpoint", str(ckpt)]) == 0
    with local(started["app"]) as c:
        assert c.get("/api/models").json()["limits"]["max_pixels"] == 40_000_000
    assert main(["serve", "--checkpoint", str(ckpt), "--max-pixels", "60000000"]) == 0
    with local(started["app"]) as c:
        assert c.get("/api/models").json()["limits"]["max_pixels"] == 60_000_000
    assert main(["serve", "--checkpoint", str(ckpt), "--max-pixels", "0"]) == 2
    assert "--max-pixels must be a positive number, got 0" in capsys.readouterr().err


def test_serve_refuses_a_damaged_model_before_it_listens(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path, tiny: Inpainter
) -> None:
    """A checkpoint that cannot be loaded stops `serve` with one line naming the file and the problem, exit
    code 2, and uvicorn never starts (before, the server started and answered the first fill with 500)."""
    from context_encoder.cli import main
    from context_encoder.errors import CheckpointError
    from context_encoder.safetensors_io import save_file
    from context_encoder.web import serve

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    garbage = tmp_path / "damaged.pt"
    garbage.write_bytes(b"not a checkpoint")
    truncated = tmp_path / "run" / "checkpoints" / "last.pt"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(tiny_checkpoint(tmp_path / "whole.pt", tiny).read_bytes()[:5000])
    other = load_config("tiny", ["model.nef=16"])  # weights that do not fit the config they come with
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(tiny.gen.state_dict(), mismatched, {"config": json.dumps(other.to_dict())})
    for path, problem in [
        (garbage, "damaged, or not a PyTorch file"),
        (truncated, "cannot read checkpoint"),
        (mismatched, "do not match"),
    ]:
        with pytest.raises(CheckpointError, match=re.escape(str(path))) as caught:
            serve(checkpoint=str(path))
        assert problem in str(caught.value) and "\n" not in str(caught.value)
        capsys.readouterr()
        assert main(["serve", "--checkpoint", str(path)]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: model ") and str(path) in lines[0], captured.err
        assert "http://" not in captured.out
    assert not started, "uvicorn must not start with a model it cannot load"


# --- limits and safety: memory bounds, slow uploads, other sites, headers, errors -----------------------------


@pytest.mark.parametrize("refine", ["none", "patch"])
def test_a_model_fills_only_the_part_it_reads_with_the_whole_images_result(
    client: TestClient, tiny: Inpainter, refine: str
) -> None:
    """The server cuts out the part around the holes that the model's windows see (memory), same pixels."""
    img = photo(160, 240, seed=8)
    m = np.zeros((160, 240), bool)
    m[0:9, 5:20] = True  # at the top edge: windows reach outside the image there
    m[40:47, 51:62] = True
    left, top, right, bottom = tiny.context_box(m, InferenceOptions(refine=refine))
    assert (right - left) * (bottom - top) < m.size / 2
    expected = np.asarray(tiny(img, m, options=InferenceOptions(refine=refine)))
    np.testing.assert_array_equal(
        decode(client.post("/api/inpaint", **form(png(img), mask_png(m), refine=refine))), expected
    )


def test_masks_are_read_as_mask_array_reads_them() -> None:
    """The server's memory-light reading of colour masks finds `mask_array`'s holes for every kind of mask."""
    from context_encoder.inpaint import mask_array
    from context_encoder.web.images import decode_hole

    m = hole()
    white_on_clear, black_on_clear, opaque = (np.zeros((64, 80, 4), np.uint8) for _ in range(3))
    white_on_clear[m] = 255  # a browser canvas
    black_on_clear[m, 3] = 255  # black strokes on transparency: the alpha is the mask
    opaque[..., 3], opaque[m, 0] = 255, 7  # opaque: the colour is the mask
    partly = opaque.copy()
    partly[:10, :, 3] = 0  # colour where it is transparent is no hole
    grey = m.astype(np.uint8) * 200
    exif = Image.Exif()
    exif[0x0112] = 6
    masks = {
        "white on clear": png(white_on_clear),
        "black on clear": png(black_on_clear),
        "opaque": png(opaque),
        "partly clear": png(partly),
        "rgb": png(np.repeat(grey[..., None], 3, axis=2)),
        "grey": png(grey),
        "1-bit": png(Image.fromarray(m)),
        "palette": png(Image.fromarray(grey).convert("P")),
        "grey and alpha": png(Image.fromarray(np.stack([grey, grey], axis=2), "LA")),
        "rotated by exif": png(Image.fromarray(white_on_clear), exif=exif),
    }
    for name, data in masks.items():
        expected = mask_array(Image.open(io.BytesIO(data)))
        np.testing.assert_array_equal(decode_hole(data, MAX_PIXELS), expected, err_msg=name)
    assert decode_hole(masks["rotated by exif"], MAX_PIXELS).shape == (80, 64)


@needs_opencv
def test_telea_fills_only_the_part_it_reads_with_the_whole_images_result(client: TestClient) -> None:
    from context_encoder.fullres import baseline_methods

    img, m = photo(200, 300, seed=9), np.zeros((200, 300), bool)
    m[90:110, 140:180] = True
    expected = np.where(m[..., None], baseline_methods(["telea"])["telea"](img, m), img)
    np.testing.assert_array_equal(
        decode(client.post("/api/inpaint", **form(png(img), mask_png(m), method="telea"))), expected
    )


def test_a_full_queue_refuses_an_upload_before_reading_its_body(
    tiny: Inpainter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most workers + queue_size bodies are in memory: a request finding no place never reaches the form
    parser; its body is read and dropped (so the client gets the answer), then the connection is closed."""
    import context_encoder.web.app as web_app

    parsed = []

    async def read_form(request, *args):
        parsed.append(request.headers.get("x-request"))
        return await original(request, *args)

    original = web_app.read_form
    monkeypatch.setattr(web_app, "read_form", read_form)
    gate = threading.Event()
    app = create_app({"tiny": lambda: _Gated(tiny, gate)}, workers=1, queue_size=0)
    body = form(png(photo()), mask_png(hole()))

    async def run():
        async with _async_client(app) as client:
            first = asyncio.create_task(client.post("/api/inpaint", **body, headers={"x-request": "first"}))
            await _wait_for(client, running=1, waiting=0)
            refused = await client.post("/api/inpaint", **body, headers={"x-request": "second"})
            gate.set()
            return refused, await first

    try:
        refused, first = asyncio.run(run())
    finally:
        gate.set()
    assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
    assert refused.headers["connection"] == "close"
    assert parsed == ["first"], "the refused body must not be parsed (buffered)"
    assert first.status_code == 200


def test_a_client_waiting_for_100_continue_is_refused_before_sending_its_body(tiny: Inpainter) -> None:
    """curl sends `Expect: 100-continue` with large uploads: with no place, it gets 503 without sending a byte."""
    gate = threading.Event()
    app = create_app({"tiny": lambda: _Gated(tiny, gate)}, workers=1, queue_size=0)
    head = (
        "POST /api/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {19 * 2**20}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    try:
        with serving(app) as port:
            first = threading.Thread(
                target=httpx.post,
                args=(f"http://127.0.0.1:{port}/api/inpaint",),
                kwargs={**form(png(photo()), mask_png(hole())), "timeout": 30},
            )
            first.start()
            for _ in range(400):  # until the first request holds the only place
                if httpx.get(f"http://127.0.0.1:{port}/healthz").json()["queue"]["running"] == 1:
                    break
                time.sleep(0.01)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                start = time.monotonic()
                sock.sendall(head)  # and no body
                answer = _read_until_closed(sock)
                elapsed = time.monotonic() - start
            gate.set()
            first.join(30)
    finally:
        gate.set()
    assert answer.startswith(b"HTTP/1.1 503") and b"100 Continue" not in answer, answer[:300]
    assert elapsed < 2


@contextmanager
def serving(app) -> Iterator[int]:
    """`app` served by uvicorn on a free 127.0.0.1 port in a background thread; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_stalled_upload_is_dropped_after_the_read_timeout(tiny: Inpainter) -> None:
    """Headers and the start of a body, then nothing: 408 after read_timeout, the connection closed, the place freed."""
    app = create_app({"tiny": lambda: tiny}, read_timeout=0.5, workers=1, queue_size=0)
    head = (
        b"POST /api/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b'Content-Length: 19000000\r\n\r\n--b\r\nContent-Disposition: form-data; name="image"\r\n\r\n'
    )
    with serving(app) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(head + b"\x89PNG" * 1000)
        answer = _read_until_closed(sock)  # returns when the server closes the connection
        elapsed = time.monotonic() - start
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()["queue"]
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"longer than 0.5 s" in answer
    assert 0.4 < elapsed < 5
    assert health["uploading"] == 0 and health["running"] == 0


def test_cross_origin_writes_are_refused(client: TestClient, tiny: Inpainter) -> None:
    body = form(png(photo()), mask_png(hole()))
    for origin in ("http://evil.example", "null", "http://localhost:8000", "https://localhost"):  # other origins
        res = client.post("/api/inpaint", **body, headers={"Origin": origin})
        assert res.status_code == 403 and "origin" in res.json()["detail"], origin
    res = client.post("/api/inpaint", **body, headers={"Sec-Fetch-Site": "cross-site"})  # a browser without Origin
    assert res.status_code == 403
    for headers in ({"Origin": "http://localhost"}, {"Origin": "http://LOCALHOST:80"}, {}):  # own origin; curl
        assert client.post("/api/inpaint", **body, headers=headers).status_code == 200, headers
    assert client.get("/api/models", headers={"Origin": "http://evil.example"}).status_code == 200  # reads: Host check
    with local(create_app({"tiny": lambda: tiny}, allowed_origins=["https://app.example/"])) as c:
        assert c.post("/api/inpaint", **body, headers={"Origin": "https://app.example"}).status_code == 200
        assert c.post("/api/inpaint", **body, headers={"Origin": "http://app.example"}).status_code == 403


def test_foreign_host_headers_are_refused(tiny: Inpainter) -> None:
    """DNS rebinding: a page of evil.example whose name now points to 127.0.0.1 must not read the answers."""
    default = create_app({"tiny": lambda: tiny})
    for base in ("http://evil.example:8000", "http://testserver", "http://inpaint.lan:8000"):
        for path in ("/", "/api/models", "/healthz"):
            res = TestClient(default, base_url=base).get(path)
            assert res.status_code == 400 and "host" in res.json()["detail"], (base, path)
    for base in ("http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000", "http://localhost"):
        assert TestClient(default, base_url=base).get("/api/models").status_code == 200, base
    app = create_app({"tiny": lambda: tiny}, allowed_hosts=["inpaint.lan", "photos.lan:8443"])
    for base, status in [
        ("http://inpaint.lan:8000", 200),
        ("https://photos.lan:8443", 200),
        ("http://photos.lan", 400),
    ]:
        assert TestClient(app, base_url=base).get("/api/models").status_code == status, base
    with pytest.raises(ValueError, match="host"):
        create_app({}, allowed_hosts=["http://inpaint.lan/"])


def test_security_headers_on_every_answer(client: TestClient) -> None:
    ok = form(png(photo()), mask_png(hole()))
    answers = {
        "page": client.get("/"),
        "script": client.get("/static/app.js"),
        "json": client.get("/api/models"),
        "png": client.post("/api/inpaint", **ok),
        "400": client.post("/api/inpaint", **form(b"not an image", mask_png(hole()))),
        "403": client.post("/api/inpaint", **ok, headers={"Origin": "http://evil.example"}),
        "404": client.get("/nothing-here"),
        "foreign host": TestClient(client.app, base_url="http://evil.example").get("/"),
    }
    for name, res in answers.items():
        assert res.headers["x-content-type-options"] == "nosniff", name
        assert res.headers["x-frame-options"] == "DENY", name
        assert res.headers["referrer-policy"] == "no-referrer", name
        assert res.headers["cross-origin-resource-policy"] == "same-origin", name
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"], name
    assert "default-src 'self'" in answers["page"].headers["content-security-policy"]  # the page's own policy
    assert "default-src 'none'" in answers["json"].headers["content-security-policy"]


class _Broken(Inpainter):
    """The tiny model, but filling fails with an error naming a file on the server."""

    def __call__(self, image, mask, options=None):
        raise OSError("cannot map /srv/private/weights/cache.bin")


def test_an_internal_error_answers_an_id_not_its_details(tiny: Inpainter, caplog: pytest.LogCaptureFixture) -> None:
    def missing() -> Inpainter:
        raise FileNotFoundError("[Errno 2] No such file: '/srv/private/models/best.pt'")

    app = create_app({"missing": missing, "broken": lambda: _Broken(tiny.gen, tiny.cfg)})
    with local(app) as c, caplog.at_level(logging.ERROR):
        for model in ("missing", "broken"):  # failing to load, failing in a worker thread
            res = c.post("/api/inpaint", **form(png(photo()), mask_png(hole()), model=model))
            assert res.status_code == 500 and res.headers["x-content-type-options"] == "nosniff"
            assert "/srv" not in res.text and "Error" not in res.text, res.text
            error_id = re.fullmatch(r"internal error \(id ([0-9a-f]{8})\).*", res.json()["detail"]).group(1)
            assert error_id in caplog.text  # the log has the id beside the traceback
        assert "/srv/private/models/best.pt" in caplog.text and "/srv/private/weights" in caplog.text
        assert c.get("/healthz").json()["queue"]["uploading"] == 0  # the places were freed


def test_default_model_is_the_one_inpaint_takes_for_painted_holes(tiny: Inpainter) -> None:
    from context_encoder.loading import default_model
    from context_encoder.pretrained import shipped_names

    if shipped_names():
        app = create_app({name: lambda: tiny for name in ("cifar10-center", *shipped_names())})
        info = TestClient(app, base_url="http://localhost").get("/api/models").json()
        assert info["default"] == default_model(arbitrary_holes=True) == "scenes128-region"
    app = create_app({"a-model": lambda: tiny, "b-model": lambda: tiny})
    assert TestClient(app, base_url="http://localhost").get("/api/models").json()["default"] == "a-model"


def test_queue_position_follows_a_ticket(tiny: Inpainter) -> None:
    """GET /api/queue tells a request named by its ticket whether it runs or waits, and behind how many fills."""
    gate = threading.Event()
    app = create_app({"tiny": lambda: _Gated(tiny, gate)}, workers=1, queue_size=2)
    body = form(png(photo()), mask_png(hole()))

    async def run():
        async with _async_client(app) as client:

            async def where(ticket: str | None = None) -> dict:
                res = await client.get("/api/queue", params={"ticket": ticket} if ticket else None)
                assert res.status_code == 200, res.text
                return res.json()

            idle = await where("nobody-has-this")
            first = asyncio.create_task(client.post("/api/inpaint?ticket=first-0001", **body))
            await _wait_for(client, running=1, waiting=0)
            second = asyncio.create_task(client.post("/api/inpaint?ticket=second-0002", **body))
            await _wait_for(client, running=1, waiting=1)
            seen = [await where("first-0001"), await where("second-0002"), await where(), await where("unknown-0")]
            bad = [await client.get("/api/queue?ticket=x"), await client.post("/api/inpaint?ticket=a%20b", **body)]
            gate.set()
            done = await asyncio.gather(first, second)
            return idle, seen, bad, done, await where("second-0002")

    try:
        idle, seen, bad, done, after = asyncio.run(run())
    finally:
        gate.set()
    assert idle == {"state": None, "ahead": 0, "running": 0, "waiting": 0, "workers": 1}
    running, waiting, anyone, unknown = seen
    assert running == {"state": "running", "ahead": 0, "running": 1, "waiting": 1, "workers": 1}
    assert waiting == {"state": "waiting", "ahead": 1, "running": 1, "waiting": 1, "workers": 1}
    assert anyone["state"] is None and anyone["ahead"] == 2, "a request sent now waits for both"
    assert unknown == anyone
    assert [r.status_code for r in bad] == [400, 400] and "ticket" in bad[0].json()["detail"]
    assert [r.status_code for r in done] == [200, 200]
    assert after["state"] is None and after["ahead"] == 0


def test_a_job_whose_client_left_before_its_turn_is_skipped(tiny: Inpainter) -> None:
    """A client that disconnects while its request waits for a thread: the job is skipped (499 in the log) and
    the place freed; the job that was running when it left is filled to its end."""
    gate, calls = threading.Event(), []

    class Counted(_Gated):
        def __call__(self, image, mask, options=None):
            calls.append(1)
            return super().__call__(image, mask, options)

    app = create_app({"tiny": lambda: Counted(tiny, gate)}, workers=1, queue_size=1)
    fields = form(png(photo()), mask_png(hole()))
    request = httpx.Request("POST", "http://localhost/api/inpaint", files=fields["files"], data=fields["data"])
    content = request.read()

    async def leaving_client(left: asyncio.Event) -> list[int]:
        """A raw ASGI request that sends its body, then disconnects once `left` is set."""
        statuses, sent = [], False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            await left.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        headers = [(b"host", b"localhost"), (b"content-length", str(len(content)).encode())]
        headers.append((b"content-type", request.headers["content-type"].encode()))
        scope = {
            "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/api/inpaint",
            "raw_path": b"/api/inpaint", "query_string": b"ticket=leaving-0001", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("localhost", 80),
        }  # fmt: skip
        await app(scope, receive, send)
        return statuses

    async def run():
        async with _async_client(app) as client:
            first = asyncio.create_task(client.post("/api/inpaint", **fields))
            await _wait_for(client, running=1, waiting=0)
            left = asyncio.Event()
            second = asyncio.create_task(leaving_client(left))
            await _wait_for(client, running=1, waiting=1)
            before = (await client.get("/api/queue?ticket=leaving-0001")).json()
            left.set()
            for _ in range(200):  # the server notices the disconnect at once: the job no longer counts
                after = (await client.get("/api/queue")).json()
                if after["waiting"] == 0:
                    break
                await asyncio.sleep(0.01)
            gate.set()
            done = await asyncio.gather(first, second)
            return before, after, done, (await client.get("/healthz")).json()["queue"]

    try:
        before, after, (first, statuses), queue = asyncio.run(run())
    finally:
        gate.set()
    assert before["state"] == "waiting" and before["ahead"] == 1
    assert after == {"state": None, "ahead": 1, "running": 1, "waiting": 0, "workers": 1}
    assert first.status_code == 200 and statuses == [499]
    assert len(calls) == 1, "the skipped job never reached the model"
    assert queue == {"workers": 1, "running": 0, "waiting": 0, "stopping": 0, "uploading": 0, "queue_size": 1}


def test_hole_distance_is_the_euclidean_distance_up_to_its_limit() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((23, 31)) < 0.02
    m[5, 7] = True
    ys, xs = np.nonzero(m)
    yy, xx = np.mgrid[0:23, 0:31]
    brute = ((yy[..., None] - ys) ** 2 + (xx[..., None] - xs) ** 2).min(axis=2)
    for limit in (0, 1, 4, 40):
        np.testing.assert_array_equal(fill.hole_distance(m, limit), np.minimum(brute, (limit + 1) ** 2))
    weights = fill.feather_weights(m, 3)
    assert (weights[m] == 255).all() and (weights[brute >= 16] == 0).all() and (weights[brute < 16] > 0).all()
    np.testing.assert_array_equal(weights[brute == 1], round(255 * 3 / 4))
    np.testing.assert_array_equal(weights[brute == 9], round(255 / 4))


def test_feather_blends_a_soft_edge_around_the_hole(client: TestClient) -> None:
    """`feather` fills the pixels within that many px of the hole too and mixes them with the photo; farther
    ones come back bit-identical, and 0 is the default, which changes only the hole."""
    img, m = photo(seed=5), hole()
    plain = decode(client.post("/api/inpaint", **form(png(img), mask_png(m))))
    np.testing.assert_array_equal(
        plain, decode(client.post("/api/inpaint", **form(png(img), mask_png(m), feather="0")))
    )
    soft = decode(client.post("/api/inpaint", **form(png(img), mask_png(m), feather="4")))
    dist = fill.hole_distance(m, 4)
    changed = (soft != img).any(axis=2)
    assert not changed[dist >= 25].any(), "beyond the feather width the photo is untouched"
    assert changed[m].mean() > 0.5 and changed[(dist > 0) & (dist < 25)].mean() > 0.5
    for bad in ("-1", "65", "wide"):
        res = client.post("/api/inpaint", **form(png(img), mask_png(m), feather=bad))
        assert res.status_code == 400 and "feather" in res.json()["detail"]


# --- cancelling a request, the answer's format ------------------------------------------------------------------


def test_cancel_drops_a_waiting_request_and_frees_the_worker_of_a_running_one(tiny: Inpainter) -> None:
    """POST /api/cancel: a waiting request is dropped at once (499, the model never called); a running one gives
    its worker to the next request at once, which is filled while the cancelled one is still stuck, and stops
    at its first torch operation after that (499)."""
    gate, calls = threading.Event(), []

    class Counted(_Gated):
        def __call__(self, image, mask, options=None):
            calls.append(1)
            return super().__call__(image, mask, options)

    app = create_app({"gated": lambda: Counted(tiny, gate), "tiny": lambda: tiny}, workers=1, queue_size=2)
    img, m = photo(), hole()

    async def run():
        async with _async_client(app) as client:

            async def cancel(ticket: str) -> dict:
                res = await client.post("/api/cancel", params={"ticket": ticket})
                assert res.status_code == 200, res.text
                return res.json()

            first = asyncio.create_task(client.post("/api/inpaint?ticket=first-0001", **form(png(img), mask_png(m))))
            await _wait_for(client, running=1, waiting=0)
            second = asyncio.create_task(client.post("/api/inpaint?ticket=second-0002", **form(png(img), mask_png(m))))
            await _wait_for(client, running=1, waiting=1)
            dropped = await cancel("second-0002")
            second = await second  # answered at once, while the first still runs
            stopped = await cancel("first-0001")
            queue = (await client.get("/healthz")).json()["queue"]
            start = time.perf_counter()
            third = await client.post("/api/inpaint", **form(png(img), mask_png(m), model="tiny"))
            third_s = time.perf_counter() - start
            unknown, bad = await cancel("nobody-has-this"), await client.post("/api/cancel?ticket=x")
            still_stuck = not first.done()
            gate.set()
            first = await first
            return dropped, second, stopped, queue, third, third_s, unknown, bad, still_stuck, first

    try:
        dropped, second, stopped, queue, third, third_s, unknown, bad, still_stuck, first = asyncio.run(run())
    finally:
        gate.set()
    assert dropped == {"state": "waiting"} and second.status_code == 499 and "cancelled" in second.json()["detail"]
    assert stopped == {"state": "running"}
    assert queue == {"workers": 1, "running": 0, "waiting": 0, "stopping": 1, "uploading": 0, "queue_size": 2}
    assert_filled(decode(third), img, m)
    assert still_stuck and third_s < 10, "the next request did not wait for the cancelled one"
    assert first.status_code == 499 and "cancelled" in first.json()["detail"]
    assert len(calls) == 1, "the dropped request never reached the model"
    assert unknown == {"state": None} and bad.status_code == 400
    with local(app) as c:
        assert c.get("/healthz").json()["queue"]["stopping"] == 0
        assert c.post("/api/cancel").status_code == 422  # a ticket is required


class _Endless(Inpainter):
    """The tiny model, but it first computes with torch for up to 30 s, counting its steps."""

    steps = 0

    def __call__(self, image, mask, options=None):
        x, deadline = torch.ones(64), time.monotonic() + 30
        while time.monotonic() < deadline:
            x = x * 1.0001
            _Endless.steps += 1
        return super().__call__(image, mask, options)


def test_a_cancelled_fill_stops_at_its_next_torch_operation(tiny: Inpainter) -> None:
    app = create_app({"endless": lambda: _Endless(tiny.gen, tiny.cfg)}, workers=1, queue_size=1)

    async def run():
        async with _async_client(app) as client:
            fill = asyncio.create_task(
                client.post("/api/inpaint?ticket=endless-01", **form(png(photo()), mask_png(hole())))
            )
            while _Endless.steps < 100:  # it is computing
                await asyncio.sleep(0.01)
            start = time.perf_counter()
            assert (await client.post("/api/cancel?ticket=endless-01")).json() == {"state": "running"}
            res = await fill
            return res, time.perf_counter() - start, (await client.get("/healthz")).json()["queue"]

    res, seconds, queue = asyncio.run(run())
    assert res.status_code == 499 and seconds < 5, seconds
    assert queue["running"] == queue["stopping"] == queue["waiting"] == 0


def test_the_answer_takes_the_input_format_when_asked(client: TestClient) -> None:
    """format=input: a JPEG gives a JPEG (at its own quality), a PNG a PNG, a WebP a WebP; the default stays PNG."""
    img, m = photo(seed=11), hole()
    jpeg = png(img, "JPEG", quality=90)
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    res = client.post("/api/inpaint", **form(jpeg, mask_png(m), format="input"))
    assert res.status_code == 200 and res.headers["content-type"] == "image/jpeg"
    assert res.headers["content-disposition"] == 'inline; filename="inpainted.jpg"'
    out = Image.open(io.BytesIO(res.content))
    assert out.format == "JPEG" and out.size == (80, 64)
    diff = np.abs(np.asarray(out.convert("RGB"), np.int16) - decoded)
    assert diff[~m].mean() < 2, "known pixels change only by the re-encoding"
    assert client.post("/api/inpaint", **form(jpeg, mask_png(m))).headers["content-type"] == "image/png"

    res = client.post("/api/inpaint", **form(png(img), mask_png(m), format="input"))
    assert res.headers["content-disposition"] == 'inline; filename="inpainted.png"'
    assert_filled(decode(res), img, m)
    webp = png(img, "WEBP", quality=90)
    res = client.post("/api/inpaint", **form(webp, mask_png(m), format="input"))
    assert res.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(res.content)).format == "WEBP"
    res = client.post("/api/inpaint", **form(png(img), mask_png(m), format="jpeg"))
    assert Image.open(io.BytesIO(res.content)).format == "JPEG"
    res = client.post("/api/inpaint", **form(png(img), mask_png(m), format="gif"))
    assert res.status_code == 400 and "format" in res.json()["detail"]


def test_a_jpeg_answer_keeps_the_photos_quality_exif_and_dpi(client: TestClient) -> None:
    """format=input on a JPEG: the answer has the photo's own quantisation tables (not quality 95), its EXIF
    less the orientation, and its DPI, as `inpaint` keeps them."""
    img, m = photo(seed=13), hole()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "TestCam", "X1"
    jpeg = png(img, "JPEG", quality=70, exif=exif, dpi=(240, 240))
    res = client.post("/api/inpaint", **form(jpeg, mask_png(m), format="input"))
    assert res.status_code == 200
    with Image.open(io.BytesIO(jpeg)) as a, Image.open(io.BytesIO(res.content)) as b:
        assert b.quantization == a.quantization
        assert (b.getexif()[0x010F], b.getexif()[0x0110]) == ("TestCam", "X1")
        assert tuple(round(v) for v in b.info["dpi"]) == (240, 240)
    grey = png(Image.fromarray(img).convert("L"), "JPEG", quality=70)  # one table: the RGB answer cannot reuse it
    res = client.post("/api/inpaint", **form(grey, mask_png(m), format="input"))
    assert res.status_code == 200 and Image.open(io.BytesIO(res.content)).format == "JPEG"


def test_a_transparent_png_keeps_its_alpha_and_colours(client: TestClient) -> None:
    """The methods read an RGBA photo on white, but the answer (PNG, or WebP) is RGBA with the photo's alpha and
    its stored colours outside the hole; its colour profile goes with it (an RGB one only). As JPEG it is the
    photo on white."""
    from PIL import ImageCms

    img, m = photo(seed=12), hole()
    alpha = np.full(m.shape, 255, np.uint8)
    alpha[:, :20] = 0  # a transparent band (its colours are kept too) and a half-transparent one
    alpha[:, 20:30] = 128
    rgba = np.dstack([img, alpha])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = png(Image.fromarray(rgba), icc_profile=icc)
    for fmt in ("png", "input"):
        res = client.post("/api/inpaint", **form(data, mask_png(m), format=fmt))
        out = Image.open(io.BytesIO(res.content))
        assert out.mode == "RGBA" and out.info.get("icc_profile") == icc
        arr = np.asarray(out)
        np.testing.assert_array_equal(arr[..., 3], alpha)
        np.testing.assert_array_equal(arr[~m], rgba[~m])
        assert (arr[m][:, :3] != img[m]).any(axis=1).mean() > 0.5
    webp = np.asarray(
        Image.open(io.BytesIO(client.post("/api/inpaint", **form(data, mask_png(m), format="webp")).content))
    )
    np.testing.assert_array_equal(webp[..., 3], alpha)
    flat = Image.open(io.BytesIO(client.post("/api/inpaint", **form(data, mask_png(m), format="jpeg")).content))
    assert flat.mode == "RGB"
    assert np.asarray(flat)[5, 5].min() > 240, "a transparent pixel is white in a JPEG"
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # a profile of another colour space
    grey = client.post("/api/inpaint", **form(png(Image.fromarray(img[..., 0]), icc_profile=lab), mask_png(m)))
    assert "icc_profile" not in Image.open(io.BytesIO(grey.content)).info, "no RGB answer carries a non-RGB profile"
