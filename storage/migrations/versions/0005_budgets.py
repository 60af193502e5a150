"""Budgets and approvals: monthly budgets per workspace and person, the approval a pending
deployment waits for, and workspace-wide audit events.

Revision ID: 0005_budgets
Revises: 0004_lifetimes
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_budgets"
down_revision: str | None = "0004_lifetimes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(32), nullable=False),
        sa.Column("monthly_dollars", sa.Float(), nullable=True),
        sa.Column("set_by", sa.String(32), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "subject", name=op.f("pk_budgets")),
    )
    op.create_table(
        "approvals",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("messages_json", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("decided_by", sa.String(32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_approvals_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_approvals")),
    )
    op.create_table(
        "team_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_events")),
    )
    op.create_index("ix_team_events_team_at", "team_events", ["team_id", "at"])
    # The audit log reads a workspace's deployment events newest first.
    op.create_index("ix_deployment_events_at", "deployment_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_deployment_events_at", table_name="deployment_events")
    op.drop_index("ix_team_events_team_at", table_name="team_events")
    op.drop_table("team_events")
    op.drop_table("approvals")
    op.drop_table("budgets")
