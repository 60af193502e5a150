"""Many workspaces, each on its own Vast.ai account: is every account swept within
``STEADY_SWEEP_SECONDS``, as far as its own rate limit allows?

What it measures. ``--workspaces`` W workspaces (default 20) each rent on a Vast.ai account of
their own (OAuth mode's :class:`bot.services.accounts.VastAccounts`, one API key each), with
``--instances`` N instances (default 250) at rest on it and N matching ``ready`` rows. The
Vast.ai simulator runs in a **separate process** (its CPU is not the poller's) with Vast.ai's
rate limits on, per API key; each account's client paces its own calls. The real
:class:`bot.services.poller.StatusPoller` runs on its APScheduler interval job (as in
production: one run at a time, a run that comes while one is still going is skipped) for
``--seconds`` simulated seconds. Nothing changes meanwhile, so every list request is the
rolling sweep: ``ceil(N / 25)`` pages per pass, spread over ``STEADY_SWEEP_SECONDS /
STATUS_POLL_SECONDS`` ticks.

Printed: the ticks that ran and the runs APScheduler skipped because a tick was still running,
tick length (median, max) against the poll interval, per account the simulated seconds between
two completed sweep passes (the first one counted from the start; median over accounts of
their longest, and the longest of all) against ``STEADY_SWEEP_SECONDS``, how many accounts
kept every pass within it, and the 429s the simulator refused. The least a pass can take is
its pages at the list limit (``pages × spacing``), printed too: with N=250 it is far below the
sweep, so every pass should be within it.

How time is compressed (as in ``simulated_hour``): ``--speed`` K (default 5) divides the
poll interval (15 s), the sweep (120 s), the client's pacing and the simulator's rate limits.
Not scaled: the pacer's margin (at least 50 ms real), so at K=5 list calls are 1.25 simulated
seconds apart rather than 1.1 (a budget of 12 list requests a tick, not 13), and CPU, SQLite,
HTTP and thread scheduling, which weigh K times more (a request that arrives more than the
50 ms margin late after the one before it is refused with a 429, which the client retries).

Run: ``python -m benchmarks.account_sweeps [--workspaces 20] [--instances 250] [--speed 5]
[--seconds 480]`` (about two minutes at the defaults; ``--workspaces 2 --instances 2500``:
two accounts that each need their whole list budget every tick). Only 127.0.0.1 is used; a
temporary SQLite database is removed after.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import insert

import storage
from benchmarks.poller_cost import TEMPLATE, _rows
from benchmarks.simulated_hour import FastClock
from bot.playground.slack_api import FakeSlack
from bot.services.accounts import SIMULATOR, StoredKey, VastAccount, VastAccounts
from bot.services.poller import StatusPoller, TickReport
from bot.simulator import Timeline, VastSimulator
from bot.simulator.limits import DEFAULT_RATE_LIMITS
from bot.slack.app import make_web_client
from bot.slack.messages import SlackMessages
from bot.slack.notifier import Notifier
from bot.vast import VastClient
from bot.vast.client import LIST_PAGE_SIZE
from bot.vast.pacing import DEFAULT_MIN_INTERVALS, NO_PACING
from catalog import load_catalog
from storage import Deployment
from tests.fixtures.slack import make_settings

POLL_SECONDS = 15.0
SWEEP_SECONDS = 120.0
FIRST_USER = 5000


def _key(n: int) -> str:
    return f"bench-key-{n:03d}"


def _team(n: int) -> str:
    return f"TW{n:07d}"


def _simulator_main(workspaces: int, instances: int, speed: float, conn: Connection) -> None:
    """Child process: a simulator with one account per workspace, ``instances`` running
    instances on each, Vast.ai's rate limits divided by ``speed``; sends back the URL and each
    account's ``[(instance id, kind, status_msg)]``, then serves until told to stop."""
    limits = {name: seconds / speed for name, seconds in DEFAULT_RATE_LIMITS.items()}
    sim = VastSimulator(
        accounts={_key(n): FIRST_USER + n for n in range(workspaces)},
        timeline=Timeline.instant(),
        frozen_clock=True,
        rate_limits=limits,
        credit=1e9,
        seed=11,
    )
    url = sim.start()
    made: dict[int, list[int]] = {}
    for n in range(workspaces):
        made[n] = []
        for i in range(instances):
            offer = sim.add_offer(id=60_000_000 + n * instances + i)
            made[n].append(
                sim.create_instance_directly(
                    offer,
                    image="quay.io/jupyter/pytorch-notebook:cuda11-latest",
                    label=f"bench-{n}-{i}",
                    api_key=_key(n),
                )
            )
    current = sim.instances
    conn.send(
        (
            url,
            {n: [(i, "ready", current[i]["status_msg"]) for i in ids] for n, ids in made.items()},
        )
    )
    conn.recv()  # wait for "stop"
    conn.send(sim.rate_limited_count)
    sim.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, run the scheduled poller for ``args.seconds`` simulated seconds, return the
    figures."""
    k = float(args.speed)
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=_simulator_main, args=(args.workspaces, args.instances, k, child), daemon=True
    )
    process.start()
    url, made = parent.recv()
    intervals = {name: seconds / k for name, seconds in DEFAULT_MIN_INTERVALS.items()}
    ticks: list[tuple[float, TickReport]] = []
    passes: dict[str, list[float]] = defaultdict(list)
    skipped = 0
    lock = threading.Lock()
    clients: list[VastClient] = []
    try:
        with FakeSlack() as fake, tempfile.TemporaryDirectory() as folder:
            settings = make_settings(
                fake, database_url=f"sqlite:///{Path(folder) / 'sweeps.db'}", vast_api_url=url
            )
            engine = storage.make_engine(settings.database_url)
            storage.migrate(engine)
            sf = storage.make_session_factory(engine)
            catalog = load_catalog()
            template = catalog.get(TEMPLATE)
            assert template is not None
            clock = FastClock(k)
            now = clock()
            with storage.write_transaction(sf) as session:
                for n, instances in made.items():
                    rows = _rows(instances, template.name, now)
                    for i, row in enumerate(rows):
                        row.update(
                            team_id=_team(n),
                            simulated=False,
                            request_key=f"bench-{n}-{i}",
                            offer_id=60_000_000 + n * args.instances + i,
                        )
                    session.execute(insert(Deployment), rows)

            def make_client(api_key: str) -> VastClient:
                client = VastClient(url, api_key, min_intervals=intervals)
                clients.append(client)
                return client

            stored = {_team(n): StoredKey(_key(n), str(FIRST_USER + n)) for n in made}
            simulator = VastClient(url, None, min_intervals=NO_PACING)
            clients.append(simulator)
            accounts = VastAccounts(
                VastAccount(SIMULATOR, simulator, simulated=True),
                stored_key=stored.get,
                make_client=make_client,
            )
            poller = StatusPoller(
                session_factory=sf,
                accounts=accounts,
                messages=SlackMessages(Notifier(make_web_client(settings))),
                catalog_get=catalog.get,
                interval_seconds=POLL_SECONDS / k,
                timeout_minutes=settings.deploy_timeout_minutes,
                clock=clock,
                lease_name=None,
                sweep_seconds=SWEEP_SECONDS / k,
                installation_id=storage.installation_id(sf),
                allow_private_addresses=True,  # the simulator's instances are on 127.0.0.1
            )
            original_tick, original_end = poller._tick, poller.reader.end_pass

            def recorded_tick() -> TickReport:
                started = clock.elapsed()
                report = original_tick()
                with lock:
                    ticks.append((started, report))
                return report

            def recorded_end(account: VastAccount, state: Any, at: Any) -> None:
                original_end(account, state, at)
                with lock:
                    passes[account.name].append(clock.elapsed())

            poller._tick = recorded_tick  # type: ignore[method-assign]
            poller.reader.end_pass = recorded_end  # type: ignore[method-assign]

            def on_skipped(event: JobExecutionEvent) -> None:
                nonlocal skipped
                skipped += 1

            scheduler = BackgroundScheduler(timezone="UTC")
            scheduler.add_listener(on_skipped, EVENT_JOB_MAX_INSTANCES)
            poller.install(scheduler)
            started = clock.elapsed()
            scheduler.start()
            time.sleep(args.seconds / k)
            stopped = clock.elapsed()
            scheduler.shutdown(wait=True)
            poller.close()
            budget = poller.list_budget(accounts.for_team(_team(0)))
            spacing = accounts.for_team(_team(0)).client.pacers.spacing("list") * k
            for client in clients:
                client.close()
            engine.dispose()
    finally:
        parent.send("stop")
        refused = parent.recv()
        process.join(timeout=30)
    # Per account, its longest pass: between two completed passes (the first from the start),
    # or the one still going at the end when it already took longer than the sweep.
    longest: dict[str, float] = {}
    for n in made:
        ends = [at for at in passes.get(f"vast-user:{FIRST_USER + n}", []) if at <= stopped]
        marks = [started, *ends]
        closed = [b - a for a, b in zip(marks, marks[1:], strict=False)]
        trailing = stopped - marks[-1]
        longest[_team(n)] = max(
            [*closed, trailing if trailing > SWEEP_SECONDS or not closed else 0]
        )
    pages = math.ceil(args.instances / LIST_PAGE_SIZE)
    return {
        "ticks": ticks,
        "skipped": skipped,
        "passes": passes,
        "completed": {_team(n): len(passes.get(f"vast-user:{FIRST_USER + n}", [])) for n in made},
        "longest": longest,
        "refused": refused,
        "budget": budget,
        "least_pass": pages * spacing,
        "pages": pages,
    }


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspaces", type=int, default=20)
    parser.add_argument("--instances", type=int, default=250, help="per account")
    parser.add_argument("--speed", type=float, default=5.0, help="time compression factor K")
    parser.add_argument("--seconds", type=float, default=480.0, help="simulated seconds")
    args = parser.parse_args()
    k = args.speed
    r = run(args)
    ran = [report for _, report in r["ticks"] if report.ran]
    lengths = [report.seconds * k for report in ran]
    longest: dict[str, float] = r["longest"]
    within = sum(1 for seconds in longest.values() if seconds <= SWEEP_SECONDS)
    never = sum(1 for name in longest if not r["completed"].get(name))
    print(
        f"{args.workspaces} workspaces, one Vast.ai account each, {args.instances} instances "
        f"each ({r['pages']} list pages a pass); speed x{k:g}, {args.seconds:g} simulated s; "
        f"STATUS_POLL_SECONDS {POLL_SECONDS:g}, STEADY_SWEEP_SECONDS {SWEEP_SECONDS:g}"
    )
    if lengths:
        print(
            f"ticks run: {len(ran)}, runs skipped (a tick still running): {r['skipped']}; "
            f"tick length, simulated s: median {statistics.median(lengths):.1f}, max "
            f"{max(lengths):.1f} (interval {POLL_SECONDS:g})"
        )
    if longest:
        print(
            f"longest sweep pass per account, simulated s: median "
            f"{statistics.median(longest.values()):.0f}, max {max(longest.values()):.0f} "
            f"(sweep {SWEEP_SECONDS:g}; the list limit allows one in {r['least_pass']:.0f}); "
            f"passes completed per account: median "
            f"{statistics.median(r['completed'].values()):g}"
        )
    print(
        f"accounts whose every pass was within STEADY_SWEEP_SECONDS: {within} of "
        f"{args.workspaces} ({never} never finished one); list budget per tick {r['budget']}; "
        f"429s refused by the simulator: {r['refused']}"
    )


if __name__ == "__main__":
    main()
