"""A dependency-free progress bar: live on a terminal, one line per update elsewhere (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """`Progress(total, initial)`; call `update(n)` per step and `set_postfix(...)` with fresh numbers."""

    def __init__(
        self, total: int, initial: int = 0, desc: str = "", stream: TextIO | None = None, enabled: bool = True
    ):
        self.total, self.count, self.desc = total, initial, desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.postfix = ""
        self.start, self.start_count, self.last_draw = time.perf_counter(), initial, 0.0

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.start
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        pct = 100.0 * self.count / max(1, self.total)
        width = 20
        filled = int(width * self.count / max(1, self.total))
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self.desc} [{bar}] {self.count}/{self.total} {pct:3.0f}% "
            f"{_duration(elapsed)}<{_duration(eta)} {self.postfix}"
        ).rstrip()

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.2 or self.count >= self.total):
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()
            self.last_draw = now

    def set_postfix(self, text: str) -> None:
        self.postfix = text
        if self.enabled and not self.live:
            self.stream.write(self._line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K" + self._line() + "\n")
            self.stream.flush()
