"""Repository functions for workspaces: installs, uninstalls, the Vast.ai key and the settings
each workspace keeps in the database.

Each function is one short transaction and returns frozen snapshots
(:class:`WorkspaceRecord`). Writes that an admin makes (the key, the settings) and installs and
uninstalls append a ``team_events`` row in the same transaction, so they show in the
workspace's audit log (:func:`storage.budgets.list_audit`). The Vast.ai key is stored only as
the ciphertext the caller made (``bot.crypto.SecretBox``); this module never sees the key and
no event or ``repr`` carries the ciphertext. ``now`` defaults to :func:`storage.types.utcnow`
and must be an aware datetime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.events import EventKind, event_kind
from storage.models import LIVE_STATUSES, BotState, Deployment, TeamEvent, Workspace
from storage.repo import SYSTEM_ACTOR
from storage.types import utcnow


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    """A read-only copy of a ``workspaces`` row; see :class:`storage.models.Workspace`.

    ``settings`` is the row's ``settings_json`` parsed: a dict of per-workspace overrides
    (empty when none, or when the stored text is not a JSON object). Datetimes are aware UTC.
    ``vast_key_ciphertext`` is left out of ``repr``.
    """

    team_id: str
    enterprise_id: str | None
    team_name: str | None
    vast_key_ciphertext: str | None = field(repr=False)
    vast_key_last4: str | None
    vast_user_id: str | None
    vast_key_set_by: str | None
    vast_key_set_at: datetime | None
    settings: dict[str, Any]
    installed_at: datetime | None
    uninstalled_at: datetime | None
    updated_at: datetime

    @property
    def has_vast_key(self) -> bool:
        """True when an admin saved a Vast.ai key (else the workspace runs on the simulator)."""
        return self.vast_key_ciphertext is not None

    @property
    def is_installed(self) -> bool:
        """True unless the app was uninstalled (or its tokens revoked) since the last install.
        A workspace known only from single-workspace mode (``installed_at`` None) counts."""
        return self.uninstalled_at is None

    @classmethod
    def from_model(cls, row: Workspace) -> WorkspaceRecord:
        """Copy every column of ``row``; ``settings_json`` parsed into ``settings``."""
        values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name != "settings"}
        return cls(**values, settings=parse_settings(row.settings_json))


def parse_settings(text: str | None) -> dict[str, Any]:
    """``settings_json`` as a dict: ``{}`` for None, malformed JSON or anything but an object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return dict(value) if isinstance(value, dict) else {}


def get_workspace(sf: SessionFactory, team_id: str) -> WorkspaceRecord | None:
    """The workspace ``team_id`` (``T…``), or None when the bot has never known it."""
    with read_transaction(sf) as session:
        row = session.get(Workspace, team_id)
        return WorkspaceRecord.from_model(row) if row is not None else None


def list_workspaces(sf: SessionFactory, *, installed_only: bool = False) -> list[WorkspaceRecord]:
    """Every workspace, by ``team_id``; with ``installed_only``, those not uninstalled
    (``uninstalled_at`` None, which includes single-workspace rows that were never installed
    by OAuth)."""
    query = select(Workspace).order_by(Workspace.team_id)
    if installed_only:
        query = query.where(Workspace.uninstalled_at.is_(None))
    with read_transaction(sf) as session:
        return [WorkspaceRecord.from_model(row) for row in session.scalars(query)]


def _upsert(
    sf: SessionFactory,
    team_id: str,
    now: datetime,
    change: Callable[[Session, Workspace], None],
) -> None:
    """Load (locked) or create the row of ``team_id``, apply ``change(session, row)`` and set
    ``updated_at``, in one write transaction. When another process inserted the same workspace
    at the same moment (a primary-key conflict on commit), the whole step runs again and finds
    its row."""
    for attempt in range(2):
        try:
            with write_transaction(sf) as session:
                row = session.get(Workspace, team_id, with_for_update=True)
                if row is None:
                    row = Workspace(team_id=team_id, settings_json="{}", updated_at=now)
                    session.add(row)
                change(session, row)
                row.updated_at = now
            return
        except IntegrityError:
            if attempt:
                raise


def _team_event(
    session: Session,
    team_id: str,
    actor: str,
    action: EventKind,
    detail: str | None,
    now: datetime,
) -> None:
    session.add(
        TeamEvent(team_id=team_id, at=now, actor=actor, action=event_kind(action), detail=detail)
    )


def record_install(
    sf: SessionFactory,
    team_id: str,
    *,
    enterprise_id: str | None,
    team_name: str | None,
    now: datetime | None = None,
) -> None:
    """Record that ``team_id`` installed the app (OAuth): create or update its row with
    ``enterprise_id`` and ``team_name`` (a None name keeps the one known), set ``installed_at``
    to ``now`` and clear ``uninstalled_at``. The Vast.ai key and settings from an earlier
    install are kept. Appends an ``installed`` workspace event."""
    now = now or utcnow()

    def change(session: Session, row: Workspace) -> None:
        row.enterprise_id = enterprise_id
        if team_name is not None:
            row.team_name = team_name
        row.installed_at, row.uninstalled_at = now, None
        _team_event(session, team_id, SYSTEM_ACTOR, EventKind.INSTALLED, team_name, now)

    _upsert(sf, team_id, now, change)


