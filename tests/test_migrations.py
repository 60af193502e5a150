"""Data migrations on SQLite and PostgreSQL: a database at an old revision, filled with rows the
way that revision's code wrote them, upgraded to head (``storage.migrate``) keeps every row and
converts the data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, inspect

import storage
from bot import pricing as costs
from storage import DeploymentStatus, repo
from storage.db import SQLITE_IMMEDIATE, alembic_config
from storage.types import UTCDateTime

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
BEFORE_EVENT_COLUMNS = "0002_secrets_sent_at"

#: ``deployments`` and ``deployment_events`` as revision 0002 has them (not the models: those
#: follow head).
_meta = sa.MetaData()
_deployments = sa.Table(
    "deployments",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.String(32)),
    sa.Column("user_id", sa.String(32)),
    sa.Column("channel_id", sa.String(32)),
    sa.Column("template_slug", sa.String(64)),
    sa.Column("template_name", sa.String(200)),
    sa.Column("offer_id", sa.Integer),
    sa.Column("instance_id", sa.Integer),
    sa.Column("gpu_name", sa.String(100)),
    sa.Column("num_gpus", sa.Integer),
    sa.Column("gpu_ram_gb", sa.Float),
    sa.Column("dph_total", sa.Float),
    sa.Column("disk_gb", sa.Float),
    sa.Column("status", sa.String(16)),
    sa.Column("request_key", sa.String(200)),
    sa.Column("simulated", sa.Boolean),
    sa.Column("created_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
    sa.Column("provisioning_at", UTCDateTime),
    sa.Column("ready_at", UTCDateTime),
    sa.Column("stopped_at", UTCDateTime),
    sa.Column("ready_seconds", sa.Float),
    sa.Column("stopped_seconds", sa.Float),
    sa.Column("last_state_change_at", UTCDateTime),
    sa.Column("version", sa.Integer),
)
_events = sa.Table(
    "deployment_events",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("deployment_id", sa.Integer),
    sa.Column("at", UTCDateTime),
    sa.Column("actor", sa.String(32)),
    sa.Column("action", sa.String(32)),
    sa.Column("detail", sa.Text),
)

DEPLOYMENT: dict[str, Any] = {
    "team_id": "T0GPU0001",
    "user_id": "U0ALICE01",
    "channel_id": "C0DEPLOYS1",
    "template_slug": "jupyter-lab",
    "template_name": "JupyterLab",
    "offer_id": 4242,
    "instance_id": 9001,
    "gpu_name": "RTX 4090",
    "num_gpus": 1,
    "gpu_ram_gb": 24.0,
    "dph_total": 0.5,
    "disk_gb": 60.0,
    "status": "stopped",
    "request_key": "view-old-1",
    "simulated": False,
    "created_at": T0,
    "updated_at": T0 + timedelta(hours=3),
    "provisioning_at": T0 + timedelta(minutes=5),
    "ready_at": T0 + timedelta(minutes=10),
    "stopped_at": T0 + timedelta(hours=2, minutes=10),
    "ready_seconds": 7200.0,
    "stopped_seconds": 0.0,
    "last_state_change_at": T0 + timedelta(hours=2, minutes=10),
    "version": 6,
}

#: (action, detail, expected from_status, expected to_status), in order, as 0002's code wrote
#: them; the last three are not status changes although their text may look like one.
EVENTS: list[tuple[str, str | None, str | None, str | None]] = [
    ("requested", "jupyter-lab on offer 4242", None, None),
    ("created", "instance 9001", None, None),
    ("status", "creating -> provisioning", "creating", "provisioning"),
    ("status", "provisioning -> ready", "provisioning", "ready"),
    ("notified", None, None, None),
    ("stop", "ready -> stopped", None, None),
    ("status", "ready -> stopped", "ready", "stopped"),
    ("status", "ready -> running", None, None),
]


def _upgrade(engine: Engine, revision: str) -> None:
    """``command.upgrade`` to ``revision`` over one connection, as ``storage.migrate`` does."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{SQLITE_IMMEDIATE: True})
        with connection.begin():
            command.upgrade(alembic_config(connection), revision)


def _downgrade(engine: Engine, revision: str) -> None:
    with engine.connect() as connection:
        connection = connection.execution_options(**{SQLITE_IMMEDIATE: True})
        with connection.begin():
            command.downgrade(alembic_config(connection), revision)


