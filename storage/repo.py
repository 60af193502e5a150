"""Repository functions: one short transaction each, no network calls inside.

Every function takes the ``sessionmaker`` from :func:`storage.db.make_session_factory` and
returns frozen snapshots (:class:`~storage.records.DeploymentRecord`, ...), so callers can use
results after the transaction. Writes use :func:`storage.db.write_transaction` (``BEGIN
IMMEDIATE`` on SQLite). Functions that must be decided once across processes (a request key,
the ready notification, a lease) rely on the database: a unique constraint or a conditional
``UPDATE ... WHERE``; they are safe on SQLite and PostgreSQL. ``now`` defaults to
:func:`storage.types.utcnow` and must be an aware datetime. Status arguments are
:class:`~storage.models.DeploymentStatus` members or their bare strings (a StrEnum); a string
that is no status raises ``ValueError``, except ``expected_status`` (it then just never matches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.errors import DeploymentNotFoundError, InstanceAlreadyAttachedError
from storage.events import EventKind, event_kind
from storage.ledger import TeamLedger, ledger_in, lock_team
from storage.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Approval,
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    Lease,
)
from storage.records import DeploymentRecord, EventRecord, LeaseRecord, NewApproval
from storage.transitions import check_initial, check_transition
from storage.types import utcnow

SYSTEM_ACTOR = "system"
#: The highest row id (``deployments.id`` and the other ids are INTEGER columns: PostgreSQL's
#: INTEGER holds 1..2**31 − 1; a larger id raises there, and SQLite overflows past 2**63 − 1).
MAX_ROW_ID = 2**31 - 1
#: Columns that ``update_status(**fields)`` may set; the rest are kept by the repository.
UPDATABLE_FIELDS = frozenset(
    {
        "message_channel",
        "message_ts",
        "instance_id",
        "reason",
        "status_msg",
        "web_password",
        "public_ip",
        "ports_json",
        "ssh_host",
        "ssh_port",
    }
)


#: Bulk UPDATE/DELETE here never touch objects loaded in the same session; plain SQL suffices.
_PLAIN = {"synchronize_session": False}


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _event(
    session: Session,
    deployment_id: int,
    actor: str,
    action: EventKind | str,
    detail: str | None,
    now: datetime,
    *,
    from_status: DeploymentStatus | None = None,
    to_status: DeploymentStatus | None = None,
) -> DeploymentEvent:
    event = DeploymentEvent(
        deployment_id=deployment_id,
        at=now,
        actor=actor,
        action=event_kind(action),
        detail=detail,
        from_status=from_status,
        to_status=to_status,
    )
    session.add(event)
    return event


def _status(value: DeploymentStatus | str) -> DeploymentStatus:
    """``value`` as a member; a bare string is accepted at run time.

    Raises:
        ValueError: not a deployment status.
    """
    try:
        return DeploymentStatus(value)
    except ValueError:
        raise ValueError(f"unknown deployment status {value!r}") from None


def _values(statuses: Iterable[DeploymentStatus]) -> list[DeploymentStatus]:
    """``statuses`` (members or bare strings) as members, for ``IN (...)``.

    Raises:
        ValueError: one of them is not a deployment status (a typo would match nothing).
    """
    return [_status(s) for s in statuses]


# --- deployments: create and read -------------------------------------------------------


def create_deployment(
    sf: SessionFactory,
    *,
    request_key: str,
    team_id: str,
    enterprise_id: str | None = None,
    user_id: str,
    channel_id: str,
    template_slug: str,
    template_name: str,
    offer_id: int,
    gpu_name: str,
    num_gpus: int,
    gpu_ram_gb: float,
    dph_total: float,
    disk_gb: float,
    simulated: bool = False,
    web_password: str | None = None,
    lifetime_hours: float | None = None,
    approval: NewApproval | None = None,
    admit: Callable[[TeamLedger], NewApproval | None] | None = None,
    now: datetime | None = None,
) -> tuple[DeploymentRecord, bool]:
    """Insert a deployment in ``creating``, once per ``request_key``.

    Also appends a ``requested`` event by ``user_id``. Units: ``gpu_ram_gb`` GB per GPU,
    ``dph_total`` $/hour, ``disk_gb`` GB, ``lifetime_hours`` hours (``ends_at`` becomes
    ``now + lifetime_hours``; None = no end). With ``approval`` the row starts in
    ``pending_approval`` instead, with no end time yet (its run begins when it is approved),
    and its ``approvals`` row and an ``approval_requested`` event are written in the same
    transaction: no pending row without its approval.

    With ``admit`` (instead of ``approval``) the workspace is locked (:func:`storage.ledger.
    lock_team`) and ``admit`` is called with its :class:`~storage.ledger.TeamLedger` inside the
    same transaction, before the insert: it returns the approval the row must wait for (None:
    straight to ``creating``) or raises to insert nothing (the exception propagates, the
    transaction is rolled back). So concurrent submissions are decided one after the other,
    each seeing the rows the previous ones inserted. ``admit`` must not call the network. A
    duplicate ``request_key`` is answered before ``admit`` is called.

    Returns:
        ``(record, True)`` for the new row, or ``(existing, False)`` when a row with this
        ``request_key`` already exists, including when another thread or process inserted it
        concurrently (the unique constraint decides; the loser re-reads).
    """
    now = now or utcnow()
    try:
        with write_transaction(sf) as session:
            existing = _by_request_key(session, request_key)
            if existing is not None:
                return DeploymentRecord.from_model(existing), False
            if admit is not None:
                lock_team(session, team_id)
                approval = admit(ledger_in(session, team_id))
            pending = approval is not None
            status = DeploymentStatus.PENDING_APPROVAL if pending else DeploymentStatus.CREATING
            check_initial(status)
            row = Deployment(
                request_key=request_key,
                team_id=team_id,
                enterprise_id=enterprise_id,
                user_id=user_id,
                channel_id=channel_id,
                template_slug=template_slug,
                template_name=template_name,
                offer_id=offer_id,
                gpu_name=gpu_name,
                num_gpus=num_gpus,
                gpu_ram_gb=gpu_ram_gb,
                dph_total=dph_total,
                disk_gb=disk_gb,
                simulated=simulated,
                web_password=web_password,
                lifetime_hours=lifetime_hours,
                lifetime_started_at=None if pending else now,
                ends_at=(
                    None
                    if lifetime_hours is None or pending
                    else now + timedelta(hours=lifetime_hours)
                ),
                status=status,
                ready_seconds=0.0,
                stopped_seconds=0.0,
                version=1,
                created_at=now,
                updated_at=now,
                last_state_change_at=now,
            )
            session.add(row)
            session.flush()
            _event(
                session,
                row.id,
                user_id,
                EventKind.REQUESTED,
                f"{template_slug} on offer {offer_id}",
                now,
            )
            if approval is not None:
                session.add(
                    Approval(
                        deployment_id=row.id,
                        team_id=team_id,
                        approvers=",".join(sorted(approval.approvers)),
                        reasons="\n".join(r.replace("\n", " ") for r in approval.reasons),
                        requested_at=now,
                        expires_at=approval.expires_at,
                        messages_json="[]",
                    )
                )
                _event(
                    session,
                    row.id,
                    user_id,
                    EventKind.APPROVAL_REQUESTED,
                    "; ".join(approval.reasons),
                    now,
                )
            return DeploymentRecord.from_model(row), True
    except IntegrityError:
        existing_record = get_by_request_key(sf, request_key)
        if existing_record is None:
            raise
        return existing_record, False


def _by_request_key(session: Session, request_key: str) -> Deployment | None:
    return session.scalars(
        select(Deployment).where(Deployment.request_key == request_key)
    ).one_or_none()


def get_deployment(sf: SessionFactory, deployment_id: int) -> DeploymentRecord | None:
    """Return the deployment with this id, or ``None`` (also for an id no row can have: outside
    1..:data:`MAX_ROW_ID`, e.g. from a forged button, which the database would refuse)."""
    if not 1 <= deployment_id <= MAX_ROW_ID:
        return None
    with read_transaction(sf) as session:
        row = session.get(Deployment, deployment_id)
        return DeploymentRecord.from_model(row) if row else None


def get_by_request_key(sf: SessionFactory, request_key: str) -> DeploymentRecord | None:
    """Return the deployment created for this request key (modal view id), or ``None``."""
    with read_transaction(sf) as session:
        row = _by_request_key(session, request_key)
        return DeploymentRecord.from_model(row) if row else None


def get_by_instance_id(sf: SessionFactory, instance_id: int) -> DeploymentRecord | None:
    """Return the deployment holding this Vast.ai instance id, or ``None``."""
    with read_transaction(sf) as session:
        row = session.scalars(
            select(Deployment).where(Deployment.instance_id == instance_id)
        ).one_or_none()
        return DeploymentRecord.from_model(row) if row else None


def _list(sf: SessionFactory, *conditions: Any) -> list[DeploymentRecord]:
    # Plain column rows, not ORM objects: the poller lists every followed deployment on every
    # tick, and identity-map bookkeeping for rows nobody writes was most of the read's cost.
    with read_transaction(sf) as session:
        rows = session.execute(
            select(*Deployment.__table__.columns).where(*conditions).order_by(Deployment.id)
        )
        return [DeploymentRecord.from_mapping(row._mapping) for row in rows]


def list_by_status(
    sf: SessionFactory, statuses: Iterable[DeploymentStatus]
) -> list[DeploymentRecord]:
    """Return deployments whose status is one of ``statuses``, oldest first."""
    return _list(sf, Deployment.status.in_(_values(statuses)))


def followed_instances(sf: SessionFactory, statuses: Iterable[DeploymentStatus]) -> dict[int, int]:
    """``{deployment id: instance id}`` of the deployments in ``statuses`` that hold an
    instance: two integer columns, so a poller tick over 10,000 rows stays cheap."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(Deployment.id, Deployment.instance_id).where(
                Deployment.status.in_(_values(statuses)), Deployment.instance_id.is_not(None)
            )
        )
        return {
            int(dep_id): int(instance_id) for dep_id, instance_id in rows if instance_id is not None
        }


