"""Data migrations on SQLite and PostgreSQL: a database at an old revision, filled with rows the
way that revision's code wrote them, upgraded to head (``storage.migrate``) keeps every row and
converts the data."""

from __future__ import annotations

from collections.abc import Mapping
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


def test_0003_fills_from_and_to_status_from_the_detail_text(empty_database_url: str) -> None:
    engine = storage.make_engine(empty_database_url)
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


def test_0003_downgrade_drops_the_columns_and_keeps_the_events(empty_database_url: str) -> None:
    engine = storage.make_engine(empty_database_url)
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
    empty_database_url: str,
) -> None:
    """Deployments from before lifetimes keep running as before (no end time, nothing due), and
    dropping the columns again (a plain ALTER, not SQLite's copy-and-drop of the table) keeps
    every event: ON DELETE CASCADE would otherwise take them with the old table."""
    engine = storage.make_engine(empty_database_url)
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
    empty_database_url: str,
) -> None:
    """Existing deployments start with an up-to-date message (no mark); the mark can be set,
    listed and cleared at head; dropping the column again keeps every event (plain ALTER)."""
    engine = storage.make_engine(empty_database_url)
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


BEFORE_WORKSPACES = "0006_message_stale_since"
_OAUTH_TABLES = ("slack_installations", "slack_bots", "slack_oauth_states")


def test_0007_makes_a_workspace_of_each_team_and_downgrades_keeping_events(
    empty_database_url: str,
) -> None:
    """Each team that made deployments becomes one ``workspaces`` row (not installed by OAuth,
    no key, no settings); deployments get no Enterprise Grid id; down removes the table, the
    column and slack_sdk's tables and keeps every event; up again does the same conversion."""
    engine = storage.make_engine(empty_database_url)
    try:
        _upgrade(engine, BEFORE_EVENT_COLUMNS)
        dep_id, inserted = _fill_at_0002(engine)
        with engine.begin() as conn:
            for i, team in enumerate(["T0GPU0002", "T0GPU0001", "", "T0GPU0002"], start=2):
                _insert(
                    conn,
                    _deployments,
                    {
                        **DEPLOYMENT,
                        "team_id": team,
                        "instance_id": 9000 + i,
                        "request_key": f"view-old-{i}",
                    },
                )
        _upgrade(engine, BEFORE_WORKSPACES)
        assert "workspaces" not in inspect(engine).get_table_names()
        before = datetime.now(UTC)

        storage.migrate(engine)

        sf = storage.make_session_factory(engine)
        workspaces = storage.list_workspaces(sf)
        assert [w.team_id for w in workspaces] == ["T0GPU0001", "T0GPU0002"]
        for ws in workspaces:
            assert (ws.enterprise_id, ws.team_name, ws.installed_at, ws.uninstalled_at) == (
                None,
                None,
                None,
                None,
            )
            assert ws.settings == {} and not ws.has_vast_key and ws.is_installed
            assert before - timedelta(seconds=5) <= ws.updated_at <= datetime.now(UTC)
        dep = repo.get_deployment(sf, dep_id)
        assert dep is not None and dep.team_id == "T0GPU0001"
        with engine.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT COUNT(*) FROM deployments WHERE enterprise_id IS NOT NULL")
                ).scalar_one()
                == 0
            )
        assert set(_OAUTH_TABLES) <= set(inspect(engine).get_table_names())
        # The new rows are ordinary workspaces at head.
        storage.save_workspace_settings(sf, "T0GPU0001", {"n": 1}, actor="U0ADMIN01", now=T0)

        _downgrade(engine, BEFORE_WORKSPACES)
        tables = set(inspect(engine).get_table_names())
        assert not {"workspaces", *_OAUTH_TABLES} & tables
        assert "enterprise_id" not in {
            c["name"] for c in inspect(engine).get_columns("deployments")
        }
        assert len(repo.list_events(sf, dep_id)) == len(inserted)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM deployments")).scalar_one() == 5

        storage.migrate(engine)
        assert storage.current_revision(engine) == storage.head_revision()
        assert [(w.team_id, w.settings) for w in storage.list_workspaces(sf)] == [
            ("T0GPU0001", {}),
            ("T0GPU0002", {}),
        ]
    finally:
        engine.dispose()


