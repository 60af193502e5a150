"""Expired OAuth states: deleted in bounded batches.

slack_sdk's ``SQLAlchemyOAuthStateStore`` writes one ``slack_oauth_states`` row for every
``GET /slack/install`` (anyone may ask for the "Add to Slack" page, signed in or not) and deletes
a row only when the OAuth redirect consumes it; a state never used stays for ever. Its
``expire_at`` is naive UTC (slack_sdk's ``normalize_datetime_for_db``), and the store treats a
row as valid while ``expire_at > now``, so a row with ``expire_at <= now`` can never be consumed
again and is safe to delete.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, func, select

from storage.db import SessionFactory, read_transaction, write_transaction
from storage.models import slack_oauth_states

#: Rows deleted per statement (each batch is its own short write transaction, so a large
#: backlog never holds SQLite's write lock for long).
BATCH_ROWS = 1000
#: At most this many batches per call; the rest waits for the next call.
MAX_BATCHES = 50


def _naive_utc(when: datetime) -> datetime:
    """``when`` as slack_sdk stores it: naive UTC (an aware time is converted first)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def delete_expired_oauth_states(
    sf: SessionFactory,
    *,
    now: datetime,
    batch_rows: int = BATCH_ROWS,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete ``slack_oauth_states`` rows whose ``expire_at`` is at or before ``now`` (an aware
    UTC datetime, or naive UTC): at most ``batch_rows`` per statement (oldest id first) and
    ``max_batches`` statements. Returns how many rows were deleted (fewer than there are when
    the bound was reached: call again). Raises SQLAlchemy errors."""
    cutoff = _naive_utc(now)
    table = slack_oauth_states
    deleted = 0
    for _ in range(max(1, max_batches)):
        batch = (
            select(table.c.id)
            .where(table.c.expire_at <= cutoff)
            .order_by(table.c.id)
            .limit(batch_rows)
            .scalar_subquery()
        )
        with write_transaction(sf) as session:
            result = session.execute(delete(table).where(table.c.id.in_(batch)))
        count = int(getattr(result, "rowcount", 0) or 0)
        deleted += count
        if count < batch_rows:
            break
    return deleted


def count_oauth_states(sf: SessionFactory, *, expired_at: datetime | None = None) -> int:
    """How many ``slack_oauth_states`` rows there are (with ``expired_at``: only those expired
    by then). Raises SQLAlchemy errors."""
    query = select(func.count()).select_from(slack_oauth_states)
    if expired_at is not None:
        query = query.where(slack_oauth_states.c.expire_at <= _naive_utc(expired_at))
    with read_transaction(sf) as session:
        return int(session.scalar(query) or 0)
