"""A workspace's money ledger, read inside the transaction that changes it.

A budget decision (may this request be rented without approval? may this deployment run
longer?) reads the deployments of the workspace that can cost anything in the month being
costed, and its budgets, and the write it allows must land before anyone else's decision reads
them again: otherwise two submissions each see the budget untouched and together pass it. So
the read, the decision and the write are one transaction, serialised per workspace by
:func:`lock_team`:

* PostgreSQL: ``pg_advisory_xact_lock`` on :func:`team_lock_key` (held to commit or rollback;
  writers of other workspaces do not wait). Reads after the lock see every transaction that
  committed before it was granted (READ COMMITTED takes a snapshot per statement).
* SQLite: the write transaction already began with ``BEGIN IMMEDIATE`` (:mod:`storage.db`),
  which admits one writer to the whole file at a time, so the poller and every click wait
  while a decision reads.

Hence the work under the lock is bounded by what can count, not by the workspace's history:
:meth:`TeamLedger.window` reads the rows still live or ended inside the window (one query) and
the status events of those that cross the window's edges (one more query), never a query per
deployment. The decision itself is the caller's (the budget rules live in the services):
storage hands a :class:`TeamLedger` to a callback and writes what the callback allows. No
network call may happen inside the callback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select, text
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction
from storage.events import EventKind
from storage.models import (
    FINAL_STATUSES,
    Budget,
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
)
from storage.records import DeploymentRecord, EventRecord

#: Deployment ids per events query: far below SQLite's 32,766 bound parameters, so a window
#: with this many rows crossing its edges (live deployments, in practice) still reads at once.
EVENTS_BATCH = 5_000


def team_lock_key(team_id: str) -> int:
    """The advisory lock key of workspace ``team_id``: a signed 64-bit integer (PostgreSQL's
    ``bigint``) from BLAKE2b of a fixed prefix and the id, so it cannot collide with the
    migration lock (a crc32 in :mod:`storage.db`) in practice."""
    digest = hashlib.blake2b(b"gpu_template_bot.team:" + team_id.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def lock_team(session: Session, team_id: str) -> None:
    """Serialise the budget decisions of ``team_id`` until ``session``'s transaction ends.

    On PostgreSQL: ``SELECT pg_advisory_xact_lock(key)`` (waits for the holder to commit). On
    SQLite nothing more is needed: the session must be in a :func:`storage.db.write_transaction`
    (``BEGIN IMMEDIATE``), which already admits one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": team_lock_key(team_id)})


def crosses(dep: DeploymentRecord, start: datetime, stop: datetime) -> bool:
    """True when ``dep``'s life does not lie inside ``start``..``stop`` (aware UTC): it began
    before ``start``, or it ended (a final status) after ``stop``. Only such a deployment
    needs its status history to be costed in the window; the others are costed from their row
    (a live one up to the caller's now, which must not be after ``stop``)."""
    if dep.created_at < start:
        return True
    return dep.status in FINAL_STATUSES and dep.last_state_change_at > stop


@dataclass(frozen=True)
class LedgerWindow:
    """The deployments of one workspace that can cost anything from ``start`` (aware UTC) on.

    ``deployments``: every one not in a final status (live, stopped, waiting for approval), or
    that reached its final status after ``start``, oldest first; the rows that ended before
    ``start`` are not read. ``history``: for each of them that :func:`crosses` the window
    ``start``..``stop``, its ``status`` events in the order they were appended (possibly none).
    """

    start: datetime
    stop: datetime
    deployments: tuple[DeploymentRecord, ...]
    history: Mapping[int, tuple[EventRecord, ...]]

    def status_events(self, deployment_id: int) -> tuple[EventRecord, ...]:
        """The ``status`` events of ``deployment_id`` in the order they were appended.

        Raises:
            KeyError: ``deployment_id`` is not one of ``deployments`` that crosses the window
                (its history was not read: it is costed from its row).
        """
        return self.history[deployment_id]


