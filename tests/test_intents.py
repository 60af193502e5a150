"""Desired state first, carried out by the reconciler: the manage service, the lifetime rules,
the status poller and the reconciler on the Vast.ai simulator, one "process" at a time.

A crash is a :class:`Crash` raised at a boundary of Stop, Start, Destroy or an automatic stop
(nothing in the bot catches a ``BaseException``: it is as if the process died there); then a
new set of services on the same database (a restart) makes two poller passes, one poll
interval apart. Afterwards every instance must be in the state its row desires, and nothing
may be left pending. Two cases kill -9 a real child process in the middle of a Stop
(``tests/intents_child.py``). SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.formats import micros
from bot.playground.slack_api import TEAM_ID
from bot.services.accounts import VastAccounts
from bot.services.actions import ManageService, OutcomeKind
from bot.services.admins import StaticAdmins
from bot.services.intents import IntentReconciler, outcome_unknown, retry_delay, start_claim_name
from bot.services.lifetimes import LifetimePolicy, LifetimeService
from bot.services.poller import StatusPoller
from bot.simulator import Fault, VastSimulator
from bot.slack.messages import SlackMessages
from bot.vast import VastClient, port_env
from bot.vast.errors import Unreachable, VastError
from catalog import load_catalog
from storage import DeploymentRecord
from tests.fixtures.slack import ALICE, CHANNEL, MovableClock
from tests.fixtures.vast import VAST_TEST_API_KEY, client_for
from tests.test_deploy_recovery import RecordingNotifier

CATALOG = load_catalog(None)
#: STATUS_POLL_SECONDS of these services: the reconciler's base retry interval.
INTERVAL = 15.0
ROOT = Path(__file__).resolve().parents[1]


class Crash(BaseException):
    """The process dies here: nothing in the bot catches it."""


@dataclass
class Process:
    """One bot process's services on a database and a Vast.ai client."""

    client: VastClient
    notifier: RecordingNotifier
    manage: ManageService
    reconciler: IntentReconciler
    poller: StatusPoller

    def passes(self, clock: MovableClock, count: int = 2) -> None:
        """``count`` poller ticks, one poll interval apart (the first one interval from now)."""
        for _ in range(count):
            clock.advance(seconds=INTERVAL)
            self.poller.tick()

    def texts(self, kind: str) -> list[str]:
        return [str(arg) for what, arg in self.notifier.calls if what == kind]


def start_process(
    sf: sessionmaker[Session], client: VastClient, clock: Callable[[], Any]
) -> Process:
    """The services one bot process builds (as ``bot.runtime`` wires them), without Slack's
    app: messages go to an in-memory notifier, the poller holds no lease."""
    accounts = VastAccounts.single(client, simulated=True)
    notifier = RecordingNotifier()
    messages = SlackMessages(notifier, clock=clock)
    manage = ManageService(
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        catalog_get=CATALOG.get,
        admins=StaticAdmins(frozenset()),
        clock=clock,
        retry_seconds=INTERVAL,
    )
    lifetimes = LifetimeService(
        session_factory=sf,
        messages=messages,
        manage=manage,
        catalog_get=CATALOG.get,
        policy=LifetimePolicy(),
        clock=clock,
    )
    reconciler = IntentReconciler(
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        catalog_get=CATALOG.get,
        interval_seconds=INTERVAL,
        clock=clock,
    )
    poller = StatusPoller(
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        catalog_get=CATALOG.get,
        interval_seconds=INTERVAL,
        timeout_minutes=30,
        clock=clock,
        lease_name=None,
        lifetimes=lifetimes,
        intents=reconciler,
        installation_id=storage.installation_id(sf),
    )
    return Process(client, notifier, manage, reconciler, poller)


def make_row(
    sf: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    *,
    status: str = "ready",
    lifetime_hours: float | None = None,
    simulated: bool = True,
) -> DeploymentRecord:
    """A deployment whose simulator instance runs (``ready``) or was stopped an hour ago
    (``stopped``); with ``lifetime_hours`` its run began two hours ago."""
    template = CATALOG.get("jupyter-lab")
    assert template is not None
    instance_id = sim.create_instance_directly(
        image=template.docker_image,
        env={**template.env, **port_env(template.ports)},
        disk_gb=16,
        runtype="ssh_direct",
        api_key=VAST_TEST_API_KEY,
    )
    sim.advance(4)  # running, the app answering
    now = clock()
    dep, _ = storage.create_deployment(
        sf,
        request_key=uuid.uuid4().hex,
        team_id=TEAM_ID,
        user_id=ALICE,
        channel_id=CHANNEL,
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=0.4,
        disk_gb=16,
        simulated=simulated,
        lifetime_hours=lifetime_hours,
        now=now - timedelta(hours=2),
    )
    storage.set_instance(sf, dep.id, instance_id, now=now - timedelta(hours=2))
    for old, new in (("creating", "provisioning"), ("provisioning", "ready")):
        assert storage.update_status(
            sf, dep.id, expected_status=old, new_status=new, now=now - timedelta(hours=2)
        )
    if status == "stopped":
        with client_for(sim) as client:
            client.stop_instance(instance_id)
        assert storage.update_status(
            sf, dep.id, expected_status="ready", new_status="stopped", now=now - timedelta(hours=1)
        )
    storage.set_message(sf, dep.id, CHANNEL, f"1700000000.{dep.id:06d}")
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