def record_uninstall(sf: SessionFactory, team_id: str, *, now: datetime | None = None) -> bool:
    """Record that ``team_id`` uninstalled the app or revoked its tokens: set
    ``uninstalled_at`` (the row, its key, settings and deployments stay for the audit trail and
    the lifetimes of what it left running). Appends an ``uninstalled`` workspace event. False
    when the workspace is unknown or already uninstalled (no event)."""
    now = now or utcnow()
    with write_transaction(sf) as session:
        row = session.get(Workspace, team_id, with_for_update=True)
        if row is None or row.uninstalled_at is not None:
            return False
        row.uninstalled_at = row.updated_at = now
        _team_event(session, team_id, SYSTEM_ACTOR, EventKind.UNINSTALLED, None, now)
        return True


def save_vast_key(
    sf: SessionFactory,
    team_id: str,
    *,
    ciphertext: str | None,
    last4: str | None,
    vast_user_id: str | None,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Save the workspace's Vast.ai key as ``ciphertext`` (a Fernet token from
    ``bot.crypto.SecretBox.encrypt``; never the key itself), with ``last4`` (its last
    characters, for "key ending …a1b2") and ``vast_user_id`` (``users/current`` ``id`` when it
    was checked), set by ``actor`` (Slack user id). Creates the row when the workspace is new.
    Appends a ``vast_key_set`` workspace event whose detail is "key ending …<last4>".

    ``ciphertext`` None removes the key (and ``last4``/``vast_user_id``): the workspace runs on
    the simulator again; the event is then ``vast_key_removed``.
    """
    now = now or utcnow()

    def change(session: Session, row: Workspace) -> None:
        if ciphertext is None:
            row.vast_key_ciphertext = row.vast_key_last4 = row.vast_user_id = None
            action, detail = EventKind.VAST_KEY_REMOVED, None
        else:
            row.vast_key_ciphertext, row.vast_key_last4 = ciphertext, last4
            row.vast_user_id = vast_user_id
            action, detail = EventKind.VAST_KEY_SET, f"key ending …{last4}" if last4 else None
        row.vast_key_set_by, row.vast_key_set_at = actor, now
        _team_event(session, team_id, actor, action, detail, now)

    _upsert(sf, team_id, now, change)


def save_workspace_settings(
    sf: SessionFactory,
    team_id: str,
    settings: Mapping[str, object],
    *,
    actor: str,
    now: datetime | None = None,
) -> None:
    """Replace the workspace's settings with ``settings`` (name → JSON value; a name left out
    falls back to the configured default), set by ``actor``. Creates the row when the workspace
    is new. Appends a ``settings_changed`` workspace event naming the settings that changed
    (added, removed or with another value; names only, no values), or none when nothing did.

    Raises:
        TypeError: when a value cannot be written as JSON.
    """
    now = now or utcnow()
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    new = json.loads(text)

    def change(session: Session, row: Workspace) -> None:
        old = parse_settings(row.settings_json)
        changed = sorted(
            name
            for name in old.keys() | new.keys()
            if (name in old) != (name in new) or old.get(name) != new.get(name)
        )
        row.settings_json = text
        if changed:
            detail = "settings changed: " + ", ".join(changed)
            _team_event(session, team_id, actor, EventKind.SETTINGS_CHANGED, detail, now)

    _upsert(sf, team_id, now, change)


def count_live_real_deployments(sf: SessionFactory, team_id: str) -> int:
    """How many of the workspace's deployments are live (creating, provisioning, ready or
    stopped) on real Vast.ai (not simulated): while there are any, its key must not change to
    another Vast.ai account, or the bot would lose track of those instances."""
    query = select(func.count()).where(
        Deployment.team_id == team_id,
        Deployment.status.in_(LIVE_STATUSES),
        Deployment.simulated.is_(False),
    )
    with read_transaction(sf) as session:
        return int(session.scalar(query) or 0)


def live_real_instance_ids(sf: SessionFactory, team_id: str) -> list[int]:
    """The Vast.ai instance ids of the workspace's live deployments on real Vast.ai (those
    :func:`count_live_real_deployments` counts that have an instance yet), ascending."""
    query = (
        select(Deployment.instance_id)
        .where(
            Deployment.team_id == team_id,
            Deployment.status.in_(LIVE_STATUSES),
            Deployment.simulated.is_(False),
            Deployment.instance_id.is_not(None),
        )
        .order_by(Deployment.instance_id)
    )
    with read_transaction(sf) as session:
        return [int(i) for i in session.scalars(query) if i is not None]


def put_state_if_absent(
    sf: SessionFactory, name: str, value: str, now: datetime | None = None
) -> bool:
    """Write the shared ``bot_state`` document ``name`` unless it exists (e.g. the encryption
    canary, which the first process to start writes and every later one only reads). True for
    the one caller that wrote it; a concurrent insert by another process gives False."""
    try:
        with write_transaction(sf) as session:
            if session.get(BotState, name) is not None:
                return False
            session.add(BotState(name=name, value=value, updated_at=now or utcnow()))
        return True
    except IntegrityError:
        return False
