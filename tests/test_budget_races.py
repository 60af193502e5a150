"""Budgets under concurrency and storage failure: concurrent submissions and extensions are
decided one after the other against the budgets (never together past one, never skipping an
approval), and a submission whose row cannot be written tells the user nothing was rented.

End to end with the real bot (signed requests, the fake Slack, the Vast.ai simulator) on
SQLite and, with ``TEST_DATABASE_URL``, PostgreSQL; the budget decision itself is tested as a
pure function."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import make_url

import storage
from bot import pricing
from bot.formats import micros
from bot.notices import BudgetLine
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services.budgets import decide
from bot.services.offers import find_offers
from bot.slack.blocks import picker
from bot.slack.blocks.lifetimes import extend_action_id, extend_value
from bot.slack.blocks.picker import offer_label, offer_value
from catalog import RankedOffer
from tests.fixtures.slack import ALICE, BotFactory, BotHarness, MovableClock
from tests.test_deploy import (
    OPTION_TEXT,
    OPTION_VALUE,
    creates,
    rows,
    submitted_view,
    wait_until,
)
from tests.test_lifetimes import button, current, deploy, events, press, warned

ADMIN = "U0ADMIN01"
APPROVER = "U0APPROV1"
LIFETIME_HOURS = 8
SUBMISSIONS = 12


@pytest.fixture
def clock() -> MovableClock:
    # Mid-month, so that a run of a few hours lies wholly in this month's budget.
    return MovableClock(datetime(2026, 12, 7, 12, 0, tzinfo=UTC))


# -- the decision, as a function of numbers -----------------------------------------------------


def line(subject: str, budget: float | None, spent: float = 0.0, committed: float = 0.0) -> Any:
    return BudgetLine(subject, budget, spent, committed)


def test_within_every_budget_goes_straight_through() -> None:
    check = decide(
        dph=0.5,
        lifetime_hours=2,
        in_month=1.0,
        user=line(ALICE, 10.0, spent=3.0, committed=2.0),
        workspace=line("workspace", None),
        approval_dph=1.0,
    )
    assert not check.needs_approval and check.reasons == ()
    assert check.cost_to_end == pytest.approx(1.0)


def test_exactly_reaching_a_budget_needs_no_approval_but_one_cent_more_does() -> None:
    user = line(ALICE, 10.0, spent=4.0, committed=5.0)
    exact = decide(
        dph=0.5,
        lifetime_hours=2,
        in_month=1.0,
        user=user,
        workspace=line("workspace", None),
        approval_dph=None,
    )
    assert not exact.needs_approval
    over = decide(
        dph=0.5,
        lifetime_hours=2,
        in_month=1.01,
        user=user,
        workspace=line("workspace", None),
        approval_dph=None,
    )
    assert over.needs_approval
    (reason,) = over.reasons
    assert f"<@{ALICE}>'s" in reason and "$10.01" in reason and "past the $10.00" in reason


def test_a_used_up_budget_and_a_price_above_the_limit_each_need_approval() -> None:
    check = decide(
        dph=2.0,
        lifetime_hours=None,
        in_month=0.01,
        user=line(ALICE, None),
        workspace=line("workspace", 100.0, spent=60.0, committed=40.0),
        approval_dph=1.0,
        what="this extension",
    )
    assert check.cost_to_end is None
    assert len(check.reasons) == 2
    assert "$2.00/h is above the $1.00/h" in check.reasons[0]
    assert "workspace's $100.00 budget for this month is used up" in check.reasons[1]


def test_passing_the_workspace_budget_names_the_request() -> None:
    check = decide(
        dph=1.0,
        lifetime_hours=8,
        in_month=8.0,
        user=line(ALICE, 50.0),
        workspace=line("workspace", 100.0, spent=90.0),
        approval_dph=None,
        what="this extension",
    )
    assert not check.passes(check.workspace)  # 90 + 8 = $98, within $100
    assert not check.needs_approval
    over = decide(
        dph=1.0,
        lifetime_hours=8,
        in_month=8.0,
        user=line(ALICE, 50.0),
        workspace=line("workspace", 100.0, spent=90.0, committed=2.5),
        approval_dph=None,
        what="this extension",
    )
    (reason,) = over.reasons
    assert reason.startswith("this extension would take the workspace's spend")
    assert "$100.50, past the $100.00 budget" in reason


# -- concurrent submissions --------------------------------------------------------------------


def distinct_offers(bot: BotHarness, count: int) -> list[RankedOffer]:
    """``count`` different live offers for Jupyter (so no submission loses its offer to
    another one's rental)."""
    template = bot.services.catalog.get("jupyter-lab")
    ranked = find_offers(bot.services.vast, template, disk_gb=20)
    offers = list({r.offer.id: r for r in ranked}.values())
    assert len(offers) >= count, f"the simulator has only {len(offers)} offers"
    bot.vast.clear_requests()
    for offer in offers:
        OPTION_TEXT[offer.offer.id] = offer_label(offer)
        OPTION_VALUE[offer.offer.id] = offer_value(offer)
    return offers[:count]


def with_lifetime(view: dict[str, Any], hours: int) -> dict[str, Any]:
    view["state"]["values"][picker.BLOCK_LIFETIME] = {
        picker.ACTION_LIFETIME: {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": str(hours)},
        }
    }
    return view


def in_month(dph: float, now: datetime) -> float:
    _, month_end = pricing.month_window(now)
    return pricing.run_in_window(dph, LIFETIME_HOURS, now, month_end)


def test_concurrent_submissions_never_pass_a_budget_together(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = bot_factory(clock=clock, bot_admins=ADMIN, approvers=APPROVER, approval_dph=None)
    sf = bot.services.session_factory
    offers = distinct_offers(bot, SUBMISSIONS)
    costs = [in_month(o.offer.dph_total, clock()) for o in offers]
    # Room for about three of them: each fits alone, all twelve do not.
    budget = round(sum(sorted(costs)[:3]) + min(costs) / 2, 2)
    assert max(costs) <= budget < sum(costs)
    storage.set_budget(sf, TEAM_ID, ALICE, budget, actor=ADMIN, detail="test budget")

    start = threading.Barrier(SUBMISSIONS)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def submit(n: int, offer: RankedOffer) -> None:
        view = with_lifetime(submitted_view(offer.offer.id, view_id=f"V0RACE{n:04d}"), 8)
        start.wait()
        response = bot.view_submission(view)
        with lock:
            answers.append(response.json() if response.content else {})

    threads = [threading.Thread(target=submit, args=(n, offer)) for n, offer in enumerate(offers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == SUBMISSIONS
    found = wait_until(
        lambda: (
            (deps := rows(bot))
            and len(deps) == SUBMISSIONS
            and all(d.status != "creating" for d in deps)
            and deps
        ),
        timeout=30,
    )
    straight = [d for d in found if storage.get_approval(sf, d.id) is None]
    held = [d for d in found if storage.get_approval(sf, d.id) is not None]
    assert all(d.status == "pending_approval" for d in held)
    committed = sum(in_month(d.dph_total, clock()) for d in straight)
    assert committed <= budget + 1e-6, (
        f"{len(straight)} rented without approval commit ${committed:.2f}, "
        f"past the ${budget:.2f} budget"
    )
    assert straight and held  # the budget let some through and held the rest
    assert len(creates(bot)) == len(straight)
    # Each submission was answered "deploying", "sent for approval" or "checking…".
    for answer in answers:
        said = json.dumps(answer)
        assert answer.get("response_action") == "clear" or (
            "Sent for approval" in said or "Checking the GPU offer" in said
        ), said


# -- extensions --------------------------------------------------------------------------------


def set_user_budget(bot: BotHarness, hours_of_run: float, dph: float) -> float:
    dollars = round(hours_of_run * dph, 2)
    storage.set_budget(
        bot.services.session_factory, TEAM_ID, ALICE, dollars, actor=ADMIN, detail="test"
    )
    return dollars


def test_extend_within_budget_reserves_and_past_it_needs_an_approver(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(clock=clock, bot_admins=ADMIN, approval_dph=None)
    dep, warning = warned(bot, clock, fake_slack)
    assert dep.ends_at is not None
    # 95 min spent and 25 committed of a 2-hour run: room for one 2-hour extension, not two.
    set_user_budget(bot, 5.0, dep.dph_total)
    value = button(warning, extend_action_id(2))["value"]

    assert "Extended" in press(bot, extend_action_id(2), value)
    extended = current(bot, dep)
    assert extended.ends_at == dep.ends_at + timedelta(hours=2)
    user_line, _ = bot.services.budgets.lines(TEAM_ID, ALICE)
    left = (extended.ends_at - clock()).total_seconds() / 3600  # reserved: counted as committed
    assert user_line.committed == pytest.approx(left * dep.dph_total, rel=1e-3)

    assert extended.ends_at is not None
    again = extend_value(dep.id, 2, extended.ends_at)  # the next warning's button
    refused = press(bot, extend_action_id(2), again)
    assert "needs approval" in refused and "budget" in refused and "Nothing changed" in refused
    assert ADMIN in refused  # who can approve it, who can raise the budget
    assert current(bot, dep).ends_at == extended.ends_at
    assert ("U0ALICE01", "extend_refused") in [(e.actor, e.action) for e in events(bot, dep)]

    approved = press(bot, extend_action_id(2), again, user=ADMIN)
    assert "Extended" in approved
    assert current(bot, dep).ends_at == extended.ends_at + timedelta(hours=2)
    assert (ADMIN, "extend_approved") in [(e.actor, e.action) for e in events(bot, dep)]


def test_two_extensions_at_once_never_pass_a_budget_together(
    bot_factory: BotFactory, clock: MovableClock
) -> None:
    bot = bot_factory(clock=clock, bot_admins=ADMIN, approval_dph=None)
    first = deploy(bot, clock, lifetime_hours=2)
    second = deploy(bot, clock, lifetime_hours=2)
    assert first.ends_at is not None and second.ends_at is not None
    committed = 2 * first.dph_total + 2 * second.dph_total
    # Room for one 8-hour extension of either, not both.
    biggest = max(first.dph_total, second.dph_total)
    budget = round(committed + 8 * biggest + 0.5 * min(first.dph_total, second.dph_total), 2)
    storage.set_budget(
        bot.services.session_factory, TEAM_ID, ALICE, budget, actor=ADMIN, detail="test"
    )
    start = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def extend(dep: storage.DeploymentRecord) -> None:
        assert dep.ends_at is not None
        issued = micros(dep.ends_at)
        start.wait()
        outcome = bot.services.lifetimes.extend(dep.id, 8, issued, ALICE, team_id=TEAM_ID)
        outcomes[dep.id] = outcome.kind

    threads = [threading.Thread(target=extend, args=(d,)) for d in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes.values()) == ["done", "refused"]
    user_line, _ = bot.services.budgets.lines(TEAM_ID, ALICE)
    assert user_line.projected <= budget + 1e-6


# -- the database cannot be written --------------------------------------------------------------


def test_a_submission_that_cannot_be_saved_says_nothing_was_rented(
    bot_factory: BotFactory, clock: MovableClock, database_url: str, monkeypatch: Any
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("locks the SQLite file")
    monkeypatch.setattr(storage.db, "SQLITE_BUSY_TIMEOUT_MS", 1000)  # fail fast when locked
    bot = bot_factory(clock=clock)
    (offer,) = distinct_offers(bot, 1)
    path = make_url(database_url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        response = bot.view_submission(submitted_view(offer.offer.id, view_id="V0LOCKED01"))
        answer = response.json() if response.content else {}

        def told() -> str:
            shown = json.dumps(answer) + json.dumps(
                [c.args for c in bot.slack.calls_to("views.update")]
            )
            return shown if "could not save your deployment" in shown else ""

        said = wait_until(told, timeout=20)
        assert "nothing was rented" in said.lower() and "try again in a minute" in said.lower()
        assert answer.get("response_action") != "clear"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert rows(bot) == []
    assert creates(bot) == []
    assert bot.vast.instances == {}
