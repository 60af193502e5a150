"""The poller and start-up recovery with several Vast.ai accounts: workspaces A and B
each rent on their own account of one simulator (``accounts={"key-a": 1001, "key-b": 1002}``),
workspace C shares A's Vast.ai user (and key), and simulated rows live on the simulator's own
(default) account. Rows are written straight into the bot's database; a poller built on
:class:`VastAccounts` over those accounts is ticked by hand (the bot's own poller idles).

Each account's client is wrapped to record its list requests, and paced on its own fake
monotonic clock, so the tests see which account each request went to and who waited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

import storage
from bot.services import recovery
from bot.services.accounts import SIMULATOR, StoredKey, VastAccount, VastAccounts
from bot.services.admins import StaticAdmins
from bot.services.deploy import label_for
from bot.services.lifetimes import LifetimePolicy, LifetimeService
from bot.services.manage import ManageService
from bot.services.poller import StatusPoller, TickReport
from bot.simulator import VastSimulator
from bot.vast import VastClient
from bot.vast.client import InstancePage
from bot.vast.pacing import NO_PACING, Pacers
from storage import DeploymentRecord
from tests.fixtures.slack import BotFactory, BotHarness
from tests.fixtures.vast import client_for
from tests.test_poller import _offer, insert_row, rent_labelled
from tests.test_vast_pacing import FakeTime

KEYS = {"key-a": 1001, "key-b": 1002}
TEAM_A, TEAM_B, TEAM_C = "TA0000001", "TB0000002", "TC0000003"
ACCOUNT_A, ACCOUNT_B = "vast-user:1001", "vast-user:1002"
#: Workspace C has A's key: one Vast.ai user, one account, one pass.
STORED = {
    TEAM_A: StoredKey("key-a", "1001"),
    TEAM_B: StoredKey("key-b", "1002"),
    TEAM_C: StoredKey("key-a", "1001"),
}
PASSWORD = "pw-Accounts-Secret-77"


@dataclass
class Env:
    """The bot, its simulator with three accounts, the accounts, and what each asked."""

    bot: BotHarness
    sim: VastSimulator
    accounts: VastAccounts
    now: list[datetime]  # [the poller's "now"]
    list_calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    clocks: dict[str, FakeTime] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # workspaces whose key cannot be read
    poller: StatusPoller | None = None

    @property
    def sf(self) -> storage.SessionFactory:
        return self.bot.services.session_factory

    def account(self, team_id: str) -> VastAccount:
        return self.accounts.for_team(team_id)

    def tick(self) -> TickReport:
        assert self.poller is not None
        for calls in self.list_calls.values():
            calls.clear()
        return self.poller.tick()

    def sweeps(self, name: str) -> int:
        """List requests of account ``name`` in the last tick that were sweep pages."""
        return sum(1 for kw in self.list_calls.get(name, []) if kw.get("select_filters") is None)

    def current(self, dep: DeploymentRecord) -> DeploymentRecord:
        record = storage.get_deployment(self.sf, dep.id)
        assert record is not None
        return record


def _spied(env: Env, name: str, client: VastClient) -> VastClient:
    """Record ``client``'s list requests under account ``name``."""
    real = client.list_instances_page
    calls = env.list_calls.setdefault(name, [])

    def listing(**kw: Any) -> InstancePage:
        calls.append(kw)
        return real(**kw)

    client.list_instances_page = listing  # type: ignore[method-assign]
    return client


def _paced(env: Env, name: str, list_interval: float) -> Pacers:
    clock = env.clocks.setdefault(name, FakeTime())
    return Pacers.build({**NO_PACING, "list": list_interval}, clock=clock, sleep=clock.sleep)


