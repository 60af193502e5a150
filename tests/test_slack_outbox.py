"""One policy for Slack failures (L), messages that converge on the database across
restarts (B), and the paced, coalescing outbox (K)."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.error import URLError

import pytest
from slack_sdk import WebClient

import storage
from bot.playground.slack_api import FakeSlack
from bot.simulator import VastSimulator
from bot.slack.notifier import SENT, UNAVAILABLE, SlackResult
from bot.slack.outbox import Outbox
from tests.fixtures.slack import ALICE, CHANNEL, FAST_TIMELINE, BotFactory, BotHarness
from tests.test_manage import click, make_deployment, replies
from tests.test_poller import current, deploy, poller_of


def message_text(fake: FakeSlack, dep: storage.DeploymentRecord) -> str:
    return str(fake.messages[(CHANNEL, str(dep.message_ts))]["text"])


# -- B: final edits are not lost ---------------------------------------------------------------


def test_a_ready_edit_rate_limited_then_a_restart_still_shows_ready(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim)
        dep = deploy(first)
        poller_of(first).tick()
        assert current(first, dep).status == "provisioning"
        sim.advance(4)
        fake_slack.fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "30"})
        poller_of(first).tick()
        assert current(first, dep).status == "ready"
        assert message_text(fake_slack, dep).endswith("provisioning")
        first.runtime.close()  # restart before the pause is over

        second = bot_factory(simulator=sim)
        poller_of(second).tick()
        assert message_text(fake_slack, dep).endswith("ready")
        assert current(second, dep).message_stale_since is None
    finally:
        sim.stop()


def test_a_destroy_edit_rate_limited_then_a_restart_still_shows_destroyed(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    sim.start()
    try:
        first = bot_factory(simulator=sim)
        dep = make_deployment(first)
        fake_slack.messages[(CHANNEL, str(dep.message_ts))] = {"text": "JupyterLab: ready"}
        fake_slack.fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "30"})
        click(first, "deployment_destroy", dep)
        assert "Destroyed" in replies(fake_slack, 1)[0]
        first.services.messages.flush(1)
        assert message_text(fake_slack, dep).endswith("ready")
        first.runtime.close()

        second = bot_factory(simulator=sim)
        poller_of(second).tick()
        assert message_text(fake_slack, dep).endswith("destroyed")
    finally:
        sim.stop()


# -- L: a transport failure on the edit of a Stop ----------------------------------------------


def test_stop_with_the_edit_failing_on_the_network_still_answers_and_converges(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = make_deployment(bot)
    real = WebClient.chat_update
    failures = [URLError("connection refused")]

    def flaky(self: WebClient, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(self, **kwargs)

    monkeypatch.setattr(WebClient, "chat_update", flaky)
    click(bot, "deployment_stop", dep)
    assert "Stopped *JupyterLab*" in replies(fake_slack, 1)[0]
    fake_slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)  # the thread reply
    fake_slack.wait_for("views.publish", user_id=ALICE)  # the Home refresh
    assert storage.get_deployment(bot.services.session_factory, dep.id).status == "stopped"  # type: ignore[union-attr]
    bot.services.messages.flush(5)
    poller_of(bot).tick()  # the reconciler sends what did not go through
    assert message_text(fake_slack, dep).endswith("stopped")


# -- K: the outbox -----------------------------------------------------------------------------


class Recorder:
    """A stand-in ``send`` that records (time, method, kwargs) and answers from a script."""

    def __init__(self, answers: list[SlackResult] | None = None) -> None:
        self.sent: list[tuple[float, str, dict[str, Any]]] = []
        self.workspaces: list[str] = []
        self.answers = answers or []
        self.lock = threading.Lock()

    def __call__(self, workspace: str, method: str, kwargs: dict[str, Any]) -> SlackResult:
        with self.lock:
            self.workspaces.append(workspace)
            self.sent.append((time.monotonic(), method, kwargs))
            return self.answers.pop(0) if self.answers else SlackResult(SENT)


def test_outbox_never_exceeds_its_window_and_does_not_block_the_caller() -> None:
    send = Recorder()
    outbox = Outbox(send, limits={"chat.update": (5, 0.5)})
    started = time.monotonic()
    for n in range(12):
        outbox.submit("T1", "chat.update", n, lambda n=n: {"n": n})
    assert time.monotonic() - started < 0.1  # submit never waits for Slack
    assert outbox.drain(10)
    times = [at for at, _, _ in send.sent]
    assert [kw["n"] for _, _, kw in send.sent] == list(range(12))
    for i, at in enumerate(times):
        assert sum(1 for other in times[i:] if other < at + 0.5 - 1e-3) <= 5
    assert times[-1] - times[0] >= 1.0  # 12 calls at 5 per 0.5 s: three windows
    outbox.close()


def test_outbox_coalesces_changes_of_one_message_into_the_latest() -> None:
    send = Recorder()
    outbox = Outbox(send, limits={"chat.update": (1, 0.5)})
    outbox.submit("T1", "chat.update", "other", lambda: {"v": "other"})
    for version in range(10):
        outbox.submit("T1", "chat.update", "m", lambda v=version: {"v": v}, version=version)
    outbox.submit("T1", "chat.update", "m", lambda: {"v": "old"}, version=3)  # older: ignored
    assert outbox.drain(5)
    assert [kw["v"] for _, _, kw in send.sent] == ["other", 9]
    assert outbox.coalesced == 9
    outbox.close()


def test_a_429_pauses_only_that_workspace_for_retry_after() -> None:
    send = Recorder([SlackResult(UNAVAILABLE, "ratelimited", retry_after=0.4)])
    outbox = Outbox(send)
    outbox.submit("T1", "chat.update", "a", lambda: {"w": "T1"})
    time.sleep(0.05)
    outbox.submit("T2", "chat.update", "b", lambda: {"w": "T2"})
    assert outbox.drain(5)
    sent = [(at, kw["w"]) for at, _, kw in send.sent]
    assert [w for _, w in sent] == ["T1", "T2", "T1"]
    assert send.workspaces == ["T1", "T2", "T1"]  # each queue sends as its own workspace
    assert sent[1][0] - sent[0][0] < 0.3  # the other workspace did not wait
    assert sent[2][0] - sent[0][0] >= 0.39  # T1 waited Retry-After
    assert outbox.rate_limited == 1
    outbox.close()


# -- B: a deployment's own failure edit ----------------------------------------------------------


def test_a_failed_rental_whose_edit_was_lost_is_shown_failed_by_the_reconciler(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.simulator import Fault
    from tests.test_deploy import pick_offer, settled, submitted_view, wait_until

    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.NO_CREDIT)
    real = WebClient.chat_update

    def down(self: WebClient, **kwargs: Any) -> Any:
        raise URLError("connection refused")

    monkeypatch.setattr(WebClient, "chat_update", down)
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "failed"
    # The row fails first, then its edit is tried (and marked when it does not go through).
    assert wait_until(lambda: current(bot, dep).message_stale_since is not None)
    assert not message_text(fake_slack, dep).endswith("failed")  # the edit did not go through
    monkeypatch.setattr(WebClient, "chat_update", real)
    poller_of(bot).tick()  # the reconciler sends what did not go through
    assert message_text(fake_slack, dep).endswith("failed")
    assert current(bot, dep).message_stale_since is None


# -- review: a database hiccup on the way must not lose an edit or an answer -------------------


def test_an_edit_whose_rendering_fails_keeps_its_mark_and_converges(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy.exc

    import bot.services.message_sync as message_sync

    dep = make_deployment(bot)
    fake_slack.messages[(CHANNEL, str(dep.message_ts))] = {"text": "JupyterLab: ready"}
    real = storage.get_deployment
    fails = [1]

    def flaky(sf: Any, dep_id: int) -> Any:  # the outbox's re-read fails once
        if threading.current_thread().name.startswith("outbox") and fails:
            fails.pop()
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))
        return real(sf, dep_id)

    monkeypatch.setattr(message_sync.storage, "get_deployment", flaky)
    click(bot, "deployment_stop", dep)
    assert "Stopped" in replies(fake_slack, 1)[0]
    bot.services.messages.flush(5)
    poller_of(bot).tick()
    assert message_text(fake_slack, dep).endswith("stopped")
    assert real(bot.services.session_factory, dep.id).message_stale_since is None  # type: ignore[union-attr]


def test_a_mark_that_cannot_be_written_still_answers_the_click(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy.exc

    import bot.services.message_sync as message_sync

    dep = make_deployment(bot)
    real = storage.mark_message_stale
    fails = [1]

    def flaky(sf: Any, dep_id: int, now: Any) -> None:
        if fails:
            fails.pop()
            raise sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("database is locked"))
        real(sf, dep_id, now)

    monkeypatch.setattr(message_sync.storage, "mark_message_stale", flaky)
    click(bot, "deployment_stop", dep)
    assert "Stopped *JupyterLab*" in replies(fake_slack, 1)[0]  # Vast.ai stopped it: say so
    fake_slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)


def test_the_reconciler_keeps_a_queued_edits_note(bot: BotHarness, fake_slack: FakeSlack) -> None:
    import json

    dep = make_deployment(bot, status="stopped")
    fake_slack.fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "1"})
    click(bot, "deployment_start", dep)
    assert "Starting" in replies(fake_slack, 1)[0]
    poller = poller_of(bot)
    poller.sync.reconcile()  # a tick while the Start's edit waits out the 429
    bot.services.messages.flush(5)
    shown = json.dumps(fake_slack.messages[(CHANNEL, str(dep.message_ts))])
    assert "Starting again" in shown
