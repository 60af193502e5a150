"""Room for encrypted Slack secrets: slack_sdk's token and webhook URL columns become TEXT.

The bot stores Slack tokens, refresh tokens and the incoming-webhook URL encrypted (a Fernet
token is about 4/3 of the secret plus 76 characters: a 150-character rotating token becomes
~290), which PostgreSQL would refuse in slack_sdk's ``VARCHAR(200)``. slack_sdk reads and
writes these columns as plain strings, so TEXT changes nothing for it. The values themselves
are encrypted by the bot at start-up (Alembic cannot see the key), not here.

Downgrading turns the columns back into ``VARCHAR(200)``; PostgreSQL refuses that while an
encrypted value is longer (nothing is truncated).

Revision ID: 0009_secret_columns
Revises: 0008_desired_state
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_secret_columns"
down_revision: str | None = "0008_desired_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = {
    "slack_installations": (
        "bot_token",
        "bot_refresh_token",
        "user_token",
        "user_refresh_token",
        "incoming_webhook_url",
    ),
    "slack_bots": ("bot_token", "bot_refresh_token"),
}


def upgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column, type_=sa.Text(), existing_type=sa.String(200), existing_nullable=True
                )


def downgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column, type_=sa.String(200), existing_type=sa.Text(), existing_nullable=True
                )
