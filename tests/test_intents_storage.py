"""The desired-state SQL (storage.intents): a claim, a try and a confirmation happen once across
threads and processes, and a final status is never left. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import DeploymentStatus
from tests.factories import new_deployment

T = TypeVar("T")
NOW = storage.utcnow()
READY = (DeploymentStatus.READY,)


def ready_row(sf: sessionmaker[Session], instance_id: int = 4242) -> int:
    dep = new_deployment(
        sf,
        team_id="T1",
        user_id="U1",
        channel_id="C1",
        simulated=False,
        now=NOW - timedelta(hours=1),
    )
    storage.set_instance(sf, dep.id, instance_id)
    storage.update_status(sf, dep.id, expected_status="creating", new_status="provisioning")
    storage.update_status(sf, dep.id, expected_status="provisioning", new_status="ready")
    return dep.id


def race(database_url: str, work: Callable[[sessionmaker[Session]], T], n: int = 2) -> list[T]:
    """Run ``work`` in ``n`` threads at once, each on its own engine (as separate processes)."""
    engines = [storage.make_engine(database_url) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[T] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(engine: object) -> None:
        try:
            sf = storage.make_session_factory(engine)  # type: ignore[arg-type]
            barrier.wait()
            result = work(sf)
            with lock:
                results.append(result)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert errors == []
    return results


def claim_stop(sf: sessionmaker[Session], dep_id: int, actor: str = "U1") -> storage.IntentClaim:
    return storage.claim_intent(
        sf, dep_id, storage.STOPPED, actor=actor, reason="pressed", statuses=READY, now=NOW
    )


def test_two_concurrent_claims_one_wins(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    for _ in range(3):
        dep_id = ready_row(session_factory, 4242 + _)
        claims = race(database_url, lambda sf, d=dep_id: claim_stop(sf, d), n=4)
        assert sorted(c.claimed for c in claims) == [False, False, False, True]
        assert {c.refusal for c in claims if not c.claimed} == {"pending"}
        dep = storage.get_deployment(session_factory, dep_id)
        assert dep is not None
        assert dep.status == "ready"  # a claim changes no status
        assert (dep.desired_state, dep.desired_tries) == ("stopped", 0)
        assert dep.desired_next_try_at == dep.desired_at  # due at once
        events = storage.list_events(session_factory, dep_id)
        assert [e.action for e in events].count("stop_requested") == 1


def test_two_concurrent_tries_one_sends(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    dep_id = ready_row(session_factory)
    claimed = claim_stop(session_factory, dep_id).deployment
    assert claimed is not None and claimed.desired_at is not None
    at = claimed.desired_at

    def take(sf: sessionmaker[Session]) -> bool:
        return storage.begin_try(
            sf, dep_id, desired_at=at, tries=0, next_try_at=NOW + timedelta(seconds=15), now=NOW
        )

    assert sorted(race(database_url, take, n=3)) == [False, False, True]
    dep = storage.get_deployment(session_factory, dep_id)
    assert dep is not None and dep.desired_tries == 1
    assert dep.desired_next_try_at == NOW + timedelta(seconds=15)


def test_a_confirmation_happens_once_and_a_replaced_intent_changes_nothing(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    first = claim_stop(sf, dep_id).deployment
    assert first is not None and first.desired_at is not None
    at = first.desired_at

    def confirm(sf: sessionmaker[Session]) -> bool:
        return (
            storage.complete_intent(
                sf,
                dep_id,
                desired_at=at,
                now=NOW,
                new_status=DeploymentStatus.STOPPED,
                from_statuses=READY,
                event=("stop", "instance 4242"),
            )
            is not None
        )

    assert sorted(race(database_url, confirm, n=3)) == [False, False, True]
    dep = storage.get_deployment(sf, dep_id)
    assert dep is not None and dep.status == "stopped" and dep.desired_next_try_at is None
    assert [e.action for e in storage.list_events(sf, dep_id)].count("stop") == 1
    # A confirmation for an intent that was replaced meanwhile changes nothing.
    later = NOW + timedelta(minutes=1)
    destroy = storage.claim_intent(
        sf,
        dep_id,
        storage.DESTROYED,
        actor="U1",
        reason="x",
        statuses=(DeploymentStatus.STOPPED,),
        now=later,
    )
    assert destroy.claimed
    assert storage.complete_intent(sf, dep_id, desired_at=at, now=later) is None


def test_confirming_never_leaves_a_final_status(session_factory: sessionmaker[Session]) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    claimed = claim_stop(sf, dep_id).deployment
    assert claimed is not None and claimed.desired_at is not None
    storage.mark_failed(sf, dep_id, "the container exited")  # the poller, meanwhile
    after = storage.complete_intent(
        sf,
        dep_id,
        desired_at=claimed.desired_at,
        now=NOW,
        new_status=DeploymentStatus.DESTROYED,
        from_statuses=frozenset(DeploymentStatus),
    )
    assert after is not None and after.status == "failed" and after.desired_next_try_at is None
    # A final row takes no new act either.
    refused = claim_stop(sf, dep_id)
    assert not refused.claimed and refused.refusal == "status"


def test_a_pending_destroy_is_not_replaced_and_a_stop_is(
    session_factory: sessionmaker[Session],
) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    assert claim_stop(sf, dep_id).claimed
    destroy = storage.claim_intent(
        sf, dep_id, storage.DESTROYED, actor="U2", reason="gone", statuses=READY, now=NOW
    )
    assert destroy.claimed  # a destroy replaces a pending stop
    again = claim_stop(sf, dep_id)
    assert not again.claimed and again.refusal == "pending"  # nothing replaces a destroy
    unchanged = storage.claim_intent(
        sf,
        ready_row(sf, 5151),
        storage.STOPPED,
        actor="system",
        reason="rule",
        statuses=READY,
        now=NOW,
        unchanged={"ends_at": NOW},  # an extension moved it meanwhile
    )
    assert not unchanged.claimed and unchanged.refusal == "unchanged"


def test_the_start_lease_is_taken_with_the_desired_state(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    storage.update_status(sf, dep_id, expected_status="ready", new_status="stopped")

    def start(sf: sessionmaker[Session]) -> storage.IntentClaim:
        holder = uuid.uuid4().hex
        return storage.claim_intent(
            sf,
            dep_id,
            storage.RUNNING,
            actor="U1",
            reason="start",
            statuses=(DeploymentStatus.STOPPED,),
            now=NOW,
            lease=storage.StartLease("deployment-start:1", holder, NOW + timedelta(minutes=5)),
        )

    claims = race(database_url, start, n=3)
    assert sorted(c.claimed for c in claims) == [False, False, True]
    lease = storage.get_lease(sf, "deployment-start:1")
    assert lease is not None
    dep = storage.get_deployment(sf, dep_id)
    assert dep is not None and dep.desired_state == "running"
    assert dep.desired_at is not None
    assert storage.withdraw_intent(
        sf,
        dep_id,
        desired_at=dep.desired_at,
        actor="U1",
        detail="refused",
        now=NOW,
        drop_lease="deployment-start:1",
    )
    assert storage.get_lease(sf, "deployment-start:1") is None
    withdrawn = storage.get_deployment(sf, dep_id)
    assert withdrawn is not None and withdrawn.desired_state is None
    assert withdrawn.desired_next_try_at is None
    assert any(e.action == "start_withdrawn" for e in storage.list_events(sf, dep_id))


def test_the_work_list_is_the_due_intents_longest_due_first(
    session_factory: sessionmaker[Session],
) -> None:
    sf = session_factory
    ids = [ready_row(sf, 6000 + n) for n in range(3)]
    for n, dep_id in enumerate(ids):
        at = NOW - timedelta(minutes=n)
        assert storage.claim_intent(
            sf, dep_id, storage.STOPPED, actor="U1", reason="x", statuses=READY, now=at
        ).claimed
    assert [d.id for d in storage.list_due_intents(sf, NOW)] == list(reversed(ids))
    assert [d.id for d in storage.list_due_intents(sf, NOW, limit=1)] == [ids[-1]]
    assert storage.list_due_intents(sf, NOW - timedelta(minutes=5)) == []
    # Telling the owner is claimed once per intent.
    dep = storage.get_deployment(sf, ids[0])
    assert dep is not None and dep.desired_at is not None
    told = [
        storage.claim_owner_told(sf, ids[0], desired_at=dep.desired_at, now=NOW) for _ in range(2)
    ]
    assert told == [True, False]
    # A start seen outside the bot is not recorded while a stop is pending.
    assert not storage.record_outside_start(sf, ids[0], reason="seen", now=NOW)
