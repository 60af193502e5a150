"""A simulated hour of 50 people deploying, stopping and destroying against the Vast.ai
simulator with its rate limits on: no 429 received, every deployment followed to ready and to
its end.

What it measures. The whole bot runs for real (:func:`bot.runtime.build_runtime`, its scheduler
with the status poller, the reminders and approvals jobs) against the fake Slack Web API and a
:class:`bot.simulator.VastSimulator` that enforces Vast.ai's per-endpoint minimum intervals
(429 for a call that comes too soon). 50 people (threads) start at staggered moments of the
hour (within its first 38 minutes, templates jupyter-lab, comfy-ui and stable-diffusion in
turn); each one, as the picker and the submit listener do, takes an offer from the shared
:class:`bot.services.offers.OfferCache`, re-checks it with one search
(``DeployService.recheck``), checks the budgets, deploys it (``DeployService.deploy`` with a
``DeployRequest``), refreshes the Home tab, waits (reading the database) until the poller
marks it ready, keeps it running 4-15 minutes, stops it (``ManageService.perform("stop")``,
what the button does), waits until it is stopped (the row and the simulator's instance),
keeps it stopped 1-4 minutes, destroys it (``perform("destroy")``) and waits until it is gone.
Every deployment must reach ready, stopped and destroyed, the client must receive no 429 and
the simulator refuse none; otherwise the exit status is 1 and the reason is printed.

Printed: people, deployments reaching ready / stopped / destroyed, 429s received by the
client and refused by the simulator, Vast.ai requests per endpoint, median and p95 simulated
seconds from submit to ready (as the person saw it, and from the row's timestamps), the most
list requests the poller sent in one tick against its budget
(:meth:`bot.services.poller.StatusPoller.list_budget`), poller ticks, the simulated seconds
the client waited for its pacers, Slack calls, wall time against simulated time (the run ends
when the last person is done, about 50 simulated minutes), and what the event log shows that
it should not (a status path other than creating, provisioning, ready, stopped, destroyed;
events stamped with the machine's clock rather than the bot's), which is not a failure.

How time is compressed. Everything that counts time runs ``--speed`` K times faster (default
60: the hour takes about a minute): the client's pacing and the simulator's rate limits (both
Vast.ai's intervals / K), the simulator's boot timeline (``--boot``, simulated seconds / K),
``STATUS_POLL_SECONDS`` (15 / K), ``STEADY_SWEEP_SECONDS`` and ``OFFER_CACHE_SECONDS`` (/ K),
and the bot's own clock (``build_runtime(clock=...)``: start + elapsed monotonic seconds × K,
so lifetimes, timeouts and the poller's transition window run K times faster too). People's
schedules are in simulated seconds. Not scaled: the pacer's margin (:func:`bot.vast.pacing.margin`,
at least 50 ms of real time), so at K=60 the client spaces list calls 4 simulated seconds apart
rather than 1.1 and creates 7.5 s rather than 4.75 s; with 50 people in an hour that leaves
plenty of room (the poller's list budget is 3 requests a tick instead of 13), so 60 stays the
default. HTTP, SQLite and thread scheduling are not scaled either: at high K they weigh more.

Run: ``python -m benchmarks.simulated_hour [--people 50] [--speed 60] [--seed 1]
[--limit 300] [--unpaced]``. ``--limit``: a hard wall-clock limit in seconds, after which it
stops, prints what is missing and exits 1; ``--unpaced``: the client does not pace its calls,
to see the check catch the simulator's 429s. Only 127.0.0.1 is used; a temporary SQLite
database is created and removed. At the defaults it takes about 50 s of wall time and 7 s of
CPU.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.runtime import Runtime, build_runtime
from bot.services.actions import DESTROY, STOP
from bot.services.deploy import DeployRequest
from bot.services.poller import TickReport
from bot.simulator import Timeline, VastSimulator
from bot.simulator.limits import DEFAULT_RATE_LIMITS, endpoint_of
from bot.vast import VastClient
from bot.vast.pacing import DEFAULT_MIN_INTERVALS, NO_PACING
from storage import DeploymentStatus
from tests.fixtures.slack import make_settings

TEMPLATES = ("jupyter-lab", "comfy-ui", "stable-diffusion")
CHANNEL = "C0DEPLOYS1"
HOUR = 3600.0
#: Simulated seconds: people start within the first LAST_START of the hour, keep their
#: deployment running RUN_MINUTES and stopped STOPPED_MINUTES (uniform ranges).
LAST_START = 38 * 60.0
RUN_MINUTES = (4.0, 15.0)
STOPPED_MINUTES = (1.0, 4.0)
#: Offer re-checks a person tries (fresh search each time) before giving up.
OFFER_ATTEMPTS = 6


class FastClock:
    """The bot's clock: aware UTC that runs ``speed`` times faster than the machine's."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.t0 = time.monotonic()
        self.start = storage.utcnow()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed())

    def elapsed(self) -> float:
        """Simulated seconds since the start."""
        return (time.monotonic() - self.t0) * self.speed

    def sleep_until(self, simulated: float, stop: threading.Event) -> bool:
        """Wait until ``simulated`` seconds after the start; False when ``stop`` was set."""
        real = (simulated - self.elapsed()) / self.speed
        if real > 0:
            return not stop.wait(real)
        return not stop.is_set()


