"""The poller's heartbeat: what ``GET /healthz`` says about the reconciler and the database, and
the admins' alert when the reconciler stops working.

**Heartbeat.** The status poller calls :meth:`HeartbeatService.on_pass` after every tick. A
*clean pass* is a tick that ran to its end, on the lease holder, without an account's pass
failing. The holder records each pass in memory and in the database (``bot_state``
``poller_heartbeat``, :func:`storage.health.record_pass`: a real write, so a database that no
longer takes writes shows up here). A process that does not hold the lease is a *standby*: it
reads the holder's row instead and never reports the poller as stale (its own ticks only wait
for the lease).

**/healthz** (:meth:`HeartbeatService.health`) adds to the other checks:

* ``"poller"``: false when this process holds the lease and no clean pass ended within
  :data:`OVERDUE_INTERVALS` poll intervals (after a start-up grace of as long), or when this
  process's poller stopped ticking at all;
* ``"poller_role"``: ``"active"`` (holds the lease), ``"standby"`` or ``"starting"`` (no tick
  ended yet);
* ``"last_pass_age_seconds"``: seconds since the last clean pass (the holder's, for a standby;
  null when none);
* ``"database"``: false when a write fails (the heartbeat's last write, or the write probe,
  :func:`storage.health.probe_write`, at most every :data:`PROBE_SECONDS`, waiting at most
  :data:`storage.health.PROBE_TIMEOUT_SECONDS` for a lock), or when the SQLite file the bot
  opened was deleted or replaced (its ``(st_dev, st_ino)`` compared with the one at start: the
  open connections would go on writing to the deleted file, and every row would be gone after
  a restart);
* ``"row_errors"``: deployment steps that failed in the last pass (``TickReport.row_errors``:
  the poller logs each with the deployment's id and goes on with the others; null before
  the first pass); ``"rows_failing_since"`` (ISO 8601, null when none) and
  ``"rows_failing_seconds"``: since when passes keep having row errors (the heartbeat row's,
  see :func:`storage.health.rows_failing`: the stretch ends only after
  :data:`ROWS_CLEAR_AFTER` without one, since a deployment at rest is read once per rolling
  sweep); ``"rows"``: ``"degraded"`` while that stretch lasts, else ``"ok"``. Degraded
  leaves the answer 200 (a string, not a check): one bad row must not make a load balancer
  restart the whole bot, but the ``reason`` says so;
* ``"reason"``: one line saying what is wrong (only when something is); never a secret or a
  traceback.

**Alert** (:meth:`HeartbeatService.watch`, a scheduler job in every process, every
:data:`WATCH_SECONDS` or every poll interval when that is longer). The reconciler is *failing*
when its passes end in errors (``failing_since`` in the row) or no clean pass ended within
:data:`OVERDUE_INTERVALS` intervals. After :data:`ALERT_AFTER` of failing, the bot admins get
one DM; when a clean pass ends again, one "recovered" DM. "One" is a claim in ``claims``
(``poller-down:<last clean pass>``, ``poller-up:<same>``), so several processes send each once;
a DM that reached nobody gives its claim back and is tried again on the next run.

**Rows alert** (:meth:`HeartbeatService.watch_rows`, the same job). When passes have had row
errors for :data:`ALERT_AFTER` (``rows_failing_since`` in the row), the bot admins get one DM:
deployment steps keep failing, those deployments' automatic guards (deploy timeout, idle stop)
may not apply, look at the log lines with "deployment <id>". When the stretch ends, one "cleared"
DM. Claimed once across processes the same way (``rows-down:<rows_failing_since>``,
``rows-up:<same>``, ``bot_state`` :data:`ROWS_ALERT_STATE`).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine

import storage
from bot.services.poller import TickReport
from bot.services.ports import AdminAlerts
from storage import SessionFactory
from storage.health import (
    PROBE_TIMEOUT_SECONDS,
    Heartbeat,
    file_identity,
    probe_write,
    read_heartbeat,
    record_pass,
    rows_failing,
    sqlite_path,
    start_heartbeat,
)

__all__ = [
    "ALERT_AFTER",
    "ALERT_STATE",
    "HeartbeatService",
    "JOB_ID",
    "OVERDUE_INTERVALS",
    "ROWS_ALERT_STATE",
    "ROWS_CLEAR_AFTER",
    "Recipients",
    "WATCH_SECONDS",
]

logger = logging.getLogger(__name__)

JOB_ID = "poller-heartbeat"
#: ``/healthz`` turns 503 when no clean pass ended within this many poll intervals.
OVERDUE_INTERVALS = 3
#: Admins hear about a failing reconciler after this long.
ALERT_AFTER = timedelta(minutes=5)
#: How often each process looks at the heartbeat for the admins' alert (seconds).
WATCH_SECONDS = 30.0
#: The write probe runs at most this often (seconds); ``/healthz`` reuses its last answer
#: in between, so a probe every second from a load balancer does not write every second.
PROBE_SECONDS = 5.0
#: ``bot_state`` row holding the claim key of the last "failing" alert sent.
ALERT_STATE = "poller_alert"
DOWN_PREFIX = "poller-down:"
UP_PREFIX = "poller-up:"
#: ``bot_state`` row holding the claim key of the last "deployment steps failing" alert sent.
ROWS_ALERT_STATE = "rows_alert"
ROWS_DOWN_PREFIX = "rows-down:"
ROWS_UP_PREFIX = "rows-up:"
#: A stretch of passes with row errors ends at the first clean pass without one that comes
#: this long after the last: longer than a rolling sweep takes by default
#: (``STEADY_SWEEP_SECONDS``, 120 s), so a row at rest that fails on each of its reads stays
#: one stretch.
ROWS_CLEAR_AFTER = timedelta(minutes=5)


class Recipients(Protocol):
    """Who hears about the reconciler (:class:`bot.services.workspaces.WorkspaceService`
    implements it)."""

    def alert_recipients(self) -> Sequence[tuple[str | None, frozenset[str]]]:
        """``[(team_id, admin user ids)]`` (single-workspace mode: ``[(None, BOT_ADMINS)]``)."""
        ...


def describe_error(error: BaseException) -> str:
    """A short, secret-free name for a database failure: SQLite's own message (e.g. "database
    is locked", "attempt to write a readonly database"), else the exception's type only (a
    driver's message may name hosts or users)."""
    original = getattr(error, "orig", None) or error
    if isinstance(original, sqlite3.Error):
        first = str(original).splitlines()[0] if str(original) else ""
        return first[:80] or type(original).__name__
    return type(original).__name__