@pytest.fixture
def make_env(
    bot_factory: BotFactory, make_vast_sim: Callable[..., VastSimulator]
) -> Iterator[Callable[..., Env]]:
    """``make_env(list_intervals={account name: seconds}, lifetimes=False)``: the bot on a
    simulator with the accounts of :data:`KEYS`, and a poller over those accounts (15 s ticks,
    30 s sweep, no lease)."""
    made: list[VastClient] = []

    def make(*, list_intervals: dict[str, float] | None = None, lifetimes: bool = False) -> Env:
        intervals = list_intervals or {}
        sim = make_vast_sim(accounts=KEYS)
        bot = bot_factory(simulator=sim)
        env = Env(bot=bot, sim=sim, accounts=None, now=[storage.utcnow()])  # type: ignore[arg-type]

        def stored_key(team_id: str) -> StoredKey | None:
            if team_id in env.broken:
                raise RuntimeError("the key does not decrypt")
            return STORED.get(team_id)

        def make_client(api_key: str) -> VastClient:
            name = f"vast-user:{KEYS[api_key]}"
            pacers = _paced(env, name, intervals.get(name, 0.0))
            client = _spied(env, name, client_for(sim, api_key=api_key, pacers=pacers))
            made.append(client)
            return client

        pacers = _paced(env, SIMULATOR, intervals.get(SIMULATOR, 0.0))
        sim_client = _spied(env, SIMULATOR, client_for(sim, api_key=None, pacers=pacers))
        made.append(sim_client)
        env.accounts = VastAccounts(
            VastAccount(SIMULATOR, sim_client, simulated=True),
            stored_key=stored_key,
            make_client=make_client,
        )
        services = bot.services
        rules = None
        if lifetimes:
            manage = ManageService(
                session_factory=services.session_factory,
                accounts=env.accounts,
                messages=services.messages,
                templates=services.catalog,
                admins=StaticAdmins(frozenset()),
                clock=lambda: env.now[0],
            )
            rules = LifetimeService(
                session_factory=services.session_factory,
                messages=services.messages,
                manage=manage,
                templates=services.catalog,
                policy=LifetimePolicy.from_settings(services.settings),
                clock=lambda: env.now[0],
            )
        env.poller = StatusPoller(
            installation_id=services.deploy.installation_id,
            session_factory=services.session_factory,
            accounts=env.accounts,
            messages=services.messages,
            templates=services.catalog,
            interval_seconds=15,
            timeout_minutes=30,
            clock=lambda: env.now[0],
            lease_name=None,
            lifetimes=rules,
            sweep_seconds=30,
            allow_private_addresses=True,  # the simulator's instances are on 127.0.0.1
        )
        return env

    yield make
    for client in made:
        client.close()


def rent(
    env: Env,
    team_id: str,
    *,
    simulated: bool = False,
    lifetime_hours: float | None = None,
    now: datetime | None = None,
    instance: bool = True,
) -> DeploymentRecord:
    """What the deploy service does, by hand: the row, then the labelled instance on the
    row's account (``instance=False``: a row still waiting for Vast.ai's answer)."""
    services = env.bot.services
    template = services.catalog.get("jupyter-lab")
    assert template is not None
    offer = _offer(env.sim)
    dep = insert_row(
        env.sf,
        template,
        offer,
        team_id=team_id,
        simulated=simulated,
        web_password=PASSWORD,
        lifetime_hours=lifetime_hours,
        now=now,
    )
    if instance:
        account = env.accounts.simulator if simulated else env.account(team_id)
        assert account is not None
        rent_labelled(account.client, env.sf, template, offer, dep, web_password=PASSWORD, now=now)
    return env.current(dep)


def own(env: Env, deployment_id: int) -> str:
    """The label the deploy service of ``env``'s database writes for ``deployment_id``."""
    return label_for(storage.installation_id(env.sf), deployment_id)


# -- following each account ------------------------------------------------------------------