def _insert(conn: sa.Connection, table: sa.Table, values: dict[str, Any]) -> int:
    """Insert one row; return the id the database gave it."""
    key = conn.execute(table.insert().values(values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _fill_at_0002(engine: Engine) -> tuple[int, list[dict[str, Any]]]:
    """Insert :data:`DEPLOYMENT` and :data:`EVENTS` one row at a time (ids from the database,
    so its sequences stay right); return the deployment id and the event rows with their ids."""
    with engine.begin() as conn:
        dep_id = _insert(conn, _deployments, DEPLOYMENT)
    rows = [
        {
            "deployment_id": dep_id,
            "at": T0 + timedelta(minutes=5 * i),
            "actor": "U0ALICE01" if action in ("requested", "stop") else "system",
            "action": action,
            "detail": detail,
        }
        for i, (action, detail, _, _) in enumerate(EVENTS)
    ]
    # The stop happened at 2 h 10 min (the status events carry the times that matter for cost).
    rows[2]["at"] = T0 + timedelta(minutes=5)
    rows[3]["at"] = T0 + timedelta(minutes=10)
    rows[5]["at"] = rows[6]["at"] = T0 + timedelta(hours=2, minutes=10)
    rows[7]["at"] = T0 + timedelta(hours=3)
    with engine.begin() as conn:
        for row in rows:
            row["id"] = _insert(conn, _events, row)
    return dep_id, rows


def _event_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("deployment_events")}


def test_0003_fills_from_and_to_status_from_the_detail_text(database_url: str) -> None:
    engine = storage.make_engine(database_url)
    try:
        _upgrade(engine, BEFORE_EVENT_COLUMNS)
        assert storage.current_revision(engine) == BEFORE_EVENT_COLUMNS
        assert not {"from_status", "to_status"} & _event_columns(engine)
        dep_id, inserted = _fill_at_0002(engine)

        storage.migrate(engine)

        assert storage.current_revision(engine) == storage.head_revision()
        assert {"from_status", "to_status"} <= _event_columns(engine)
        sf = storage.make_session_factory(engine)
        # The deployment is intact and reads back typed.
        dep = repo.get_deployment(sf, dep_id)
        assert dep is not None
        assert {name: getattr(dep, name) for name in DEPLOYMENT} == DEPLOYMENT
        assert dep.status is DeploymentStatus.STOPPED
        # Every event is intact, in order, with the status change in its own columns.
        events = repo.list_events(sf, dep_id)
        assert [
            {
                "id": e.id,
                "deployment_id": e.deployment_id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "detail": e.detail,
            }
            for e in events
        ] == inserted
        assert [(e.from_status, e.to_status) for e in events] == [
            (old, new) for _, _, old, new in EVENTS
        ]
        typed = [s for e in events for s in (e.from_status, e.to_status) if s is not None]
        assert typed and all(isinstance(s, DeploymentStatus) for s in typed)
        # Stored as the plain strings (no native enum type); NULL for the other events.
        with engine.connect() as conn:
            raw = conn.execute(
                sa.text(
                    "SELECT action, detail, from_status, to_status FROM deployment_events "
                    "ORDER BY id"
                )
            ).all()
        assert [tuple(row) for row in raw] == list(EVENTS)
        # The old history costs what it cost before: 2 h ready at $0.50, then stopped.
        now = T0 + timedelta(hours=4, minutes=10)
        periods = costs.periods_from_events(dep, events, now)
        assert [(p.status, p.seconds) for p in periods] == [
            ("creating", 300.0),
            ("provisioning", 300.0),
            ("ready", 7200.0),
            ("stopped", 7200.0),
        ]
        assert costs.cost_in_window(dep, periods, T0, now) == pytest.approx(
            costs.cost_so_far(dep, now)
        )
        # New status changes write the columns too.
        assert repo.update_status(
            sf,
            dep.id,
            expected_status=DeploymentStatus.STOPPED,
            new_status=DeploymentStatus.READY,
            now=now,
        )
        last = repo.list_events(sf, dep.id)[-1]
        assert (last.action, last.from_status, last.to_status) == ("status", "stopped", "ready")
    finally:
        engine.dispose()


def test_0003_downgrade_drops_the_columns_and_keeps_the_events(database_url: str) -> None:
    engine = storage.make_engine(database_url)
    try:
        _upgrade(engine, BEFORE_EVENT_COLUMNS)
        dep_id, inserted = _fill_at_0002(engine)
        storage.migrate(engine)
        _downgrade(engine, BEFORE_EVENT_COLUMNS)
        assert storage.current_revision(engine) == BEFORE_EVENT_COLUMNS
        assert not {"from_status", "to_status"} & _event_columns(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(_events).order_by(_events.c.id)).mappings().all()
        assert [dict(row) for row in rows] == inserted
        # And up again: the same conversion.
        storage.migrate(engine)
        events = repo.list_events(storage.make_session_factory(engine), dep_id)
        assert [(e.from_status, e.to_status) for e in events] == [
            (old, new) for _, _, old, new in EVENTS
        ]
    finally:
        engine.dispose()


BEFORE_LIFETIMES = "0003_event_status_columns"


def test_0004_leaves_existing_deployments_without_an_end_and_downgrades_keeping_events(
    database_url: str,
) -> None:
    """Deployments from before lifetimes keep running as before (no end time, nothing due), and
    dropping the columns again (a plain ALTER, not SQLite's copy-and-drop of the table) keeps
    every event: ON DELETE CASCADE would otherwise take them with the old table."""
    engine = storage.make_engine(database_url)
    try:
        _upgrade(engine, BEFORE_EVENT_COLUMNS)
        dep_id, inserted = _fill_at_0002(engine)
        _upgrade(engine, BEFORE_LIFETIMES)
        storage.migrate(engine)
        sf = storage.make_session_factory(engine)
        dep = repo.get_deployment(sf, dep_id)
        assert dep is not None
        assert (dep.ends_at, dep.lifetime_hours, dep.idle_since) == (None, None, None)
        assert storage.claim(sf, "digest:2026-12-02") and not storage.claim(sf, "digest:2026-12-02")
        _downgrade(engine, BEFORE_LIFETIMES)
        assert "ends_at" not in {c["name"] for c in inspect(engine).get_columns("deployments")}
        assert "claims" not in inspect(engine).get_table_names()
        assert len(repo.list_events(sf, dep_id)) == len(inserted)
        storage.migrate(engine)
        assert storage.current_revision(engine) == storage.head_revision()
    finally:
        engine.dispose()


BEFORE_STALE_MARK = "0005_budgets"


def test_0006_adds_message_stale_since_unset_and_downgrades_keeping_events(
    database_url: str,
) -> None:
    """Existing deployments start with an up-to-date message (no mark); the mark can be set,
    listed and cleared at head; dropping the column again keeps every event (plain ALTER)."""
    engine = storage.make_engine(database_url)
    try:
        _upgrade(engine, BEFORE_EVENT_COLUMNS)
        dep_id, inserted = _fill_at_0002(engine)
        _upgrade(engine, BEFORE_STALE_MARK)
        storage.migrate(engine)
        sf = storage.make_session_factory(engine)
        dep = repo.get_deployment(sf, dep_id)
        assert dep is not None and dep.message_stale_since is None
        storage.set_message(sf, dep_id, "C0DEPLOYS1", "1732900000.000001", now=T0)
        dep = repo.get_deployment(sf, dep_id)
        assert dep is not None
        storage.mark_message_stale(sf, dep_id, T0)
        storage.mark_message_stale(sf, dep_id, T0 + timedelta(minutes=1))  # the latest edit
        stale = storage.list_stale_messages(sf)
        assert [(d.id, d.message_stale_since) for d in stale] == [
            (dep_id, T0 + timedelta(minutes=1))
        ]
        assert not storage.clear_message_stale(sf, dep_id, T0)  # an edit from before
        assert storage.clear_message_stale(sf, dep_id, T0 + timedelta(minutes=1))
        assert storage.list_stale_messages(sf) == []
        _downgrade(engine, BEFORE_STALE_MARK)
        columns = {c["name"] for c in inspect(engine).get_columns("deployments")}
        assert "message_stale_since" not in columns
        assert len(repo.list_events(sf, dep_id)) == len(inserted)
        storage.migrate(engine)
        assert storage.current_revision(engine) == storage.head_revision()
    finally:
        engine.dispose()
