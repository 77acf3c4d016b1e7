"""The bounded work queue: a request takes a place before its body is read, a few threads fill images while the
event loop stays free, and when every place is taken the answer is 503 at once.

A request may name itself with a ticket (a random token chosen by the client) so that it can ask where it
stands while it waits; a request whose client has gone away before its turn is skipped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from fastapi import HTTPException

log = logging.getLogger(__name__)

Stage = Literal["uploading", "waiting", "running"]
TICKET = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what a client may name its request with
CLIENT_GONE = 499  # the status nginx logs for "client closed request": the job was skipped, nobody reads it


class WorkQueue:
    """`workers` threads and `workers + queue_size` places.

    A request holds a place from admission (before its body is read) until its job's thread finishes,
    even when the client that asked for it has gone away, so at most `workers + queue_size` request
    bodies are ever in memory and the bound holds for the work actually queued. Jobs start in the order
    they were handed over; one whose client disconnected before it started is dropped when its turn comes.
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
        self._queued: dict[Place, None] = {}  # handed over, not started: in the order the threads take them
        self._tickets: dict[str, Place] = {}  # the admitted requests that named themselves
        self._durations: deque[float] = deque(maxlen=32)  # seconds of the latest jobs, for Retry-After

    def admit(self, ticket: str | None = None) -> Place:
        """A place for one request, to take before reading its body; 503 with Retry-After when all are taken.

        `ticket` (matching `TICKET`, checked by the caller) lets `position` find the request until it is done.
        """
        with self._lock:
            if self._places < self.workers + self.queue_size:
                self._places += 1
                place = Place(self, ticket)
                if ticket is not None:
                    self._tickets.setdefault(ticket, place)  # a ticket in use already keeps its first request
                return place
        retry = self.retry_after()
        raise HTTPException(503, f"the server is busy; try again in {retry} s", headers={"Retry-After": str(retry)})

    def _forget(self, place: Place) -> None:  # with the lock held
        if place.ticket is not None and self._tickets.get(place.ticket) is place:
            del self._tickets[place.ticket]

    def _release(self, place: Place) -> None:
        with self._lock:
            self._places -= 1
            self._forget(place)

    def _submit(self, place: Place, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inpaint")
            executor = self._executor
            self._submitted += 1
            self._queued[place] = None
            place.stage = "waiting"
        try:
            return asyncio.wrap_future(executor.submit(self._run, place, fn, *args))
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._submitted -= 1
                self._places -= 1
                self._queued.pop(place, None)
                self._forget(place)
            raise HTTPException(503, "the server is shutting down", headers={"Retry-After": "5"}) from None

    def _run(self, place: Place, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            self._queued.pop(place, None)
            skip = place.abandoned
            if not skip:
                self._running += 1
                place.stage = "running"
        if skip:
            self._finish(place, None)
            log.info("skipped a job whose client closed the connection before its turn")
            raise HTTPException(CLIENT_GONE, "the client closed the connection before its turn: nothing was filled")
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self._finish(place, time.perf_counter() - start)

    def _finish(self, place: Place, seconds: float | None) -> None:
        """Free a handed-over job's place; `seconds` it ran, None if it was skipped."""
        with self._lock:
            if seconds is not None:
                self._running -= 1
                self._durations.append(seconds)
            self._submitted -= 1
            self._places -= 1
            self._forget(place)

    def _abandon(self, place: Place) -> None:
        """The client of `place` has gone: skip its job if it has not started."""
        with self._lock:
            place.abandoned = True

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

    def position(self, ticket: str | None = None) -> dict[str, Any]:
        """Where the request named `ticket` stands: its stage (None when no admitted request has that ticket:
        not yet admitted, or done) and how many fills must end before it can start (for None: before a new
        request could); the running and waiting jobs and the workers. Skipped jobs are not counted."""
        with self._lock:
            place = self._tickets.get(ticket) if ticket is not None else None
            stage = place.stage if place is not None else None
            live = [p for p in self._queued if not p.abandoned]
            before = len(live)  # for a request not handed over yet, every queued job starts first
            if stage == "waiting":
                before = sum(1 for p in itertools.takewhile(lambda p: p is not place, self._queued) if not p.abandoned)
            running = self._running
        ahead = 0 if stage == "running" else max(0, running + before - self.workers + 1)
        return {"state": stage, "ahead": ahead, "running": running, "waiting": len(live), "workers": self.workers}

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

    def __init__(self, queue: WorkQueue, ticket: str | None = None):
        self._queue, self._held = queue, True
        self.ticket = ticket
        self.stage: Stage = "uploading"
        self.abandoned = False  # the client went away before the job started: it is skipped

    async def run(self, fn: Callable[..., Any], *args: Any, gone: Callable[[], Awaitable[object]] | None = None) -> Any:
        """`fn(*args)` in a worker thread, awaited; its exceptions pass through.

        `gone()` returns an awaitable that completes when the client has disconnected: if that happens before
        the job starts, the job is skipped (HTTPException `CLIENT_GONE`); a job that has started runs to its end.
        """
        if not self._held:
            raise RuntimeError("this place was already used")
        self._held = False  # from here the job frees it, also when this await is cancelled
        future = self._queue._submit(self, fn, *args)
        if gone is None:
            return await future
        watch = asyncio.ensure_future(gone())
        try:
            done, _ = await asyncio.wait({future, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done and not watch.cancelled() and watch.exception() is None:
                self._queue._abandon(self)
            return await future
        finally:
            watch.cancel()

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self._queue._release(self)