class HeartbeatService:
    """The heartbeat of one bot process.

    Args:
        session_factory: storage's sessionmaker. engine: the same database's engine (the write
            probe and the SQLite file's path).
        messages: the messages port (:meth:`Messages.poller_alert`).
        recipients: who gets the alert (:class:`Recipients`: e.g. the workspaces).
        interval_seconds: ``STATUS_POLL_SECONDS``.
        clock: aware UTC now. monotonic: seconds, for the probe's pacing.
        holder: this process's name in the heartbeat row (default ``host:pid``).
        alert_after: failing this long before the admins hear of it.
        probe_seconds: see :data:`PROBE_SECONDS`. probe_timeout_seconds: how long the probe
            waits for a lock (:data:`storage.health.PROBE_TIMEOUT_SECONDS`).
        rows_clear_after: see :data:`ROWS_CLEAR_AFTER` (make it longer than a rolling sweep
            pass takes).

    The SQLite file's identity is read here: build the service once the database exists
    (after :func:`storage.migrate`).
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        engine: Engine,
        messages: AdminAlerts,
        recipients: Recipients,
        interval_seconds: float,
        clock: Callable[[], datetime] = storage.utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        holder: str | None = None,
        alert_after: timedelta = ALERT_AFTER,
        probe_seconds: float = PROBE_SECONDS,
        probe_timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
        rows_clear_after: timedelta = ROWS_CLEAR_AFTER,
    ) -> None:
        self.sf = session_factory
        self.engine = engine
        self.messages = messages
        self.recipients = recipients
        self.clock = clock
        self.monotonic = monotonic
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.overdue = timedelta(seconds=OVERDUE_INTERVALS * float(interval_seconds))
        self.alert_after = alert_after
        self.probe_seconds = probe_seconds
        self.probe_timeout_seconds = probe_timeout_seconds
        self.rows_clear_after = rows_clear_after
        self.started = clock()
        self.db_path = sqlite_path(engine)
        self._db_identity = file_identity(self.db_path) if self.db_path else None
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._role = "starting"
        self._last_tick: datetime | None = None
        self._last_clean: datetime | None = None
        self._write_error: str | None = None
        self._probe: tuple[float, str | None] | None = None
        # The holder's last heartbeat row (the one written, or computed when the write failed).
        self._beat: Heartbeat | None = None

    # -- the poller's hook --------------------------------------------------------------------

    def on_pass(self, report: TickReport, ok: bool) -> None:
        """Called by the poller after each tick: ``ok`` False when the tick raised; a report
        with ``ran`` False means another process holds the lease. On the holder, records the
        pass in the database (a failure is kept for ``/healthz`` and logged once); a tick that
        raised before this process was known to hold the lease writes nothing (the row is the
        holder's). Never raises."""
        now = self.clock()
        with self._lock:
            if not ok and self._role != "active":
                # Raised before this process was known to hold the lease (or on a standby):
                # the shared row is the holder's, so nothing is written; /healthz goes stale.
                return
            if not report.ran:
                if self._role == "active":
                    logger.info("heartbeat: the poller lease is held elsewhere; standby")
                self._role = "standby"
                self._last_tick = now
                return
            clean = ok and report.error is None
            if ok:
                self._role = "active"
                self._last_tick = now
            if clean:
                self._last_clean = now
        try:
            beat = record_pass(
                self.sf,
                holder=self.holder,
                ok=clean,
                now=now,
                row_errors=report.row_errors,
                finished=ok,
                rows_clear_after=self.rows_clear_after,
            )
        except Exception as error:
            with self._lock:  # /healthz still reports the rows from what this process saw
                old = self._beat
                since, last = rows_failing(
                    old,
                    row_errors=report.row_errors,
                    finished=ok,
                    clean=clean,
                    now=now,
                    clear_after=self.rows_clear_after,
                )
                count = report.row_errors if ok else (old.row_errors if old else 0)
                self._beat = Heartbeat(
                    last_pass=None,
                    failing_since=None,
                    since=now,
                    holder=self.holder,
                    updated_at=now,
                    row_errors=count,
                    rows_failing_since=since,
                    last_row_error=last,
                )
            reason = describe_error(error)
            if self._write_error is None:
                logger.error("heartbeat: could not write to the database: %s", reason)
            self._write_error = reason
        else:
            with self._lock:
                self._beat = beat
            if self._write_error is not None:
                logger.info("heartbeat: the database takes writes again")
            self._write_error = None

    def begin(self) -> None:
        """Start the start-up grace now (the poller's first tick is due): start-up recovery,
        which runs before the scheduler, does not count against it."""
        self.started = self.clock()

    # -- /healthz -----------------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """``{"database": bool, "poller": bool, "poller_role": str,
        "last_pass_age_seconds": float | None, "row_errors": int | None,
        "rows_failing_since": str | None, "rows_failing_seconds": float | None,
        "rows": "ok" | "degraded"}`` plus ``"reason"`` (one line) when a check is false or the
        rows are degraded. Never raises."""
        now = self.clock()
        reasons: list[str] = []
        database = self._database_ok(reasons)
        poller, role, age, beat = self._poller_ok(now, reasons)
        result: dict[str, object] = {
            "database": database,
            "poller": poller,
            "poller_role": role,
            "last_pass_age_seconds": round(age, 1) if age is not None else None,
        }
        result.update(self._rows(now, beat, reasons))
        if reasons:
            result["reason"] = "; ".join(reasons)
        return result

    def _database_ok(self, reasons: list[str]) -> bool:
        ok = True
        if self.db_path is not None and self._db_identity is not None:
            name = os.path.basename(self.db_path)
            try:
                now_identity = file_identity(self.db_path)
            except OSError as error:
                now_identity = self._db_identity
                reasons.append(f"cannot stat the database file {name}: {type(error).__name__}")
                ok = False
            if now_identity is None:
                reasons.append(
                    f"the database file {name} was deleted while the bot runs: writes go to a "
                    "file that is gone; restore it and restart the bot"
                )
                ok = False
            elif now_identity != self._db_identity:
                reasons.append(
                    f"the database file {name} was replaced while the bot runs: this process "
                    "still writes to the old one; restart the bot"
                )
                ok = False
        if self._write_error is not None:
            reasons.append(f"the heartbeat could not be written: {self._write_error}")
            ok = False
        probe = self._probe_write()
        if probe is not None:
            reasons.append(f"the database refuses writes: {probe}")
            ok = False
        return ok

    def _probe_write(self) -> str | None:
        """The write probe's answer (None: written), run at most every ``probe_seconds``; a
        request that arrives while another runs it gets the last answer."""
        last = self._probe
        if last is not None and self.monotonic() - last[0] < self.probe_seconds:
            return last[1]
        if not self._probe_lock.acquire(blocking=False):
            return last[1] if last is not None else None
        try:
            try:
                probe_write(
                    self.engine,
                    holder=self.holder,
                    now=self.clock(),
                    timeout_seconds=self.probe_timeout_seconds,
                )
                error = None
            except Exception as failure:
                error = describe_error(failure)
            self._probe = (self.monotonic(), error)
            return error
        finally:
            self._probe_lock.release()

    def _poller_ok(
        self, now: datetime, reasons: list[str]
    ) -> tuple[bool, str, float | None, Heartbeat | None]:
        """``(poller ok, role, age of the last clean pass, the heartbeat row)``: the row is
        the holder's as read (standby) or as this process wrote it (active)."""
        with self._lock:
            role, last_tick, last_clean = self._role, self._last_tick, self._last_clean
            mine = self._beat
        overdue = self.overdue.total_seconds()
        if role == "standby":
            assert last_tick is not None
            age = None
            beat = None
            try:
                beat = read_heartbeat(self.sf)
                if beat is not None and beat.last_pass is not None:
                    age = (now - beat.last_pass).total_seconds()
            except Exception as error:  # the database check says why
                logger.debug("heartbeat: cannot read the holder's row: %s", describe_error(error))
            if (now - last_tick).total_seconds() > overdue:
                silent = int((now - last_tick).total_seconds())
                reasons.append(f"this process's poller has completed no tick for {silent} s")
                return False, role, age, beat
            return True, role, age, beat
        age = (now - last_clean).total_seconds() if last_clean is not None else None
        since = last_clean or self.started
        waited = (now - since).total_seconds()
        if waited > overdue:
            what = "no poller pass completed" if last_clean is None else "no clean poller pass"
            reasons.append(f"{what} for {int(waited)} s (limit {int(overdue)} s)")
            return False, role, age, mine
        return True, role, age, mine

    @staticmethod
    def _rows(now: datetime, beat: Heartbeat | None, reasons: list[str]) -> dict[str, object]:
        """The rows' part of ``/healthz`` from ``beat`` (None: no pass known yet)."""
        since = beat.rows_failing_since if beat is not None else None
        seconds = max(0.0, (now - since).total_seconds()) if since is not None else None
        if since is not None and seconds is not None:
            count = beat.row_errors if beat is not None else 0
            reasons.append(
                f"deployment steps have been failing in poller passes for {int(seconds)} s "
                f"({count} in the last pass): their deploy timeout and idle stop may not apply; "
                'see the log lines with "deployment <id>"'
            )
        return {
            "row_errors": beat.row_errors if beat is not None else None,
            "rows_failing_since": since.isoformat() if since is not None else None,
            "rows_failing_seconds": round(seconds, 1) if seconds is not None else None,
            "rows": "degraded" if since is not None else "ok",
        }

    # -- the admins' alert --------------------------------------------------------------------

    def install(self, scheduler: BaseScheduler, *, seconds: float = WATCH_SECONDS) -> None:
        """Add the alert job to ``scheduler``, every ``seconds`` (not started here)."""
        scheduler.add_job(
            self.run_scheduled,
            "interval",
            seconds=seconds,
            id=JOB_ID,
            name="poller heartbeat alert",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )

    def run_scheduled(self) -> None:
        """The job body (:meth:`watch`, then :meth:`watch_rows`); never raises."""
        for check in (self.watch, self.watch_rows):
            try:
                check()
            except Exception as error:
                logger.warning("heartbeat alert check failed: %s", describe_error(error))

    def watch(self) -> str | None:
        """Look at the heartbeat row once: send the "failing" DM when the reconciler has been
        failing for ``alert_after`` and it was not sent for this failure yet, the "recovered"
        DM when a clean pass ended after one was sent. Returns ``"down"`` or ``"up"`` when this
        call sent one, else None. Waits out the start-up grace first (a process just started
        does not judge). Raises SQLAlchemy errors."""
        now = self.clock()
        if now - self.started < self.overdue:
            return None
        beat = read_heartbeat(self.sf)
        if beat is None:
            start_heartbeat(self.sf, now=now)
            beat = read_heartbeat(self.sf)
            if beat is None:
                return None
        start = beat.last_pass or beat.since
        failing = beat.failing_since is not None or now - start > self.overdue
        episode = start.isoformat()
        if failing:
            failing_start = beat.failing_since or start
            if now - failing_start < self.alert_after:
                return None
            key = DOWN_PREFIX + episode
            if not storage.claim(self.sf, key, now):
                return None
            storage.put_state(self.sf, ALERT_STATE, key, now)
            errors = beat.failing_since is not None
            logger.error(
                "the status poller has been failing since %s (%s): telling the bot admins",
                failing_start.isoformat(),
                "passes end in errors" if errors else "no pass completed",
            )
            if not self._tell(
                key, kind="poller", down=True, since=failing_start, errors=errors, now=now
            ):
                return None
            return "down"
        alert = storage.get_state(self.sf, ALERT_STATE)
        if alert is None or not alert[0].startswith(DOWN_PREFIX):
            return None
        down_key = alert[0]
        key = UP_PREFIX + down_key.removeprefix(DOWN_PREFIX)
        if not storage.claim(self.sf, key, now):
            return None
        logger.info("the status poller recovered: telling the bot admins")
        since = beat.last_pass or now
        if not self._tell(key, kind="poller", down=False, since=since, errors=False, now=now):
            return None
        return "up"

    def watch_rows(self) -> str | None:
        """Look at the heartbeat row once for row errors: send the "deployment steps failing"
        DM when passes have had row errors for ``alert_after`` (``rows_failing_since``) and it
        was not sent for this stretch yet, the "cleared" DM when the stretch ended after one
        was sent. Returns ``"down"`` or ``"up"`` when this call sent one, else None. Waits out
        the start-up grace first. Raises SQLAlchemy errors."""
        now = self.clock()
        if now - self.started < self.overdue:
            return None
        beat = read_heartbeat(self.sf)
        if beat is None:
            return None
        since = beat.rows_failing_since
        if since is not None:
            if now - since < self.alert_after:
                return None
            key = ROWS_DOWN_PREFIX + since.isoformat()
            if not storage.claim(self.sf, key, now):
                return None
            storage.put_state(self.sf, ROWS_ALERT_STATE, key, now)
            logger.error(
                "poller passes have hit errors on deployments since %s (%d in the last pass): "
                "telling the bot admins",
                since.isoformat(),
                beat.row_errors,
            )
            if not self._tell(key, kind="rows", down=True, since=since, errors=True, now=now):
                return None
            return "down"
        alert = storage.get_state(self.sf, ROWS_ALERT_STATE)
        if alert is None or not alert[0].startswith(ROWS_DOWN_PREFIX):
            return None
        key = ROWS_UP_PREFIX + alert[0].removeprefix(ROWS_DOWN_PREFIX)
        if not storage.claim(self.sf, key, now):
            return None
        logger.info("poller passes no longer hit errors on deployments: telling the bot admins")
        cleared = beat.last_pass or now
        if not self._tell(key, kind="rows", down=False, since=cleared, errors=False, now=now):
            return None
        return "up"

    def _tell(
        self,
        key: str,
        *,
        kind: Literal["poller", "rows"],
        down: bool,
        since: datetime,
        errors: bool,
        now: datetime,
    ) -> bool:
        """DM every recipient; when there were some and none was reached, give ``key`` back
        (the next run tries again). True when someone was told (or there is nobody to tell)."""
        targets = [
            (team, user)
            for team, users in self.recipients.alert_recipients()
            for user in sorted(users)
        ]
        if not targets:
            logger.warning("no bot admins to tell about the status poller (BOT_ADMINS is empty)")
            return True
        delivered = [
            self.messages.poller_alert(
                user, down=down, since=since, errors=errors, now=now, team_id=team, kind=kind
            )
            for team, user in targets
        ]
        if any(delivered):
            return True
        storage.release_claim(self.sf, key)
        return False
