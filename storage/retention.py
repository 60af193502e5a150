"""Data retention: rows past their retention deleted in bounded batches, and the purge of a
workspace that uninstalled.

What goes (each by its own time, all aware UTC):

* ended deployments (a final status: ``destroyed``, ``failed``, ``denied``, ``expired``) whose
  end (``last_state_change_at``: a final status is never left) is before the cutoff, and with
  them, by ``ON DELETE CASCADE``, their ``deployment_events``, ``approvals``,
  ``instance_keys`` and ``deployment_collaborators``. A row with an act still unconfirmed
  (``desired_next_try_at`` set) is kept: its instance may still exist;
* decided ``approvals`` (``decided_at`` before the cutoff), ``team_events`` (``at``) and
  ``claims`` (``claimed_at``).

A live deployment (``creating``, ``provisioning``, ``ready``, ``stopped``) or one waiting for
approval is never deleted, however old: its instance may exist and bill.

A workspace that uninstalled (``workspaces.uninstalled_at``) is purged by
:func:`purge_workspace` once the grace has passed and nothing of it can bill any more: every
deployment is final, none has an unconfirmed act, and the last one ended before the grace
cutoff too (so the poller's search for stray instances of recently ended rows is long over).

Every batch is its own short write transaction (``BEGIN IMMEDIATE`` on SQLite), so a large
backlog never holds the write lock for long; a call runs at most ``max_batches`` of them and
the rest waits for the next call. Imports nothing from ``bot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, delete, exists, select
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.installations_version import bump_installations_version_in
from storage.models import (
    FINAL_STATUSES,
    Approval,
    Budget,
    Claim,
    Deployment,
    SshKey,
    TeamEvent,
    Workspace,
    slack_bots,
    slack_installations,
)

__all__ = [
    "BATCH_ROWS",
    "MAX_BATCHES",
    "PurgeReport",
    "delete_old_approvals",
    "delete_old_claims",
    "delete_old_deployments",
    "delete_old_team_events",
    "purge_workspace",
    "purgeable_workspaces",
]

#: Rows deleted per statement (each batch is its own write transaction).
BATCH_ROWS = 500
#: At most this many batches per call; the rest waits for the next call.
MAX_BATCHES = 20

_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[assignment]
_APPROVALS: Table = Approval.__table__  # type: ignore[assignment]
_TEAM_EVENTS: Table = TeamEvent.__table__  # type: ignore[assignment]
_CLAIMS: Table = Claim.__table__  # type: ignore[assignment]
_FINAL = sorted(status.value for status in FINAL_STATUSES)


def _batched(
    sf: SessionFactory,
    table: Table,
    key: Any,
    where: ColumnElement[bool],
    *,
    batch_rows: int,
    max_batches: int,
) -> int:
    """Delete the rows of ``table`` matching ``where``, ``batch_rows`` per transaction (lowest
    ``key`` first), at most ``max_batches`` transactions. Returns how many were deleted."""
    deleted = 0
    for _ in range(max(1, max_batches)):
        batch = select(key).where(where).order_by(key).limit(max(1, batch_rows))
        with write_transaction(sf) as session:
            result: Any = session.execute(
                # The condition again on the outer statement: a row that changed between the
                # subquery and the delete (PostgreSQL) is never deleted on a stale reading.
                delete(table).where(key.in_(batch.scalar_subquery()), where)
            )
        count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < batch_rows:
            break
    return deleted


def _ended_before(before: datetime, table: Any = _DEPLOYMENTS) -> ColumnElement[bool]:
    """Deployments (of ``table``, or an alias of it) that ended before ``before`` and whose
    instance cannot exist any more."""
    return and_(
        table.c.status.in_(_FINAL),
        table.c.last_state_change_at < before,
        table.c.desired_next_try_at.is_(None),
    )


def delete_old_deployments(
    sf: SessionFactory,
    *,
    before: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the ended deployments (final status, no unconfirmed act) whose end is before
    ``before`` (aware UTC), with their events, approval, instance keys and collaborators (the
    foreign keys cascade). Returns how many deployments were deleted (call again when it is
    ``batch_rows × max_batches``). Raises SQLAlchemy errors."""
    return _batched(
        sf,
        _DEPLOYMENTS,
        _DEPLOYMENTS.c.id,
        _ended_before(before),
        batch_rows=batch_rows,
        max_batches=max_batches,
    )


