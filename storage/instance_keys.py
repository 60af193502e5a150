"""The SSH keys each deployment's instance should hold, and the attach/detach acts that get it
there (``instance_keys``, migration 0010).

The *wanted set* of a deployment is every ``ssh_keys`` row, in the deployment's workspace, of
its owner (``deployments.user_id``) and of its collaborators (``deployment_collaborators``).
:func:`sync_wanted` makes ``instance_keys`` follow it: a wanted key without a row gets one in
state ``attach``; a row that is not (or no longer) on the instance but wanted again goes back
to ``attach``; a row whose key is no longer wanted (the person removed the key, or the
deployment was unshared) goes to ``detach``. Every change is due at once (``next_try_at =
now``): the reconciler (:mod:`bot.services.instance_keys`) takes the due rows
(:func:`list_due`), takes a try before it calls Vast.ai (:func:`begin_try`: ``tries + 1``, the
next try already scheduled, so a sender that dies is replaced when it falls due) and records
the outcome (:func:`complete` or :func:`record_failure`), each with its event. States:

``attach`` → ``attached``; ``detach`` → ``detached`` (removed) or ``kept`` (Vast.ai could
not remove it: it stays until the instance is destroyed). Rows of a deployment that ended
(destroyed, failed) become ``detached`` (:func:`retire_final`): the keys went with the
instance.

Two processes never send one try twice: the sync locks the deployment row (``SELECT ... FOR
UPDATE`` on PostgreSQL; SQLite's write transactions are ``BEGIN IMMEDIATE``), and a try and
its outcome are conditional ``UPDATE``\\ s on the row's ``state`` and ``tries``
(compare-and-set): a row whose act changed meanwhile (a detach while an attach was on the
wire) is left for the next try of its new act. Each function is one short transaction, no
network call inside. Imports nothing from ``bot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, union, update
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind
from storage.models import (
    FINAL_STATUSES,
    Deployment,
    DeploymentCollaborator,
    DeploymentStatus,
    InstanceKey,
    InstanceKeyState,
    SshKey,
)
from storage.records import DeploymentRecord
from storage.repo import _PLAIN, SYSTEM_ACTOR, _event, _rowcount

__all__ = [
    "ACTIVE_STATES",
    "MAX_ERROR",
    "InstanceKeyRecord",
    "SyncResult",
    "begin_try",
    "complete",
    "list_due",
    "list_for_deployment",
    "out_of_sync",
    "record_failure",
    "retire_final",
    "sync_deployment",
    "sync_wanted",
    "wanted_keys",
]

ATTACH, ATTACHED = InstanceKeyState.ATTACH.value, InstanceKeyState.ATTACHED.value
DETACH, DETACHED = InstanceKeyState.DETACH.value, InstanceKeyState.DETACHED.value
KEPT = InstanceKeyState.KEPT.value
#: States of a key that is, or is to be, on the instance.
ACTIVE_STATES = (ATTACH, ATTACHED)
#: Acts a try is taken for (the states with work left).
_PENDING = (ATTACH, DETACH)
#: Longest ``last_error`` and event detail kept (characters).
MAX_ERROR = 500
#: The event of each outcome.
_OUTCOME_EVENTS = {
    ATTACHED: EventKind.SSH_KEY_ATTACHED,
    DETACHED: EventKind.SSH_KEY_DETACHED,
    KEPT: EventKind.SSH_KEY_KEPT,
}


@dataclass(frozen=True, slots=True)
class InstanceKeyRecord:
    """A read-only copy of an ``instance_keys`` row (see :class:`storage.models.InstanceKey`);
    datetimes aware UTC."""

    id: int
    deployment_id: int
    user_id: str
    fingerprint: str
    public_key: str
    state: str
    vast_key_id: str | None
    tries: int
    next_try_at: datetime | None
    last_error: str | None
    updated_at: datetime

    @classmethod
    def from_model(cls, row: InstanceKey) -> InstanceKeyRecord:
        """Copy every column of ``row``."""
        return cls(
            id=row.id,
            deployment_id=row.deployment_id,
            user_id=row.user_id,
            fingerprint=row.fingerprint,
            public_key=row.public_key,
            state=row.state,
            vast_key_id=row.vast_key_id,
            tries=row.tries,
            next_try_at=row.next_try_at,
            last_error=row.last_error,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_wanted` changed: rows ``added`` (new ``attach``), ``reattached`` (a
    ``detach``, ``detached`` or ``kept`` row wanted again, back to ``attach``), ``detaching``
    (an ``attach``/``attached`` row no longer wanted, now ``detach``)."""

    added: int = 0
    reattached: int = 0
    detaching: int = 0

    @property
    def changed(self) -> bool:
        """Whether anything changed."""
        return bool(self.added or self.reattached or self.detaching)


