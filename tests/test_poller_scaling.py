"""The poller scales with what changes, not with what exists.

A poller with production pacing (``list`` every 1 s, on a clock whose sleeps move it) and a
short sweep (``STEADY_SWEEP_SECONDS=30`` at ``STATUS_POLL_SECONDS=15``: two ticks a pass)
follows deployments at rest in a rolling sweep and those in transition by id, every tick,
against the simulator.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import storage
from bot.services.accounts import SIMULATOR, VastAccount, VastAccounts
from bot.services.deploy import label_for
from bot.services.poller import StatusPoller
from bot.vast.client import InstancePage
from bot.vast.errors import VastError
from bot.vast.pacing import NO_PACING, Pacers
from storage import DeploymentRecord
from tests.fixtures.slack import BotHarness
from tests.fixtures.vast import client_for
from tests.test_poller import current, deploy, poller_of
from tests.test_vast_pacing import FakeTime

LIST = "/api/v1/instances/"


def scaled_poller(
    bot: BotHarness,
    *,
    clock: datetime,
    list_interval: float = 1.0,
    sweep_seconds: float = 30.0,
) -> StatusPoller:
    """A poller like production's (15 s ticks, the list paced) on ``bot``'s database and
    simulator, its clock fixed at ``clock``, without the lease (the bot's own poller idles)."""
    time = FakeTime()
    pacers = Pacers.build({**NO_PACING, "list": list_interval}, clock=time, sleep=time.sleep)
    own = poller_of(bot)
    return StatusPoller(
        installation_id=own.installation_id,
        session_factory=own.sf,
        accounts=VastAccounts(
            VastAccount(SIMULATOR, client_for(bot.vast, api_key=None, pacers=pacers), True)
        ),
        messages=own.messages,
        templates=own.templates,
        interval_seconds=15,
        timeout_minutes=30,
        clock=lambda: clock,
        lease_name=None,
        sweep_seconds=sweep_seconds,
    )


def at_rest(bot: BotHarness, count: int) -> list[DeploymentRecord]:
    """``count`` ready deployments (through the bot's own poller)."""
    deps = [deploy(bot) for _ in range(count)]
    own = poller_of(bot)
    own.tick()
    bot.vast.advance(4)
    own.tick()
    ready = [current(bot, dep) for dep in deps]
    assert {dep.status for dep in ready} == {"ready"}
    return ready


def provisioning(
    bot: BotHarness, count: int, now: datetime | None = None, *, messages: bool = True
) -> list[DeploymentRecord]:
    """``count`` deployments stuck provisioning, created at ``now`` (``messages``: each with
    its status message; without, their changes make no Slack edits)."""
    for _ in range(count):  # each rents an offer, which then leaves the search
        bot.vast.add_offer()
    deps = [deploy(bot, "comfy-ui", now=now, post_message=messages) for _ in range(count)]
    for dep in deps:
        bot.vast.stuck_loading(dep.instance_id or 0)
    return deps


def list_requests(bot: BotHarness) -> list[dict[str, str]]:
    return [r.query for r in bot.vast.requests if r.method == "GET" and r.path == LIST]


def test_at_rest_swept_within_the_sweep_time_and_transitions_read_every_tick(
    bot: BotHarness,
) -> None:
    resting = at_rest(bot, 30)
    # An hour on, the ready ones are at rest (no change for longer than the transition window).
    later = storage.utcnow() + timedelta(hours=1)
    moving = provisioning(bot, 2, now=later)
    poller = scaled_poller(bot, clock=later)
    budget = poller.list_budget()
    assert budget == 13  # 15 s / (1 s + its 10 % margin)

    seen_by_tick: list[set[int]] = []
    for _ in range(2):
        bot.vast.clear_requests()
        report = poller.tick()
        assert report.error is None
        queries = list_requests(bot)
        assert 1 <= len(queries) == report.vast_requests <= budget
        assert report.sweep_pages == 1  # 32 instances, two ticks a pass: one page a tick
        for query in queries:
            assert "extra_env" not in query["select_cols"]
            assert "gpu_util" in json.loads(query["select_cols"])
        by_id = [json.loads(q["select_filters"]) for q in queries if "select_filters" in q]
        for filters in by_id:
            assert list(filters) == ["id"] and len(filters["id"]["in"]) <= 25
        seen_by_tick.append(
            {d.id for d in resting + moving if poller.last_read_tick(d.id) == poller.ticks}
        )
    # Those in transition were read on both ticks; every one at rest within the pass.
    for dep in moving:
        assert all(dep.id in seen for seen in seen_by_tick)
    assert all(poller.last_read_tick(dep.id) is not None for dep in resting)
    assert seen_by_tick[0] != seen_by_tick[1]  # the pass was spread over both ticks


def test_a_stop_by_vast_at_rest_is_caught_by_the_sweep(bot: BotHarness) -> None:
    resting = at_rest(bot, 30)
    poller = scaled_poller(bot, clock=storage.utcnow() + timedelta(hours=1))
    last = resting[-1]  # on the second page: the first tick does not read it
    bot.vast.stop_by_vast(last.instance_id or 0)
    poller.tick()
    assert current(bot, last).status == "ready"
    poller.tick()
    assert current(bot, last).status == "stopped"


def test_list_requests_per_tick_stay_within_the_budget_and_rotate(bot: BotHarness) -> None:
    moving = provisioning(bot, 100, messages=False)
    poller = scaled_poller(bot, clock=storage.utcnow(), list_interval=7.0)
    assert poller.list_budget() == 2  # one sweep page and one read of 25 by id per tick
    waits = []
    for _ in range(12):
        bot.vast.clear_requests()
        report = poller.tick()
        assert report.vast_requests == len(list_requests(bot)) <= 2
        if poller.ticks > 4:  # once the sweep went round once
            waits.append(max(poller.ticks - (poller.last_read_tick(d.id) or 0) for d in moving))
    print("longest wait per tick:", waits)
    # The least recently read go first: with 50 reads a tick, none of the 100 waits more than
    # two ticks (lowest ids first would leave the highest to the sweep's turn, four ticks).
    assert max(waits) <= 2


def test_a_failing_sweep_does_not_stop_the_reads_by_id(bot: BotHarness) -> None:
    at_rest(bot, 3)
    later = storage.utcnow() + timedelta(hours=1)
    fresh = deploy(bot, now=later)  # creating: in transition
    bot.vast.advance(10)  # its instance runs and its app answers
    poller = scaled_poller(bot, clock=later + timedelta(seconds=30))
    client = poller.accounts.default.client
    real = client.list_instances_page

    def sweep_refused(**kw: Any) -> InstancePage:
        if "order_by" in kw and kw.get("select_filters") is None:  # the sweep's request only
            raise VastError("GET /api/v1/instances/: HTTP 503", status_code=503)
        return real(**kw)

    client.list_instances_page = sweep_refused  # type: ignore[method-assign]
    poller.tick()
    report = poller.tick()
    assert report.error == "VastError"
    assert report.transition_requests == 1
    assert current(bot, fresh).status == "ready"


def test_a_stray_labelled_instance_is_found_by_the_sweep_and_destroyed(
    bot: BotHarness,
) -> None:
    ready = at_rest(bot, 30)
    # A duplicate create: labelled for a live row that holds another instance. (A label naming
    # a deployment this database has no row for is never destroyed: tests/test_installation.py.)
    own = label_for(poller_of(bot).installation_id, ready[0].id)
    stray = bot.vast.create_instance_directly(label=own)
    poller = scaled_poller(bot, clock=storage.utcnow() + timedelta(hours=1))
    for _ in range(2):  # first pass: seen once, kept (a create may be being answered)
        poller.tick()
    assert bot.vast.instance(stray) is not None
    for _ in range(2):  # second pass: still stray, destroyed
        poller.tick()
    assert bot.vast.request_count("DELETE", f"/api/v0/instances/{stray}/") == 1
    assert bot.vast.instance(stray) is None