def list_in_transition(
    sf: SessionFactory,
    statuses: Iterable[DeploymentStatus],
    *,
    busy: Iterable[DeploymentStatus],
    changed_since: datetime,
    ids: Iterable[int] = (),
) -> list[DeploymentRecord]:
    """Deployments in ``statuses`` holding an instance that are in transition: their status
    is one of ``busy``, or it changed at or after ``changed_since`` (aware UTC), or they are
    ready with the ready notification not yet posted, or their id is in ``ids``. Oldest
    first."""
    moving = [
        Deployment.status.in_(_values(busy)),
        Deployment.last_state_change_at >= changed_since,
        and_(
            Deployment.status == DeploymentStatus.READY,
            Deployment.ready_notified_at.is_(None),
        ),
    ]
    wanted = sorted(set(ids))
    if wanted:
        moving.append(Deployment.id.in_(wanted))
    return _list(
        sf,
        Deployment.status.in_(_values(statuses)),
        Deployment.instance_id.is_not(None),
        or_(*moving),
    )


def list_by_instance_range(
    sf: SessionFactory, statuses: Iterable[DeploymentStatus], low: float, high: float
) -> list[DeploymentRecord]:
    """Deployments in ``statuses`` whose instance id is in ``(low, high]`` (``high`` may be
    ``math.inf``): the ones a sweep of the instance list in id order just covered."""
    conditions: list[Any] = [
        Deployment.status.in_(_values(statuses)),
        Deployment.instance_id > int(low),
    ]
    if high != float("inf"):
        conditions.append(Deployment.instance_id <= int(high))
    return _list(sf, *conditions)


