"""The web server under load, over real HTTP: 20 and then 50 requests at once against uvicorn on 127.0.0.1.

    python benchmarks/web_load.py                  # the shipped scenes128-region model, the default limits
    python benchmarks/web_load.py --model tiny     # the untrained tiny preset (no weights needed)
    python benchmarks/web_load.py --rounds 5 10 --workers 2 --queue-size 4
    python benchmarks/web_load.py --stalled 30     # then 30 uploads that stop halfway (about 40 s more)

The server runs in a subprocess (this file with `--serve`: `create_app` and uvicorn on a free port of
127.0.0.1, torch on `--threads` threads). After one warm-up request (it loads the model), each round
sends N requests at once from N client threads: a 512 x 384 photo-like PNG with a brush-stroke hole
(an RGBA mask, as the page sends it), method `model`. Per round it prints the 200s, the 503s (no place
in the queue), other answers and errors, the median and 95th percentile latency of the 200s and of all
answers, and the server's peak RSS (VmHWM from /proc, reset before the round where the kernel allows).
`--stalled N` then opens N connections that each announce a 19 MiB upload, send 10 MiB of it and stop:
it prints how they were answered (503 at once without a place, 408 after the read timeout) and when,
and the server's peak RSS meanwhile. Every request has a timeout, the server is stopped at the end, and
nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import math
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TIMEOUT_S = 120  # per request; a round ends when every request has answered or timed out


def serve(model: str, workers: int, queue_size: int, threads: int, read_timeout: float) -> None:
    """The child process: the app on a free 127.0.0.1 port, printed on the first line of stdout."""
    import torch
    import uvicorn

    from context_encoder.web import create_app

    torch.set_num_threads(threads)
    if model == "tiny":
        from context_encoder.config import load_config
        from context_encoder.inpaint import Inpainter
        from context_encoder.models import build_models

        cfg = load_config("tiny")
        gen, _ = build_models(cfg.model, cfg.full_image, seed=0)
        models = {"tiny": lambda: Inpainter(gen, cfg)}
    else:
        from context_encoder.loading import load_model

        models = {model: lambda: load_model(model)}
    app = create_app(models, workers=workers, queue_size=queue_size, read_timeout=read_timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def request_body(seed: int = 0) -> tuple[bytes, str]:
    """(multipart/form-data body, its content type): a 512 x 384 photo-like PNG, a stroke mask, method model."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    photo = np.asarray(Image.fromarray(coarse).resize((512, 384), Image.BICUBIC)).astype(np.int16)
    photo = np.clip(photo + rng.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)  # some texture
    mask = Image.new("RGBA", (512, 384), (0, 0, 0, 0))
    ImageDraw.Draw(mask).line([(150, 200), (260, 215), (340, 190)], fill=(255, 255, 255, 255), width=24)
    files = {"image": ("photo.png", _png(Image.fromarray(photo))), "mask": ("mask.png", _png(mask))}
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="method"\r\n\r\nmodel\r\n'.encode()]
    for name, (filename, data) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: image/png\r\n\r\n" + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def post(port: int, body: bytes, content_type: str) -> tuple[int | str, float]:
    """(status, or the error's name; seconds) of one POST /api/inpaint on its own connection."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", "/api/inpaint", body=body, headers={"Content-Type": content_type})
        res = conn.getresponse()
        res.read()
        status: int | str = res.status
    except (OSError, http.client.HTTPException) as exc:
        status = type(exc).__name__
    finally:
        conn.close()
    return status, time.perf_counter() - start


def get_json(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def memory_mb(pid: int, key: str) -> float:
    """VmRSS or VmHWM (peak RSS) of process `pid` in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", status).group(1)) / 1024


def reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux clear_refs 5); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def wait_idle(port: int, deadline_s: float = TIMEOUT_S) -> None:
    """Until the server's queue is empty (jobs of clients that gave up still run to the end)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        queue = get_json(port, "/healthz")["queue"]
        if queue["running"] == queue["waiting"] == queue.get("uploading", 0) == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("the server's queue did not drain")


def run_round(port: int, pid: int, n: int, body: bytes, content_type: str) -> dict:
    """N requests released at once by a barrier; the counts, latencies and the server's peak RSS."""
    wait_idle(port)
    reset = reset_peak(pid)
    idle = memory_mb(pid, "VmRSS")
    barrier = threading.Barrier(n)
    results: list[tuple[int | str, float]] = [("no answer", math.nan)] * n

    def client(i: int) -> None:
        barrier.wait()
        results[i] = post(port, body, content_type)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S + 10)
    codes = [status for status, _ in results]
    ok = [seconds for status, seconds in results if status == 200]
    every = [seconds for _, seconds in results if not math.isnan(seconds)]
    return {
        "n": n,
        "ok": len(ok),
        "busy": codes.count(503),
        "other": sorted({str(c) for c in codes if c not in (200, 503)}),
        "others": sum(c not in (200, 503) for c in codes),
        "ok_s": _quantiles(ok),
        "all_s": _quantiles(every),
        "idle_mb": idle,
        "peak_mb": memory_mb(pid, "VmHWM"),
        "peak_is_round": reset,
    }