def _holder_of_key() -> ColumnElement[bool]:
    """SQL: the ``ssh_keys`` row (correlated) belongs to the deployment's owner or to one of
    its collaborators."""
    collaborator = exists().where(
        DeploymentCollaborator.deployment_id == Deployment.id,
        DeploymentCollaborator.user_id == SshKey.user_id,
    )
    return or_(SshKey.user_id == Deployment.user_id, collaborator)


def wanted_keys(session: Session, deployment_id: int) -> dict[str, tuple[str, str]]:
    """The wanted set of ``deployment_id`` inside the caller's transaction: ``{fingerprint:
    (user_id, public_key)}`` of the ``ssh_keys`` rows of its owner and collaborators in its
    workspace (a key two of them hold counts once, as the owner's). Empty for an unknown
    deployment."""
    rows = session.execute(
        select(SshKey.fingerprint, SshKey.user_id, SshKey.public_key, Deployment.user_id)
        .join(Deployment, Deployment.team_id == SshKey.team_id)
        .where(Deployment.id == deployment_id, _holder_of_key())
        .order_by(SshKey.id)
    )
    wanted: dict[str, tuple[str, str]] = {}
    for fingerprint, user_id, public_key, owner in rows:
        if fingerprint not in wanted or user_id == owner:
            wanted[fingerprint] = (user_id, public_key)
    return wanted


def sync_wanted(session: Session, deployment_id: int, now: datetime) -> SyncResult:
    """Make the ``instance_keys`` rows of ``deployment_id`` follow its wanted set
    (:func:`wanted_keys`), inside the caller's write transaction, the deployment row locked
    first (so two syncs of one deployment queue): insert ``attach`` rows for wanted keys
    without one; a wanted key whose row is ``detach``, ``detached`` or ``kept`` goes back to
    ``attach`` (the attach looks at the instance first, so a key still there is not sent
    twice); an ``attach`` or ``attached`` row whose key is no longer wanted goes to
    ``detach``. Each change resets ``tries`` and is due at ``now`` (aware UTC). A deployment
    that is missing, ended, or has no instance is left alone (its rows are
    :func:`retire_final`'s)."""
    dep = session.get(Deployment, deployment_id, with_for_update=True)
    if dep is None or dep.status in FINAL_STATUSES or dep.instance_id is None:
        return SyncResult()
    wanted = wanted_keys(session, deployment_id)
    present = {
        row.fingerprint: row
        for row in session.scalars(
            select(InstanceKey).where(InstanceKey.deployment_id == deployment_id).with_for_update()
        )
    }
    added = reattached = detaching = 0
    for fingerprint, (user_id, public_key) in wanted.items():
        row = present.get(fingerprint)
        if row is None:
            session.add(
                InstanceKey(
                    deployment_id=deployment_id,
                    user_id=user_id,
                    fingerprint=fingerprint,
                    public_key=public_key,
                    state=ATTACH,
                    tries=0,
                    next_try_at=now,
                    updated_at=now,
                )
            )
            added += 1
        elif row.state not in ACTIVE_STATES:
            _due(row, ATTACH, now)
            row.user_id, row.public_key = user_id, public_key
            reattached += 1
    for fingerprint, row in present.items():
        if fingerprint not in wanted and row.state in ACTIVE_STATES:
            _due(row, DETACH, now)
            detaching += 1
    session.flush()
    return SyncResult(added, reattached, detaching)


def _due(row: InstanceKey, state: str, now: datetime) -> None:
    row.state = state
    row.tries = 0
    row.next_try_at = now
    row.last_error = None
    row.updated_at = now


def sync_deployment(sf: SessionFactory, deployment_id: int, now: datetime) -> SyncResult:
    """:func:`sync_wanted` in its own write transaction."""
    with write_transaction(sf) as session:
        return sync_wanted(session, deployment_id, now)