@dataclass
class Person:
    """One person's plan (simulated seconds) and what happened to their deployment."""

    n: int
    user_id: str
    template: str
    start_at: float
    run_seconds: float
    stopped_seconds: float
    phase: str = "waiting"
    deployment_id: int | None = None
    instance_id: int | None = None
    offer_attempts: int = 0
    submitted_at: float | None = None
    ready_after: float | None = None
    row_ready_after: float | None = None
    reached: set[str] = field(default_factory=set)
    problem: str | None = None


@dataclass
class Bench:
    """What every person's thread shares."""

    runtime: Runtime
    sim: VastSimulator
    clock: FastClock
    stop: threading.Event
    poll_real: float


def wait_for(bench: Bench, person: Person, done: str, check: object) -> bool:
    """Read the database (and the simulator) until ``check()`` is true; False when stopped."""
    assert callable(check)
    while not bench.stop.is_set():
        if check():
            person.reached.add(done)
            return True
        bench.stop.wait(bench.poll_real)
    return False


def row_status(bench: Bench, person: Person) -> DeploymentStatus | None:
    assert person.deployment_id is not None
    dep = storage.get_deployment(bench.runtime.services.session_factory, person.deployment_id)
    return dep.status if dep is not None else None


def live(person: Person, bench: Bench) -> None:
    """One person's hour (see the module docstring); problems end up in ``person.problem``."""
    try:
        _live(person, bench)
    except Exception as error:  # report, never hang the benchmark
        person.problem = f"{type(error).__name__}: {error}"
        logging.getLogger(__name__).exception("person %d", person.n)


