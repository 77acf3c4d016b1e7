"""The bounded work queue: a few threads fill images while the event loop stays free, and a full queue says 503."""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import HTTPException

log = logging.getLogger(__name__)


class WorkQueue:
    """A pool of `workers` threads that admits at most `queue_size` jobs waiting beyond the running ones.

    A job counts as pending from admission until its thread finishes it, even when the client that asked
    for it has gone away, so the bound holds for the work actually queued.
    """

    def __init__(self, workers: int, queue_size: int):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers, self.queue_size = workers, queue_size
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=32)  # seconds of the latest jobs, for Retry-After

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread, awaited.

        503 with Retry-After when the queue is full; an `HTTPException` from `fn` passes through, any
        other exception is logged and answered 500.
        """
        future = self.try_submit(fn, *args)
        if future is None:
            retry = self.retry_after()
            raise HTTPException(503, f"the server is busy; try again in {retry} s", headers={"Retry-After": str(retry)})
        try:
            return await asyncio.wrap_future(future)
        except HTTPException:
            raise
        except Exception as exc:
            log.exception("inpainting failed")
            raise HTTPException(500, f"inpainting failed: {type(exc).__name__}: {exc}") from None

    def try_submit(self, fn: Callable[..., Any], *args: Any) -> Future | None:
        """The job's future, or None when the queue is full."""
        with self._lock:
            if self._pending >= self.workers + self.queue_size:
                return None
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inpaint")
            executor = self._executor
        try:
            return executor.submit(self._run, fn, *args)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._pending -= 1
            return None

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._pending -= 1
                self._durations.append(time.perf_counter() - start)

    def retry_after(self) -> int:
        """Seconds after which a refused client may expect a free slot: the queue's expected drain time."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 1.0
            pending = self._pending
        return max(1, min(600, math.ceil(typical * pending / self.workers)))

    def stats(self) -> dict[str, int]:
        """Workers, running and waiting jobs, and the number of places to wait."""
        with self._lock:
            pending = self._pending
        return {
            "workers": self.workers,
            "running": min(pending, self.workers),
            "waiting": max(0, pending - self.workers),
            "queue_size": self.queue_size,
        }

    def shutdown(self) -> None:
        """Stop the threads; jobs not yet started are cancelled."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
