"""The status poller end to end: the real bot (fake Slack, Vast.ai simulator on a frozen clock
with the fast timeline), deployments written straight into the database, ticks driven by hand.

FAST_TIMELINE: ``created`` at 0 s, ``loading`` at 1 s, ``running`` (ports mapped) at 2 s, the app
answers 200 at 3 s.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

import storage
from bot.playground.slack_api import TEAM_ID, Call, FakeSlack
from bot.services.deploy import label_for
from bot.services.poller import StatusPoller, TickReport
from bot.simulator import VastSimulator
from bot.vast import VastClient, port_env
from bot.vast.client import InstancePage
from catalog import Template
from storage import DeploymentRecord, SessionFactory
from tests.fixtures.slack import ALICE, CHANNEL, FAST_TIMELINE, BotFactory, BotHarness


def poller_like(poller: StatusPoller, *, lease_name: str | None) -> StatusPoller:
    """A second poller wired like ``poller`` (same database, accounts and messages)."""
    return StatusPoller(
        installation_id=poller.installation_id,
        session_factory=poller.sf,
        accounts=poller.accounts,
        messages=poller.messages,
        catalog_get=poller.catalog_get,
        interval_seconds=poller.interval_seconds,
        timeout_minutes=poller.timeout.total_seconds() / 60,
        on_change=poller.on_change,
        lease_name=lease_name,
    )


PASSWORD = "pw-Zq8sT3cretValue-91"


# -- helpers ---------------------------------------------------------------------------------


def _offer(sim: VastSimulator) -> dict[str, Any]:
    return next(o for o in sim.offers if o["rentable"] and o["direct_port_count"] > 0)


def insert_row(
    sf: SessionFactory,
    template: Template,
    offer: dict[str, Any],
    *,
    team_id: str = TEAM_ID,
    simulated: bool = True,
    web_password: str | None = PASSWORD,
    lifetime_hours: float | None = None,
    now: datetime | None = None,
) -> DeploymentRecord:
    """The deploy service's row for ``template`` on ``offer`` (a simulator offer), by hand."""
    dep, created = storage.create_deployment(
        sf,
        request_key=f"V{uuid.uuid4().hex[:10]}",
        team_id=team_id,
        user_id=ALICE,
        channel_id=CHANNEL,
        template_slug=template.slug,
        template_name=template.name,
        offer_id=offer["id"],
        gpu_name=offer["gpu_name"],
        num_gpus=offer["num_gpus"],
        gpu_ram_gb=offer["gpu_ram"] / 1024,
        dph_total=offer["dph_total"],
        disk_gb=template.disk_gb,
        simulated=simulated,
        web_password=web_password,
        lifetime_hours=lifetime_hours,
        now=now,
    )
    assert created
    return dep


def rent_labelled(
    client: VastClient,
    sf: SessionFactory,
    template: Template,
    offer: dict[str, Any],
    dep: DeploymentRecord,
    *,
    web_password: str | None = PASSWORD,
    now: datetime | None = None,
) -> int:
    """The deploy service's instance for ``dep`` (labelled with the database's installation) on
    ``client``'s account, recorded on the row; returns its id."""
    env = {**template.env, **port_env(template.ports)}
    if template.password_env and web_password:
        env[template.password_env] = web_password
    instance_id = client.create_instance(
        offer["id"],
        image=template.docker_image,
        env=env,
        disk_gb=template.disk_gb,
        label=label_for(storage.installation_id(sf), dep.id),
        runtype="ssh_direct",
        onstart=template.launch_command or None,
    )
    assert storage.set_instance(sf, dep.id, instance_id, now=now)
    return instance_id


