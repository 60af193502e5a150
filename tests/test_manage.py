"""Managing deployments through the real app: listings, Stop/Start/Destroy with permissions
and idempotency (the simulator counts the requests), costs and credit."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.simulator import VastSimulator
from bot.simulator.faults import Fault
from bot.vast.errors import classify
from storage import DeploymentRecord
from tests.blockkit import buttons, texts
from tests.fixtures.slack import (
    ALICE,
    BOB,
    CHANNEL,
    FAST_TIMELINE,
    BotFactory,
    BotHarness,
    MovableClock,
)

ADMIN = "U0ADMIN01"
MANAGE_PATH = "/api/v0/instances/"


# --- helpers (also used by tests/test_home.py) ------------------------------------------


def make_deployment(
    bot: BotHarness,
    *,
    user: str = ALICE,
    status: str = "ready",
    ready_hours: float = 0.0,
    dph: float = 0.4,
    disk: float = 16,
    template: tuple[str, str] = ("jupyter-lab", "JupyterLab"),
    message_ts: str | None = None,
) -> DeploymentRecord:
    """A deployment with a live simulator instance, moved to ``status``; when ``ready_hours``
    is given it has been ready that long. The simulator's request log is cleared after."""
    sf = bot.services.session_factory
    now = storage.utcnow()
    created = now - timedelta(hours=ready_hours, minutes=10)
    instance_id = bot.vast.create_instance_directly(disk_gb=disk, label="test")
    dep, _ = storage.create_deployment(
        sf,
        request_key=uuid.uuid4().hex,
        team_id=TEAM_ID,
        user_id=user,
        channel_id=CHANNEL,
        template_slug=template[0],
        template_name=template[1],
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=dph,
        disk_gb=disk,
        simulated=True,
        now=created,
    )
    storage.set_instance(sf, dep.id, instance_id, now=created)
    path = {
        "creating": [],
        "provisioning": ["provisioning"],
        "ready": ["provisioning", "ready"],
        "stopped": ["provisioning", "ready", "stopped"],
        "destroyed": ["provisioning", "ready", "destroyed"],
    }[status]
    current = "creating"
    for step in path:
        at = now if step in ("stopped", "destroyed") else now - timedelta(hours=ready_hours)
        assert storage.update_status(sf, dep.id, expected_status=current, new_status=step, now=at)
        current = step
    if status == "stopped":
        bot.services.vast.stop_instance(instance_id)
    storage.set_message(sf, dep.id, CHANNEL, message_ts or f"1732900000.{900000 + dep.id}")
    bot.vast.clear_requests()
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def status_of(bot: BotHarness, deployment_id: int) -> str:
    dep = storage.get_deployment(bot.services.session_factory, deployment_id)
    assert dep is not None
    return dep.status


def manage_requests(bot: BotHarness, method: str) -> list[Any]:
    return [r for r in bot.vast.requests if r.method == method and r.path.startswith(MANAGE_PATH)]


def click(bot: BotHarness, action_id: str, dep: DeploymentRecord, **kwargs: Any) -> None:
    """Press a button on the deployment's status message (a normal channel message)."""
    assert dep.message_ts is not None
    response = bot.block_action(
        action_id,
        str(dep.id),
        message_ts=dep.message_ts,
        is_ephemeral=False,
        block_id=f"dep_actions_{dep.id}",
        **kwargs,
    )
    assert response.status_code == 200


def click_twice_concurrently(bot: BotHarness, action_id: str, dep: DeploymentRecord) -> None:
    barrier = threading.Barrier(2)

    def press() -> None:
        barrier.wait()
        click(bot, action_id, dep)

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def replies(fake_slack: FakeSlack, count: int) -> list[str]:
    return [str(call.args.get("text")) for call in fake_slack.wait_for("response_url", count)]


# --- listings ---------------------------------------------------------------------------


