"""The SQL of keys attached per instance (storage.instance_keys): the wanted set (owner and
collaborators, one workspace), the sync that follows it, the due list, and tries and outcomes
decided once across threads and processes. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import DeploymentCollaborator, SshKey
from storage import instance_keys as keys
from tests.test_intents_storage import NOW, race, ready_row
from tests.test_vast_ssh_keys import public_key

SF = sessionmaker[Session]
OWNER, BOB, CAROL = "U1", "U0BOB0002", "U0CAROL03"


def fingerprint(line: str) -> str:
    """``SHA256:<base64, no padding>`` of the key blob, as ``ssh-keygen -l`` prints it."""
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def add_key(sf: SF, user_id: str, *, team_id: str = "T1", comment: str = "laptop") -> str:
    """An ``ssh_keys`` row for ``user_id`` (as ``/templates ssh-key`` stores it); its
    fingerprint."""
    line = public_key(comment)
    kind, body = line.split()[:2]
    with storage.write_transaction(sf) as session:
        session.add(
            SshKey(
                team_id=team_id,
                user_id=user_id,
                key_type=kind,
                public_key=f"{kind} {body}",
                fingerprint=fingerprint(line),
                comment=comment,
                created_at=NOW,
            )
        )
    return fingerprint(line)


def remove_key(sf: SF, fp: str) -> None:
    with storage.write_transaction(sf) as session:
        session.execute(delete(SshKey).where(SshKey.fingerprint == fp))


def share(sf: SF, dep_id: int, user_id: str) -> None:
    with storage.write_transaction(sf) as session:
        session.add(
            DeploymentCollaborator(
                deployment_id=dep_id, user_id=user_id, added_by=OWNER, added_at=NOW
            )
        )


def unshare(sf: SF, dep_id: int, user_id: str) -> None:
    with storage.write_transaction(sf) as session:
        session.execute(
            delete(DeploymentCollaborator).where(
                DeploymentCollaborator.deployment_id == dep_id,
                DeploymentCollaborator.user_id == user_id,
            )
        )


def states(sf: SF, dep_id: int) -> dict[str, str]:
    return {k.fingerprint: k.state for k in keys.list_for_deployment(sf, dep_id)}


def test_the_wanted_set_is_the_owners_and_collaborators_keys_in_the_workspace(
    session_factory: SF,
) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    mine = add_key(sf, OWNER)
    bobs = add_key(sf, BOB)
    add_key(sf, CAROL)  # not shared with her
    add_key(sf, OWNER, team_id="T2")  # the owner's key in another workspace
    with storage.read_transaction(sf) as session:
        assert set(keys.wanted_keys(session, dep_id)) == {mine}
    share(sf, dep_id, BOB)
    with storage.read_transaction(sf) as session:
        wanted = keys.wanted_keys(session, dep_id)
    assert set(wanted) == {mine, bobs}
    assert wanted[bobs][0] == BOB and wanted[bobs][1].startswith("ssh-ed25519 AAAA")
    assert " " not in wanted[bobs][1].split(" ", 1)[1]  # "<type> <base64>", no comment


def test_sync_follows_keys_and_sharing(session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    mine = add_key(sf, OWNER)
    assert keys.out_of_sync(sf) == [dep_id]
    result = keys.sync_deployment(sf, dep_id, NOW)
    assert (result.added, result.reattached, result.detaching) == (1, 0, 0)
    (row,) = keys.list_for_deployment(sf, dep_id)
    assert (row.state, row.tries, row.next_try_at, row.user_id) == ("attach", 0, NOW, OWNER)
    assert keys.out_of_sync(sf) == [] and not keys.sync_deployment(sf, dep_id, NOW).changed

    share(sf, dep_id, BOB)
    bobs = add_key(sf, BOB)
    assert keys.out_of_sync(sf) == [dep_id]
    assert keys.sync_deployment(sf, dep_id, NOW).added == 1
    assert states(sf, dep_id) == {mine: "attach", bobs: "attach"}

    unshare(sf, dep_id, BOB)  # unshared: his key leaves the instance
    assert keys.out_of_sync(sf) == [dep_id]
    assert keys.sync_deployment(sf, dep_id, NOW).detaching == 1
    assert states(sf, dep_id) == {mine: "attach", bobs: "detach"}
    remove_key(sf, mine)  # the owner removed a key: it leaves too
    assert keys.sync_deployment(sf, dep_id, NOW).detaching == 1
    assert states(sf, dep_id) == {mine: "detach", bobs: "detach"}
    assert keys.out_of_sync(sf) == []  # nothing active is unwanted any more

    share(sf, dep_id, BOB)  # shared again: back to attach, tries reset, due now
    later = NOW + timedelta(minutes=5)
    assert keys.sync_deployment(sf, dep_id, later).reattached == 1
    row = next(k for k in keys.list_for_deployment(sf, dep_id) if k.fingerprint == bobs)
    assert (row.state, row.tries, row.next_try_at) == ("attach", 0, later)


def test_kept_and_detached_keys_wanted_again_are_attached_again(session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    share(sf, dep_id, BOB)
    bobs = add_key(sf, BOB)
    keys.sync_deployment(sf, dep_id, NOW)
    (row,) = keys.list_for_deployment(sf, dep_id)
    assert keys.begin_try(sf, row.id, state="attach", tries=0, next_try_at=NOW, now=NOW)
    assert keys.complete(sf, row.id, state="attach", tries=1, outcome="attached", now=NOW)
    unshare(sf, dep_id, BOB)
    keys.sync_deployment(sf, dep_id, NOW)
    assert keys.begin_try(sf, row.id, state="detach", tries=0, next_try_at=NOW, now=NOW)
    assert keys.complete(
        sf, row.id, state="detach", tries=1, outcome="kept", now=NOW, detail="no key id"
    )
    (kept,) = keys.list_for_deployment(sf, dep_id)
    assert (kept.state, kept.next_try_at, kept.last_error) == ("kept", None, "no key id")
    assert keys.out_of_sync(sf) == []  # kept is not on the wanted side: nothing to do
    share(sf, dep_id, BOB)
    assert keys.out_of_sync(sf) == [dep_id]
    assert keys.sync_deployment(sf, dep_id, NOW).reattached == 1
    assert states(sf, dep_id) == {bobs: "attach"}


def test_only_ready_deployments_are_synced_and_due(session_factory: SF) -> None:
    sf = session_factory
    ready = ready_row(sf, 100)
    stopped = ready_row(sf, 101)
    add_key(sf, OWNER)
    keys.sync_deployment(sf, ready, NOW)
    keys.sync_deployment(sf, stopped, NOW)
    storage.update_status(sf, stopped, expected_status="ready", new_status="stopped")
    assert keys.out_of_sync(sf) == []
    due = keys.list_due(sf, NOW)
    assert [(k.deployment_id, d.id, d.instance_id) for k, d in due] == [(ready, ready, 100)]
    assert keys.list_due(sf, NOW - timedelta(seconds=1)) == []  # not due yet
    storage.update_status(sf, stopped, expected_status="stopped", new_status="ready")
    assert sorted(k.deployment_id for k, _ in keys.list_due(sf, NOW)) == [ready, stopped]
    assert len(keys.list_due(sf, NOW, limit=1)) == 1


def test_rows_of_an_ended_deployment_are_retired(session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    add_key(sf, OWNER)
    keys.sync_deployment(sf, dep_id, NOW)
    assert keys.retire_final(sf, NOW) == 0
    storage.update_status(sf, dep_id, expected_status="ready", new_status="destroyed")
    assert keys.list_due(sf, NOW) == []
    assert not keys.sync_deployment(sf, dep_id, NOW).changed
    assert keys.retire_final(sf, NOW) == 1
    (row,) = keys.list_for_deployment(sf, dep_id)
    assert (row.state, row.next_try_at) == ("detached", None)
    assert keys.retire_final(sf, NOW) == 0


def test_a_try_and_its_outcome_count_once(database_url: str, session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    add_key(sf, OWNER)
    keys.sync_deployment(sf, dep_id, NOW)
    (row,) = keys.list_for_deployment(sf, dep_id)
    later = NOW + timedelta(seconds=15)

    def take(engine_sf: SF) -> bool:
        return keys.begin_try(
            engine_sf, row.id, state="attach", tries=0, next_try_at=later, now=NOW
        )

    assert sorted(race(database_url, take, n=3)) == [False, False, True]
    (taken,) = keys.list_for_deployment(sf, dep_id)
    assert (taken.tries, taken.next_try_at) == (1, later)

    def finish(engine_sf: SF) -> bool:
        return keys.complete(
            engine_sf, row.id, state="attach", tries=1, outcome="attached", now=NOW,
            vast_key_id="77", detail="attached",
        )  # fmt: skip

    assert sorted(race(database_url, finish, n=3)) == [False, False, True]
    (done,) = keys.list_for_deployment(sf, dep_id)
    assert (done.state, done.next_try_at, done.vast_key_id) == ("attached", None, "77")
    actions = [e.action for e in storage.list_events(sf, dep_id)]
    assert actions.count("ssh_key_attached") == 1


def test_an_outcome_for_an_act_that_changed_meanwhile_changes_nothing(
    session_factory: SF,
) -> None:
    """An attach on the wire while the person was unshared: its answer must not mark the row
    attached (the detach would be lost); the detach goes on."""
    sf = session_factory
    dep_id = ready_row(sf)
    share(sf, dep_id, BOB)
    add_key(sf, BOB)
    keys.sync_deployment(sf, dep_id, NOW)
    (row,) = keys.list_for_deployment(sf, dep_id)
    assert keys.begin_try(sf, row.id, state="attach", tries=0, next_try_at=NOW, now=NOW)
    unshare(sf, dep_id, BOB)
    keys.sync_deployment(sf, dep_id, NOW)
    assert not keys.complete(sf, row.id, state="attach", tries=1, outcome="attached", now=NOW)
    assert not keys.record_failure(sf, row.id, state="attach", tries=1, error="x", now=NOW)
    (after,) = keys.list_for_deployment(sf, dep_id)
    assert (after.state, after.tries, after.next_try_at) == ("detach", 0, NOW)
    assert not keys.begin_try(sf, row.id, state="attach", tries=1, next_try_at=NOW, now=NOW)


def test_a_failed_try_keeps_the_act_pending_with_its_error(session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    add_key(sf, OWNER)
    keys.sync_deployment(sf, dep_id, NOW)
    (row,) = keys.list_for_deployment(sf, dep_id)
    first = NOW + timedelta(seconds=15)
    assert keys.begin_try(sf, row.id, state="attach", tries=0, next_try_at=first, now=NOW)
    assert keys.record_failure(sf, row.id, state="attach", tries=1, error="HTTP 429" * 100, now=NOW)
    (failed,) = keys.list_for_deployment(sf, dep_id)
    assert (failed.state, failed.tries, failed.next_try_at) == ("attach", 1, first)
    assert failed.last_error is not None and len(failed.last_error) == keys.MAX_ERROR
    assert keys.list_due(sf, NOW) == [] and len(keys.list_due(sf, first)) == 1
    (event,) = [e for e in storage.list_events(sf, dep_id) if e.action == "ssh_key_failed"]
    assert event.actor == "system" and event.detail is not None


def test_two_concurrent_syncs_make_one_row_per_key(database_url: str, session_factory: SF) -> None:
    sf = session_factory
    dep_id = ready_row(sf)
    for n in range(3):
        add_key(sf, OWNER, comment=f"key-{n}-{uuid.uuid4().hex[:4]}")
    results = race(database_url, lambda engine_sf: keys.sync_deployment(engine_sf, dep_id, NOW))
    assert sorted(r.added for r in results) == [0, 3]
    assert len(keys.list_for_deployment(sf, dep_id)) == 3