def list_ending_before(
    sf: SessionFactory, statuses: Iterable[DeploymentStatus], when: datetime
) -> list[DeploymentRecord]:
    """Deployments in ``statuses`` holding an instance whose end time is at or before
    ``when`` (aware UTC), oldest first (the lifetime rules' candidates)."""
    return _list(
        sf,
        Deployment.status.in_(_values(statuses)),
        Deployment.instance_id.is_not(None),
        Deployment.ends_at.is_not(None),
        Deployment.ends_at <= when,
    )


def list_active(sf: SessionFactory) -> list[DeploymentRecord]:
    """Return deployments the poller follows (``creating``, ``provisioning``, ``ready``)."""
    return list_by_status(sf, ACTIVE_STATUSES)


def list_for_user(
    sf: SessionFactory,
    team_id: str,
    user_id: str,
    statuses: Iterable[DeploymentStatus] | None = None,
) -> list[DeploymentRecord]:
    """Return one requester's deployments in a workspace (all statuses unless given)."""
    conditions: list[Any] = [Deployment.team_id == team_id, Deployment.user_id == user_id]
    if statuses is not None:
        conditions.append(Deployment.status.in_(_values(statuses)))
    return _list(sf, *conditions)


def list_for_team(
    sf: SessionFactory, team_id: str, statuses: Iterable[DeploymentStatus] | None = None
) -> list[DeploymentRecord]:
    """Return a workspace's deployments (all statuses unless given), oldest first."""
    conditions: list[Any] = [Deployment.team_id == team_id]
    if statuses is not None:
        conditions.append(Deployment.status.in_(_values(statuses)))
    return _list(sf, *conditions)


