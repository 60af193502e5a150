"""Mark status messages whose last edit did not reach Slack, so a reconciler re-sends them
(also after a restart).

Revision ID: 0006_message_stale_since
Revises: 0005_budgets
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_message_stale_since"
down_revision: str | None = "0005_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN and CREATE INDEX on both databases: no batch "move and
    # copy" of deployments (ON DELETE CASCADE would take every event with the old table).
    op.add_column(
        "deployments", sa.Column("message_stale_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_deployments_message_stale_since", "deployments", ["message_stale_since"])


def downgrade() -> None:
    op.drop_index("ix_deployments_message_stale_since", table_name="deployments")
    with op.batch_alter_table("deployments", recreate="never") as batch:
        batch.drop_column("message_stale_since")
