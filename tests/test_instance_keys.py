"""The key reconciler (bot.services.instance_keys) with in-memory fakes for Vast.ai and Slack,
on a real database: attach (idempotent, reading the instance first), detach (every copy),
``kept`` with the owner told, backoff, and one row's trouble never stopping the others."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.services.instance_keys import KeyReconciler, listing_unavailable
from bot.services.poller import TickReport
from bot.vast.errors import (
    AuthError,
    KeyRefused,
    NotFound,
    RateLimited,
    UnexpectedResponse,
    Unreachable,
    VastError,
)
from bot.vast.models import InstanceSshKey
from storage import instance_keys as keys
from tests.fakes.ports import FakeAccounts, FakeVast, ManualClock, RecordingMessages
from tests.test_instance_keys_storage import BOB, OWNER, add_key, share, unshare
from tests.test_intents_storage import NOW, ready_row

SF = sessionmaker[Session]
INTERVAL = 15.0


@dataclass
class World:
    sf: SF
    vast: FakeVast
    accounts: FakeAccounts
    messages: RecordingMessages
    clock: ManualClock
    reconciler: KeyReconciler

    def deployment(self, instance_id: int) -> int:
        dep_id = ready_row(self.sf, instance_id)
        self.vast.ssh_keys[instance_id] = []
        return dep_id

    def run(self, after: float = 0.0) -> Any:
        self.clock.advance(after)
        return self.reconciler.run()

    def rows(self, dep_id: int) -> list[keys.InstanceKeyRecord]:
        return keys.list_for_deployment(self.sf, dep_id)

    def actions(self, dep_id: int) -> list[str]:
        return [e.action for e in storage.list_events(self.sf, dep_id)]


@pytest.fixture
def world(session_factory: SF) -> World:
    vast, messages, clock = FakeVast(), RecordingMessages(), ManualClock(NOW)
    accounts = FakeAccounts(vast)
    reconciler = KeyReconciler(
        session_factory=session_factory,
        accounts=accounts,  # type: ignore[arg-type]
        messages=messages,
        interval_seconds=INTERVAL,
        clock=clock,
    )
    return World(session_factory, vast, accounts, messages, clock, reconciler)


def test_the_owners_key_is_attached_once_and_recorded(world: World) -> None:
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    report = world.run()
    assert (report.synced, report.due, report.attached) == (1, 1, 1)
    (row,) = world.rows(dep_id)
    assert (row.state, row.next_try_at, row.tries) == ("attached", None, 1)
    assert len(world.vast.ssh_keys[4242]) == 1 and world.vast.bodies(4242) == [row.public_key]
    assert world.vast.calls == [
        ("list_instance_ssh_keys", 4242),
        ("attach_ssh_key", 4242),
    ]  # looked first
    (event,) = [e for e in storage.list_events(world.sf, dep_id) if e.action.startswith("ssh")]
    assert event.action == "ssh_key_attached" and row.fingerprint in (event.detail or "")
    assert f"<@{OWNER}>" in (event.detail or "")
    world.vast.calls.clear()
    assert world.run(after=60).due == 0 and world.vast.calls == []  # nothing more to do


def test_a_lost_answer_is_not_sent_twice(world: World) -> None:
    """The attach went through but its answer was lost: the retry, one interval later, reads
    the instance's keys, finds it there and records it with its id, without a second copy."""
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    world.vast.fail_after.setdefault("attach_ssh_key", []).append(Unreachable("POST: timed out"))
    report = world.run()
    assert report.failed == 1
    (row,) = world.rows(dep_id)
    assert (row.state, row.tries) == ("attach", 1)
    assert row.next_try_at == NOW + timedelta(seconds=INTERVAL)
    assert world.run(after=INTERVAL - 1).due == 0  # not due yet
    assert world.run(after=1).attached == 1
    (row,) = world.rows(dep_id)
    assert (row.state, row.vast_key_id) == ("attached", "101")
    assert world.vast.count("attach_ssh_key") == 1 and len(world.vast.ssh_keys[4242]) == 1
    assert world.actions(dep_id).count("ssh_key_failed") == 1


def test_a_429_backs_off_doubling_up_to_30_minutes(world: World) -> None:
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    world.vast.fail["attach_ssh_key"] = [RateLimited("429", status_code=429) for _ in range(9)]
    waits = []
    world.run()
    for _ in range(9):
        (row,) = world.rows(dep_id)
        assert row.next_try_at is not None and row.last_error is not None
        wait = (row.next_try_at - world.clock.now).total_seconds()
        waits.append(wait)
        world.run(after=wait)
    assert waits == [15, 30, 60, 120, 240, 480, 960, 1800, 1800]
    assert world.rows(dep_id)[0].state == "attached"  # the tenth try went through


def test_a_refused_key_is_tried_again_only_rarely(world: World) -> None:
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    world.vast.fail["attach_ssh_key"] = [KeyRefused("400 invalid_args", status_code=400)]
    assert world.run().failed == 1
    (row,) = world.rows(dep_id)
    assert row.state == "attach" and row.next_try_at == NOW + timedelta(minutes=30)
    assert "refused the key" in (row.last_error or "")


def test_a_teammates_key_comes_and_goes_with_sharing(world: World) -> None:
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    add_key(world.sf, BOB)
    world.run()
    assert len(world.vast.ssh_keys[4242]) == 1  # not shared yet: only the owner's
    share(world.sf, dep_id, BOB)
    assert world.run().attached == 1
    assert len(world.vast.ssh_keys[4242]) == 2
    bobs = next(r for r in world.rows(dep_id) if r.user_id == BOB)
    world.vast.ssh_keys[4242].append(("999", bobs.public_key + " again"))  # a second copy

    unshare(world.sf, dep_id, BOB)
    report = world.run()
    assert (report.synced, report.detached) == (1, 1)
    assert world.vast.bodies(4242) == [
        r.public_key for r in world.rows(dep_id) if r.user_id == OWNER
    ]  # every copy of his key removed, the owner's stays
    bobs = next(r for r in world.rows(dep_id) if r.user_id == BOB)
    assert (bobs.state, bobs.vast_key_id, bobs.next_try_at) == ("detached", None, None)
    assert "ssh_key_detached" in world.actions(dep_id)
    assert world.messages.calls("key_kept") == []


def test_a_key_that_cannot_be_removed_is_kept_and_the_owner_told_once(world: World) -> None:
    dep_id = world.deployment(4242)
    share(world.sf, dep_id, BOB)
    add_key(world.sf, BOB)
    world.run()
    unshare(world.sf, dep_id, BOB)
    refusal = VastError("DELETE: HTTP 403 not_allowed", status_code=403, error_code="x")
    world.vast.fail["detach_ssh_key"] = [refusal]
    report = world.run()
    assert (report.kept, report.slack_calls) == (1, 1)
    (row,) = world.rows(dep_id)
    assert (row.state, row.next_try_at) == ("kept", None)
    (told,) = world.messages.calls("key_kept")
    assert told["user_id"] == BOB and told["fingerprint"] == row.fingerprint
    assert "refused" in told["reason"]
    assert len(world.vast.ssh_keys[4242]) == 1  # it stays
    assert world.actions(dep_id).count("ssh_key_kept") == 1
    world.run(after=3600)
    assert len(world.messages.calls("key_kept")) == 1


def test_no_list_and_no_id_means_kept(world: World) -> None:
    """Vast.ai's list of the instance's keys answers a 4xx and no id was recorded at attach:
    there is nothing to remove the key by."""
    dep_id = world.deployment(4242)
    share(world.sf, dep_id, BOB)
    add_key(world.sf, BOB)
    world.vast.fail["list_instance_ssh_keys"] = [
        UnexpectedResponse("GET: HTTP 404 (HTML)", status_code=404)
    ]
    world.run()  # attached without looking (the list cannot be had)
    (row,) = world.rows(dep_id)
    assert (row.state, row.vast_key_id) == ("attached", None)
    unshare(world.sf, dep_id, BOB)
    world.vast.fail["list_instance_ssh_keys"] = [
        UnexpectedResponse("GET: HTTP 404 (HTML)", status_code=404)
    ]
    assert world.run().kept == 1
    (told,) = world.messages.calls("key_kept")
    assert "no id" in told["reason"]


def test_errors_that_leave_the_list_unknown_are_retried_not_kept() -> None:
    assert listing_unavailable(VastError("x", status_code=400))
    assert listing_unavailable(UnexpectedResponse("x", status_code=404))
    for error in (
        Unreachable("x"),
        RateLimited("x", status_code=429),
        AuthError("x", status_code=401),
        NotFound("x", status_code=404),
        VastError("x", status_code=500),
        VastError("x"),
    ):
        assert not listing_unavailable(error), error


def test_a_key_not_on_the_instance_or_a_gone_instance_is_detached(world: World) -> None:
    dep_id = world.deployment(4242)
    share(world.sf, dep_id, BOB)
    add_key(world.sf, BOB)
    world.run()
    world.vast.ssh_keys[4242].clear()  # removed by hand meanwhile
    unshare(world.sf, dep_id, BOB)
    assert world.run().detached == 1
    assert world.vast.count("detach_ssh_key") == 0


