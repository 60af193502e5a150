"""Desired state of a deployment's instance: written before Vast.ai is called, carried out by
whoever gets there first (the click that wrote it, or the reconciler after a crash or a
refusal), confirmed once.

The columns (migration 0008, :class:`storage.models.Deployment`): ``desired_state`` is
``running``, ``stopped`` or ``destroyed``; ``desired_next_try_at`` is set while the act is not
confirmed (the reconciler's work list) and cleared with ``desired_done_at`` when it is;
``desired_tries`` counts the requests sent for it; ``desired_gave_up_at`` is when the owner was
told that it keeps failing.

Every function is one short transaction (no network call inside); the claim and the
confirmation lock the row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), so two clicks or two processes claim once and confirm once. An intent is named by
its ``desired_at``: a confirmation or a try for an intent that was replaced meanwhile changes
nothing. A final status (``failed``, ``destroyed``, ``denied``, ``expired``) is never left.
Imports nothing from ``bot``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind
from storage.models import FINAL_STATUSES, Deployment, DeploymentStatus, Lease
from storage.records import DeploymentRecord
from storage.repo import _PLAIN, SYSTEM_ACTOR, _change_status, _event, _rowcount, begin_run

__all__ = [
    "DESIRED_STATES",
    "DESTROYED",
    "RUNNING",
    "STOPPED",
    "IntentClaim",
    "StartLease",
    "act_of",
    "begin_try",
    "claim_intent",
    "claim_owner_told",
    "complete_intent",
    "complete_withdrawn",
    "list_due_intents",
    "record_outside_start",
    "release_owner_told",
    "withdraw_automatic",
    "withdraw_intent",
]

RUNNING, STOPPED, DESTROYED = "running", "stopped", "destroyed"
DESIRED_STATES = frozenset({RUNNING, STOPPED, DESTROYED})
_ACTS = {RUNNING: "start", STOPPED: "stop", DESTROYED: "destroy"}


def act_of(state: str) -> str:
    """The act that reaches a desired ``state``: ``start``, ``stop`` or ``destroy``.

    Raises:
        ValueError: not a desired state.
    """
    try:
        return _ACTS[state]
    except KeyError:
        raise ValueError(f"unknown desired state {state!r}") from None


@dataclass(frozen=True)
class StartLease:
    """The Start claim's lease (``name``, ``holder``, ``expires_at`` aware UTC), taken in the same
    transaction as the desired state ``running``: a live lease of another holder refuses it."""

    name: str
    holder: str
    expires_at: datetime


@dataclass(frozen=True)
class IntentClaim:
    """What :func:`claim_intent` did. ``claimed``: the desired state is recorded (pending,
    ``tries`` 0, due now); ``deployment``: the row afterwards (None: no such row);
    ``refusal`` when not claimed: ``missing`` (no row), ``status`` (not in the allowed
    statuses, or no instance), ``unchanged`` (a column the caller read changed), ``pending``
    (the same act, or a destroy, is already pending), ``leased`` (another Start holds the
    lease)."""

    claimed: bool
    deployment: DeploymentRecord | None
    refusal: str | None = None


def claim_intent(
    sf: SessionFactory,
    deployment_id: int,
    state: str,
    *,
    actor: str,
    reason: str,
    statuses: Collection[DeploymentStatus],
    now: datetime,
    unchanged: Mapping[str, object] | None = None,
    lease: StartLease | None = None,
    drop_lease: str | None = None,
) -> IntentClaim:
    """Record ``state`` as the desired state of ``deployment_id``, by ``actor`` (Slack user id or
    ``system``) for ``reason`` (text for people), if its status is one of ``statuses``, it holds
    an instance, and the columns in ``unchanged`` still hold the given values. A pending intent
    for the same state, or a pending destroy, wins (``refusal="pending"``); any other pending
    intent is replaced (the latest wish counts). Sets ``desired_at = now``, ``desired_tries =
    0``, ``desired_next_try_at = now`` (due at once: if the caller dies before sending, the
    reconciler sends it), clears ``desired_done_at`` and ``desired_gave_up_at``, and appends a
    ``<act>_requested`` event, all in one locked transaction. ``lease``: the Start claim's
    lease, taken in the same transaction; ``drop_lease``: a lease deleted in it (a Start that
    a Stop or Destroy ends). The status column does not change here.

    Raises:
        ValueError: unknown ``state``.
    """
    act = act_of(state)
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if row is None:
            return IntentClaim(False, None, "missing")
        record = DeploymentRecord.from_model(row)
        if row.status not in statuses or row.instance_id is None:
            return IntentClaim(False, record, "status")
        if any(getattr(row, name) != value for name, value in (unchanged or {}).items()):
            return IntentClaim(False, record, "unchanged")
        if row.desired_next_try_at is not None and row.desired_state in (state, DESTROYED):
            return IntentClaim(False, record, "pending")
        if lease is not None and not _take_lease(session, lease, now):
            return IntentClaim(False, record, "leased")
        if drop_lease is not None:
            held = session.get(Lease, drop_lease)
            if held is not None:
                session.delete(held)
        row.desired_state = state
        row.desired_reason = reason
        row.desired_actor = actor
        row.desired_at = now
        row.desired_done_at = None
        row.desired_next_try_at = now
        row.desired_gave_up_at = None
        row.desired_tries = 0
        row.updated_at = now
        row.version += 1
        _event(session, deployment_id, actor, f"{act}_requested", reason[:500], now)
        session.flush()
        return IntentClaim(True, DeploymentRecord.from_model(row))


def _take_lease(session: Session, lease: StartLease, now: datetime) -> bool:
    """Take ``lease`` inside the caller's transaction (the deployment row is locked, so two
    claims of one deployment queue); False while another holder's lease is live."""
    held = session.get(Lease, lease.name, with_for_update=True)
    if held is not None:
        if held.holder != lease.holder and held.expires_at > now:
            return False
        held.holder, held.expires_at = lease.holder, lease.expires_at
        return True
    try:
        with session.begin_nested():
            session.add(Lease(name=lease.name, holder=lease.holder, expires_at=lease.expires_at))
    except IntegrityError:  # inserted meanwhile by someone not holding the row's lock
        return False
    return True


