"""Repository functions for budgets, approvals and the workspace's audit log.

Each is one short transaction. The decision on an approval is claimed on the deployment row: a
locked read of ``status = pending_approval`` and the change of status happen in one
transaction (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two
approvers clicking at once, a double click or an approve after a deny give one outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, literal, select, union_all

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind, event_kind
from storage.models import (
    Approval,
    Budget,
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    TeamEvent,
)
from storage.records import ApprovalRecord, AuditRecord, DeploymentRecord
from storage.repo import _PLAIN, _change_status, _event, _rowcount, begin_run
from storage.types import utcnow

APPROVED, DENIED, EXPIRED = "approved", "denied", "expired"
_OUTCOME_STATUS = {
    APPROVED: DeploymentStatus.CREATING,
    DENIED: DeploymentStatus.DENIED,
    EXPIRED: DeploymentStatus.EXPIRED,
}
_OUTCOME_EVENT = {
    APPROVED: EventKind.APPROVED,
    DENIED: EventKind.DENIED,
    EXPIRED: EventKind.APPROVAL_EXPIRED,
}


# --- budgets -----------------------------------------------------------------------------


def get_budgets(sf: SessionFactory, team_id: str) -> dict[str, float | None]:
    """The budgets admins set for ``team_id``: ``{subject: $ per month or None}`` (subject
    :data:`storage.models.BUDGET_WORKSPACE` or a user id; None = "no budget" on purpose).
    Subjects without a row are not listed (the configured defaults apply to them)."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(Budget.subject, Budget.monthly_dollars).where(Budget.team_id == team_id)
        )
        return {subject: dollars for subject, dollars in rows}


def set_budget(
    sf: SessionFactory,
    team_id: str,
    subject: str,
    dollars: float | None,
    *,
    actor: str,
    detail: str,
    now: datetime | None = None,
) -> None:
    """Set the monthly budget of ``subject`` in ``team_id`` to ``dollars`` ($ per month; None
    = no budget), replacing any, and append a ``budget_set`` workspace event by ``actor`` with
    ``detail`` (text for people), in one transaction."""
    now = now or utcnow()
    with write_transaction(sf) as session:
        row = session.get(Budget, (team_id, subject), with_for_update=True)
        if row is None:
            session.add(
                Budget(
                    team_id=team_id,
                    subject=subject,
                    monthly_dollars=dollars,
                    set_by=actor,
                    set_at=now,
                )
            )
        else:
            row.monthly_dollars, row.set_by, row.set_at = dollars, actor, now
        session.add(
            TeamEvent(
                team_id=team_id,
                at=now,
                actor=actor,
                action=EventKind.BUDGET_SET.value,
                detail=detail,
            )
        )


