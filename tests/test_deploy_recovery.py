"""The deploy service on its own (threads, launch decisions) and start-up recovery: nothing
rented is left unknown and no row is left in ``creating``. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.crypto import SecretBox
from bot.playground.slack_api import TEAM_ID
from bot.services import recovery
from bot.services.accounts import VastAccounts
from bot.services.deploy import (
    DeployRequest,
    DeployService,
    label_for,
    launch_spec,
)
from bot.services.offers import find_offers
from bot.simulator import Fault, VastSimulator
from bot.slack.messages import SlackMessages
from bot.vast import VastClient
from catalog import load_catalog
from tests.fixtures.slack import ALICE, CHANNEL, BotFactory, BotHarness, MovableClock
from tests.test_deploy import pick_offer, settled, submitted_view

CATALOG = load_catalog(None)
#: The installation id of the deploy services and recoveries made here.
INSTALL = "0123456789ab"
_JUPYTER = CATALOG.get("jupyter-lab")
assert _JUPYTER is not None
JUPYTER = _JUPYTER


@dataclass(frozen=True)
class _Posted:
    channel: str
    ts: str
    fallback_reason: str | None = None


class RecordingNotifier:
    """In-memory stand-in for bot.slack.notifier.Notifier."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._n = 0

    def post_status(self, channel: str, user_id: str, payload: dict[str, Any]) -> _Posted:
        with self._lock:
            self._n += 1
            self.calls.append(("post", channel))
            return _Posted(channel, f"1.{self._n:06d}")

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> bool:
        with self._lock:
            self.calls.append(("update", payload["text"]))
        return True

    def reply(self, channel: str, thread_ts: str, text: str, blocks: Any = None) -> bool:
        with self._lock:
            self.calls.append(("reply", text))
        return True

    def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None:
        with self._lock:
            self.calls.append(("dm", text))
        return "1.0"


def make_service(sf: sessionmaker[Session], vast: VastClient) -> DeployService:
    passwords = SecretBox(Fernet.generate_key().decode())
    return DeployService(
        installation_id=INSTALL,
        accounts=VastAccounts.single(vast, simulated=True),
        session_factory=sf,
        messages=SlackMessages(RecordingNotifier(), passwords=passwords),
        passwords=passwords,
        catalog_get=CATALOG.get,
        lookup_delay=0.01,
    )


def new_row(
    sf: sessionmaker[Session], key: str, *, minutes_ago: float = 10.0, status: str | None = None
) -> storage.DeploymentRecord:
    dep, _ = storage.create_deployment(
        sf,
        request_key=key,
        team_id=TEAM_ID,
        user_id=ALICE,
        channel_id=CHANNEL,
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24.0,
        dph_total=0.4,
        disk_gb=20,
        now=storage.utcnow() - timedelta(minutes=minutes_ago),
    )
    if status == "failed":
        storage.mark_failed(sf, dep.id, "it broke")
    return storage.get_deployment(sf, dep.id) or dep


# -- pure decisions ---------------------------------------------------------------------------


def test_launch_spec_runs_the_launch_command_through_vasts_entrypoint() -> None:
    spec = launch_spec(JUPYTER, password="s3cret-token")
    assert spec.runtype == "ssh_direct" and spec.args is None
    assert spec.onstart == JUPYTER.launch_command
    assert spec.env == {"JUPYTER_TOKEN": "s3cret-token", "-p 8888:8888": "1"}
    assert "s3cret" not in repr(spec)
    own_entrypoint = JUPYTER.model_copy(update={"launch_command": "", "password_env": None})
    plain = launch_spec(own_entrypoint, password=None)
    assert (plain.runtype, plain.onstart, plain.args) == ("args", None, None)
    assert plain.env == {"-p 8888:8888": "1"}


# -- the service under concurrency ------------------------------------------------------------


def test_eight_threads_delivering_one_submission_rent_one_instance(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: VastClient
) -> None:
    service = make_service(session_factory, vast_client)
    offer = find_offers(vast_client, JUPYTER, disk_gb=20)[0].offer
    request = DeployRequest("V0SAME0001", TEAM_ID, ALICE, CHANNEL, JUPYTER, offer, 20, 8.0)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def deliver() -> None:
        barrier.wait()
        results.append(service.deploy(request).created)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert vast_sim.request_count("PUT", "/api/v0/asks/") == 1
    (dep,) = storage.list_for_team(session_factory, TEAM_ID)
    assert dep.status == "provisioning" and list(vast_sim.instances) == [dep.instance_id]


