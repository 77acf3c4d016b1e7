"""End to end in headless Chromium: open a photo, paint a hole, inpaint, download, check the pixels; zoom and pan,
redo, brush-size keys, paste, inference options, grow and feather, the queue position, cancel-then-fill, the
slider's start, focus, Use result, the download's format, box drags from outside the image, the large-mask
warning, mask files, and a phone-sized touch screen (tap targets, menus, the result scrolled into view).

Needs the web extra, Playwright for Python (only its driver: the browser is Debian's /usr/bin/chromium,
so `playwright install` is not needed) and `apt-get install chromium`; skipped when one is missing.
Over 400 lines on purpose: one module per surface under test, the page, with the server and browser it shares.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
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
from context_encoder.web.fill import hole_distance  # noqa: E402

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
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode()

        async def recording_receive():
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):  # recorded before the app can answer, so a test that
                    self.requests.append((content_type, b"".join(chunks)))  # saw the answer finds the request
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, recording_receive, recording_send)


class Slow(Inpainter):
    """The tiny model, but each fill first waits until the test releases `gate` once for it."""

    def __init__(self, base: Inpainter, gate: threading.Semaphore):
        super().__init__(base.gen, base.cfg, options=base.options)
        self.gate = gate

    def __call__(self, image, mask, options=None):
        assert self.gate.acquire(timeout=30), "the test never let the slow fill go on"
        return super().__call__(image, mask, options)


@dataclass
class Server:
    url: str
    recorder: Recorder
    gate: threading.Semaphore  # one release lets one fill of the `slow` model go on

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as res:
            return json.load(res)

    def wait_for_queue(self, path: str = "/healthz", **expected: int) -> dict:
        """Poll /healthz (or /api/queue) until its queue shows the `expected` counts."""
        for _ in range(500):
            queue = self.get(path)
            queue = queue.get("queue", queue)
            if all(queue[key] == value for key, value in expected.items()):
                return queue
            time.sleep(0.02)
        raise AssertionError(f"the queue never showed {expected}: {queue}")

    def last_form(self) -> dict[str, bytes]:
        return multipart_files(self.recorder.requests[-1][1], self.recorder.requests[-1][0])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """The app with the tiny model and a slow one, served by uvicorn on a free localhost port in a background
    thread."""
    cfg = load_config("tiny")
    gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
    tiny, gate = Inpainter(gen, cfg), threading.Semaphore(0)
    app = Recorder(create_app({"tiny": lambda: tiny, "slow": lambda: Slow(tiny, gate)}))
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
    yield Server(f"http://127.0.0.1:{port}", app, gate)
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, server: Server):
    """A desktop-sized page; the page's own errors fail the module."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(server.url + "/")
    yield pg
    context.close()
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


def test_paint_inpaint_compare_download(page, server: Server, tmp_path: Path) -> None:
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
        "**/api/inpaint?*",
        lambda route: route.fulfill(status=503, headers={"Retry-After": "3"}, json={"detail": "the server is busy"}),
    )
    inpaint.click()
    expect(status).to_have_attribute("data-state", "error")
    expect(status).to_contain_text("busy")
    expect(status).to_contain_text("retry after 3 s")
    page.unroute("**/api/inpaint?*")

    inpaint.click()
    expect(status).to_have_attribute("data-state", "ok", timeout=30_000)
    expect(page.locator("#compare")).to_be_visible()
    files = multipart_files(server.recorder.requests[-1][1], server.recorder.requests[-1][0])
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


def test_a_page_of_another_origin_cannot_post(page, server: Server) -> None:
    """A browser sends the page's Origin with its cross-origin form post (made without a preflight): refused."""
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherSite)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/")
        seen = len(server.recorder.statuses)
        page.evaluate(
            """async (url) => {
                const form = new FormData();
                form.append("image", new Blob(["x"], { type: "image/png" }), "a.png");
                form.append("mask", new Blob(["x"], { type: "image/png" }), "m.png");
                try {
                    await fetch(url, { method: "POST", body: form, mode: "no-cors" });
                } catch (error) {}  // the answer is withheld anyway (Cross-Origin-Resource-Policy: same-origin)
            }""",
            server.url + "/api/inpaint",
        )
    finally:
        other.shutdown()
        other.server_close()
    assert server.recorder.statuses[seen:] == [403]


def fresh(page, server: Server) -> None:
    """The app's page, newly loaded, with its model list."""
    page.goto(server.url + "/")
    expect(page.locator("#status")).to_contain_text("Open an image", timeout=15_000)