def delete_old_approvals(
    sf: SessionFactory,
    *,
    before: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the decided approvals (``decision`` set) decided before ``before`` (aware UTC);
    a pending one is kept. Returns how many. Raises SQLAlchemy errors."""
    where = and_(_APPROVALS.c.decision.is_not(None), _APPROVALS.c.decided_at < before)
    return _batched(
        sf,
        _APPROVALS,
        _APPROVALS.c.deployment_id,
        where,
        batch_rows=batch_rows,
        max_batches=max_batches,
    )


def delete_old_team_events(
    sf: SessionFactory,
    *,
    before: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the workspace events (``team_events``) recorded before ``before`` (aware UTC).
    Returns how many. Raises SQLAlchemy errors."""
    return _batched(
        sf,
        _TEAM_EVENTS,
        _TEAM_EVENTS.c.id,
        _TEAM_EVENTS.c.at < before,
        batch_rows=batch_rows,
        max_batches=max_batches,
    )


def delete_old_claims(
    sf: SessionFactory,
    *,
    before: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete the one-time claims (reminders, digests, alerts) made before ``before`` (aware
    UTC): every claim key names a day, a run or an episode long over by then. Returns how
    many. Raises SQLAlchemy errors."""
    return _batched(
        sf,
        _CLAIMS,
        _CLAIMS.c.key,
        _CLAIMS.c.claimed_at < before,
        batch_rows=batch_rows,
        max_batches=max_batches,
    )


# --- uninstalled workspaces ----------------------------------------------------------------


def _may_bill(team_id: Any, ended_before: datetime) -> ColumnElement[bool]:
    """A deployment of ``team_id`` that is not final, has an unconfirmed act, or ended at or
    after ``ended_before``: while one exists, the workspace is not purged."""
    # An alias, so that inside a DELETE FROM deployments it is not correlated to that row.
    other = _DEPLOYMENTS.alias("other_deployments")
    return exists().where(other.c.team_id == team_id, ~_ended_before(ended_before, other))


def purgeable_workspaces(
    sf: SessionFactory, *, uninstalled_before: datetime, ended_before: datetime
) -> list[str]:
    """Team ids of the workspaces that uninstalled before ``uninstalled_before`` (aware UTC)
    and none of whose deployments may bill: every one final, with no unconfirmed act, ended
    before ``ended_before``. Sorted. Raises SQLAlchemy errors."""
    w = Workspace.__table__.c
    with read_transaction(sf) as session:
        rows = session.execute(
            select(w.team_id)
            .where(
                w.uninstalled_at.is_not(None),
                w.uninstalled_at < uninstalled_before,
                ~_may_bill(w.team_id, ended_before),
            )
            .order_by(w.team_id)
        )
        return [str(team_id) for (team_id,) in rows]


@dataclass(frozen=True)
class PurgeReport:
    """What :func:`purge_workspace` deleted for one workspace: ``done`` True when the
    workspace row itself went (else the rest waits for the next call); counts of rows."""

    team_id: str
    done: bool
    deployments: int = 0
    team_events: int = 0
    budgets: int = 0
    ssh_keys: int = 0
    installations: int = 0


def _naive(when: datetime) -> datetime:
    """``when`` as slack_sdk stores its times: naive UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def purge_workspace(
    sf: SessionFactory,
    team_id: str,
    *,
    uninstalled_before: datetime,
    ended_before: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> PurgeReport:
    """Delete everything the bot holds of workspace ``team_id`` when it is still purgeable
    (:func:`purgeable_workspaces`, checked again in every transaction, so a reinstall or a new
    deployment meanwhile stops it): its deployments (with their events, approvals, instance
    keys, collaborators) and team events in bounded batches, then in one last transaction its
    budgets, SSH keys, the slack_sdk installation rows of that workspace installed before it
    uninstalled (``slack_installations``, ``slack_bots``; an org-wide install, which has no
    ``team_id``, is left), and the ``workspaces`` row. ``done`` is False when the bound was
    reached or the workspace is no longer purgeable. Raises SQLAlchemy errors."""
    w = Workspace.__table__.c
    still = exists().where(
        w.team_id == team_id,
        w.uninstalled_at.is_not(None),
        w.uninstalled_at < uninstalled_before,
        ~_may_bill(team_id, ended_before),
    )
    deployments = _batched(
        sf,
        _DEPLOYMENTS,
        _DEPLOYMENTS.c.id,
        and_(_DEPLOYMENTS.c.team_id == team_id, still),
        batch_rows=batch_rows,
        max_batches=max_batches,
    )
    events = _batched(
        sf,
        _TEAM_EVENTS,
        _TEAM_EVENTS.c.id,
        and_(_TEAM_EVENTS.c.team_id == team_id, still),
        batch_rows=batch_rows,
        max_batches=max_batches,
    )
    with write_transaction(sf) as session:
        row = session.get(Workspace, team_id, with_for_update=True)
        if (
            row is None
            or row.uninstalled_at is None
            or row.uninstalled_at >= uninstalled_before
            or _left(session, team_id)
        ):
            return PurgeReport(team_id, False, deployments, events)
        uninstalled = _naive(row.uninstalled_at)
        budgets = _count(session.execute(delete(Budget).where(Budget.team_id == team_id)))
        keys = _count(session.execute(delete(SshKey).where(SshKey.team_id == team_id)))
        installs = 0
        for table in (slack_installations, slack_bots):
            installs += _count(
                session.execute(
                    # Only the rows of before the uninstall: a reinstall writes new rows
                    # before the bot records it, and those are kept.
                    delete(table).where(
                        table.c.team_id == team_id, table.c.installed_at <= uninstalled
                    )
                )
            )
        if installs:
            # Every process's installation cache must stop serving the purged tokens at once.
            bump_installations_version_in(session, datetime.now(UTC))
        session.execute(delete(Workspace).where(Workspace.team_id == team_id))
    return PurgeReport(team_id, True, deployments, events, budgets, keys, installs)


def _left(session: Session, team_id: str) -> bool:
    """Whether any deployment or team event of ``team_id`` is still there (the batches
    stopped at their bound, or something new arrived)."""
    return (
        session.scalar(select(_DEPLOYMENTS.c.id).where(_DEPLOYMENTS.c.team_id == team_id).limit(1))
        is not None
        or session.scalar(
            select(_TEAM_EVENTS.c.id).where(_TEAM_EVENTS.c.team_id == team_id).limit(1)
        )
        is not None
    )
