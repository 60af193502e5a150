"""What the poller keeps between ticks, shared by its stages (:class:`PollerState`)."""

from __future__ import annotations

import logging
from collections.abc import Container, Hashable
from datetime import datetime

from bot.services.poller.report import AccountState, TickReport
from storage import DeploymentRecord

# One logger for the whole poller, whichever stage logs (the name it always had).
logger = logging.getLogger("bot.services.poller")


class PollerState:
    """The poller's memory between ticks, in this process, shared by the read, assess and
    apply stages.

    Account passes run side by side (one thread each): each pass touches only its own rows'
    entries (every row belongs to one account's pass) and its own account's
    :class:`AccountState`, whose entries the tick creates before the passes start (so the
    passes only read :attr:`accounts`).

    Attributes:
        shown: deployment id -> (message ts, visible key) last shown in Slack by this process.
        lost_since: deployment id -> when this process first saw its instance offline/unknown.
        read_at: deployment id -> number of the tick that last read it (the oldest go first).
        accounts: account name -> its sweep, stray candidates and unmanaged instances.
        row_errors: deployment id -> the error types already logged with a traceback for it.
        unreachable: deployment id -> why its instance is unreachable, as last logged.
        ticks: ticks that read Vast.ai (numbered from 1).
    """

    def __init__(self) -> None:
        self.shown: dict[int, tuple[str, Hashable]] = {}
        self.lost_since: dict[int, datetime] = {}
        self.read_at: dict[int, int] = {}
        self.accounts: dict[str, AccountState] = {}
        self.row_errors: dict[int, set[str]] = {}
        self.unreachable: dict[int, str] = {}
        self.ticks = 0

    def forget_unfollowed(self, followed: Container[int]) -> None:
        """Drop what is kept per deployment for the rows no longer followed."""
        for cache in (self.shown, self.lost_since, self.read_at, self.row_errors, self.unreachable):
            for dep_id in [k for k in cache if k not in followed]:
                del cache[dep_id]

    def note_unreachable(self, dep: DeploymentRecord, why: str | None) -> None:
        """Log once (per reason, per process) that ``dep``'s instance is unreachable and is
        neither probed nor linked (``why``: :attr:`bot.services.states.Verdict.unreachable`);
        forget it once it is reachable again."""
        if why is None:
            self.unreachable.pop(dep.id, None)
            return
        if self.unreachable.get(dep.id) == why:
            return
        self.unreachable[dep.id] = why
        logger.warning(
            "poller: deployment %d (instance %s) is unreachable: %s; not probed, no URL shown",
            dep.id,
            dep.instance_id,
            why,
        )

    def row_failed(
        self,
        dep: DeploymentRecord,
        step: str,
        error: Exception,
        report: TickReport,
        failed: list[DeploymentRecord] | None = None,
    ) -> None:
        """Count and log one deployment's failure at ``step`` (called in its ``except``): a
        traceback the first time this process sees this error type for this deployment, one
        line after that (it fails the same way every pass until fixed). ``failed`` collects
        the rows that got no verdict this tick."""
        report.row_errors += 1
        if failed is not None:
            failed.append(dep)
        kind = type(error).__name__
        logged = self.row_errors.setdefault(dep.id, set())
        if kind in logged:
            logger.warning(
                "poller: deployment %d not %s (%s again); tried again next pass", dep.id, step, kind
            )
            return
        logged.add(kind)
        logger.exception("poller: deployment %d not %s; tried again next pass", dep.id, step)
