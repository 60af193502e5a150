"""How many SSH public keys a person has on file in a workspace (``ssh_keys``).

The ready DM asks this to decide whether to offer **Add an SSH key**: a person with no key
cannot use the SSH commands it gives. One short read transaction, no network call inside.
Imports nothing from ``bot``.
"""

from __future__ import annotations

from sqlalchemy import func, select

from storage.db import SessionFactory, read_transaction
from storage.models import SshKey

__all__ = ["ssh_keys_count"]


def ssh_keys_count(sf: SessionFactory, team_id: str, user_id: str) -> int:
    """The number of ``ssh_keys`` rows of ``user_id`` in workspace ``team_id`` (0 when none;
    another workspace's keys of the same id are not counted). Raises SQLAlchemy's errors."""
    with read_transaction(sf) as session:
        count = session.scalar(
            select(func.count())
            .select_from(SshKey)
            .where(SshKey.team_id == team_id, SshKey.user_id == user_id)
        )
        return int(count or 0)