def begin_try(
    sf: SessionFactory,
    deployment_id: int,
    *,
    desired_at: datetime,
    tries: int,
    next_try_at: datetime,
    now: datetime,
) -> bool:
    """Take the next try of the pending intent recorded at ``desired_at``, before its request
    is sent: ``desired_tries`` goes from ``tries`` to ``tries + 1`` and the next try is due at
    ``next_try_at`` (so if this sender dies, the reconciler sends again then). A conditional
    ``UPDATE``: across threads and processes one sender takes a try. False when the intent was
    replaced, confirmed, or its try taken by someone else."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.desired_at == desired_at,
                Deployment.desired_next_try_at.is_not(None),
                Deployment.desired_tries == tries,
            )
            .values(
                desired_tries=tries + 1,
                desired_next_try_at=next_try_at,
                updated_at=now,
                version=Deployment.version + 1,
            ),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def complete_intent(
    sf: SessionFactory,
    deployment_id: int,
    *,
    desired_at: datetime,
    now: datetime,
    new_status: DeploymentStatus | None = None,
    from_statuses: Collection[DeploymentStatus] = (),
    reason: str | None = None,
    new_run: bool = False,
    event: tuple[str, str | None] | None = None,
    quiet_if_final: bool = False,
) -> DeploymentRecord | None:
    """Confirm the pending intent recorded at ``desired_at`` (Vast.ai accepted its request, or
    its data shows the state reached): ``desired_done_at = now``, ``desired_next_try_at =
    NULL``, and in the same locked transaction the status moves to ``new_status`` when it is
    one of ``from_statuses`` (never out of a final status), with ``reason`` when given, by the
    intent's actor; ``new_run`` begins a new run of the lifetime (a Start); ``event``
    (``(action, detail)``) is appended by the intent's actor. ``quiet_if_final``: when the row
    is already final, only close the intent and return None (a Stop or Start whose instance
    vanished: whoever made the row final told people).

    Returns:
        The row afterwards, or None when the intent was confirmed already, replaced or
        withdrawn (someone else got there first: nothing changed), or, with
        ``quiet_if_final``, when the row is already final (the intent is closed).
    """
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if row is None or row.desired_at != desired_at or row.desired_next_try_at is None:
            return None
        row.desired_done_at = now
        row.desired_next_try_at = None
        if quiet_if_final and row.status in FINAL_STATUSES:
            row.updated_at = now
            row.version += 1
            return None
        _settle_row(session, row, now, new_status, from_statuses, reason, new_run, event)
        return DeploymentRecord.from_model(row)


def _settle_row(
    session: Session,
    row: Deployment,
    now: datetime,
    new_status: DeploymentStatus | None,
    from_statuses: Collection[DeploymentStatus],
    reason: str | None,
    new_run: bool,
    event: tuple[str, str | None] | None,
) -> None:
    """The status change, new run and event of a confirmed intent (see complete_intent)."""
    deployment_id = row.id
    actor = row.desired_actor or SYSTEM_ACTOR
    status = DeploymentStatus(row.status)
    if (
        new_status is not None
        and status not in FINAL_STATUSES
        and status in from_statuses
        and status != new_status
    ):
        _change_status(session, row, new_status, now, actor)
        if reason is not None:
            row.reason = reason
    if new_run:
        begin_run(row, now)
    if event is not None:
        _event(session, deployment_id, actor, EventKind(event[0]), event[1], now)
    row.updated_at = now
    row.version += 1
    session.flush()


def complete_withdrawn(
    sf: SessionFactory,
    deployment_id: int,
    *,
    desired_at: datetime,
    state: str,
    now: datetime,
    new_status: DeploymentStatus | None = None,
    from_statuses: Collection[DeploymentStatus] = (),
    reason: str | None = None,
    new_run: bool = False,
    event: tuple[str, str | None] | None = None,
) -> DeploymentRecord | None:
    """Vast.ai accepted the request of the intent recorded at ``desired_at`` for ``state``, but
    that intent was withdrawn while the request was on the wire (an **Extend** or **Keep
    running** called off a rule's act already sent): record what happened anyway, truthfully.
    ``desired_state`` back to ``state``, confirmed now, the status change, new run and event
    as :func:`complete_intent` (by the intent's actor, with ``reason``), and a
    ``withdrawn_too_late`` event, in one locked transaction.

    Returns:
        The row afterwards, or None when the intent was not withdrawn (confirmed, replaced, or
        still pending: :func:`complete_intent` is the one to call) or the row is final.

    Raises:
        ValueError: unknown ``state``.
    """
    act = act_of(state)
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if (
            row is None
            or row.desired_at != desired_at
            or row.desired_next_try_at is not None
            or row.desired_state is not None
            or row.desired_done_at is not None
            or row.status in FINAL_STATUSES
        ):
            return None
        row.desired_state = state
        row.desired_done_at = now
        actor = row.desired_actor or SYSTEM_ACTOR
        _event(
            session, deployment_id, actor, EventKind.WITHDRAWN_TOO_LATE,
            f"the {act} had already been sent to Vast.ai when it was called off; it went through",
            now,
        )  # fmt: skip
        _settle_row(session, row, now, new_status, from_statuses, reason, new_run, event)
        return DeploymentRecord.from_model(row)


def withdraw_intent(
    sf: SessionFactory,
    deployment_id: int,
    *,
    desired_at: datetime,
    actor: str,
    detail: str,
    now: datetime,
    drop_lease: str | None = None,
) -> bool:
    """Withdraw the pending intent recorded at ``desired_at`` (a Start Vast.ai refused: starting
    it later, unseen, would bill by surprise): ``desired_state`` back to None (followed as
    Vast.ai reports it), nothing pending, an ``<act>_withdrawn`` event by ``actor`` with
    ``detail``, and ``drop_lease`` deleted, in one transaction. False when that intent is no
    longer pending (confirmed or replaced meanwhile: nothing changed)."""
    with write_transaction(sf) as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if row is None or row.desired_at != desired_at or row.desired_next_try_at is None:
            return False
        act = act_of(row.desired_state or RUNNING)
        row.desired_state = None
        row.desired_next_try_at = None
        row.desired_done_at = None
        row.updated_at = now
        row.version += 1
        if drop_lease is not None:
            held = session.get(Lease, drop_lease)
            if held is not None:
                session.delete(held)
        _event(session, deployment_id, actor, f"{act}_withdrawn", detail[:500], now)
        return True


#: The event of a rule's pending act withdrawn by a person's click.
_WITHDRAWN = {STOPPED: EventKind.STOP_WITHDRAWN, DESTROYED: EventKind.DESTROY_WITHDRAWN}


def withdraw_automatic(
    session: Session, deployment_id: int, *, actor: str, detail: str, now: datetime
) -> str | None:
    """Inside the caller's write transaction: withdraw the pending stop or destroy that a rule
    recorded for ``deployment_id`` (``desired_actor`` ``system``; an **Extend** or **Keep
    running** by ``actor`` changed what the rule read, and the person's click wins).
    ``desired_state`` back to None (followed as Vast.ai reports it), nothing pending, a
    ``stop_withdrawn`` / ``destroy_withdrawn`` event by ``actor`` with ``detail``. A pending
    act a person asked for (their **Stop** or **Destroy**), or a pending Start, is left alone.

    Returns:
        The withdrawn desired state (``stopped`` or ``destroyed``), or None when none was
        pending. A try already on the wire stays sent: when Vast.ai accepts it, its sender
        records it anyway (:func:`complete_withdrawn`) and tells the thread.
    """
    automatic = (
        Deployment.id == deployment_id,
        Deployment.desired_next_try_at.is_not(None),
        Deployment.desired_actor == SYSTEM_ACTOR,
        Deployment.desired_state.in_([STOPPED, DESTROYED]),
    )
    state = session.execute(select(Deployment.desired_state).where(*automatic)).scalar()
    if state is None:
        return None
    result = session.execute(
        update(Deployment)
        .where(*automatic)
        .values(
            desired_state=None,
            desired_next_try_at=None,
            desired_done_at=None,
            updated_at=now,
            version=Deployment.version + 1,
        ),
        execution_options=_PLAIN,
    )
    if _rowcount(result) != 1:
        return None
    _event(session, deployment_id, actor, _WITHDRAWN[state], detail[:500], now)
    return str(state)


def list_due_intents(
    sf: SessionFactory, now: datetime, *, limit: int = 50
) -> list[DeploymentRecord]:
    """Rows whose desired state is pending and due (``desired_next_try_at <= now``, aware
    UTC), the longest due first, at most ``limit`` (the indexed work list)."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(*Deployment.__table__.columns)
            .where(Deployment.desired_next_try_at <= now)
            .order_by(Deployment.desired_next_try_at, Deployment.id)
            .limit(limit)
        )
        return [DeploymentRecord.from_mapping(row._mapping) for row in rows]


def claim_owner_told(
    sf: SessionFactory, deployment_id: int, *, desired_at: datetime, now: datetime
) -> bool:
    """Claim telling the owner that the pending intent recorded at ``desired_at`` keeps failing:
    ``desired_gave_up_at = now`` where it is still NULL. True exactly once per intent."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.desired_at == desired_at,
                Deployment.desired_next_try_at.is_not(None),
                Deployment.desired_gave_up_at.is_(None),
            )
            .values(desired_gave_up_at=now, version=Deployment.version + 1),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def release_owner_told(sf: SessionFactory, deployment_id: int, *, claimed_at: datetime) -> bool:
    """Undo :func:`claim_owner_told` made at ``claimed_at`` (Slack did not take the message),
    so the next failing try tells again. True when cleared."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, Deployment.desired_gave_up_at == claimed_at)
            .values(desired_gave_up_at=None, version=Deployment.version + 1),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def record_outside_start(
    sf: SessionFactory, deployment_id: int, *, reason: str, now: datetime
) -> bool:
    """The instance of ``deployment_id`` was seen running again while nothing asked for it (a
    start from the Vast.ai console): record desired ``running``, already reached, by ``system``
    with ``reason``, and a ``start_seen`` event. Changes nothing (False) while an intent is
    pending or the desired state is already ``running``."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.desired_next_try_at.is_(None),
                (Deployment.desired_state.is_(None)) | (Deployment.desired_state != RUNNING),
            )
            .values(
                desired_state=RUNNING,
                desired_reason=reason,
                desired_actor=SYSTEM_ACTOR,
                desired_at=now,
                desired_done_at=now,
                desired_gave_up_at=None,
                desired_tries=0,
                updated_at=now,
                version=Deployment.version + 1,
            ),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        _event(session, deployment_id, SYSTEM_ACTOR, "start_seen", reason[:500], now)
        return True
