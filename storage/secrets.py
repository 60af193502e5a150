"""The columns that hold secrets, and rewriting them in bounded batches (encryption at rest).

This module never sees a key: the caller passes the function that turns a stored value into
what it should become (``bot.crypto.SecretBox.reseal``: plain text encrypted, a token of an old
key re-encrypted with the current one). Each batch of at most ``batch_size`` rows is read in one
short transaction and written in another, each row with a compare-and-set (``UPDATE … WHERE
<key> = :key AND <column> = :old``): a value another process changed meanwhile (a token Slack
rotated, a password re-encrypted by a second process starting at once) is left as that process
wrote it. So a run killed at any point leaves every row either as it was or rewritten, and
running again finishes the work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, func, not_, select, update

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.models import Base, BotState
from storage.types import utcnow

#: Rows read and rewritten per transaction.
BATCH_SIZE = 200


@dataclass(frozen=True)
class SecretColumn:
    """A column holding a secret: ``table.column``, its rows keyed by ``key``; ``what`` names it
    for people ("web passwords")."""

    table: str
    key: str
    column: str
    what: str


#: Each deployment's generated web password (the template's ``password_env``).
WEB_PASSWORDS = SecretColumn("deployments", "id", "web_password", "web passwords")
#: Each workspace's Vast.ai API key (always stored encrypted).
VAST_KEYS = SecretColumn("workspaces", "team_id", "vast_key_ciphertext", "Vast.ai keys")
#: The bot token of each installed bot (a row per install and rotation in slack_bots).
SLACK_BOT_TOKENS = SecretColumn("slack_bots", "id", "bot_token", "Slack tokens")
#: slack_sdk's installation tables (OAuth mode): tokens, refresh tokens, the webhook URL.
SLACK_SECRETS: tuple[SecretColumn, ...] = (
    *(
        SecretColumn("slack_installations", "id", column, "Slack tokens")
        for column in (
            "bot_token",
            "bot_refresh_token",
            "user_token",
            "user_refresh_token",
            "incoming_webhook_url",
        )
    ),
    SLACK_BOT_TOKENS,
    SecretColumn("slack_bots", "id", "bot_refresh_token", "Slack tokens"),
)


@dataclass
class ResealReport:
    """What :func:`reseal_column` did: rows ``seen`` (non-NULL values), ``changed`` (rewritten),
    ``raced`` (changed by someone else between the read and the write: left as they were)."""

    seen: int = 0
    changed: int = 0
    raced: int = 0


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def reseal_column(
    sf: SessionFactory,
    secret: SecretColumn,
    reseal: Callable[[str], str | None],
    *,
    batch_size: int = BATCH_SIZE,
    skip_prefix: str | None = None,
) -> ResealReport:
    """Rewrite every non-NULL value of ``secret``'s column to ``reseal(value)``, in key order,
    ``batch_size`` rows per transaction (see the module docstring).

    Args:
        reseal: the new value for a stored one, or None to leave it. It runs outside any
            transaction; an exception from it propagates (rows of earlier batches stay
            rewritten).
        skip_prefix: values starting with it are not read at all (e.g. the prefix every
            encrypted value has, when only plain text is to be encrypted).

    Returns:
        The counts (:class:`ResealReport`).
    """
    table = _table(secret.table)
    key, column = table.c[secret.key], table.c[secret.column]
    report = ResealReport()
    after: Any = None
    while True:
        query = select(key, column).where(column.is_not(None))
        if after is not None:
            query = query.where(key > after)
        if skip_prefix:
            query = query.where(not_(column.startswith(skip_prefix, autoescape=True)))
        with read_transaction(sf) as session:
            rows = session.execute(query.order_by(key).limit(batch_size)).all()
        if not rows:
            return report
        report.seen += len(rows)
        changes = []
        for row_key, value in rows:
            new = reseal(value)
            if new is not None and new != value:
                changes.append((row_key, value, new))
        if changes:
            with write_transaction(sf) as session:
                for row_key, old, new in changes:
                    result = session.execute(
                        update(table)
                        .where(key == row_key, column == old)
                        .values({secret.column: new})
                        .execution_options(synchronize_session=False)
                    )
                    done = cast(CursorResult[Any], result).rowcount
                    report.changed += done
                    report.raced += 1 - done
        after = rows[-1][0]


def count_stored(sf: SessionFactory, secret: SecretColumn) -> int:
    """How many rows hold a value (not NULL) in ``secret``'s column."""
    column = _table(secret.table).c[secret.column]
    with read_transaction(sf) as session:
        return int(session.scalar(select(func.count()).where(column.is_not(None))) or 0)


def swap_state(
    sf: SessionFactory, name: str, expected: str, value: str, now: datetime | None = None
) -> bool:
    """Replace the ``bot_state`` document ``name`` by ``value`` only if it still is
    ``expected`` (compare-and-set, e.g. the encryption canary re-encrypted). True when
    replaced."""
    with write_transaction(sf) as session:
        result = session.execute(
            update(BotState)
            .where(BotState.name == name, BotState.value == expected)
            .values(value=value, updated_at=now or utcnow())
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1