@dataclass(frozen=True)
class TeamLedger:
    """What a budget decision reads about one workspace.

    ``budgets``: what admins set (``{subject: $ per month or None}``, as
    :func:`storage.get_budgets`); :meth:`window` reads the deployments that can count in a
    window (a month) and the history of those crossing its edges; :meth:`deployment` one row.
    """

    team_id: str
    budgets: dict[str, float | None]
    _window: Callable[[datetime, datetime], LedgerWindow] = field(repr=False, compare=False)
    _deployment: Callable[[int], DeploymentRecord | None] = field(repr=False, compare=False)

    def window(self, start: datetime, stop: datetime) -> LedgerWindow:
        """The :class:`LedgerWindow` from ``start`` to ``stop`` (aware UTC, ``start <= stop``;
        for a month so far: its first instant and now): two queries (three or more only past
        :data:`EVENTS_BATCH` rows crossing its edges), whatever the workspace's history."""
        return self._window(start, stop)

    def deployment(self, deployment_id: int) -> DeploymentRecord | None:
        """The deployment ``deployment_id`` of this workspace as the transaction sees it (None
        when unknown or of another workspace)."""
        return self._deployment(deployment_id)


def ledger_in(session: Session, team_id: str) -> TeamLedger:
    """The ledger of ``team_id`` as ``session``'s transaction sees it (its budgets read now,
    its windows and rows through the same session, so only while the transaction is open)."""
    budgets = {
        subject: dollars
        for subject, dollars in session.execute(
            select(Budget.subject, Budget.monthly_dollars).where(Budget.team_id == team_id)
        )
    }
    return TeamLedger(
        team_id,
        budgets,
        lambda start, stop: _window_in(session, team_id, start, stop),
        lambda dep_id: _deployment_in(session, team_id, dep_id),
    )


def read_ledger(sf: SessionFactory, team_id: str) -> TeamLedger:
    """The ledger of ``team_id`` now, without a lock (for showing budgets, not for deciding):
    each window or row is read later in its own short transaction."""
    with read_transaction(sf) as session:
        budgets = ledger_in(session, team_id).budgets

    def window(start: datetime, stop: datetime) -> LedgerWindow:
        with read_transaction(sf) as session:
            return _window_in(session, team_id, start, stop)

    def deployment(deployment_id: int) -> DeploymentRecord | None:
        with read_transaction(sf) as session:
            return _deployment_in(session, team_id, deployment_id)

    return TeamLedger(team_id, budgets, window, deployment)


def _window_in(session: Session, team_id: str, start: datetime, stop: datetime) -> LedgerWindow:
    # Core rows, not ORM objects: this runs under the lock, and building and tracking an ORM
    # object per row costs several times more than the query.
    rows = session.execute(
        select(Deployment.__table__)
        .where(
            Deployment.team_id == team_id,
            or_(
                Deployment.status.not_in(list(FINAL_STATUSES)),
                Deployment.last_state_change_at > start,
            ),
        )
        .order_by(Deployment.id)
    ).mappings()
    deployments = tuple(DeploymentRecord.from_mapping(row) for row in rows)
    crossing = [dep.id for dep in deployments if crosses(dep, start, stop)]
    history: dict[int, list[EventRecord]] = {dep_id: [] for dep_id in crossing}
    for first in range(0, len(crossing), EVENTS_BATCH):
        found = session.execute(
            select(*_EVENT_COLUMNS)
            .where(
                DeploymentEvent.deployment_id.in_(crossing[first : first + EVENTS_BATCH]),
                DeploymentEvent.action == EventKind.STATUS,
            )
            .order_by(DeploymentEvent.deployment_id, DeploymentEvent.id)
        )
        for event_id, dep_id, at, actor, action, detail, old, new in found:
            history[dep_id].append(
                EventRecord(
                    event_id,
                    dep_id,
                    at,
                    actor,
                    action,
                    detail,
                    DeploymentStatus(old) if old is not None else None,
                    DeploymentStatus(new) if new is not None else None,
                )  # fmt: skip
            )
    frozen = {dep_id: tuple(events) for dep_id, events in history.items()}
    return LedgerWindow(start, stop, deployments, frozen)


_EVENT_COLUMNS = (
    DeploymentEvent.id,
    DeploymentEvent.deployment_id,
    DeploymentEvent.at,
    DeploymentEvent.actor,
    DeploymentEvent.action,
    DeploymentEvent.detail,
    DeploymentEvent.from_status,
    DeploymentEvent.to_status,
)


def _deployment_in(session: Session, team_id: str, deployment_id: int) -> DeploymentRecord | None:
    row = session.get(Deployment, deployment_id)
    if row is None or row.team_id != team_id:
        return None
    return DeploymentRecord.from_model(row)
