"""A paced, coalescing outbox per workspace for ``chat.update`` and ``views.publish``.

Slack limits each Web API method per app per workspace: ``chat.update`` is Tier 3 (50+ a
minute), ``views.publish`` Tier 4 (100+ a minute) (api.slack.com/apis/rate-limits and the
methods' pages, api.slack.com/methods/chat.update and /views.publish). Bursts over the tier
draw 429s with ``Retry-After``. So these edits do not go out from the poller's tick or a
listener; they are queued here:

* **per workspace** (``team_id``): one queue and one sender thread each, so a workspace that
  is rate-limited never delays another, and the caller never waits for Slack; each queue
  sends with its workspace's bot token (``send(workspace, method, kwargs)``), and a workspace
  without an installation gets nothing (``refused``: ``not_installed``);
* **paced**: at most :data:`LIMITS` calls of a method in any sliding window of 60 s per
  workspace (``chat.update`` 45, ``views.publish`` 90: under the tiers' 50 and 100);
* **coalescing**: one entry per message (``key``: the status message of a deployment, the
  Home tab of a user); a newer edit of the same message replaces the queued one (and an older
  ``version`` never replaces a newer one), so ten changes of a message within the wait are one
  edit showing the latest;
* **Retry-After**: an ``unavailable`` answer (a 429, or the network) pauses that workspace's
  queue for ``Retry-After`` seconds (:data:`NETWORK_PAUSE` without one) and keeps the entry at
  the front; after :data:`MAX_ATTEMPTS` the entry is dropped and its ``on_done`` told, so the
  durable mark in the database (``deployments.message_stale_since``) lets the reconciler
  (:mod:`bot.services.message_sync`) send it again later, also after a restart.

Tests and benchmarks wait for the queue with :meth:`Outbox.drain` (the poller's ``tick()``
does, its scheduled runs do not).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.slack.notifier import REFUSED, UNAVAILABLE, SlackResult

logger = logging.getLogger(__name__)

#: Calls per sliding window, and the window in seconds, per method and workspace: under
#: Tier 3 (``chat.update``, 50+/min) and Tier 4 (``views.publish``, 100+/min).
LIMITS: Mapping[str, tuple[int, float]] = {
    "chat.update": (45, 60.0),
    "views.publish": (90, 60.0),
}
#: Seconds added to each window: a call is counted from when it left, Slack counts it when it
#: arrives (network jitter), so a call leaves the window only this much later.
MARGIN = 0.25
#: Seconds a workspace's queue pauses after a failure without ``Retry-After`` (network).
NETWORK_PAUSE = 2.0
#: Attempts per queued entry before it is dropped (the reconciler sends it again later).
MAX_ATTEMPTS = 5

Send = Callable[[str, str, dict[str, Any]], SlackResult]
"""``send(workspace, method, kwargs)``: one Slack call in ``workspace`` (the queue's team id),
with that workspace's token, never raising (:meth:`bot.slack.clients.WorkspaceNotifiers.send`:
``refused`` ``not_installed`` for a workspace without an installation)."""


@dataclass
class _Entry:
    method: str
    kwargs: Callable[[], dict[str, Any] | None]
    version: int | None
    on_done: Callable[[SlackResult], object] | None
    attempts: int = 0


@dataclass
class _Lane:
    """One workspace: its queue (key → entry, oldest first), the send times per method in the
    current window, the pause after a 429, the entry being sent, its thread."""

    queue: OrderedDict[Hashable, _Entry] = field(default_factory=OrderedDict)
    sent: dict[str, deque[float]] = field(default_factory=dict)
    paused_until: float = 0.0
    busy: Hashable | None = None
    thread: threading.Thread | None = None


class Outbox:
    """The outbox (see the module docstring).

    Args:
        send: performs one call in a workspace and returns its :class:`SlackResult`
            (:data:`Send`; each workspace's queue sends with that workspace's token).
        limits: ``method -> (calls, window seconds)`` (default :data:`LIMITS`; benchmarks pass
            a shorter window to run faster).
        clock: monotonic seconds (the pacing's time; tests may pass their own).
    """

    def __init__(
        self,
        send: Send,
        *,
        limits: Mapping[str, tuple[int, float]] = LIMITS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self.limits = dict(limits)
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.calls = 0
        self.rate_limited = 0
        self.coalesced = 0

    # -- the callers' side ------------------------------------------------------------------

    def submit(
        self,
        workspace: str,
        method: str,
        key: Hashable,
        kwargs: Callable[[], dict[str, Any] | None],
        *,
        version: int | None = None,
        on_done: Callable[[SlackResult], object] | None = None,
        replace: bool = True,
    ) -> None:
        """Queue ``method`` for ``key`` in ``workspace``'s queue; returns at once.

        ``replace=False`` (a reconciler's re-send): leave an entry of the same key that is
        queued or being sent as it is (it carries what the change meant to show, e.g. a note).

        ``kwargs`` is called when the entry is sent (None: nothing to send any more) so that
        the call carries the latest state; it replaces a queued entry of the same key unless
        that one has a newer ``version``. ``on_done`` gets the final result (sent, refused, or
        unavailable after :data:`MAX_ATTEMPTS`), on the sender thread.
        """
        entry = _Entry(method, kwargs, version, on_done)
        with self._cond:
            if self._closed:
                return
            lane = self._lanes.get(workspace)
            if lane is None:
                lane = self._lanes[workspace] = _Lane()
            if not replace and (key in lane.queue or lane.busy == key):
                return
            old = lane.queue.get(key)
            if old is not None:
                if version is not None and old.version is not None and old.version > version:
                    return
                self.coalesced += 1
                entry.attempts = old.attempts
                lane.queue[key] = entry  # keeps its place in the queue
            else:
                lane.queue[key] = entry
            if lane.thread is None:
                lane.thread = threading.Thread(
                    target=self._run,
                    args=(workspace, lane),
                    name=f"outbox-{workspace}",
                    daemon=True,
                )
                lane.thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        """Entries queued or being sent, over every workspace."""
        with self._cond:
            return sum(len(lane.queue) + (lane.busy is not None) for lane in self._lanes.values())

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty (True), or until ``timeout`` seconds passed or every
        queue left waits (on a 429's pause or on its pacing window) past the timeout
        (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lanes = [lane for lane in self._lanes.values() if lane.queue or lane.busy]
                if not lanes:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                now = self._clock()
                if all(
                    lane.busy is None and self._next_send(lane, now) - now > remaining
                    for lane in lanes
                ):
                    return False
                self._cond.wait(min(remaining, 0.05))

    def close(self) -> None:
        """Stop the sender threads; queued entries are dropped (their marks in the database
        stay, so the reconciler of the next process sends them)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = [lane.thread for lane in self._lanes.values() if lane.thread]
        for thread in threads:
            thread.join(timeout=5)

    # -- the sender thread ------------------------------------------------------------------

    def _wait_for(self, lane: _Lane) -> tuple[Hashable, _Entry] | None:
        """Under the lock: the first entry whose method has room in its window, waiting as
        long as needed (None when closed)."""
        while not self._closed:
            now = self._clock()
            if not lane.queue:
                self._cond.wait()
                continue
            if lane.paused_until > now:
                self._cond.wait(lane.paused_until - now)
                continue
            wait = None
            for key, entry in lane.queue.items():
                delay = self._delay(lane, entry.method, now)
                if delay <= 0:
                    del lane.queue[key]
                    return key, entry
                wait = delay if wait is None else min(wait, delay)
            self._cond.wait(wait)
        return None

    def _next_send(self, lane: _Lane, now: float) -> float:
        """When ``lane``'s next entry can leave (its pause and its method's window)."""
        delay = min((self._delay(lane, e.method, now) for e in lane.queue.values()), default=0.0)
        return max(lane.paused_until, now + delay)

    def _delay(self, lane: _Lane, method: str, now: float) -> float:
        """Seconds until ``method`` has room in ``lane``'s sliding window (0: now)."""
        calls, window = self.limits.get(method, (0, 0.0))
        if calls <= 0:
            return 0.0
        times = lane.sent.setdefault(method, deque())
        while times and times[0] <= now - window - MARGIN:
            times.popleft()
        return 0.0 if len(times) < calls else times[0] + window + MARGIN - now

    def _run(self, workspace: str, lane: _Lane) -> None:
        while True:
            with self._cond:
                picked = self._wait_for(lane)
                if picked is None:
                    return
                key, entry = picked
                lane.busy = key
                lane.sent.setdefault(entry.method, deque()).append(self._clock())
            result = self._attempt(workspace, entry)
            done = True
            with self._cond:
                if result.outcome == UNAVAILABLE:
                    self.rate_limited += result.retry_after is not None
                    pause = result.retry_after if result.retry_after is not None else NETWORK_PAUSE
                    lane.paused_until = max(lane.paused_until, self._clock() + pause)
                    entry.attempts += 1
                    if entry.attempts < MAX_ATTEMPTS and key not in lane.queue:
                        lane.queue[key] = entry  # first again: it was the oldest
                        lane.queue.move_to_end(key, last=False)
                        done = False
                    elif key in lane.queue:
                        done = False  # a newer edit of the message is queued
            if done and entry.on_done is not None:
                try:  # before the entry counts as sent, so drain() waits for it too
                    entry.on_done(result)
                except Exception:  # a callback's trouble must not stop the queue
                    logger.exception("outbox: on_done of %s failed", key)
            with self._cond:
                lane.busy = None
                self._cond.notify_all()

    def _attempt(self, workspace: str, entry: _Entry) -> SlackResult:
        try:
            kwargs = entry.kwargs()
        except Exception:  # rendering failed (e.g. the database): try again later
            logger.exception("outbox: %s in %s not rendered", entry.method, workspace)
            return SlackResult(UNAVAILABLE, "not_rendered")
        if kwargs is None:
            return SlackResult(REFUSED, "nothing_to_send")
        self.calls += 1
        return self._send(workspace, entry.method, kwargs)
