"""End to end in headless Chromium: open a photo, paint a hole, inpaint, download, check the pixels.

Needs the web extra, Playwright for Python (only its driver: the browser is Debian's /usr/bin/chromium,
so `playwright install` is not needed) and `apt-get install chromium`; skipped when one is missing.
"""

from __future__ import annotations

import http.server
import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from context_encoder.config import load_config  # noqa: E402
from context_encoder.inpaint import Inpainter  # noqa: E402
from context_encoder.models import build_models  # noqa: E402
from context_encoder.web import create_app  # noqa: E402

torch.set_num_threads(1)
expect = sync_api.expect
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Recorder:
    """ASGI wrapper that keeps the (content type, body) of each POST /api/inpaint, what the page sent, and the
    status of each answer."""

    def __init__(self, app):
        self.app, self.requests, self.statuses = app, [], []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/api/inpaint":
            return await self.app(scope, receive, send)
        chunks = []

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, recording_receive, recording_send)
        self.requests.append((dict(scope["headers"]).get(b"content-type", b"").decode(), b"".join(chunks)))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    """The app with the tiny model, served by uvicorn on a free localhost port in a background thread."""
    cfg = load_config("tiny")
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    app = Recorder(create_app({"tiny": lambda: Inpainter(gen, cfg)}))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def page(server: tuple[str, Recorder]):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(server[0] + "/")
        yield pg
        context.close()
        browser.close()
    assert not errors, errors


def gradient(h: int = 240, w: int = 320) -> np.ndarray:
    """A smooth colour gradient photo (uint8 H x W x 3)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), 255 - (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def multipart_files(body: bytes, content_type: str) -> dict[str, bytes]:
    """name -> content of the parts of a multipart/form-data body (enough for the page's requests)."""
    boundary = re.search(r"boundary=(\S+)", content_type).group(1).strip('"').encode()
    out = {}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head).group(1).decode()
        out[name] = data[:-2]  # the CRLF before the next boundary
    return out


def drag(page, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (fractions of the canvas) and release the left mouse button."""
    box = page.locator("#overlay").bounding_box()
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def test_paint_inpaint_compare_download(page, server: tuple[str, Recorder], tmp_path: Path) -> None:
    status = page.locator("#status")
    expect(status).to_contain_text("Open an image", timeout=15_000)
    expect(page.locator("#model")).to_have_value("tiny")

    # a file the browser cannot show is reported, not swallowed
    (tmp_path / "notes.txt").write_text("not a photo")
    page.set_input_files("#file", str(tmp_path / "notes.txt"))
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("not an image")

    img = gradient()
    Image.fromarray(img).save(tmp_path / "gradient.png")
    dropped = page.evaluate_handle(  # drag and drop the photo onto the page
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "gradient.png", { type: "image/png" }));
            return transfer;
        }""",
        list((tmp_path / "gradient.png").read_bytes()),
    )
    page.dispatch_event("#stage", "drop", {"dataTransfer": dropped})
    expect(status).to_contain_text("Loaded gradient.png (320×240)")
    inpaint = page.locator("#inpaint")
    expect(inpaint).to_be_disabled()

    # paint, undo, paint again: a horizontal stroke; then a box with the box tool
    drag(page, [(0.2, 0.2), (0.3, 0.3)])
    expect(inpaint).to_be_enabled()
    page.click("#undo")
    expect(inpaint).to_be_disabled()
    drag(page, [(0.25 + 0.05 * i, 0.5) for i in range(9)])
    page.check('input[name="tool"][value="box"]')
    drag(page, [(0.75, 0.15), (0.9, 0.3)])

    # a server error is shown to the user
    page.route(
        "**/api/inpaint",
        lambda route: route.fulfill(status=503, headers={"Retry-After": "3"}, json={"detail": "the server is busy"}),
    )
    inpaint.click()
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("busy")
    expect(status).to_contain_text("retry after 3 s")
    page.unroute("**/api/inpaint")

    inpaint.click()
    expect(status).to_have_attribute("data-state", "ok", timeout=30_000)
    expect(page.locator("#compare")).to_be_visible()
    files = multipart_files(server[1].requests[-1][1], server[1].requests[-1][0])
    assert files["method"] == b"model" and files["model"] == b"tiny"
    assert files["image"] == (tmp_path / "gradient.png").read_bytes(), "the page must send the original file"
    hole = np.asarray(Image.open(io.BytesIO(files["mask"])).convert("L")) > 0
    assert hole.shape == img.shape[:2], "the mask is made at the image's full resolution"
    h, w = hole.shape
    assert hole[h // 2, int(0.3 * w) : int(0.6 * w)].all(), "the stroke's centre line is in the mask"
    assert hole[int(0.2 * h) : int(0.28 * h), int(0.77 * w) : int(0.88 * w)].all(), "the box is in the mask"
    assert not hole[int(0.25 * h), int(0.25 * w)], "the undone stroke is not"
    assert 0.03 < hole.mean() < 0.3

    # the before/after slider moves the split
    page.locator("#split").fill("20")
    assert "80%" in page.locator("#before").get_attribute("style")

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "gradient-inpainted.png"
    out = np.asarray(Image.open(download.value.path()))
    assert out.shape == img.shape
    changed = (out != img).any(axis=2)
    assert not changed[~hole].any(), "outside the painted hole the result equals the input"
    assert changed[hole].mean() > 0.5, "inside it the result differs"
    shown = page.evaluate(
        """async () => {
            const bytes = new Uint8Array(await (await fetch(document.getElementById("after").src)).arrayBuffer());
            return Array.from(bytes, (b) => String.fromCharCode(b)).join("");
        }"""
    )
    assert shown.encode("latin-1") == Path(download.value.path()).read_bytes(), "the slider shows what is downloaded"


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """A page of another origin (another port of this machine), with no policy of its own."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        body = b"<!doctype html><p>another site</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_page_of_another_origin_cannot_post(page, server: tuple[str, Recorder]) -> None:
    """A browser sends the page's Origin with its cross-origin form post (made without a preflight): refused."""
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        seen = len(server[1].statuses)
        page.evaluate(
            """async (url) => {
                const form = new FormData();
                form.append("image", new Blob(["x"], { type: "image/png" }), "a.png");
                form.append("mask", new Blob(["x"], { type: "image/png" }), "m.png");
                try {
                    await fetch(url, { method: "POST", body: form, mode: "no-cors" });
                } catch (error) {}  // the answer is withheld anyway (Cross-Origin-Resource-Policy: same-origin)
            }""",
            server[0] + "/api/inpaint",
        )
    finally:
        other.shutdown()
        other.server_close()
    assert server[1].statuses[seen:] == [403]
