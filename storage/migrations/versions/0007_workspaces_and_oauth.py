"""Many workspaces: a row per workspace with its own settings and Vast.ai key, the workspace's
Enterprise Grid id on deployments, and slack_sdk's OAuth tables (installations, bots, states).

Existing deployments belong to the workspace that made them: one ``workspaces`` row per
distinct ``deployments.team_id`` (``installed_at`` NULL: known from single-workspace mode, not
installed by OAuth). The slack_sdk tables are written out here column by column as
slack_sdk 3.x's ``SQLAlchemyInstallationStore.build_installations_table`` /
``build_bots_table`` and ``SQLAlchemyOAuthStateStore.build_oauth_states_table`` define them
(naive UTC ``DateTime``, client-side defaults only), so this revision never changes with
slack_sdk; a test checks that they still match.

Revision ID: 0007_workspaces_and_oauth
Revises: 0006_message_stale_since
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007_workspaces_and_oauth"
down_revision: str | None = "0006_message_stale_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("team_name", sa.String(200), nullable=True),
        sa.Column("vast_key_ciphertext", sa.Text(), nullable=True),
        sa.Column("vast_key_last4", sa.String(8), nullable=True),
        sa.Column("vast_user_id", sa.String(32), nullable=True),
        sa.Column("vast_key_set_by", sa.String(32), nullable=True),
        sa.Column("vast_key_set_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settings_json", sa.Text(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("uninstalled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_workspaces")),
    )
    # Plain ALTER TABLE ... ADD COLUMN on both databases (no batch copy of deployments: ON
    # DELETE CASCADE would take every event with the old table).
    op.add_column("deployments", sa.Column("enterprise_id", sa.String(32), nullable=True))

    op.create_table(
        "slack_installations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("enterprise_name", sa.String(200), nullable=True),
        sa.Column("enterprise_url", sa.String(200), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("team_name", sa.String(200), nullable=True),
        sa.Column("bot_token", sa.String(200), nullable=True),
        sa.Column("bot_id", sa.String(32), nullable=True),
        sa.Column("bot_user_id", sa.String(32), nullable=True),
        sa.Column("bot_scopes", sa.String(1000), nullable=True),
        sa.Column("bot_refresh_token", sa.String(200), nullable=True),
        sa.Column("bot_token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("user_token", sa.String(200), nullable=True),
        sa.Column("user_scopes", sa.String(1000), nullable=True),
        sa.Column("user_refresh_token", sa.String(200), nullable=True),
        sa.Column("user_token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("incoming_webhook_url", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_channel", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_channel_id", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_configuration_url", sa.String(200), nullable=True),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("token_type", sa.String(32), nullable=True),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_installations")),
    )
    op.create_index(
        "slack_installations_idx",
        "slack_installations",
        ["client_id", "enterprise_id", "team_id", "user_id", "installed_at"],
    )
    op.create_table(
        "slack_bots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("enterprise_name", sa.String(200), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("team_name", sa.String(200), nullable=True),
        sa.Column("bot_token", sa.String(200), nullable=True),
        sa.Column("bot_id", sa.String(32), nullable=True),
        sa.Column("bot_user_id", sa.String(32), nullable=True),
        sa.Column("bot_scopes", sa.String(1000), nullable=True),
        sa.Column("bot_refresh_token", sa.String(200), nullable=True),
        sa.Column("bot_token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_bots")),
    )
    op.create_index(
        "slack_bots_idx", "slack_bots", ["client_id", "enterprise_id", "team_id", "installed_at"]
    )
    op.create_table(
        "slack_oauth_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_oauth_states")),
    )

    # Existing deployments: each team that made one becomes a workspace (not OAuth-installed).
    deployments = sa.table("deployments", sa.column("team_id", sa.String(32)))
    workspaces = sa.table(
        "workspaces",
        sa.column("team_id", sa.String(32)),
        sa.column("settings_json", sa.Text()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    known = (
        sa.select(
            deployments.c.team_id,
            sa.literal("{}", sa.Text()),
            sa.literal(now, sa.DateTime(timezone=True)),
        )
        .where(deployments.c.team_id.is_not(None), deployments.c.team_id != "")
        .distinct()
    )
    op.execute(workspaces.insert().from_select(["team_id", "settings_json", "updated_at"], known))


def downgrade() -> None:
    op.drop_table("slack_oauth_states")
    op.drop_index("slack_bots_idx", table_name="slack_bots")
    op.drop_table("slack_bots")
    op.drop_index("slack_installations_idx", table_name="slack_installations")
    op.drop_table("slack_installations")
    with op.batch_alter_table("deployments", recreate="never") as batch:
        batch.drop_column("enterprise_id")
    op.drop_table("workspaces")
