"""Pacing of Vast.ai calls: a minimum interval between calls, one pacer per endpoint.

Vast.ai enforces its rate limits as a *minimum interval between calls* per endpoint and per
caller (docs/VAST_API.md §1, "Rate limits"); a call that comes too soon gets HTTP 429. The
intervals below are the ``x-rate-limit`` hints of Vast.ai's OpenAPI files (vendored in
``tests/specs/``): ``threshold`` seconds for the instance endpoints, and "10 requests per
minute per IP" for offer search (one every 6 s). The docs do not state the unit of
``threshold``; seconds is what the official client's users observe, so we treat them as such.

A :class:`Pacer` is shared by every thread of the process that calls one endpoint with one API
key: callers of :meth:`Pacer.wait` take turns, each one going ``spacing`` seconds after the
previous one actually went, so N threads calling at once go out one interval apart instead of
drawing 429s. Calls are spaced a little more than
the interval (:func:`margin`): two requests sent exactly one interval apart can arrive closer
than that (thread scheduling, connection set-up, the network), and Vast.ai judges arrivals. A
429 pushes the next slot back (:meth:`Pacer.defer`) for everyone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Vast.ai's intervals are facts the settings read too (VAST_MIN_INTERVALS): they live in a
# module that imports nothing of the bot, and are named here for the client and its tests.
from bot.vast_limits import DEFAULT_MIN_INTERVALS, ENDPOINTS, NO_PACING, parse_min_intervals

__all__ = [
    "DEFAULT_MIN_INTERVALS",
    "ENDPOINTS",
    "NO_PACING",
    "PaceTooLong",
    "Pacer",
    "Pacers",
    "margin",
    "parse_min_intervals",
]


def margin(interval: float) -> float:
    """Extra seconds between two calls of an endpoint whose minimum is ``interval``: 10 % of
    it, at least 50 ms and at most 250 ms (0 for an unpaced endpoint)."""
    if interval <= 0:
        return 0.0
    return min(0.25, max(0.05, interval * 0.1))


class PaceTooLong(Exception):
    """The endpoint's next free slot is further away than the caller may wait.

    Attributes:
        seconds: how long the caller would have had to wait.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the next call may start in {seconds:.1f} s")
        self.seconds = seconds


class Pacer:
    """A minimum interval between calls, shared by threads (thread-safe).

    Callers take turns: each waits until ``spacing`` seconds after the previous caller
    actually went, and until any hold a 429 asked for (:meth:`defer`) has passed, re-checking
    after every sleep (a hold that arrives while a caller sleeps holds it too).

    Args:
        interval: Vast.ai's minimum seconds between two calls (0 = no pacing); calls start
            ``spacing`` = ``interval`` + :func:`margin` apart.
        clock: monotonic seconds (``time.monotonic``); sleep: blocks for seconds
            (``time.sleep``). Both injectable for tests.
    """

    def __init__(
        self,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.interval = float(interval)
        self.spacing = self.interval + margin(self.interval)
        """Seconds between the starts of two calls (the interval plus a margin)."""
        self._clock = clock
        self._sleep = sleep
        self._turn = threading.Lock()  # one caller waits for the slot at a time
        self._lock = threading.Lock()  # guards the two times below
        self._last_start = float("-inf")
        self._hold_until = float("-inf")
        self.waited = 0.0
        """Seconds spent waiting for a slot so far, all threads together (for benchmarks)."""

    def delay(self) -> float:
        """Seconds until a call could start now (0 when free), without taking the slot."""
        with self._lock:
            ready_at = max(self._last_start + self.spacing, self._hold_until)
            return max(0.0, ready_at - self._clock())

    def wait(self, max_wait: float = float("inf")) -> None:
        """Block until this caller may start its call, and mark it started.

        Raises :class:`PaceTooLong` without waiting (or after waiting for its turn) when the
        slot is more than ``max_wait`` seconds away: a caller told to wait an hour by a 429
        fails at once instead of hanging.
        """
        if not self._turn.acquire(timeout=max_wait if max_wait != float("inf") else -1):
            raise PaceTooLong(max_wait)
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    delay = max(self._last_start + self.spacing, self._hold_until) - now
                    if delay <= 0:
                        self._last_start = now
                        return
                if delay > max_wait:
                    raise PaceTooLong(delay)
                self.waited += delay
                self._sleep(delay)
        finally:
            self._turn.release()

    def defer(self, seconds: float) -> None:
        """No call starts sooner than ``seconds`` from now (after a 429's ``Retry-After``),
        including callers already waiting for their slot."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + max(0.0, seconds))


@dataclass(frozen=True)
class Pacers:
    """One :class:`Pacer` per endpoint of :data:`ENDPOINTS` for one Vast.ai caller (API key)."""

    by_endpoint: Mapping[str, Pacer]

    @classmethod
    def build(
        cls,
        intervals: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Pacers:
        """Pacers with ``intervals`` (seconds per endpoint name; missing names take
        :data:`DEFAULT_MIN_INTERVALS`, None = all defaults). Raises ValueError for an unknown
        endpoint name or a negative interval."""
        given = dict(intervals or {})
        unknown = set(given) - set(ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown Vast.ai endpoint(s): {', '.join(sorted(unknown))}")
        merged = {**DEFAULT_MIN_INTERVALS, **given}
        return cls({n: Pacer(merged[n], clock=clock, sleep=sleep) for n in ENDPOINTS})

    def __getitem__(self, endpoint: str) -> Pacer:
        return self.by_endpoint[endpoint]

    def interval(self, endpoint: str) -> float:
        """The minimum interval of ``endpoint`` in seconds."""
        return self.by_endpoint[endpoint].interval

    def spacing(self, endpoint: str) -> float:
        """Seconds between the starts of two calls of ``endpoint`` (interval plus margin)."""
        return self.by_endpoint[endpoint].spacing