def test_mine_lists_my_deployments_with_costs_link_and_buttons(bot: BotHarness) -> None:
    ready = make_deployment(bot, ready_hours=2, dph=0.4)
    stopped = make_deployment(bot, status="stopped", template=("comfy-ui", "ComfyUI"))
    make_deployment(bot, user=BOB, template=("vllm", "vLLM"))

    started = time.monotonic()
    response = bot.command("mine")
    assert time.monotonic() - started < 3.0
    payload = response.json()
    assert payload["response_type"] == "ephemeral"
    blocks = payload["blocks"]
    text = texts(blocks)
    assert "JupyterLab" in text and "ComfyUI" in text and "vLLM" not in text
    assert "1× RTX 4090 (24 GB)" in text
    assert "$0.40/h" in text and "$0.80 so far" in text  # 2 h ready × $0.40
    assert "age 2h 10m" in text
    ts = ready.message_ts
    assert ts is not None
    assert f"https://gpu-team.slack.com/archives/{CHANNEL}/p{ts.replace('.', '')}" in text
    by_action = {(b["action_id"], b["value"]) for b in buttons(blocks)}
    assert ("deployment_stop", str(ready.id)) in by_action
    assert ("deployment_destroy", str(ready.id)) in by_action
    assert ("deployment_start", str(stopped.id)) in by_action
    destroy = next(b for b in buttons(blocks) if b["action_id"] == "deployment_destroy")
    assert "RTX 4090" in destroy["confirm"]["text"]["text"]
    assert "cost so far $" in destroy["confirm"]["text"]["text"]
    assert len(blocks) <= 50


def test_running_shows_the_workspace_and_buttons_only_where_allowed(
    bot_factory: BotFactory,
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    mine = make_deployment(bot)
    bobs = make_deployment(bot, user=BOB, template=("vllm", "vLLM"))
    gone = make_deployment(bot, status="destroyed", template=("comfy-ui", "ComfyUI"))

    blocks = bot.command("running").json()["blocks"]
    text = texts(blocks)
    assert f"<@{BOB}>" in text and f"<@{ALICE}>" in text
    assert "ComfyUI" not in text  # destroyed ones are not running
    values = {b["value"] for b in buttons(blocks)}
    assert str(mine.id) in values and str(bobs.id) not in values
    admin_values = {
        b["value"] for b in buttons(bot.command("running", user=ADMIN).json()["blocks"])
    }
    assert {str(mine.id), str(bobs.id)} <= admin_values
    assert str(gone.id) not in admin_values


def test_empty_listings_say_what_to_do(bot: BotHarness) -> None:
    assert "/templates" in texts(bot.command("mine").json()["blocks"])
    assert "no GPU is billing" in texts(bot.command("running").json()["blocks"])


def test_listing_pages_within_block_kit_limits(bot: BotHarness, fake_slack: FakeSlack) -> None:
    for _ in range(23):
        make_deployment(bot)
    first = bot.command("mine").json()["blocks"]
    assert len(first) <= 50
    assert "page 1 of 3" in texts(first)
    nxt = [b for b in buttons(first) if b["action_id"] == "manage_list_next"]
    assert len(nxt) == 1 and json.loads(nxt[0]["value"]) == {"k": "mine", "p": 1}
    bot.block_action("manage_list_next", nxt[0]["value"])
    second = fake_slack.wait_for("response_url")[0].args
    assert second["replace_original"] is True
    assert "page 2 of 3" in texts(second["blocks"])
    shown = {
        b["value"] for b in buttons(first + second["blocks"]) if "deployment_" in b["action_id"]
    }
    assert len(shown) == 20


# --- stop -------------------------------------------------------------------------------


def test_stop_from_the_status_message(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = make_deployment(bot)
    click(bot, "deployment_stop", dep)
    text = replies(fake_slack, 1)[0]
    assert "Stopped *JupyterLab*" in text and "disk still bills" in text

    puts = manage_requests(bot, "PUT")
    assert [(r.path, r.json) for r in puts] == [
        (f"{MANAGE_PATH}{dep.instance_id}/", {"state": "stopped"})
    ]
    shown = bot.vast.instance(dep.instance_id or 0)
    assert shown is not None
    assert (shown["actual_status"], shown["intended_status"]) == ("exited", "stopped")
    assert status_of(bot, dep.id) == "stopped"
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "stop" and e.actor == ALICE for e in events)
    assert any(e.detail == "ready -> stopped" and e.actor == ALICE for e in events)

    # the poller sees the stopped (exited) container and keeps the disk: no destroy
    report = bot.services.poller.tick()
    assert report.error is None
    assert status_of(bot, dep.id) == "stopped"
    assert manage_requests(bot, "DELETE") == []

    update = fake_slack.wait_for("chat.update", ts=dep.message_ts)[-1]
    assert "Stopped" in texts(update.args["blocks"])
    assert [b["action_id"] for b in buttons(update.args["blocks"])] == [
        "deployment_start",
        "deployment_share",
        "deployment_destroy",
    ]
    thread = fake_slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)[0]
    assert f"<@{ALICE}> stopped it" in thread.args["text"]
    fake_slack.wait_for("views.publish", user_id=ALICE)


