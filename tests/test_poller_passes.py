"""What one tick costs and how its accounts' passes run: the App Home of a requester is
refreshed once per pass, after it, however many of their deployments moved; in OAuth mode the
accounts' passes run side by side (each paced by its own account only), and one account's
failing pass does not stop another's.

Concurrency is shown with events, never with wall-clock thresholds: an account's pacer
"sleeps" by waiting for the other account's pass to reach the same point. Run one after the
other, the first would wait for a pass that has not begun; the wait is bounded
(:data:`MEET_SECONDS`) only so that such a failure ends instead of hanging.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

import storage
from bot.playground.slack_api import TEAM_ID
from bot.services.poller import TickReport
from bot.vast.client import InstancePage
from storage import Deployment, DeploymentRecord
from tests import test_poller_accounts
from tests.fixtures.slack import ALICE, BOB, BotHarness
from tests.test_poller import current, deploy, poller_of
from tests.test_poller_accounts import (
    ACCOUNT_A,
    ACCOUNT_B,
    TEAM_A,
    TEAM_B,
    Env,
    rent,
)
from tests.test_vast_pacing import FakeTime

#: The accounts' fixture of the per-account poller tests, used here too.
make_env = test_poller_accounts.make_env

#: Seconds a pass waits for the other account's pass before it gives up (a failure).
MEET_SECONDS = 10.0


# -- the App Home: once per requester and pass ------------------------------------------------


def test_a_tick_refreshes_each_requesters_home_once_after_the_pass(bot: BotHarness) -> None:
    sf = bot.services.session_factory
    alices = [deploy(bot) for _ in range(6)]
    bobs = [deploy(bot) for _ in range(3)]
    with storage.write_transaction(sf) as session:
        session.execute(
            update(Deployment).where(Deployment.id.in_([d.id for d in bobs])).values(user_id=BOB)
        )
    everyone = alices + bobs
    poller = poller_of(bot)
    refreshed: list[tuple[str, str, int, list[str]]] = []

    def counting(dep: DeploymentRecord) -> None:  # the Home service, counted
        statuses = [current(bot, d).status for d in everyone]
        refreshed.append((dep.team_id, dep.user_id, dep.id, statuses))

    poller.on_change = counting
    poller.tick()  # creating -> provisioning, all nine
    assert sorted((team, user) for team, user, _, _ in refreshed) == [
        (TEAM_ID, ALICE),
        (TEAM_ID, BOB),
    ]
    refreshed.clear()
    bot.vast.advance(4)
    report = poller.tick()  # provisioning -> ready, all nine
    assert report.changes == len(everyone)
    assert len(refreshed) == 2  # one Home each, not one per deployment
    by_user = {user: (dep_id, statuses) for _, user, dep_id, statuses in refreshed}
    # Each Home is built after the pass: it shows every deployment already ready, and the
    # row handed over is the requester's last one to move.
    for user, mine in ((ALICE, alices), (BOB, bobs)):
        dep_id, statuses = by_user[user]
        assert dep_id == max(d.id for d in mine)
        assert statuses == ["ready"] * len(everyone)
    assert report.slack_calls >= 2  # the Homes are counted once each


def test_a_failed_home_refresh_neither_stops_the_others_nor_the_tick(bot: BotHarness) -> None:
    sf = bot.services.session_factory
    alice, bob = deploy(bot), deploy(bot)
    with storage.write_transaction(sf) as session:
        session.execute(update(Deployment).where(Deployment.id == bob.id).values(user_id=BOB))
    poller = poller_of(bot)
    refreshed: list[str] = []

    def failing_for_alice(dep: DeploymentRecord) -> None:
        if dep.user_id == ALICE:
            raise RuntimeError("the Home service failed")
        refreshed.append(dep.user_id)

    poller.on_change = failing_for_alice
    poller.tick()
    assert refreshed == [BOB]
    assert current(bot, alice).status == "provisioning"
    assert current(bot, bob).status == "provisioning"


# -- accounts side by side --------------------------------------------------------------------


class MeetingTime(FakeTime):
    """An account's pacer clock whose sleeps move it, but only once the other account's pass
    also reached a pacer wait: ``met[name]`` is True when it did (the passes overlapped),
    False when the wait gave up."""

    def __init__(self, name: str, arrived: dict[str, threading.Event], met: dict[str, bool]):
        super().__init__()
        self.name = name
        self.arrived = arrived
        self.met = met

    def sleep(self, seconds: float) -> None:
        self.arrived[self.name].set()
        others = [event for name, event in self.arrived.items() if name != self.name]
        self.met[self.name] = all(event.wait(MEET_SECONDS) for event in others)
        super().sleep(seconds)


def _meeting_clocks(env: Env) -> tuple[dict[str, threading.Event], dict[str, bool]]:
    """Give accounts A and B meeting clocks (before their clients are made)."""
    arrived = {ACCOUNT_A: threading.Event(), ACCOUNT_B: threading.Event()}
    met: dict[str, bool] = {}
    for name in arrived:
        env.clocks[name] = MeetingTime(name, arrived, met)
    return arrived, met


def test_two_accounts_with_slow_pacers_are_read_side_by_side(
    make_env: Callable[..., Env],
) -> None:
    # Both accounts' list calls are spaced 5 s apart: a second list call within a tick waits
    # for its pacer. Side by side, each pass waits for its own pacer while the other does.
    env = make_env(list_intervals={ACCOUNT_A: 5.0, ACCOUNT_B: 5.0})
    arrived, met = _meeting_clocks(env)
    a1, b1 = rent(env, TEAM_A), rent(env, TEAM_B)
    env.sim.advance(4)
    env.now[0] += timedelta(minutes=2)
    first = env.tick()  # one list call each: nobody waits yet
    assert first.error is None and first.accounts == 2
    assert met == {}
    assert env.current(a1).status == env.current(b1).status == "ready"

    # The next tick comes at once on the pacers' clocks: each account's first list call
    # waits for its pacer, and the two waits overlap.
    second = env.tick()
    assert met == {ACCOUNT_A: True, ACCOUNT_B: True}
    assert all(event.is_set() for event in arrived.values())
    assert second.error is None and second.accounts == 2
    assert len(env.list_calls[ACCOUNT_A]) == len(env.list_calls[ACCOUNT_B]) == 1
    # Each account waited for its own pacer once: one spacing each, not the other's too.
    for name, team in ((ACCOUNT_A, TEAM_A), (ACCOUNT_B, TEAM_B)):
        spacing = env.account(team).client.pacers.spacing("list")
        assert env.clocks[name].now - 100.0 == pytest.approx(spacing)


def test_one_accounts_failing_pass_does_not_stop_anothers(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    a1, b1 = rent(env, TEAM_A), rent(env, TEAM_B)
    env.sim.advance(4)
    env.now[0] += timedelta(minutes=2)
    b_listing = threading.Event()
    b_went_on = threading.Event()
    overlapped: list[bool] = []
    client_a = env.account(TEAM_A).client
    client_b = env.account(TEAM_B).client
    real_a, real_b = client_a.list_instances_page, client_b.list_instances_page

    def failing(**kw: Any) -> InstancePage:  # A's pass breaks while B's is under way
        overlapped.append(b_listing.wait(MEET_SECONDS))
        raise RuntimeError("A's pass breaks")

    def listing(**kw: Any) -> InstancePage:
        b_listing.set()
        page = real_b(**kw)
        b_went_on.set()
        return page

    client_a.list_instances_page = failing  # type: ignore[method-assign]
    client_b.list_instances_page = listing  # type: ignore[method-assign]
    report = env.tick()
    assert overlapped == [True]  # A failed while B's pass was running
    assert b_went_on.is_set()
    assert report.accounts == 2
    assert report.error == "account pass failed"
    assert env.current(b1).status == "ready"  # B's pass went to its end
    assert env.current(a1) == a1  # A's rows are left as they were
    # A recovers on the next tick.
    client_a.list_instances_page = real_a  # type: ignore[method-assign]
    again: TickReport = env.tick()
    assert again.error is None
    assert env.current(a1).status == "ready"
