"""The installation id: labels carry it, so a fresh database (a lost SQLite file, an ephemeral
disk) or a second installation on the same Vast.ai account never destroys instances that are
not its own. SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.playground.slack_api import FakeSlack
from bot.services import recovery
from bot.services.deploy import BotLabel, label_for, parse_label
from bot.services.unmanaged import read_unmanaged
from bot.simulator import VastSimulator
from storage import StorageError, make_engine, make_session_factory, migrate
from tests.fixtures.slack import FAST_TIMELINE, BotFactory, BotHarness, MovableClock
from tests.test_deploy import pick_offer, rows, settled, submitted_view
from tests.test_poller import dms, poller_of

OURS = "0123456789ab"
THEIRS = "fedcba987654"
ADMIN = "U0ADMIN001"


# -- labels (pure) ---------------------------------------------------------------------------


def test_labels_round_trip_with_the_installation() -> None:
    assert label_for(OURS, 42) == "slackbot:0123456789ab:dep-42"
    assert parse_label(label_for(OURS, 42)) == BotLabel(OURS, 42)
    assert parse_label(label_for(THEIRS, 1)) == BotLabel(THEIRS, 1)
    top = 2**31 - 1
    assert parse_label(label_for(OURS, top)) == BotLabel(OURS, top)


def test_the_old_label_form_parses_without_an_installation() -> None:
    assert parse_label("slackbot:dep-42") == BotLabel(None, 42)


def test_only_our_installation_or_a_row_holding_an_old_label_is_ours() -> None:
    holder = object()  # any row of this database whose instance_id is the instance
    assert recovery.ours(BotLabel(OURS, 1), OURS, None)
    assert not recovery.ours(BotLabel(THEIRS, 1), OURS, None)
    assert not recovery.ours(BotLabel(None, 1), OURS, None)
    assert recovery.ours(BotLabel(None, 1), OURS, holder)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "label",
    [
        None,
        "",
        "slackbot:dep-",
        "slackbot:dep-4x",
        "other:dep-4",
        "slackbot:dep-1 2",
        " slackbot:dep-1",
        "slackbot:dep-1\n",
        "slackbot:dep-0",
        "slackbot:dep-01",
        "slackbot:dep-+1",
        "slackbot:dep--1",
        "slackbot:dep-2147483648",  # past a 32-bit deployment id
        "slackbot:dep-" + "9" * 40,
        "slackbot:dep-\u0661\u0662",  # Arabic-Indic digits
        "slackbot:dep-\uff11",  # fullwidth one
        "slackbot:0123456789ab:dep-\u0661",
        "slackbot:0123456789ab:dep-1:x",
        "slackbot:0123456789ab:x:dep-1",
        "slackbot:0123456789ab:dep-1:dep-2",
        "slackbot:dep-1:dep-2",
        "slackbot::dep-1",
        "slackbot:0123456789AB:dep-1",
        "slackbot:0123456789a:dep-1",
        "slackbot:0123456789abc:dep-1",
        "slackbot:\uff10123456789ab:dep-1",
        "slackbot:0123456789ab:dep-",
        "slackbot:0123456789ab:dep-99999999999",
        "Slackbot:0123456789ab:dep-1",
        "slackbot:0123456789ab:dep-1" + " " * 300,
    ],
)
def test_malformed_labels_name_nothing(label: str | None) -> None:
    assert parse_label(label) is None


def test_label_for_refuses_what_it_could_not_parse_back() -> None:
    for installation in ("", "0123456789AB", "0123456789a", "xyz", "0123456789ab:"):
        with pytest.raises(ValueError):
            label_for(installation, 1)
    for deployment_id in (0, -1, 2**31):
        with pytest.raises(ValueError):
            label_for(OURS, deployment_id)


# -- storage ---------------------------------------------------------------------------------


def test_the_installation_id_is_created_once_and_survives_a_restart(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    first = storage.installation_id(make_session_factory(engine))
    assert storage.INSTALLATION_ID_PATTERN.fullmatch(first)
    assert storage.installation_id(make_session_factory(engine)) == first
    engine.dispose()
    restarted = make_engine(database_url)  # a new process on the same database
    try:
        sf = make_session_factory(restarted)
        assert storage.installation_id(sf, candidate=THEIRS) == first
        assert storage.get_state(sf, storage.INSTALLATION_STATE) is not None
    finally:
        restarted.dispose()


def test_concurrent_first_starts_agree_on_one_installation_id(database_url: str) -> None:
    setup = make_engine(database_url)
    migrate(setup)
    setup.dispose()
    count = 6
    engines = [make_engine(database_url) for _ in range(count)]  # one per "process"
    candidates = [f"{n:012x}" for n in range(1, count + 1)]
    barrier = threading.Barrier(count)
    found: list[str] = []
    errors: list[BaseException] = []

    def start(n: int) -> None:
        sf = make_session_factory(engines[n])
        barrier.wait()
        try:
            found.append(storage.installation_id(sf, candidate=candidates[n]))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert len(found) == count and len(set(found)) == 1 and found[0] in candidates


def test_a_hand_edited_installation_id_stops_the_bot(
    session_factory: sessionmaker[Session],
) -> None:
    storage.put_state(session_factory, storage.INSTALLATION_STATE, "not hex!", storage.utcnow())
    with pytest.raises(StorageError):
        storage.installation_id(session_factory)


# -- end to end: the simulator shared by databases -------------------------------------------


@pytest.fixture
def shared_sim() -> Any:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    yield sim
    sim.stop()


def rent(bot: BotHarness, view_id: str = "V0PICKER01") -> storage.DeploymentRecord:
    """A deployment through the picker's submission and the real deploy service."""
    before = len(rows(bot))
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id, view_id=view_id))
    found = settled(bot, before + 1)
    dep = max(found, key=lambda d: d.id)
    assert dep.status == "provisioning" and dep.instance_id is not None
    return dep