@pytest.mark.parametrize("concurrent", [False, True], ids=["one-after-other", "concurrent"])
def test_double_stop_sends_one_request(
    bot: BotHarness, fake_slack: FakeSlack, concurrent: bool
) -> None:
    dep = make_deployment(bot)
    if concurrent:
        click_twice_concurrently(bot, "deployment_stop", dep)
    else:
        click(bot, "deployment_stop", dep)
        click(bot, "deployment_stop", dep)
    answers = replies(fake_slack, 2)
    assert len(manage_requests(bot, "PUT")) == 1
    # The second click finds it stopped, or its stop recorded and still being sent.
    assert sum("already stopped" in a or "already being stopped" in a for a in answers) == 1
    assert status_of(bot, dep.id) == "stopped"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # one thread reply


def test_stop_vast_refuses_stays_ready_and_recorded(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = make_deployment(bot)
    bot.vast.inject(Fault.BAD_KEY, endpoint="manage")
    click(bot, "deployment_stop", dep)
    text = replies(fake_slack, 1)[0]
    assert "did not stop" in text and "still running and billing" in text
    assert "keeps sending it" in text
    record = storage.get_deployment(bot.services.session_factory, dep.id)
    assert record is not None and record.status == "ready"  # Vast.ai accepted nothing
    assert record.desired_state == "stopped" and record.desired_next_try_at is not None
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "stop_failed" and e.actor == ALICE for e in events)
    update = fake_slack.wait_for("chat.update", ts=dep.message_ts)[-1]
    assert "Stopping…" in texts(update.args["blocks"])  # the message says what is going on
    assert "deployment_stop" not in [b["action_id"] for b in buttons(update.args["blocks"])]


class _Crash(BaseException):
    """The process dies here: nothing in the bot catches it."""