def open_photo(page, path: Path, img: np.ndarray) -> None:
    Image.fromarray(img).save(path)
    page.set_input_files("#file", str(path))
    expect(page.locator("#status")).to_contain_text(f"Loaded {path.name}")


def screen_point(page, x: float, y: float, width: int = 320) -> tuple[float, float]:
    """Where the centre of image pixel (x, y) is on the page, from where the image is shown."""
    box = page.locator("#source").bounding_box()
    scale = box["width"] / width
    return box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale


def image_point(page, sx: float, sy: float, width: int = 320) -> tuple[float, float]:
    """The image coordinates (pixel centres at .5) of a point of the page."""
    box = page.locator("#source").bounding_box()
    scale = box["width"] / width
    return (sx - box["x"]) / scale, (sy - box["y"]) / scale


def inpaint_and_wait(page) -> None:
    page.click("#inpaint")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok", timeout=30_000)


def sent_hole(server: Server) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(server.last_form()["mask"])).convert("L")) > 0


def test_zoom_and_pan_keep_painting_on_image_pixels(page, server: Server, tmp_path: Path) -> None:
    """Wheel zoom about the pointer, middle-drag and space+drag pans, a brush dot at a known image pixel lands
    there in the mask sent, and 0 fits the image again."""
    fresh(page, server)
    open_photo(page, tmp_path / "zoom.png", gradient())
    stage = page.locator("#stage").bounding_box()
    label = page.locator("#zoom-label")
    fit_label = label.inner_text()

    pointer = screen_point(page, 200, 60)
    page.mouse.move(*pointer)
    page.mouse.wheel(0, -400)
    expect(label).not_to_have_text(fit_label)
    assert np.allclose(image_point(page, *pointer), (200.5, 60.5), atol=0.6), "the zoom keeps the pixel under it"
    assert page.locator("#source").bounding_box()["width"] > stage["width"] * 1.5

    before = page.locator("#source").bounding_box()
    centre = (stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.down(button="middle")
    page.mouse.move(centre[0] + 60, centre[1] + 40, steps=3)
    page.mouse.up(button="middle")
    page.keyboard.down("Space")
    page.mouse.down()
    page.mouse.move(centre[0] + 30, centre[1] + 20, steps=3)
    page.mouse.up()
    page.keyboard.up("Space")
    after = page.locator("#source").bounding_box()
    assert (after["x"] - before["x"], after["y"] - before["y"]) == pytest.approx((30, 20), abs=0.6)
    expect(page.locator("#inpaint")).to_be_disabled()  # panning painted nothing

    target = (stage["x"] + stage["width"] * 0.4, stage["y"] + stage["height"] * 0.6)
    page.mouse.move(*target)
    page.mouse.wheel(0, -300)  # deeper, about the point to paint
    x, y = image_point(page, *target)
    page.mouse.click(*target)  # a brush dot, 40 screen px wide
    inpaint_and_wait(page)
    hole = sent_hole(server)
    ys, xs = np.nonzero(hole)
    assert abs(xs.mean() + 0.5 - x) < 1 and abs(ys.mean() + 0.5 - y) < 1, "the dot is where it was painted"
    radius = 20 * 320 / page.locator("#source").bounding_box()["width"]  # in image px
    assert np.ptp(xs) < 2 * radius + 2 and abs(hole.sum() - np.pi * radius**2) < 0.3 * np.pi * radius**2

    page.keyboard.press("0")
    expect(label).to_have_text(fit_label)
    fitted = page.locator("#source").bounding_box()
    assert fitted["width"] == pytest.approx(stage["width"], abs=1) and fitted["x"] == pytest.approx(stage["x"], abs=1)


def test_redo_clear_and_brush_size_keys(page, server: Server, tmp_path: Path) -> None:
    fresh(page, server)
    open_photo(page, tmp_path / "redo.png", gradient())
    undo, redo, inpaint = page.locator("#undo"), page.locator("#redo"), page.locator("#inpaint")
    drag(page, [(0.2 + 0.05 * i, 0.5) for i in range(5)])
    page.check('input[name="tool"][value="box"]')
    drag(page, [(0.7, 0.1), (0.9, 0.3)])
    page.keyboard.press("Control+z")
    expect(redo).to_be_enabled()
    page.keyboard.press("Control+Shift+Z")
    expect(redo).to_be_disabled()
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+y")
    expect(redo).to_be_disabled()
    page.click("#clear")  # undoable too
    expect(inpaint).to_be_disabled()
    undo.click()
    expect(inpaint).to_be_enabled()
    undo.click()  # the box
    redo.click()
    expect(redo).to_be_enabled()  # the clear can still be redone
    undo.click()
    page.keyboard.press("b")
    drag(page, [(0.5, 0.8), (0.6, 0.8)])  # a new stroke drops what was undone
    expect(redo).to_be_disabled()
    inpaint_and_wait(page)
    hole = sent_hole(server)
    assert hole[120, 70:125].all() and hole[192, 165:185].all(), "both strokes"
    assert not hole[48, 240], "not the undone box"

    size, label = page.locator("#size"), page.locator("#size-label")
    expect(size).to_have_value("40")
    page.keyboard.press("]")
    expect(size).to_have_value("50")
    page.keyboard.press("]")
    page.keyboard.press("[")
    expect(size).to_have_value("50")
    expect(label).to_contain_text("50 px")
    size.fill("5")
    page.keyboard.press("[")
    page.keyboard.press("[")
    expect(size).to_have_value("4")  # the slider's minimum
    expect(label).to_contain_text("4 px")


def test_pasting_an_image_opens_it(page, server: Server, tmp_path: Path) -> None:
    fresh(page, server)
    Image.fromarray(gradient(60, 80)).save(tmp_path / "clip.png")
    page.evaluate(
        """(bytes) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "clipboard.png", { type: "image/png" }));
            document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
        }""",
        list((tmp_path / "clip.png").read_bytes()),
    )
    expect(page.locator("#status")).to_contain_text("Loaded clipboard.png (80×60)")


def test_options_grow_and_feather_reach_the_request(page, server: Server, tmp_path: Path) -> None:
    fresh(page, server)
    open_photo(page, tmp_path / "options.png", gradient())
    page.check('input[name="tool"][value="box"]')
    drag(page, [(0.3, 0.3), (0.5, 0.45)])
    page.click("#options summary")
    page.select_option("#blend", "false")
    page.select_option("#flip-average", "true")
    inpaint_and_wait(page)
    fields = server.last_form()
    assert fields["blend"] == b"false" and fields["flip_average"] == b"true" and "feather" not in fields
    painted = sent_hole(server)

    page.fill("#grow", "5")
    page.fill("#feather", "3")
    page.select_option("#blend", "")  # the model's own: not sent
    inpaint_and_wait(page)
    fields = server.last_form()
    assert fields["feather"] == b"3" and "blend" not in fields and fields["flip_average"] == b"true"
    np.testing.assert_array_equal(sent_hole(server), hole_distance(painted, 5) <= 25, "grown by 5 px")
    expect(page.locator("#result-info")).to_contain_text("grown 5 px, feather 3 px")
    page.fill("#grow", "0")
    page.fill("#feather", "0")


def post_fill(server: Server, model: str, ticket: str, out: list[int]) -> None:
    """POST /api/inpaint as a script would (a gradient photo, a box hole), the status appended to `out`."""
    img = gradient()
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[100:140, 100:200] = 255
    boundary = "browser-test-boundary"
    body = b""
    for name, arr in (("image", img), ("mask", mask)):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n\r\n'
        body += head.encode() + buf.getvalue() + b"\r\n"
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n--{boundary}--\r\n'.encode()
    )
    request = urllib.request.Request(
        f"{server.url}/api/inpaint?ticket={ticket}",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as res:
            out.append(res.status)
    except urllib.error.HTTPError as exc:
        out.append(exc.code)


def test_cancel_then_fill_and_the_queue_position(page, server: Server, tmp_path: Path) -> None:
    """Cancel stops a running fill on the server: the next fill starts at once, while the cancelled one is still
    stuck (it stops at its next torch operation, 499). A fill waiting behind another shows 'Waiting — 1 ahead'
    and, cancelled with Esc, is dropped from the queue."""
    fresh(page, server)
    open_photo(page, tmp_path / "queue.png", gradient())
    drag(page, [(0.4, 0.4), (0.6, 0.5)])
    status, cancel, inpaint = page.locator("#status"), page.locator("#cancel"), page.locator("#inpaint")
    seen = len(server.recorder.statuses)
    background: list[int] = []
    script = threading.Thread(target=post_fill, args=(server, "slow", "background-0001", background))
    try:
        page.select_option("#model", "slow")
        inpaint.click()
        expect(status).to_contain_text("Filling with slow", timeout=10_000)
        expect(inpaint).to_be_disabled()
        cancel.click()
        expect(status).to_contain_text("Cancelled: the server stopped the fill")
        expect(status).to_have_attribute("data-state", "idle")
        expect(cancel).to_be_hidden()
        expect(inpaint).to_be_enabled()
        server.wait_for_queue(running=0, stopping=1)  # still stuck in the slow model, without a worker

        page.select_option("#model", "tiny")
        start = time.perf_counter()
        inpaint.click()
        expect(status).to_have_attribute("data-state", "ok", timeout=10_000)
        second_fill_s = time.perf_counter() - start
        assert server.get("/healthz")["queue"]["stopping"] == 1, "the cancelled fill is still stuck"
        assert second_fill_s < 5, f"the fill after a cancel took {second_fill_s:.1f} s"

        script.start()  # a script's slow fill takes the worker; the page's next fill waits behind it
        server.wait_for_queue(running=1, stopping=1)
        inpaint.click()
        expect(status).to_contain_text("Waiting — 1 ahead", timeout=10_000)
        server.wait_for_queue(running=1, waiting=1)
        page.keyboard.press("Escape")
        expect(status).to_contain_text("Cancelled: the server dropped the request from its queue")
        server.wait_for_queue("/api/queue", running=1, waiting=0)  # noticed at once: the job no longer counts
    finally:
        server.gate.release(
            2
        )  # the stuck cancelled fill, which now stops at its first torch operation, and the script's
        if script.is_alive() or background:
            script.join(30)
    server.wait_for_queue(running=0, waiting=0, stopping=0, uploading=0)
    for _ in range(100):
        if len(server.recorder.statuses) >= seen + 4:
            break
        time.sleep(0.02)
    assert background == [200]
    assert sorted(server.recorder.statuses[seen:]) == [200, 200, 499, 499]


# The controls a finger presses, as [id or text, width, height]: all of them and those under 44 x 44 CSS px.
TAP_TARGETS = """() => {
    const controls = document.querySelectorAll(
        "button, a.button, label.button, label.tool, select, input[type=number], input[type=range]:not(#split), summary"
    );
    const all = [...controls].filter((e) => e.getClientRects().length).map((e) => {
        const r = e.getBoundingClientRect();
        return [e.id || e.textContent.trim().split(/\\s+/)[0], Math.round(r.width), Math.round(r.height)];
    });
    return { all, small: all.filter(([, w, h]) => w < 44 || h < 44) };
}"""
# The options of the method and model menus whose text does not fit their menu (padding and arrow included).
CLIPPED_MENUS = """() => {
    const ctx = document.createElement("canvas").getContext("2d");
    const clipped = [];
    for (const select of document.querySelectorAll("#method, #model")) {
        const style = getComputedStyle(select);
        ctx.font = style.font;
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
        for (const option of select.options) if (ctx.measureText(option.text).width > room) clipped.push(option.text);
    }
    return clipped;
}"""


def touch(cdp, kind: str, points: list[tuple[float, float]]) -> None:
    """A touch event through the DevTools protocol: the browser turns it into pointer events, as on a phone."""
    touch_points = [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]
    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})


