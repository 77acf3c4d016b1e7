"""The bounded work queue: a request takes a place before its body is read, a few threads fill images while the
event loop stays free, and when every place is taken the answer is 503 at once.

A request may name itself with a ticket (a random token chosen by the client) so that it can ask where it
stands while it waits, and cancel itself. A cancelled request, or one whose client has gone away, is dropped
if it has not started; one that has started stops at its next cancel point (`cancel_point`, and every torch
call inside `stoppable`), and gives its worker to the next request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from fastapi import HTTPException
from torch.overrides import TorchFunctionMode

log = logging.getLogger(__name__)

Stage = Literal["uploading", "waiting", "running"]
TICKET = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what a client may name its request with
CLIENT_GONE = 499  # the status nginx logs for "client closed request": the job was dropped, nobody reads it


class Cancelled(BaseException):
    """Raised in a job's thread at its first cancel point after its request was cancelled.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way turns it into an error.
    """


_job = threading.local()  # .place: the Place whose job this thread runs


def cancel_point() -> None:
    """Raise `Cancelled` if the request whose job this thread runs has been cancelled; else (or outside a
    job) nothing."""
    place = getattr(_job, "place", None)
    if place is not None and place.cancelled:
        raise Cancelled


class _TorchCallsAreCancelPoints(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        cancel_point()
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Within it, every torch function this thread calls is a cancel point: a cancelled fill stops at the next
    operation of its network or patch synthesis instead of at its end.

    Torch's function modes are per thread, so other threads' jobs are not affected; the cost is one Python
    call per torch call (a 1024 px fill with texture from the photo makes about 9,000: under 10 ms).
    """
    with _TorchCallsAreCancelPoints():
        yield


