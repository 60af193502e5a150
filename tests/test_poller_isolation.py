"""Each row stands alone in the poller: one deployment's bad data or failing step never stops
the tick for the others (end to end: the real bot, fake Slack, the Vast.ai simulator, a clock
the test moves)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.playground.slack_api import FakeSlack
from bot.services import states
from bot.services.poller import TickReport
from storage import DeploymentRecord
from tests.fixtures.slack import BotFactory, BotHarness, MovableClock
from tests.test_lifetimes import busy, current, deploy, stops, tick_at
from tests.test_poller import deploy as new_deployment

LONG_LABEL = "a" * 64 + ".example.com"


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def bot(bot_factory: BotFactory, clock: MovableClock) -> BotHarness:
    return bot_factory(clock=clock)


def ended_an_hour_ago(harness: BotHarness, clock: MovableClock) -> DeploymentRecord:
    """A busy 2-hour deployment, warned before its end, with the clock now an hour past it
    (no tick since the warning: the next one must stop it)."""
    dep = deploy(harness, clock, lifetime_hours=2)
    busy(harness, dep)
    tick_at(harness, clock, minutes=95)  # warned
    clock.advance(minutes=85)  # 3 hours after the start: the end passed an hour ago
    return dep


def test_an_instance_with_an_unusable_address_does_not_stop_the_tick(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """The defect: the probe of ``http://<64-character label>:port/`` raised ``UnicodeError``
    out of the tick, every tick: nothing became ready and nothing expired."""
    expired = ended_an_hour_ago(bot, clock)
    bad = new_deployment(bot, web_password=None, now=clock())
    good = new_deployment(bot, web_password=None, now=clock())
    assert bad.instance_id is not None
    bot.vast.set_public_ipaddr(bad.instance_id, LONG_LABEL)
    bot.vast.advance(4)  # both instances run and their apps answer

    report: TickReport = bot.services.poller.tick()

    assert current(bot, expired).status == "stopped" and len(stops(bot)) == 1
    assert current(bot, good).status == "ready"
    bad_now = current(bot, bad)
    assert bad_now.status == "provisioning" and bad_now.public_ip is None
    assert report.row_errors == 0  # the address was refused where it entered

    # Still unreachable on later ticks, and timed out (destroyed) like any app that never
    # answers, instead of billing for ever.
    tick_at(bot, clock, minutes=1)
    assert current(bot, bad).status == "provisioning"
    tick_at(bot, clock, minutes=60)
    assert current(bot, bad).status == "failed"
    assert current(bot, good).status == "ready"


def test_a_row_whose_assessment_raises_does_not_stop_the_others(
    bot: BotHarness,
    clock: MovableClock,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One row breaks ``states.assess`` (bad data, a bug): it is logged with its id, counted
    in ``row_errors``, its lifetime still ends (its GPU must not bill past the end), and the
    other rows go on in the same tick."""
    broken = ended_an_hour_ago(bot, clock)
    good = new_deployment(bot, web_password=None, now=clock())
    bot.vast.advance(4)
    real = states.assess

    def assess(dep: DeploymentRecord, *args: Any, **kwargs: Any) -> states.Verdict:
        if dep.id == broken.id:
            raise RuntimeError(f"row {dep.id} is broken")
        return real(dep, *args, **kwargs)

    monkeypatch.setattr(states, "assess", assess)
    caplog.set_level(logging.WARNING, logger="bot.services.poller")

    report = bot.services.poller.tick()

    assert current(bot, good).status == "ready"
    assert report.row_errors == 1
    assert current(bot, broken).status == "stopped"  # the expiry rule still applied
    tracebacks = [r for r in caplog.records if r.exc_info and str(broken.id) in r.getMessage()]
    assert len(tracebacks) == 1

    # The next pass tries it again: one line, no second traceback.
    caplog.clear()
    report = bot.services.poller.tick()
    assert report.row_errors == 1
    lines = [r for r in caplog.records if f"deployment {broken.id} not assessed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None

    monkeypatch.setattr(states, "assess", real)
    assert bot.services.poller.tick().row_errors == 0


def test_a_row_whose_lifetime_review_raises_does_not_stop_the_others(
    bot: BotHarness, clock: MovableClock, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifetime rules raise for one row (their own isolation aside): every other row in
    the same review is still stopped at its end."""
    broken = deploy(bot, clock, lifetime_hours=2)
    other = deploy(bot, clock, lifetime_hours=2)
    for dep in (broken, other):
        busy(bot, dep)
    tick_at(bot, clock, minutes=95)  # both warned
    lifetimes = bot.services.lifetimes
    real = lifetimes.review

    def review(deps: Any, *args: Any, **kwargs: Any) -> int:
        if any(dep.id == broken.id for dep in deps):
            raise RuntimeError("the rules broke on one row")
        return real(deps, *args, **kwargs)

    monkeypatch.setattr(lifetimes, "review", review)
    clock.advance(minutes=85)
    report = bot.services.poller.tick()

    assert current(bot, other).status == "stopped"
    assert current(bot, broken).status == "ready"  # tried again next pass
    assert report.row_errors == 1
