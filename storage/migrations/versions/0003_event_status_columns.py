"""Status events carry their change in columns: ``from_status``/``to_status``.

Before, ``storage.repo`` recorded a status change only as the text ``"old -> new"`` in
``detail`` and readers parsed it back. The upgrade adds the two nullable ``String(16)`` columns
and fills them from that text for existing ``status`` events (rows whose text does not name two
known statuses are left NULL); ``detail`` is kept as it is. The downgrade drops the columns.

Revision ID: 0003_event_status_columns
Revises: 0002_secrets_sent_at
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_event_status_columns"
down_revision: str | None = "0002_secrets_sent_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: ``DeploymentStatus`` values as of this revision (a migration does not import the models,
#: which keep changing after it).
_STATUSES = frozenset(
    {
        "creating",
        "provisioning",
        "ready",
        "stopped",
        "failed",
        "destroyed",
        "pending_approval",
        "denied",
        "expired",
    }
)

_events = sa.table(
    "deployment_events",
    sa.column("id", sa.Integer()),
    sa.column("action", sa.String(32)),
    sa.column("detail", sa.Text()),
    sa.column("from_status", sa.String(16)),
    sa.column("to_status", sa.String(16)),
)


def _parse(detail: str | None) -> tuple[str, str] | None:
    """``"old -> new"`` → ``(old, new)`` when both are known statuses, else None."""
    if not detail or "->" not in detail:
        return None
    old, new = (part.strip() for part in detail.split("->", 1))
    if old in _STATUSES and new in _STATUSES:
        return old, new
    return None


def upgrade() -> None:
    with op.batch_alter_table("deployment_events") as batch:
        batch.add_column(sa.Column("from_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("to_status", sa.String(16), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_events.c.id, _events.c.detail).where(_events.c.action == "status")
    )
    changes = [
        {"event_id": event_id, "old": parsed[0], "new": parsed[1]}
        for event_id, detail in rows
        if (parsed := _parse(detail)) is not None
    ]
    if changes:
        connection.execute(
            _events.update()
            .where(_events.c.id == sa.bindparam("event_id"))
            .values(from_status=sa.bindparam("old"), to_status=sa.bindparam("new")),
            changes,
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment_events") as batch:
        batch.drop_column("to_status")
        batch.drop_column("from_status")
