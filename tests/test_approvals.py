"""Budgets and approvals, end to end: the real bot (signed requests, the fake Slack Web API,
the Vast.ai simulator) on a clock the test moves."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

import storage
from bot.playground.slack_api import TEAM_ID, Call, FakeSlack
from bot.services.budgets import BudgetInput
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import picker
from catalog import RankedOffer
from storage import DeploymentRecord
from tests.fixtures.slack import ALICE, BOB, CHANNEL, BotFactory, BotHarness, MovableClock
from tests.test_deploy import creates, pick_offer, rows, submitted_view, wait_until
from tests.test_lifetimes import button

ADMIN = "U0ADMIN01"
APPROVER = "U0APPROV1"
CAROL = "U0CAROL03"


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def make_bot(bot_factory: BotFactory, clock: MovableClock, **overrides: Any) -> BotHarness:
    settings: dict[str, Any] = {"bot_admins": ADMIN, "approvers": APPROVER, "approval_dph": 0.01}
    settings.update(overrides)
    return bot_factory(clock=clock, **settings)


def submit(
    bot: BotHarness,
    offer: RankedOffer,
    *,
    user: str = ALICE,
    view_id: str = "V0PICK0001",
    lifetime: str = "8",
) -> dict[str, Any]:
    """Submit the picker for ``offer`` with **Run for** ``lifetime`` hours; the ack's JSON."""
    view = submitted_view(offer.offer.id, view_id=view_id)
    view["state"]["values"][picker.BLOCK_LIFETIME] = {
        picker.ACTION_LIFETIME: {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": lifetime},
        }
    }
    response = bot.view_submission(view, user=user)
    assert response.status_code == 200
    return dict(response.json()) if response.content else {}


def approval_dms(fake: FakeSlack, user: str) -> list[Call]:
    """The approval requests DMed to ``user`` (messages with an Approve button)."""
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.args.get("channel") == "D" + user[1:]
        and budget_blocks.ACTION_APPROVE in json.dumps(c.args.get("blocks") or [])
    ]


def posted_ts(fake: FakeSlack, call: Call) -> str:
    """The ts the fake gave the message ``call`` posted."""
    assert call.answer is not None, "the fake refused it"
    return str(call.answer["ts"])


def click(
    bot: BotHarness, call: Call, action_id: str, *, user: str, value: str | None = None
) -> str:
    """Press ``action_id`` on the approval message ``call``; the ephemeral answer's text."""
    before = len(bot.slack.calls_to("response_url"))
    element = button(call, action_id)
    response = bot.block_action(
        action_id,
        value if value is not None else str(element["value"]),
        user=user,
        channel=str(call.args["channel"]),
        message_ts=posted_ts(bot.slack, call),
        is_ephemeral=False,
    )
    assert response.status_code == 200
    if action_id == budget_blocks.ACTION_DENY:
        return ""
    answers = bot.slack.wait_for("response_url", before + 1, timeout=10)
    return str(answers[-1].args.get("text"))


def only_row(bot: BotHarness) -> DeploymentRecord:
    (dep,) = rows(bot)
    return dep


def current(bot: BotHarness, dep: DeploymentRecord) -> DeploymentRecord:
    found = storage.get_deployment(bot.services.session_factory, dep.id)
    assert found is not None
    return found


def pending(bot: BotHarness, offer: RankedOffer, **kwargs: Any) -> tuple[DeploymentRecord, Call]:
    """Submit ``offer`` (expensive for this bot): the pending row and the approver's DM."""
    answer = submit(bot, offer, **kwargs)
    assert answer["response_action"] == "update"
    assert "Sent for approval" in json.dumps(answer["view"])
    wait_until(lambda: rows(bot) and approval_dms(bot.slack, APPROVER))
    dep = only_row(bot)
    assert dep.status == "pending_approval"
    (dm,) = approval_dms(bot.slack, APPROVER)
    # The request records where its messages landed just after posting them (on the work
    # pool): an approver cannot click before the message exists, so neither does the test.
    sf = bot.services.session_factory
    assert wait_until(lambda: (found := storage.get_approval(sf, dep.id)) and found.messages)
    return dep, dm


# -- straight through or held ------------------------------------------------------------------


