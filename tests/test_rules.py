"""The automatic rules as pure functions (bot.services.rules), and the executor that turns
their actions into acts, with fakes (no bot)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, cast

import pytest

import storage
from bot.notices import MIN_NOTICE, AutoAction, effective_end
from bot.services.manage import ManageService, Outcome
from bot.services.rules import (
    RULES,
    deploy_timeout,
    exited_container,
    idle_question,
    idle_stop,
    idle_tracking,
    lifetime_expiry,
    lifetime_warning,
    long_running,
    stopped_reminder,
)
from bot.services.rules.base import ASK, NOTIFY, REMIND, STOP, TRACK, WARN, Action, Rule
from bot.services.rules.executor import RuleExecutor, RuleMessages, watch_key
from bot.services.rules.policy import LifetimePolicy
from bot.slack.blocks.lifetimes import auto_action_text, ends_line
from bot.slack.blocks.status import status_message, visible_key
from storage import DeploymentRecord, SessionFactory
from tests.fakes.ports import RecordingMessages
from tests.test_poller import insert_row
from tests.test_states import NOW, instance, record, template

POLICY = LifetimePolicy()
OFFER = {"id": 11, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24576, "dph_total": 0.4}
END = NOW + timedelta(hours=1)


def ready(**overrides: Any) -> DeploymentRecord:
    values: dict[str, Any] = {"status": "ready", "ends_at": END, "ready_at": NOW}
    values.update(overrides)
    return record(**values)


def busy(util: float | None = 0.8) -> Any:
    return instance("running", gpu_util=util)


# -- the registry ---------------------------------------------------------------------------


def test_every_rule_is_registered_once_by_name() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for module in (
        lifetime_expiry,
        lifetime_warning,
        exited_container,
        idle_tracking,
        idle_question,
        idle_stop,
        deploy_timeout,
        stopped_reminder,
        long_running,
    ):
        assert module.RULE in RULES


# -- lifetime warning and expiry ------------------------------------------------------------


def test_no_warning_before_the_warning_period() -> None:
    at = END - POLICY.warning - timedelta(seconds=1)
    assert lifetime_warning.check(ready(), busy(), POLICY, at) is None


def test_the_warning_names_the_end_or_five_minutes_after_a_late_warning() -> None:
    on_time = lifetime_warning.check(ready(), busy(), POLICY, END - POLICY.warning)
    assert on_time is not None and on_time.kind == WARN and on_time.promised == END
    late = lifetime_warning.check(ready(), busy(), POLICY, END - timedelta(minutes=1))
    assert late is not None and late.promised == END + timedelta(minutes=4)


def test_one_warning_per_end() -> None:
    dep = ready(expiry_warned_at=END - POLICY.warning)
    assert lifetime_warning.check(dep, busy(), POLICY, END - timedelta(minutes=10)) is None


def test_warning_one_minute_never_acts_before_the_announced_time() -> None:
    """LIFETIME_WARNING_MINUTES=1: the warning at end − 1 min names end + 4 min; the expiry
    must not act at end + 1 min (the old hard limit), only at end + 4 min."""
    policy = replace(POLICY, warning=timedelta(minutes=1))
    warned_at = END - timedelta(minutes=1)
    action = lifetime_warning.check(ready(), busy(), policy, warned_at)
    assert action is not None and action.promised == END + timedelta(minutes=4)
    dep = ready(expiry_warned_at=warned_at)
    assert effective_end(dep) == action.promised  # what the status message shows
    for minutes in (0, 1, 2, 3.99):
        assert lifetime_expiry.check(dep, busy(), policy, END + timedelta(minutes=minutes)) is None
    due = lifetime_expiry.check(dep, busy(), policy, END + timedelta(minutes=4))
    assert due is not None and due.kind == STOP and due.promised == action.promised
    assert due.unchanged == {"ends_at": END}


def test_unwarned_expiry_acts_at_the_hard_limit() -> None:
    dep = ready()
    assert lifetime_expiry.check(dep, busy(), POLICY, END + POLICY.warning / 2) is None
    due = lifetime_expiry.check(dep, busy(), POLICY, END + POLICY.warning)
    assert due is not None and due.kind == STOP and due.promised == END


def test_expiry_destroys_when_configured_and_spares_a_stopped_gpu() -> None:
    dep = ready(expiry_warned_at=END - POLICY.warning)
    destroy = lifetime_expiry.check(dep, busy(), replace(POLICY, on_expiry="destroy"), END)
    assert destroy is not None and destroy.kind == "destroy"
    stopped = replace(dep, status="stopped")
    really_stopped = instance("exited", intended_status="stopped")  # how Vast.ai lists it
    assert lifetime_expiry.check(stopped, really_stopped, POLICY, END) is None
    running = lifetime_expiry.check(stopped, busy(), POLICY, END)  # a Start that never answered
    assert running is not None and running.kind == STOP


def test_expiry_stops_a_stopped_row_whose_started_container_exited() -> None:
    """A Start Vast.ai accepted whose container exited before the app answered: the row still
    says stopped, but ``intended_status`` running means the GPU bills, so its end applies."""
    dep = replace(ready(expiry_warned_at=END - POLICY.warning), status="stopped")
    due = lifetime_expiry.check(dep, exited(), POLICY, END)
    assert due is not None and due.kind == STOP


# -- idle GPUs -------------------------------------------------------------------------------


def test_idle_tracking_starts_and_ends_a_stretch() -> None:
    start = idle_tracking.check(ready(), busy(0.01), POLICY, NOW)
    assert start is not None and start.kind == TRACK and start.value == NOW
    assert idle_tracking.check(ready(idle_since=NOW), busy(0.01), POLICY, NOW) is None
    for reading in (0.8, None):  # busy, or unknown: never idle
        end = idle_tracking.check(ready(idle_since=NOW), busy(reading), POLICY, NOW)
        assert end is not None and end.kind == TRACK and end.value is None


def test_idle_question_after_idle_minutes_names_the_grace() -> None:
    dep = ready(idle_since=NOW)
    assert idle_question.check(dep, busy(0.01), POLICY, NOW + timedelta(minutes=59)) is None
    at = NOW + POLICY.idle_after
    ask = idle_question.check(dep, busy(0.01), POLICY, at)
    assert ask is not None and ask.kind == ASK and ask.promised == at + POLICY.idle_grace
    assert ask.percent == pytest.approx(1.0)
    snoozed = replace(dep, idle_snoozed_until=at + timedelta(hours=1))
    assert idle_question.check(snoozed, busy(0.01), POLICY, at) is None


def test_idle_stop_at_the_time_the_question_named() -> None:
    asked = NOW + POLICY.idle_after
    dep = ready(idle_since=NOW, idle_warned_at=asked)
    promised = asked + POLICY.idle_grace
    assert idle_stop.check(dep, busy(0.01), POLICY, promised - timedelta(seconds=1)) is None
    stop = idle_stop.check(dep, busy(0.01), POLICY, promised)
    assert stop is not None and stop.kind == STOP and stop.promised == promised
    assert idle_stop.check(dep, busy(0.9), POLICY, promised) is None  # busy again


# -- exited container ------------------------------------------------------------------------

MSG = "exit code 1: <@U0EVIL> & <!channel> > log"


def exited(msg: str | None = MSG) -> Any:
    return instance("exited", intended_status="running", status_msg=msg)


def test_exited_for_nine_minutes_is_announced_not_stopped() -> None:
    since = NOW
    note = exited_container.check(ready(), exited(), POLICY, since + timedelta(minutes=9), since)
    assert note is not None and note.kind == NOTIFY
    assert note.promised == since + timedelta(minutes=10)
    assert note.text is not None and "&lt;@U0EVIL&gt; &amp; &lt;!channel&gt; &gt; log" in note.text
    assert "<@U0EVIL>" not in note.text and "<!channel>" not in note.text


def test_exited_for_ten_minutes_is_stopped_with_the_status_msg() -> None:
    since = NOW
    stop = exited_container.check(ready(), exited(), POLICY, since + timedelta(minutes=10), since)
    assert stop is not None and stop.kind == STOP and stop.why == "exited"
    assert "&lt;@U0EVIL&gt;" in stop.reason and "<@U0EVIL>" not in stop.reason


def test_exited_rule_ignores_other_states() -> None:
    later = NOW + timedelta(hours=1)
    assert exited_container.check(ready(), busy(), POLICY, later, NOW) is None
    assert (
        exited_container.check(ready(status="provisioning"), exited(), POLICY, later, NOW) is None
    )
    stopped_on_vast = instance("exited", intended_status="stopped")
    assert exited_container.check(ready(), stopped_on_vast, POLICY, later, NOW) is None
    assert exited_container.check(ready(), exited(), POLICY, later, None) is None
    assert exited_container.exited(ready(), exited())
    assert not exited_container.exited(ready(), None)


def test_a_stopped_row_whose_started_container_exited_is_announced_then_stopped() -> None:
    """A Start Vast.ai accepted (``intended_status`` running: the GPU bills) whose container
    exited before the app answered: the row stays ``stopped``, yet the rule stops it 10
    minutes after the first sight, telling the owner once the start grace has passed."""
    stopped = ready(status="stopped")
    assert exited_container.exited(stopped, exited())
    since = NOW
    early = since + exited_container.START_GRACE - timedelta(seconds=1)
    assert exited_container.check(stopped, exited(), POLICY, early, since) is None  # starting
    note = exited_container.check(stopped, exited(), POLICY, since + timedelta(minutes=9), since)
    assert note is not None and note.kind == NOTIFY
    stop = exited_container.check(stopped, exited(), POLICY, since + timedelta(minutes=10), since)
    assert stop is not None and stop.kind == STOP and stop.why == "exited"
    really_stopped = instance("exited", intended_status="stopped")  # stopped on Vast.ai: no GPU
    assert not exited_container.exited(stopped, really_stopped)


# -- deploy timeout and reminders ----------------------------------------------------------


def test_deploy_timeout_counts_from_the_rent_and_spares_ready_rows() -> None:
    approved = NOW - timedelta(hours=2)  # waited for its approver before renting
    dep = record(status="provisioning", created_at=approved, lifetime_started_at=NOW)
    at = NOW + POLICY.deploy_timeout
    assert deploy_timeout.check(dep, None, POLICY, at - timedelta(seconds=1)) is None
    action = deploy_timeout.check(dep, instance("loading", status_msg="pulling"), POLICY, at)
    assert action is not None and action.kind == "destroy" and action.promised == at
    assert "Not ready after 30 minutes" in action.reason and "(pulling)" in action.reason
    hostile = deploy_timeout.check(
        dep, instance("loading", status_msg="<!channel> & co"), POLICY, at
    )
    assert hostile is not None and "(&lt;!channel&gt; &amp; co)" in hostile.reason
    assert deploy_timeout.check(replace(dep, status="ready"), None, POLICY, at) is None
    assert deploy_timeout.RULE.schedule == "state"  # not the executor's


def test_stopped_reminder_after_the_configured_days() -> None:
    stopped = NOW - POLICY.stopped_after
    dep = ready(status="stopped", stopped_at=stopped)
    assert stopped_reminder.check(dep, None, POLICY, NOW - timedelta(seconds=1)) is None
    action = stopped_reminder.check(dep, None, POLICY, NOW)
    assert action is not None and action.kind == REMIND and action.value == stopped
    assert stopped_reminder.check(ready(), None, POLICY, NOW + timedelta(days=30)) is None


def test_long_running_reminder_after_a_day_ready() -> None:
    dep = ready(last_state_change_at=NOW)
    assert long_running.check(dep, None, POLICY, NOW + timedelta(hours=23)) is None
    action = long_running.check(dep, None, POLICY, NOW + POLICY.long_run)
    assert action is not None and action.why == "running" and action.value == NOW
    assert (
        long_running.check(replace(dep, status="stopped"), None, POLICY, NOW + POLICY.long_run)
        is None
    )


# -- what the owner sees ---------------------------------------------------------------------


def test_status_message_shows_the_end_the_warning_named() -> None:
    warned_at = END - timedelta(minutes=1)
    dep = ready(expiry_warned_at=warned_at)
    line = ends_line(dep, warned_at)
    promised = warned_at + MIN_NOTICE
    assert line is not None and f"<!date^{int(promised.timestamp())}^" in line
    assert visible_key(dep, now=warned_at) != visible_key(ready(), now=warned_at)


def test_a_provisioning_message_is_escaped() -> None:
    dep = record(status="provisioning", status_msg="pulling <!channel> & more")
    assert "pulling &lt;!channel&gt; &amp; more" in str(status_message(dep, None, now=NOW))


def test_a_ready_exited_container_shows_vast_message_escaped() -> None:
    dep = ready(status_msg=MSG)
    text = str(status_message(dep, None, now=NOW)["blocks"])
    assert "exit code 1: &lt;@U0EVIL&gt; &amp; &lt;!channel&gt; &gt; log" in text
    healthy = str(status_message(ready(status_msg="success, running x"), None, now=NOW))
    assert "Vast.ai:" not in healthy
    assert visible_key(dep, now=NOW) != visible_key(ready(status_msg="success, x"), now=NOW)


def test_the_automatic_stop_message_quotes_the_exit_escaped() -> None:
    dep = ready(status="stopped", status_msg=MSG)
    text = auto_action_text(
        dep, AutoAction(action=STOP, reason="exited", disk_per_day=0.1, total=1)
    )
    assert "container exited" in text and "&lt;@U0EVIL&gt; &amp;" in text
    assert "<@U0EVIL>" not in text


# -- the executor (fakes) --------------------------------------------------------------------


@dataclass
class FakeManage:
    acts: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    def act_automatically(self, action: str, deployment_id: int, **kwargs: Any) -> Outcome:
        self.acts.append((action, deployment_id, kwargs))
        return Outcome("done", "", None)


def executor(
    sf: SessionFactory | None, rules: tuple[Rule, ...], manage: FakeManage, messages: Any = None
) -> RuleExecutor:
    return RuleExecutor(
        session_factory=cast(SessionFactory, sf),
        messages=cast(RuleMessages, messages or RecordingMessages()),
        manage=cast(ManageService, manage),
        rules=rules,
        policy=lambda: POLICY,
        max_hours_for=lambda team: POLICY.max_hours,
    )


def _stop_now(dep: DeploymentRecord, *_: Any) -> Action:
    if dep.id == 2:
        raise RuntimeError("malformed row")
    return Action(kind=STOP, why="test", reason="a test", promised=NOW)


def test_one_rows_exception_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    manage = FakeManage()
    rules = (Rule(name="boom", check=_stop_now),)
    deps = [ready(id=1), ready(id=2), ready(id=3)]
    with caplog.at_level(logging.ERROR):
        sent = executor(None, rules, manage).review(deps, {}, NOW)
    assert [(a, d) for a, d, _ in manage.acts] == [("stop", 1), ("stop", 3)] and sent == 2
    assert any("boom on deployment 2" in r.getMessage() for r in caplog.records)
    assert manage.acts[0][2]["why"] == "test" and manage.acts[0][2]["seen_status"] == "ready"


def test_an_act_before_its_announced_time_is_refused() -> None:
    manage = FakeManage()

    def early(*_: Any) -> Action:
        return Action(kind=STOP, why="test", reason="a test", promised=NOW + timedelta(minutes=1))

    assert (
        executor(None, (Rule(name="early", check=early),), manage).review([ready()], {}, NOW) == 0
    )
    assert manage.acts == []


def test_exited_container_is_timed_across_restarts_and_forgotten_when_it_runs(
    session_factory: SessionFactory,
) -> None:
    """Exited at NOW: a notice (once), nothing at 9 minutes, even after a restart (a new
    executor), a stop at 10 minutes. Running again for 10 minutes without a break forgets
    the time: a later exit counts from then (and gets no second notice in the same run)."""
    row = insert_row(session_factory, template(), OFFER, now=NOW)
    dep = ready(id=row.id, instance_id=4242)
    crashed = {4242: exited()}
    manage, messages = FakeManage(), RecordingMessages()
    first = executor(session_factory, (exited_container.RULE,), manage, messages)
    first.review([dep], crashed, NOW)
    first.review([dep], crashed, NOW + timedelta(minutes=1))
    assert len(messages.notes) == 1 and len(messages.dms) == 1 and manage.acts == []
    assert "&lt;@U0EVIL&gt;" in messages.dms[0][1]
    restarted = executor(session_factory, (exited_container.RULE,), manage, messages)
    restarted.review([dep], crashed, NOW + timedelta(minutes=9))
    assert manage.acts == []
    restarted.review([dep], crashed, NOW + timedelta(minutes=10))
    assert [(a, d) for a, d, _ in manage.acts] == [("stop", dep.id)]
    assert manage.acts[0][2]["why"] == "exited"

    manage.acts.clear()
    later = NOW + timedelta(minutes=20)
    another = executor(session_factory, (exited_container.RULE,), manage, messages)
    key = watch_key(exited_container.RULE, dep)
    another.review([dep], {4242: busy()}, later)  # runs again ...
    another.review([dep], {4242: busy()}, later + timedelta(minutes=9))
    assert storage.claimed_at(session_factory, key) == NOW  # ... not long enough yet
    another.review([dep], {4242: busy()}, later + timedelta(minutes=10))
    assert storage.claimed_at(session_factory, key) is None  # 10 minutes up: forgotten
    exits = later + timedelta(minutes=11)
    another.review([dep], crashed, exits)
    another.review([dep], crashed, exits + timedelta(minutes=9))
    assert manage.acts == []
    another.review([dep], crashed, exits + timedelta(minutes=10))
    assert [(a, d) for a, d, _ in manage.acts] == [("stop", dep.id)]
    assert len(messages.dms) == 1  # one notice per run of the deployment


def test_a_crash_looping_container_is_noticed_once_and_stopped_ten_minutes_after_it_exited(
    session_factory: SessionFactory,
) -> None:
    """Exited for 105 s, running for one 15 s poll, again and again: the running polls do not
    restart the 10 minutes (nor announce a new time), so the owner hears once and the GPU is
    stopped at the first exited sight 10 minutes after the first exit."""
    row = insert_row(session_factory, template(), OFFER, now=NOW)
    dep = ready(id=row.id, instance_id=4242, lifetime_started_at=NOW)
    manage, messages = FakeManage(), RecordingMessages()
    rules = executor(session_factory, (exited_container.RULE,), manage, messages)
    stopped_at = None
    for poll in range(12 * 4):  # 12 minutes of polls: every 8th one sees it running
        at = NOW + timedelta(seconds=15 * poll)
        rules.review([dep], {4242: busy() if poll % 8 == 7 else exited()}, at)
        if manage.acts:
            stopped_at = at
            break
    assert len(messages.dms) == 1 and len(messages.notes) == 1
    assert [(a, d) for a, d, _ in manage.acts] == [("stop", dep.id)]
    assert stopped_at == NOW + timedelta(minutes=10)


def test_a_row_with_a_pending_act_gets_no_act_warning_question_or_notice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pending desired state (a Start in flight, a Stop or Destroy not confirmed) settles
    first: no rule stops, destroys, warns, asks or notifies about the row meanwhile; only
    bookkeeping (``track``) goes on."""
    manage, messages = FakeManage(), RecordingMessages()
    kinds = (STOP, "destroy", WARN, ASK, NOTIFY)
    tracked: list[Any] = []
    monkeypatch.setattr(storage, "set_idle_since", lambda sf, dep_id, **_: tracked.append(dep_id))

    def wants(kind: str) -> Rule:
        def check(*_: Any) -> Action:
            return Action(kind=kind, why="test", reason="a test", promised=NOW, text="hi")

        return Rule(name=f"wants_{kind}", check=check)

    def track(dep: DeploymentRecord, *_: Any) -> Action:
        return Action(kind=TRACK, why="idle", reason="idle")

    rules = (*(wants(kind) for kind in kinds), Rule(name="track", check=track))
    run = executor(None, rules, manage, messages)
    for state in ("running", "stopped", "destroyed"):
        pending = ready(desired_state=state, desired_next_try_at=NOW, desired_at=NOW)
        assert run.review([pending], {}, NOW) == 0
        assert manage.acts == [] and messages.dms == [] and messages.notes == []
    assert len(tracked) == 3  # the idle stretch is still kept
    settled = ready(desired_state="stopped", desired_next_try_at=None, desired_at=NOW)
    assert executor(None, (wants(STOP),), manage, messages).review([settled], {}, NOW) == 1
    assert [a for a, _, _ in manage.acts] == ["stop"]


def test_the_expiry_rule_leaves_its_own_pending_stop_to_the_reconciler() -> None:
    """Vast.ai refused the expiry stop, so it is pending: the next ticks do not claim it again
    (the reconciler retries it with backoff)."""
    manage = FakeManage()
    past = ready(ends_at=NOW - timedelta(hours=1), expiry_warned_at=NOW - timedelta(hours=2))
    run = executor(None, (lifetime_expiry.RULE,), manage)
    assert run.review([past], {}, NOW) == 1 and len(manage.acts) == 1
    pending = replace(past, desired_state="stopped", desired_next_try_at=NOW, desired_at=NOW)
    for minute in range(1, 4):
        assert run.review([pending], {}, NOW + timedelta(minutes=minute)) == 0
    assert len(manage.acts) == 1


def test_unread_instances_get_only_the_rules_that_need_none() -> None:
    seen: list[str] = []

    def record_rule(name: str, needs: bool) -> Rule:
        def check(*_: Any) -> None:
            seen.append(name)

        return Rule(name=name, check=check, needs_instance=needs)

    rules = (record_rule("expiry", False), record_rule("idle", True))
    executor(None, rules, FakeManage()).review([ready()], {}, NOW, seen=frozenset())
    assert seen == ["expiry"]
