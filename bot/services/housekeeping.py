"""The reconciler's housekeeping: rows that only ever expire, deleted after the poller's pass.

Today one kind: the OAuth ``state`` rows that every anonymous ``GET /slack/install`` writes
(:func:`storage.oauth_states.delete_expired_oauth_states`). A state lives
:data:`bot.app.OAUTH_STATE_SECONDS` (10 minutes); after that it can never be used and is
deleted here, by its own ``expire_at``. So the table holds at most what ``/slack/install``
was asked for in the last ``OAUTH_STATE_SECONDS`` + :data:`HOUSEKEEPING_SECONDS` (plus one
run's bound, ``BATCH_ROWS × MAX_BATCHES`` rows, when a flood outpaces it).

:meth:`Housekeeping.after_pass` is chained after the heartbeat on the status poller's
``on_pass`` hook: it runs only on the process holding the poller's lease (a standby's pass
reports ``ran`` False), at most once per :data:`HOUSEKEEPING_SECONDS`, and never raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import storage
from bot.services.poller import TickReport
from storage import SessionFactory
from storage.oauth_states import BATCH_ROWS, MAX_BATCHES, delete_expired_oauth_states

logger = logging.getLogger(__name__)

#: Housekeeping runs at most this often (seconds), after a pass of the poller.
HOUSEKEEPING_SECONDS = 60.0


class Housekeeping:
    """Bounded deletes of expired rows (see the module docstring).

    Args:
        session_factory: storage's sessionmaker.
        clock: aware UTC now.
        every: at most one run per this long.
        oauth_states: whether OAuth states are cleaned (OAuth mode).
        batch_rows, max_batches: the bound of one run
            (:func:`storage.oauth_states.delete_expired_oauth_states`).
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        clock: Callable[[], datetime] = storage.utcnow,
        every: timedelta = timedelta(seconds=HOUSEKEEPING_SECONDS),
        oauth_states: bool = True,
        batch_rows: int = BATCH_ROWS,
        max_batches: int = MAX_BATCHES,
    ) -> None:
        self.sf = session_factory
        self.clock = clock
        self.every = every
        self.oauth_states = oauth_states
        self.batch_rows = batch_rows
        self.max_batches = max_batches
        self._last: datetime | None = None
        self._lock = threading.Lock()
        self.deleted = 0
        """OAuth states deleted since start (tests and figures)."""

    def after_pass(self, report: TickReport, ok: bool) -> None:
        """The poller's ``on_pass`` hook: :meth:`run` when this process holds the lease
        (``report.ran``) and the last run is at least ``every`` ago. Never raises."""
        if not ok or not report.ran:
            return
        now = self.clock()
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                return
            self._last = now
        try:
            self.run(now)
        except Exception as error:  # housekeeping must never break the poller's pass
            logger.warning("housekeeping failed (retried next run): %s", type(error).__name__)

    def run(self, now: datetime | None = None) -> int:
        """Delete expired OAuth states now (bounded); returns how many. Raises SQLAlchemy
        errors."""
        if not self.oauth_states:
            return 0
        deleted = delete_expired_oauth_states(
            self.sf,
            now=now or self.clock(),
            batch_rows=self.batch_rows,
            max_batches=self.max_batches,
        )
        self.deleted += deleted
        if deleted:
            logger.info("housekeeping: deleted %d expired OAuth states", deleted)
        return deleted