def _live(person: Person, bench: Bench) -> None:
    services = bench.runtime.services
    sf = services.session_factory
    clock = bench.clock
    rng = random.Random(person.n)
    template = services.catalog.get(person.template)
    assert template is not None
    if not clock.sleep_until(person.start_at, bench.stop):
        return

    # The picker (the shared offer cache), then the submit listener: re-check, budgets, deploy.
    person.phase = "deploying"
    disk = template.disk_gb
    check = None
    for attempt in range(OFFER_ATTEMPTS):
        person.offer_attempts = attempt + 1
        found = services.offers.search(template, disk_gb=disk, refresh=attempt > 0)
        if not found.ranked:
            person.problem = "no offer fits"
            return
        choice = rng.choice(found.ranked[:8]).offer
        check = services.deploy.recheck(
            template,
            choice.id,
            disk_gb=disk,
            gpu_name=choice.gpu_name,
            shown_dph=choice.dph_total,
            shown_disk_gb=disk,
        )
        if check.offer is not None:
            break
    if check is None or check.offer is None:
        person.problem = f"no offer after {OFFER_ATTEMPTS} tries: {check and check.problem}"
        return
    lifetime = services.lifetimes.policy.default_for(template)
    budget = services.budgets.check(TEAM_ID, person.user_id, check.offer.dph_total, lifetime)
    if budget.needs_approval:
        person.problem = "the budget check asked for an approval"
        return
    request = DeployRequest(
        request_key=f"VSIMHOUR{person.n:04d}",
        team_id=TEAM_ID,
        user_id=person.user_id,
        channel_id=CHANNEL,
        template=template,
        offer=check.offer,
        disk_gb=disk,
        lifetime_hours=lifetime,
        max_dph=services.settings.approval_dph,
    )
    person.submitted_at = clock.elapsed()
    result = services.deploy.deploy(request)
    person.deployment_id = result.deployment.id
    person.instance_id = result.deployment.instance_id
    if result.created:
        services.home.refresh(person.user_id, TEAM_ID)
        services.budgets.notify_thresholds(TEAM_ID)
    if result.deployment.status != DeploymentStatus.PROVISIONING:
        person.problem = f"deploy ended {result.deployment.status}: {result.deployment.reason}"
        return

    # Until the poller marks it ready.
    person.phase = "provisioning"

    def ready() -> bool:
        status = row_status(bench, person)
        if status in storage.FINAL_STATUSES:
            raise RuntimeError(f"deployment became {status} while provisioning")
        return status == DeploymentStatus.READY

    if not wait_for(bench, person, "ready", ready):
        return
    person.ready_after = clock.elapsed() - person.submitted_at
    dep = storage.get_deployment(sf, person.deployment_id)
    if dep is not None and dep.ready_at is not None:
        person.row_ready_after = (dep.ready_at - dep.created_at).total_seconds()

    person.phase = "ready"
    if not clock.sleep_until(clock.elapsed() + person.run_seconds, bench.stop):
        return
    person.phase = "stopping"
    outcome = services.manage.perform(STOP, person.deployment_id, person.user_id)
    if outcome.kind != "done":
        person.problem = f"stop: {outcome.kind}: {outcome.message}"
        return

    def stopped() -> bool:
        assert person.instance_id is not None
        instance = bench.sim.instance(person.instance_id)
        exited = instance is not None and instance.get("actual_status") == "exited"
        return row_status(bench, person) == DeploymentStatus.STOPPED and exited

    if not wait_for(bench, person, "stopped", stopped):
        return
    person.phase = "stopped"
    if not clock.sleep_until(clock.elapsed() + person.stopped_seconds, bench.stop):
        return
    person.phase = "destroying"
    outcome = services.manage.perform(DESTROY, person.deployment_id, person.user_id)
    if outcome.kind != "done":
        person.problem = f"destroy: {outcome.kind}: {outcome.message}"
        return

    def destroyed() -> bool:
        assert person.instance_id is not None
        gone = bench.sim.instance(person.instance_id) is None
        return row_status(bench, person) == DeploymentStatus.DESTROYED and gone

    if wait_for(bench, person, "destroyed", destroyed):
        person.phase = "done"


def plan(people: int, seed: int) -> list[Person]:
    """Staggered people (simulated seconds), templates in turn."""
    rng = random.Random(seed)
    return [
        Person(
            n=n,
            user_id=f"U0SIM{n:04d}",
            template=TEMPLATES[n % len(TEMPLATES)],
            start_at=rng.uniform(0.0, LAST_START),
            run_seconds=rng.uniform(*RUN_MINUTES) * 60,
            stopped_seconds=rng.uniform(*STOPPED_MINUTES) * 60,
        )
        for n in range(people)
    ]