def test_one_list_pass_per_account_per_tick_and_every_workspace_reaches_ready(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    a1, a2 = rent(env, TEAM_A), rent(env, TEAM_A)
    b1 = rent(env, TEAM_B)
    c1 = rent(env, TEAM_C)  # A's Vast.ai user: on A's account
    s1 = rent(env, TEAM_B, simulated=True)  # a simulated row of B: the simulator's account
    # Each instance is on its own account only.
    assert set(env.sim.instances_of("key-a")) == {a1.instance_id, a2.instance_id, c1.instance_id}
    assert set(env.sim.instances_of("key-b")) == {b1.instance_id}
    assert set(env.sim.instances_of(None)) == {s1.instance_id}
    env.now[0] += timedelta(minutes=2)  # past the grace for a status message: DMs
    env.sim.advance(4)  # every instance runs and its app answers

    for _ in range(3):
        report = env.tick()
        env.now[0] += timedelta(minutes=5)  # past the list's grace for a missing instance
        assert report.error is None
        assert report.accounts == 3
        # One pass per account: one sweep page each (every list fits a page), never one
        # request per deployment, and no account's request went to another's client.
        assert {name: env.sweeps(name) for name in env.list_calls} == {
            ACCOUNT_A: 1,
            ACCOUNT_B: 1,
            SIMULATOR: 1,
        }
        assert report.vast_requests == sum(len(c) for c in env.list_calls.values())
    for dep in (a1, a2, b1, c1, s1):
        assert env.current(dep).status == "ready", dep.team_id
    assert env.sim.request_count("DELETE") == 0


def test_each_account_is_paced_on_its_own(make_env: Callable[..., Env]) -> None:
    # A's list may be called every second, B's every five: each has its own budget per tick,
    # and neither waits for the other's pacer.
    env = make_env(list_intervals={ACCOUNT_A: 1.0, ACCOUNT_B: 5.0})
    poller = env.poller
    assert poller is not None
    a1 = rent(env, TEAM_A)
    later = storage.utcnow()
    b_rows = [rent(env, TEAM_B, now=later) for _ in range(30)]
    for dep in b_rows:
        env.sim.stuck_loading(dep.instance_id or 0)  # in transition: read every tick
    env.sim.advance(4)
    account_a, account_b = env.account(TEAM_A), env.account(TEAM_B)
    assert poller.list_budget(account_a) == 13  # 15 s / (1 s + its 10 % margin)
    assert poller.list_budget(account_b) == 2  # 15 s / (5 s + its margin)

    a_clock, b_clock = env.clocks[ACCOUNT_A], env.clocks[ACCOUNT_B]
    start_a, start_b = a_clock.now, b_clock.now
    env.now[0] = later + timedelta(minutes=2)
    report = env.tick()
    assert report.error is None
    assert len(env.list_calls[ACCOUNT_B]) == 2  # its whole budget: a sweep page, 25 by id
    assert len(env.list_calls[ACCOUNT_A]) == 1
    # B waited for B's own pacer only, once between its two requests.
    assert b_clock.now - start_b == pytest.approx(account_b.client.pacers.spacing("list"))
    assert a_clock.now == start_a  # A never waited: B's requests are not A's
    assert env.current(a1).status == "ready"
    for _ in range(3):
        for clock in env.clocks.values():
            clock.now += 15  # the poll interval passes on every pacer's clock
        env.tick()
        assert len(env.list_calls[ACCOUNT_B]) <= 2
    assert all(poller.last_read_tick(dep.id) is not None for dep in b_rows)


def test_one_accounts_pass_never_destroys_anothers_instance(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    a1 = rent(env, TEAM_A)
    env.sim.advance(4)
    env.now[0] += timedelta(minutes=2)
    env.tick()
    assert env.current(a1).status == "ready"
    # On B's account: an instance labelled for A's live row and one for A's ended row (not
    # B's to judge), one labelled for B's own ended row (a stray: destroyed after two
    # passes), one whose label names no row here (another copy of the bot may share the
    # account: listed, never destroyed), and one rented by hand (recorded for B's admins).
    foreign = env.sim.create_instance_directly(label=own(env, a1.id), api_key="key-b")
    a_ended = rent(env, TEAM_A, instance=False)
    storage.mark_failed(env.sf, a_ended.id, "ended")
    foreign_ended = env.sim.create_instance_directly(label=own(env, a_ended.id), api_key="key-b")
    b_ended = rent(env, TEAM_B, instance=False)
    storage.mark_failed(env.sf, b_ended.id, "ended")
    stray = env.sim.create_instance_directly(label=own(env, b_ended.id), api_key="key-b")
    no_row = env.sim.create_instance_directly(label=own(env, 987654), api_key="key-b")
    by_hand = env.sim.create_instance_directly(label="my notebook", api_key="key-b")
    b1 = rent(env, TEAM_B)  # B follows a row too, so its list is read every tick
    env.sim.advance(4)
    for _ in range(6):
        env.now[0] += timedelta(seconds=15)
        report = env.tick()
        assert report.error is None
    # B's sweep covered every instance id, A's among them: A's row was never judged by it.
    assert env.current(a1).status == "ready"
    assert a1.instance_id in env.sim.instances_of("key-a")
    assert env.current(b1).status == "ready"
    assert foreign in env.sim.instances_of("key-b")  # left alone
    assert foreign_ended in env.sim.instances_of("key-b")  # A's ended row: not B's either
    assert no_row in env.sim.instances_of("key-b")  # not ours to destroy
    assert stray not in env.sim.instances_of("key-b")
    assert env.sim.request_count("DELETE") == 1
    unmanaged = storage.get_state(env.sf, f"unmanaged:{ACCOUNT_B}")
    assert unmanaged is not None and f'"id":{by_hand}' in unmanaged[0]
    assert f'"id":{no_row}' in unmanaged[0]
    on_a = storage.get_state(env.sf, f"unmanaged:{ACCOUNT_A}")
    assert on_a is not None and on_a[0] == "[]"


@pytest.mark.parametrize("failure", ["revoked key", "unreadable key"])
def test_a_failing_account_leaves_its_rows_and_the_others_go_on(
    make_env: Callable[..., Env], failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env()
    b1 = rent(env, TEAM_B)
    a1 = rent(env, TEAM_A)
    env.sim.advance(4)
    env.now[0] += timedelta(minutes=2)
    if failure == "revoked key":
        env.sim.revoke_key("key-b")
    else:
        env.broken.add(TEAM_B)
    caplog.set_level(logging.WARNING, logger="bot.services")
    for _ in range(3):
        caplog.clear()
        env.now[0] += timedelta(minutes=10)  # long past any timeout: nothing is judged on a guess
        env.tick()
        lines = [r.getMessage() for r in caplog.records]
        about_b = [line for line in lines if ACCOUNT_B in line or TEAM_B in line]
        assert len(about_b) == 1, about_b  # one line per tick
        assert "key-b" not in caplog.text
    assert env.current(a1).status == "ready"
    # B's row is as it was, though its deploy timeout passed: neither failed nor gone, and
    # its instance was not destroyed.
    assert env.current(b1) == b1
    assert env.sim.instance(b1.instance_id or 0) is not None
    assert env.sim.request_count("DELETE") == 0
    # Its key works again: B's row goes on where it was.
    if failure == "revoked key":
        env.sim.add_account("key-b", 1002)
    else:
        env.broken.clear()
    env.tick()
    assert env.current(b1).status == "ready"


def test_an_uninstalled_workspace_keeps_its_account_and_its_lifetimes_apply(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(lifetimes=True)
    start = storage.utcnow()
    storage.record_install(env.sf, TEAM_A, enterprise_id=None, team_name="A", now=start)
    a1 = rent(env, TEAM_A, lifetime_hours=1.0, now=start)
    env.sim.advance(4)
    env.now[0] = start + timedelta(minutes=2)
    env.tick()
    assert env.current(a1).status == "ready"
    assert storage.record_uninstall(env.sf, TEAM_A, now=env.now[0])
    env.now[0] = start + timedelta(hours=3)  # its lifetime ended long ago
    for _ in range(2):
        env.tick()
        env.now[0] += timedelta(seconds=15)
    after = env.current(a1)
    assert after.status == "stopped"  # ON_EXPIRY=stop, sent to A's own account
    assert env.sim.instances_of("key-a")[a1.instance_id or 0]["intended_status"] == "stopped"


# -- start-up recovery -----------------------------------------------------------------------


def test_recovery_reads_each_account_and_settles_only_its_own_rows(
    make_env: Callable[..., Env],
) -> None:
    env = make_env()
    old = storage.utcnow() - timedelta(minutes=10)
    a_lost = rent(env, TEAM_A, now=old, instance=False)  # its create's answer was lost…
    found = env.sim.create_instance_directly(label=own(env, a_lost.id), api_key="key-a")
    b_live = rent(env, TEAM_B, now=old)
    b_waiting = rent(env, TEAM_B, now=old, instance=False)
    # On A's account: an instance labelled for B's live row, a stray of A's own ended row,
    # and one whose label names no row here (left alone: maybe another copy of the bot's).
    foreign = env.sim.create_instance_directly(label=own(env, b_live.id), api_key="key-a")
    a_ended = rent(env, TEAM_A, now=old, instance=False)
    storage.mark_failed(env.sf, a_ended.id, "ended")
    stray = env.sim.create_instance_directly(label=own(env, a_ended.id), api_key="key-a")
    no_row = env.sim.create_instance_directly(label=own(env, 987654), api_key="key-a")
    env.sim.revoke_key("key-b")  # B's list cannot be read

    report = recovery.recover_accounts(
        env.sf, env.accounts, installation_id=storage.installation_id(env.sf), now=storage.utcnow()
    )
    assert report.attached == [(a_lost.id, found)]
    assert report.destroyed == [stray]
    assert report.failed == []  # B's waiting row is not failed on a guess
    assert report.skipped
    assert env.current(b_waiting).status == "creating"
    assert env.current(b_live).instance_id == b_live.instance_id
    assert foreign in env.sim.instances_of("key-a")  # not A's to destroy
    assert no_row in env.sim.instances_of("key-a")
    assert report.unrecorded == [no_row]
    assert report.unrecorded_teams == {TEAM_A: [no_row]}  # only A's admins hear of it
    assert found in env.sim.instances_of("key-a")

    env.sim.add_account("key-b", 1002)  # B's list answers again: its waiting row is settled
    again = recovery.recover_accounts(
        env.sf, env.accounts, installation_id=storage.installation_id(env.sf), now=storage.utcnow()
    )
    assert again.failed == [b_waiting.id] and not again.skipped
    assert env.current(b_waiting).status == "failed"
    settled = env.current(b_live)  # by its own account's read: creating → provisioning
    assert (settled.status, settled.instance_id) == ("provisioning", b_live.instance_id)
