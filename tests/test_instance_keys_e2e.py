"""Keys attached per instance, end to end: the real bot (signed Slack requests, the fake Slack
Web API, the Vast.ai simulator) deploys for a person who has a key, and the instance holds
exactly that key; a teammate shared in gets theirs attached, and loses it when unshared; a
kill -9 between "ready" and "key attached" still ends with the key attached once. The
account-wide ``POST /api/v0/ssh/`` is never called. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services.accounts import VastAccounts
from bot.services.instance_keys import KeyReconciler
from bot.simulator import VastSimulator
from bot.slack.messages import SlackMessages
from bot.vast import VastClient, port_env
from storage import DeploymentRecord, SshKey
from storage import instance_keys as keys
from tests.fixtures.slack import ALICE, BOB, CHANNEL, BotHarness, MovableClock
from tests.fixtures.vast import client_for
from tests.test_deploy import pick_offer, settled, submitted_view
from tests.test_deploy_recovery import RecordingNotifier
from tests.test_instance_keys_storage import add_key, share, unshare
from tests.test_intents import CATALOG, INTERVAL, ROOT, Process, start_process

SF = sessionmaker[Session]
CAROL = "U0CAROL03"
ACCOUNT_KEYS = "/api/v0/ssh"


def key_line(sf: SF, fingerprint: str) -> str:
    """The ``<type> <base64>`` stored for ``fingerprint`` (what the bot sends to Vast.ai)."""
    with storage.read_transaction(sf) as session:
        return str(
            session.scalar(select(SshKey.public_key).where(SshKey.fingerprint == fingerprint))
        )


def current(sf: SF, dep: DeploymentRecord) -> DeploymentRecord:
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


def actions(sf: SF, dep: DeploymentRecord) -> list[str]:
    return [e.action for e in storage.list_events(sf, dep.id)]


def test_the_instance_holds_exactly_its_peoples_keys(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    sf = bot.services.session_factory
    alices = add_key(sf, ALICE, team_id=TEAM_ID)
    add_key(sf, ALICE, team_id="T0ELSEWHERE")  # her key in another workspace
    add_key(sf, CAROL, team_id=TEAM_ID)  # a teammate it is not shared with
    bobs = add_key(sf, BOB, team_id=TEAM_ID)

    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = settled(bot)
    assert bot.vast.instance_ssh_keys(dep.instance_id or 0) == []  # nothing before it runs
    bot.services.poller.tick()
    bot.vast.advance(4)
    bot.services.poller.tick()
    dep = current(sf, dep)
    assert dep.status == "ready" and dep.instance_id is not None
    # The pass that saw it ready attached the owner's key, to this instance only.
    assert bot.vast.instance_ssh_keys(dep.instance_id) == [key_line(sf, alices)]

    share(sf, dep.id, BOB)  # the share branch writes this row; here by hand
    bot.services.poller.tick()
    held = bot.vast.instance_ssh_keys(dep.instance_id)
    assert sorted(held) == sorted([key_line(sf, alices), key_line(sf, bobs)])

    unshare(sf, dep.id, BOB)
    bot.services.poller.tick()
    assert bot.vast.instance_ssh_keys(dep.instance_id) == [key_line(sf, alices)]
    rows = {k.fingerprint: k for k in keys.list_for_deployment(sf, dep.id)}
    assert (rows[alices].state, rows[bobs].state) == ("attached", "detached")
    done = actions(sf, dep)
    assert done.count("ssh_key_attached") == 2 and done.count("ssh_key_detached") == 1
    assert "ssh_key_failed" not in done
    assert bot.vast.request_count(path_prefix=ACCOUNT_KEYS) == 0
    posts = [r for r in bot.vast.requests if r.method == "POST" and "/ssh" in r.path]
    assert {r.path for r in posts} == {f"/api/v0/instances/{dep.instance_id}/ssh/"}
    assert all(r.json["ssh_key"].count(" ") == 1 for r in posts)  # no comment sent
    assert not [c for c in fake_slack.calls_to("chat.postMessage") if "stays" in str(c.args)]


# -- a real kill -9 between "ready" and "key attached" -------------------------------------


def keyed_process(sf: SF, client: VastClient, clock: Callable[[], Any]) -> Process:
    """A bot process (as ``tests.test_intents.start_process`` builds it) whose poller passes
    end with the key reconciler, as ``bot.runtime`` chains it on ``on_pass``."""
    process = start_process(sf, client, clock)
    reconciler = KeyReconciler(
        session_factory=sf,
        accounts=VastAccounts.single(client, simulated=True),
        messages=SlackMessages(RecordingNotifier(), clock=clock),
        interval_seconds=INTERVAL,
        clock=clock,
    )
    process.poller.on_pass = reconciler.after_pass
    return process


def provisioning_row(sf: SF, sim: VastSimulator, clock: MovableClock) -> DeploymentRecord:
    """A deployment of Alice's whose simulator instance runs and answers: the next poller
    pass makes it ready."""
    template = CATALOG.get("jupyter-lab")
    assert template is not None
    with client_for(sim) as client:
        offer = sim.offers[0]["id"]
        instance_id = client.create_instance(
            offer,
            image=template.docker_image,
            env={**template.env, **port_env(template.ports)},
            disk_gb=16,
            label="keys-test",
            runtype="ssh_direct",
        )
    sim.advance(4)  # running, the app answering
    dep, _ = storage.create_deployment(
        sf,
        request_key=uuid.uuid4().hex,
        team_id=TEAM_ID,
        user_id=ALICE,
        channel_id=CHANNEL,
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=offer,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=0.4,
        disk_gb=16,
        simulated=True,
        now=clock(),
    )
    storage.set_instance(sf, dep.id, instance_id, now=clock())
    storage.update_status(sf, dep.id, expected_status="creating", new_status="provisioning")
    storage.set_message(sf, dep.id, CHANNEL, f"1700000000.{dep.id:06d}")
    return current(sf, dep)


@pytest.mark.parametrize("mode", ["hang_before_send", "hang_after_send"])
def test_kill_9_between_ready_and_key_attached(
    database_url: str,
    session_factory: SF,
    vast_sim: VastSimulator,
    mode: str,
) -> None:
    """A child process's poller pass makes the deployment ready, then is killed with SIGKILL
    while the owner's key is on its way to Vast.ai (``hang_before_send``: it never arrived) or
    its answer is (``hang_after_send``: Vast.ai attached it, the answer was lost). The next
    process's passes end with the key on the instance exactly once."""
    sf = session_factory
    clock = MovableClock()
    fingerprint = add_key(sf, ALICE, team_id=TEAM_ID)
    dep = provisioning_row(sf, vast_sim, clock)
    assert dep.instance_id is not None
    vast_sim.clear_requests()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [database_url, str(vast_sim.base_url), mode]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.instance_keys_child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the child is mid-attach
        assert line.strip() == "SENDING", child.stderr.read() if child.stderr else line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert current(sf, dep).status == "ready"
    (mid,) = keys.list_for_deployment(sf, dep.id)
    assert (mid.state, mid.tries) == ("attach", 1)  # its try was taken, not confirmed
    sent_before = 1 if mode == "hang_after_send" else 0
    assert len(vast_sim.instance_ssh_keys(dep.instance_id)) == sent_before

    clock.set(storage.utcnow())  # the restart, a moment later
    with client_for(vast_sim) as client:
        keyed_process(sf, client, clock).passes(clock)
    assert vast_sim.instance_ssh_keys(dep.instance_id) == [key_line(sf, fingerprint)]
    posts = [r for r in vast_sim.requests if r.method == "POST" and r.path.endswith("/ssh/")]
    assert len(posts) == 1  # sent once in all, whoever sent it
    (after,) = keys.list_for_deployment(sf, dep.id)
    assert (after.state, after.next_try_at) == ("attached", None)
    assert after.vast_key_id is not None or mode == "hang_before_send"
    assert actions(sf, dep).count("ssh_key_attached") == 1
    assert vast_sim.request_count(path_prefix=ACCOUNT_KEYS) == 0
