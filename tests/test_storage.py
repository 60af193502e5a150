"""Storage: migrations, engine settings, repository semantics and races on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import (
    Base,
    Deployment,
    DeploymentEvent,
    DeploymentNotFoundError,
    DeploymentRecord,
    DeploymentStatus,
    InstanceAlreadyAttachedError,
    repo,
)

SF = sessionmaker[Session]
T = TypeVar("T")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def _new(sf: SF, key: str = "view-1", **overrides: Any) -> DeploymentRecord:
    fields: dict[str, Any] = {
        "request_key": key,
        "team_id": "T1",
        "user_id": "U1",
        "channel_id": "C1",
        "template_slug": "jupyter-lab",
        "template_name": "JupyterLab",
        "offer_id": 4242,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "gpu_ram_gb": 24.0,
        "dph_total": 0.4,
        "disk_gb": 32.0,
        "simulated": True,
        "now": T0,
    }
    fields.update(overrides)
    record, created = repo.create_deployment(sf, **fields)
    assert created
    return record


def _race(n: int, fn: Callable[[int], T]) -> list[T]:
    """Run ``fn(i)`` for i in range(n) on n threads released together by a barrier."""
    barrier = threading.Barrier(n, timeout=30)

    def run(i: int) -> T:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


# --- engine and migrations ---------------------------------------------------------------


def test_migrate_from_empty_is_idempotent(empty_database_url: str) -> None:
    engine = storage.make_engine(empty_database_url)
    try:
        assert storage.current_revision(engine) is None
        storage.migrate(engine)
        storage.migrate(engine)
        storage.migrate(empty_database_url)  # the URL form opens and disposes its own engine
        assert storage.current_revision(engine) == storage.head_revision() is not None
        tables = set(inspect(engine).get_table_names())
        assert {"deployments", "deployment_events", "leases", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_concurrent_migrate_from_two_processes(empty_database_url: str) -> None:
    code = "import sys, storage; storage.migrate(sys.argv[1])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, empty_database_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    engine = storage.make_engine(empty_database_url)
    try:
        assert storage.current_revision(engine) == storage.head_revision()
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    finally:
        engine.dispose()


def test_default_url_is_sqlite_file_in_working_folder() -> None:
    assert storage.default_database_url() == "sqlite:///gpu_bot.db"


def test_postgres_engine_pings_pooled_connections() -> None:
    engine = storage.make_engine("postgresql+psycopg://u@127.0.0.1:1/db")
    assert engine.pool._pre_ping
    engine.dispose()


def test_ping(engine: Engine, tmp_path: Path) -> None:
    assert storage.ping(engine)
    bad = storage.make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert not storage.ping(bad)
    bad.dispose()


def test_foreign_keys_enforced(session_factory: SF) -> None:
    with pytest.raises(IntegrityError), session_factory() as session, session.begin():
        session.add(DeploymentEvent(deployment_id=999, at=T0, actor="system", action="x"))


def test_datetimes_read_back_aware_utc(session_factory: SF) -> None:
    plus_two = timezone(timedelta(hours=2))
    dep = _new(session_factory, now=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    again = repo.get_deployment(session_factory, dep.id)
    assert again is not None
    assert again.created_at == T0
    assert again.created_at.utcoffset() == timedelta(0)


def test_naive_datetime_rejected(session_factory: SF) -> None:
    with pytest.raises((ValueError, StatementError), match="naive"):
        _new(session_factory, now=datetime(2024, 5, 1, 12, 0))


# --- deployments ----------------------------------------------------------------------------


def test_create_deployment_twice_returns_existing(session_factory: SF) -> None:
    first = _new(session_factory)
    again, created = repo.create_deployment(
        session_factory, **{f: getattr(first, f) for f in _CREATE_FIELDS}
    )
    assert not created
    assert again == first
    assert first.status == "creating" and first.instance_id is None and first.version == 1
    assert [e.action for e in repo.list_events(session_factory, first.id)] == ["requested"]


_CREATE_FIELDS = [
    "request_key", "team_id", "user_id", "channel_id", "template_slug", "template_name",
    "offer_id", "gpu_name", "num_gpus", "gpu_ram_gb", "dph_total", "disk_gb", "simulated",
]  # fmt: skip


def test_create_deployment_concurrent_same_key_makes_one_row(
    database_url: str, session_factory: SF
) -> None:
    # Two engines stand for two processes; 4 threads each.
    other = storage.make_engine(database_url)
    try:
        factories = [session_factory, storage.make_session_factory(other)]
        results = _race(
            8,
            lambda i: repo.create_deployment(
                factories[i % 2],
                request_key="view-race",
                team_id="T1",
                user_id="U1",
                channel_id="C1",
                template_slug="vllm",
                template_name="vLLM",
                offer_id=1,
                gpu_name="A100",
                num_gpus=1,
                gpu_ram_gb=80.0,
                dph_total=1.2,
                disk_gb=64.0,
            ),
        )
    finally:
        other.dispose()
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert len({record.id for record, _ in results}) == 1
    assert len(repo.list_for_team(session_factory, "T1")) == 1


def test_claim_ready_notification_exactly_once(database_url: str, session_factory: SF) -> None:
    dep = _new(session_factory)
    other = storage.make_engine(database_url)
    try:
        factories = [session_factory, storage.make_session_factory(other)]
        claims = _race(8, lambda i: repo.claim_ready_notification(factories[i % 2], dep.id, T0))
    finally:
        other.dispose()
    assert sorted(claims) == [False] * 7 + [True]
    assert not repo.claim_ready_notification(session_factory, dep.id)
    after = repo.get_deployment(session_factory, dep.id)
    assert after is not None and after.ready_notified_at == T0
    actions = [e.action for e in repo.list_events(session_factory, dep.id)]
    assert actions.count("notified") == 1
    assert not repo.claim_ready_notification(session_factory, 12345)


def test_release_ready_notification_allows_a_new_claim(session_factory: SF) -> None:
    dep = _new(session_factory)
    assert repo.claim_ready_notification(session_factory, dep.id, T0)
    assert not repo.release_ready_notification(session_factory, dep.id, T0 + timedelta(1))
    assert repo.release_ready_notification(session_factory, dep.id, T0)
    assert repo.claim_ready_notification(session_factory, dep.id, T0 + timedelta(seconds=5))


def test_update_status_is_conditional(session_factory: SF) -> None:
    dep = _new(session_factory)
    t1 = T0 + timedelta(seconds=30)
    assert not repo.update_status(
        session_factory, dep.id, expected_status="provisioning", new_status="ready", now=t1
    )
    assert repo.get_deployment(session_factory, dep.id) == dep
    assert repo.update_status(
        session_factory,
        dep.id,
        expected_status="creating",
        new_status="provisioning",
        now=t1,
        status_msg="pulling image",
    )
    after = repo.get_deployment(session_factory, dep.id)
    assert after is not None
    assert (after.status, after.status_msg, after.provisioning_at) == (
        "provisioning",
        "pulling image",
        t1,
    )
    assert after.version == dep.version + 1 and after.last_state_change_at == t1
    assert after.status is DeploymentStatus.PROVISIONING  # typed, though given a bare string
    events = repo.list_events(session_factory, dep.id)
    last = events[-1]
    assert (last.action, last.from_status, last.to_status) == ("status", "creating", "provisioning")
    assert last.from_status is DeploymentStatus.CREATING
    assert last.to_status is DeploymentStatus.PROVISIONING
    assert last.detail == "creating -> provisioning"  # for people only


def test_update_status_race_has_one_winner(session_factory: SF) -> None:
    dep = _new(session_factory)
    won = _race(
        8,
        lambda i: repo.update_status(
            session_factory, dep.id, expected_status="creating", new_status="provisioning"
        ),
    )
    assert sorted(won) == [False] * 7 + [True]
    changes = [
        (e.from_status, e.to_status)
        for e in repo.list_events(session_factory, dep.id)
        if e.action == "status"
    ]
    assert changes == [(DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING)]


def test_update_status_rejects_unknown_status_and_fields(session_factory: SF) -> None:
    dep = _new(session_factory)
    with pytest.raises(ValueError, match="unknown deployment status"):
        repo.update_status(session_factory, dep.id, expected_status=None, new_status="running")
    with pytest.raises(TypeError, match="ready_seconds"):
        repo.update_status(
            session_factory, dep.id, expected_status=None, new_status="ready", ready_seconds=9.0
        )
    with pytest.raises(DeploymentNotFoundError):
        repo.update_status(session_factory, 999, expected_status=None, new_status="ready")


def test_ready_and_stopped_seconds_accumulate(session_factory: SF) -> None:
    dep = _new(session_factory)

    def move(old: str, new: str, at: datetime) -> None:
        assert repo.update_status(
            session_factory, dep.id, expected_status=old, new_status=new, now=at
        )

    ready1 = T0 + timedelta(minutes=2)
    move("creating", "provisioning", T0 + timedelta(minutes=1))
    move("provisioning", "ready", ready1)
    move("ready", "stopped", ready1 + timedelta(hours=1))
    move("stopped", "ready", ready1 + timedelta(hours=1, minutes=10))
    mid = repo.get_deployment(session_factory, dep.id)
    assert mid is not None
    assert mid.ready_seconds == 3600 and mid.stopped_seconds == 600
    later = ready1 + timedelta(hours=1, minutes=40)
    assert storage.seconds_in_ready(mid, later) == 3600 + 1800
    assert storage.deployment_hours_in_ready(mid, later) == pytest.approx(1.5)
    assert storage.seconds_in_stopped(mid, later) == 600
    move("ready", "destroyed", later)
    end = repo.get_deployment(session_factory, dep.id)
    assert end is not None
    assert (end.ready_seconds, end.stopped_seconds) == (5400, 600)
    assert end.ready_at == ready1  # first time ready, not the restart
    assert end.stopped_at == ready1 + timedelta(hours=1)
    assert end.destroyed_at == later
    # Nothing accrues after the end.
    assert storage.seconds_in_ready(end, later + timedelta(days=3)) == 5400


def test_mark_failed(session_factory: SF) -> None:
    dep = _new(session_factory)
    assert repo.mark_failed(session_factory, dep.id, "offer no longer available", now=T0)
    failed = repo.get_deployment(session_factory, dep.id)
    assert failed is not None
    assert (failed.status, failed.reason, failed.failed_at) == (
        "failed",
        "offer no longer available",
        T0,
    )
    assert not repo.mark_failed(session_factory, dep.id, "again")
    events = repo.list_events(session_factory, dep.id)
    assert [(e.action, e.from_status, e.to_status, e.detail) for e in events][-2:] == [
        ("status", "creating", "failed", "creating -> failed"),
        ("failed", None, None, "offer no longer available"),
    ]
    with pytest.raises(DeploymentNotFoundError):
        repo.mark_failed(session_factory, 999, "x")


def test_set_instance(session_factory: SF) -> None:
    a = _new(session_factory, "view-a")
    b = _new(session_factory, "view-b")
    assert repo.set_instance(session_factory, a.id, 777)
    assert repo.set_instance(session_factory, a.id, 777)  # idempotent
    assert not repo.set_instance(session_factory, a.id, 778)
    with pytest.raises(InstanceAlreadyAttachedError):
        repo.set_instance(session_factory, b.id, 777)
    found = repo.get_by_instance_id(session_factory, 777)
    assert found is not None and found.id == a.id
    assert repo.get_by_instance_id(session_factory, 778) is None
    assert [e.action for e in repo.list_events(session_factory, a.id)] == ["requested", "created"]


def test_set_message(session_factory: SF) -> None:
    dep = _new(session_factory)
    repo.set_message(session_factory, dep.id, "D42", "1714560000.000100")
    after = repo.get_deployment(session_factory, dep.id)
    assert after is not None
    assert (after.message_channel, after.message_ts) == ("D42", "1714560000.000100")
    with pytest.raises(DeploymentNotFoundError):
        repo.set_message(session_factory, 999, "C1", "1.2")


def test_listings(session_factory: SF) -> None:
    old = _new(session_factory, "k1", now=T0)
    mine_ready = _new(session_factory, "k2", now=T0 + timedelta(minutes=20))
    other_user = _new(session_factory, "k3", user_id="U2", now=T0 + timedelta(minutes=20))
    other_team = _new(session_factory, "k4", team_id="T2", now=T0 + timedelta(minutes=20))
    repo.update_status(session_factory, mine_ready.id, expected_status=None, new_status="ready")
    for step in ("ready", "stopped"):  # a legal path (storage.transitions)
        repo.update_status(session_factory, other_user.id, expected_status=None, new_status=step)

    def ids(records: list[DeploymentRecord]) -> list[int]:
        return [r.id for r in records]

    assert ids(repo.list_active(session_factory)) == [old.id, mine_ready.id, other_team.id]
    assert ids(repo.list_by_status(session_factory, ["stopped"])) == [other_user.id]
    assert ids(repo.list_for_user(session_factory, "T1", "U1")) == [old.id, mine_ready.id]
    assert ids(repo.list_for_user(session_factory, "T1", "U1", statuses=["ready"])) == [
        mine_ready.id
    ]
    assert ids(repo.list_for_team(session_factory, "T1")) == [old.id, mine_ready.id, other_user.id]
    assert ids(repo.list_for_team(session_factory, "T2", [DeploymentStatus.READY])) == []
    assert ids(repo.list_by_status(session_factory, [DeploymentStatus.STOPPED])) == [other_user.id]
    with pytest.raises(ValueError, match="unknown deployment status 'runing'"):
        repo.list_by_status(session_factory, ["runing"])  # a typo fails, it does not match nothing
    stuck = repo.list_stuck_creating(session_factory, T0 + timedelta(minutes=10))
    assert ids(stuck) == [old.id]
    by_key = repo.get_by_request_key(session_factory, "k3")
    assert by_key is not None and by_key.id == other_user.id
    assert repo.get_by_request_key(session_factory, "nope") is None
    assert repo.get_deployment(session_factory, 999) is None


def test_events_append_in_order(session_factory: SF) -> None:
    dep = _new(session_factory)
    repo.add_event(session_factory, dep.id, "U1", "stop", "by button", now=T0)
    repo.add_event(session_factory, dep.id, "U9", "start", now=T0 + timedelta(seconds=1))
    events = repo.list_events(session_factory, dep.id)
    assert [(e.actor, e.action, e.detail) for e in events] == [
        ("U1", "requested", "jupyter-lab on offer 4242"),
        ("U1", "stop", "by button"),
        ("U9", "start", None),
    ]
    assert [(e.from_status, e.to_status) for e in events] == [(None, None)] * 3
    assert events[2].at == T0 + timedelta(seconds=1)
    with pytest.raises(DeploymentNotFoundError):
        repo.add_event(session_factory, 999, "U1", "stop")


# --- leases ---------------------------------------------------------------------------------


def test_lease_one_holder_then_takeover_after_expiry(session_factory: SF) -> None:
    sf = session_factory
    assert repo.acquire_lease(sf, "poller", "a", 30, T0)
    assert not repo.acquire_lease(sf, "poller", "b", 30, T0 + timedelta(seconds=10))
    assert repo.acquire_lease(sf, "poller", "a", 30, T0 + timedelta(seconds=20))  # renew
    assert not repo.acquire_lease(sf, "poller", "b", 30, T0 + timedelta(seconds=49))
    assert repo.acquire_lease(sf, "poller", "b", 30, T0 + timedelta(seconds=50))  # expired
    assert not repo.acquire_lease(sf, "poller", "a", 30, T0 + timedelta(seconds=51))
    lease = repo.get_lease(sf, "poller")
    assert lease is not None and lease.holder == "b"
    assert lease.expires_at == T0 + timedelta(seconds=80)
    assert not repo.release_lease(sf, "poller", "a")
    assert repo.release_lease(sf, "poller", "b")
    assert repo.acquire_lease(sf, "poller", "a", 30, T0 + timedelta(seconds=52))


def test_lease_race_has_one_winner(database_url: str, session_factory: SF) -> None:
    other = storage.make_engine(database_url)
    try:
        factories = [session_factory, storage.make_session_factory(other)]
        won = _race(8, lambda i: repo.acquire_lease(factories[i % 2], "poller", f"h{i}", 30, T0))
        # Expired: a second round of contenders, again exactly one wins the takeover.
        later = T0 + timedelta(seconds=31)
        took = _race(
            8, lambda i: repo.acquire_lease(factories[i % 2], "poller", f"n{i}", 30, later)
        )
    finally:
        other.dispose()
    assert sorted(won) == [False] * 7 + [True]
    assert sorted(took) == [False] * 7 + [True]


# --- pure parts -----------------------------------------------------------------------------


def test_record_mirrors_model_columns() -> None:
    columns = [c.key for c in Deployment.__table__.columns]
    assert [f.name for f in dataclasses.fields(DeploymentRecord)] == columns
    event_columns = [c.key for c in DeploymentEvent.__table__.columns]
    assert [f.name for f in dataclasses.fields(storage.EventRecord)] == event_columns


def test_status_sets() -> None:
    assert storage.ACTIVE_STATUSES < storage.LIVE_STATUSES
    assert not storage.LIVE_STATUSES & storage.FINAL_STATUSES
    assert sorted(storage.FINAL_STATUSES) == ["denied", "destroyed", "expired", "failed"]
    waiting = DeploymentStatus.PENDING_APPROVAL
    assert waiting not in storage.LIVE_STATUSES and waiting not in storage.FINAL_STATUSES
    statuses = list(DeploymentStatus)
    assert statuses and all(len(s.value) <= 16 for s in statuses)  # the String(16) columns
    sets = [storage.ACTIVE_STATUSES, storage.LIVE_STATUSES, storage.FINAL_STATUSES]
    members = [s for group in sets for s in group]
    assert members and all(isinstance(s, DeploymentStatus) for s in members)


def test_status_is_stored_as_its_plain_string(session_factory: SF, engine: Engine) -> None:
    dep = _new(session_factory)
    assert dep.status is DeploymentStatus.CREATING
    repo.update_status(session_factory, dep.id, expected_status=None, new_status="provisioning")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM deployments")).scalar() == "provisioning"
        row = conn.execute(
            text("SELECT from_status, to_status FROM deployment_events WHERE action = 'status'")
        ).one()
    assert tuple(row) == ("creating", "provisioning")
    moved = repo.get_deployment(session_factory, dep.id)
    assert moved is not None and moved.status is DeploymentStatus.PROVISIONING


def test_record_repr_hides_web_password(session_factory: SF) -> None:
    dep = _new(session_factory, web_password="s3cret-pw")
    assert "s3cret-pw" not in repr(dep)
    assert "s3cret-pw" not in str(dep)
    stored = repo.get_deployment(session_factory, dep.id)
    assert stored is not None and stored.web_password == "s3cret-pw"


def test_port_map_roundtrip(session_factory: SF) -> None:
    dep = _new(session_factory)
    encoded = storage.encode_port_map({8888: 41234, 22: 41000})
    repo.update_status(
        session_factory,
        dep.id,
        expected_status="creating",
        new_status="creating",
        ports_json=encoded,
        public_ip="203.0.113.7",
    )
    after = repo.get_deployment(session_factory, dep.id)
    assert after is not None
    assert after.port_map == {22: 41000, 8888: 41234}
    assert after.status == "creating" and after.last_state_change_at == dep.last_state_change_at
    assert storage.decode_port_map(None) == {}
    with pytest.raises(ValueError):
        storage.decode_port_map("[1, 2]")


def test_storage_imports_nothing_from_bot_or_catalog() -> None:
    code = (
        "import sys, storage, storage.repo, storage.db, storage.costs;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('bot', 'catalog')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_snapshots_outlive_engine(database_url: str) -> None:
    eng = storage.make_engine(database_url)
    storage.migrate(eng)
    dep = _new(storage.make_session_factory(eng))
    eng.dispose()
    assert dep.template_name == "JupyterLab" and dep.created_at == T0


def test_raw_sql_sees_utc_text_on_sqlite(tmp_path: Path) -> None:
    # Stored SQLite text is UTC so that text comparisons (e.g. lease expiry) order correctly.
    eng = storage.make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    storage.migrate(eng)
    _new(storage.make_session_factory(eng), now=T0.astimezone(timezone(timedelta(hours=-5))))
    with eng.connect() as conn:
        assert conn.execute(text("SELECT created_at FROM deployments")).scalar() == (
            "2024-05-01 12:00:00.000000"
        )
    eng.dispose()
