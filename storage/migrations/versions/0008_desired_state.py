"""Desired state: what should be true of a deployment's instance, written before Vast.ai is
called, so a reconciler can carry out what a crash or a refusal left undone.

``desired_state`` is ``running``, ``stopped`` or ``destroyed`` (None: no act recorded yet, the
instance is followed as Vast.ai reports it). ``desired_next_try_at`` is set while the act is not
yet confirmed (Vast.ai accepted the request, or its data shows the state reached) and cleared
when it is: it is the reconciler's work list, hence the index.

Revision ID: 0008_desired_state
Revises: 0007_workspaces_and_oauth
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_desired_state"
down_revision: str | None = "0007_workspaces_and_oauth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("desired_state", sa.String(16)),
    ("desired_reason", sa.Text()),
    ("desired_actor", sa.String(32)),
    ("desired_at", sa.DateTime(timezone=True)),
    ("desired_done_at", sa.DateTime(timezone=True)),
    ("desired_next_try_at", sa.DateTime(timezone=True)),
    ("desired_gave_up_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN on both databases (no batch copy of deployments: ON
    # DELETE CASCADE would take every event with the old table).
    for name, type_ in _COLUMNS:
        op.add_column("deployments", sa.Column(name, type_, nullable=True))
    op.add_column(
        "deployments",
        sa.Column("desired_tries", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_deployments_desired_next_try_at", "deployments", ["desired_next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_deployments_desired_next_try_at", table_name="deployments")
    with op.batch_alter_table("deployments", recreate="never") as batch:
        batch.drop_column("desired_tries")
        for name, _type in reversed(_COLUMNS):
            batch.drop_column(name)