def percentile(values: list[float], share: float) -> float:
    """The ``share`` percentile by the nearest-rank rule (values need not be sorted)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return ordered[int(rank) - 1]


def run(args: argparse.Namespace) -> int:
    """Run the simulated hour; print the figures; return the exit status."""
    k = float(args.speed)
    limits = {name: seconds / k for name, seconds in DEFAULT_RATE_LIMITS.items()}
    intervals = {name: seconds / k for name, seconds in DEFAULT_MIN_INTERVALS.items()}
    loading, running, app_ready = (float(x) for x in args.boot.split(","))
    timeline = Timeline(0.0, loading / k, running / k, app_ready / k)
    people = plan(args.people, args.seed)
    started = time.perf_counter()
    reports: list[TickReport] = []
    reports_lock = threading.Lock()
    with (
        tempfile.TemporaryDirectory() as folder,
        FakeSlack() as slack,
        VastSimulator(rate_limits=limits, timeline=timeline, credit=1e9, seed=args.seed) as sim,
    ):
        assert sim.base_url is not None
        settings = make_settings(
            slack,
            database_url=f"sqlite:///{Path(folder) / 'hour.db'}",
            vast_api_url=sim.base_url,
            status_poll_seconds=15.0 / k,
            steady_sweep_seconds=max(1.0, 120.0 / k),
            offer_cache_seconds=30.0 / k,
            vast_min_intervals=intervals,
        )
        paced = NO_PACING if args.unpaced else intervals
        vast = VastClient(sim.base_url, None, min_intervals=paced)
        clock = FastClock(k)
        runtime = build_runtime(settings, vast=vast, clock=clock)
        poller = runtime.services.poller
        original_tick = poller._tick

        def recorded_tick() -> TickReport:
            report = original_tick()
            with reports_lock:
                reports.append(report)
            return report

        poller._tick = recorded_tick  # type: ignore[method-assign]
        stop = threading.Event()
        bench = Bench(runtime, sim, clock, stop, poll_real=settings.status_poll_seconds / 4)
        runtime.start_background()
        threads = [
            threading.Thread(target=live, args=(p, bench), name=f"person-{p.n}", daemon=True)
            for p in people
        ]
        for thread in threads:
            thread.start()
        deadline = started + args.limit
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.perf_counter()))
        timed_out = any(thread.is_alive() for thread in threads)
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        wall = time.perf_counter() - started
        simulated = clock.elapsed()
        budget = poller.list_budget()
        anomalies = event_anomalies(runtime, people)
        pacers = vast.pacers.by_endpoint
        waited = {name: p.waited * k for name, p in pacers.items() if p.waited}
        closer = threading.Thread(target=runtime.close, daemon=True)
        closer.start()
        closer.join(timeout=15)
        requests = sim.requests
        refused = sim.rate_limited_count
        received = vast.rate_limited_count
        slack_calls = len(slack.calls)
        leftover = sim.instances

    return report(
        args,
        people,
        reports,
        budget=budget,
        requests=Counter(endpoint_of(r.method, r.path) or r.path for r in requests),
        refused=refused,
        received=received,
        slack_calls=slack_calls,
        leftover=len(leftover),
        wall=wall,
        simulated=simulated,
        timed_out=timed_out,
        anomalies=anomalies,
        waited=waited,
    )


EXPECTED_PATH = [
    (DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING),
    (DeploymentStatus.PROVISIONING, DeploymentStatus.READY),
    (DeploymentStatus.READY, DeploymentStatus.STOPPED),
    (DeploymentStatus.STOPPED, DeploymentStatus.DESTROYED),
]


def event_anomalies(runtime: Runtime, people: list[Person]) -> list[str]:
    """What the event log shows that a plain hour should not: a status path other than
    creating -> provisioning -> ready -> stopped -> destroyed, or events stamped with another
    clock than the bot's (earlier than the row's ``created_at``: a step that read the
    machine's time instead of the injected clock), counted by kind."""
    sf = runtime.services.session_factory
    found: list[str] = []
    off_clock: Counter[str] = Counter()
    for p in people:
        if p.deployment_id is None or "destroyed" not in p.reached:
            continue  # unfinished ones are reported as failures
        dep = storage.get_deployment(sf, p.deployment_id)
        events = storage.list_events(sf, p.deployment_id)
        path = [(e.from_status, e.to_status) for e in events if e.action == "status"]
        if path != EXPECTED_PATH:
            steps = " ".join(f"{a}->{b}" for a, b in path)
            found.append(f"deployment {p.deployment_id}: status path {steps}")
        if dep is None:
            continue
        for e in events:
            if e.at < dep.created_at - timedelta(seconds=1):
                status = f"status {e.from_status}->{e.to_status}"
                off_clock[status if e.action == "status" else e.action] += 1
    if off_clock:
        kinds = ", ".join(f"'{kind}' {count}" for kind, count in sorted(off_clock.items()))
        found.append(
            f"events stamped with the machine's clock, not the bot's (before the row's "
            f"created_at): {kinds}"
        )
    return found