def list_stuck_creating(sf: SessionFactory, older_than: datetime) -> list[DeploymentRecord]:
    """Return rows still ``creating`` that entered it before ``older_than`` (aware UTC).

    Rows with and without an ``instance_id`` are returned; the caller decides (attach a found
    instance by its label, or mark failed).
    """
    return _list(
        sf,
        Deployment.status == DeploymentStatus.CREATING,
        # since it entered creating: an approved request was created long before its rental
        Deployment.last_state_change_at < older_than,
    )


def has_deployments(sf: SessionFactory) -> bool:
    """True when the table holds at least one deployment (one indexed ``LIMIT 1`` read)."""
    with read_transaction(sf) as session:
        return session.scalar(select(Deployment.id).limit(1)) is not None


def count_ended_since(sf: SessionFactory, since: datetime) -> int:
    """How many deployments became ``failed`` or ``destroyed`` at or after ``since`` (aware
    UTC): the poller keeps looking for stray instances while there are such recent ends."""
    with read_transaction(sf) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Deployment)
                .where(
                    Deployment.status.in_([DeploymentStatus.FAILED, DeploymentStatus.DESTROYED]),
                    Deployment.last_state_change_at >= since,
                )
            )
            or 0
        )


# --- deployments: updates ---------------------------------------------------------------


def _locked(session: Session, deployment_id: int) -> Deployment:
    row = session.get(Deployment, deployment_id, with_for_update=True)
    if row is None:
        raise DeploymentNotFoundError(deployment_id)
    return row


def set_instance(
    sf: SessionFactory, deployment_id: int, instance_id: int, *, now: datetime | None = None
) -> bool:
    """Store the Vast.ai instance id on the deployment and append a ``created`` event.

    Returns:
        True when stored now or already stored with the same id; False when the row already
        holds a different instance id (nothing changed).

    Raises:
        DeploymentNotFoundError: no such deployment.
        InstanceAlreadyAttachedError: another deployment holds ``instance_id``.
    """
    now = now or utcnow()
    try:
        with write_transaction(sf) as session:
            row = _locked(session, deployment_id)
            if row.instance_id is not None:
                return row.instance_id == instance_id
            row.instance_id = instance_id
            row.updated_at = now
            row.version += 1
            _event(
                session,
                deployment_id,
                SYSTEM_ACTOR,
                EventKind.CREATED,
                f"instance {instance_id}",
                now,
            )
            session.flush()
            return True
    except IntegrityError as exc:
        raise InstanceAlreadyAttachedError(instance_id, deployment_id) from exc


