"""The bounded executor for long work, off Bolt's listener pool.

Listeners must ack within 3 s and Bolt runs them on a fixed pool of threads
(``bot.slack.app.LISTENER_THREADS``): a listener that waits for Vast.ai holds one of them, and when
all are held ``/templates``, the Home tab and every other request wait until Slack gives up.
So listeners parse, ack and hand everything that may wait for Vast.ai (offer searches, the
submission's re-check and rental, stop / start / destroy, approvals that rent, slow answers
such as the credit) to a :class:`WorkPool`, built once by :func:`bot.runtime.build_services`
as ``Services.work``.

The pool is bounded: ``threads`` workers plus at most ``queue`` jobs waiting. When both are
taken, :meth:`WorkPool.submit` raises :class:`Busy` at once, and the listener tells the user
:data:`BUSY_TEXT` instead of queueing work that would only finish after the user gave up.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import ParamSpec, TypeVar

from bot.logs import ContextExecutor

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

BUSY_TEXT = (
    ":hourglass: The bot is busy with other requests (Vast.ai is slow to answer right now) "
    "— try again in a minute."
)
"""What a user reads when the pool refused their work."""


class Busy(Exception):
    """The pool's threads and queue are all taken: the work was not accepted."""


class WorkPool:
    """A thread pool that refuses work at once when ``threads + queue`` jobs are in it.

    Args:
        threads: jobs that run at the same time.
        queue: jobs that may wait for a thread; one more is refused with :class:`Busy`.
        name: prefix of the threads' names (seen in logs and thread dumps).
    """

    def __init__(self, threads: int, queue: int, *, name: str = "work") -> None:
        if threads < 1 or queue < 0:
            raise ValueError("a work pool needs at least one thread and a queue of 0 or more")
        self.threads = threads
        self.capacity = threads + queue
        # Each job runs in a copy of its submitter's context: the request's log fields follow it.
        self._executor = ContextExecutor(max_workers=threads, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(self.capacity)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.refused = 0
        """Jobs refused because the pool was full (for tests and benchmarks)."""

    @property
    def in_flight(self) -> int:
        """Jobs accepted and not finished (running or waiting)."""
        with self._lock:
            return self._in_flight

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on the pool; the caller reads the result (or the
        exception) from the returned future. Raises :class:`Busy` when the pool is full."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise Busy
        with self._lock:
            self._in_flight += 1
        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:  # shut down: give the slot back before saying so
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    def spawn(self, fn: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``fn`` on the pool and let nobody wait for it: an exception it raises is
        logged with a reference (the job should tell the user itself). Raises :class:`Busy`
        when the pool is full."""
        self.submit(fn, *args, **kwargs).add_done_callback(_log_failure)

    def shutdown(self, *, wait: bool = False, wait_seconds: float | None = None) -> None:
        """Stop accepting work. With ``wait``, wait for the jobs already accepted; with
        ``wait_seconds``, let them run (queued ones included: each was acked to a user, and a
        Stop or Destroy must not vanish at a restart) but wait at most that long, then log how
        many were left. Without either, queued jobs are cancelled."""
        if wait_seconds is None:
            self._executor.shutdown(wait=wait, cancel_futures=not wait)
            return
        self._executor.shutdown(wait=False, cancel_futures=False)
        deadline = time.monotonic() + wait_seconds
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.in_flight:
            logger.warning("shutting down with %d job(s) still running", self.in_flight)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
        self._slots.release()


def _log_failure(future: Future[object]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        reference = uuid.uuid4().hex[:8]
        logger.error(
            "background job failed (ref %s): %s", reference, type(error).__name__, exc_info=error
        )