def out_of_sync(sf: SessionFactory, *, limit: int = 100) -> list[int]:
    """Ids of ``ready`` deployments (with an instance) whose rows do not follow their wanted
    set: a wanted key without an ``attach``/``attached`` row, or such a row whose key is no
    longer wanted. At most ``limit``, lowest ids first. Two indexed queries whatever the
    number of deployments; the caller runs :func:`sync_wanted` on each."""
    ready = and_(Deployment.status == DeploymentStatus.READY, Deployment.instance_id.is_not(None))
    on_instance = exists().where(
        InstanceKey.deployment_id == Deployment.id,
        InstanceKey.fingerprint == SshKey.fingerprint,
        InstanceKey.state.in_(ACTIVE_STATES),
    )
    owners = (
        select(Deployment.id)
        .join(
            SshKey,
            and_(SshKey.team_id == Deployment.team_id, SshKey.user_id == Deployment.user_id),
        )
        .where(ready, ~on_instance)
    )
    collaborators = (
        select(Deployment.id)
        .join(DeploymentCollaborator, DeploymentCollaborator.deployment_id == Deployment.id)
        .join(
            SshKey,
            and_(
                SshKey.team_id == Deployment.team_id,
                SshKey.user_id == DeploymentCollaborator.user_id,
            ),
        )
        .where(ready, ~on_instance)
    )
    still_wanted = exists().where(
        SshKey.team_id == Deployment.team_id,
        SshKey.fingerprint == InstanceKey.fingerprint,
        _holder_of_key(),
    )
    unwanted = (
        select(Deployment.id)
        .join(InstanceKey, InstanceKey.deployment_id == Deployment.id)
        .where(ready, InstanceKey.state.in_(ACTIVE_STATES), ~still_wanted)
    )
    ids = union(owners, collaborators, unwanted).subquery()
    with read_transaction(sf) as session:
        return list(session.scalars(select(ids.c.id).order_by(ids.c.id).limit(limit)))


def retire_final(sf: SessionFactory, now: datetime, *, limit: int = 500) -> int:
    """Rows of deployments that ended (``destroyed``, ``failed``, …) and are not yet
    ``detached``: ``detached``, nothing due (the keys went with the instance; no event, the
    deployment's own events say it ended). At most ``limit`` rows; returns how many."""
    with write_transaction(sf) as session:
        ids = list(
            session.scalars(
                select(InstanceKey.id)
                .join(Deployment, Deployment.id == InstanceKey.deployment_id)
                .where(
                    Deployment.status.in_(list(FINAL_STATUSES)),
                    InstanceKey.state != DETACHED,
                )
                .order_by(InstanceKey.id)
                .limit(limit)
            )
        )
        if not ids:
            return 0
        result = session.execute(
            update(InstanceKey)
            .where(InstanceKey.id.in_(ids), InstanceKey.state != DETACHED)
            .values(
                state=DETACHED,
                next_try_at=None,
                last_error="the instance ended",
                updated_at=now,
            ),
            execution_options=_PLAIN,
        )
        return _rowcount(result)


def list_due(
    sf: SessionFactory, now: datetime, *, limit: int = 50
) -> list[tuple[InstanceKeyRecord, DeploymentRecord]]:
    """Rows whose act is due (``next_try_at <= now``, aware UTC) on a ``ready`` deployment
    with an instance, with that deployment, the longest due first, at most ``limit``. Rows of
    a stopped deployment wait (not listed) until it is ready again."""
    with read_transaction(sf) as session:
        keys = list(
            session.scalars(
                select(InstanceKey)
                .join(Deployment, Deployment.id == InstanceKey.deployment_id)
                .where(
                    InstanceKey.next_try_at <= now,
                    InstanceKey.state.in_(_PENDING),
                    Deployment.status == DeploymentStatus.READY,
                    Deployment.instance_id.is_not(None),
                )
                .order_by(InstanceKey.next_try_at, InstanceKey.id)
                .limit(limit)
            )
        )
        dep_ids = sorted({k.deployment_id for k in keys})
        deps = {
            row.id: DeploymentRecord.from_model(row)
            for row in session.scalars(select(Deployment).where(Deployment.id.in_(dep_ids)))
        }
        return [(InstanceKeyRecord.from_model(k), deps[k.deployment_id]) for k in keys]


