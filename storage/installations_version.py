"""The version of OAuth mode's installation store: one ``bot_state`` row every process reads.

Each process keeps the installations it found in memory for a short while; whatever changes
the store (an install, a token rotation, an uninstall, a revoked token) replaces this row's
value after its own write has committed, and each lookup compares the value with the one its
cached entry was read under: a single primary-key read, so a change made by any process is
seen by every other one on its next lookup. The value is an opaque random token (a new one per
change), not a counter: writers never read it first, so two of them cannot race.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage.models import BotState

#: ``bot_state`` name of the installation store's version.
INSTALLATIONS_VERSION_STATE = "installations_version"

_READ = select(BotState.value).where(BotState.name == INSTALLATIONS_VERSION_STATE)


def read_installations_version(engine: Engine) -> str:
    """The current version (``""`` before the first change): one primary-key read in its own
    short transaction. Raises SQLAlchemy errors when the database is unreachable."""
    with engine.connect() as conn:
        value = conn.execute(_READ).scalar_one_or_none()
    return value or ""


def _bump_statement(dialect: str, now: datetime) -> tuple[Any, str]:
    value = uuid.uuid4().hex
    row = {"name": INSTALLATIONS_VERSION_STATE, "value": value, "updated_at": now}
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(BotState).values(row)
    statement = statement.on_conflict_do_update(
        index_elements=[BotState.name], set_={"value": value, "updated_at": now}
    )
    return statement, value


def bump_installations_version(engine: Engine, now: datetime) -> str:
    """Give the version a new value (a random 32-hex-digit token) at ``now`` (aware UTC), in
    its own committed transaction, and return it. Call it after the store's write committed.
    Raises SQLAlchemy errors when the database is unreachable."""
    statement, value = _bump_statement(engine.dialect.name, now)
    with engine.begin() as conn:
        conn.execute(statement)
    return value


def bump_installations_version_in(session: Session, now: datetime) -> str:
    """:func:`bump_installations_version` inside the caller's transaction (``session``), for a
    writer that deletes installation rows itself (retention's purge of an uninstalled
    workspace): the new value commits with the delete."""
    statement, value = _bump_statement(session.get_bind().dialect.name, now)
    session.execute(statement)
    return value
