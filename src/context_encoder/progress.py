"""A dependency-free progress bar: live on a terminal; elsewhere (logs, CI) a plain line now and then.

Why not `tqdm`: the part that matters for training is what a log file gets (`train ... > log`, batch
jobs, CI), and there tqdm writes its bar redrawn with carriage returns at `mininterval`, not one
newline-ended line per 5% of the run with an ETA, held between half a minute and three minutes apart.
Getting that from tqdm would still take this module's timing logic (its own output disabled off a
terminal, lines written here), so tqdm would add a core dependency to replace only the live bar, which is
about twenty lines of `_line`, `update` and `close` below.
"""

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
    """`Progress(total, initial)`; call `update(n)` per step and `set_postfix(...)` with fresh numbers.

    On a terminal the bar is redrawn in place. On any other stream (`train ... > log`) a plain line
    (position, percentage, elapsed, ETA, postfix) is written once at least `every` updates (default: 5% of
    the total) and `min_interval` seconds have passed since the last one, and in any case after
    `max_interval` seconds with progress, and once at the end.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        stream: TextIO | None = None,
        enabled: bool = True,
        every: int | None = None,
        min_interval: float = 30.0,  # seconds: a log gets at most one line per half minute...
        max_interval: float = 180.0,  # ...and at least one every three minutes while work goes on
    ):
        self.total, self.count, self.desc = total, initial, desc
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.live = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = every if every is not None else max(1, total // 20)
        self.min_interval, self.max_interval = min_interval, max_interval
        self.postfix = ""
        self.start, self.start_count, self.last_draw = time.perf_counter(), initial, 0.0
        self.last_line_time, self.last_line_count = self.start, initial

    def _stats(self) -> tuple[float, float, float]:
        """(elapsed seconds, ETA seconds, percent done)."""
        elapsed = time.perf_counter() - self.start
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        return elapsed, eta, 100.0 * self.count / max(1, self.total)

    def _line(self) -> str:
        elapsed, eta, pct = self._stats()
        width = 20
        filled = int(width * self.count / max(1, self.total))
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self.desc} [{bar}] {self.count}/{self.total} {pct:3.0f}% "
            f"{_duration(elapsed)}<{_duration(eta)} {self.postfix}"
        ).rstrip()

    def _plain_line(self) -> str:
        elapsed, eta, pct = self._stats()
        return (
            f"{self.desc} {self.count}/{self.total} {pct:.0f}% elapsed {_duration(elapsed)} "
            f"eta {_duration(eta)} {self.postfix}"
        ).strip()

    def _write_plain(self, now: float) -> None:
        self.stream.write(self._plain_line() + "\n")
        self.stream.flush()
        self.last_line_time, self.last_line_count = now, self.count

    def update(self, n: int = 1) -> None:
        self.count += n
        now = time.perf_counter()
        if self.live and (now - self.last_draw > 0.2 or self.count >= self.total):
            self.stream.write("\r\033[K" + self._line())
            self.stream.flush()
            self.last_draw = now
        elif self.enabled and not self.live:
            since, steps = now - self.last_line_time, self.count - self.last_line_count
            if (steps >= self.every and since >= self.min_interval) or since >= self.max_interval:
                self._write_plain(now)

    def set_postfix(self, text: str) -> None:
        """Numbers shown after the position (loss, speed, ...), from the next line drawn on."""
        self.postfix = text

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K" + self._line() + "\n")
            self.stream.flush()
        elif self.enabled and self.count != self.last_line_count:
            self._write_plain(time.perf_counter())