def _slack_tables() -> list[sa.Table]:
    """The tables slack_sdk's SQLAlchemy stores build for themselves (their ``create_tables``)."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    meta = sa.MetaData()
    return [
        SQLAlchemyInstallationStore.build_installations_table(meta, "slack_installations"),
        SQLAlchemyInstallationStore.build_bots_table(meta, "slack_bots"),
        SQLAlchemyOAuthStateStore.build_oauth_states_table(meta, "slack_oauth_states"),
    ]


def _compatible(column: sa.Column[Any], reflected: Mapping[str, Any], dialect: str) -> list[str]:
    """What differs between slack_sdk's ``column`` and the migrated database's column."""
    want, got = column.type, reflected["type"]
    problems = []
    if got.python_type is not want.python_type:
        problems.append(f"type {got} for {want}")
    # TEXT (no length) holds any string: the token columns are TEXT (0009, encrypted tokens).
    length = getattr(got, "length", None)
    if isinstance(want, sa.String) and length is not None and length < (want.length or 0):
        problems.append(f"length {length} < {want.length}")
    # slack_sdk binds and compares naive UTC values (normalize_datetime_for_db).
    naive = not getattr(got, "timezone", False)
    if isinstance(want, sa.DateTime) and dialect == "postgresql" and not naive:
        problems.append("timestamp with time zone")
    if bool(reflected["nullable"]) != bool(column.nullable):
        problems.append(f"nullable {reflected['nullable']}")
    return problems


def test_0007_builds_slack_sdks_oauth_tables_as_its_stores_define_them(engine: Engine) -> None:
    """Every column slack_sdk 3.x's installation and state stores define is in the migrated
    database, with a compatible type, nullability, primary key and index."""
    inspector = inspect(engine)
    for table in _slack_tables():
        reflected = {c["name"]: c for c in inspector.get_columns(table.name)}
        for column in table.columns:
            assert column.name in reflected, f"{table.name}.{column.name} is missing"
            problems = _compatible(column, reflected[column.name], engine.dialect.name)
            assert not problems, f"{table.name}.{column.name}: {problems}"
        pk = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert pk == [c.name for c in table.primary_key.columns]
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            assert indexes.get(index.name) == [c.name for c in index.columns], index.name


def test_slack_sdks_stores_work_on_the_migrated_database(engine: Engine) -> None:
    """slack_sdk's own SQLAlchemyInstallationStore and SQLAlchemyOAuthStateStore, on the bot's
    engine after ``storage.migrate`` (no ``create_tables``): a workspace install with token
    rotation, an org-wide (Enterprise Grid) install, a rotated token saved again, a removal;
    OAuth states issued and consumed once."""
    from slack_sdk.oauth.installation_store import Installation
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    store = SQLAlchemyInstallationStore(client_id="111.222", engine=engine)
    team_install = Installation(
        app_id="A0APP0001",
        team_id="T0AAAAAAA",
        team_name="Acme",
        bot_token="xoxe.xoxb-1-acme",
        bot_id="B0ACME001",
        bot_user_id="U0BOTACME",
        bot_scopes="commands,chat:write",
        bot_refresh_token="xoxe-1-refresh-acme",
        bot_token_expires_in=43200,
        user_id="U0ADMIN01",
        token_type="bot",
        installed_at=T0.timestamp(),
    )
    org_install = Installation(
        app_id="A0APP0001",
        enterprise_id="E0GRID001",
        enterprise_name="Grid Co",
        enterprise_url="https://gridco.enterprise.slack.com/",
        bot_token="xoxb-org-token",
        bot_id="B0GRID001",
        bot_user_id="U0BOTGRID",
        bot_scopes=["commands", "chat:write"],
        user_id="W0ORGADMIN",
        user_token="xoxp-org-user",
        user_scopes="identify",
        is_enterprise_install=True,
        token_type="bot",
    )
    store.save(team_install)
    store.save(org_install)

    found = store.find_installation(enterprise_id=None, team_id="T0AAAAAAA")
    assert found is not None
    assert (found.bot_token, found.bot_refresh_token, found.team_name) == (
        "xoxe.xoxb-1-acme",
        "xoxe-1-refresh-acme",
        "Acme",
    )
    assert found.bot_scopes == ["commands", "chat:write"]
    assert found.bot_token_expires_at == team_install.bot_token_expires_at
    assert found.installed_at == pytest.approx(T0.timestamp())
    org = store.find_installation(
        enterprise_id="E0GRID001", team_id="T0MEMBER1", is_enterprise_install=True
    )
    assert org is not None and org.is_enterprise_install
    assert (org.bot_token, org.team_id, org.user_token) == ("xoxb-org-token", None, "xoxp-org-user")
    bot = store.find_bot(enterprise_id="E0GRID001", team_id=None, is_enterprise_install=True)
    assert bot is not None and bot.bot_token == "xoxb-org-token"
    assert store.find_installation(enterprise_id=None, team_id="T0OTHER01") is None

    # Token rotation: the rotated bot is saved over the same install (same installed_at).
    rotated = store.find_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert rotated is not None and rotated.bot_token_expires_at is not None
    rotated.bot_token = "xoxe.xoxb-2-acme"
    rotated.bot_refresh_token = "xoxe-2-refresh-acme"
    store.save_bot(rotated)
    again = store.find_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert again is not None
    assert (again.bot_token, again.bot_refresh_token) == ("xoxe.xoxb-2-acme", "xoxe-2-refresh-acme")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM slack_bots")).scalar_one() == 2

    store.delete_installation(enterprise_id=None, team_id="T0AAAAAAA")
    store.delete_bot(enterprise_id=None, team_id="T0AAAAAAA")
    assert store.find_installation(enterprise_id=None, team_id="T0AAAAAAA") is None
    assert store.find_bot(enterprise_id=None, team_id="T0AAAAAAA") is None
    assert store.find_bot(enterprise_id="E0GRID001", team_id=None, is_enterprise_install=True)

    states = SQLAlchemyOAuthStateStore(expiration_seconds=600, engine=engine)
    state = states.issue()
    assert states.consume(state) is True
    assert states.consume(state) is False  # once
    assert states.consume("never-issued") is False
    expired = SQLAlchemyOAuthStateStore(expiration_seconds=-1, engine=engine).issue()
    assert states.consume(expired) is False


BEFORE_SECRET_COLUMNS = "0008_desired_state"
_TOKEN_COLUMNS = {
    "slack_installations": (
        "bot_token",
        "bot_refresh_token",
        "user_token",
        "user_refresh_token",
        "incoming_webhook_url",
    ),
    "slack_bots": ("bot_token", "bot_refresh_token"),
}


def _bot_row(token: str) -> dict[str, Any]:
    return {
        "client_id": "111.222",
        "app_id": "A0APP0001",
        "team_id": "T0AAAAAAA",
        "bot_token": token,
        "bot_refresh_token": token,
        "is_enterprise_install": False,
        "installed_at": datetime(2026, 12, 8, 9, 0),
    }


def test_0009_makes_slacks_token_columns_text_for_encrypted_tokens(empty_database_url: str) -> None:
    """An encrypted rotating token (~300 characters) fits after 0009 (PostgreSQL refuses it in
    VARCHAR(200)); the rows are kept both ways; down gives VARCHAR(200) back."""
    engine = storage.make_engine(empty_database_url)
    bots = sa.table(
        "slack_bots",
        *(sa.column(c) for c in _bot_row("x")),
    )
    try:
        _upgrade(engine, BEFORE_SECRET_COLUMNS)
        with engine.begin() as conn:
            conn.execute(bots.insert().values(**_bot_row("xoxb-short-token")))
        storage.migrate(engine)
        for table, columns in _TOKEN_COLUMNS.items():
            reflected = {c["name"]: c["type"] for c in inspect(engine).get_columns(table)}
            for column in columns:
                assert getattr(reflected[column], "length", None) is None, (table, column)
        long_token = "gAAAAA" + "x" * 400
        with engine.begin() as conn:
            conn.execute(bots.insert().values(**_bot_row(long_token)))
            stored = conn.execute(sa.text("SELECT bot_token FROM slack_bots ORDER BY id")).all()
        assert [r[0] for r in stored] == ["xoxb-short-token", long_token]
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM slack_bots WHERE bot_token <> 'xoxb-short-token'"))
        _downgrade(engine, BEFORE_SECRET_COLUMNS)
        reflected = {c["name"]: c["type"] for c in inspect(engine).get_columns("slack_bots")}
        assert getattr(reflected["bot_token"], "length", None) == 200
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT bot_token FROM slack_bots")).scalar_one() == (
                "xoxb-short-token"
            )
        storage.migrate(engine)
        assert storage.current_revision(engine) == storage.head_revision()
    finally:
        engine.dispose()