def list_for_deployment(sf: SessionFactory, deployment_id: int) -> list[InstanceKeyRecord]:
    """Every ``instance_keys`` row of ``deployment_id``, oldest first."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(InstanceKey)
            .where(InstanceKey.deployment_id == deployment_id)
            .order_by(InstanceKey.id)
        )
        return [InstanceKeyRecord.from_model(row) for row in rows]


def _same_act(key_id: int, state: str, tries: int) -> tuple[ColumnElement[bool], ...]:
    """SQL: row ``key_id`` still holds act ``state`` at try count ``tries``."""
    return (InstanceKey.id == key_id, InstanceKey.state == state, InstanceKey.tries == tries)


def begin_try(
    sf: SessionFactory,
    key_id: int,
    *,
    state: str,
    tries: int,
    next_try_at: datetime,
    now: datetime,
) -> bool:
    """Take the next try of row ``key_id``'s act ``state`` (``attach`` or ``detach``) before
    its request is sent: ``tries`` goes from ``tries`` to ``tries + 1`` and the next try is due
    at ``next_try_at`` (if this sender dies, the reconciler sends again then). A conditional
    ``UPDATE``: across threads and processes one sender takes a try. False when the row's act
    changed, it is no longer pending, or the try was taken by someone else."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(InstanceKey)
            .where(*_same_act(key_id, state, tries), InstanceKey.next_try_at.is_not(None))
            .values(tries=tries + 1, next_try_at=next_try_at, updated_at=now),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def complete(
    sf: SessionFactory,
    key_id: int,
    *,
    state: str,
    tries: int,
    outcome: str,
    now: datetime,
    vast_key_id: str | None = None,
    detail: str | None = None,
) -> bool:
    """Record the outcome of try ``tries`` of row ``key_id``'s act ``state``: ``outcome`` is
    ``attached``, ``detached`` or ``kept``; nothing is due any more; ``vast_key_id`` (Vast.ai's
    id of the key on the instance, when known) is kept for ``attached`` and ``kept`` and
    cleared for ``detached``; ``last_error`` holds ``detail`` for ``kept`` (why it could not
    be removed). Appends the outcome's event (``ssh_key_attached``, ``ssh_key_detached``,
    ``ssh_key_kept``) by ``system`` with ``detail``, in the same transaction.

    Returns:
        False (nothing changed) when the row's act or try count changed meanwhile.

    Raises:
        ValueError: an unknown ``outcome``.
    """
    if outcome not in _OUTCOME_EVENTS:
        raise ValueError(f"unknown outcome {outcome!r}")
    text = detail[:MAX_ERROR] if detail else None
    with write_transaction(sf) as session:
        row = session.get(InstanceKey, key_id, with_for_update=True)
        if row is None or row.state != state or row.tries != tries:
            return False
        row.state = outcome
        row.next_try_at = None
        row.vast_key_id = None if outcome == DETACHED else (vast_key_id or row.vast_key_id)
        row.last_error = text if outcome == KEPT else None
        row.updated_at = now
        _event(session, row.deployment_id, SYSTEM_ACTOR, _OUTCOME_EVENTS[outcome], text, now)
        return True


def record_failure(
    sf: SessionFactory,
    key_id: int,
    *,
    state: str,
    tries: int,
    error: str,
    now: datetime,
    next_try_at: datetime | None = None,
    vast_key_id: str | None = None,
) -> bool:
    """Try ``tries`` of row ``key_id``'s act ``state`` did not go through: ``last_error =
    error``, the next try at ``next_try_at`` when given (else as :func:`begin_try` scheduled
    it), ``vast_key_id`` remembered when given (found before the failure), and an
    ``ssh_key_failed`` event by ``system`` with ``error``, in one transaction. False (nothing
    changed) when the row's act or try count changed meanwhile."""
    text = error[:MAX_ERROR]
    with write_transaction(sf) as session:
        row = session.get(InstanceKey, key_id, with_for_update=True)
        if row is None or row.state != state or row.tries != tries or row.next_try_at is None:
            return False
        row.last_error = text
        if next_try_at is not None:
            row.next_try_at = next_try_at
        if vast_key_id is not None:
            row.vast_key_id = vast_key_id
        row.updated_at = now
        _event(session, row.deployment_id, SYSTEM_ACTOR, EventKind.SSH_KEY_FAILED, text, now)
        return True