def clear_budget(
    sf: SessionFactory,
    team_id: str,
    subject: str,
    *,
    actor: str,
    detail: str,
    now: datetime | None = None,
) -> bool:
    """Remove the budget admins set for ``subject`` (the configured default applies again);
    appends a ``budget_default`` workspace event. False when there was none (no event)."""
    now = now or utcnow()
    with write_transaction(sf) as session:
        result = session.execute(
            delete(Budget).where(Budget.team_id == team_id, Budget.subject == subject),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        session.add(
            TeamEvent(
                team_id=team_id,
                at=now,
                actor=actor,
                action=EventKind.BUDGET_DEFAULT.value,
                detail=detail,
            )
        )
        return True


def add_team_event(
    sf: SessionFactory,
    team_id: str,
    actor: str,
    action: EventKind | str,
    detail: str | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Append a workspace event that concerns no single deployment (e.g. a budget notice);
    ``action`` as for :func:`storage.repo.add_event`.

    Raises:
        ValueError: an unknown ``action`` while :data:`storage.events.STRICT` is True.
    """
    kind = event_kind(action)
    with write_transaction(sf) as session:
        session.add(
            TeamEvent(team_id=team_id, at=now or utcnow(), actor=actor, action=kind, detail=detail)
        )


# --- approvals ---------------------------------------------------------------------------


def get_approval(sf: SessionFactory, deployment_id: int) -> ApprovalRecord | None:
    """The approval of ``deployment_id``, or None when it never needed one."""
    with read_transaction(sf) as session:
        row = session.get(Approval, deployment_id)
        return ApprovalRecord.from_model(row) if row is not None else None


def add_approval_messages(
    sf: SessionFactory, deployment_id: int, messages: Sequence[tuple[str, str]]
) -> None:
    """Remember the approval messages sent for ``deployment_id`` (``(channel, ts)`` each), so
    that they can be updated once the request is decided. No-op without an approval row."""
    with write_transaction(sf) as session:
        row = session.get(Approval, deployment_id, with_for_update=True)
        if row is None:
            return
        known = [list(m) for m in json.loads(row.messages_json or "[]")]
        for channel, ts in messages:
            if [channel, ts] not in known:
                known.append([channel, ts])
        row.messages_json = json.dumps(known)


def decide_approval(
    sf: SessionFactory,
    deployment_id: int,
    outcome: str,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    note: str | None = None,
) -> DeploymentRecord | None:
    """Decide a pending request once: ``approved`` moves the row to ``creating`` and begins
    its run (its end time counts from now), ``denied`` / ``expired`` end it with ``reason``
    (text for people, shown on the status message); ``note`` is the denial's reason as the
    approver wrote it. The ``approvals`` row records who decided and when, and an
    ``approved`` / ``denied`` / ``approval_expired`` event by ``actor`` is appended, all in
    one locked transaction.

    Approving or denying needs the request to be unexpired at ``now``; expiring needs it to
    be due.

    Returns:
        The row after the decision, or None when it is not pending any more (decided by
        someone else, or by this caller before), not yet due (``expired``), already past its
        expiry (``approved``/``denied``), or unknown.

    Raises:
        ValueError: an unknown ``outcome``.
    """
    if outcome not in _OUTCOME_STATUS:
        raise ValueError(f"unknown approval outcome {outcome!r}")
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        approval = session.get(Approval, deployment_id, with_for_update=True)
        if row is None or approval is None or row.status != DeploymentStatus.PENDING_APPROVAL:
            return None
        due = approval.expires_at <= now
        if due != (outcome == EXPIRED):
            return None
        _change_status(session, row, _OUTCOME_STATUS[outcome], now, actor)
        if outcome == APPROVED:
            begin_run(row, now)
        row.reason = reason
        row.updated_at = now
        row.version += 1
        approval.decision, approval.decided_by, approval.decided_at = outcome, actor, now
        approval.note = note
        detail = note if outcome == DENIED and note else None
        _event(session, row.id, actor, _OUTCOME_EVENT[outcome], detail, now)
        session.flush()
        return DeploymentRecord.from_model(row)


def list_due_approvals(sf: SessionFactory, now: datetime) -> list[int]:
    """Ids of pending deployments whose approval expired at or before ``now``, oldest first."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(Approval.deployment_id)
            .join(Deployment, Deployment.id == Approval.deployment_id)
            .where(
                Deployment.status == DeploymentStatus.PENDING_APPROVAL,
                Approval.expires_at <= now,
            )
            .order_by(Approval.deployment_id)
        )
        return list(rows)


# --- the audit log -----------------------------------------------------------------------


def list_audit(
    sf: SessionFactory, team_id: str, *, offset: int = 0, limit: int = 50
) -> list[AuditRecord]:
    """The workspace's audit log, newest first: every event of its deployments and its
    workspace events (budget changes), ``limit`` of them from ``offset``."""
    deployment_events = (
        select(
            DeploymentEvent.at.label("at"),
            DeploymentEvent.id.label("seq"),
            DeploymentEvent.actor.label("actor"),
            DeploymentEvent.action.label("action"),
            DeploymentEvent.detail.label("detail"),
            DeploymentEvent.deployment_id.label("deployment_id"),
            Deployment.template_name.label("template_name"),
            literal(0).label("kind"),
        )
        .join(Deployment, Deployment.id == DeploymentEvent.deployment_id)
        .where(Deployment.team_id == team_id)
    )
    team_events = select(
        TeamEvent.at.label("at"),
        TeamEvent.id.label("seq"),
        TeamEvent.actor.label("actor"),
        TeamEvent.action.label("action"),
        TeamEvent.detail.label("detail"),
        literal(None).label("deployment_id"),
        literal(None).label("template_name"),
        literal(1).label("kind"),
    ).where(TeamEvent.team_id == team_id)
    both = union_all(deployment_events, team_events).subquery()
    query = (
        select(both)
        .order_by(both.c.at.desc(), both.c.kind.desc(), both.c.seq.desc())
        .offset(max(0, offset))
        .limit(max(0, limit))
    )
    with read_transaction(sf) as session:
        return [
            AuditRecord(
                at=_aware(row.at),
                actor=row.actor,
                action=row.action,
                detail=row.detail,
                deployment_id=row.deployment_id,
                template_name=row.template_name,
            )
            for row in session.execute(query)
        ]


def _aware(value: datetime | str) -> datetime:
    """Aware UTC from a union's ``at`` column (SQLite may hand back naive or text values)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def list_team_ids(sf: SessionFactory) -> list[str]:
    """Every workspace that has deployments (the budget notices visit each)."""
    with read_transaction(sf) as session:
        return list(
            session.scalars(select(Deployment.team_id).distinct().order_by(Deployment.team_id))
        )