# -- recovery ---------------------------------------------------------------------------------


def test_recovery_attaches_fails_and_destroys(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: VastClient
) -> None:
    sf = session_factory
    lost = new_row(sf, "V-lost")  # crash between Vast.ai's answer and set_instance
    lost_instance = vast_sim.create_instance_directly(label=label_for(INSTALL, lost.id))
    duplicate = vast_sim.create_instance_directly(label=label_for(INSTALL, lost.id))
    never = new_row(sf, "V-never")  # crash before Vast.ai answered
    young = new_row(sf, "V-young", minutes_ago=0.2)  # maybe still being created elsewhere
    failed = new_row(sf, "V-failed", status="failed")
    failed_instance = vast_sim.create_instance_directly(label=label_for(INSTALL, failed.id))
    orphan = vast_sim.create_instance_directly(label=label_for(INSTALL, 99_999))
    stranger = vast_sim.create_instance_directly(label="someone else's")
    half = new_row(sf, "V-half")  # instance stored, status not moved yet
    half_instance = vast_sim.create_instance_directly(label=label_for(INSTALL, half.id))
    storage.set_instance(sf, half.id, half_instance)

    report = recovery.recover(sf, vast_client, installation_id=INSTALL)

    assert report.attached == [(lost.id, min(lost_instance, duplicate))]
    after = {d.id: d for d in storage.list_for_team(sf, TEAM_ID)}
    assert after[lost.id].status == "provisioning"
    assert after[lost.id].instance_id == min(lost_instance, duplicate)
    assert after[never.id].status == "failed"
    assert after[never.id].reason == recovery.RESTART_REASON
    assert after[young.id].status == "creating" and report.pending[0].id == young.id
    assert after[half.id].status == "provisioning"
    assert sorted(report.destroyed) == sorted([max(lost_instance, duplicate), failed_instance])
    # A label naming no row is never destroyed: the database may be an older backup's copy.
    assert report.unrecorded == [orphan]
    assert sorted(vast_sim.instances) == sorted(
        [min(lost_instance, duplicate), stranger, half_instance, orphan]
    )
    assert set(report.changed) >= {lost.id, never.id, half.id}

    again = recovery.recover(sf, vast_client, installation_id=INSTALL)  # idempotent
    assert (again.attached, again.destroyed, again.failed) == ([], [], [])


def test_recovery_on_an_empty_database_touches_nothing(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: VastClient
) -> None:
    someone_elses = vast_sim.create_instance_directly(label=label_for(INSTALL, 1))
    vast_sim.clear_requests()
    report = recovery.recover(session_factory, vast_client, installation_id=INSTALL)
    assert (report.attached, report.destroyed, report.failed) == ([], [], [])
    assert vast_sim.requests == [] and someone_elses in vast_sim.instances


def test_recovery_changes_nothing_when_the_instance_list_is_unavailable(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: VastClient
) -> None:
    never = new_row(session_factory, "V-never")
    orphan = vast_sim.create_instance_directly(label=label_for(INSTALL, 4242))
    vast_sim.inject(Fault.UNAVAILABLE, times=None, endpoint="list")
    report = recovery.recover(session_factory, vast_client, installation_id=INSTALL)
    assert report.skipped
    assert storage.get_deployment(session_factory, never.id).status == "creating"  # type: ignore[union-attr]
    assert orphan in vast_sim.instances


