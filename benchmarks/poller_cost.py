"""Cost of one status-poller tick against the number of deployments it follows.

For N = 10, 100, 1,000, 10,000 followed deployments (85 % ready, 10 % provisioning and stuck in
``loading``, 5 % stopped) this starts the Vast.ai simulator in a **separate process** (so its
CPU and memory are not counted as the poller's), creates N instances there, bulk-inserts N
matching rows into a fresh SQLite database, and runs the real :class:`StatusPoller` against the
simulator and the fake Slack Web API with a fixed clock. Nothing changes between ticks, which is
the poller's steady state; the first tick is a warm-up (it must not call Slack either).

Per tick it prints: Vast.ai HTTP requests (the paginated v1 list: one request per 25
instances, nothing per deployment), Slack calls (must be 0), wall time (median of the measured
ticks), the poller process's CPU time, the share of wall time spent waiting for the instance list,
and the tracemalloc peak of one separate tick (tracemalloc slows a tick, so it is not timed).

The simulator renders only the instances of the page it serves, but, like Vast.ai's
``show_instances`` answer, every page also carries ``label_counts`` over all N instances; since
each deployment's label is unique, a page is O(N) and a tick O(N²/25). That dominates at
10,000 (and would on Vast.ai, if its pages carry the same map).

Then (``--latency N``, default 10) it runs the whole bot with its scheduler and
``STATUS_POLL_SECONDS=1`` against a simulator on a real clock, deploys N times (staggered), and
prints the median time from the simulator marking an instance ``running`` (app answering at
once) to the fake Slack receiving the thread notification.

Each size is measured twice, with the lifetime and idle rules off and on (``rules`` column):
with them on, every row has an end time 8 hours ahead and the ready ones an idle stretch that
began a minute ago (the simulator reports ``gpu_util`` 0.02), so each tick judges every ready
deployment and nothing is due. The ``on/off`` CPU ratio is the rules' cost.

Run: ``python -m benchmarks.poller_cost [--sizes 10,100,1000,10000] [--ticks 5] [--latency 10]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
import tracemalloc
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy import insert

import storage
from bot.playground.slack_api import FakeSlack
from bot.services.accounts import VastAccounts
from bot.services.actions import ManageService
from bot.services.admins import StaticAdmins
from bot.services.deploy import label_for
from bot.services.heartbeat import HeartbeatService
from bot.services.intents import IntentReconciler
from bot.services.lifetimes import LifetimePolicy, LifetimeService
from bot.services.poller import StatusPoller
from bot.services.states import WATCHED_STATUSES
from bot.simulator import Timeline, VastSimulator
from bot.slack.app import make_web_client
from bot.slack.messages import SlackMessages
from bot.slack.notifier import Notifier
from bot.vast import VastClient
from bot.vast.pacing import DEFAULT_MIN_INTERVALS, NO_PACING, Pacers
from catalog import load_catalog
from storage import Deployment
from tests.fixtures.slack import make_settings

READY_SHARE = 0.85
PROVISIONING_SHARE = 0.10
TEMPLATE = "jupyter-lab"


# -- the simulator process -------------------------------------------------------------------


def _simulator_main(n: int, conn: Connection, transition: int | None = None) -> None:
    """Child process: start a simulator with ``n`` instances, send back the URL and each
    instance's (id, kind, status_msg), then serve until told to stop. ``transition``: how many
    are provisioning (None: :data:`PROVISIONING_SHARE`); of the rest 90 % are ready."""
    sim = VastSimulator(timeline=Timeline.instant(), frozen_clock=True, seed=11)
    url = sim.start()
    client = VastClient(url, min_intervals=NO_PACING)
    if transition is None:
        n_ready = round(n * READY_SHARE)
        n_prov = round(n * PROVISIONING_SHARE)
    else:
        n_prov = transition
        n_ready = round((n - transition) * 0.9)
    rows: list[tuple[int, str, str | None]] = []
    for i in range(n):
        offer = sim.add_offer(id=60_000_000 + i)
        # No ``-p`` ports: 10,000 instances would otherwise open 10,000 app sockets.
        instance_id = sim.create_instance_directly(
            offer, image="quay.io/jupyter/pytorch-notebook:cuda11-latest", label=f"bench-{i}"
        )
        # Provisioning ones spread over the id range, as they are on a real account.
        spread = n_prov and i % max(1, n // n_prov) == 0 and i // max(1, n // n_prov) < n_prov
        if transition is None:
            kind = "ready" if i < n_ready else "provisioning" if i < n_ready + n_prov else "stopped"
        else:
            kind = "provisioning" if spread else "ready" if i % 10 else "stopped"
        if kind == "provisioning":
            sim.stuck_loading(instance_id)
        elif kind == "stopped":
            client.stop_instance(instance_id)
        rows.append((instance_id, kind, None))
    current = sim.instances
    rows = [(i, kind, current[i]["status_msg"]) for i, kind, _ in rows]
    client.close()
    conn.send((url, rows))
    conn.recv()  # wait for "stop"
    sim.stop()


# -- the poller process ------------------------------------------------------------------------


def _rows(
    instances: list[tuple[int, str, str | None]], name: str, now: Any, *, rules: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for n, (instance_id, kind, status_msg) in enumerate(instances):
        ready = kind != "provisioning"
        lifetime = (
            {
                "lifetime_hours": 8.0,
                "lifetime_started_at": now - timedelta(minutes=5),
                "ends_at": now + timedelta(hours=8),
                "idle_since": now - timedelta(minutes=1) if kind == "ready" else None,
            }
            if rules
            else {}
        )
        rows.append(
            lifetime
            | {
                "team_id": "T0GPU0001",
                "user_id": "U0ALICE01",
                "channel_id": "C0DEPLOYS1",
                "message_channel": "C0DEPLOYS1",
                "message_ts": f"1732900000.{n:06d}",
                "template_slug": TEMPLATE,
                "template_name": name,
                "offer_id": 60_000_000 + n,
                "instance_id": instance_id,
                "gpu_name": "RTX 4090",
                "num_gpus": 1,
                "gpu_ram_gb": 24.0,
                "dph_total": 0.4,
                "disk_gb": 20.0,
                "status": kind,
                "status_msg": status_msg,
                "request_key": f"bench-{n}",
                "simulated": True,
                "web_password": None,
                "public_ip": "127.0.0.1" if ready else None,
                "created_at": now - timedelta(minutes=5),
                "updated_at": now,
                "provisioning_at": now - timedelta(minutes=5),
                "ready_at": now - timedelta(minutes=4) if ready else None,
                "ready_notified_at": now - timedelta(minutes=4) if ready else None,
                "stopped_at": now - timedelta(hours=1) if kind == "stopped" else None,
                "ready_seconds": 0.0,
                "stopped_seconds": 0.0,
                # At rest for an hour; provisioning ones are in transition.
                "last_state_change_at": now if kind == "provisioning" else now - timedelta(hours=1),
                "version": 1,
            }
        )
    return rows


class VirtualTime:
    """The pacers' clock in the benchmark: a sleep moves it instead of waiting, so a tick is
    paced as in production (its budget and the waits it would make are real) without taking
    that long; ``advance`` moves it by a poll interval between ticks."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def measure(
    n: int,
    ticks: int,
    fake: FakeSlack,
    folder: Path,
    *,
    rules: bool = False,
    transition: int | None = None,
    sweep_seconds: float = 120.0,
) -> dict[str, Any]:
    """Set up ``n`` deployments (``transition`` of them provisioning) and return the per-tick
    figures (``rules``: with the lifetime and idle rules), and how many ticks the sweep needs
    for a full pass with ``STEADY_SWEEP_SECONDS=sweep_seconds``."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_simulator_main, args=(n, child, transition), daemon=True)
    process.start()
    url, instances = parent.recv()
    try:
        database_url = f"sqlite:///{folder / f'poller-{n}-{rules}-{transition}-{sweep_seconds}.db'}"
        settings = make_settings(
            fake, database_url=database_url, vast_api_url=url, status_poll_seconds=15
        )
        engine = storage.make_engine(database_url)
        storage.migrate(engine)
        sf = storage.make_session_factory(engine)
        catalog = load_catalog()
        template = catalog.get(TEMPLATE)
        assert template is not None
        now = storage.utcnow()
        with storage.write_transaction(sf) as session:
            session.execute(insert(Deployment), _rows(instances, template.name, now, rules=rules))
        clock = VirtualTime()
        pacers = Pacers.build(DEFAULT_MIN_INTERVALS, clock=clock, sleep=clock.sleep)
        vast = VastClient(url, None, timeout=30, pacers=pacers)
        messages = SlackMessages(Notifier(make_web_client(settings)))
        lifetimes = None
        if rules:
            manage = ManageService(
                session_factory=sf,
                accounts=VastAccounts.single(vast, simulated=True),
                messages=messages,
                catalog_get=catalog.get,
                admins=StaticAdmins(frozenset()),
                clock=lambda: now,
            )
            lifetimes = LifetimeService(
                session_factory=sf,
                messages=messages,
                manage=manage,
                catalog_get=catalog.get,
                policy=LifetimePolicy.from_settings(settings),
                clock=lambda: now,
            )
        # As production wires it: the desired-state reconciler and the heartbeat run every tick.
        heartbeat = HeartbeatService(
            session_factory=sf,
            engine=engine,
            messages=messages,
            recipients=lambda: [],
            interval_seconds=settings.status_poll_seconds,
            clock=lambda: now,
        )
        poller = StatusPoller(
            installation_id=storage.installation_id(sf),
            session_factory=sf,
            accounts=VastAccounts.single(vast, simulated=True),
            messages=messages,
            catalog_get=catalog.get,
            interval_seconds=settings.status_poll_seconds,
            timeout_minutes=settings.deploy_timeout_minutes,
            clock=lambda: now,
            lifetimes=lifetimes,
            sweep_seconds=sweep_seconds,
            intents=IntentReconciler(
                session_factory=sf,
                accounts=VastAccounts.single(vast, simulated=True),
                messages=messages,
                catalog_get=catalog.get,
                interval_seconds=settings.status_poll_seconds,
                clock=lambda: now,
            ),
            on_pass=heartbeat.on_pass,
        )

        # Ticks until the sweep's first full pass: every deployment at rest is read by then.
        pass_ticks = 0
        warm_slack = 0
        while True:
            report = poller.tick()
            clock.advance(poller.interval_seconds)
            pass_ticks += 1
            warm_slack += report.slack_calls
            if report.sweep_passes or pass_ticks > 10_000:
                break
        unread = [d for d in poller_followed(sf) if poller.last_read_tick(d) is None]
        slack_before = len(fake.calls)
        walls, cpus, requests, slack, waits = [], [], [], [], []
        for _ in range(ticks):
            calls = len(fake.calls)
            slept = clock.slept
            wall0, cpu0 = time.perf_counter(), time.process_time()
            report = poller.tick()
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
            clock.advance(poller.interval_seconds)
            waits.append(clock.slept - slept)
            requests.append(report.vast_requests)
            slack.append(len(fake.calls) - calls)
            assert report.changes == 0, report

        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        poller.tick()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()

        poller.close()
        vast.close()
        engine.dispose()
        return {
            "n": n,
            "rules": rules,
            "transition": transition if transition is not None else round(n * 0.1),
            "sweep_seconds": sweep_seconds,
            "budget": poller.list_budget(),
            "requests": statistics.median(requests),
            "requests_max": max(requests),
            "slack": max(slack),
            "slack_total": len(fake.calls) - slack_before,
            "warm_slack": warm_slack,
            "wall": statistics.median(walls),
            "cpu": statistics.median(cpus),
            "wait": statistics.median(waits),
            "peak_mb": peak / 2**20,
            "pass_ticks": pass_ticks,
            "pass_seconds": pass_ticks * poller.interval_seconds,
            "unread": len(unread),
        }
    finally:
        parent.send("stop")
        process.join(timeout=30)


def poller_followed(sf: storage.SessionFactory) -> list[int]:
    """Ids of the deployments the poller follows."""
    return [d.id for d in storage.list_by_status(sf, WATCHED_STATUSES) if d.instance_id]


def ready_latency(samples: int, fake: FakeSlack, folder: Path) -> list[float]:
    """Seconds from "running" on the simulator to the ready notification in Slack, per sample
    (poll interval 1 s, the real scheduler)."""
    from bot.runtime import build_runtime
    from bot.vast import port_env

    running_after = 2.0
    timeline = Timeline(0.0, 0.5, running_after, running_after)
    with VastSimulator(timeline=timeline) as sim:
        assert sim.base_url is not None
        settings = make_settings(
            fake,
            database_url=f"sqlite:///{folder / 'latency.db'}",
            vast_api_url=sim.base_url,
            status_poll_seconds=1,
        )
        runtime = build_runtime(
            settings, vast=VastClient(sim.base_url, None, min_intervals=NO_PACING)
        )
        services = runtime.services
        runtime.start_background()
        template = services.catalog.get(TEMPLATE)
        assert template is not None
        sf = services.session_factory
        running_at: dict[str, float] = {}
        try:
            for n in range(samples):
                offer = next(o for o in sim.offers if o["rentable"] and o["direct_port_count"])
                dep, _ = storage.create_deployment(
                    sf,
                    request_key=f"lat-{n}",
                    team_id="T0GPU0001",
                    user_id="U0ALICE01",
                    channel_id="C0DEPLOYS1",
                    template_slug=template.slug,
                    template_name=template.name,
                    offer_id=offer["id"],
                    gpu_name=offer["gpu_name"],
                    num_gpus=offer["num_gpus"],
                    gpu_ram_gb=offer["gpu_ram"] / 1024,
                    dph_total=offer["dph_total"],
                    disk_gb=template.disk_gb,
                    simulated=True,
                )
                posted = services.messages.post_status(dep, template)
                assert posted is not None
                storage.set_message(sf, dep.id, posted.channel, posted.ts)
                created = time.monotonic()
                instance_id = services.vast.create_instance(
                    offer["id"],
                    image=template.docker_image,
                    env=port_env(template.ports),
                    disk_gb=template.disk_gb,
                    label=label_for(services.deploy.installation_id, dep.id),
                )
                storage.set_instance(sf, dep.id, instance_id)
                running_at[posted.ts] = created + running_after
                time.sleep(0.37)
            deadline = time.monotonic() + 30 + samples
            while time.monotonic() < deadline:
                replies = [c for c in fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]
                if len({c.args["thread_ts"] for c in replies} & running_at.keys()) == samples:
                    break
                time.sleep(0.05)
            first: dict[str, float] = {}
            for call in fake.calls_to("chat.postMessage"):
                ts = call.args.get("thread_ts")
                if ts in running_at and ts not in first:
                    first[ts] = call.at - running_at[ts]
            return sorted(first.values())
        finally:
            runtime.close()


SCENARIOS = (
    # (deployments, in transition, STEADY_SWEEP_SECONDS): the target figures, and the same
    # loads with a sweep long enough to need one page a tick.
    (1_000, 0, 120.0),
    (1_000, 0, 300.0),
    (1_000, 100, 120.0),
    (10_000, 100, 120.0),
    (10_000, 100, 6_000.0),
)


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenarios",
        default=None,
        help="deployments:in-transition:sweep-seconds,... (default: the built-in list)",
    )
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--rules", choices=("off", "on", "both"), default="both")
    parser.add_argument("--latency", type=int, default=10, help="samples; 0 skips it")
    args = parser.parse_args()
    scenarios: tuple[tuple[int, int, float], ...] = SCENARIOS
    if args.scenarios:
        scenarios = tuple(
            (int(a), int(b), float(c))
            for a, b, c in (part.split(":") for part in args.scenarios.split(","))
        )
    rule_modes = {"off": (False,), "on": (True,), "both": (False, True)}[args.rules]
    header = (
        f"{'deploys':>7} {'moving':>6} {'sweep s':>7} {'rules':>5} {'list/tick':>9} "
        f"{'max':>4} {'budget':>6} {'Slack':>5} {'wall ms':>8} {'CPU ms':>7} {'pace s':>6} "
        f"{'peak MB':>7} {'pass':>10}"
    )
    print("Status poller: cost per tick when nothing changed (median of measured ticks)")
    print(header)
    print("-" * len(header))
    with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
        for n, moving, sweep in scenarios:
            ticks = args.ticks if n < 10_000 else max(3, args.ticks // 2)
            cpu: dict[bool, float] = {}
            for rules in rule_modes:
                r = measure(
                    n, ticks, fake, Path(tmp), rules=rules, transition=moving, sweep_seconds=sweep
                )
                cpu[rules] = r["cpu"]
                print(
                    f"{r['n']:>7,} {r['transition']:>6,} {sweep:>7g} {'on' if rules else 'off':>5} "
                    f"{r['requests']:>9g} {r['requests_max']:>4} {r['budget']:>6} "
                    f"{r['slack']:>5} {r['wall'] * 1000:>8.1f} {r['cpu'] * 1000:>7.1f} "
                    f"{r['wait']:>6.1f} {r['peak_mb']:>7.2f} "
                    f"{r['pass_ticks']:>3} = {r['pass_seconds']:>4.0f}s",
                    flush=True,
                )
                if r["slack_total"] or r["warm_slack"]:
                    print(f"  !! Slack calls on ticks where nothing changed: {r['slack_total']}")
                if r["unread"]:
                    print(f"  !! {r['unread']} deployments not read in the first sweep pass")
            if len(cpu) == 2:
                print(f"{'':>7} CPU on/off: {cpu[True] / cpu[False]:.3f}", flush=True)
    print(
        "list/tick = v1 list requests per tick (median; max = the largest), budget = what the "
        "list pacer allows in one 15 s interval; moving = deployments in transition (read by "
        "id every tick); pace s = seconds the tick waits for the pacer (1 s per list request); "
        "pass = ticks (and seconds at STATUS_POLL_SECONDS=15) for the sweep to read every "
        "instance once."
    )
    if args.latency:
        with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
            lat = ready_latency(args.latency, fake, Path(tmp))
        if len(lat) < args.latency:
            print(f"  !! only {len(lat)} of {args.latency} notifications arrived")
        if lat:
            print(
                f"Running -> ready notification, STATUS_POLL_SECONDS=1, {len(lat)} samples: "
                f"median {statistics.median(lat):.2f} s, min {lat[0]:.2f} s, max {lat[-1]:.2f} s"
            )


if __name__ == "__main__":
    main()
