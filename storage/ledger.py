"""A workspace's money ledger, read inside the transaction that changes it.

A budget decision (may this request be rented without approval? may this deployment run
longer?) reads every deployment of the workspace and its budgets, and the write it allows must
land before anyone else's decision reads them again: otherwise two submissions each see the
budget untouched and together pass it. So the read, the decision and the write are one
transaction, serialised per workspace by :func:`lock_team`:

* PostgreSQL: ``pg_advisory_xact_lock`` on :func:`team_lock_key` (held to commit or rollback;
  writers of other workspaces do not wait). Reads after the lock see every transaction that
  committed before it was granted (READ COMMITTED takes a snapshot per statement).
* SQLite: the write transaction already began with ``BEGIN IMMEDIATE`` (:mod:`storage.db`),
  which admits one writer to the whole file at a time.

The decision itself is the caller's (the budget rules live in the services): storage hands a
:class:`TeamLedger` to a callback and writes what the callback allows. No network call may
happen inside the callback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction
from storage.models import Budget, Deployment, DeploymentEvent
from storage.records import DeploymentRecord, EventRecord


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


@dataclass(frozen=True)
class TeamLedger:
    """What a budget decision reads about one workspace.

    ``deployments``: every deployment of ``team_id`` (all statuses, oldest first);
    ``budgets``: what admins set (``{subject: $ per month or None}``, as
    :func:`storage.get_budgets`); :meth:`events` reads one deployment's event log (needed only
    for deployments that began before the month being costed)."""

    team_id: str
    deployments: tuple[DeploymentRecord, ...]
    budgets: dict[str, float | None]
    _events: Callable[[int], list[EventRecord]] = field(repr=False, compare=False)

    def events(self, deployment_id: int) -> list[EventRecord]:
        """The events of ``deployment_id`` in the order they were appended."""
        return self._events(deployment_id)


def ledger_in(session: Session, team_id: str) -> TeamLedger:
    """The ledger of ``team_id`` as ``session``'s transaction sees it (its events read through
    the same session, so only while the transaction is open)."""
    rows = session.scalars(
        select(Deployment).where(Deployment.team_id == team_id).order_by(Deployment.id)
    )
    deployments = tuple(DeploymentRecord.from_model(row) for row in rows)
    budgets = {
        subject: dollars
        for subject, dollars in session.execute(
            select(Budget.subject, Budget.monthly_dollars).where(Budget.team_id == team_id)
        )
    }
    return TeamLedger(team_id, deployments, budgets, lambda dep_id: _events_in(session, dep_id))


def read_ledger(sf: SessionFactory, team_id: str) -> TeamLedger:
    """The ledger of ``team_id`` now, without a lock (for showing budgets, not for deciding):
    its events are read later, each in its own short transaction."""
    with read_transaction(sf) as session:
        snapshot = ledger_in(session, team_id)

    def events(deployment_id: int) -> list[EventRecord]:
        with read_transaction(sf) as session:
            return _events_in(session, deployment_id)

    return TeamLedger(team_id, snapshot.deployments, snapshot.budgets, events)


def _events_in(session: Session, deployment_id: int) -> list[EventRecord]:
    found = session.scalars(
        select(DeploymentEvent)
        .where(DeploymentEvent.deployment_id == deployment_id)
        .order_by(DeploymentEvent.id)
    )
    return [EventRecord.from_model(row) for row in found]
