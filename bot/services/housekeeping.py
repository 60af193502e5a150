"""The reconciler's housekeeping: rows that only ever expire, deleted after the poller's pass.

Today one kind: the OAuth ``state`` rows that every anonymous ``GET /slack/install`` writes
(:func:`storage.oauth_states.delete_expired_oauth_states`). A state lives
:data:`bot.slack.app.OAUTH_STATE_SECONDS` (10 minutes); after that it can never be used and is
deleted here, by its own ``expire_at``. So the table holds at most what ``/slack/install``
was asked for in the last ``OAUTH_STATE_SECONDS`` + :data:`HOUSEKEEPING_SECONDS` (plus one
run's bound, ``BATCH_ROWS × MAX_BATCHES`` rows, when a flood outpaces it).

:meth:`Housekeeping.after_pass` is chained after the heartbeat on the status poller's
``on_pass`` hook: it runs only on the process holding the poller's lease (a standby's pass
reports ``ran`` False), at most once per :data:`HOUSEKEEPING_SECONDS`, and never raises.

Data retention (with ``retention_days``) runs after the same passes, at most once per
:data:`RETENTION_SECONDS`: :mod:`storage.retention` deletes ended deployments (with their
events), decided approvals, workspace events and claims older than ``retention_days``, and
purges each workspace that uninstalled more than ``uninstall_grace_days`` ago once nothing of
it can bill (one log line per purge). Every delete is bounded (``batch_rows × max_batches``
rows per kind and run); what is left goes on the next run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import storage
from bot.services.poller import TickReport
from storage import SessionFactory, retention
from storage.oauth_states import BATCH_ROWS, MAX_BATCHES, delete_expired_oauth_states

logger = logging.getLogger(__name__)

#: Housekeeping runs at most this often (seconds), after a pass of the poller.
HOUSEKEEPING_SECONDS = 60.0
#: Data retention runs at most this often (seconds): its cutoffs are days.
RETENTION_SECONDS = 3600.0


@dataclass
class RetentionReport:
    """Rows one retention run deleted, by kind, and the workspaces it purged."""

    deployments: int = 0
    approvals: int = 0
    team_events: int = 0
    claims: int = 0
    purged: list[str] = field(default_factory=list)


class Housekeeping:
    """Bounded deletes of expired rows (see the module docstring).

    Args:
        session_factory: storage's sessionmaker.
        clock: aware UTC now.
        every: at most one run per this long.
        oauth_states: whether OAuth states are cleaned (OAuth mode).
        batch_rows, max_batches: the bound of one run
            (:func:`storage.oauth_states.delete_expired_oauth_states`).
        retention_days: ``RETENTION_DAYS``; None: no data retention.
        uninstall_grace_days: ``UNINSTALL_GRACE_DAYS``; None: uninstalled workspaces are kept.
        retention_every: at most one retention run per this long.
        retention_batch_rows, retention_max_batches: the bound of one retention run, per kind
            (:mod:`storage.retention`).
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
        retention_days: float | None = None,
        uninstall_grace_days: float | None = None,
        retention_every: timedelta = timedelta(seconds=RETENTION_SECONDS),
        retention_batch_rows: int = retention.BATCH_ROWS,
        retention_max_batches: int = retention.MAX_BATCHES,
    ) -> None:
        self.sf = session_factory
        self.clock = clock
        self.every = every
        self.oauth_states = oauth_states
        self.batch_rows = batch_rows
        self.max_batches = max_batches
        self._last: datetime | None = None
        self.retention_days = retention_days
        self.uninstall_grace_days = uninstall_grace_days
        self.retention_every = retention_every
        self.retention_batch_rows = retention_batch_rows
        self.retention_max_batches = retention_max_batches
        self._last_retention: datetime | None = None
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
            due = self._last_retention is None or now - self._last_retention >= self.retention_every
            if due:
                self._last_retention = now
        try:
            self.run(now)
        except Exception as error:  # housekeeping must never break the poller's pass
            logger.warning("housekeeping failed (retried next run): %s", type(error).__name__)
        if not due:
            return
        try:
            self.run_retention(now)
        except Exception as error:  # nor must retention: the rest waits for the next run
            logger.warning("data retention failed (retried next run): %s", type(error).__name__)

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

    def run_retention(self, now: datetime | None = None) -> RetentionReport:
        """Apply data retention now (see the module docstring), bounded per kind; returns what
        it deleted. Does nothing without ``retention_days``/``uninstall_grace_days``. Raises
        SQLAlchemy errors."""
        now = now or self.clock()
        report = RetentionReport()
        bound = {"batch_rows": self.retention_batch_rows, "max_batches": self.retention_max_batches}
        if self.retention_days is not None:
            before = now - timedelta(days=self.retention_days)
            report.deployments = retention.delete_old_deployments(self.sf, before=before, **bound)
            report.approvals = retention.delete_old_approvals(self.sf, before=before, **bound)
            report.team_events = retention.delete_old_team_events(self.sf, before=before, **bound)
            report.claims = retention.delete_old_claims(self.sf, before=before, **bound)
            if report.deployments or report.approvals or report.team_events or report.claims:
                logger.info(
                    "data retention: deleted %d deployments, %d approvals, %d workspace events "
                    "and %d claims older than %s days",
                    report.deployments,
                    report.approvals,
                    report.team_events,
                    report.claims,
                    f"{self.retention_days:g}",
                )
        if self.uninstall_grace_days is not None:
            grace = now - timedelta(days=self.uninstall_grace_days)
            for team in retention.purgeable_workspaces(
                self.sf, uninstalled_before=grace, ended_before=grace
            ):
                purge = retention.purge_workspace(
                    self.sf, team, uninstalled_before=grace, ended_before=grace, **bound
                )
                if not purge.done:
                    continue  # bounded, or no longer purgeable: the next run goes on
                report.purged.append(team)
                logger.info(
                    "data retention: purged workspace %s, uninstalled more than %s days ago "
                    "(%d deployments, %d workspace events, %d budgets, %d SSH keys, "
                    "%d installation rows)",
                    team,
                    f"{self.uninstall_grace_days:g}",
                    purge.deployments,
                    purge.team_events,
                    purge.budgets,
                    purge.ssh_keys,
                    purge.installations,
                )
        return report
