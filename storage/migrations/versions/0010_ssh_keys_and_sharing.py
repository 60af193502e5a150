"""People's SSH keys, the keys attached to each instance, and who a deployment is shared with.

* ``ssh_keys``: each person's OpenSSH public keys, per workspace (``team_id``, ``user_id``),
  unique by SHA256 fingerprint. Public keys only: private keys are refused before storage.
* ``deployment_collaborators``: the teammates a deployment is shared with (the owner stays
  ``deployments.user_id``); a row exists while they have access.
* ``instance_keys``: one row per (deployment, key fingerprint) the bot wants on the instance
  or has attached: ``state`` is ``attach`` (wanted, not yet confirmed by Vast.ai),
  ``attached``, ``detach`` (to be removed), ``detached``, or ``kept`` (could not be removed:
  stays until the instance is destroyed). ``next_try_at`` is the reconciler's work list, as
  ``deployments.desired_next_try_at`` is for stop/start/destroy.

Revision ID: 0010_ssh_keys_and_sharing
Revises: 0009_secret_columns
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ssh_keys_and_sharing"
down_revision: str | None = "0009_secret_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ssh_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("key_type", sa.String(32), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("comment", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ssh_keys"),
        sa.UniqueConstraint(
            "team_id", "user_id", "fingerprint", name="uq_ssh_keys_team_user_fingerprint"
        ),
    )
    op.create_index("ix_ssh_keys_team_user", "ssh_keys", ["team_id", "user_id"])
    op.create_table(
        "deployment_collaborators",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("added_by", sa.String(32), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_dm_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_deployment_collaborators_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deployment_id", "user_id", name="pk_deployment_collaborators"),
    )
    op.create_index("ix_deployment_collaborators_user_id", "deployment_collaborators", ["user_id"])
    op.create_table(
        "instance_keys",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("vast_key_id", sa.String(64), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name="fk_instance_keys_deployment_id_deployments",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_instance_keys"),
        sa.UniqueConstraint(
            "deployment_id", "fingerprint", name="uq_instance_keys_deployment_fingerprint"
        ),
    )
    op.create_index("ix_instance_keys_next_try_at", "instance_keys", ["next_try_at"])


def downgrade() -> None:
    op.drop_index("ix_instance_keys_next_try_at", table_name="instance_keys")
    op.drop_table("instance_keys")
    op.drop_index("ix_deployment_collaborators_user_id", table_name="deployment_collaborators")
    op.drop_table("deployment_collaborators")
    op.drop_index("ix_ssh_keys_team_user", table_name="ssh_keys")
    op.drop_table("ssh_keys")