def test_crash_between_create_and_update_is_attached_on_the_next_start(
    bot: BotHarness, bot_factory: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = storage.set_instance
    crashes: list[Any] = []

    def crash_once(*args: Any, **kwargs: Any) -> bool:
        if not crashes:
            crashes.append(args)
            raise RuntimeError("process died here")
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "set_instance", crash_once)
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id))
    bot.slack.wait_for("chat.postMessage", channel=CHANNEL)
    sf = bot.services.session_factory

    def crashed() -> Any:
        rows = storage.list_for_team(sf, TEAM_ID)
        return crashes and len(bot.vast.instances) == 1 and rows

    import tests.test_deploy as e2e

    (dep,) = e2e.wait_until(crashed)
    assert dep.status == "creating" and dep.instance_id is None
    (instance_id,) = bot.vast.instances

    second = bot_factory(simulator=bot.vast)  # the next start, on the same database
    (after,) = settled(second)
    assert after.id == dep.id and after.instance_id == instance_id
    assert after.status == "provisioning"
    update = bot.slack.wait_for("chat.update", ts=dep.message_ts)[-1]
    assert "Provisioning" in update.args["text"] or "provisioning" in update.args["text"]
    assert bot.vast.request_count("PUT", "/api/v0/asks/") == 1
    events = [e.action for e in storage.list_events(sf, dep.id)]
    assert "recovered" in events


def test_a_submission_killed_before_the_create_is_explained_then_failed(
    bot: BotHarness, bot_factory: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect N: kill -9 between the ack and the create. The next start finds the row young
    (another process might still be renting it), so the status message says at once what is
    happening and when it will be settled; at that time the row is failed and the message
    shows it (thread note to the requester too)."""

    def killed(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("process died here")  # before anything reached Vast.ai

    monkeypatch.setattr(DeployService, "_create", killed)
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id))
    bot.slack.wait_for("chat.postMessage", channel=CHANNEL)
    sf = bot.services.session_factory

    import tests.test_deploy as e2e

    def stranded() -> Any:
        rows = storage.list_for_team(sf, TEAM_ID)
        return rows if rows and rows[0].message_ts else None

    (dep,) = e2e.wait_until(stranded)
    assert dep.status == "creating" and dep.instance_id is None and not bot.vast.instances
    ts = dep.message_ts
    monkeypatch.undo()
    bot.slack.reset()

    clock = MovableClock()
    second = bot_factory(simulator=bot.vast, clock=clock)  # the next start, same database
    update = bot.slack.wait_for("chat.update", ts=ts)[-1]
    blocks = json.dumps(update.args.get("blocks"))
    assert "restarted" in blocks and "lists no instance" in blocks and "marked failed" in blocks
    assert "<!date^" in blocks  # when it will be settled, in the reader's own time
    after = storage.get_deployment(sf, dep.id)
    assert after is not None and after.status == "creating"  # not failed on a guess

    # When the note says: Vast.ai still lists no instance for it, so it fails, and shows it.
    clock.advance(seconds=recovery.GRACE_SECONDS + 10)
    bot.slack.reset()
    job = second.services.scheduler.get_job("deploy-recovery")
    assert job is not None
    job.modify(next_run_time=datetime.now(UTC))
    failed = e2e.wait_until(
        lambda: (d := storage.get_deployment(sf, dep.id)) and d.status == "failed" and d
    )
    assert failed.reason == recovery.RESTART_REASON
    shown = bot.slack.wait_for("chat.update", ts=ts)[-1]
    assert "failed" in shown.args["text"].lower()
    assert "lists no instance" not in json.dumps(shown.args.get("blocks"))  # the note is gone
    bot.slack.wait_for("chat.postMessage", thread_ts=ts)
    assert bot.vast.request_count("PUT", "/api/v0/asks/") == 0


def test_recovery_leaves_submissions_made_since_the_start_to_their_process(
    session_factory: sessionmaker[Session], vast_sim: VastSimulator, vast_client: VastClient
) -> None:
    """A re-run must not take this process's own in-flight submissions for a restart's
    leftovers: only rows written before ``started_at`` are noted and waited for."""
    sf = session_factory
    before = new_row(sf, "V-before", minutes_ago=0.5)
    since = new_row(sf, "V-since", minutes_ago=0.1)
    started = storage.utcnow() - timedelta(minutes=0.3)
    report = recovery.recover(sf, vast_client, installation_id=INSTALL, started_at=started)
    assert [d.id for d in report.pending] == [before.id]
    assert recovery.settles_at(before) > before.created_at + timedelta(seconds=120)
    assert "marked failed" in recovery.waiting_note(before)
    assert storage.get_deployment(sf, since.id).status == "creating"  # type: ignore[union-attr]