def test_a_request_approved_after_the_deploy_timeout_is_not_timed_out_when_rented(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    # DEPLOY_TIMEOUT_MINUTES (30) counts from when renting began, not from the request: an
    # approver answering after 40 minutes must not see the fresh instance destroyed.
    bot = make_bot(bot_factory, clock)
    dep, dm = pending(bot, pick_offer(bot))
    clock.advance(minutes=40)
    assert "Approved" in click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    rented = current(bot, dep)
    assert rented.status == "provisioning" and rented.instance_id is not None
    bot.vast.advance(1)
    bot.services.poller.tick()
    clock.advance(seconds=15)
    bot.services.poller.tick()
    after = current(bot, dep)
    assert after.status in ("provisioning", "ready"), after.reason
    assert bot.vast.instance(rented.instance_id) is not None


def test_a_cheap_deployment_goes_straight_through(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approval_dph=500, user_monthly_budget=1000)
    offer = pick_offer(bot)
    assert submit(bot, offer) == {"response_action": "clear"}
    wait_until(lambda: len(creates(bot)) == 1)
    assert approval_dms(bot.slack, APPROVER) == []
    assert wait_until(lambda: only_row(bot).status == "provisioning")


def test_an_expensive_request_waits_is_approved_and_rents_exactly_one_instance(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    offer = pick_offer(bot)
    assert offer.offer.dph_total > 0.01
    dep, dm = pending(bot, offer)
    assert creates(bot) == []
    assert dep.ends_at is None  # its run begins when it is approved
    status = bot.slack.messages[(str(dep.message_channel), str(dep.message_ts))]
    assert "Waiting for approval" in json.dumps(status["blocks"])
    assert f"<@{APPROVER}>" in json.dumps(status["blocks"])
    text = json.dumps(dm.args["blocks"])
    for fact in ("JupyterLab", f"{offer.offer.dph_total:.3f}", "8 hours", "approval"):
        assert fact in text, fact
    assert button(dm, budget_blocks.ACTION_DENY)["style"] == "danger"

    clock.advance(minutes=10)
    answer = click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert "Approved" in answer
    assert len(creates(bot)) == 1
    approved = current(bot, dep)
    assert approved.status == "provisioning"
    assert approved.ends_at == clock.now + (approved.ends_at - clock.now)  # set
    assert approved.lifetime_started_at == clock.now
    decided = bot.slack.messages[(str(dm.args["channel"]), posted_ts(bot.slack, dm))]
    assert f"Approved by <@{APPROVER}>" in json.dumps(decided["blocks"])
    assert budget_blocks.ACTION_APPROVE not in json.dumps(decided["blocks"])
    notes = [
        c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == dep.message_ts
    ]
    assert any("approved" in n and f"<@{ALICE}>" in n for n in notes)

    # a second click, by anyone, changes nothing
    again = click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert "already approved" in again
    assert len(creates(bot)) == 1
    actions = [e.action for e in storage.list_events(bot.services.session_factory, dep.id)]
    assert "approval_requested" in actions and actions.count("approved") == 1


def test_denied_means_nothing_rented_and_the_requester_hears_the_reason(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    dep, dm = pending(bot, pick_offer(bot))
    click(bot, dm, budget_blocks.ACTION_DENY, user=APPROVER)
    (opened,) = bot.slack.wait_for("views.open")
    modal = dict(opened.args["view"])
    assert modal["callback_id"] == budget_blocks.CALLBACK_DENY
    modal["id"] = "V0DENY0001"
    modal["state"] = {
        "values": {
            budget_blocks.BLOCK_DENY_REASON: {
                budget_blocks.ACTION_DENY_REASON: {
                    "type": "plain_text_input",
                    "value": "Use the shared A100 box this week",
                }
            }
        }
    }
    response = bot.view_submission(modal, user=APPROVER)
    assert response.status_code == 200
    denied = wait_until(lambda: (d := current(bot, dep)).status == "denied" and d)
    assert denied.status == "denied"
    assert "Use the shared A100 box" in (denied.reason or "")
    assert creates(bot) == []
    wait_until(
        lambda: any(
            "was denied" in str(c.args.get("text")) and "A100 box" in str(c.args.get("text"))
            for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == dep.message_ts
        )
    )
    decided = bot.slack.messages[(str(dm.args["channel"]), posted_ts(bot.slack, dm))]
    assert f"Denied by <@{APPROVER}>" in json.dumps(decided["blocks"])

    # approve after deny: an answer, no rental
    answer = click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert "already denied" in answer
    assert creates(bot) == []


def test_only_approvers_decide_and_requesters_not_on_their_own_request(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approvers=f"{APPROVER},{ALICE}")
    dep, dm = pending(bot, pick_offer(bot))
    assert approval_dms(bot.slack, ALICE) == []  # not asked to approve herself
    assert "Only" in click(bot, dm, budget_blocks.ACTION_APPROVE, user=BOB)
    own = click(bot, dm, budget_blocks.ACTION_APPROVE, user=ALICE)
    assert "cannot approve your own request" in own
    # forged: a deployment that is not pending, an id that does not exist, another workspace
    assert "does not" in click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER, value="999")
    foreign = bot.block_action(
        budget_blocks.ACTION_APPROVE,
        str(dep.id),
        user=APPROVER,
        is_ephemeral=False,
        extra={"team": {"id": "T0OTHER99", "domain": "other"}},
    )
    assert foreign.status_code == 200
    assert current(bot, dep).status == "pending_approval"
    assert creates(bot) == []


def test_the_only_approver_may_approve_their_own_request_and_is_told_so(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approvers=ALICE)
    submit(bot, pick_offer(bot))
    (dm,) = wait_until(lambda: approval_dms(bot.slack, ALICE))
    assert "only approver" in json.dumps(dm.args["blocks"])
    assert "Approved" in click(bot, dm, budget_blocks.ACTION_APPROVE, user=ALICE)
    assert len(creates(bot)) == 1


def test_no_approvers_configured_refuses_inline_and_rents_nothing(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approvers="", bot_admins="")
    answer = submit(bot, pick_offer(bot))
    assert answer["response_action"] == "errors"
    assert "no approvers are configured" in answer["errors"][picker.BLOCK_OFFER]
    assert rows(bot) == [] and creates(bot) == []


def test_approvers_asked_in_the_approval_channel_when_set(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approval_channel="C0APPROVE1")
    submit(bot, pick_offer(bot))
    asked = wait_until(
        lambda: [
            c
            for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "C0APPROVE1"
        ]
    )
    assert len(asked) == 1 and f"<@{APPROVER}>" in asked[0].args["text"]
    assert approval_dms(bot.slack, APPROVER) == []


# -- the offer after approval -------------------------------------------------------------------


def test_approved_after_the_offer_vanished_rents_a_similar_one(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    offer = pick_offer(bot)
    dep, dm = pending(bot, offer)
    chosen = next(o for o in bot.vast.offers if o["id"] == offer.offer.id)
    stand_in = bot.vast.add_offer(
        **{k: v for k, v in chosen.items() if k != "id"},
    )
    bot.vast.take_offer(offer.offer.id)
    click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    (create,) = creates(bot)
    assert create.path == f"/api/v0/asks/{stand_in}/"
    assert current(bot, dep).offer_id == stand_in


def test_approved_after_the_offer_vanished_with_no_similar_one_offers_pick_another(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    offer = pick_offer(bot)
    dep, dm = pending(bot, offer)
    for other in list(bot.vast.offers):
        if other["gpu_name"] == offer.offer.gpu_name:
            bot.vast.take_offer(other["id"])
    click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert creates(bot) == []
    failed = current(bot, dep)
    assert failed.status == "failed"
    notes = [
        c
        for c in bot.slack.calls_to("chat.postMessage")
        if "Pick another GPU" in json.dumps(c.args)
    ]
    assert notes, "the requester gets a Pick another GPU button"


def test_two_approvers_clicking_at_once_rent_one_instance(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approvers=f"{APPROVER},{CAROL}")
    dep, dm = pending(bot, pick_offer(bot))
    (carol_dm,) = wait_until(lambda: approval_dms(bot.slack, CAROL))
    barrier = threading.Barrier(2)
    results: list[int] = []

    def press(user: str, call: Call) -> None:
        barrier.wait()
        results.append(
            bot.block_action(
                budget_blocks.ACTION_APPROVE,
                str(dep.id),
                user=user,
                channel=str(call.args["channel"]),
                is_ephemeral=False,
            ).status_code
        )

    threads = [
        threading.Thread(target=press, args=(APPROVER, dm)),
        threading.Thread(target=press, args=(CAROL, carol_dm)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == [200, 200]
    bot.slack.wait_for("response_url", 2, timeout=10)
    assert len(creates(bot)) == 1
    actions = [e.action for e in storage.list_events(bot.services.session_factory, dep.id)]
    assert actions.count("approved") == 1


def test_unanswered_requests_expire_with_a_message_to_both_sides(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approval_ttl_hours=2)
    dep, dm = pending(bot, pick_offer(bot))
    clock.advance(hours=1)
    assert bot.services.approvals.run() == 0
    clock.advance(hours=1, minutes=1)
    assert bot.services.approvals.run() == 1
    assert bot.services.approvals.run() == 0  # once
    assert current(bot, dep).status == "expired"
    ts = posted_ts(bot.slack, dm)
    decided = bot.slack.messages[(str(dm.args["channel"]), ts)]
    assert "Expired" in json.dumps(decided["blocks"])
    replies = [c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert replies and "expired" in replies[0].args["text"]
    told = [
        c.args["text"]
        for c in bot.slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == dep.message_ts
    ]
    assert any("expired" in t and f"<@{ALICE}>" in t for t in told)
    assert "expired" in click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert creates(bot) == []


# -- budgets -------------------------------------------------------------------------------------


def test_over_budget_needs_approval_and_the_picker_warns(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approval_dph=None, user_monthly_budget=0.2)
    offer = pick_offer(bot)
    check = bot.services.budgets.check(TEAM_ID, ALICE, offer.offer.dph_total, 8)
    assert check.in_month == pytest.approx(offer.offer.dph_total * 8)
    assert check.passes(check.user) and check.needs_approval
    text = budget_blocks.picker_budget_text(check)
    assert "past" in text and "$0.20" in text
    dep, _ = pending(bot, offer)
    assert "budget" in (dep.reason or "")


def test_the_80_percent_notice_is_sent_once(bot_factory: BotFactory, clock: MovableClock) -> None:
    bot = make_bot(bot_factory, clock, approval_dph=None)
    offer = pick_offer(bot)
    run = offer.offer.dph_total * 8
    bot.services.budgets.set(TEAM_ID, ALICE, BudgetInput("set", round(run / 0.85, 2)), ADMIN)
    assert submit(bot, offer) == {"response_action": "clear"}
    wait_until(lambda: len(creates(bot)) == 1)

    def notices() -> list[Call]:
        return [
            c
            for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "D" + ALICE[1:] and "80" in str(c.args.get("text"))
        ]

    wait_until(lambda: len(notices()) == 1)
    bot.services.approvals.run()
    bot.services.approvals.run()
    assert len(notices()) == 1


def test_budget_math_across_a_month_boundary(bot_factory: BotFactory) -> None:
    clock = MovableClock(datetime(2026, 11, 30, 22, 0, tzinfo=UTC))
    bot = make_bot(bot_factory, clock, approval_dph=None)
    budgets = bot.services.budgets
    offer = pick_offer(bot)
    dph = offer.offer.dph_total
    check = budgets.check(TEAM_ID, ALICE, dph, 8)
    assert check.in_month == pytest.approx(2 * dph)  # 22:00 → midnight counts in November
    assert check.cost_to_end == pytest.approx(8 * dph)
    assert submit(bot, offer) == {"response_action": "clear"}
    wait_until(lambda: len(creates(bot)) == 1)
    mine, _ = budgets.lines(TEAM_ID, ALICE)
    assert mine.committed == pytest.approx(2 * dph, rel=1e-3)
    clock.set(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    december, _ = budgets.lines(TEAM_ID, ALICE)
    assert december.spent == 0
    assert december.committed == pytest.approx(5 * dph, rel=1e-3)  # 01:00 → 06:00


# -- admins: the budget command, the modal, the audit log ---------------------------------------


def ephemeral_text(response: Any) -> str:
    return str(response.json().get("text"))


def test_budget_command_sets_refuses_and_validates(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    refused = bot.command(f"budget <@{BOB}|bob> 200", user=ALICE)
    assert "Only bot admins" in ephemeral_text(refused) and f"<@{ADMIN}>" in ephemeral_text(refused)
    ok = bot.command(f"budget <@{BOB}|bob> 200", user=ADMIN)
    assert "$200.00" in ephemeral_text(ok)
    for bad, why in (("-5", "negative"), ("lots", "number"), ("2000000", "check the number")):
        answer = ephemeral_text(bot.command(f"budget <@{BOB}|bob> {bad}", user=ADMIN))
        assert why in answer, (bad, answer)
    assert bot.services.budgets.month(TEAM_ID).stored == {BOB: 200.0}
    assert "$1,500.00" in ephemeral_text(bot.command("budget workspace 1500", user=ADMIN))


def test_budget_modal_shows_and_validates_inline(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, workspace_monthly_budget=1000)
    assert bot.command("budget", user=ADMIN).status_code == 200
    (opened,) = bot.slack.wait_for("views.open")
    view = dict(opened.args["view"])
    assert view["callback_id"] == budget_blocks.CALLBACK_BUDGET
    assert "$1,000.00" in json.dumps(view)

    def send(workspace: str | None, user: str | None, amount: str | None) -> dict[str, Any]:
        state = {
            budget_blocks.BLOCK_WORKSPACE_BUDGET: {
                budget_blocks.ACTION_WORKSPACE_BUDGET: {
                    "type": "plain_text_input",
                    "value": workspace,
                }
            },
            budget_blocks.BLOCK_BUDGET_USER: {
                budget_blocks.ACTION_BUDGET_USER: {"type": "users_select", "selected_user": user}
            },
            budget_blocks.BLOCK_USER_BUDGET: {
                budget_blocks.ACTION_USER_BUDGET: {"type": "plain_text_input", "value": amount}
            },
        }
        response = bot.view_submission(
            {**view, "id": "V0BUDGET1", "state": {"values": state}}, user=ADMIN
        )
        return dict(response.json()) if response.content else {}

    bad = send("-3", BOB, "abc")
    assert bad["response_action"] == "errors"
    assert set(bad["errors"]) == {
        budget_blocks.BLOCK_WORKSPACE_BUDGET,
        budget_blocks.BLOCK_USER_BUDGET,
    }
    assert (
        "$1,000,000" in send("5000000", None, None)["errors"][budget_blocks.BLOCK_WORKSPACE_BUDGET]
    )
    assert bot.services.budgets.month(TEAM_ID).stored == {}
    good = send("750", BOB, "120")
    assert good["response_action"] == "update"
    assert bot.services.budgets.month(TEAM_ID).stored == {"workspace": 750.0, BOB: 120.0}
    forged = bot.view_submission({**view, "id": "V0BUDGET2", "state": {"values": {}}}, user=BOB)
    assert forged.json()["response_action"] == "errors"


def test_audit_lists_decisions_and_budget_changes_for_admins_only(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    bot.command(f"budget <@{BOB}|bob> 200", user=ADMIN)
    dep, dm = pending(bot, pick_offer(bot))
    click(bot, dm, budget_blocks.ACTION_APPROVE, user=APPROVER)
    assert "Only bot admins" in ephemeral_text(bot.command("audit", user=ALICE))
    audit = json.dumps(bot.command("audit", user=ADMIN).json())
    assert f"<@{APPROVER}>" in audit and "approved" in audit.lower()
    assert "budget" in audit.lower() and f"#{dep.id}" in audit


def test_costs_and_home_show_budgets(bot_factory: BotFactory, clock: MovableClock) -> None:
    bot = make_bot(bot_factory, clock, approval_dph=None, user_monthly_budget=100)
    costs = bot.command("costs", user=ALICE)
    assert "$100.00" in json.dumps(costs.json())
    bot.event({"type": "app_home_opened", "user": ALICE, "tab": "home"})
    (published,) = bot.slack.wait_for("views.publish")
    assert "$100.00" in json.dumps(published.args["view"])


def test_the_picker_shows_the_run_cost_and_what_is_left(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock, approval_dph=None, user_monthly_budget=100)
    offer = pick_offer(bot)
    view = {
        "id": "V0PICK0009",
        "type": "modal",
        "callback_id": picker.CALLBACK_DEPLOY,
        "private_metadata": picker.PickerState(
            template="jupyter-lab", channel=CHANNEL
        ).to_metadata(),
        "state": submitted_view(offer.offer.id)["state"],
    }
    bot.block_action(
        picker.ACTION_OFFER,
        view=view,
        selected_option={"value": picker.offer_value(offer)},
    )
    (update,) = bot.slack.wait_for("views.update")
    text = json.dumps(update.args["view"])
    assert "of your $100.00 left this month" in text


def test_a_waiting_request_shows_in_mine_and_on_home(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = make_bot(bot_factory, clock)
    dep, _ = pending(bot, pick_offer(bot))
    mine = json.dumps(bot.command("mine", user=ALICE).json())
    assert "waiting for approval" in mine and f"#{dep.id}" in mine
    bot.slack.wait_for("views.publish")  # the request refreshes the Home tab: let it land
    bot.slack.reset()
    bot.event({"type": "app_home_opened", "user": ALICE, "tab": "home"})
    published = bot.slack.wait_for("views.publish")[-1]
    assert "waiting for approval" in json.dumps(published.args["view"])
