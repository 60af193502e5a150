"""``/templates`` ack latency over signed HTTP, beside a bare Bolt app that only acks.

Modes: *sequential* (one request at a time), *concurrent* (``--clients`` connections sending
back to back: a saturation test, where latency ≈ clients / throughput) and *paced* (the same
clients sending at ``--rate`` requests per second in all, as Slack's traffic arrives).

Both apps run on the same waitress set-up (16 threads), in the same run, against the same fake
Slack Web API. The load comes from a separate process (asyncio + httpx, so the client does not
share the servers' GIL): sequential requests, then ``--clients`` concurrent connections. The
two apps are measured in alternating rounds so that machine noise hits both alike. Prints
p50/p99 in milliseconds and the ratio bot/bare.

Run: ``python -m benchmarks.ack_latency [--requests 400] [--clients 20] [--rounds 3]``.

``--deploy-load`` measures something else: ``/templates`` ack latency (sequential, signed, over
HTTP) on the bot renting from a Vast.ai simulator, first with Vast.ai idle, then with 16
**Deploy** clicks in flight while the simulator answers offer searches only after 10 s
(``Fault.SLOW``); it prints p50/p99 of each, their ratio, and every answer that was not 200
(before long work left the listener pool, the clicks held Bolt's 16 listener threads and
``/templates`` got 404 after 3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.runtime import build_runtime
from bot.server import BackgroundServer, make_wsgi_app
from bot.simulator import Fault, VastSimulator
from bot.vast.client import VastClient
from tests.fakes.slack_api import FakeSlack
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, make_settings, sign


def _command_body(n: int) -> str:
    return urlencode(
        {
            "team_id": "T0GPU0001",
            "channel_id": "C0DEPLOYS1",
            "user_id": "U0ALICE01",
            "command": "/templates",
            "text": "",
            "response_url": "http://127.0.0.1:9/response",
            "trigger_id": f"{n}.1.x",
        }
    )


def _bare_app(fake: FakeSlack) -> Any:
    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=fake.api_url), signing_secret=SIGNING_SECRET
    )

    @app.command("/templates")
    def only_ack(ack: Ack) -> None:
        ack()

    return make_wsgi_app(app, lambda: {"ok": True})


# -- load generator (runs in its own process) ----------------------------------------------


async def _one(client: httpx.AsyncClient, n: int) -> float:
    body = _command_body(n)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    started = time.perf_counter()
    response = await client.post("/slack/events", content=body, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"unexpected status {response.status_code}")
    return elapsed * 1000


async def _load(url: str, requests: int, clients: int, rate: float) -> dict[str, list[float]]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        for n in range(20):  # warm-up
            await _one(client, n)
        sequential = [await _one(client, n) for n in range(requests)]
        per_client = max(1, requests // clients)

        async def worker(count: int) -> list[float]:
            return [await _one(client, n) for n in range(count)]

        await asyncio.gather(*(worker(3) for _ in range(clients)))  # open every connection
        batches = await asyncio.gather(*(worker(per_client) for _ in range(clients)))

        async def paced_worker(offset: float) -> list[float]:
            # Open loop: each client sends at rate/clients per second, whatever the latency.
            interval = clients / rate
            start = time.perf_counter() + offset
            timings = []
            for n in range(per_client):
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                timings.append(await _one(client, n))
            return timings

        paced = await asyncio.gather(*(paced_worker(i / rate) for i in range(clients)))
    return {
        "sequential": sequential,
        "concurrent": [ms for batch in batches for ms in batch],
        "paced": [ms for batch in paced for ms in batch],
    }


def _client_main(url: str, requests: int, clients: int, rate: float) -> None:
    print(json.dumps(asyncio.run(_load(url, requests, clients, rate))))


def measure(url: str, requests: int, clients: int, rate: float) -> dict[str, list[float]]:
    """Run the load generator in a subprocess against ``url``; milliseconds per request."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ack_latency", "--client", url]
        + ["--requests", str(requests), "--clients", str(clients), "--rate", str(rate)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    data: dict[str, list[float]] = json.loads(result.stdout)
    return data


# -- /templates while Deploy clicks wait for a slow Vast.ai -----------------------------------

DEPLOY_CLICKS = 16
SLOW_SEARCH_SECONDS = 10.0


def _deploy_click_body(n: int, slug: str, response_url: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": f"U0USER{n:04d}", "team_id": "T0GPU0001"},
        "team": {"id": "T0GPU0001", "domain": "gpu-team"},
        "api_app_id": "A0GPUBOT01",
        "trigger_id": f"{n}.1.deploy",
        "container": {
            "type": "message",
            "message_ts": "1732900000.000100",
            "channel_id": "C0DEPLOYS1",
            "is_ephemeral": True,
        },
        "channel": {"id": "C0DEPLOYS1"},
        "response_url": response_url,
        "actions": [
            {"type": "button", "action_id": "deploy_template", "value": slug, "block_id": "b1"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def _templates_timings(
    http: httpx.Client, count: int, seconds: float | None = None
) -> tuple[list[float], list[int]]:
    """Sequential signed ``/templates``: milliseconds of the 200s and the other statuses
    (``count`` requests, or as many as fit in ``seconds``)."""
    timings: list[float] = []
    others: list[int] = []
    deadline = time.monotonic() + seconds if seconds is not None else None
    n = 0
    while (deadline is None and n < count) or (
        deadline is not None and time.monotonic() < deadline
    ):
        n += 1
        body = _command_body(n)
        started = time.perf_counter()
        response = http.post(
            "/slack/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
        )
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code == 200:
            timings.append(elapsed)
        else:
            others.append(response.status_code)
            timings.append(elapsed)
    return timings, others


def deploy_load(requests: int, seconds: float) -> None:
    """``--deploy-load``: ``/templates`` ack p50/p99 with Vast.ai idle, then with
    :data:`DEPLOY_CLICKS` Deploy clicks in flight against searches that take
    :data:`SLOW_SEARCH_SECONDS`."""
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        simulator = VastSimulator()
        url = simulator.start()
        settings = make_settings(
            fake,
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
            vast_api_url=url,
            status_poll_seconds=3600,
        )
        runtime = build_runtime(settings, vast=VastClient(url, None))
        server = BackgroundServer(runtime.wsgi_app, threads=16).start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                _templates_timings(http, 20)  # warm-up
                idle, idle_other = _templates_timings(http, requests)
                simulator.inject(
                    Fault.SLOW, endpoint="search", seconds=SLOW_SEARCH_SECONDS, times=None
                )
                slugs = ["vllm", "jupyter-lab", "comfy-ui", "stable-diffusion"]
                for n in range(DEPLOY_CLICKS):
                    body = _deploy_click_body(n, slugs[n % 4], fake.response_url(f"d{n}"))
                    answer = http.post(
                        "/slack/events",
                        content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
                    )
                    if answer.status_code != 200:
                        print(f"Deploy click {n}: HTTP {answer.status_code}")
                time.sleep(0.5)  # every click is now waiting for its search
                loaded, loaded_other = _templates_timings(http, requests, seconds)
                in_flight = len(fake.calls_to("views.open")) - len(
                    [c for c in fake.calls_to("views.update") if "option_groups" in str(c.args)]
                )
        finally:
            logging.getLogger("bot").setLevel(logging.CRITICAL)  # clicks cut short by the stop
            server.stop()
            runtime.close()
            simulator.stop()
    print(
        f"/templates ack latency (ms), sequential: {len(idle)} requests with Vast.ai idle, then "
        f"{len(loaded)} in {seconds:g} s with {DEPLOY_CLICKS} Deploy clicks in flight "
        f"(offer searches answered after {SLOW_SEARCH_SECONDS:g} s)"
    )
    print(f"{'vast.ai':<10}{'p50':>9}{'p99':>9}{'max':>9}  not 200")
    for name, values, other in (("idle", idle, idle_other), ("slow", loaded, loaded_other)):
        print(
            f"{name:<10}{statistics.median(values):9.2f}{_pct(values, 0.99):9.2f}"
            f"{max(values):9.2f}  {len(other)} {sorted(set(other)) or ''}"
        )
    print(
        f"ratio slow/idle: p50 {statistics.median(loaded) / statistics.median(idle):.2f}x, "
        f"p99 {_pct(loaded, 0.99) / _pct(idle, 0.99):.2f}x; pickers still without offers at "
        f"the end: {in_flight} of {DEPLOY_CLICKS}"
    )


# -- report ----------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="paced mode: requests/second")
    parser.add_argument("--client", help=argparse.SUPPRESS)  # internal: be the load generator
    parser.add_argument(
        "--deploy-load",
        action="store_true",
        help=f"/templates with {DEPLOY_CLICKS} Deploy clicks in flight on a slow Vast.ai",
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="--deploy-load: seconds measured under load"
    )
    args = parser.parse_args(argv)
    if args.deploy_load:
        deploy_load(args.requests, args.seconds)
        return
    if args.client:
        _client_main(args.client, args.requests, args.clients, args.rate)
        return
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # saturation is the point
    results: dict[str, dict[str, list[float]]] = {
        name: {"sequential": [], "concurrent": [], "paced": []} for name in ("bot", "bare")
    }
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        database_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        runtime = build_runtime(
            make_settings(fake, database_url=database_url, status_poll_seconds=3600)
        )
        servers = {
            "bot": BackgroundServer(runtime.wsgi_app, threads=16).start(),
            "bare": BackgroundServer(_bare_app(fake), threads=16).start(),
        }
        try:
            for _ in range(args.rounds):
                for name, server in servers.items():
                    for mode, values in measure(
                        server.url, args.requests, args.clients, args.rate
                    ).items():
                        results[name][mode].extend(values)
        finally:
            for server in servers.values():
                server.stop()
            runtime.close()
    print(
        f"/templates ack latency (ms): {args.rounds} rounds × {args.requests} requests; "
        f"sequential; {args.clients} concurrent clients as fast as they can (concurrent); "
        f"{args.clients} clients at {args.rate:g} requests/s in all (paced)"
    )
    print(f"{'mode':<12}{'app':<6}{'p50':>8}{'p99':>8}{'mean':>8}")
    for mode in ("sequential", "concurrent", "paced"):
        for name in ("bot", "bare"):
            values = results[name][mode]
            print(
                f"{mode:<12}{name:<6}{statistics.median(values):8.2f}{_pct(values, 0.99):8.2f}"
                f"{statistics.mean(values):8.2f}"
            )
        ratio_p50 = statistics.median(results["bot"][mode]) / statistics.median(
            results["bare"][mode]
        )
        ratio_p99 = _pct(results["bot"][mode], 0.99) / _pct(results["bare"][mode], 0.99)
        print(f"{mode:<12}ratio bot/bare: p50 {ratio_p50:.2f}x, p99 {ratio_p99:.2f}x")


if __name__ == "__main__":
    main()
