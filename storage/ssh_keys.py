"""Repository functions for people's SSH public keys (``ssh_keys``), per workspace.

Each function is one short transaction and returns frozen snapshots (:class:`SshKeyRecord`).
Every read and write is scoped to one person in one workspace, ``(team_id, user_id)``: a key id
of someone else, or of the same person in another workspace, is "not found". Keys are unique
per person by fingerprint, so adding the same key again finds the one there
(:attr:`SshKeyAddOutcome.ALREADY`) and changes nothing. Adding and removing append a workspace event
(``ssh_key_added`` / ``ssh_key_removed``, detail ``<type> <fingerprint>``: nothing a person
typed) in the same transaction, for the audit log.

Only public keys reach this module (the caller checks them); it never logs. ``now`` defaults to
:func:`storage.types.utcnow` and must be an aware datetime. Imports nothing from ``bot``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind
from storage.models import SshKey
from storage.repo import MAX_ROW_ID
from storage.types import utcnow
from storage.workspaces import _team_event

__all__ = [
    "SshKeyAddOutcome",
    "SshKeyAddResult",
    "SshKeyRecord",
    "add_ssh_key",
    "count_ssh_keys",
    "get_ssh_key",
    "list_ssh_keys",
    "remove_ssh_key",
]


@dataclass(frozen=True, slots=True)
class SshKeyRecord:
    """A read-only copy of an ``ssh_keys`` row; see :class:`storage.models.SshKey`.

    ``public_key`` is ``"<key_type> <base64>"`` (no comment); ``fingerprint`` is
    ``SHA256:…``; ``comment`` is text the person typed (escape it when shown); ``created_at``
    is aware UTC."""

    id: int
    team_id: str
    user_id: str
    key_type: str
    public_key: str
    fingerprint: str
    comment: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: SshKey) -> SshKeyRecord:
        """Copy every column of ``row``."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


class SshKeyAddOutcome(StrEnum):
    """What :func:`add_ssh_key` did: ``added``; ``already`` (the person has a key with this
    fingerprint: nothing changed); ``limit`` (the person has ``limit`` keys: nothing added)."""

    ADDED = "added"
    ALREADY = "already"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class SshKeyAddResult:
    """The outcome of :func:`add_ssh_key`, the key now on record (the new one, or the one that
    was already there; None for ``limit``), and how many keys the person has now."""

    outcome: SshKeyAddOutcome
    key: SshKeyRecord | None
    count: int


def _detail(key_type: str, fingerprint: str) -> str:
    return f"{key_type} {fingerprint}"


def _mine(team_id: str, user_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The ``WHERE`` terms of one person's keys in one workspace."""
    return (SshKey.team_id == team_id, SshKey.user_id == user_id)


def add_ssh_key(
    sf: SessionFactory,
    *,
    team_id: str,
    user_id: str,
    key_type: str,
    public_key: str,
    fingerprint: str,
    comment: str | None,
    limit: int,
    now: datetime | None = None,
) -> SshKeyAddResult:
    """Add a checked public key for ``user_id`` in ``team_id``, at most ``limit`` keys per
    person, and append an ``ssh_key_added`` workspace event by ``user_id``, in one write
    transaction.

    Idempotent on ``(team_id, user_id, fingerprint)``: when the person has that key already,
    returns :attr:`SshKeyAddOutcome.ALREADY` with the stored key (its comment is not changed), also
    when another request inserted it at the same moment (the unique constraint's conflict is
    caught). ``comment`` must fit the column (200 characters). Two different keys added at the
    same moment on PostgreSQL may pass ``limit`` by one (SQLite's writes queue)."""
    now = now or utcnow()
    for attempt in range(2):
        try:
            with write_transaction(sf) as session:
                existing = session.scalar(
                    select(SshKey).where(
                        *_mine(team_id, user_id), SshKey.fingerprint == fingerprint
                    )
                )
                count = int(
                    session.scalar(select(func.count(SshKey.id)).where(*_mine(team_id, user_id)))
                    or 0
                )
                if existing is not None:
                    return SshKeyAddResult(
                        SshKeyAddOutcome.ALREADY, SshKeyRecord.from_model(existing), count
                    )
                if count >= limit:
                    return SshKeyAddResult(SshKeyAddOutcome.LIMIT, None, count)
                row = SshKey(
                    team_id=team_id,
                    user_id=user_id,
                    key_type=key_type,
                    public_key=public_key,
                    fingerprint=fingerprint,
                    comment=comment,
                    created_at=now,
                )
                session.add(row)
                session.flush()
                _team_event(
                    session,
                    team_id,
                    user_id,
                    EventKind.SSH_KEY_ADDED,
                    _detail(key_type, fingerprint),
                    now,
                )
                return SshKeyAddResult(
                    SshKeyAddOutcome.ADDED, SshKeyRecord.from_model(row), count + 1
                )
        except IntegrityError:  # the same key inserted at the same moment: read it back
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def list_ssh_keys(sf: SessionFactory, team_id: str, user_id: str) -> list[SshKeyRecord]:
    """The keys of ``user_id`` in ``team_id``, oldest first."""
    with read_transaction(sf) as session:
        rows = session.scalars(select(SshKey).where(*_mine(team_id, user_id)).order_by(SshKey.id))
        return [SshKeyRecord.from_model(row) for row in rows]


def count_ssh_keys(sf: SessionFactory, team_id: str, user_id: str) -> int:
    """How many keys ``user_id`` has in ``team_id``."""
    with read_transaction(sf) as session:
        return int(
            session.scalar(select(func.count(SshKey.id)).where(*_mine(team_id, user_id))) or 0
        )


def get_ssh_key(sf: SessionFactory, team_id: str, user_id: str, key_id: int) -> SshKeyRecord | None:
    """Key ``key_id`` when it is ``user_id``'s in ``team_id``; None otherwise (someone else's,
    gone, or an id out of the column's range)."""
    if not 1 <= key_id <= MAX_ROW_ID:
        return None
    with read_transaction(sf) as session:
        row = session.scalar(select(SshKey).where(SshKey.id == key_id, *_mine(team_id, user_id)))
        return SshKeyRecord.from_model(row) if row is not None else None


def remove_ssh_key(
    sf: SessionFactory,
    team_id: str,
    user_id: str,
    key_id: int,
    *,
    now: datetime | None = None,
) -> SshKeyRecord | None:
    """Delete key ``key_id`` when it is ``user_id``'s in ``team_id`` and append an
    ``ssh_key_removed`` workspace event, in one write transaction. Returns the removed key;
    None when there was none to remove (someone else's id, already removed, out of range):
    nothing changed."""
    if not 1 <= key_id <= MAX_ROW_ID:
        return None
    now = now or utcnow()
    with write_transaction(sf) as session:
        row = session.scalar(
            select(SshKey).where(SshKey.id == key_id, *_mine(team_id, user_id)).with_for_update()
        )
        if row is None:
            return None
        record = SshKeyRecord.from_model(row)
        session.delete(row)
        _team_event(
            session,
            team_id,
            user_id,
            EventKind.SSH_KEY_REMOVED,
            _detail(record.key_type, record.fingerprint),
            now,
        )
        return record
