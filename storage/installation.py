"""The installation id: a random name this database gives the bot, written once at first start.

Every instance the bot rents carries it in its Vast.ai label, so two installations (staging and
production, or a bot whose SQLite file was lost and started again empty) that share a Vast.ai
account can tell their instances apart: deployment ids restart at 1 in each database, the
installation id does not repeat.

Kept in ``bot_state`` under :data:`INSTALLATION_STATE`. Two processes starting at once on one
database agree on one id: each inserts its candidate only if the row is absent (``INSERT … ON
CONFLICT DO NOTHING``, SQLite and PostgreSQL), then reads the row back.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import SessionFactory, write_transaction
from storage.errors import StorageError
from storage.models import BotState
from storage.types import utcnow

#: ``bot_state`` name of the installation id.
INSTALLATION_STATE = "installation_id"
#: Hex characters of an installation id: 48 random bits. Vast.ai takes labels of up to 256
#: characters on create (docs/VAST_API.md §3), so ``slackbot:<12 hex>:dep-<id>`` fits easily.
INSTALLATION_ID_LENGTH = 12
#: What an installation id looks like (lowercase hex, ASCII only).
INSTALLATION_ID_PATTERN = re.compile(rf"[0-9a-f]{{{INSTALLATION_ID_LENGTH}}}", re.ASCII)


def new_installation_id() -> str:
    """A fresh random installation id: :data:`INSTALLATION_ID_LENGTH` lowercase hex
    characters (``secrets.token_hex``)."""
    return secrets.token_hex(INSTALLATION_ID_LENGTH // 2)


def installation_id(
    sf: SessionFactory, *, candidate: str | None = None, now: datetime | None = None
) -> str:
    """This database's installation id, created on first call: ``candidate`` (default
    :func:`new_installation_id`) is inserted only when no id is stored yet, then the stored id
    is read back, so concurrent first starts (threads or processes, SQLite or PostgreSQL) all
    get the one id that was written first.

    Raises :class:`StorageError` when the stored value is not an installation id (a hand-edited
    row: the bot must not label instances with it), ValueError for a malformed ``candidate``,
    and SQLAlchemy errors."""
    candidate = candidate or new_installation_id()
    if not INSTALLATION_ID_PATTERN.fullmatch(candidate):
        raise ValueError(f"an installation id is {INSTALLATION_ID_LENGTH} lowercase hex characters")
    values = {"name": INSTALLATION_STATE, "value": candidate, "updated_at": now or utcnow()}
    with write_transaction(sf) as session:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            session.execute(postgresql_insert(BotState).values(values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            session.execute(sqlite_insert(BotState).values(values).on_conflict_do_nothing())
        else:  # pragma: no cover - the bot runs on SQLite or PostgreSQL only
            raise StorageError(f"no insert-if-absent for the {dialect} dialect")
        stored = session.scalar(select(BotState.value).where(BotState.name == INSTALLATION_STATE))
    if stored is None or not INSTALLATION_ID_PATTERN.fullmatch(stored):
        raise StorageError(
            f"bot_state {INSTALLATION_STATE!r} holds {stored!r}, which is not an installation id "
            f"({INSTALLATION_ID_LENGTH} lowercase hex characters); fix or delete that row"
        )
    return stored
