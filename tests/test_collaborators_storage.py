"""Storage of who a deployment is shared with (``storage.collaborators``), on SQLite and, when
configured, PostgreSQL: idempotent add and remove with their events, the lists, and the
once-only claim of each collaborator's ready DM across two "processes"."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import DeploymentRecord, DeploymentStatus, repo
from storage import collaborators as collab
from tests.factories import new_deployment

SF = sessionmaker[Session]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
OWNER, BOB, CAROL = "U0OWNER01", "U0BOB0002", "U0CAROL03"


def _new(
    sf: SF, key: str, *, team: str = "T1", user: str = OWNER, **extra: Any
) -> DeploymentRecord:
    return new_deployment(sf, key=key, team_id=team, user_id=user, channel_id="C1", now=T0, **extra)


def _ready(sf: SF, dep: DeploymentRecord) -> None:
    repo.set_instance(sf, dep.id, 1000 + dep.id, now=T0)
    for old, new in (("creating", "provisioning"), ("provisioning", "ready")):
        assert repo.update_status(sf, dep.id, expected_status=old, new_status=new, now=T0)


def test_add_is_idempotent_and_recorded_once(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    assert collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER, now=T0)
    assert not collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER, now=T0)
    rows = collab.list_collaborators(session_factory, dep.id)
    assert [(r.user_id, r.added_by, r.added_at, r.ready_dm_sent_at) for r in rows] == [
        (BOB, OWNER, T0, None)
    ]
    assert collab.is_collaborator(session_factory, dep.id, BOB)
    assert not collab.is_collaborator(session_factory, dep.id, CAROL)
    shared = [e for e in storage.list_events(session_factory, dep.id) if e.action == "shared"]
    assert [(e.actor, e.detail) for e in shared] == [(OWNER, f"with <@{BOB}>")]


def test_add_to_an_unknown_deployment_raises(session_factory: SF) -> None:
    try:
        collab.add_collaborator(session_factory, 9999, BOB, added_by=OWNER)
    except storage.DeploymentNotFoundError:
        pass
    else:
        raise AssertionError("expected DeploymentNotFoundError")


def test_remove_deletes_the_row_and_records_it_once(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER, now=T0)
    collab.add_collaborator(session_factory, dep.id, CAROL, added_by=OWNER, now=T0)
    assert collab.remove_collaborator(session_factory, dep.id, BOB, actor=OWNER, now=T0)
    assert not collab.remove_collaborator(session_factory, dep.id, BOB, actor=OWNER, now=T0)
    assert collab.collaborator_ids(session_factory, dep.id) == [CAROL]
    unshared = [e for e in storage.list_events(session_factory, dep.id) if e.action == "unshared"]
    assert [(e.actor, e.detail) for e in unshared] == [(OWNER, f"from <@{BOB}>")]


def test_collaborators_are_listed_in_the_order_they_were_added(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    collab.add_collaborator(session_factory, dep.id, CAROL, added_by=OWNER, now=T0)
    later = T0 + timedelta(minutes=1)
    collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER, now=later)
    assert collab.collaborator_ids(session_factory, dep.id) == [CAROL, BOB]


def test_shared_with_lists_the_workspaces_deployments_shared_with_a_person(
    session_factory: SF,
) -> None:
    mine = _new(session_factory, "k1", user=BOB)
    shared = _new(session_factory, "k2")
    other_team = _new(session_factory, "k3", team="T2")
    not_shared = _new(session_factory, "k4")
    _ready(session_factory, shared)
    collab.add_collaborator(session_factory, shared.id, BOB, added_by=OWNER)
    collab.add_collaborator(session_factory, other_team.id, BOB, added_by=OWNER)
    collab.add_collaborator(session_factory, mine.id, BOB, added_by=BOB)  # own: not "shared"
    found = collab.list_shared_with(session_factory, "T1", BOB)
    assert [d.id for d in found] == [shared.id]
    assert not_shared.id not in {d.id for d in found}
    assert collab.list_shared_with(session_factory, "T1", BOB, [DeploymentStatus.STOPPED]) == []
    ready = collab.list_shared_with(session_factory, "T1", BOB, [DeploymentStatus.READY])
    assert [d.id for d in ready] == [shared.id]


def test_ready_dm_is_claimed_once_and_released_for_a_retry(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    _ready(session_factory, dep)
    collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER)
    assert collab.pending_ready_dms(session_factory) == {dep.id}
    assert collab.claim_ready_dm(session_factory, dep.id, BOB, now=T0)
    assert not collab.claim_ready_dm(session_factory, dep.id, BOB, now=T0)
    assert collab.pending_ready_dms(session_factory) == frozenset()
    assert collab.release_ready_dm(session_factory, dep.id, BOB, T0)
    assert collab.pending_ready_dms(session_factory) == {dep.id}
    assert collab.claim_ready_dm(session_factory, dep.id, BOB, now=T0)
    assert not collab.claim_ready_dm(session_factory, dep.id, CAROL, now=T0)  # not shared
    sent = [e for e in storage.list_events(session_factory, dep.id) if e.action == "secrets_sent"]
    assert [(e.actor, e.detail) for e in sent] == [("system", f"to <@{BOB}>")] * 2


def test_ended_deployments_owe_no_ready_dm(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    _ready(session_factory, dep)
    collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER)
    assert repo.update_status(
        session_factory, dep.id, expected_status="ready", new_status="destroyed", now=T0
    )
    assert collab.pending_ready_dms(session_factory) == frozenset()


def test_two_processes_claim_a_ready_dm_once(database_url: str) -> None:
    engines = [storage.make_engine(database_url) for _ in range(2)]
    try:
        storage.migrate(engines[0])
        factories = [storage.make_session_factory(engine) for engine in engines]
        dep = _new(factories[0], "k1")
        collab.add_collaborator(factories[0], dep.id, BOB, added_by=OWNER)
        barrier = threading.Barrier(8)
        wins: list[bool] = []
        lock = threading.Lock()

        def claim(n: int) -> None:
            barrier.wait()
            won = collab.claim_ready_dm(factories[n % 2], dep.id, BOB)
            with lock:
                wins.append(won)

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(wins) == [False] * 7 + [True]
    finally:
        for engine in engines:
            engine.dispose()


def test_a_destroyed_deployments_rows_go_with_it(session_factory: SF) -> None:
    dep = _new(session_factory, "k1")
    collab.add_collaborator(session_factory, dep.id, BOB, added_by=OWNER)
    with session_factory.begin() as session:
        row = session.get(storage.Deployment, dep.id)
        assert row is not None
        session.delete(row)
    assert collab.list_collaborators(session_factory, dep.id) == []