def update_status(
    sf: SessionFactory,
    deployment_id: int,
    *,
    expected_status: DeploymentStatus | None,
    new_status: DeploymentStatus,
    now: datetime | None = None,
    actor: str = SYSTEM_ACTOR,
    unchanged: Mapping[str, object] | None = None,
    new_run: bool = False,
    **fields: Any,
) -> bool:
    """Move a deployment to ``new_status`` if it is still in ``expected_status``.

    The row is read and written in one locked transaction (``SELECT ... FOR UPDATE`` on
    PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so the check and the write are atomic. On a
    change of status it also: adds the seconds since ``last_state_change_at`` to
    ``ready_seconds``/``stopped_seconds`` when leaving ``ready``/``stopped``; sets
    ``provisioning_at``/``ready_at`` (first time only), ``stopped_at``, ``destroyed_at``,
    ``failed_at``; sets ``last_state_change_at = now``; appends a ``status`` event by ``actor``
    with ``from_status``/``to_status`` set (and ``"old -> new"`` as its detail, for people).
    ``new_status == expected_status`` just updates ``fields``. The change must be allowed by
    :data:`storage.transitions.TRANSITIONS` (keeping the status always is).

    Args:
        expected_status: the status the caller saw; ``None`` means any status. Members and
            their bare strings are both accepted (``DeploymentStatus`` is a StrEnum).
        new_status: the status to move to.
        unchanged: further columns that must still hold the values the caller saw (e.g. the
            ``ends_at`` an automatic stop was decided on), checked in the same locked
            transaction; any difference returns False.
        new_run: the deployment runs again: begin a new run of its ``lifetime_hours`` at
            ``now`` (``ends_at``, ``lifetime_started_at``) and forget the previous run's
            warnings and idle stretch, in the same transaction.
        fields: columns among :data:`UPDATABLE_FIELDS` (e.g. ``status_msg``, ``public_ip``,
            ``ports_json``, ``reason``).

    Returns:
        False when the row's status is not ``expected_status`` (someone else moved it).

    Raises:
        ValueError: unknown ``new_status``. TypeError: a field not in ``UPDATABLE_FIELDS``.
        DeploymentNotFoundError: no such deployment.
        IllegalTransition: the row's status may not change to ``new_status`` (e.g. it is
            ``destroyed``); nothing is stored and a warning is logged.
    """
    target = _status(new_status)
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"update_status() cannot set {sorted(unknown)}")
    now = now or utcnow()
    with write_transaction(sf) as session:
        row = _locked(session, deployment_id)
        if expected_status is not None and row.status != expected_status:
            return False
        if any(getattr(row, name) != value for name, value in (unchanged or {}).items()):
            return False
        if row.status != target:
            _change_status(session, row, target, now, actor)
        if new_run:
            begin_run(row, now)
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = now
        row.version += 1
        return True


def begin_run(row: Deployment, now: datetime) -> None:
    """Start a new run of ``row``'s lifetime at ``now`` (no end when it has no lifetime) and
    clear the previous run's expiry warning and idle state (the caller's transaction)."""
    row.lifetime_started_at = now
    row.ends_at = None if row.lifetime_hours is None else now + timedelta(hours=row.lifetime_hours)
    row.expiry_warned_at = None
    row.idle_since = None
    row.idle_warned_at = None
    row.idle_snoozed_until = None


