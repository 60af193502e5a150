"""Initial schema: deployments, deployment_events, leases.

Revision ID: 0001_initial
Revises:
Create Date: 2024-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("message_channel", sa.String(32), nullable=True),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("template_slug", sa.String(64), nullable=False),
        sa.Column("template_name", sa.String(200), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("gpu_name", sa.String(100), nullable=False),
        sa.Column("num_gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_ram_gb", sa.Float(), nullable=False),
        sa.Column("dph_total", sa.Float(), nullable=False),
        sa.Column("disk_gb", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status_msg", sa.Text(), nullable=True),
        sa.Column("request_key", sa.String(200), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("web_password", sa.String(200), nullable=True),
        sa.Column("public_ip", sa.String(64), nullable=True),
        sa.Column("ports_json", sa.Text(), nullable=True),
        sa.Column("ssh_host", sa.String(255), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("provisioning_at"),
        _ts("ready_at"),
        _ts("ready_notified_at"),
        _ts("stopped_at"),
        _ts("destroyed_at"),
        _ts("failed_at"),
        sa.Column("ready_seconds", sa.Float(), nullable=False),
        sa.Column("stopped_seconds", sa.Float(), nullable=False),
        _ts("last_state_change_at", nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("instance_id", name=op.f("uq_deployments_instance_id")),
        sa.UniqueConstraint("request_key", name=op.f("uq_deployments_request_key")),
    )
    op.create_index("ix_deployments_status", "deployments", ["status"])
    op.create_index("ix_deployments_team_user", "deployments", ["team_id", "user_id"])
    op.create_table(
        "deployment_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        _ts("at", nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_events_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    op.create_index(
        op.f("ix_deployment_events_deployment_id"), "deployment_events", ["deployment_id"]
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        _ts("expires_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index(op.f("ix_deployment_events_deployment_id"), table_name="deployment_events")
    op.drop_table("deployment_events")
    op.drop_index("ix_deployments_team_user", table_name="deployments")
    op.drop_index("ix_deployments_status", table_name="deployments")
    op.drop_table("deployments")