def labelled_dms(fake: FakeSlack) -> list[Any]:
    return [c for c in dms(fake) if "empty database" in str(c.args.get("text"))]


def test_a_fresh_database_never_destroys_the_instances_of_the_old_one(
    bot_factory: BotFactory, shared_sim: VastSimulator, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    clock = MovableClock()
    first = bot_factory(simulator=shared_sim, clock=clock, bot_admins=frozenset({ADMIN}))
    old = rent(first)
    assert old.id == 1
    first.runtime.close()  # the bot stops; its SQLite file is lost

    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    second = bot_factory(
        simulator=shared_sim,
        clock=clock,
        database_url=fresh_url,
        bot_admins=frozenset({ADMIN}),
    )
    assert second.services.deploy.installation_id != first.services.deploy.installation_id
    assert old.instance_id in shared_sim.instances  # start-up touched nothing
    (notice,) = labelled_dms(fake_slack)  # the admins hear of it at once
    assert str(old.instance_id) in notice.args["text"]

    new = rent(second)
    assert new.id == 1  # the same deployment id as the first database's instance
    poller = poller_of(second)
    for _ in range(6):  # several sweep passes: a stray is destroyed after two
        shared_sim.advance(30)
        clock.advance(minutes=1)
        poller.tick()
    # A restart on the fresh database runs start-up recovery against it too.
    again = recovery.run_on_start(
        second.services.session_factory,
        second.services.accounts,
        second.services.deploy,
        admins=second.services.workspaces,
    )
    assert again.destroyed == [] and old.instance_id in again.foreign
    for _ in range(3):
        clock.advance(minutes=1)
        poller.tick()

    assert old.instance_id in shared_sim.instances  # never destroyed
    assert new.instance_id in shared_sim.instances
    assert shared_sim.request_count("DELETE") == 0
    unmanaged = read_unmanaged(second.services.session_factory, clock())
    assert old.instance_id in [i.id for i in unmanaged]
    assert new.instance_id not in [i.id for i in unmanaged]
    assert len(labelled_dms(fake_slack)) == 1  # once


def unrecorded_dms(fake: FakeSlack) -> list[Any]:
    return [c for c in dms(fake) if "does not know" in str(c.args.get("text"))]


def test_a_database_restored_from_a_backup_keeps_the_instances_rented_since(
    bot_factory: BotFactory, shared_sim: VastSimulator, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # The installation id lives in the database, so a copy restored from a backup has the same
    # id, and the deployments written after the backup are missing from it. Their instances
    # carry labels of this installation naming ids the copy has no row for: a user's live work,
    # never strays. They are left alone, listed as unmanaged, and the admins told once.
    import shutil

    clock = MovableClock()
    live_url = f"sqlite:///{tmp_path / 'live.db'}"
    admins = frozenset({ADMIN})
    first = bot_factory(simulator=shared_sim, clock=clock, database_url=live_url, bot_admins=admins)
    kept = rent(first)
    first.runtime.close()
    shutil.copy(tmp_path / "live.db", tmp_path / "backup.db")  # last night's backup
    second = bot_factory(
        simulator=shared_sim, clock=clock, database_url=live_url, bot_admins=admins
    )
    newer = rent(second, view_id="V0PICKER02")  # rented after the backup was taken
    assert newer.id == kept.id + 1
    second.runtime.close()

    restored = bot_factory(
        simulator=shared_sim,
        clock=clock,
        database_url=f"sqlite:///{tmp_path / 'backup.db'}",
        bot_admins=admins,
    )
    sf = restored.services.session_factory
    assert restored.services.deploy.installation_id == second.services.deploy.installation_id
    assert storage.get_deployment(sf, newer.id) is None
    assert newer.instance_id in shared_sim.instances  # start-up recovery touched nothing
    (notice,) = unrecorded_dms(fake_slack)  # the admins hear of it at once
    assert str(newer.instance_id) in notice.args["text"]

    poller = poller_of(restored)
    for _ in range(6):  # several sweep passes: a stray is destroyed after two
        shared_sim.advance(30)
        clock.advance(minutes=1)
        assert poller.tick().error is None
    again = recovery.run_on_start(  # a restart: the same instance, not told again
        sf,
        restored.services.accounts,
        restored.services.deploy,
        admins=restored.services.workspaces,
    )
    assert again.destroyed == [] and again.unrecorded == [newer.instance_id]

    assert newer.instance_id in shared_sim.instances  # never destroyed
    assert kept.instance_id in shared_sim.instances
    assert shared_sim.request_count("DELETE") == 0
    unmanaged = [i.id for i in read_unmanaged(sf, clock())]
    assert newer.instance_id in unmanaged and kept.instance_id not in unmanaged
    assert len(unrecorded_dms(fake_slack)) == 1  # once
    assert labelled_dms(fake_slack) == []  # not an empty database


def test_the_sweep_keeps_an_instance_labelled_for_a_deployment_it_has_no_row_for(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator
) -> None:
    # The reviewer's case, without start-up recovery: the poller alone, on a database whose
    # highest deployment is 1, finds this installation's label for deployment 2.
    from tests.fixtures.vast import client_for
    from tests.test_intents import make_row, on_vast, start_process

    sf, clock = session_factory, MovableClock()
    make_row(sf, vast_sim, clock)  # deployment 1: what the backup holds
    client = client_for(vast_sim)
    process = start_process(sf, client, clock)
    installation = storage.installation_id(sf)
    newer = vast_sim.create_instance_directly(label=label_for(installation, 2), api_key=None)
    vast_sim.advance(4)
    for _ in range(4):
        process.passes(clock, 1)
    assert on_vast(vast_sim, newer) == "running"
    assert newer in [i.id for i in read_unmanaged(sf, clock())]
    client.close()


def test_two_installations_on_one_account_keep_their_hands_off_each_other(
    bot_factory: BotFactory, shared_sim: VastSimulator, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    clock = MovableClock()
    staging = bot_factory(simulator=shared_sim, clock=clock)
    production = bot_factory(
        simulator=shared_sim, clock=clock, database_url=f"sqlite:///{tmp_path / 'prod.db'}"
    )
    bots = [staging, production]
    deps = [rent(bot) for bot in bots]
    assert [d.id for d in deps] == [1, 1]
    # A genuine stray of each: a duplicate create, labelled with its own installation for its
    # live row, which holds another instance.
    strays = [
        shared_sim.create_instance_directly(
            label=label_for(bot.services.deploy.installation_id, dep.id)
        )
        for bot, dep in zip(bots, deps, strict=True)
    ]
    # And one labelled for an id neither database holds: left alone (a restored database's).
    unrecorded = [
        shared_sim.create_instance_directly(
            label=label_for(bot.services.deploy.installation_id, 4242)
        )
        for bot in bots
    ]
    pollers = [poller_of(bot) for bot in bots]
    for minute in range(60):  # an hour of simulated time
        shared_sim.advance(60)
        clock.advance(minutes=1)
        for poller in pollers:
            report = poller.tick()
            assert report.error is None, minute
    live = shared_sim.instances
    for bot, dep in zip(bots, deps, strict=True):
        assert dep.instance_id in live
        row = storage.get_deployment(bot.services.session_factory, dep.id)
        assert row is not None and row.status in ("ready", "stopped")
    for stray in strays:
        assert stray not in live
    for instance in unrecorded:
        assert instance in live
    assert shared_sim.request_count("DELETE") == 2
    assert timedelta(minutes=60) <= clock() - deps[0].created_at


# -- the old label form ----------------------------------------------------------------------


def test_recovery_keeps_old_labels_of_its_rows_and_leaves_the_others_alone(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: Any
) -> None:
    from tests.test_deploy_recovery import new_row

    sf = session_factory
    live = new_row(sf, "V-live")  # rented before installation ids: old label, row holds it
    live_instance = vast_sim.create_instance_directly(label=f"slackbot:dep-{live.id}")
    storage.set_instance(sf, live.id, live_instance)
    ended = new_row(sf, "V-ended")  # old label, its row is over: a stray of ours
    ended_instance = vast_sim.create_instance_directly(label=f"slackbot:dep-{ended.id}")
    storage.set_instance(sf, ended.id, ended_instance)
    storage.mark_failed(sf, ended.id, "it broke")
    waiting = new_row(sf, "V-waiting")  # creating, no instance
    # An old label naming the waiting row, which no row holds: maybe another database's.
    lookalike = vast_sim.create_instance_directly(label=f"slackbot:dep-{waiting.id}")
    theirs = vast_sim.create_instance_directly(label=label_for(THEIRS, live.id))

    report = recovery.recover(sf, vast_client, installation_id=OURS)

    assert report.destroyed == [ended_instance]
    assert report.attached == []  # the lookalike is not taken for the waiting row's
    assert sorted(report.foreign) == sorted([lookalike, theirs])
    assert set(vast_sim.instances) == {live_instance, lookalike, theirs}
    assert storage.get_deployment(sf, live.id).instance_id == live_instance  # type: ignore[union-attr]


def test_the_sweep_keeps_old_labels_of_its_rows_and_lists_the_others(
    bot: BotHarness,
) -> None:
    from tests.test_poller import _offer, insert_row

    sf = bot.services.session_factory
    template = bot.services.catalog.get("jupyter-lab")
    assert template is not None

    def old_row(*, ended: bool) -> tuple[storage.DeploymentRecord, int]:
        """A row rented before installation ids: its instance has the old label."""
        dep = insert_row(sf, template, _offer(bot.vast))
        instance = bot.vast.create_instance_directly(label=f"slackbot:dep-{dep.id}")
        assert storage.set_instance(sf, dep.id, instance)
        if ended:
            storage.mark_failed(sf, dep.id, "it broke")
        return dep, instance

    live, live_instance = old_row(ended=False)
    _, ended_instance = old_row(ended=True)  # its row is over: a stray of ours
    lookalike = bot.vast.create_instance_directly(label=f"slackbot:dep-{live.id}")  # no row
    theirs = bot.vast.create_instance_directly(label=label_for(THEIRS, live.id))
    poller = poller_of(bot)
    for _ in range(4):  # a stray is destroyed once it looked stray in two passes
        bot.vast.advance(5)
        poller.tick()
    remaining = bot.vast.instances
    assert live_instance in remaining and lookalike in remaining and theirs in remaining
    assert ended_instance not in remaining
    assert bot.vast.request_count("DELETE") == 1
    unmanaged = [i.id for i in read_unmanaged(sf)]
    assert lookalike in unmanaged and theirs in unmanaged
    assert live_instance not in unmanaged


# -- the notice on an empty database, OAuth mode ---------------------------------------------


class _Notices:
    """Records the labelled-instances DMs (the one messages-port method used)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int], str | None]] = []

    def labelled_on_empty_database(
        self, user_id: str, instance_ids: Any, *, team_id: str | None = None
    ) -> bool:
        self.sent.append((user_id, list(instance_ids), team_id))
        return True


def test_each_workspaces_admins_hear_of_labelled_instances_on_its_account_once(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator
) -> None:
    from types import SimpleNamespace

    from bot.services.accounts import SIMULATOR, StoredKey, VastAccount, VastAccounts
    from bot.services.admins import StaticAdmins
    from tests.fixtures.vast import client_for

    sf = session_factory
    vast_sim.add_account("key-a", 1001)
    vast_sim.add_account("key-b", 1002)
    keys = {"TA": StoredKey("key-a", "1001"), "TB": StoredKey("key-b", "1002")}
    for team in keys:
        storage.record_install(sf, team, enterprise_id=None, team_name=team)
    clients: list[Any] = []

    def make_client(api_key: str) -> Any:
        clients.append(client_for(vast_sim, api_key=api_key))
        return clients[-1]

    accounts = VastAccounts(
        VastAccount(SIMULATOR, client_for(vast_sim, api_key=None), simulated=True),
        stored_key=keys.get,
        make_client=make_client,
    )
    on_a = vast_sim.create_instance_directly(label=label_for(THEIRS, 1), api_key="key-a")
    vast_sim.create_instance_directly(label="my notebook", api_key="key-b")  # not the bot's
    notices = _Notices()
    service = SimpleNamespace(messages=notices)

    found = recovery.announce_labelled(sf, accounts, service, StaticAdmins(frozenset({ADMIN})))  # type: ignore[arg-type]
    assert found == {"TA": [on_a]}
    assert notices.sent == [(ADMIN, [on_a], "TA")]
    recovery.announce_labelled(sf, accounts, service, StaticAdmins(frozenset({ADMIN})))  # type: ignore[arg-type]
    assert len(notices.sent) == 1  # claimed once per database
    assert on_a in vast_sim.instances
    for client in clients:
        client.close()
    accounts.default.client.close()