def deploy(
    harness: BotHarness,
    slug: str = "jupyter-lab",
    *,
    web_password: str | None = PASSWORD,
    post_message: bool = True,
    lifetime_hours: float | None = None,
    now: datetime | None = None,
) -> DeploymentRecord:
    """What the deploy service does, done by hand: row (created at ``now``, with
    ``lifetime_hours``), instance (labelled), status message."""
    services = harness.services
    sf = services.session_factory
    template = services.catalog.get(slug)
    assert template is not None
    offer = _offer(harness.vast)
    dep = insert_row(
        sf, template, offer, web_password=web_password, lifetime_hours=lifetime_hours, now=now
    )
    rent_labelled(services.vast, sf, template, offer, dep, web_password=web_password, now=now)
    if post_message:
        fresh = storage.get_deployment(sf, dep.id)
        assert fresh is not None
        posted = services.messages.post_status(fresh, template)
        assert posted is not None and posted.channel == CHANNEL
        storage.set_message(sf, dep.id, posted.channel, posted.ts)
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


def poller_of(harness: BotHarness) -> StatusPoller:
    poller = harness.services.poller
    assert isinstance(poller, StatusPoller)
    return poller


def current(harness: BotHarness, dep: DeploymentRecord) -> DeploymentRecord:
    record = storage.get_deployment(harness.services.session_factory, dep.id)
    assert record is not None
    return record


def shown_status(call: Call) -> str:
    """The status in a status message's fallback text (``"JupyterLab on …: ready"``)."""
    return str(call.args["text"]).rsplit(": ", 1)[1]


def thread_replies(fake: FakeSlack, dep: DeploymentRecord) -> list[Call]:
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == dep.message_ts and c.args.get("channel") == CHANNEL
    ]


def dms(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if str(c.args["channel"]).startswith("D")]


def later(minutes: float) -> Any:
    return lambda: storage.utcnow() + timedelta(minutes=minutes)


def to_ready(harness: BotHarness, dep: DeploymentRecord) -> TickReport:
    poller = poller_of(harness)
    poller.tick()
    harness.vast.advance(4)
    report = poller.tick()
    assert current(harness, dep).status == "ready"
    return report


# -- the happy path --------------------------------------------------------------------------