def stalled_uploads(port: int, pid: int, n: int, limit_s: float) -> dict:
    """N uploads that announce 19 MiB, send 10 MiB and stop: how and when each was answered, the server's peak RSS."""
    head = (
        f"POST /api/inpaint HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {19 * 2**20}\r\n\r\n"
        '--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
    ).encode()
    sent = bytes(10 * 2**20)
    wait_idle(port)
    reset_peak(pid)
    idle = memory_mb(pid, "VmRSS")
    results: list[tuple[str, float]] = [("no answer", math.nan)] * n

    def client(i: int) -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=limit_s) as sock:
            answer = b""
            try:
                sock.sendall(head + sent)
                while chunk := sock.recv(65536):  # until the server closes the connection
                    answer += chunk
            except OSError:
                pass
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
        results[i] = (status, time.monotonic() - start)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit_s + 10)
    by_status: dict[str, list[float]] = {}
    for status, seconds in results:
        by_status.setdefault(status, []).append(seconds)
    return {"idle_mb": idle, "peak_mb": memory_mb(pid, "VmHWM"), "answers": by_status}


def _quantiles(seconds: list[float]) -> tuple[float, float]:
    """(median, 95th percentile by the nearest-rank method); NaN for none."""
    if not seconds:
        return math.nan, math.nan
    ranked = sorted(seconds)
    return statistics.median(ranked), ranked[max(0, math.ceil(0.95 * len(ranked)) - 1)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="scenes128-region", help="a shipped model, or tiny (default scenes128-region)")
    p.add_argument("--rounds", type=int, nargs="+", default=[20, 50], help="requests at once, per round")
    p.add_argument("--workers", type=int, default=1, help="the server's worker threads (default 1)")
    p.add_argument("--queue-size", type=int, default=8, help="the server's places to wait (default 8)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server (default 1)")
    p.add_argument("--read-timeout", type=float, default=30.0, help="the server's body timeout, s (default 30)")
    p.add_argument("--stalled", type=int, default=0, help="uploads that stop halfway, after the rounds (default 0)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()
    if args.serve:
        serve(args.model, args.workers, args.queue_size, args.threads, args.read_timeout)
        return
    if max(args.rounds) > 200 or args.stalled > 50:
        p.error("at most 200 requests at once and 50 stalled uploads")

    child = [sys.executable, __file__, "--serve", "--model", args.model, "--threads", str(args.threads)]
    child += [
        "--workers",
        str(args.workers),
        "--queue-size",
        str(args.queue_size),
        "--read-timeout",
        str(args.read_timeout),
    ]
    server = subprocess.Popen(child, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        for _ in range(600):  # up to a minute for uvicorn to answer
            try:
                get_json(port, "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        body, content_type = request_body()
        status, warm = post(port, body, content_type)
        assert status == 200, f"the warm-up request answered {status}"
        print(
            f"server: pid {server.pid}, 127.0.0.1:{port}, model {args.model}, {args.workers} worker(s), "
            f"{args.queue_size} places to wait, {args.threads} torch thread(s); request {len(body) / 1024:.0f} KiB "
            f"(512x384 PNG, stroke hole, method model); warm-up (loads the model) {warm:.2f} s, "
            f"then RSS {memory_mb(server.pid, 'VmRSS'):.0f} MB"
        )
        print("at once   200   503  other   200s: median    p95   all: median    p95   RSS idle -> peak")
        for n in args.rounds:
            r = run_round(port, server.pid, n, body, content_type)
            other = f"{r['others']}" + (f" ({', '.join(r['other'])})" if r["other"] else "")
            since = "" if r["peak_is_round"] else " (peak since start)"
            (ok_median, ok_p95), (all_median, all_p95) = r["ok_s"], r["all_s"]
            print(
                f"{n:>7} {r['ok']:>5} {r['busy']:>5} {other:>6}   {ok_median:>8.2f} s {ok_p95:>5.2f} s"
                f"   {all_median:>7.2f} s {all_p95:>5.2f} s   {r['idle_mb']:.0f} -> {r['peak_mb']:.0f} MB{since}"
            )
        if args.stalled:
            r = stalled_uploads(port, server.pid, args.stalled, args.read_timeout + 30)
            answers = ", ".join(
                f"{len(seconds)} x {status} after {min(seconds):.1f}-{max(seconds):.1f} s"
                for status, seconds in sorted(r["answers"].items())
            )
            print(
                f"{args.stalled} stalled uploads (19 MiB announced, 10 MiB sent; read timeout {args.read_timeout:g} s):"
                f" {answers}; RSS {r['idle_mb']:.0f} -> peak {r['peak_mb']:.0f} MB"
            )
        wait_idle(port)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
