"""SQL behind ``GET /healthz`` and the poller's heartbeat.

* The **heartbeat** is one ``bot_state`` row (:data:`HEARTBEAT_STATE`) that the process holding
  the poller lease rewrites after every pass: when the last clean pass ended, since when passes
  have been failing, how many deployments' steps failed in the last pass and since when passes
  keep having such row errors (:func:`rows_failing`), and who wrote it. Every process reads
  it (a standby reports the holder's age from it; the admins' alerts are judged from it).
* The **write probe** (:func:`probe_write`) writes one ``bot_state`` row with a short lock
  timeout, so a locked or read-only database turns ``/healthz`` red within seconds instead of
  hanging for the busy timeout.
* The **file identity** (:func:`sqlite_path`, :func:`file_identity`) tells whether the SQLite
  file the bot opened is still the one at its path: a deleted file keeps accepting writes
  through the open connections (POSIX unlink semantics) and loses them all at the next start.

Imports nothing of ``bot``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from storage.db import SQLITE_BUSY_TIMEOUT_MS, SQLITE_IMMEDIATE, SessionFactory, write_transaction
from storage.lifetimes import get_state
from storage.models import BotState

#: ``bot_state`` row of the poller's heartbeat (written by the lease holder).
HEARTBEAT_STATE = "poller_heartbeat"
#: ``bot_state`` row each ``/healthz`` probe rewrites (shared by every process).
PROBE_STATE = "health_probe"
#: How long the write probe waits for a lock before the database counts as not writable.
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat row: ``last_pass`` the end of the last clean poller pass (None: none yet),
    ``failing_since`` the end of the first failed pass after it (None: the last pass was clean),
    ``since`` when the row was first written, ``holder`` the process that wrote it last and
    ``updated_at`` when. ``row_errors`` is the number of deployment steps that failed in the
    last pass that ran to its end (``TickReport.row_errors``); ``rows_failing_since`` the end
    of the first pass with row errors of the current stretch (None: none, see
    :func:`rows_failing`) and ``last_row_error`` the end of the last pass that had some. Times
    are aware UTC."""

    last_pass: datetime | None
    failing_since: datetime | None
    since: datetime
    holder: str
    updated_at: datetime
    row_errors: int = 0
    rows_failing_since: datetime | None = None
    last_row_error: datetime | None = None


def rows_failing(
    old: Heartbeat | None,
    *,
    row_errors: int,
    finished: bool,
    clean: bool,
    now: datetime,
    clear_after: timedelta,
) -> tuple[datetime | None, datetime | None]:
    """``(rows_failing_since, last_row_error)`` after a pass ending at ``now`` (pure).

    A pass with row errors starts the stretch (or keeps its start) and is its last error. The
    stretch ends only at a ``clean`` pass without row errors that comes ``clear_after`` or
    more after the last error: a deployment at rest is read once per rolling sweep, so the
    passes between two of its failures have no row error, and ending the stretch at the first
    of them would hide a row that fails on every read. A pass that did not run to its end
    (``finished`` False) or ended in an account's error says nothing about the rows: it keeps
    the stretch as it is."""
    since = old.rows_failing_since if old is not None else None
    last = old.last_row_error if old is not None else None
    if finished and row_errors > 0:
        return since or now, now
    if since is not None and clean and (last is None or now - last >= clear_after):
        return None, None
    return since, last


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _parse(value: str, updated_at: datetime) -> Heartbeat:
    """The row's JSON; an unreadable document reads as a row without a pass (so it is never
    taken for a healthy poller)."""
    try:
        doc = json.loads(value)
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    count = doc.get("row_errors")
    rows_since = _when(doc.get("rows_failing_since"))
    return Heartbeat(
        last_pass=_when(doc.get("last_pass")),
        failing_since=_when(doc.get("failing_since")),
        since=_when(doc.get("since")) or updated_at,
        holder=str(doc.get("holder") or ""),
        updated_at=updated_at,
        row_errors=count if isinstance(count, int) and count >= 0 else 0,
        rows_failing_since=rows_since,
        # A stretch without a readable last error ends at the next clean pass free of them.
        last_row_error=_when(doc.get("last_row_error")) if rows_since is not None else None,
    )


def read_heartbeat(sf: SessionFactory, name: str = HEARTBEAT_STATE) -> Heartbeat | None:
    """The heartbeat row, or None when no process wrote one yet. Raises SQLAlchemy errors."""
    found = get_state(sf, name)
    return _parse(*found) if found is not None else None


