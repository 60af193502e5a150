"""``/templates`` ack latency over signed HTTP, beside a bare Bolt app that only acks.

Both apps run on the same waitress server setup, in the same run, against the same fake Slack
Web API. Prints p50/p99 in milliseconds, sequential and with N concurrent clients, and the ratio
bot/bare. Run: ``python -m benchmarks.ack_latency [--requests 400] [--clients 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.runtime import build_runtime
from bot.server import BackgroundServer, make_wsgi_app
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


def _one(client: httpx.Client, n: int) -> float:
    body = _command_body(n)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    started = time.perf_counter()
    response = client.post("/slack/events", content=body, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"unexpected status {response.status_code}")
    return elapsed * 1000


def measure(url: str, requests: int, clients: int) -> dict[str, list[float]]:
    """``{"sequential": [ms...], "concurrent": [ms...]}`` for ``url``."""
    with httpx.Client(base_url=url) as client:
        for n in range(20):  # warm-up
            _one(client, n)
        sequential = [_one(client, n) for n in range(requests)]
    concurrent: list[float] = []
    lock = threading.Lock()
    per_client = max(1, requests // clients)

    def worker() -> None:
        with httpx.Client(base_url=url) as client:
            own = [_one(client, n) for n in range(per_client)]
        with lock:
            concurrent.extend(own)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sequential": sequential, "concurrent": concurrent}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        database_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        runtime = build_runtime(
            make_settings(fake, database_url=database_url, status_poll_seconds=3600)
        )
        servers: dict[str, Callable[[], BackgroundServer]] = {
            "bot": lambda: BackgroundServer(runtime.wsgi_app, threads=16),
            "bare": lambda: BackgroundServer(_bare_app(fake), threads=16),
        }
        results: dict[str, dict[str, list[float]]] = {}
        for name, make in servers.items():
            server = make().start()
            try:
                results[name] = measure(server.url, args.requests, args.clients)
            finally:
                server.stop()
        runtime.close()
    print(
        f"/templates ack latency, {args.requests} requests, {args.clients} concurrent clients (ms)"
    )
    print(f"{'mode':<12}{'app':<6}{'p50':>8}{'p99':>8}{'mean':>8}")
    for mode in ("sequential", "concurrent"):
        for name in ("bot", "bare"):
            values = results[name][mode]
            print(
                f"{mode:<12}{name:<6}{statistics.median(values):8.2f}{_pct(values, 0.99):8.2f}"
                f"{statistics.mean(values):8.2f}"
            )
        bot_p99 = _pct(results["bot"][mode], 0.99)
        bare_p99 = _pct(results["bare"][mode], 0.99)
        bot_p50 = statistics.median(results["bot"][mode])
        bare_p50 = statistics.median(results["bare"][mode])
        print(
            f"{mode:<12}ratio bot/bare: p50 {bot_p50 / bare_p50:.2f}x,"
            f" p99 {bot_p99 / bare_p99:.2f}x"
        )


if __name__ == "__main__":
    main()
