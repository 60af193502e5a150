"""Lifetimes and reminders: a deployment's end time and idle state; claims; cached Slack users;
shared bot state.

Existing deployments get no end time (``ends_at`` NULL: they run until someone stops them, as
before this revision), so nothing is stopped by surprise after an upgrade.

Revision ID: 0004_lifetimes
Revises: 0003_event_status_columns
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_lifetimes"
down_revision: str | None = "0003_event_status_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DATETIME_COLUMNS = (
    "lifetime_started_at",
    "ends_at",
    "expiry_warned_at",
    "idle_since",
    "idle_warned_at",
    "idle_snoozed_until",
)


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("lifetime_hours", sa.Float(), nullable=True))
        for name in _DATETIME_COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "claims",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_claims")),
    )
    op.create_table(
        "slack_users",
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("tz", sa.String(64), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_slack_users")),
    )
    op.create_table(
        "bot_state",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bot_state")),
    )


def downgrade() -> None:
    op.drop_table("bot_state")
    op.drop_table("slack_users")
    op.drop_table("claims")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch "move and copy" would drop
    # the deployments table, and ON DELETE CASCADE would take every event with it.
    with op.batch_alter_table("deployments", recreate="never") as batch:
        for name in reversed(_DATETIME_COLUMNS):
            batch.drop_column(name)
        batch.drop_column("lifetime_hours")
