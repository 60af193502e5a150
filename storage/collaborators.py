"""Who a deployment is shared with (``deployment_collaborators``): SQL only.

The owner of a deployment stays ``deployments.user_id``; a collaborator is a teammate the
owner (or a bot admin) shared it with, and a row exists exactly while they have access. Each
function is one short transaction. Adding and removing write their ``shared`` / ``unshared``
event in the same transaction as the row, so the event log never disagrees with the table.
A collaborator's own ready DM is claimed on ``ready_dm_sent_at`` with a conditional
``UPDATE ... WHERE ready_dm_sent_at IS NULL`` (:func:`claim_ready_dm`): across processes and
restarts one claimer wins, so each collaborator gets it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.errors import DeploymentNotFoundError
from storage.events import EventKind
from storage.models import Deployment, DeploymentCollaborator, DeploymentStatus
from storage.records import DeploymentRecord
from storage.repo import _PLAIN, SYSTEM_ACTOR, _event, _list, _rowcount, _values
from storage.types import utcnow

__all__ = [
    "CollaboratorRecord",
    "add_collaborator",
    "claim_ready_dm",
    "collaborator_ids",
    "is_collaborator",
    "list_collaborators",
    "list_shared_with",
    "pending_ready_dms",
    "release_ready_dm",
    "remove_collaborator",
]

#: Statuses whose collaborators may still be owed their ready DM (see :func:`pending_ready_dms`).
_OWED = (
    DeploymentStatus.CREATING,
    DeploymentStatus.PROVISIONING,
    DeploymentStatus.READY,
    DeploymentStatus.STOPPED,
)


@dataclass(frozen=True, slots=True)
class CollaboratorRecord:
    """A read-only copy of a ``deployment_collaborators`` row (datetimes aware UTC).

    ``added_by``: the Slack user id who shared it; ``ready_dm_sent_at``: when their own ready
    DM was claimed (None: not yet)."""

    deployment_id: int
    user_id: str
    added_by: str
    added_at: datetime
    ready_dm_sent_at: datetime | None

    @classmethod
    def from_model(cls, row: DeploymentCollaborator) -> CollaboratorRecord:
        """Copy every column of ``row``."""
        return cls(
            deployment_id=row.deployment_id,
            user_id=row.user_id,
            added_by=row.added_by,
            added_at=row.added_at,
            ready_dm_sent_at=row.ready_dm_sent_at,
        )


def add_collaborator(
    sf: SessionFactory,
    deployment_id: int,
    user_id: str,
    *,
    added_by: str,
    now: datetime | None = None,
) -> bool:
    """Share ``deployment_id`` with Slack user ``user_id`` (``added_by``: who shared it).

    Idempotent: True when the row was added now (with a ``shared`` event, actor
    ``added_by``, detail ``with <@user_id>``), False when ``user_id`` already had access (also
    when another process added them at the same moment). Raises
    :class:`~storage.errors.DeploymentNotFoundError` for an unknown deployment.
    """
    now = now or utcnow()
    try:
        with write_transaction(sf) as session:
            if session.get(Deployment, deployment_id) is None:
                raise DeploymentNotFoundError(deployment_id)
            if session.get(DeploymentCollaborator, (deployment_id, user_id)) is not None:
                return False
            session.add(
                DeploymentCollaborator(
                    deployment_id=deployment_id,
                    user_id=user_id,
                    added_by=added_by,
                    added_at=now,
                )
            )
            session.flush()
            _event(session, deployment_id, added_by, EventKind.SHARED, f"with <@{user_id}>", now)
            return True
    except IntegrityError:  # the same person added by another process meanwhile
        return False


def remove_collaborator(
    sf: SessionFactory,
    deployment_id: int,
    user_id: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> bool:
    """Take ``user_id``'s access to ``deployment_id`` away (delete their row). True when a row
    was deleted now (with an ``unshared`` event, actor ``actor``, detail ``from <@user_id>``);
    False when they had no access (already removed: nothing is written)."""
    now = now or utcnow()
    with write_transaction(sf) as session:
        result = session.execute(
            delete(DeploymentCollaborator).where(
                DeploymentCollaborator.deployment_id == deployment_id,
                DeploymentCollaborator.user_id == user_id,
            ),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        _event(session, deployment_id, actor, EventKind.UNSHARED, f"from <@{user_id}>", now)
        return True


def list_collaborators(sf: SessionFactory, deployment_id: int) -> list[CollaboratorRecord]:
    """The people ``deployment_id`` is shared with, in the order they were added."""
    with read_transaction(sf) as session:
        rows = session.scalars(
            select(DeploymentCollaborator)
            .where(DeploymentCollaborator.deployment_id == deployment_id)
            .order_by(DeploymentCollaborator.added_at, DeploymentCollaborator.user_id)
        )
        return [CollaboratorRecord.from_model(row) for row in rows]


def collaborator_ids(sf: SessionFactory, deployment_id: int) -> list[str]:
    """The Slack user ids of :func:`list_collaborators`, in the same order."""
    return [row.user_id for row in list_collaborators(sf, deployment_id)]


def is_collaborator(sf: SessionFactory, deployment_id: int, user_id: str) -> bool:
    """True while ``deployment_id`` is shared with ``user_id`` (one primary-key read)."""
    with read_transaction(sf) as session:
        return session.get(DeploymentCollaborator, (deployment_id, user_id)) is not None


def list_shared_with(
    sf: SessionFactory,
    team_id: str,
    user_id: str,
    statuses: Iterable[DeploymentStatus] | None = None,
) -> list[DeploymentRecord]:
    """The deployments of workspace ``team_id`` shared with ``user_id`` (not their own), in
    ``statuses`` when given (all statuses otherwise), oldest first. Raises ``ValueError`` for
    a string that is no status."""
    shared = select(DeploymentCollaborator.deployment_id).where(
        DeploymentCollaborator.user_id == user_id
    )
    conditions = [
        Deployment.team_id == team_id,
        Deployment.user_id != user_id,
        Deployment.id.in_(shared),
    ]
    if statuses is not None:
        conditions.append(Deployment.status.in_(_values(statuses)))
    return _list(sf, *conditions)


def claim_ready_dm(
    sf: SessionFactory, deployment_id: int, user_id: str, now: datetime | None = None
) -> bool:
    """Claim the right to DM collaborator ``user_id`` their own ready DM of ``deployment_id``:
    ``UPDATE ... SET ready_dm_sent_at = :now WHERE ... AND ready_dm_sent_at IS NULL``, so True
    exactly once across processes (False when already claimed or no longer shared). The
    winner also appends a ``secrets_sent`` event (actor ``system``, detail ``to <@user_id>``).
    """
    now = now or utcnow()
    with write_transaction(sf) as session:
        result = session.execute(
            update(DeploymentCollaborator)
            .where(
                DeploymentCollaborator.deployment_id == deployment_id,
                DeploymentCollaborator.user_id == user_id,
                DeploymentCollaborator.ready_dm_sent_at.is_(None),
            )
            .values(ready_dm_sent_at=now),
            execution_options=_PLAIN,
        )
        if _rowcount(result) != 1:
            return False
        _event(
            session, deployment_id, SYSTEM_ACTOR, EventKind.SECRETS_SENT, f"to <@{user_id}>", now
        )
        return True


def release_ready_dm(
    sf: SessionFactory, deployment_id: int, user_id: str, claimed_at: datetime
) -> bool:
    """Undo a :func:`claim_ready_dm` made at ``claimed_at`` (Slack refused the DM), so a later
    poller pass sends it again. True when that claim was still held and is now cleared."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(DeploymentCollaborator)
            .where(
                DeploymentCollaborator.deployment_id == deployment_id,
                DeploymentCollaborator.user_id == user_id,
                DeploymentCollaborator.ready_dm_sent_at == claimed_at,
            )
            .values(ready_dm_sent_at=None),
            execution_options=_PLAIN,
        )
        return _rowcount(result) == 1


def pending_ready_dms(sf: SessionFactory) -> frozenset[int]:
    """The ids of the deployments that still owe a collaborator their ready DM: shared with
    someone whose ``ready_dm_sent_at`` is unset, and not ended (``creating``,
    ``provisioning``, ``ready`` or ``stopped``). One query, so the poller asks once per pass
    instead of once per ready deployment."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(DeploymentCollaborator.deployment_id)
            .join(Deployment, Deployment.id == DeploymentCollaborator.deployment_id)
            .where(
                DeploymentCollaborator.ready_dm_sent_at.is_(None),
                Deployment.status.in_(_OWED),
            )
            .distinct()
        )
        return frozenset(int(row[0]) for row in rows)