def test_status_edits_in_order_until_ready_with_urls_and_one_notification(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)

    poller.tick()  # t=0: "created" -> provisioning
    assert current(bot, dep).status == "provisioning"
    bot.vast.advance(1.5)  # loading: Vast.ai's status message changes
    poller.tick()
    assert "Downloading image layers" in str(current(bot, dep).status_msg)
    bot.vast.advance(1.0)  # t=2.5: running, ports mapped, the app still answers 503
    report = poller.tick()
    assert report.probes == 1
    assert current(bot, dep).status == "provisioning"
    bot.vast.advance(1.0)  # t=3.5: the app answers
    report = poller.tick()
    assert current(bot, dep).status == "ready"
    assert report.notified == 1

    posted = fake_slack.calls_to("chat.postMessage")[0]
    updates = fake_slack.calls_to("chat.update")
    assert updates and all(u.args["ts"] == dep.message_ts for u in updates)
    seen = [shown_status(posted)] + [shown_status(u) for u in updates]
    assert list(dict.fromkeys(seen)) == ["creating", "provisioning", "ready"]
    loading_update = next(u for u in updates if "Downloading image layers" in json.dumps(u.args))
    assert shown_status(loading_update) == "provisioning"

    instance = bot.vast.instance(dep.instance_id or 0)
    assert instance is not None
    host_port = instance["ports"]["8888/tcp"][0]["HostPort"]
    ssh_port = instance["ports"]["22/tcp"][0]["HostPort"]
    ready_text = json.dumps(updates[-1].args["blocks"])
    assert f"http://127.0.0.1:{host_port}/" in ready_text
    assert f"ssh -p {ssh_port} root@127.0.0.1" in ready_text
    actions = [b for b in updates[-1].args["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "deployment_stop",
        "deployment_credentials",
        "deployment_share",
        "deployment_destroy",
    ]

    # the requester's App Home followed each change (provisioning, ready)
    homes = fake_slack.calls_to("views.publish")
    assert [h.args["user_id"] for h in homes] == [ALICE, ALICE]
    assert "JupyterLab" in json.dumps(homes[-1].args["view"])

    for _ in range(3):
        poller.tick()
    replies = thread_replies(fake_slack, dep)
    assert len(replies) == 1
    assert replies[0].args["text"].startswith(f"<@{ALICE}> your JupyterLab on 1× ")
    assert len(fake_slack.calls_to("views.publish")) == 2  # nothing changed since
    assert " is ready" in replies[0].args["text"]
    assert f"http://127.0.0.1:{host_port}/" in replies[0].args["text"]


def test_secrets_go_only_to_the_requester_by_dm(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    to_ready(bot, dep)
    token = (bot.vast.instance(dep.instance_id or 0) or {})["jupyter_token"]

    direct = dms(fake_slack)
    assert len(direct) == 1
    assert direct[0].args["channel"] == "D" + ALICE[1:]
    assert PASSWORD in json.dumps(direct[0].args)
    assert len(fake_slack.calls) > len(direct)  # the channel's messages are checked too
    for call in fake_slack.calls:
        if call in direct:
            continue
        dumped = json.dumps(call.args)
        assert PASSWORD not in dumped, call.method
        assert token not in dumped, call.method


def test_app_port_mapped_but_not_answering_is_not_ready(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    bot.vast.app_never_ready(dep.instance_id or 0)
    poller = poller_of(bot)
    bot.vast.advance(10)
    for _ in range(3):
        report = poller.tick()
        assert report.probes == 1
    record = current(bot, dep)
    assert record.status == "provisioning"
    assert record.ports_json is not None  # mapped
    assert thread_replies(fake_slack, dep) == []

    poller.clock = later(31)  # past DEPLOY_TIMEOUT_MINUTES (30)
    poller.tick()
    record = current(bot, dep)
    assert record.status == "failed"
    assert "did not answer" in str(record.reason)
    assert bot.vast.request_count("DELETE", f"/api/v0/instances/{dep.instance_id}/") == 1


# -- failures ----------------------------------------------------------------------------------


def _failed(bot: BotHarness, fake: FakeSlack, dep: DeploymentRecord) -> DeploymentRecord:
    record = current(bot, dep)
    assert record.status == "failed"
    assert bot.vast.request_count("DELETE", f"/api/v0/instances/{dep.instance_id}/") == 1
    assert bot.vast.instance(dep.instance_id or 0) is None
    last = fake.calls_to("chat.update")[-1]
    assert shown_status(last) == "failed"
    assert str(record.reason)[:40] in json.dumps(last.args["blocks"])
    replies = thread_replies(fake, dep)
    assert len(replies) == 1 and "failed" in replies[0].args["text"]
    assert replies[0].args["text"].startswith(f"<@{ALICE}>")
    return record


def test_instance_exits(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.exit_instance(dep.instance_id or 0, "container exited with code 137")
    poller.tick()
    record = _failed(bot, fake_slack, dep)
    assert "exited" in str(record.reason) and "code 137" in str(record.reason)
    poller.tick()  # failed is final: not watched, nothing more
    assert bot.vast.request_count("DELETE") == 1


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (
            "Error response from daemon: OCI runtime create failed: runc create failed",
            "could not be started",
        ),
        (
            "Error response from daemon: pull access denied for nosuch/image, "
            "repository does not exist",
            "could not be pulled",
        ),
    ],
)
def test_error_in_status_msg(bot: BotHarness, fake_slack: FakeSlack, msg: str, words: str) -> None:
    dep = deploy(bot)
    bot.vast.status_msg_error(dep.instance_id or 0, msg)
    poller_of(bot).tick()
    record = _failed(bot, fake_slack, dep)
    assert words in str(record.reason)
    assert msg[:30] in str(record.reason)


def test_stuck_past_the_timeout_is_destroyed_once(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    bot.vast.stuck_loading(dep.instance_id or 0)
    poller = poller_of(bot)
    bot.vast.advance(60)
    poller.clock = later(29)
    poller.tick()
    assert current(bot, dep).status == "provisioning"
    assert bot.vast.request_count("DELETE") == 0
    poller.clock = later(31)
    poller.tick()
    record = _failed(bot, fake_slack, dep)
    assert "Not ready after 30 minutes" in str(record.reason)
    assert "loading" in str(record.reason)
    poller.tick()
    assert bot.vast.request_count("DELETE") == 1


def test_stopped_by_vast_before_ready_fails(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.stop_by_vast(dep.instance_id or 0)
    poller.tick()
    record = _failed(bot, fake_slack, dep)
    assert "credit" in str(record.reason)


def test_stopped_by_vast_when_ready_is_kept_stopped(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    to_ready(bot, dep)
    bot.vast.stop_by_vast(dep.instance_id or 0)
    poller_of(bot).tick()
    assert current(bot, dep).status == "stopped"
    assert bot.vast.request_count("DELETE") == 0
    assert shown_status(fake_slack.calls_to("chat.update")[-1]) == "stopped"
    replies = thread_replies(fake_slack, dep)
    assert len(replies) == 2 and "was stopped on Vast.ai" in replies[-1].args["text"]


def test_vanished_from_the_list_after_a_grace_period(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.vanish(dep.instance_id or 0)
    get_path = f"/api/v0/instances/{dep.instance_id}/"

    poller.tick()  # just created: reads may lag, wait
    assert current(bot, dep).status == "provisioning"
    assert bot.vast.request_count("GET", get_path) == 0

    poller.clock = later(3)
    poller.tick()
    record = current(bot, dep)
    assert record.status == "destroyed"
    assert "gone from Vast.ai" in str(record.reason)
    assert bot.vast.request_count("GET", get_path) == 1  # confirmed by id before deciding
    assert shown_status(fake_slack.calls_to("chat.update")[-1]) == "destroyed"
    replies = thread_replies(fake_slack, dep)
    assert len(replies) == 1 and "is gone" in replies[0].args["text"]


def test_missing_from_the_list_but_found_by_id_is_kept(bot: BotHarness) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    # The list misses the instance once (eventual visibility) while the per-id GET finds it.
    original = bot.services.vast.list_instances_page

    def lagging(**kw: Any) -> InstancePage:
        page = original(**kw)
        kept = [i for i in page.instances if i.id != dep.instance_id]
        return InstancePage(kept, page.next_token, page.total)

    bot.services.vast.list_instances_page = lagging  # type: ignore[method-assign]
    try:
        poller.clock = later(3)
        poller.tick()
    finally:
        bot.services.vast.list_instances_page = original  # type: ignore[method-assign]
    assert current(bot, dep).status == "provisioning"
    assert bot.vast.request_count("GET", f"/api/v0/instances/{dep.instance_id}/") == 1


# -- Slack limits ----------------------------------------------------------------------------


def test_rate_limited_chat_update_arrives_after_retry_after(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    fake_slack.fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "1"})
    poller_of(bot).tick()
    updates = fake_slack.calls_to("chat.update")
    assert len(updates) == 2
    assert updates[1].at - updates[0].at >= 0.9
    assert shown_status(updates[1]) == "provisioning"
    assert fake_slack.messages[(CHANNEL, str(dep.message_ts))]["text"].endswith("provisioning")


def test_deleted_message_does_not_stop_the_poller(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    fake_slack.deleted_messages.add((CHANNEL, str(dep.message_ts)))
    to_ready(bot, dep)
    assert len(thread_replies(fake_slack, dep)) == 1


def test_no_slack_calls_on_a_tick_where_nothing_changed(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    ready = deploy(bot)
    to_ready(bot, ready)
    waiting = deploy(bot, "comfy-ui")
    bot.vast.stuck_loading(waiting.instance_id or 0)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(5)
    poller.tick()
    fake_slack.reset()
    bot.vast.clear_requests()

    for _ in range(3):
        report = poller.tick()
        assert report.slack_calls == 0
        assert report.vast_requests == 1
    assert fake_slack.calls == []
    assert bot.vast.request_count() == 3
    assert bot.vast.request_count("GET", "/api/v1/instances") == 3


def test_a_quiet_tick_does_not_claim_the_login_dm_of_a_deployment_without_secrets(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A template without a password and an instance without a Jupyter token: nothing to DM,
    # so a quiet tick must not claim (and give back) the secrets DM on every pass.
    dep = deploy(bot, "comfy-ui", web_password=None)
    to_ready(bot, dep)
    poller = poller_of(bot)
    poller.tick()
    fake_slack.reset()
    claims: list[int] = []
    original = storage.claim_secrets_dm

    def counting(sf: Any, deployment_id: int, now: Any = None) -> bool:
        claims.append(deployment_id)
        return original(sf, deployment_id, now=now)

    monkeypatch.setattr(storage, "claim_secrets_dm", counting)
    for _ in range(2):
        assert poller.tick().slack_calls == 0
    assert claims == []
    assert fake_slack.calls == []


def test_no_vast_request_without_deployments(bot: BotHarness) -> None:
    bot.vast.clear_requests()
    report = poller_of(bot).tick()
    assert report.ran and report.deployments == 0
    assert bot.vast.request_count() == 0


# -- several processes and restarts ----------------------------------------------------------


def test_two_bots_on_one_database_post_one_notification(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim)
        second = bot_factory(simulator=sim)
        dep = deploy(first)
        sim.advance(4)
        pollers = [poller_of(first), poller_of(second)]
        reports: list[TickReport] = []
        barrier = threading.Barrier(2)

        def run(p: StatusPoller) -> None:
            barrier.wait()
            for _ in range(3):
                reports.append(p.tick())

        threads = [threading.Thread(target=run, args=(p,)) for p in pollers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert current(first, dep).status == "ready"
        assert len(thread_replies(fake_slack, dep)) == 1
        assert len(dms(fake_slack)) == 1
        assert sum(1 for r in reports if r.ran) == 3  # one lease holder did every tick
    finally:
        sim.stop()


def test_pollers_without_the_lease_still_notify_once(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    """The database claim alone guarantees one notification, e.g. when a lease expired while
    its holder was still mid-tick: here the status is already ``ready`` (a crash came between
    the status update and the notification) and two pollers race for the claim."""
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim)
        second = bot_factory(simulator=sim)
        dep = deploy(first)
        sf = first.services.session_factory
        assert storage.update_status(
            sf, dep.id, expected_status="creating", new_status="provisioning"
        )
        assert storage.update_status(sf, dep.id, expected_status="provisioning", new_status="ready")
        sim.advance(4)
        pollers = [
            poller_like(first.services.poller, lease_name=None),
            poller_like(second.services.poller, lease_name=None),
        ]
        barrier = threading.Barrier(2)

        def run(p: StatusPoller) -> None:
            barrier.wait()
            p.tick()
            p.tick()

        threads = [threading.Thread(target=run, args=(p,)) for p in pollers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        for p in pollers:
            p.close()
        assert current(first, dep).ready_notified_at is not None
        assert len(thread_replies(fake_slack, dep)) == 1
        assert len(dms(fake_slack)) == 1
    finally:
        sim.stop()


def test_a_second_process_takes_over_when_the_lease_holder_dies(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim, status_poll_seconds=15)
        second = bot_factory(simulator=sim, status_poll_seconds=15)
        dep = deploy(first)
        assert poller_of(first).tick().ran
        assert not poller_of(second).tick().ran
        sim.advance(4)
        # `first` dies without releasing; its lease (3 intervals = 45 s) runs out.
        poller_of(second).clock = lambda: storage.utcnow() + timedelta(seconds=46)
        assert poller_of(second).tick().ran
        assert current(second, dep).status == "ready"
        assert len(thread_replies(fake_slack, dep)) == 1
    finally:
        sim.stop()


def test_poller_lease_seconds_sets_how_soon_a_dead_holders_lease_runs_out(
    bot_factory: BotFactory,
) -> None:
    """``POLLER_LEASE_SECONDS`` replaces the default TTL (three intervals, at least 30 s)."""
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        # Hourly scheduled ticks: only the ticks below touch the lease.
        first = bot_factory(simulator=sim, poller_lease_seconds=3)
        second = bot_factory(simulator=sim, poller_lease_seconds=3)
        assert poller_of(first).lease_seconds == 3
        assert poller_of(first).tick().ran
        # `first` dies without releasing: 2 s later its lease still holds, 3.5 s later not.
        poller_of(second).clock = lambda: storage.utcnow() + timedelta(seconds=2)
        assert not poller_of(second).tick().ran
        poller_of(second).clock = lambda: storage.utcnow() + timedelta(seconds=3.5)
        assert poller_of(second).tick().ran
        default = bot_factory(simulator=sim, status_poll_seconds=5)
        assert poller_of(default).lease_seconds == 30  # unset: 3 intervals, at least 30 s
    finally:
        sim.stop()


def test_restart_mid_provisioning_continues_the_message(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim)
        dep = deploy(first)
        poller_of(first).tick()
        sim.advance(1.5)
        poller_of(first).tick()
        assert current(first, dep).status == "provisioning"
        first.runtime.close()  # the process stops (scheduler, lease, clients)

        second = bot_factory(simulator=sim)  # a new process on the same database
        calls_before = len(fake_slack.calls)
        quiet = poller_of(second).tick()  # nothing changed: the message is not re-sent
        assert quiet.ran and quiet.slack_calls == 0
        assert len(fake_slack.calls) == calls_before
        sim.advance(2.5)
        report = poller_of(second).tick()
        assert report.ran
        record = current(second, dep)
        assert record.status == "ready"
        updates = fake_slack.calls_to("chat.update")
        assert shown_status(updates[-1]) == "ready"
        assert all(u.args["ts"] == dep.message_ts for u in updates)
        for _ in range(2):
            poller_of(second).tick()
        assert len(thread_replies(fake_slack, dep)) == 1
    finally:
        sim.stop()


def test_ready_without_notification_is_notified_after_a_restart(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    sf = bot.services.session_factory
    storage.update_status(sf, dep.id, expected_status="creating", new_status="provisioning")
    storage.update_status(sf, dep.id, expected_status="provisioning", new_status="ready")
    bot.vast.advance(4)
    fake_slack.reset()
    poller_of(bot).tick()
    assert len(thread_replies(fake_slack, dep)) == 1
    assert shown_status(fake_slack.calls_to("chat.update")[-1]) == "ready"


def test_notification_is_retried_when_slack_refuses(bot: BotHarness, fake_slack: FakeSlack) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    fake_slack.fail("chat.postMessage", "internal_error", status=200)
    poller.tick()
    assert current(bot, dep).status == "ready"
    assert current(bot, dep).ready_notified_at is None  # released for a later tick
    poller.tick()
    assert current(bot, dep).ready_notified_at is not None
    assert (
        len(thread_replies(fake_slack, dep)) == 2
    )  # the refused one and the one that went through
    assert len(dms(fake_slack)) == 1


def test_an_instance_whose_create_answer_was_lost_is_destroyed_while_running(
    bot: BotHarness,
) -> None:
    # The create reaches Vast.ai but its answer comes after the client's timeout, and the
    # label look-up finds nothing (the list flaps): the row fails, yet the instance exists.
    from bot.simulator import Fault
    from tests.test_deploy import pick_offer, settled, submitted_view

    bot.services.deploy.lookup_delay = 0.01
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.SLOW, endpoint="create", seconds=2.4)
    bot.vast.inject(Fault.UNAVAILABLE, endpoint="list", times=100)
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    bot.vast.clear_faults()
    assert dep.status == "failed"
    assert len(bot.vast.instances) == 1  # it exists and bills

    poller = poller_of(bot)
    poller.tick()  # seen as stray once: left alone (a create may be being answered)
    assert len(bot.vast.instances) == 1
    report = poller.tick()  # still stray: destroyed
    assert report.destroyed == 1
    assert bot.vast.instances == {}
    assert current(bot, dep).status == "failed"


def test_a_refused_secrets_dm_is_sent_on_a_later_tick_once(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    fake_slack.fail("conversations.open", "internal_error", times=1)  # the DM fails once…
    poller.tick()
    assert current(bot, dep).status == "ready"
    secret = current(bot, dep).web_password or ""
    assert secret and not [c for c in dms(fake_slack) if secret in json.dumps(c.args)]
    for _ in range(3):
        poller.tick()
    got = [c for c in dms(fake_slack) if secret in json.dumps(c.args)]
    assert len(got) == 1 and got[0].args["channel"].startswith("D")
    assert secret not in json.dumps([c.args for c in fake_slack.calls_to("chat.update")])


def test_send_me_the_login_goes_by_dm_to_the_requester_only(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    from tests.fixtures.slack import BOB

    dep = deploy(bot)
    to_ready(bot, dep)
    secret = current(bot, dep).web_password or ""
    before = len([c for c in dms(fake_slack) if secret in json.dumps(c.args)])

    bot.block_action("deployment_credentials", str(dep.id), user=BOB, is_ephemeral=False)
    refusal = fake_slack.wait_for("response_url")[-1]
    assert f"Only <@{ALICE}>" in refusal.args["text"] and secret not in refusal.args["text"]

    bot.block_action("deployment_credentials", str(dep.id), user=ALICE, is_ephemeral=False)
    fake_slack.wait_for("response_url", count=2)
    got = [c for c in dms(fake_slack) if secret in json.dumps(c.args)]
    assert len(got) == before + 1 and got[-1].args["channel"] == "D" + ALICE[1:]
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "credentials_sent" and e.actor == ALICE for e in events)
    assert any(e.action == "credentials_refused" and e.actor == BOB for e in events)


def test_a_secrets_dm_slack_refuses_without_raising_is_retried(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    dm_channel = "D" + ALICE[1:]
    fake_slack.channels_without_bot.add(dm_channel)  # chat.postMessage answers not_in_channel
    poller.tick()
    secret = current(bot, dep).web_password or ""

    def delivered() -> list[object]:  # messages Slack accepted in the requester's DM
        return [
            m for (ch, _), m in fake_slack.messages.items() if ch == dm_channel and secret in str(m)
        ]

    assert dms(fake_slack) and not delivered()  # tried, refused
    fake_slack.channels_without_bot.discard(dm_channel)
    poller.tick()
    assert len(delivered()) == 1
    poller.tick()
    assert len(delivered()) == 1


# -- the Start claim ---------------------------------------------------------------------


def test_a_second_start_after_ready_and_stop_reaches_vast(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    """Stop → Start → (ready) → Stop → Start within five minutes: the second Start is sent to
    Vast.ai, because the Start claim is given back once the start completed (and when the
    deployment is stopped again)."""
    dep = deploy(bot)
    to_ready(bot, dep)
    manage = bot.services.manage
    poller = poller_of(bot)
    assert manage.perform("stop", dep.id, ALICE).kind == "done"
    assert manage.perform("start", dep.id, ALICE).kind == "done"
    bot.vast.advance(4)
    poller.tick()
    if current(bot, dep).status != "ready":
        bot.vast.advance(4)
        poller.tick()
    assert current(bot, dep).status == "ready"
    assert manage.perform("stop", dep.id, ALICE).kind == "done"
    second = manage.perform("start", dep.id, ALICE)
    assert second.kind == "done", second.message
    starts = [
        r
        for r in bot.vast.requests
        if r.method == "PUT" and (r.json or {}).get("state") == "running"
    ]
    assert len(starts) == 2