def test_a_stop_lost_in_a_crash_is_carried_out_after_a_restart(
    bot_factory: BotFactory, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop is pressed, the process dies before Vast.ai answers (the request never arrived),
    a new process starts on the same database: within two poller passes the instance is
    stopped, the row says so, and the event log shows the retry."""
    clock = MovableClock()
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim, clock=clock)
        dep = make_deployment(first)
        sim.advance(4)  # running

        def lost(instance_id: int) -> None:
            raise _Crash

        monkeypatch.setattr(first.services.vast, "stop_instance", lost)
        with pytest.raises(_Crash):
            first.services.manage.perform("stop", dep.id, ALICE)

        second = bot_factory(simulator=sim, clock=clock)  # the restart
        for _ in range(2):  # two passes, one poll interval (an hour here) apart
            clock.advance(seconds=3600)
            second.services.poller.tick()
        shown = sim.instance(dep.instance_id or 0)
        assert shown is not None and shown["intended_status"] == "stopped"
        assert status_of(second, dep.id) == "stopped"
        events = storage.list_events(second.services.session_factory, dep.id)
        assert any(e.action == "stop_retry" and "accepted" in str(e.detail) for e in events)
    finally:
        sim.stop()


# --- start ------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [False, True], ids=["one-after-other", "concurrent"])
def test_start_after_stop_sends_one_request(
    bot: BotHarness, fake_slack: FakeSlack, concurrent: bool
) -> None:
    dep = make_deployment(bot, status="stopped")
    if concurrent:
        click_twice_concurrently(bot, "deployment_start", dep)
    else:
        click(bot, "deployment_start", dep)
        click(bot, "deployment_start", dep)
    answers = replies(fake_slack, 2)
    puts = manage_requests(bot, "PUT")
    assert [r.json for r in puts] == [{"state": "running"}]
    assert sum("already starting" in a for a in answers) == 1
    assert any("Starting *JupyterLab*" in a for a in answers)
    # The row stays stopped until the poller sees the app answer.
    assert status_of(bot, dep.id) == "stopped"
    assert bot.vast.instance(dep.instance_id or 0)["intended_status"] == "running"  # type: ignore[index]
    update = fake_slack.wait_for("chat.update", ts=dep.message_ts)[-1]
    assert "Starting again" in texts(update.args["blocks"])
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert [e.actor for e in events if e.action == "start"] == [ALICE]


def test_start_refused_by_vast_says_the_gpu_was_taken(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The simulator has no "GPU taken on start" fault: inject the refusal at the client with
    # Vast.ai's error envelope run through the client's own classifier.
    dep = make_deployment(bot, status="stopped")
    calls: list[int] = []

    def refuse(instance_id: int) -> None:
        calls.append(instance_id)
        body = {
            "success": False,
            "error": "unschedulable",
            "msg": "Required resources are not available on this machine.",
        }
        error = classify(
            400, json.dumps(body), "application/json", operation=f"PUT {MANAGE_PATH}{instance_id}/"
        )
        assert error is not None
        raise error

    monkeypatch.setattr(bot.services.vast, "start_instance", refuse)
    click(bot, "deployment_start", dep)
    text = replies(fake_slack, 1)[0]
    assert "rented by someone else" in text and "*Destroy* it and deploy again" in text
    assert "Required resources are not available" in text
    assert status_of(bot, dep.id) == "stopped"
    # The claim was released: the user can try again, and that does reach Vast.ai.
    click(bot, "deployment_start", dep)
    replies(fake_slack, 2)
    assert calls == [dep.instance_id, dep.instance_id]


def test_start_without_credit_says_so(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = make_deployment(bot, status="stopped")
    bot.vast.inject(Fault.NO_CREDIT, endpoint="manage")
    click(bot, "deployment_start", dep)
    text = replies(fake_slack, 1)[0]
    assert "not have enough credit" in text and "still stopped" in text
    assert len(manage_requests(bot, "PUT")) == 1


def test_start_of_a_vanished_instance_marks_it_destroyed(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = make_deployment(bot, status="stopped")
    bot.vast.vanish(dep.instance_id or 0)
    click(bot, "deployment_start", dep)
    assert "no longer exists" in replies(fake_slack, 1)[0]
    assert status_of(bot, dep.id) == "destroyed"  # as the poller records a vanished instance


# --- forged button values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), ("12", 12), ("2147483647", 2**31 - 1), ("2147483648", None), ("9" * 20, None),
     ("0", None), ("012", None), ("-3", None), (" 12", None), ("12\n", None), ("+1", None),
     ("١٢", None), ("1e3", None), ("", None), (None, None), (12, None)],
)  # fmt: skip
def test_a_button_names_a_deployment_only_by_a_bounded_ascii_id(value: Any, expected: Any) -> None:
    from bot.slack.blocks.common import parse_deployment_id

    assert parse_deployment_id(value) == expected


@pytest.mark.parametrize("huge", [2**31, 10**20])
def test_a_forged_huge_deployment_id_is_answered_as_not_found(
    bot: BotHarness, fake_slack: FakeSlack, huge: int
) -> None:
    """A forged value beyond the id column (PostgreSQL INTEGER: 2**31 − 1; SQLite: 2**63 − 1)
    made the database raise: SQLite's OverflowError killed the job (no answer at all),
    PostgreSQL's DataError became "the bot's database did not answer" (Stop/Start/Destroy) or
    escaped (Send me the login). Now the listener and the service answer "not found"."""
    from bot.services.actions import NOT_FOUND_TEXT, OutcomeKind

    manage = bot.services.manage
    for action in ("stop", "start", "destroy"):
        outcome = manage.perform(action, huge, ALICE, team_id=TEAM_ID)
        assert outcome.kind == OutcomeKind.NOT_FOUND, outcome.message
        assert outcome.message == NOT_FOUND_TEXT
    outcome = manage.send_credentials(huge, ALICE, team_id=TEAM_ID)
    assert (outcome.kind, outcome.message) == (OutcomeKind.NOT_FOUND, NOT_FOUND_TEXT)

    pressed = ["deployment_stop", "deployment_start", "deployment_destroy",
               "deployment_credentials"]  # fmt: skip
    for action_id in pressed:
        response = bot.block_action(
            action_id, str(huge), message_ts="1732900000.000100", is_ephemeral=False,
            block_id="dep_actions_1",
        )  # fmt: skip
        assert response.status_code == 200
    assert replies(fake_slack, len(pressed)) == [NOT_FOUND_TEXT] * len(pressed)
    assert manage_requests(bot, "PUT") == [] and manage_requests(bot, "DELETE") == []


# --- destroy ----------------------------------------------------------------------------


@pytest.mark.parametrize("concurrent", [False, True], ids=["one-after-other", "concurrent"])
def test_destroy_after_confirm_sends_one_request(
    bot: BotHarness, fake_slack: FakeSlack, concurrent: bool
) -> None:
    dep = make_deployment(bot, ready_hours=1, dph=0.5)
    # The status message's Destroy button asks first (Slack shows the dialog; the action only
    # arrives after "Destroy" is pressed in it).
    listing = bot.command("mine").json()["blocks"]
    destroy = next(b for b in buttons(listing) if b["action_id"] == "deployment_destroy")
    assert destroy["confirm"]["confirm"]["text"] == "Destroy"
    assert "$0.50" in destroy["confirm"]["text"]["text"]

    if concurrent:
        click_twice_concurrently(bot, "deployment_destroy", dep)
    else:
        click(bot, "deployment_destroy", dep)
        click(bot, "deployment_destroy", dep)
    answers = replies(fake_slack, 2)
    deletes = manage_requests(bot, "DELETE")
    assert [r.path for r in deletes] == [f"{MANAGE_PATH}{dep.instance_id}/"]
    assert bot.vast.instance(dep.instance_id or 0) is None
    assert status_of(bot, dep.id) == "destroyed"
    # The second click finds it destroyed, or its destroy recorded and still being sent.
    assert sum("already destroyed" in a or "already being destroyed" in a for a in answers) == 1
    assert any("Total cost: $0.50" in a for a in answers)
    update = fake_slack.wait_for("chat.update", ts=dep.message_ts)[-1]
    assert "Destroyed" in texts(update.args["blocks"]) and not buttons(update.args["blocks"])
    thread = fake_slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)
    assert len(thread) == 1 and "Total cost $0.50" in thread[0].args["text"]
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert [e.actor for e in events if e.action == "destroy"] == [ALICE]


def test_destroy_vast_refuses_stays_recorded_and_the_bot_destroys_it_later(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = make_deployment(bot, status="stopped")
    bot.vast.inject(Fault.BAD_KEY, endpoint="destroy")
    click(bot, "deployment_destroy", dep)
    text = replies(fake_slack, 1)[0]
    assert "did not destroy" in text and "still exists and bills" in text
    assert "keeps sending it" in text
    record = storage.get_deployment(bot.services.session_factory, dep.id)
    assert record is not None
    assert record.status == "stopped"  # only what Vast.ai accepted changes the status
    assert (record.desired_state, record.desired_tries) == ("destroyed", 1)
    assert record.desired_next_try_at is not None  # pending: the reconciler's work
    assert bot.vast.instance(dep.instance_id or 0) is not None
    # Pressing again sends nothing more: the destroy is recorded and the bot keeps trying.
    click(bot, "deployment_destroy", dep)
    assert "already being destroyed" in replies(fake_slack, 2)[1]
    assert len(manage_requests(bot, "DELETE")) == 1
    # The next try falls due (one poll interval later): the reconciler destroys it.
    poller = bot.services.poller
    poller.clock = lambda: storage.utcnow() + timedelta(seconds=3601)
    poller.tick()
    assert status_of(bot, dep.id) == "destroyed"
    assert bot.vast.instance(dep.instance_id or 0) is None
    assert len(manage_requests(bot, "DELETE")) == 2
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "destroy_retry" and "accepted" in str(e.detail) for e in events)
    assert any(e.action == "destroy" and e.actor == ALICE for e in events)
    notes = fake_slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)
    assert any("Destroyed *JupyterLab*" in str(n.args["text"]) for n in notes)


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("deployment_stop", "ready"),
        ("deployment_start", "stopped"),
        ("deployment_destroy", "ready"),
    ],
)
def test_non_owner_is_refused_and_nothing_reaches_vast(
    bot_factory: BotFactory, fake_slack: FakeSlack, action: str, status: str
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    dep = make_deployment(bot, status=status)
    click(bot, action, dep, user=BOB)
    call = fake_slack.wait_for("response_url")[0]
    assert call.args["response_type"] == "ephemeral"
    assert call.args["replace_original"] is False
    text = call.args["text"]
    assert f"Only <@{ALICE}>" in text and f"<@{ADMIN}>" in text
    assert bot.vast.request_count(path_prefix=MANAGE_PATH) == 0
    assert status_of(bot, dep.id) == status
    assert not fake_slack.calls_to("chat.update")
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.actor == BOB and e.action.endswith("_refused") for e in events)


def test_refusal_without_admins_says_none_are_configured(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = make_deployment(bot)
    click(bot, "deployment_stop", dep, user=BOB)
    assert "No bot admins are configured" in replies(fake_slack, 1)[0]


def test_admin_may_act_on_anyones_deployment(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    dep = make_deployment(bot)
    click(bot, "deployment_stop", dep, user=ADMIN)
    assert "Stopped" in replies(fake_slack, 1)[0]
    assert len(manage_requests(bot, "PUT")) == 1
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "stop" and e.actor == ADMIN for e in events)
    fake_slack.wait_for("views.publish", user_id=ALICE)  # the owner's Home is refreshed


def test_action_from_a_listing_redraws_the_listing(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = make_deployment(bot)
    blocks = bot.command("mine").json()["blocks"]
    stop = next(b for b in buttons(blocks) if b["action_id"] == "deployment_stop")
    block_id = next(
        block["block_id"]
        for block in blocks
        if block["type"] == "actions" and stop in block["elements"]
    )
    bot.block_action("deployment_stop", stop["value"], block_id=block_id, is_ephemeral=True)
    call = fake_slack.wait_for("response_url")[0]
    assert call.args["replace_original"] is True
    redrawn = texts(call.args["blocks"])
    assert "Stopped *JupyterLab*" in redrawn  # the notice
    assert [b["action_id"] for b in buttons(call.args["blocks"])] == [
        "deployment_start",
        "deployment_destroy",
    ]
    assert status_of(bot, dep.id) == "stopped"


# --- costs and credit -------------------------------------------------------------------


def test_costs_shows_month_totals_per_user_and_workspace(bot: BotHarness) -> None:
    make_deployment(bot, ready_hours=2, dph=0.5)
    make_deployment(bot, user=BOB, ready_hours=1, dph=2.0)
    payload = bot.command("costs").json()
    text = texts(payload["blocks"])
    assert payload["response_type"] == "ephemeral"
    assert "GPU spend in" in text
    assert "*Workspace*\n$3.00" in text
    assert "*You*\n$1.00" in text
    assert text.index(f"<@{BOB}>: $2.00") < text.index(f"<@{ALICE}>: $1.00")


def test_credit_is_for_admins_only(bot_factory: BotFactory) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    bot.vast.credit = 12.5
    refused = texts(bot.command("credit", user=ALICE).json()["blocks"])
    assert "bot admins only" in refused and f"<@{ADMIN}>" in refused
    assert bot.vast.request_count(path_prefix="/api/v0/users/") == 0

    make_deployment(bot, dph=0.5)
    shown = texts(bot.command("credit", user=ADMIN).json()["blocks"])
    assert "$12.50" in shown and "$0.50/h" in shown and "about 25h 00m" in shown


def test_credit_when_vast_fails_says_so(bot_factory: BotFactory) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    bot.vast.inject(Fault.BAD_KEY, endpoint="user")
    shown = texts(bot.command("credit", user=ADMIN).json()["blocks"])
    assert "Could not read the Vast.ai balance" in shown and "VAST_API_KEY" in shown


def test_credit_warning_for_the_picker(bot: BotHarness) -> None:
    def warn(dph: float) -> str | None:
        return bot.services.credit.warning(dph, team_id=TEAM_ID)

    bot.vast.credit = 0.4
    text = warn(1.0)
    assert text is not None and "$0.40" in text and "24m" in text
    assert warn(0.2) is None  # 2 hours left
    assert bot.vast.request_count(path_prefix="/api/v0/users/") == 1  # cached for the picker
    bot.services.credit.forget()  # force a fresh read that fails
    bot.vast.inject(Fault.BAD_KEY, endpoint="user")
    assert warn(1.0) is None  # never raises, never blocks the deploy


def test_slow_credit_acks_first_and_answers_later(
    bot_factory: BotFactory, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.slack.listeners import manage as listeners

    monkeypatch.setattr(listeners, "SLOW_ACK_BUDGET", 0.1)
    bot = bot_factory(bot_admins=ADMIN)
    bot.vast.credit = 7.0
    bot.vast.inject(Fault.SLOW, endpoint="user", seconds=1.0)
    ack = bot.command("credit", user=ADMIN).json()
    assert "Asking Vast.ai" in ack["text"]  # acked before Vast.ai answered
    later = fake_slack.wait_for("response_url")[0].args
    assert later["response_type"] == "ephemeral"
    assert "$7.00" in texts(later["blocks"])