def _change_status(
    session: Session, row: Deployment, new_status: DeploymentStatus, now: datetime, actor: str
) -> None:
    """Move ``row`` to ``new_status`` (the caller's locked transaction): the period's
    seconds, the first-time timestamps, ``last_state_change_at`` and a ``status`` event.

    Raises:
        IllegalTransition: the table of :mod:`storage.transitions` does not allow the change;
            the row is not touched (and the caller's transaction rolls back).
    """
    old_status = DeploymentStatus(row.status)
    check_transition(row.id, old_status, new_status)
    elapsed = max(0.0, (now - row.last_state_change_at).total_seconds())
    if old_status == DeploymentStatus.READY:
        row.ready_seconds += elapsed
    elif old_status == DeploymentStatus.STOPPED:
        row.stopped_seconds += elapsed
    if new_status == DeploymentStatus.PROVISIONING and row.provisioning_at is None:
        row.provisioning_at = now
    elif new_status == DeploymentStatus.READY and row.ready_at is None:
        row.ready_at = now
    elif new_status == DeploymentStatus.STOPPED:
        row.stopped_at = now
    elif new_status == DeploymentStatus.DESTROYED:
        row.destroyed_at = now
    elif new_status == DeploymentStatus.FAILED:
        row.failed_at = now
    row.status = new_status
    row.last_state_change_at = now
    _event(
        session,
        row.id,
        actor,
        EventKind.STATUS,
        f"{old_status} -> {new_status}",
        now,
        from_status=old_status,
        to_status=new_status,
    )


def mark_failed(
    sf: SessionFactory,
    deployment_id: int,
    reason: str,
    *,
    actor: str = SYSTEM_ACTOR,
    now: datetime | None = None,
) -> bool:
    """Set status ``failed`` with a user-readable ``reason`` and append a ``failed`` event.

    Returns:
        False (and changes nothing) when the deployment is already ``failed`` or ``destroyed``.

    Raises:
        DeploymentNotFoundError: no such deployment.
    """
    now = now or utcnow()
    with write_transaction(sf) as session:
        row = _locked(session, deployment_id)
        if row.status in FINAL_STATUSES:
            return False
        _change_status(session, row, DeploymentStatus.FAILED, now, actor)
        row.reason = reason
        row.updated_at = now
        row.version += 1
        _event(session, deployment_id, actor, EventKind.FAILED, reason, now)
        return True


def set_message(
    sf: SessionFactory, deployment_id: int, channel: str, ts: str, *, now: datetime | None = None
) -> None:
    """Store the status message's ``channel`` and ``ts`` (Slack ``chat.postMessage`` answer).

    Raises:
        DeploymentNotFoundError: no such deployment.
    """
    now = now or utcnow()
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id)
            .values(
                message_channel=channel,
                message_ts=ts,
                updated_at=now,
                version=Deployment.version + 1,
            ),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            raise DeploymentNotFoundError(deployment_id)


def mark_message_stale(sf: SessionFactory, deployment_id: int, now: datetime) -> None:
    """Note that the status message of ``deployment_id`` needs an edit (its state changed, or
    an edit is being sent): sets ``message_stale_since`` to ``now`` (the latest pending edit,
    so an edit rendered before it cannot clear it). Does not bump ``version``: the mark is
    about the message, not the row."""
    with write_transaction(sf) as session:
        session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id)
            .values(message_stale_since=now),
            execution_options=_PLAIN,
        )


def clear_message_stale(sf: SessionFactory, deployment_id: int, marked_at: datetime) -> bool:
    """The status message now shows the row (Slack accepted an edit rendered after the mark
    ``marked_at``, or refused it for good): clear ``message_stale_since``, but only while it
    still holds ``marked_at`` (a change marked meanwhile keeps it). True when cleared."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(
                Deployment.id == deployment_id,
                Deployment.message_stale_since == marked_at,
            )
            .values(message_stale_since=None),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def list_stale_messages(sf: SessionFactory, *, limit: int = 500) -> list[DeploymentRecord]:
    """Deployments (any status, final ones included) whose status message is marked stale and
    exists (``message_ts`` set), the longest stale first, at most ``limit``."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(Deployment)
            .where(Deployment.message_stale_since.is_not(None), Deployment.message_ts.is_not(None))
            .order_by(Deployment.message_stale_since, Deployment.id)
            .limit(limit)
        )
        return [DeploymentRecord.from_model(row) for row in rows]


