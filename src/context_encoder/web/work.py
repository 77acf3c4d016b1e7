"""The bounded work queue: a request takes a place before its body is read, a few threads fill images while the
event loop stays free, and when every place is taken the answer is 503 at once."""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import HTTPException

log = logging.getLogger(__name__)


class WorkQueue:
    """`workers` threads and `workers + queue_size` places.

    A request holds a place from admission (before its body is read) until its job's thread finishes,
    even when the client that asked for it has gone away, so at most `workers + queue_size` request
    bodies are ever in memory and the bound holds for the work actually queued.
    """

    def __init__(self, workers: int, queue_size: int):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers, self.queue_size = workers, queue_size
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._places = 0  # admitted requests not yet done: reading their body, waiting or running
        self._submitted = 0  # of them, handed to the threads
        self._running = 0  # of those, being filled now
        self._durations: deque[float] = deque(maxlen=32)  # seconds of the latest jobs, for Retry-After

    def admit(self) -> Place:
        """A place for one request, to take before reading its body; 503 with Retry-After when all are taken."""
        with self._lock:
            if self._places < self.workers + self.queue_size:
                self._places += 1
                return Place(self)
        retry = self.retry_after()
        raise HTTPException(503, f"the server is busy; try again in {retry} s", headers={"Retry-After": str(retry)})

    def _release(self) -> None:
        with self._lock:
            self._places -= 1

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inpaint")
            executor = self._executor
            self._submitted += 1
        try:
            return asyncio.wrap_future(executor.submit(self._run, fn, *args))
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._submitted -= 1
                self._places -= 1
            raise HTTPException(503, "the server is shutting down", headers={"Retry-After": "5"}) from None

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._running += 1
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1
                self._submitted -= 1
                self._places -= 1
                self._durations.append(time.perf_counter() - start)

    def retry_after(self) -> int:
        """Seconds after which a refused client may expect a free place: the queue's expected drain time."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 1.0
            pending = self._places
        return max(1, min(600, math.ceil(typical * pending / self.workers)))

    def stats(self) -> dict[str, int]:
        """Workers, running and waiting jobs, requests still sending their body, and the places to wait."""
        with self._lock:
            places, submitted, running = self._places, self._submitted, self._running
        return {
            "workers": self.workers,
            "running": running,
            "waiting": submitted - running,
            "uploading": places - submitted,
            "queue_size": self.queue_size,
        }

    def shutdown(self) -> None:
        """Stop the threads; jobs not yet started are cancelled."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class Place:
    """One admitted request's place in the queue.

    Use it as a context manager around reading the body and checking the request: leaving it without
    `run` (a bad request, a slow upload) frees the place; `run` hands it to the job, whose thread frees it.
    """

    def __init__(self, queue: WorkQueue):
        self._queue, self._held = queue, True

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a worker thread, awaited; its exceptions pass through."""
        if not self._held:
            raise RuntimeError("this place was already used")
        self._held = False  # from here the job frees it, also when this await is cancelled
        return await self._queue._submit(fn, *args)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self._queue._release()