def record_pass(
    sf: SessionFactory,
    *,
    holder: str,
    ok: bool,
    now: datetime,
    row_errors: int = 0,
    finished: bool = True,
    rows_clear_after: timedelta = timedelta(0),
    name: str = HEARTBEAT_STATE,
) -> Heartbeat:
    """Record that a poller pass ended at ``now``: clean (``ok``: ``last_pass = now``, no
    failure) or failed (``failing_since`` kept, or ``now`` when this is the first failure since
    the last clean pass). ``row_errors``: its ``TickReport.row_errors``, kept as the last
    pass's when it ran to its end (``finished``; a tick that raised keeps the previous count);
    ``rows_failing_since`` follows :func:`rows_failing` with ``rows_clear_after``. One write
    transaction (``BEGIN IMMEDIATE`` on SQLite, the row locked on PostgreSQL), so the kept
    ``failing_since`` and ``rows_failing_since`` are the row's own. Returns the row written.

    Raises SQLAlchemy errors (a locked, read-only or unreachable database): the caller reports
    them, which is the point of a real write."""
    for attempt in range(2):
        try:
            with write_transaction(sf) as session:
                row = session.get(BotState, name, with_for_update=True)
                old = _parse(row.value, row.updated_at) if row is not None else None
                rows_since, last_error = rows_failing(
                    old,
                    row_errors=row_errors,
                    finished=finished,
                    clean=ok,
                    now=now,
                    clear_after=rows_clear_after,
                )
                beat = Heartbeat(
                    last_pass=now if ok else (old.last_pass if old else None),
                    failing_since=None if ok else ((old and old.failing_since) or now),
                    since=old.since if old else now,
                    holder=holder,
                    updated_at=now,
                    row_errors=row_errors if finished else (old.row_errors if old else 0),
                    rows_failing_since=rows_since,
                    last_row_error=last_error,
                )
                value = json.dumps(
                    {
                        "last_pass": _iso(beat.last_pass),
                        "failing_since": _iso(beat.failing_since),
                        "since": _iso(beat.since),
                        "holder": holder,
                        "row_errors": beat.row_errors,
                        "rows_failing_since": _iso(beat.rows_failing_since),
                        "last_row_error": _iso(beat.last_row_error),
                    },
                    separators=(",", ":"),
                )
                if row is None:
                    session.add(BotState(name=name, value=value, updated_at=now))
                else:
                    row.value = value
                    row.updated_at = now
            return beat
        except IntegrityError:  # another process inserted the row first: read it, then update
            if attempt:
                raise
    raise AssertionError("unreachable")


def start_heartbeat(sf: SessionFactory, *, now: datetime, name: str = HEARTBEAT_STATE) -> None:
    """Insert the heartbeat row without a pass (``since = now``) unless it exists: the shared
    start of "no pass completed yet", the same for every process. Raises SQLAlchemy errors."""
    try:
        with write_transaction(sf) as session:
            if session.get(BotState, name) is None:
                value = json.dumps({"last_pass": None, "failing_since": None, "since": _iso(now)})
                session.add(BotState(name=name, value=value, updated_at=now))
    except IntegrityError:  # another process wrote it first: theirs stands
        pass


def _upsert(connection: Connection, name: str, value: str, now: datetime) -> None:
    dialect = connection.dialect.name
    values = {"name": name, "value": value, "updated_at": now}
    if dialect in ("sqlite", "postgresql"):
        upsert = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = upsert(BotState).values(values)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[BotState.name], set_={"value": value, "updated_at": now}
            )
        )
        return
    done = connection.execute(
        update(BotState).where(BotState.name == name).values(value=value, updated_at=now)
    )
    if not done.rowcount:
        connection.execute(insert(BotState).values(values))


def probe_write(
    engine: Engine,
    *,
    holder: str,
    now: datetime,
    timeout_seconds: float = PROBE_TIMEOUT_SECONDS,
    name: str = PROBE_STATE,
) -> None:
    """Write the probe row (``{"holder": …}``, ``updated_at = now``) in a transaction of its
    own, waiting at most ``timeout_seconds`` for a lock (SQLite: the connection's busy timeout,
    restored afterwards; PostgreSQL: ``lock_timeout`` and ``statement_timeout`` for this
    transaction only). Returns when the write committed.

    Raises SQLAlchemy errors: e.g. ``OperationalError`` "database is locked" (another
    connection holds ``BEGIN EXCLUSIVE``) or "attempt to write a readonly database"."""
    value = json.dumps({"holder": holder}, separators=(",", ":"))
    millis = max(1, int(timeout_seconds * 1000))
    with engine.connect() as connection:
        raw: Any = connection.connection.driver_connection
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            raw.execute(f"PRAGMA busy_timeout={millis}")
        try:
            immediate = connection.execution_options(**{SQLITE_IMMEDIATE: True})
            with immediate.begin():
                if connection.dialect.name == "postgresql":
                    immediate.exec_driver_sql(f"SET LOCAL lock_timeout = {millis}")
                    immediate.exec_driver_sql(f"SET LOCAL statement_timeout = {millis}")
                _upsert(immediate, name, value, now)
        finally:
            if sqlite:
                try:
                    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                except Exception:  # the connection is broken anyway: the pool drops it
                    connection.invalidate()


def sqlite_path(engine: Engine) -> str | None:
    """The absolute path of ``engine``'s SQLite file; None for PostgreSQL and for in-memory
    SQLite (nothing on disk to lose)."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return os.path.abspath(database)


def file_identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file at ``path`` now (``os.stat``); None when nothing is
    there. Raises ``OSError`` for other failures (e.g. a directory it may not read)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino
