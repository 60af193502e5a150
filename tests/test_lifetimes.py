"""Lifetimes, idle GPUs, reminders and the digest, end to end: the real bot (signed requests,
the fake Slack Web API, the Vast.ai simulator) on a clock the test moves."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import storage
from bot.playground.slack_api import Call, FakeSlack
from bot.simulator import VastSimulator
from bot.simulator.faults import Fault
from bot.slack.blocks import picker
from bot.slack.blocks.lifetimes import ACTION_KEEP_RUNNING, extend_action_id
from bot.slack.blocks.status import ACTION_DESTROY
from storage import DeploymentRecord
from tests.fixtures.slack import (
    ALICE,
    BOB,
    FAST_TIMELINE,
    BotFactory,
    BotHarness,
    MovableClock,
)
from tests.test_deploy import pick_offer, settled, submitted_view
from tests.test_poller import deploy as poller_deploy

ADMIN = "U0ADMIN01"
STOP_PATH = "/api/v0/instances/"


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def bot(bot_factory: BotFactory, clock: MovableClock) -> BotHarness:
    return bot_factory(clock=clock, bot_admins=ADMIN)


def deploy(
    harness: BotHarness,
    clock: MovableClock,
    *,
    lifetime_hours: float | None = 2,
    slug: str = "jupyter-lab",
) -> DeploymentRecord:
    """A deployment made at the test clock's now with ``lifetime_hours``, ticked to ready."""
    dep = poller_deploy(
        harness, slug, web_password=None, lifetime_hours=lifetime_hours, now=clock()
    )
    harness.services.poller.tick()
    harness.vast.advance(4)
    harness.services.poller.tick()
    ready = current(harness, dep)
    assert ready.status == "ready"
    harness.vast.clear_requests()
    return ready


def current(harness: BotHarness, dep: DeploymentRecord) -> DeploymentRecord:
    record = storage.get_deployment(harness.services.session_factory, dep.id)
    assert record is not None
    return record


def busy(harness: BotHarness, dep: DeploymentRecord, gpu_util: float | None = 80.0) -> None:
    assert dep.instance_id is not None
    harness.vast.set_utilisation(dep.instance_id, gpu_util=gpu_util)


def tick_at(harness: BotHarness, clock: MovableClock, **delta: float) -> None:
    clock.advance(**delta)
    harness.services.poller.tick()


def warned(
    harness: BotHarness, clock: MovableClock, fake: FakeSlack
) -> tuple[DeploymentRecord, Call]:
    """A busy 2-hour deployment, ticked to 25 minutes before its end: the owner's one warning."""
    dep = deploy(harness, clock, lifetime_hours=2)
    busy(harness, dep)
    tick_at(harness, clock, minutes=95)
    (warning,) = dms_to(fake, ALICE)
    return dep, warning


def expired(harness: BotHarness, clock: MovableClock) -> DeploymentRecord:
    """A busy 2-hour deployment, warned and ticked past its end (``ON_EXPIRY`` applied)."""
    dep = deploy(harness, clock, lifetime_hours=2)
    busy(harness, dep)
    tick_at(harness, clock, minutes=95)
    tick_at(harness, clock, minutes=30)
    return dep


def dms_to(fake: FakeSlack, user: str) -> list[Call]:
    """DMs to ``user`` other than the ready DM (every deployment with SSH gets one)."""
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.args.get("channel") == "D" + user[1:]
        and not c.args.get("thread_ts")
        and not str(c.args.get("text") or "").startswith("How to get into")
    ]


def thread_notes(fake: FakeSlack, dep: DeploymentRecord) -> list[str]:
    return [
        str(c.args.get("text"))
        for c in fake.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == dep.message_ts
    ]


def button(call: Call, action_id: str, text: str | None = None) -> dict[str, Any]:
    """The button ``action_id`` (with ``text`` when given) in a recorded message."""
    blocks = call.args.get("blocks") or []
    if isinstance(blocks, str):
        import json

        blocks = json.loads(blocks)
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == action_id and (
                text is None or element.get("text", {}).get("text") == text
            ):
                return dict(element)
    raise AssertionError(f"no {action_id} button {text or ''} in {blocks}")


def press(harness: BotHarness, action_id: str, value: str, *, user: str = ALICE) -> str:
    """Press a button in a DM; returns the ephemeral answer sent to the response_url."""
    before = len(harness.slack.calls_to("response_url"))
    response = harness.block_action(
        action_id, value, user=user, channel="D" + ALICE[1:], is_ephemeral=False
    )
    assert response.status_code == 200
    answers = harness.slack.wait_for("response_url", before + 1)
    return str(answers[-1].args.get("text"))


def stops(harness: BotHarness) -> list[Any]:
    return [
        r
        for r in harness.vast.requests
        if r.method == "PUT"
        and r.path.startswith(STOP_PATH)
        and (r.json or {}).get("state") == "stopped"
    ]


def destroys(harness: BotHarness) -> list[Any]:
    return [r for r in harness.vast.requests if r.method == "DELETE"]


def events(harness: BotHarness, dep: DeploymentRecord) -> list[storage.EventRecord]:
    return storage.list_events(harness.services.session_factory, dep.id)


# -- expiry ------------------------------------------------------------------------------


def test_warning_before_the_end_then_a_stop_that_keeps_the_disk(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    assert dep.ends_at is not None and dep.ends_at - dep.created_at == timedelta(hours=2)
    fake_slack.reset()

    tick_at(bot, clock, minutes=89)  # 31 minutes before the end: nothing yet
    assert dms_to(fake_slack, ALICE) == []

    tick_at(bot, clock, minutes=2)  # 29 minutes before: the owner is warned, once
    (warning,) = dms_to(fake_slack, ALICE)
    assert "Extend 2 h" in str(warning.args["blocks"]) and "Stop now" in str(warning.args["blocks"])
    assert button(warning, ACTION_DESTROY).get("confirm")
    assert any("stops" in note.lower() for note in thread_notes(fake_slack, dep))
    tick_at(bot, clock, minutes=5)
    assert len(dms_to(fake_slack, ALICE)) == 1
    assert stops(bot) == []

    tick_at(bot, clock, minutes=25)  # past the end
    assert current(bot, dep).status == "stopped"
    assert len(stops(bot)) == 1
    notes = thread_notes(fake_slack, dep)
    assert any("automatically" in n and "lifetime" in n and "/day" in n for n in notes)
    assert any("automatically" in str(c.args.get("text")) for c in dms_to(fake_slack, ALICE))
    actions = [(e.actor, e.action) for e in events(bot, dep)]
    assert ("system", "expiry_warning") in actions and ("system", "auto_stop") in actions

    tick_at(bot, clock, minutes=30)  # nothing more: it is stopped
    assert len(stops(bot)) == 1


def test_extend_moves_the_end_once_and_an_old_button_changes_nothing(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, warning = warned(bot, clock, fake_slack)
    extend = button(warning, extend_action_id(2))

    answer = press(bot, extend_action_id(2), extend["value"])
    assert "Extended" in answer
    # The answered warning is replaced by the answer: no stale end time, no buttons left.
    assert fake_slack.calls_to("response_url")[-1].args.get("replace_original") is True
    after = current(bot, dep)
    assert after.ends_at == dep.ends_at + timedelta(hours=2)
    assert after.expiry_warned_at is None
    assert ("U0ALICE01", "extend") in [(e.actor, e.action) for e in events(bot, dep)]

    again = press(bot, extend_action_id(2), extend["value"])  # the same button, pressed again
    assert "already extended" in again
    assert current(bot, dep).ends_at == after.ends_at

    tick_at(bot, clock, minutes=30)  # past the old end: it keeps running
    assert current(bot, dep).status == "ready"
    assert stops(bot) == []
    tick_at(bot, clock, minutes=90)  # 25 minutes before the new end: warned again
    assert len(dms_to(fake_slack, ALICE)) == 2


def test_extending_past_the_maximum_needs_an_admin(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(clock=clock, bot_admins=ADMIN, max_lifetime_hours=3, default_lifetime_hours=2)
    dep, warning = warned(bot, clock, fake_slack)
    assert ADMIN in str(warning.args["blocks"])  # the owner is told who can
    value = button(warning, extend_action_id(2))["value"]

    refused = press(bot, extend_action_id(2), value)
    assert "needs" in refused and ADMIN in refused
    assert current(bot, dep).ends_at == dep.ends_at

    done = press(bot, extend_action_id(2), value, user=ADMIN)
    assert "Extended" in done
    assert current(bot, dep).ends_at == dep.ends_at + timedelta(hours=2)


def test_a_non_owner_cannot_extend(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, warning = warned(bot, clock, fake_slack)
    answer = press(
        bot, extend_action_id(2), button(warning, extend_action_id(2))["value"], user=BOB
    )
    assert "Only" in answer and ALICE in answer
    assert fake_slack.calls_to("response_url")[-1].args.get("replace_original") is False
    assert current(bot, dep).ends_at == dep.ends_at


def test_on_expiry_destroy_destroys_once(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(clock=clock, on_expiry="destroy")
    dep = expired(bot, clock)
    assert current(bot, dep).status == "destroyed"
    assert len(destroys(bot)) == 1
    notes = thread_notes(fake_slack, dep)
    assert any("Destroyed automatically" in n for n in notes), notes
    tick_at(bot, clock, minutes=5)
    assert len(destroys(bot)) == 1


def test_a_button_of_a_destroyed_deployment_says_so(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, warning = warned(bot, clock, fake_slack)
    bot.services.manage.perform("destroy", dep.id, ALICE)
    answer = press(bot, extend_action_id(8), button(warning, extend_action_id(8))["value"])
    assert "already ended" in answer
    assert current(bot, dep).status == "destroyed"


def test_a_late_warning_still_leaves_time_to_answer(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """The bot was down over the warning time: it warns first and acts no sooner than
    MIN_NOTICE later, and no later than that."""
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    tick_at(bot, clock, minutes=130)  # 10 minutes past the end, first tick since
    assert len(dms_to(fake_slack, ALICE)) == 1
    assert current(bot, dep).status == "ready"
    tick_at(bot, clock, minutes=4)
    assert current(bot, dep).status == "ready"
    tick_at(bot, clock, minutes=2)
    assert current(bot, dep).status == "stopped"


def _dates(payload: Any) -> list[int]:
    """The epochs of every ``<!date^EPOCH^…>`` in a message's text and blocks."""
    return [int(m) for m in re.findall(r"<!date\^(\d+)\^", json.dumps(payload))]


def _status_ends(fake: FakeSlack, dep: DeploymentRecord) -> list[int]:
    """The end time(s) the latest status message of ``dep`` shows (epochs)."""
    last = [c for c in fake.calls_to("chat.update") if c.args.get("ts") == dep.message_ts][-1]
    blocks = last.args.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return _dates([b for b in blocks if str(b.get("block_id", "")).startswith("dep_ends_")])


def test_a_one_minute_warning_is_kept_and_the_status_message_shows_the_same_end(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """LIFETIME_WARNING_MINUTES=1: the warning at end − 1 min says "stops at end + 4 min"
    (never less than MIN_NOTICE away). The bot must not stop it at end + 1 min (the old hard
    limit, three minutes before the time it announced), and the status message must show
    the same end as the DM."""
    bot = bot_factory(clock=clock, lifetime_warning_minutes=1)
    dep = deploy(bot, clock, lifetime_hours=2)
    assert dep.ends_at is not None
    busy(bot, dep)
    tick_at(bot, clock, minutes=119)  # the warning: one minute before the end
    (warning,) = dms_to(fake_slack, ALICE)
    announced = set(_dates(warning.args))
    promised = int((dep.ends_at + timedelta(minutes=4)).timestamp())
    assert announced == {promised}
    tick_at(bot, clock, minutes=1.5)  # end + 30 s
    assert set(_status_ends(fake_slack, dep)) == announced
    tick_at(bot, clock, minutes=1)  # end + 90 s: past the old hard limit (end + 1 min)
    assert current(bot, dep).status == "ready" and stops(bot) == []
    tick_at(bot, clock, minutes=2.4)  # end + 3 min 54 s
    assert current(bot, dep).status == "ready"
    tick_at(bot, clock, minutes=0.2)  # end + 4 min 6 s: the announced time passed
    assert current(bot, dep).status == "stopped" and len(stops(bot)) == 1


def test_a_ready_container_that_exits_is_stopped_after_ten_minutes_with_its_message(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """Vast.ai still holds the GPU of an exited container: the deployment stays ready (its
    disk is not destroyed), the owner and the thread are told with Vast.ai's message
    (escaped), and 10 minutes later it is stopped, which keeps the disk."""
    dep = deploy(bot, clock, lifetime_hours=8)
    busy(bot, dep)
    assert dep.instance_id is not None
    bot.vast.exit_instance(dep.instance_id, "exit 137 <@U0EVIL> & <!here>")
    tick_at(bot, clock, minutes=1)  # first seen exited
    assert current(bot, dep).status == "ready"
    escaped = "exit 137 &lt;@U0EVIL&gt; &amp; &lt;!here&gt;"
    notices = [c for c in dms_to(fake_slack, ALICE) if "exited" in str(c.args.get("text"))]
    assert len(notices) == 1 and escaped in str(notices[0].args["text"])
    assert any(escaped in note for note in thread_notes(fake_slack, dep))
    assert escaped in json.dumps(
        [c.args for c in fake_slack.calls_to("chat.update") if c.args.get("ts") == dep.message_ts]
    )
    for _ in range(9):
        tick_at(bot, clock, minutes=1)  # exited for 9 minutes
    assert current(bot, dep).status == "ready" and stops(bot) == []
    assert bot.vast.request_count("DELETE") == 0
    tick_at(bot, clock, minutes=1)  # 10 minutes
    assert current(bot, dep).status == "stopped" and len(stops(bot)) == 1
    assert bot.vast.request_count("DELETE") == 0  # the disk is kept
    told = [c for c in dms_to(fake_slack, ALICE) if "Stopped automatically" in str(c.args)]
    assert len(told) == 1 and escaped in str(told[0].args["text"])
    assert "<@U0EVIL>" not in json.dumps([c.args for c in dms_to(fake_slack, ALICE)])


def test_a_crash_looping_container_is_announced_once_and_stopped(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """A container that exits, is restarted by Docker and exits again (seen exited for 105 s,
    then running for one 15 s poll, again and again) gets one notice, not one per crash, and
    is stopped 10 minutes after it first exited, while it still would bill."""
    dep = deploy(bot, clock, lifetime_hours=8)
    busy(bot, dep)
    assert dep.instance_id is not None
    instance_id = dep.instance_id

    def running_again(inst: object) -> None:
        inst.override = None  # type: ignore[attr-defined]  # the simulator's restart

    first_exit = clock()
    for _ in range(10):  # 20 minutes
        bot.vast.exit_instance(instance_id)
        for _ in range(7):
            tick_at(bot, clock, seconds=15)
        bot.vast._with(instance_id, running_again)
        tick_at(bot, clock, seconds=15)
        if current(bot, dep).status == "stopped":
            break
    notices = [c for c in dms_to(fake_slack, ALICE) if "still holds its GPU" in str(c.args)]
    assert len(notices) == 1
    assert current(bot, dep).status == "stopped" and len(stops(bot)) == 1
    auto = [e for e in events(bot, dep) if e.action == "auto_stop"]
    assert len(auto) == 1 and auto[0].at <= first_exit + timedelta(minutes=10, seconds=30)


def test_an_undeliverable_warning_does_not_keep_it_billing(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """Slack refuses every message (bot removed, owner unreachable): the bot still acts no
    later than the end plus LIFETIME_WARNING_MINUTES, and does not retry the warning for ever."""
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    fake_slack.fail("chat.postMessage", "channel_not_found", times=1000)
    fake_slack.fail("conversations.open", "user_not_found", times=1000)
    for _ in range(6):
        tick_at(bot, clock, minutes=20)  # 2 h: the end
    assert current(bot, dep).status == "ready"
    tick_at(bot, clock, minutes=31)  # the end plus LIFETIME_WARNING_MINUTES
    assert current(bot, dep).status == "stopped"
    assert len(stops(bot)) == 1
    warnings = [e for e in events(bot, dep) if e.action == "expiry_warning"]
    assert 1 <= len(warnings) <= 3  # retried while before the end, not on every tick after


def test_an_automatic_stop_vast_refuses_is_retried_and_the_owner_told_once(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    tick_at(bot, clock, minutes=95)
    clock.advance(minutes=25)  # the end
    bot.vast.inject(Fault.BAD_KEY, endpoint="manage", times=3)
    tick_at(bot, clock, minutes=1)  # the rule records the stop and sends it: refused
    assert len(stops(bot)) == 1
    for _ in range(3):
        tick_at(bot, clock, minutes=1)  # recorded and not due yet: nothing more is sent
    assert len(stops(bot)) == 1
    # The reconciler sends it again when each try falls due (poll interval 1 h, doubling).
    tick_at(bot, clock, minutes=60)
    tick_at(bot, clock, minutes=120)
    assert len(stops(bot)) == 3
    assert current(bot, dep).status == "ready"
    told = [c for c in dms_to(fake_slack, ALICE) if "could not stop" in str(c.args.get("text"))]
    assert len(told) == 1 and "still running and billing" in str(told[0].args["text"])
    assert any("could not stop" in n for n in thread_notes(fake_slack, dep))
    tick_at(bot, clock, minutes=240)  # Vast.ai accepts again
    assert current(bot, dep).status == "stopped"
    assert len(stops(bot)) == 4
    retries = [e.detail for e in events(bot, dep) if e.action == "stop_retry"]
    assert len(retries) == 3 and "accepted" in str(retries[-1])


def test_extend_on_a_late_warning_works(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    tick_at(bot, clock, minutes=118)  # the first tick in the window: 2 minutes before the end
    (warning,) = dms_to(fake_slack, ALICE)
    answer = press(bot, extend_action_id(2), button(warning, extend_action_id(2))["value"])
    assert "Extended" in answer
    tick_at(bot, clock, minutes=10)
    assert current(bot, dep).status == "ready"


def test_an_extension_during_a_tick_wins_over_its_stop(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """The tick read the row before the owner pressed Extend: its stop must not go through."""
    dep = deploy(bot, clock, lifetime_hours=2)
    busy(bot, dep)
    tick_at(bot, clock, minutes=95)
    clock.advance(minutes=30)
    seen = current(bot, dep)  # what the tick read: past its end, warned
    instances = {i.id: i for i in bot.services.vast.list_instances()}
    (warning,) = dms_to(fake_slack, ALICE)
    assert "Extended" in press(
        bot, extend_action_id(2), button(warning, extend_action_id(2))["value"]
    )
    bot.services.lifetimes.review([seen], instances, clock())
    assert current(bot, dep).status == "ready"
    assert stops(bot) == []


def test_start_after_an_automatic_stop_begins_a_new_run(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep = expired(bot, clock)
    assert current(bot, dep).status == "stopped"
    clock.advance(hours=5)
    pressed = clock()
    assert bot.services.manage.perform("start", dep.id, ALICE).kind == "done"
    bot.vast.advance(10)
    tick_at(bot, clock, minutes=1)
    restarted = current(bot, dep)
    assert restarted.status == "ready"
    assert restarted.ends_at == pressed + timedelta(hours=2)  # the new run bills from Start
    assert restarted.expiry_warned_at is None
    tick_at(bot, clock, minutes=10)
    assert current(bot, dep).status == "ready"  # not stopped by the old run's end


def test_started_outside_the_bot_after_its_end_gets_a_new_run(
    bot: BotHarness, clock: MovableClock
) -> None:
    dep = expired(bot, clock)
    assert current(bot, dep).status == "stopped"
    assert dep.instance_id is not None
    bot.services.vast.start_instance(dep.instance_id)  # someone used the Vast.ai console
    bot.vast.advance(10)
    tick_at(bot, clock, hours=3)
    restarted = current(bot, dep)
    assert restarted.status == "ready"
    assert restarted.ends_at == clock() + timedelta(hours=2)
    assert restarted.expiry_warned_at is None


def test_a_start_whose_app_never_answers_is_stopped_at_its_end(
    bot: BotHarness, clock: MovableClock
) -> None:
    """The row stays stopped while Vast.ai runs the instance (the app never answers): its GPU
    bills, so the lifetime still ends it."""
    dep = deploy(bot, clock, lifetime_hours=2)
    assert bot.services.manage.perform("stop", dep.id, ALICE).kind == "done"
    assert bot.services.manage.perform("start", dep.id, ALICE).kind == "done"
    assert dep.instance_id is not None
    bot.vast.app_never_ready(dep.instance_id)
    bot.vast.advance(10)
    bot.vast.clear_requests()
    for _ in range(5):
        tick_at(bot, clock, minutes=30)
    assert current(bot, dep).status == "stopped"
    assert len(stops(bot)) == 1
    assert bot.vast.instances[dep.instance_id]["actual_status"] != "running"


@pytest.mark.parametrize("start_answer_lost", [False, True], ids=["accepted", "answer-lost"])
def test_a_start_whose_container_exits_is_stopped_not_left_billing(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack, start_answer_lost: bool
) -> None:
    """Vast.ai accepts a Start (``intended_status`` running: the GPU bills) and the container
    exits before the app answers: the row stays ``stopped``, yet the bot stops it 10 minutes
    later (the owner is told why), before the end of its lifetime. With the Start's answer
    lost (a 504, though Vast.ai carried it out: still pending), the rules wait until the
    reconciler reads the instance and confirms the Start, then stop it at once."""
    dep = deploy(bot, clock, lifetime_hours=1)
    assert bot.services.manage.perform("stop", dep.id, ALICE).kind == "done"
    if start_answer_lost:
        bot.vast.inject(Fault.GATEWAY_TIMEOUT, endpoint="manage", times=None)
    started = bot.services.manage.perform("start", dep.id, ALICE)
    bot.vast.clear_faults()
    assert started.kind == ("pending" if start_answer_lost else "done"), started.message
    assert dep.instance_id is not None
    if start_answer_lost:  # Vast.ai carried it out all the same
        bot.services.vast.start_instance(dep.instance_id)
    bot.vast.exit_instance(dep.instance_id)
    bot.vast.clear_requests()
    fake_slack.reset()
    for _ in range(45):  # short of the 1 h lifetime; a lost answer is read again in 30 min
        tick_at(bot, clock, minutes=1)
    assert current(bot, dep).status == "stopped"
    assert bot.vast.instances[dep.instance_id]["intended_status"] == "stopped"  # GPU freed
    assert len(stops(bot)) == 1 and bot.vast.request_count("DELETE") == 0  # disk kept
    told = [c for c in dms_to(fake_slack, ALICE) if "Stopped automatically" in str(c.args)]
    assert len(told) == 1 and "exited" in str(told[0].args["text"])


# -- idle GPUs ---------------------------------------------------------------------------


def idle_question(
    bot: BotHarness, clock: MovableClock, fake: FakeSlack
) -> tuple[DeploymentRecord, Call]:
    dep = deploy(bot, clock, lifetime_hours=24)
    busy(bot, dep, gpu_util=0.01)  # a fraction, as the OpenAPI says: 1 %
    fake.reset()
    tick_at(bot, clock, minutes=1)  # the idle stretch begins
    tick_at(bot, clock, minutes=59)
    assert dms_to(fake, ALICE) == []
    tick_at(bot, clock, minutes=2)  # idle for an hour: the owner is asked
    (question,) = dms_to(fake, ALICE)
    assert "idle" in str(question.args.get("text")).lower()
    return dep, question


def test_idle_then_keep_running_means_no_stop(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, question = idle_question(bot, clock, fake_slack)
    answer = press(bot, ACTION_KEEP_RUNNING, button(question, ACTION_KEEP_RUNNING)["value"])
    assert "keeps running" in answer
    tick_at(bot, clock, minutes=31)
    tick_at(bot, clock, minutes=60)
    assert current(bot, dep).status == "ready"
    assert stops(bot) == []
    assert len(dms_to(fake_slack, ALICE)) == 1  # no new question while snoozed
    again = press(bot, ACTION_KEEP_RUNNING, button(question, ACTION_KEEP_RUNNING)["value"])
    assert "already answered" in again


def test_idle_without_an_answer_is_stopped(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, _ = idle_question(bot, clock, fake_slack)
    tick_at(bot, clock, minutes=29)
    assert current(bot, dep).status == "ready"
    tick_at(bot, clock, minutes=2)
    assert current(bot, dep).status == "stopped"
    assert len(stops(bot)) == 1
    assert any("idle" in n for n in thread_notes(fake_slack, dep))
    assert ("system", "auto_stop") in [(e.actor, e.action) for e in events(bot, dep)]


def test_a_busy_gpu_again_ends_the_idle_stretch(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep, _ = idle_question(bot, clock, fake_slack)
    busy(bot, dep, gpu_util=70.0)
    tick_at(bot, clock, minutes=1)
    tick_at(bot, clock, minutes=40)
    assert current(bot, dep).status == "ready"
    assert current(bot, dep).idle_warned_at is None


def test_unknown_gpu_util_is_never_idle(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot, clock, lifetime_hours=24)
    busy(bot, dep, gpu_util=None)
    fake_slack.reset()
    for _ in range(4):
        tick_at(bot, clock, minutes=45)
    assert dms_to(fake_slack, ALICE) == []
    assert current(bot, dep).status == "ready"
    assert current(bot, dep).idle_since is None


# -- reminders and the digest -------------------------------------------------------------

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)


def stopped_now(harness: BotHarness, clock: MovableClock) -> DeploymentRecord:
    """A deployment stopped by its owner at the clock's now."""
    dep = deploy(harness, clock, lifetime_hours=8)
    harness.services.manage.perform("stop", dep.id, ALICE)
    stopped = current(harness, dep)
    assert stopped.status == "stopped" and stopped.stopped_at == clock()
    return stopped


def test_stopped_reminder_waits_for_the_owners_morning(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    clock = MovableClock(MONDAY - timedelta(days=4))
    bot = bot_factory(clock=clock)
    fake_slack.users_tz[ALICE] = "America/New_York"
    dep = stopped_now(bot, clock)
    fake_slack.reset()

    clock.set(MONDAY + timedelta(hours=13, minutes=30))  # 08:30 in New York
    report = bot.services.reminders.run()
    assert report.reminders == 0 and report.held == 1
    assert dms_to(fake_slack, ALICE) == []

    clock.set(MONDAY + timedelta(hours=14, minutes=5))  # 09:05 in New York
    assert bot.services.reminders.run().reminders == 1
    (reminder,) = dms_to(fake_slack, ALICE)
    text = str(reminder.args.get("text")) + str(reminder.args.get("blocks"))
    assert "stopped" in text and "/month" in text
    button(reminder, "deployment_start")
    button(reminder, ACTION_DESTROY)

    clock.advance(hours=2)
    assert bot.services.reminders.run().reminders == 0  # once a day
    assert len(fake_slack.calls_to("users.info")) == 1  # the time zone is cached

    clock.set(MONDAY + timedelta(days=1, hours=14, minutes=5))  # Tuesday morning
    assert bot.services.reminders.run().reminders == 1
    assert ("system", "reminder") in [(e.actor, e.action) for e in events(bot, dep)]


def test_no_reminders_at_the_weekend(bot_factory: BotFactory, fake_slack: FakeSlack) -> None:
    clock = MovableClock(MONDAY - timedelta(days=6))
    bot = bot_factory(clock=clock)
    stopped_now(bot, clock)
    clock.set(MONDAY - timedelta(days=1) + timedelta(hours=12))  # Sunday noon UTC
    assert bot.services.reminders.run().reminders == 0


def test_digest_once_a_day_at_its_hour(bot_factory: BotFactory, fake_slack: FakeSlack) -> None:
    clock = MovableClock(MONDAY + timedelta(hours=5))
    bot = bot_factory(
        clock=clock, digest_channel="C0DIGEST01", digest_hour=9, digest_timezone="Europe/Berlin"
    )
    dep = deploy(bot, clock, lifetime_hours=24)
    fake_slack.reset()
    clock.set(MONDAY + timedelta(hours=7, minutes=30))  # 08:30 in Berlin
    assert bot.services.reminders.run().digests == 0
    clock.set(MONDAY + timedelta(hours=8, minutes=1))  # 09:01 in Berlin
    assert bot.services.reminders.run().digests == 1
    (posted,) = [
        c for c in fake_slack.calls_to("chat.postMessage") if c.args["channel"] == "C0DIGEST01"
    ]
    text = str(posted.args.get("blocks"))
    assert dep.template_name in text and ALICE in text
    assert bot.services.reminders.run().digests == 0


# -- unmanaged instances -----------------------------------------------------------------


def test_instances_rented_by_hand_are_shown_to_admins_and_never_destroyed(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    deploy(bot, clock, lifetime_hours=8)
    manual = bot.vast.create_instance_directly(disk_gb=20, label=None)
    for _ in range(3):
        tick_at(bot, clock, minutes=1)
    assert manual in bot.vast.instances
    assert destroys(bot) == []

    admin = bot.command("running", user=ADMIN).json()
    assert "Unmanaged: 1 instance" in str(admin)
    member = bot.command("running", user=BOB).json()
    assert "Unmanaged" not in str(member)


# -- several processes -------------------------------------------------------------------


def test_two_processes_stop_once_and_remind_once(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    clock = MovableClock(MONDAY + timedelta(hours=10))
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim, clock=clock)
        second = bot_factory(simulator=sim, clock=clock)
        parked = stopped_now(first, clock)
        clock.advance(days=4)  # Friday 10:00 UTC: the parked one is due a reminder
        expiring = deploy(first, clock, lifetime_hours=2)
        busy(first, expiring)
        clock.advance(minutes=95)  # its warning is due
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def both(harness: BotHarness) -> None:
            try:
                barrier.wait()
                deps = [current(harness, expiring)]
                instances = {i.id: i for i in harness.services.vast.list_instances()}
                harness.services.lifetimes.review(deps, instances, clock())
                harness.services.reminders.run()
            except BaseException as error:  # reported below: a thread's error must fail the test
                errors.append(error)

        threads = [threading.Thread(target=both, args=(h,)) for h in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        # Warned once, by one of them.
        assert [e.action for e in events(first, expiring)].count("expiry_warning") == 1
        clock.advance(minutes=26)
        threads = [threading.Thread(target=both, args=(h,)) for h in (first, second)]
        barrier.reset()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        assert current(first, expiring).status == "stopped"
        stop_requests = [
            r
            for r in sim.requests
            if r.method == "PUT" and (r.json or {}).get("state") == "stopped"
        ]
        assert len(stop_requests) == 1  # the expiring one, once (deploy() cleared the log)
        reminders = [e for e in events(first, parked) if e.action == "reminder"]
        assert len(reminders) == 1
    finally:
        sim.stop()


# -- Run for: the picker and the submission ------------------------------------------------


def lifetime_block(view: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == picker.BLOCK_LIFETIME)


def open_picker(harness: BotHarness, slug: str, user: str) -> dict[str, Any]:
    before = len(harness.slack.calls_to("views.update"))
    assert harness.block_action("deploy_template", slug, user=user).status_code == 200
    return dict(harness.slack.wait_for("views.update", before + 1)[-1].args["view"])


def test_run_for_defaults_and_the_maximum_in_the_picker(bot: BotHarness) -> None:
    block = lifetime_block(open_picker(bot, "jupyter-lab", ALICE))
    assert block["element"]["initial_option"]["value"] == "8"  # DEFAULT_LIFETIME_HOURS
    labels = [o["text"]["text"] for o in block["element"]["options"]]
    assert labels == ["2 hours", "4 hours", "8 hours", "1 day", "3 days"]  # ≤ MAX (72 h)
    assert "Until I stop it" not in labels

    admin = lifetime_block(open_picker(bot, "jupyter-lab", ADMIN))
    assert "1 week" in [o["text"]["text"] for o in admin["element"]["options"]]

    vllm = lifetime_block(open_picker(bot, "vllm", ALICE))
    assert vllm["element"]["initial_option"]["value"] == "24"  # the template's own default


def submitted_with(offer: int, lifetime: str | None, view_id: str) -> dict[str, Any]:
    view = submitted_view(offer, view_id=view_id)
    if lifetime is not None:
        view["state"]["values"][picker.BLOCK_LIFETIME] = {
            picker.ACTION_LIFETIME: {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": lifetime},
                    "value": lifetime,
                },
            }
        }
    return view


def test_run_for_is_checked_and_stored_on_submit(bot: BotHarness) -> None:
    chosen = pick_offer(bot)
    for value, who in (("168", ALICE), ("unlimited", ALICE), ("-3", ALICE), ("9e9", ALICE)):
        answer = bot.view_submission(submitted_with(chosen.offer.id, value, "V0BAD0001"), user=who)
        errors = answer.json()["errors"]
        assert picker.BLOCK_LIFETIME in errors, (value, errors)
    refusal = bot.view_submission(submitted_with(chosen.offer.id, "168", "V0BAD0002")).json()
    assert ADMIN in refusal["errors"][picker.BLOCK_LIFETIME]  # says who may
    assert storage.list_by_status(bot.services.session_factory, ["creating"]) == []

    answer = bot.view_submission(submitted_with(chosen.offer.id, "24", "V0GOOD001"))
    assert answer.json() == {"response_action": "clear"}
    (dep,) = settled(bot)
    assert dep.lifetime_hours == 24 and dep.ends_at == dep.created_at + timedelta(hours=24)


def test_admin_may_choose_past_the_maximum_and_an_old_picker_gets_the_default(
    bot: BotHarness,
) -> None:
    bot.view_submission(submitted_with(pick_offer(bot).offer.id, "168", "V0ADMIN01"), user=ADMIN)
    settled(bot)
    bot.view_submission(submitted_with(pick_offer(bot).offer.id, None, "V0OLDPICK"))
    deps = {d.request_key: d for d in settled(bot, 2)}
    assert deps["V0ADMIN01"].lifetime_hours == 168
    assert deps["V0OLDPICK"].lifetime_hours == 8  # no Run for input: never no end