def on_vast(sim: VastSimulator, instance_id: int | None) -> str:
    """The instance's state on the simulator: ``destroyed`` (gone), else its intended status."""
    shown = sim.instance(instance_id or 0)
    return "destroyed" if shown is None else str(shown["intended_status"])


_STATUS_STATE = {"ready": "running", "stopped": "stopped", "destroyed": "destroyed"}


def wanted(dep: DeploymentRecord) -> str:
    """The state the row desires: its desired state, else what its status means."""
    return dep.desired_state or _STATUS_STATE[dep.status]


def row(sf: sessionmaker[Session], dep: DeploymentRecord) -> DeploymentRecord:
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def sim(vast_sim: VastSimulator) -> Iterator[VastSimulator]:
    yield vast_sim


@pytest.fixture
def processes(
    session_factory: sessionmaker[Session], sim: VastSimulator, clock: MovableClock
) -> Iterator[Callable[[], Process]]:
    """``processes()`` starts a new bot process on the test database (its own client)."""
    clients: list[VastClient] = []

    def start() -> Process:
        client = client_for(sim)
        clients.append(client)
        return start_process(session_factory, client, clock)

    yield start
    for client in clients:
        client.close()


# -- the journey: a Stop whose call never came back --------------------------------------


def test_a_stop_lost_in_a_crash_is_sent_after_the_restart(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sf = session_factory
    dep = make_row(sf, sim, clock)
    first = processes()

    def never_answered(instance_id: int) -> None:
        raise Crash  # the process dies while the request is on its way

    monkeypatch.setattr(first.client, "stop_instance", never_answered)
    with pytest.raises(Crash):
        first.manage.perform("stop", dep.id, ALICE)
    mid = row(sf, dep)
    assert mid.status == "ready"  # only what Vast.ai accepted changes the status
    assert mid.desired_state == "stopped" and mid.desired_next_try_at is not None
    assert on_vast(sim, dep.instance_id) == "running"

    second = processes()  # after the restart: a new process on the same database
    second.passes(clock)
    after = row(sf, dep)
    assert on_vast(sim, dep.instance_id) == "stopped"
    assert after.status == "stopped"
    assert after.desired_done_at is not None and after.desired_next_try_at is None
    events = storage.list_events(sf, dep.id)
    retries = [e for e in events if e.action == "stop_retry"]
    assert len(retries) == 1 and "accepted" in str(retries[0].detail)
    assert any(e.action == "status" and e.detail == "ready -> stopped" for e in events)
    notes = second.texts("reply")
    assert any("Stopped *JupyterLab*" in n and f"<@{ALICE}>" in n for n in notes)
    second.passes(clock)  # nothing more to do: no second stop, still stopped
    assert row(sf, dep).status == "stopped"
    assert len([r for r in sim.requests if r.method == "PUT"]) == 1  # the lost one never ran


def test_the_poller_never_makes_a_row_with_a_pending_stop_ready(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """A stopped row whose instance runs (a Start in flight) gets a stop from the rules that
    is not confirmed yet: the poller must not read "running" as started again."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    with client_for(sim) as client:
        client.start_instance(dep.instance_id or 0)
    sim.advance(4)
    assert storage.claim_intent(
        sf,
        dep.id,
        storage.STOPPED,
        actor=storage.SYSTEM_ACTOR,
        reason="Automatic stop: its lifetime ended.",
        statuses=(storage.DeploymentStatus.STOPPED,),
        now=clock(),
    ).claimed
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=100)
    process = processes()
    for _ in range(4):
        process.passes(clock, 1)
        assert row(sf, dep).status == "stopped"
    sim.clear_faults()
    clock.advance(minutes=30)
    process.passes(clock, 1)
    assert on_vast(sim, dep.instance_id) == "stopped"
    assert row(sf, dep).desired_next_try_at is None


# -- kill -9 at every boundary ----------------------------------------------------------


_STORAGE_POINTS = {
    "before_claim": ("claim_intent", "before"),
    "after_claim": ("claim_intent", "after"),
    "after_try_taken": ("begin_try", "after"),
    "before_done_mark": ("complete_intent", "before"),
    "after_done_mark": ("complete_intent", "after"),
}
_VAST_POINTS = {"before_vast_call": "before", "after_vast_call": "after"}
_METHODS = {"stop": "stop_instance", "start": "start_instance", "destroy": "destroy_instance"}


def _crashing(real: Callable[..., Any], when: str) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            raise Crash
        real(*args, **kwargs)
        raise Crash

    return wrapped


@contextmanager
def crash_at(point: str, process: Process, act: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        if point in _STORAGE_POINTS:
            name, when = _STORAGE_POINTS[point]
            patch.setattr(storage, name, _crashing(getattr(storage, name), when))
        else:
            method = _METHODS["stop" if act == "expiry" else act]
            real = getattr(process.client, method)
            patch.setattr(process.client, method, _crashing(real, _VAST_POINTS[point]))
        yield


@pytest.mark.parametrize("point", [*_STORAGE_POINTS, *_VAST_POINTS])
@pytest.mark.parametrize("act", ["stop", "start", "destroy", "expiry"])
def test_a_crash_at_any_boundary_is_settled_within_two_passes(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    act: str,
    point: str,
) -> None:
    sf = session_factory
    dep = make_row(
        sf,
        sim,
        clock,
        status="stopped" if act == "start" else "ready",
        lifetime_hours=1 if act == "expiry" else None,
    )
    other = make_row(sf, sim, clock)  # a bystander: must not move
    first = processes()
    with crash_at(point, first, act), pytest.raises(Crash):
        if act == "expiry":
            first.poller.tick()  # its end passed an hour ago: the rule stops it
        else:
            first.manage.perform(act, dep.id, ALICE)

    second = processes()  # the restart
    second.passes(clock)
    for record in (row(sf, dep), row(sf, other)):
        assert record.desired_next_try_at is None, f"{record} still pending"
        assert on_vast(sim, record.instance_id) == wanted(record), record
    settled = row(sf, dep)
    if settled.desired_state is not None:  # the act was recorded: it happened
        expected = {"stop": "stopped", "expiry": "stopped", "destroy": "destroyed"}
        assert settled.status == expected.get(act, "stopped")
        assert settled.desired_done_at is not None
    else:  # the process died before recording anything: nothing was sent
        assert point == "before_claim"
        assert settled.status == ("stopped" if act == "start" else "ready")
    assert row(sf, other).status == "ready"


# -- backoff, telling the owner, never giving up ---------------------------------------


def test_a_refused_stop_is_retried_with_backoff_and_the_owner_told_once(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    sf = session_factory
    dep = make_row(sf, sim, clock)
    process = processes()
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=6)  # six refusals, then it works
    clicked = clock()
    outcome = process.manage.perform("stop", dep.id, ALICE)
    assert outcome.kind == OutcomeKind.PENDING == "pending"
    assert "still running and billing" in outcome.message

    def stops() -> int:
        return len([r for r in sim.requests if r.method == "PUT"])

    sent_at = [clicked]
    for _ in range(100):
        before = stops()
        process.passes(clock, 1)
        if stops() > before:
            sent_at.append(clock())
        if row(sf, dep).status == "stopped":
            break
    gaps = [(b - a).total_seconds() for a, b in zip(sent_at, sent_at[1:], strict=False)]
    assert gaps == [15, 30, 60, 120, 240, 480]  # the poll interval, doubling
    assert stops() == 7 and on_vast(sim, dep.instance_id) == "stopped"
    events = storage.list_events(sf, dep.id)
    retries = [str(e.detail) for e in events if e.action == "stop_retry"]
    assert len(retries) == 6
    assert all("refused" in d for d in retries[:5]) and "accepted" in retries[-1]
    assert [e.action for e in events].count("stop_keeps_failing") == 1
    told = [t for t in process.texts("dm") if "may still be billing" in t]
    assert len(told) == 1  # once, after the fifth try; the sixth said nothing more
    assert "tried 5 times" in told[0] and "https://cloud.vast.ai/instances/" in told[0]
    assert any("may still be billing" in t for t in process.texts("reply"))
    done = [t for t in process.texts("dm") + process.texts("reply") if "after 7 tries" in t]
    assert done and "Stopped *JupyterLab*" in done[0]
    final = row(sf, dep)
    assert final.desired_tries == 7 and final.desired_gave_up_at is not None


def test_an_act_on_an_account_out_of_reach_backs_off_and_tells_the_owner(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """A row rented on real Vast.ai whose key the bot no longer has: the stop stays recorded,
    each try is counted with its backoff (not every pass), and the owner is told."""
    sf = session_factory
    dep = make_row(sf, sim, clock, simulated=False)  # never sent to the simulator instead
    process = processes()
    outcome = process.manage.perform("stop", dep.id, ALICE)
    assert outcome.kind == "pending" and "no Vast.ai key" in outcome.message
    for _ in range(20):  # 300 s: tries at 15, 45, 105, 225 s after the first
        process.passes(clock, 1)
    record = row(sf, dep)
    assert record.desired_tries == 5 and record.desired_next_try_at is not None
    retries = [e for e in storage.list_events(sf, dep.id) if e.action == "stop_retry"]
    assert len(retries) == 4 and all("not sent" in str(e.detail) for e in retries)
    assert len([t for t in process.texts("dm") if "may still be billing" in t]) == 1
    assert [r for r in sim.requests if r.method == "PUT"] == []


def test_the_retry_interval_doubles_and_is_capped() -> None:
    assert [retry_delay(n, 15).total_seconds() for n in (1, 2, 3, 4)] == [15, 30, 60, 120]
    assert retry_delay(8, 15) == timedelta(minutes=30)
    assert retry_delay(10_000, 15) == timedelta(minutes=30)


def test_a_start_vast_refuses_is_withdrawn_and_may_be_pressed_again(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """Starting a GPU later, unseen, would bill by surprise: a refused Start is withdrawn."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    process = processes()
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=1)
    outcome = process.manage.perform("start", dep.id, ALICE)
    assert outcome.kind == "failed" and "still stopped" in outcome.message
    refused = row(sf, dep)
    assert refused.desired_state is None and refused.desired_next_try_at is None
    assert any(e.action == "start_withdrawn" for e in storage.list_events(sf, dep.id))
    process.passes(clock)
    assert on_vast(sim, dep.instance_id) == "stopped"  # nothing sent behind the user's back
    assert process.manage.perform("start", dep.id, ALICE).kind == "done"
    assert on_vast(sim, dep.instance_id) == "running"


# -- a lost answer is no refusal: Vast.ai may have carried it out --------------------------


def _answer_lost(
    monkeypatch: pytest.MonkeyPatch, client: VastClient, method: str, *, carried_out: bool
) -> None:
    """``client.<method>`` loses its answer once (a timeout after the request went out):
    Vast.ai carried it out when ``carried_out``; later calls go through."""
    real = getattr(client, method)
    lost = [True]

    def once(instance_id: int) -> Any:
        if not lost:
            return real(instance_id)
        lost.clear()
        if carried_out:
            real(instance_id)
        raise Unreachable(f"PUT /api/v0/instances/{instance_id}/: timed out (ReadTimeout)")

    monkeypatch.setattr(client, method, once)


def _sent(sim: VastSimulator, method: str) -> int:
    return len([r for r in sim.requests if r.method == method])


def test_a_start_that_timed_out_is_told_still_stopped_while_it_runs_and_bills(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vast.ai carries out the Start but its answer is lost (a timeout, a 504): the Start is
    not withdrawn and nobody is told "still stopped"; it stays pending with its lease and the
    reconciler reads the instance running and confirms it (a new run, the thread told) without
    sending it again."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    process = processes()
    _answer_lost(monkeypatch, process.client, "start_instance", carried_out=True)
    sim.clear_requests()
    outcome = process.manage.perform("start", dep.id, ALICE)
    assert outcome.kind == OutcomeKind.PENDING, outcome.message
    assert "still stopped" not in outcome.message
    assert "could not tell whether Vast.ai started" in outcome.message
    assert "status message will say" in outcome.message
    pending = row(sf, dep)
    assert pending.desired_state == "running" and pending.desired_next_try_at is not None
    assert not any(e.action == "start_withdrawn" for e in storage.list_events(sf, dep.id))
    assert process.manage.perform("start", dep.id, ALICE).kind == OutcomeKind.ALREADY
    sim.advance(4)
    process.passes(clock, 2)
    assert on_vast(sim, dep.instance_id) == "running"
    settled = row(sf, dep)
    assert settled.desired_next_try_at is None and settled.desired_done_at is not None
    assert _sent(sim, "PUT") == 1  # read, not sent again
    assert any("Started *JupyterLab*" in t for t in process.texts("reply"))


def test_a_start_lost_before_vast_ai_did_it_is_sent_again_not_withdrawn(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer is lost and Vast.ai did not start it; the reconciler's resend is lost too
    (still unknown: pending, not withdrawn); the next one goes through and is confirmed."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    process = processes()
    _answer_lost(monkeypatch, process.client, "start_instance", carried_out=False)
    outcome = process.manage.perform("start", dep.id, ALICE)
    assert outcome.kind == OutcomeKind.PENDING and "still stopped" not in outcome.message
    assert on_vast(sim, dep.instance_id) == "stopped"
    _answer_lost(monkeypatch, process.client, "start_instance", carried_out=False)
    process.passes(clock, 1)  # read: stopped; sent again: lost again
    again = row(sf, dep)
    assert again.desired_state == "running" and again.desired_next_try_at is not None
    assert not any(e.action == "start_withdrawn" for e in storage.list_events(sf, dep.id))
    assert not any("did not start" in t for t in process.texts("reply"))
    for _ in range(4):
        process.passes(clock, 1)
    assert on_vast(sim, dep.instance_id) == "running"
    assert row(sf, dep).desired_next_try_at is None


@pytest.mark.parametrize("carried_out", [False, True])
def test_stop_calls_off_a_start_still_being_checked_and_nothing_starts_it(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
    carried_out: bool,
) -> None:
    """A Start whose answer was lost stays pending (the row is still ``stopped``). The owner
    presses **Stop**: it replaces the Start (and its lease), is sent (so a Start that did go
    through is stopped too) and says so; the reconciler never re-sends the Start. A second
    Stop click answers "already stopped" and sends nothing."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    process = processes()
    _answer_lost(monkeypatch, process.client, "start_instance", carried_out=carried_out)
    started = process.manage.perform("start", dep.id, ALICE)
    assert started.kind == OutcomeKind.PENDING, started.message
    assert row(sf, dep).desired_state == "running"
    puts = _sent(sim, "PUT")
    stop = process.manage.perform("stop", dep.id, ALICE)
    assert stop.kind == OutcomeKind.DONE, stop.message
    assert "called off" in stop.message and "already stopped" not in stop.message
    assert _sent(sim, "PUT") == puts + 1  # the stop was sent
    after = row(sf, dep)
    assert after.status == "stopped" and after.desired_state == "stopped"
    assert after.desired_next_try_at is None
    assert storage.get_lease(sf, start_claim_name(dep.id)) is None
    again = process.manage.perform("stop", dep.id, ALICE)
    assert again.kind == OutcomeKind.ALREADY and "already stopped" in again.message
    process.passes(clock, 4)
    assert on_vast(sim, dep.instance_id) == "stopped"
    assert _sent(sim, "PUT") == puts + 1  # no Start sent again, no second Stop
    assert row(sf, dep).status == "stopped"


def test_stop_during_an_accepted_start_stops_the_instance(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """Vast.ai accepted the Start (the GPU bills) and the row stays ``stopped`` until the app
    answers: a Stop click then stops the instance instead of answering "already stopped"."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped")
    process = processes()
    started = process.manage.perform("start", dep.id, ALICE)
    assert started.kind == OutcomeKind.DONE, started.message
    assert row(sf, dep).status == "stopped" and on_vast(sim, dep.instance_id) == "running"
    stop = process.manage.perform("stop", dep.id, ALICE)
    assert stop.kind == OutcomeKind.DONE, stop.message
    assert on_vast(sim, dep.instance_id) == "stopped"
    assert storage.get_lease(sf, start_claim_name(dep.id)) is None


@pytest.mark.parametrize(("action", "method", "http"), [
    ("stop", "stop_instance", "PUT"), ("destroy", "destroy_instance", "DELETE"),
])  # fmt: skip
def test_a_stop_or_destroy_whose_answer_was_lost_is_read_and_confirmed(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    method: str,
    http: str,
) -> None:
    """A Stop or Destroy whose answer was lost stays pending (it always did) and the user is
    not told it "still runs": the bot could not tell. The reconciler reads it done and
    confirms it without sending it again."""
    sf = session_factory
    dep = make_row(sf, sim, clock)
    process = processes()
    _answer_lost(monkeypatch, process.client, method, carried_out=True)
    sim.clear_requests()
    outcome = process.manage.perform(action, dep.id, ALICE)
    assert outcome.kind == OutcomeKind.PENDING, outcome.message
    assert "could not tell whether Vast.ai" in outcome.message
    assert "still running" not in outcome.message and "still exists" not in outcome.message
    assert row(sf, dep).desired_next_try_at is not None
    process.passes(clock, 2)
    settled = row(sf, dep)
    assert settled.desired_next_try_at is None
    assert settled.status == {"stop": "stopped", "destroy": "destroyed"}[action]
    assert _sent(sim, http) == 1


def test_which_errors_leave_the_outcome_unknown() -> None:
    from bot.vast.errors import AuthError, RateLimited, UnexpectedResponse

    assert outcome_unknown(Unreachable("PUT: timed out"))
    assert outcome_unknown(Unreachable("PUT: HTTP 504", status_code=504))
    assert outcome_unknown(UnexpectedResponse("PUT: HTTP 500 (body is not JSON)", status_code=500))
    assert outcome_unknown(UnexpectedResponse("PUT: not an object"))  # a 2xx we cannot read
    assert outcome_unknown(VastError("PUT: HTTP 500", status_code=500))
    assert not outcome_unknown(AuthError("PUT: HTTP 404 auth_error", status_code=404))
    assert not outcome_unknown(RateLimited("PUT: not sent, Vast.ai asked to wait"))
    assert not outcome_unknown(UnexpectedResponse("PUT: HTTP 404 html", status_code=404))
    assert not outcome_unknown(VastError("PUT: HTTP 400 invalid_args", status_code=400))


def test_an_intent_that_cannot_be_recorded_sends_nothing(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sqlalchemy.exc import OperationalError

    sf = session_factory
    dep = make_row(sf, sim, clock)
    process = processes()

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE deployments", {}, Exception("database is locked"))

    monkeypatch.setattr(storage, "claim_intent", down)
    sim.clear_requests()
    outcome = process.manage.perform("stop", dep.id, ALICE)
    assert outcome.kind == "failed"
    assert "could not record your stop" in outcome.message
    assert "nothing was sent" in outcome.message
    assert sim.requests == []
    assert row(sf, dep).status == "ready"


def test_a_console_start_is_recorded_as_desired_running(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    sf = session_factory
    dep = make_row(sf, sim, clock)
    process = processes()
    assert process.manage.perform("stop", dep.id, ALICE).kind == "done"
    with client_for(sim) as client:
        client.start_instance(dep.instance_id or 0)  # someone used the Vast.ai console
    sim.advance(4)
    clock.advance(minutes=5)  # past the settle time of the bot's own stop
    process.passes(clock)
    started = row(sf, dep)
    assert started.status == "ready"
    assert (started.desired_state, started.desired_actor) == ("running", "system")
    assert started.desired_next_try_at is None
    assert any(e.action == "start_seen" for e in storage.list_events(sf, dep.id))


# -- a person's click over the bot's pending act; a Start confirmed late -----------------


def _expired_with_a_refused_stop(
    sf: sessionmaker[Session], sim: VastSimulator, clock: MovableClock, process: Process
) -> DeploymentRecord:
    """A ready row whose run ended an hour ago; the expiry rule's stop was refused by Vast.ai,
    so it stays pending (desired ``stopped`` by ``system``) while its GPU bills."""
    dep = make_row(sf, sim, clock, lifetime_hours=1)  # run began 2 h ago: ended 1 h ago
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=1)  # the automatic stop is refused
    process.passes(clock, 1)
    pending = row(sf, dep)
    assert pending.desired_state == "stopped" and pending.desired_next_try_at is not None
    assert pending.desired_actor == storage.SYSTEM_ACTOR
    assert pending.status == "ready" and pending.ends_at is not None
    return pending


def test_extend_while_an_automatic_stop_is_pending_runs_to_the_new_end(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """The owner presses **Extend 2 h** while the bot still retries its expiry stop: the
    extension calls the stop off in the same transaction (``stop_withdrawn`` by the owner), so
    the reconciler never sends it and the answer ("it now stops in 2 h") holds."""
    sf = session_factory
    process = processes()
    pending = _expired_with_a_refused_stop(sf, sim, clock, process)
    lifetimes = process.poller.lifetimes
    assert lifetimes is not None
    outcome = lifetimes.extend(pending.id, 2, micros(pending.ends_at), ALICE)
    assert outcome.kind == "done", outcome.message
    assert "automatic stop" in outcome.message and "called off" in outcome.message
    extended = row(sf, pending)
    assert extended.ends_at is not None and extended.ends_at > clock()
    assert extended.desired_next_try_at is None and extended.desired_state is None
    withdrawn = [e for e in storage.list_events(sf, pending.id) if e.action == "stop_withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0].actor == ALICE

    sim.clear_requests()
    process.passes(clock, 8)  # two minutes: the old stop's retries would all have fallen due
    assert on_vast(sim, pending.instance_id) == "running"
    assert row(sf, pending).status == "ready"
    assert [r for r in sim.requests if r.method == "PUT"] == []


def test_keep_running_while_an_automatic_stop_is_pending_keeps_it_running(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """The idle stop Vast.ai refused is still pending when the owner answers the idle
    question with **Keep running**: the answer calls it off."""
    sf = session_factory
    dep = make_row(sf, sim, clock, lifetime_hours=24)
    process = processes()
    now = clock()
    assert storage.set_idle_since(sf, dep.id, expected=None, value=now - timedelta(hours=2))
    assert storage.claim_idle_warning(sf, dep.id, now - timedelta(minutes=40))
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=1)
    refused = process.manage.act_automatically(
        "stop",
        dep.id,
        why="idle",
        reason_text="Automatic stop: its GPU stayed idle.",
        seen_status=dep.status,
    )
    assert refused.kind == OutcomeKind.PENDING
    asked = row(sf, dep)
    assert asked.desired_next_try_at is not None and asked.idle_warned_at is not None
    lifetimes = process.poller.lifetimes
    assert lifetimes is not None
    outcome = lifetimes.keep_running(dep.id, micros(asked.idle_warned_at), ALICE)
    assert outcome.kind == "done" and "called off" in outcome.message, outcome.message
    assert row(sf, dep).desired_next_try_at is None
    process.passes(clock, 8)
    assert on_vast(sim, dep.instance_id) == "running" and row(sf, dep).status == "ready"
    assert [e.actor for e in storage.list_events(sf, dep.id) if e.action == "stop_withdrawn"] == [
        ALICE
    ]


def test_extend_leaves_a_stop_a_person_pressed_pending_and_says_so(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """Only the bot's own pending act is called off: a **Stop** the owner pressed (refused
    once by Vast.ai) still goes through after an extension, and the answer says so."""
    sf = session_factory
    dep = make_row(sf, sim, clock, lifetime_hours=3)  # ends in an hour
    process = processes()
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=1)
    assert process.manage.perform("stop", dep.id, ALICE).kind == OutcomeKind.PENDING
    lifetimes = process.poller.lifetimes
    assert lifetimes is not None and dep.ends_at is not None
    outcome = lifetimes.extend(dep.id, 2, micros(dep.ends_at), ALICE)
    assert outcome.kind == "done", outcome.message
    assert "called off" not in outcome.message
    assert f"*Stop* <@{ALICE}> pressed is still being carried out" in outcome.message
    assert row(sf, dep).desired_actor == ALICE and row(sf, dep).desired_next_try_at is not None
    process.passes(clock, 2)
    assert on_vast(sim, dep.instance_id) == "stopped" and row(sf, dep).status == "stopped"
    assert not any(e.action == "stop_withdrawn" for e in storage.list_events(sf, dep.id))


def test_a_start_whose_confirmation_was_lost_is_not_undone_by_the_old_run_end(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """**Start** on a stopped deployment whose run ended; Vast.ai accepts and the process
    dies before ``complete_intent`` (which begins the new run). After the restart the rules
    run before the reconciler in a tick and see a stopped row, its old end long past, with a
    running instance: they must leave the pending Start alone (the reconciler confirms it and
    begins the new run), not stop what the owner just started."""
    sf = session_factory
    dep = make_row(sf, sim, clock, status="stopped", lifetime_hours=1)
    first = processes()
    real = storage.complete_intent

    def dies(*args: object, **kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(storage, "complete_intent", dies)
    with pytest.raises(Crash):
        first.manage.perform("start", dep.id, ALICE)
    monkeypatch.setattr(storage, "complete_intent", real)
    assert on_vast(sim, dep.instance_id) == "running"  # Vast.ai accepted the Start
    sim.advance(4)  # the container runs again

    second = processes()  # the restart
    # The app is still loading its model: the container runs, the HTTP probe does not answer.
    monkeypatch.setattr(second.poller.prober, "are_up", lambda urls: dict.fromkeys(urls, False))
    second.passes(clock, 2)
    assert on_vast(sim, dep.instance_id) == "running"
    started = row(sf, dep)
    assert started.desired_state == "running" and started.desired_next_try_at is None
    assert started.ends_at is not None and started.ends_at > clock()  # the new run's end
    actions = [e.action for e in storage.list_events(sf, dep.id)]
    assert "auto_stop" not in actions and "stop_requested" not in actions


# -- a real kill -9 ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hang_before_send", "hang_after_send"])
def test_kill_9_in_the_middle_of_a_stop(
    database_url: str,
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    mode: str,
) -> None:
    """A child process runs a Stop against the simulator and is killed with SIGKILL while its
    request is on the way (``hang_before_send``: it never reached Vast.ai) or its answer is
    (``hang_after_send``: Vast.ai stopped it, the answer was lost)."""
    sf = session_factory
    dep = make_row(sf, sim, clock)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [database_url, str(sim.base_url), str(dep.id), mode]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.intents_child", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the child is mid-request
        assert line.strip() == "SENDING", child.stderr.read() if child.stderr else line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    mid = row(sf, dep)
    assert mid.status == "ready" and mid.desired_next_try_at is not None
    expected_before = "stopped" if mode == "hang_after_send" else "running"
    assert on_vast(sim, dep.instance_id) == expected_before

    clock.set(storage.utcnow())  # the restart, a moment later
    processes().passes(clock)
    after = row(sf, dep)
    assert on_vast(sim, dep.instance_id) == "stopped"
    assert after.status == "stopped" and after.desired_next_try_at is None


def test_an_automatic_destroy_called_off_while_on_the_wire_is_recorded_truthfully(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rule's destroy was refused once and is pending; the reconciler takes its next try and,
    while its DELETE is on the wire, the owner presses **Extend** (which calls the pending
    destroy off). Vast.ai carries the DELETE out: the bot records it as its own destroy, with
    the rule's reason, and tells the thread it had already been sent, instead of staying
    silent and later calling it "destroyed outside the bot"."""
    sf = session_factory
    dep = make_row(sf, sim, clock, lifetime_hours=24)
    process = processes()
    sim.inject(Fault.BAD_KEY, endpoint="destroy", times=1)
    reason = "Automatic destroy: its lifetime ended."
    refused = process.manage.act_automatically("destroy", dep.id, why="expiry", reason_text=reason)
    assert refused.kind == OutcomeKind.PENDING, refused.message
    pending = row(sf, dep)
    assert pending.desired_state == "destroyed" and pending.desired_next_try_at is not None
    lifetimes = process.poller.lifetimes
    assert lifetimes is not None
    real = process.client.destroy_instance
    answers: list[Any] = []

    def destroy_while_extend_is_pressed(instance_id: int) -> Any:
        answers.append(lifetimes.extend(dep.id, 2, micros(pending.ends_at), ALICE))
        return real(instance_id)

    monkeypatch.setattr(process.client, "destroy_instance", destroy_while_extend_is_pressed)
    before = len(process.notifier.calls)
    process.passes(clock, 8)
    assert answers and answers[0].kind == "done"
    assert on_vast(sim, dep.instance_id) == "destroyed"
    after = row(sf, dep)
    assert after.status == "destroyed" and after.reason == reason
    assert after.desired_state == "destroyed" and after.desired_next_try_at is None
    kinds = [e.action for e in storage.list_events(sf, dep.id)]
    assert "withdrawn_too_late" in kinds and "destroy" in kinds
    replies = [str(arg) for what, arg in process.notifier.calls[before:] if what == "reply"]
    assert [r for r in replies if "had already been sent to Vast.ai" in r], replies
    assert not [r for r in replies if "no longer exists" in r], replies


def test_a_pending_stop_whose_instance_vanished_is_announced_gone_once(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
) -> None:
    """A Stop Vast.ai refused is pending; the host removes the instance. The poller records
    it destroyed and tells the thread; the reconciler then closes the pending stop on the
    final row without telling the thread a second time."""
    sf = session_factory
    dep = make_row(sf, sim, clock)
    process = processes()
    sim.inject(Fault.BAD_KEY, endpoint="manage", times=1)
    refused = process.manage.perform("stop", dep.id, ALICE)
    assert refused.kind == OutcomeKind.PENDING, refused.message
    sim.vanish(dep.instance_id or 0)
    before = len(process.notifier.calls)
    process.passes(clock, 6)
    after = row(sf, dep)
    assert after.status == "destroyed" and after.desired_next_try_at is None
    told = [
        arg for what, arg in process.notifier.calls[before:]
        if what == "reply" and ("no longer exists" in str(arg) or "gone" in str(arg))
    ]  # fmt: skip
    assert len(told) == 1, told


def test_a_first_automatic_destroy_called_off_while_on_the_wire_is_recorded_truthfully(
    session_factory: sessionmaker[Session],
    sim: VastSimulator,
    clock: MovableClock,
    processes: Callable[[], Process],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same race on the rule's first try (sent by the rule itself, not the reconciler):
    the destroy Vast.ai carried out is recorded with the rule's reason and the thread told."""
    sf = session_factory
    dep = make_row(sf, sim, clock, lifetime_hours=24)
    process = processes()
    lifetimes = process.poller.lifetimes
    assert lifetimes is not None
    real = process.client.destroy_instance
    answers: list[Any] = []

    def destroy_while_extend_is_pressed(instance_id: int) -> Any:
        answers.append(lifetimes.extend(dep.id, 2, micros(dep.ends_at), ALICE))
        return real(instance_id)

    monkeypatch.setattr(process.client, "destroy_instance", destroy_while_extend_is_pressed)
    reason = "Automatic destroy: its lifetime ended."
    done = process.manage.act_automatically("destroy", dep.id, why="expiry", reason_text=reason)
    assert answers and "called off" in answers[0].message, answers
    assert done.kind == OutcomeKind.DONE, done.message
    after = row(sf, dep)
    assert after.status == "destroyed" and after.reason == reason
    assert after.desired_state == "destroyed" and after.desired_next_try_at is None
    assert "withdrawn_too_late" in [e.action for e in storage.list_events(sf, dep.id)]
    replies = [str(arg) for what, arg in process.notifier.calls if what == "reply"]
    assert [r for r in replies if "had already been sent to Vast.ai" in r], replies
    process.passes(clock, 3)
    assert row(sf, dep).reason == reason