def test_one_rows_trouble_does_not_stop_the_others(world: World) -> None:
    broken = world.deployment(1111)
    fine = world.deployment(2222)
    no_account = world.deployment(3333)
    world.accounts.unavailable.add(no_account)
    add_key(world.sf, OWNER)
    del world.vast.ssh_keys[1111]  # the fake raises NotFound: a failed try
    original = world.vast.list_instance_ssh_keys

    def explode(instance_id: int) -> list[InstanceSshKey]:
        if instance_id == 1111:
            raise RuntimeError("a bug")
        return original(instance_id)

    world.vast.list_instance_ssh_keys = explode  # type: ignore[method-assign]
    report = world.run()
    assert report.due == 3 and report.attached == 1 and report.failed == 1
    assert world.rows(fine)[0].state == "attached"
    (unreached,) = world.rows(no_account)
    assert unreached.state == "attach" and "not sent" in (unreached.last_error or "")
    assert world.rows(broken)[0].state == "attach"  # its try is taken: retried when due


def test_a_stopped_instance_waits_and_an_ended_one_is_retired(world: World) -> None:
    dep_id = world.deployment(4242)
    add_key(world.sf, OWNER)
    storage.update_status(world.sf, dep_id, expected_status="ready", new_status="stopped")
    assert world.run().due == 0 and world.vast.calls == []
    storage.update_status(world.sf, dep_id, expected_status="stopped", new_status="ready")
    assert world.run().attached == 1
    storage.update_status(world.sf, dep_id, expected_status="ready", new_status="destroyed")
    assert world.run().retired == 1
    assert world.rows(dep_id)[0].state == "detached"


def test_a_pass_stops_taking_acts_past_its_budget(session_factory: SF) -> None:
    vast = FakeVast()
    ticks = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    reconciler = KeyReconciler(
        session_factory=session_factory,
        accounts=FakeAccounts(vast),  # type: ignore[arg-type]
        messages=RecordingMessages(),
        interval_seconds=INTERVAL,
        clock=lambda: NOW,
        monotonic=lambda: next(ticks),
    )
    for instance_id in (1, 2, 3):
        ready_row(session_factory, instance_id)
        vast.ssh_keys[instance_id] = []
    add_key(session_factory, OWNER)
    assert reconciler.budget_seconds == INTERVAL / 2
    assert reconciler.run().due == 1  # the others wait for the next pass
    assert sum(len(v) for v in vast.ssh_keys.values()) == 1


def test_after_pass_runs_only_for_the_lease_holder_and_never_raises(world: World) -> None:
    world.deployment(4242)
    add_key(world.sf, OWNER)
    world.reconciler.after_pass(TickReport(ran=False), True)
    world.reconciler.after_pass(TickReport(), False)
    assert world.vast.calls == []
    world.reconciler.after_pass(TickReport(), True)
    assert world.vast.count("attach_ssh_key") == 1

    def broken(now: Any = None) -> Any:
        raise RuntimeError("database down")

    world.reconciler.run = broken  # type: ignore[method-assign]
    world.reconciler.after_pass(TickReport(), True)  # logged, not raised


def test_the_kept_note_says_plainly_that_the_key_stays(session_factory: SF) -> None:
    """Through the Slack side of the port: a reply in the status message's thread (the
    owner's DM when there is none), Vast.ai's words escaped."""
    from bot.slack.messages import SlackMessages
    from tests.test_deploy_recovery import RecordingNotifier

    dep_id = ready_row(session_factory)
    dep = storage.get_deployment(session_factory, dep_id)
    assert dep is not None
    notifier = RecordingNotifier()
    messages = SlackMessages(notifier)  # type: ignore[arg-type]
    reason = "Vast.ai refused <!channel> & more"
    assert messages.key_kept(dep, user_id=BOB, fingerprint="SHA256:abc", reason=reason)
    ((kind, text),) = notifier.calls
    assert kind == "dm"  # no status message: the owner's DM
    assert "Their key stays on the instance until it is destroyed" in text
    assert f"<@{BOB}>" in text and "`SHA256:abc`" in text and "#" + str(dep_id) in text
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; more" in text
    storage.set_message(session_factory, dep_id, "C1", "1.000001")
    dep = storage.get_deployment(session_factory, dep_id)
    assert dep is not None
    assert messages.key_kept(dep, user_id=BOB, fingerprint="SHA256:abc", reason=reason)
    assert notifier.calls[-1][0] == "reply"