def test_phone_layout_and_touch(browser, server: Server, tmp_path: Path) -> None:
    """At 390 x 844 (and 360 px) nothing scrolls sideways, every control is reachable and at least 44 x 44 px, no
    menu option is cut off; a finger paints, two pinch-zoom without painting, the fill works and its result is
    scrolled into view."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        fresh(pg, server)
        width = lambda: pg.evaluate("document.documentElement.scrollWidth")  # noqa: E731
        assert width() <= 390
        open_photo(pg, tmp_path / "phone.png", gradient(400, 600))
        assert width() <= 390
        for selector in ("#open", "#undo", "#redo", "#clear", "#model", "#method", "#options summary", "#inpaint"):
            box = pg.locator(selector).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
        pg.locator("#options summary").tap()
        small = pg.evaluate(TAP_TARGETS)
        assert len(small["all"]) >= 20 and not small["small"], small["small"]
        assert not pg.evaluate(CLIPPED_MENUS), "a menu's option is wider than the menu"
        pg.locator("#options summary").tap()
        stage = pg.locator("#stage").bounding_box()
        assert stage["x"] >= 0 and stage["x"] + stage["width"] <= 390

        pg.locator("#stage").scroll_into_view_if_needed()
        stage = pg.locator("#stage").bounding_box()
        cdp = context.new_cdp_session(pg)
        y = stage["y"] + stage["height"] * 0.5
        touch(cdp, "touchStart", [(stage["x"] + stage["width"] * 0.3, y)])
        for i in range(1, 6):
            touch(cdp, "touchMove", [(stage["x"] + stage["width"] * (0.3 + 0.06 * i), y)])
        touch(cdp, "touchEnd", [])
        expect(pg.locator("#inpaint")).to_be_enabled()

        label = pg.locator("#zoom-label")
        fit_label = label.inner_text()
        cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] * 0.3
        touch(cdp, "touchStart", [(cx - 20, cy), (cx + 20, cy)])
        for i in range(1, 6):
            touch(cdp, "touchMove", [(cx - 20 - 12 * i, cy), (cx + 20 + 12 * i, cy)])
        touch(cdp, "touchEnd", [])
        expect(label).not_to_have_text(fit_label)
        pg.locator("#undo").tap()  # the pinch added no stroke: one undo empties the mask
        expect(pg.locator("#inpaint")).to_be_disabled()
        pg.locator("#redo").tap()
        pg.locator("#fit").tap()
        expect(label).to_have_text(fit_label)

        inpaint = pg.locator("#inpaint")
        inpaint.scroll_into_view_if_needed()
        expect(inpaint).to_be_visible()
        inpaint.tap()
        expect(pg.locator("#status")).to_have_attribute("data-state", "ok", timeout=30_000)
        pg.wait_for_function(  # the result, below the image on a phone, is scrolled into view
            """() => { const r = document.getElementById("compare").getBoundingClientRect();
                       return r.top >= 0 && r.bottom <= window.innerHeight; }""",
            timeout=5_000,
        )
        hole = sent_hole(server)
        assert hole.shape == (400, 600) and hole[200, 200:350].all() and hole.mean() < 0.1
        assert width() <= 390

        pg.set_viewport_size({"width": 360, "height": 740})
        pg.wait_for_timeout(300)  # the page lays itself out again after a resize
        assert width() <= 360
    finally:
        context.close()
    assert not errors, errors


def download_bytes(page) -> tuple[str, bytes]:
    with page.expect_download() as download:
        page.click("#download")
    return download.value.suggested_filename, Path(download.value.path()).read_bytes()


def test_the_slider_shows_the_fill_focus_and_use_result(page, server: Server, tmp_path: Path) -> None:
    """A hole in the left half shows on the 'after' side; Enter on Inpaint leaves the focus on Download; a
    disabled Inpaint says why; Use result makes the fill the photo with an empty mask, sent as it is next time."""
    fresh(page, server)
    why, inpaint = page.locator("#inpaint-why"), page.locator("#inpaint")
    expect(why).to_have_text("Open a photo first.")
    assert inpaint.get_attribute("aria-describedby") == "inpaint-why"
    open_photo(page, tmp_path / "left.png", gradient())
    expect(why).to_contain_text("Paint over what to remove first")
    page.check('input[name="tool"][value="box"]')
    drag(page, [(0.15, 0.3), (0.35, 0.6)])
    expect(why).to_have_text("")
    inpaint.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "ok", timeout=30_000)
    assert page.evaluate("document.activeElement.id") == "download", "focus stays on the controls"
    hole = sent_hole(server)
    x0 = np.nonzero(hole.any(axis=0))[0][0]
    split = float(page.locator("#split").input_value())
    assert split * 320 / 100 <= x0, "the whole hole is right of the divider, on the 'after' side"
    assert split > 5, "and the divider is near it, not at the image's edge"
    expect(page.locator("#download")).to_have_text("Download PNG")
    name, first = download_bytes(page)
    assert name == "left-inpainted.png"

    page.click("#reuse")
    expect(page.locator("#reuse")).to_be_disabled()
    expect(inpaint).to_be_disabled()
    expect(why).to_contain_text("Paint over what to remove first")
    expect(page.locator("#image-info")).to_contain_text("left-inpainted.png")
    assert page.locator("#source").get_attribute("src") == page.locator("#after").get_attribute("src")
    expect(page.locator("#undo")).to_be_disabled()
    page.check('input[name="tool"][value="brush"]')
    drag(page, [(0.6, 0.7), (0.8, 0.7)])
    inpaint_and_wait(page)
    assert server.last_form()["image"] == first, "the result is sent as the photo, as it was downloaded"
    assert download_bytes(page)[0] == "left-inpainted.png", "the name keeps the photo's"


def test_a_jpeg_comes_back_as_a_jpeg(page, server: Server, tmp_path: Path) -> None:
    fresh(page, server)
    Image.fromarray(gradient()).save(tmp_path / "photo.jpg", quality=90)
    page.set_input_files("#file", str(tmp_path / "photo.jpg"))
    expect(page.locator("#download")).to_have_text("Download JPEG")
    drag(page, [(0.3, 0.5), (0.6, 0.5)])
    inpaint_and_wait(page)
    assert server.last_form()["format"] == b"input"
    name, data = download_bytes(page)
    assert name == "photo-inpainted.jpg" and data[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(data)).size == (320, 240)


def test_box_drags_start_outside_the_image_and_large_masks_warn(page, server: Server, tmp_path: Path) -> None:
    """A box begun a few px outside the image starts at its edge and selects no text; a mask over 90% of the
    photo only warns on the first press; one over all of it is refused in the page."""
    fresh(page, server)
    open_photo(page, tmp_path / "edge.png", gradient())
    page.keyboard.press("r")
    box = page.locator("#source").bounding_box()
    page.mouse.move(box["x"] - 10, box["y"] - 6)  # in the pane's margin, left of and above the image
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + box["height"] * 0.96, steps=6)
    page.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + box["height"] + 80, steps=3)  # over the hint text
    page.mouse.move(box["x"] + box["width"] * 0.97, box["y"] + box["height"] * 0.96, steps=3)
    page.mouse.up()
    assert page.evaluate("window.getSelection().toString()") == ""
    status, inpaint = page.locator("#status"), page.locator("#inpaint")
    inpaint.click()
    expect(status).to_have_attribute("data-state", "warn")
    expect(status).to_contain_text("The mask covers 93% of the photo")
    inpaint.click()
    expect(status).to_have_attribute("data-state", "ok", timeout=30_000)
    hole = sent_hole(server)
    assert hole[0, 0] and hole[:230, :310].all() and not hole[:, 312:].any() and not hole[232:].any()

    page.click("#clear")
    page.mouse.move(box["x"] - 10, box["y"] - 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + 10, box["y"] + box["height"] + 10, steps=6)
    page.mouse.up()
    seen = len(server.recorder.requests)
    inpaint.click()
    expect(status).to_contain_text("The mask covers the whole photo")
    assert len(server.recorder.requests) == seen, "nothing was sent"
    assert page.evaluate("window.getSelection().toString()") == ""


def test_a_mask_can_be_loaded_from_a_file(page, server: Server, tmp_path: Path) -> None:
    """White = hole; a mask of the photo's shape but another size is scaled; another shape, or no white, is one
    line in the status; a loaded mask replaces the painted one, and Undo brings that back."""
    fresh(page, server)
    open_photo(page, tmp_path / "masked.png", gradient())
    drag(page, [(0.1, 0.9), (0.3, 0.9)])  # a painted stroke, replaced by the file's mask
    status = page.locator("#status")
    m = np.zeros((240, 320), np.uint8)
    m[60:120, 200:280] = 255
    Image.fromarray(m).save(tmp_path / "same.png")
    page.set_input_files("#mask-file", str(tmp_path / "same.png"))
    expect(status).to_contain_text("Loaded the mask same.png: 6.3% of the photo")
    inpaint_and_wait(page)
    np.testing.assert_array_equal(sent_hole(server), m > 0)

    Image.fromarray(m[::2, ::2]).convert("RGB").save(tmp_path / "half.jpg", quality=85)  # JPEG noise, half size
    page.set_input_files("#mask-file", str(tmp_path / "half.jpg"))
    expect(status).to_contain_text("(scaled from 160×120)")
    inpaint_and_wait(page)
    scaled = sent_hole(server)
    assert scaled[62:118, 202:278].all() and scaled.sum() == pytest.approx(m.astype(bool).sum(), rel=0.05)

    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "square.png")
    page.set_input_files("#mask-file", str(tmp_path / "square.png"))
    expect(status).to_have_text(
        "The mask square.png is 100×100 but the photo is 320×240: a mask needs the photo's size, or at least its shape."
    )
    Image.fromarray(np.zeros((240, 320), np.uint8)).save(tmp_path / "black.png")
    page.set_input_files("#mask-file", str(tmp_path / "black.png"))
    expect(status).to_contain_text("has no white pixels")

    page.click("#undo")
    page.click("#undo")  # back before the first loaded mask: the painted stroke
    inpaint_and_wait(page)
    painted = sent_hole(server)
    assert painted[216, 40:90].all() and not painted[60:120, 200:280].any()
