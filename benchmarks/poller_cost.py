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
import math
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
from bot.app import make_web_client
from bot.messages import SlackMessages
from bot.notifier import Notifier
from bot.services.actions import ManageService
from bot.services.lifetimes import LifetimePolicy, LifetimeService
from bot.services.poller import StatusPoller
from bot.simulator import Timeline, VastSimulator
from bot.vast import VastClient
from catalog import load_catalog
from storage import Deployment
from tests.fakes.slack_api import FakeSlack
from tests.fixtures.slack import make_settings

READY_SHARE = 0.85
PROVISIONING_SHARE = 0.10
TEMPLATE = "jupyter-lab"


# -- the simulator process -------------------------------------------------------------------


def _simulator_main(n: int, conn: Connection) -> None:
    """Child process: start a simulator with ``n`` instances, send back the URL and each
    instance's (id, kind, status_msg), then serve until told to stop."""
    sim = VastSimulator(timeline=Timeline.instant(), frozen_clock=True, seed=11)
    url = sim.start()
    client = VastClient(url)
    n_ready = round(n * READY_SHARE)
    n_prov = round(n * PROVISIONING_SHARE)
    rows: list[tuple[int, str, str | None]] = []
    for i in range(n):
        offer = sim.add_offer(id=60_000_000 + i)
        # No ``-p`` ports: 10,000 instances would otherwise open 10,000 app sockets.
        instance_id = sim.create_instance_directly(
            offer, image="quay.io/jupyter/pytorch-notebook:cuda11-latest", label=f"bench-{i}"
        )
        kind = "ready" if i < n_ready else "provisioning" if i < n_ready + n_prov else "stopped"
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
                "stopped_at": now if kind == "stopped" else None,
                "ready_seconds": 0.0,
                "stopped_seconds": 0.0,
                "last_state_change_at": now,
                "version": 1,
            }
        )
    return rows


def measure(
    n: int, ticks: int, fake: FakeSlack, folder: Path, *, rules: bool = False
) -> dict[str, Any]:
    """Set up ``n`` deployments and return the per-tick figures (``rules``: with the lifetime
    and idle rules)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_simulator_main, args=(n, child), daemon=True)
    process.start()
    url, instances = parent.recv()
    try:
        database_url = f"sqlite:///{folder / f'poller-{n}-{rules}.db'}"
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
        vast = VastClient(url, None, timeout=30)
        messages = SlackMessages(Notifier(make_web_client(settings)))
        lifetimes = None
        if rules:
            manage = ManageService(
                session_factory=sf,
                vast=vast,
                messages=messages,
                catalog_get=catalog.get,
                admins=frozenset(),
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
        poller = StatusPoller(
            session_factory=sf,
            vast=vast,
            messages=messages,
            catalog_get=catalog.get,
            interval_seconds=settings.status_poll_seconds,
            timeout_minutes=settings.deploy_timeout_minutes,
            clock=lambda: now,
            lifetimes=lifetimes,
        )

        warm = poller.tick()
        slack_before = len(fake.calls)
        walls, cpus, requests, slack = [], [], [], []
        for _ in range(ticks):
            calls = len(fake.calls)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            report = poller.tick()
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
            requests.append(report.vast_requests)
            slack.append(len(fake.calls) - calls)
            assert report.changes == 0, report
        list0 = time.perf_counter()
        vast.list_instances()
        list_seconds = time.perf_counter() - list0

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
            "pages": math.ceil(n / 25),
            "requests": statistics.median(requests),
            "requests_max": max(requests),
            "slack": max(slack),
            "slack_total": len(fake.calls) - slack_before,
            "warm_slack": warm.slack_calls,
            "wall": statistics.median(walls),
            "cpu": statistics.median(cpus),
            "list_share": min(1.0, list_seconds / statistics.median(walls)),
            "peak_mb": peak / 2**20,
        }
    finally:
        parent.send("stop")
        process.join(timeout=30)


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
        runtime = build_runtime(settings, vast=VastClient(sim.base_url, None))
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
                    label=f"slackbot:dep-{dep.id}",
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


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--latency", type=int, default=10, help="samples; 0 skips it")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    header = (
        f"{'deployments':>11} {'rules':>5} {'Vast req/tick':>13} {'pages':>6} {'req/page':>8} "
        f"{'Slack/tick':>10} {'wall ms':>9} {'CPU ms':>8} {'list %':>6} {'peak MB':>8}"
    )
    print("Status poller: cost per tick when nothing changed (median of measured ticks)")
    print(header)
    print("-" * len(header))
    with FakeSlack() as fake, tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            ticks = args.ticks if n < 10_000 else max(3, args.ticks // 2)
            cpu: dict[bool, float] = {}
            for rules in (False, True):
                r = measure(n, ticks, fake, Path(tmp), rules=rules)
                cpu[rules] = r["cpu"]
                per_page = r["requests"] / r["pages"]
                print(
                    f"{r['n']:>11,} {'on' if rules else 'off':>5} {r['requests']:>13g} "
                    f"{r['pages']:>6} {per_page:>8.2f} {r['slack']:>10} "
                    f"{r['wall'] * 1000:>9.1f} {r['cpu'] * 1000:>8.1f} "
                    f"{r['list_share'] * 100:>5.0f}% {r['peak_mb']:>8.2f}",
                    flush=True,
                )
                if r["slack_total"] or r["warm_slack"]:
                    print(f"  !! Slack calls on ticks where nothing changed: {r['slack_total']}")
            print(f"{'':>11} CPU on/off: {cpu[True] / cpu[False]:.3f}", flush=True)
    print(
        "Vast req/tick = HTTP requests to Vast.ai per tick (the v1 list: 1 per 25 instances); "
        "Slack/tick = Slack Web API calls; list % = share of the tick spent reading the list."
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