def report(
    args: argparse.Namespace,
    people: list[Person],
    ticks: list[TickReport],
    *,
    budget: int,
    requests: Counter[str],
    refused: int,
    received: int,
    slack_calls: int,
    leftover: int,
    wall: float,
    simulated: float,
    timed_out: bool,
    anomalies: list[str],
    waited: dict[str, float],
) -> int:
    """Print the figures and what went wrong; return the exit status."""
    n = len(people)
    ready = sum("ready" in p.reached for p in people)
    stopped = sum("stopped" in p.reached for p in people)
    destroyed = sum("destroyed" in p.reached for p in people)
    ran = [t for t in ticks if t.ran]
    lists = [t.transition_requests + t.sweep_pages for t in ran]
    print(
        f"Simulated hour: {n} people, speed x{args.speed:g} "
        f"(STATUS_POLL_SECONDS={15 / args.speed:.3f} s real), boot {args.boot} s, seed {args.seed}"
    )
    print(f"deployments reaching ready / stopped / destroyed: {ready} / {stopped} / {destroyed}")
    print(f"429s received by the client: {received}; refused by the simulator: {refused}")
    print(
        "Vast.ai requests: "
        + ", ".join(f"{name} {count}" for name, count in sorted(requests.items()))
        + f" (total {sum(requests.values())})"
    )
    waits = [p.ready_after for p in people if p.ready_after is not None]
    rows = [p.row_ready_after for p in people if p.row_ready_after is not None]
    if waits:
        print(
            f"submit -> ready, simulated seconds: median {statistics.median(waits):.1f}, "
            f"p95 {percentile(waits, 0.95):.1f} (seen by the person); rows' ready_at - "
            f"created_at: median {statistics.median(rows):.1f}, p95 {percentile(rows, 0.95):.1f}"
        )
    retried = sum(p.offer_attempts > 1 for p in people)
    print(
        f"offers taken by someone else meanwhile (a fresh search, another offer): {retried} people"
    )
    if waited:
        print(
            "client waited for its pacers, simulated seconds in all: "
            + ", ".join(f"{name} {seconds:.0f}" for name, seconds in sorted(waited.items()))
        )
    if lists:
        errors = Counter(t.error for t in ran if t.error)
        print(
            f"poller: {len(ran)} ticks, list requests per tick max {max(lists)} "
            f"(median {statistics.median(lists):g}) vs budget {budget}; "
            f"longest tick {max(t.seconds for t in ran) * 1000:.0f} ms real; "
            f"errors {dict(errors) or 0}"
        )
    print(
        f"Slack calls: {slack_calls}; wall time {wall:.1f} s for {simulated / 60:.1f} simulated "
        f"minutes; instances left on the simulator: {leftover}"
    )

    if anomalies:
        print(f"anomalies in the event log ({len(anomalies)}, not counted as failures):")
        for line in anomalies[:10]:
            print(f"  ! {line}")
        if len(anomalies) > 10:
            print(f"  ! ... and {len(anomalies) - 10} more")

    failures: list[str] = []
    if timed_out:
        failures.append(f"the hard limit of {args.limit:g} s wall time was reached")
    for p in people:
        if p.problem or "destroyed" not in p.reached:
            missing = [s for s in ("ready", "stopped", "destroyed") if s not in p.reached]
            failures.append(
                f"person {p.n} ({p.template}, deployment {p.deployment_id}, instance "
                f"{p.instance_id}): stuck in {p.phase}, never {'/'.join(missing) or '-'}"
                + (f": {p.problem}" if p.problem else "")
            )
    if received or refused:
        failures.append(f"429s: {received} received by the client, {refused} refused")
    if lists and max(lists) > budget:
        failures.append(f"a poller tick sent {max(lists)} list requests (budget {budget})")
    if leftover:
        failures.append(f"{leftover} instances still exist on the simulator")
    if failures:
        print("FAILED:")
        for line in failures:
            print(f"  - {line}")
        return 1
    print("OK: every deployment reached ready, stopped and destroyed; no 429")
    return 0


def main() -> None:
    """Parse arguments, run, exit with the status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=50)
    parser.add_argument("--speed", type=float, default=60.0, help="time compression factor K")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--boot",
        default="10,60,90",
        help="simulated seconds after create: loading, running, app ready (default 10,60,90)",
    )
    parser.add_argument(
        "--unpaced",
        action="store_true",
        help="the client does not pace its calls (to see the benchmark catch 429s)",
    )
    parser.add_argument("--limit", type=float, default=300.0, help="hard wall-clock limit, s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