def drop_lease(sf: SessionFactory, name: str) -> bool:
    """Delete the lease ``name`` whoever holds it (a claim whose purpose is over, e.g. a Start
    claim once the deployment is ready or stopped again); True when a row was deleted."""
    with write_transaction(sf) as session:
        result = session.execute(delete(Lease).where(Lease.name == name), execution_options=_PLAIN)
        return _rowcount(result) == 1


def set_offer(
    sf: SessionFactory,
    deployment_id: int,
    *,
    offer_id: int,
    gpu_name: str,
    num_gpus: int,
    gpu_ram_gb: float,
    dph_total: float,
    now: datetime | None = None,
) -> bool:
    """Record the offer a ``creating`` deployment is being rented on (a stand-in for an offer
    taken between search and create). ``gpu_ram_gb`` is GB per GPU, ``dph_total`` $/hour.

    Returns False when the row is no longer ``creating`` (the price of a rented instance is
    fixed). Raises DeploymentNotFoundError for an unknown id.
    """
    now = now or utcnow()
    with write_transaction(sf) as session:
        if session.get(Deployment, deployment_id) is None:
            raise DeploymentNotFoundError(deployment_id)
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, Deployment.status == DeploymentStatus.CREATING)
            .values(
                offer_id=offer_id,
                gpu_name=gpu_name,
                num_gpus=num_gpus,
                gpu_ram_gb=gpu_ram_gb,
                dph_total=dph_total,
                updated_at=now,
                version=Deployment.version + 1,
            ),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def _claim_once(
    sf: SessionFactory, deployment_id: int, column: Any, now: datetime, event: EventKind
) -> bool:
    """``UPDATE deployments SET <column> = :now WHERE id = :id AND <column> IS NULL``: across
    threads and processes only one UPDATE matches; the winner also appends ``event``."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, column.is_(None))
            .values(
                {
                    column: now,
                    Deployment.updated_at: now,
                    Deployment.version: Deployment.version + 1,
                }
            ),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        _event(session, deployment_id, SYSTEM_ACTOR, event, None, now)
        return True


def _release(sf: SessionFactory, deployment_id: int, column: Any, claimed_at: datetime) -> bool:
    """Clear ``column`` if it still holds the claim made at ``claimed_at``."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(Deployment)
            .where(Deployment.id == deployment_id, column == claimed_at)
            .values({column: None, Deployment.version: Deployment.version + 1}),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def claim_ready_notification(
    sf: SessionFactory, deployment_id: int, now: datetime | None = None
) -> bool:
    """Claim the right to post the ready notification; True exactly once per deployment.

    ``UPDATE deployments SET ready_notified_at = :now WHERE id = :id AND ready_notified_at IS
    NULL``: across threads and processes only one UPDATE matches. The winner also appends a
    ``notified`` event. Returns False for an unknown id.
    """
    return _claim_once(
        sf, deployment_id, Deployment.ready_notified_at, now or utcnow(), EventKind.NOTIFIED
    )


def release_ready_notification(
    sf: SessionFactory, deployment_id: int, claimed_at: datetime
) -> bool:
    """Undo a claim made at ``claimed_at`` (e.g. Slack refused the post) so a later tick retries.

    Returns:
        True when the claim was still the one made at ``claimed_at`` and is now cleared.
    """
    return _release(sf, deployment_id, Deployment.ready_notified_at, claimed_at)