class WorkQueue:
    """`workers` threads filling images and `workers + queue_size` places.

    A request holds a place from admission (before its body is read) until its job's thread finishes,
    even when it was cancelled or its client has gone away, so at most `workers + queue_size` request
    bodies are ever in memory and the bound holds for the work actually queued. Jobs start in the order
    they were handed over, each when one of the `workers` is free. A cancelled job that has not started is
    dropped at once; one that has started stops at its next cancel point and frees its worker at once, so
    the next job need not wait for it to stop (up to `workers` such jobs may still be ending at a time;
    beyond that, a cancelled job keeps its worker until it has stopped).
    """

    def __init__(self, workers: int, queue_size: int):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers, self.queue_size = workers, queue_size
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)  # notified when a worker frees or the head of the line changes
        self._closed = False
        self._places = 0  # admitted requests not yet done: reading their body, waiting, running or stopping
        self._submitted = 0  # of them, handed to the threads
        self._running = 0  # of those, being filled by a worker now
        self._stopping = 0  # cancelled jobs still ending in their thread, their worker given to the next job
        self._queued: dict[Place, None] = {}  # handed over, not started: in the order they start
        self._tickets: dict[str, Place] = {}  # the admitted requests that named themselves
        self._durations: deque[float] = deque(maxlen=32)  # seconds of the latest completed jobs, for Retry-After

    def admit(self, ticket: str | None = None) -> Place:
        """A place for one request, to take before reading its body; 503 with Retry-After when all are taken.

        `ticket` (matching `TICKET`, checked by the caller) lets `position` and `cancel` find the request until
        it is done.
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

    def cancel(self, ticket: str) -> Stage | None:
        """Cancel the request named `ticket`: its stage when cancelled, None when no admitted request has it.

        Uploading: it will not be filled. Waiting: it is dropped now. Running: it stops at its next cancel
        point, and its worker goes to the next job at once.
        """
        with self._lock:
            place = self._tickets.get(ticket)
            if place is None:
                return None
            self._cancel(place, "cancelled by its client")
            return place.stage

    def _cancel(self, place: Place, why: str) -> None:  # with the lock held
        if not place.cancelled:
            place.cancelled, place.why = True, why
        if place.stage == "running" and not place.stopping and self._stopping < self.workers:
            place.stopping = True  # it no longer holds a worker
            self._running -= 1
            self._stopping += 1
        self._turn.notify_all()

    def _abandon(self, place: Place) -> None:
        """The client of `place` has gone: nobody reads its answer, so its job is cancelled."""
        with self._lock:
            self._cancel(place, "its client closed the connection")

    def _forget(self, place: Place) -> None:  # with the lock held
        if place.ticket is not None and self._tickets.get(place.ticket) is place:
            del self._tickets[place.ticket]

    def _release(self, place: Place) -> None:
        with self._lock:
            self._places -= 1
            self._forget(place)

    def _submit(self, place: Place, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        with self._lock:
            if self._executor is None:  # a thread per place: a job waits for its turn in its own thread
                self._executor = ThreadPoolExecutor(self.workers + self.queue_size, thread_name_prefix="inpaint")
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

    def _next_in_line(self) -> Place | None:  # with the lock held
        return next((p for p in self._queued if not p.cancelled), None)

    def _run(self, place: Place, fn: Callable[..., Any], *args: Any) -> Any:
        with self._turn:
            while not (place.cancelled or self._closed) and (
                self._running >= self.workers or self._next_in_line() is not place
            ):
                self._turn.wait()
            del self._queued[place]
            skip = place.cancelled or self._closed
            if not skip:
                self._running += 1
                place.stage = "running"
            self._turn.notify_all()  # another job may be at the head of the line now
        if skip:
            self._finish(place, ran=False)
            why = place.why or "dropped: the server is shutting down"
            log.info("dropped a job before it started: %s", why)
            raise HTTPException(CLIENT_GONE, f"the request was {why} before its turn: nothing was filled")
        start = time.perf_counter()
        _job.place = place
        try:
            result = fn(*args)
        except Cancelled:
            seconds = time.perf_counter() - start
            log.info("stopped a job %.2f s after it started: %s", seconds, place.why)
            raise HTTPException(CLIENT_GONE, f"the request was {place.why} after {seconds:.2f} s of work") from None
        finally:
            _job.place = None
            self._finish(place, ran=True, seconds=time.perf_counter() - start)
        return result

    def _finish(self, place: Place, ran: bool, seconds: float | None = None) -> None:
        """Free a handed-over job's place (and its worker if it `ran`; its `seconds` count for Retry-After
        unless it was cancelled)."""
        with self._lock:
            if ran and place.stopping:
                self._stopping -= 1
            elif ran:
                self._running -= 1
            if ran and not place.cancelled and seconds is not None:
                self._durations.append(seconds)
            self._submitted -= 1
            self._places -= 1
            self._forget(place)
            self._turn.notify_all()

    def retry_after(self) -> int:
        """Seconds after which a refused client may expect a free place: the queue's expected drain time."""
        with self._lock:
            typical = statistics.median(self._durations) if self._durations else 1.0
            pending = self._places
        return max(1, min(600, math.ceil(typical * pending / self.workers)))

    def stats(self) -> dict[str, int]:
        """Workers, running and waiting jobs, cancelled jobs still stopping, requests still sending their body,
        and the places to wait."""
        with self._lock:
            places, submitted, running, stopping = self._places, self._submitted, self._running, self._stopping
        return {
            "workers": self.workers,
            "running": running,
            "waiting": submitted - running - stopping,
            "stopping": stopping,
            "uploading": places - submitted,
            "queue_size": self.queue_size,
        }

    def position(self, ticket: str | None = None) -> dict[str, Any]:
        """Where the request named `ticket` stands: its stage (None when no admitted request has that ticket:
        not yet admitted, or done) and how many fills must end before it can start (for None: before a new
        request could); the running and waiting jobs and the workers. Cancelled jobs are not counted."""
        with self._lock:
            place = self._tickets.get(ticket) if ticket is not None else None
            stage = place.stage if place is not None else None
            live = [p for p in self._queued if not p.cancelled]
            before = len(live)  # for a request not handed over yet, every queued job starts first
            if stage == "waiting":
                before = sum(1 for p in itertools.takewhile(lambda p: p is not place, self._queued) if not p.cancelled)
            running = self._running
        ahead = 0 if stage == "running" else max(0, running + before - self.workers + 1)
        return {"state": stage, "ahead": ahead, "running": running, "waiting": len(live), "workers": self.workers}

    def shutdown(self) -> None:
        """Stop the threads; jobs not yet started are dropped."""
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
            self._turn.notify_all()
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
        self.cancelled = False  # by its client, or its client went away: dropped, or stopped at a cancel point
        self.why = ""  # how it was cancelled, for the log and the (unread) answer
        self.stopping = False  # cancelled while running, its worker already given to the next job

    async def run(self, fn: Callable[..., Any], *args: Any, gone: Callable[[], Awaitable[object]] | None = None) -> Any:
        """`fn(*args)` in a worker thread, awaited; its exceptions pass through.

        A request cancelled before this, or whose job is cancelled before it starts, is answered `CLIENT_GONE`
        without being filled; a job cancelled while it runs is answered that at its next cancel point. `gone()`
        returns an awaitable that completes when the client has disconnected: that cancels the job too.
        """
        if not self._held:
            raise RuntimeError("this place was already used")
        if self.cancelled:  # during the upload: the place is freed on leaving the `with`
            raise HTTPException(CLIENT_GONE, f"the request was {self.why} during its upload: nothing was filled")
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