def claim_secrets_dm(sf: SessionFactory, deployment_id: int, now: datetime | None = None) -> bool:
    """Claim the right to DM the requester the deployment's secrets; True once (as
    :func:`claim_ready_notification`, on ``secrets_sent_at``; event ``secrets_sent``)."""
    return _claim_once(
        sf, deployment_id, Deployment.secrets_sent_at, now or utcnow(), EventKind.SECRETS_SENT
    )


def release_secrets_dm(sf: SessionFactory, deployment_id: int, claimed_at: datetime) -> bool:
    """Undo a secrets-DM claim made at ``claimed_at`` (Slack refused the DM): retried later."""
    return _release(sf, deployment_id, Deployment.secrets_sent_at, claimed_at)


# --- events -----------------------------------------------------------------------------


def add_event(
    sf: SessionFactory,
    deployment_id: int,
    actor: str,
    action: EventKind | str,
    detail: str | None = None,
    *,
    now: datetime | None = None,
) -> EventRecord:
    """Append an event (``actor``: Slack user id or ``"system"``; ``action``: an
    :class:`~storage.events.EventKind`, e.g. ``EventKind.STOP``). A bare string that is no
    member is stored after a warning (see :func:`storage.events.event_kind`).

    Raises:
        DeploymentNotFoundError: no such deployment.
        ValueError: an unknown ``action`` while :data:`storage.events.STRICT` is True.
    """
    now = now or utcnow()
    with write_transaction(sf) as session:
        if session.get(Deployment, deployment_id) is None:
            raise DeploymentNotFoundError(deployment_id)
        event = _event(session, deployment_id, actor, action, detail, now)
        session.flush()
        return EventRecord.from_model(event)


def list_events(sf: SessionFactory, deployment_id: int) -> list[EventRecord]:
    """Return a deployment's events in the order they were appended."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(DeploymentEvent)
            .where(DeploymentEvent.deployment_id == deployment_id)
            .order_by(DeploymentEvent.id)
        )
        return [EventRecord.from_model(row) for row in rows]


# --- leases -----------------------------------------------------------------------------


def acquire_lease(
    sf: SessionFactory,
    name: str,
    holder: str,
    ttl_seconds: float,
    now: datetime | None = None,
) -> bool:
    """Take or renew the lease ``name`` for ``ttl_seconds`` seconds.

    Succeeds when nobody holds it, when it has expired, or when ``holder`` already holds it
    (renewal). A conditional ``UPDATE`` takes over an existing row; otherwise an ``INSERT``
    creates it, and a unique-key conflict means another holder won the race.

    Returns:
        True when ``holder`` holds the lease until ``now + ttl_seconds``.
    """
    now = now or utcnow()
    expires_at = now + timedelta(seconds=ttl_seconds)
    with write_transaction(sf) as session:
        result = session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at <= now))
            .values(holder=holder, expires_at=expires_at),
            execution_options=_PLAIN,
        )
        if _rowcount(result) == 1:
            return True
    try:
        with write_transaction(sf) as session:
            if session.get(Lease, name) is not None:
                return False
            session.add(Lease(name=name, holder=holder, expires_at=expires_at))
        return True
    except IntegrityError:
        return False


def release_lease(sf: SessionFactory, name: str, holder: str) -> bool:
    """Give up the lease if ``holder`` holds it; returns True when a row was deleted."""
    with write_transaction(sf) as session:
        result = session.execute(
            delete(Lease).where(Lease.name == name, Lease.holder == holder),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def live_lease_names(sf: SessionFactory, prefix: str, now: datetime) -> set[str]:
    """Names of the leases starting with ``prefix`` that expire after ``now`` (one query, for
    a caller that would otherwise read one lease per row)."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(Lease.name).where(Lease.name.startswith(prefix), Lease.expires_at > now)
        )
        return set(rows)


def get_lease(sf: SessionFactory, name: str) -> LeaseRecord | None:
    """Return the lease row (it may have expired), or ``None``."""
    with read_transaction(sf) as session:
        row = session.get(Lease, name)
        return LeaseRecord.from_model(row) if row else None
