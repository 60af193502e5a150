"""``/templates`` ack latency over signed HTTP, beside a bare Bolt app that only acks.

Modes: *sequential* (one request at a time), *concurrent* (``--clients`` connections sending
back to back: a saturation test, where latency ≈ clients / throughput) and *paced* (the same
clients sending at ``--rate`` requests per second in all, as Slack's traffic arrives).

Both apps run on the same waitress set-up (16 threads), in the same run, against the same fake
Slack Web API. The load comes from a separate process (asyncio + httpx, so the client does not
share the servers' GIL): sequential requests, then ``--clients`` concurrent connections. The
two apps are measured in alternating rounds so that machine noise hits both alike. Prints
p50/p99 in milliseconds and the ratio bot/bare.

Run: ``python -m benchmarks.ack_latency [--requests 400] [--clients 20] [--rounds 3]``
(``--scrape-metrics``, ``--deploy-load`` or ``--oauth`` for the comparisons below).

``--deploy-load`` measures something else: ``/templates`` ack latency (sequential, signed, over
HTTP) on the bot renting from a Vast.ai simulator, first with Vast.ai idle, then with 16
**Deploy** clicks in flight while the simulator answers offer searches only after 10 s
(``Fault.SLOW``); it prints p50/p99 of each, their ratio, and every answer that was not 200
(before long work left the listener pool, the clicks held Bolt's 16 listener threads and
``/templates`` got 404 after 3 s).

``--oauth`` measures the ``/templates`` ack of the bot in OAuth mode (``SLACK_CLIENT_ID`` /
``SLACK_CLIENT_SECRET`` / ``ENCRYPTION_KEY``, no ``SLACK_BOT_TOKEN``), where Bolt authorizes
every request from slack_sdk's SQLAlchemy installation store in the bot's database, against
the same bot in single-workspace mode (``SLACK_BOT_TOKEN``), in the same run, on the same
waitress set-up, load generator and rounds as above (alternating). ``--workspaces N`` (default
2) workspaces are installed first through the real OAuth redirect, as a browser does (the fake
Slack learns each workspace with ``add_workspace``, then ``GET /slack/install`` and
``GET /slack/oauth_redirect`` with the install page's state and cookie), and checked in the
store; the OAuth bot's requests go round-robin over them, and each workspace must first get
the template list (Bolt answers a workspace it cannot authorize with an empty 200). Each mode
has its own database: a SQLite file, or with ``--database-url postgresql+psycopg://…`` a fresh
PostgreSQL schema each (dropped afterwards). Prints p50/p99 per load mode and bot mode, the
ratio oauth/single, the answers that were not 200, the requests sent and the ``auth.test``
calls each bot made to Slack meanwhile.

``--scrape-metrics`` measures the cost of ``GET /metrics``: the same bot (with
:data:`SEEDED_DEPLOYMENTS` deployment rows in its SQLite database, so that the scrape's
``GROUP BY`` has rows to count) is measured in alternating rounds (which goes first alternates
too) without and with the load generator also GETting ``/metrics`` every second on its own
connection, as Prometheus would; the commands carry the fake Slack's ``response_url``, so each
is answered with the template list (checked once per round). Prints p50/p99 per load mode for
each, the ratio with/without, and how many scrapes were answered (all 200).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import json
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from cryptography.fernet import Fernet
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import InstallationStore

import storage
from benchmarks.deploy_throughput import database
from bot.playground.slack_api import CLIENT_ID, CLIENT_SECRET, TEAM_ID, FakeSlack
from bot.runtime import build_runtime
from bot.simulator import Fault, VastSimulator
from bot.slack.server import BackgroundServer, make_wsgi_app
from bot.vast.client import VastClient
from tests.fixtures.oauth import STATE_COOKIE
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, make_settings, sign

#: A ``response_url`` the bot's payload check refuses (not a Slack hook, nor the fake's
#: origin): only a fallback. Every run passes the fake Slack's own (``FakeSlack.response_url``),
#: so what is measured is the template list's ack, not a refusal's.
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response"


def _command_body(n: int, team_id: str = TEAM_ID, response_url: str = DEFAULT_RESPONSE_URL) -> str:
    return urlencode(
        {
            "team_id": team_id,
            "channel_id": "C0DEPLOYS1",
            "user_id": "U0ALICE01",
            "command": "/templates",
            "text": "",
            "response_url": response_url,
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

    return make_wsgi_app(app, lambda: {"ok": True}, signing_secret=SIGNING_SECRET)


# -- load generator (runs in its own process) ----------------------------------------------


async def _load(
    url: str,
    requests: int,
    clients: int,
    rate: float,
    teams: list[str],
    check_list: bool,
    response_url: str = DEFAULT_RESPONSE_URL,
    scrape: bool = False,
) -> dict[str, list[float]]:
    """Sequential, concurrent and paced milliseconds per request, the requests coming from the
    workspaces of ``teams`` in turn. Key ``"not_200"``: the statuses of the measured requests
    that were not 200 (their times are in the lists too); ``"sent"``: one number, the requests
    sent in all (the warm-up's included). With ``check_list``, raises RuntimeError unless one
    request from each workspace is answered with the template list (Bolt answers a workspace it
    cannot authorize with an empty 200). With ``scrape``, ``GET /metrics`` is sent every
    :data:`SCRAPE_SECONDS` on its own connection while the measured load runs, as Prometheus
    would; keys ``"scrapes"`` (statuses; -1: a 200 without ``gpubot_deployments``) and
    ``"scrape_ms"``."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    not_200: list[float] = []
    serial = itertools.count()

    async def _one(client: httpx.AsyncClient, n: int) -> float:
        body = _command_body(n, teams[next(serial) % len(teams)], response_url)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        started = time.perf_counter()
        response = await client.post("/slack/events", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            not_200.append(response.status_code)
        return elapsed * 1000

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for team_id in teams if check_list else []:
            next(serial)
            body = _command_body(0, team_id, response_url)
            answer = await client.post(
                "/slack/events",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", **sign(body)},
            )
            if answer.status_code != 200 or '"blocks"' not in answer.text:
                raise RuntimeError(f"{team_id}: HTTP {answer.status_code} {answer.text[:200]!r}")
        for n in range(20):  # warm-up
            await _one(client, n)
        if not_200:
            raise RuntimeError(f"warm-up answered {sorted(set(not_200))}")
        scrapes: list[float] = []
        scrape_ms: list[float] = []
        done = asyncio.Event()

        async def scraper() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as own:
                while not done.is_set():
                    started = time.perf_counter()
                    answer = await own.get("/metrics")
                    scrape_ms.append((time.perf_counter() - started) * 1000)
                    ok = answer.status_code == 200 and "gpubot_deployments" in answer.text
                    scrapes.append(answer.status_code if ok or answer.status_code != 200 else -1)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(done.wait(), SCRAPE_SECONDS)

        scraping = asyncio.create_task(scraper()) if scrape else None
        sequential = [await _one(client, n) for n in range(requests)]
        per_client = max(1, requests // clients)

        async def worker(count: int) -> list[float]:
            return [await _one(client, n) for n in range(count)]

        opened = len(not_200)
        await asyncio.gather(*(worker(3) for _ in range(clients)))  # open every connection
        del not_200[opened:]  # not measured
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
        done.set()
        if scraping is not None:
            await scraping
    extra = {"scrapes": scrapes, "scrape_ms": scrape_ms} if scrape else {}
    return {
        **extra,
        "sequential": sequential,
        "concurrent": [ms for batch in batches for ms in batch],
        "paced": [ms for batch in paced for ms in batch],
        "not_200": not_200,
        "sent": [float(next(serial))],
    }


def _client_main(
    url: str,
    requests: int,
    clients: int,
    rate: float,
    teams: list[str],
    check_list: bool,
    response_url: str = DEFAULT_RESPONSE_URL,
    scrape: bool = False,
) -> None:
    load = _load(url, requests, clients, rate, teams, check_list, response_url, scrape)
    print(json.dumps(asyncio.run(load)))


def measure(
    url: str,
    requests: int,
    clients: int,
    rate: float,
    teams: list[str] | None = None,
    *,
    check_list: bool = False,
    response_url: str = DEFAULT_RESPONSE_URL,
    scrape: bool = False,
) -> dict[str, list[float]]:
    """Run the load generator in a subprocess against ``url``: milliseconds per request for
    ``"sequential"``, ``"concurrent"`` and ``"paced"``, the statuses that were not 200
    (``"not_200"``) and the requests sent in all (``"sent"``, warm-up included). Requests come
    from ``teams`` in turn (default: the fake's one workspace); ``check_list``: first check that
    each workspace gets the template list (a bare app's ack has none). ``response_url``: the
    commands' (e.g. ``FakeSlack.response_url()``; the bot refuses one off Slack's origins)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.ack_latency", "--client", url]
        + ["--requests", str(requests), "--clients", str(clients), "--rate", str(rate)]
        + ["--teams", ",".join(teams or [TEAM_ID])]
        + (["--check-list"] if check_list else [])
        + ["--response-url", response_url]
        + (["--scrape"] if scrape else []),
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if result.returncode != 0:  # the client's own error, e.g. a workspace not answered
        raise RuntimeError(f"load generator failed: {result.stderr.strip().splitlines()[-1:]}")
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
    http: httpx.Client,
    count: int,
    seconds: float | None = None,
    response_url: str = DEFAULT_RESPONSE_URL,
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
        body = _command_body(n, response_url=response_url)
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
                bench_url = fake.response_url("bench")
                _templates_timings(http, 20, response_url=bench_url)  # warm-up
                idle, idle_other = _templates_timings(http, requests, response_url=bench_url)
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
                loaded, loaded_other = _templates_timings(http, requests, seconds, bench_url)
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


# -- OAuth mode (installations in the database) against single-workspace mode ----------------

OAUTH_MODES = ("single", "oauth")


def _install(fake: FakeSlack, server_url: str, team_id: str, token: str) -> None:
    """Install the app in ``team_id`` through the real OAuth redirect, as
    ``tests.fixtures.oauth.OAuthBot.install`` does: the fake Slack learns the workspace (its
    code gives ``token``), then the "Add to Slack" page (its state and state cookie) and the
    callback. Raises RuntimeError when a step does not answer 200."""
    code = fake.add_workspace(team_id, name=f"Bench {team_id}", bot_token=token)
    with httpx.Client(base_url=server_url, timeout=10) as browser:
        page = browser.get("/slack/install")
        match = re.search(r'href="([^"]*/oauth/v2/authorize[^"]*)"', page.text)
        if page.status_code != 200 or match is None:
            raise RuntimeError(f"/slack/install answered {page.status_code} without a link")
        state = parse_qs(urlsplit(html.unescape(match.group(1))).query)["state"][0]
        cookie = page.cookies.get(STATE_COOKIE)
        callback = browser.get(
            "/slack/oauth_redirect",
            params={"code": code, "state": state},
            headers={"Cookie": f"{STATE_COOKIE}={cookie}"},
        )
    if callback.status_code != 200:
        raise RuntimeError(f"/slack/oauth_redirect answered {callback.status_code} for {team_id}")


def install_workspaces(
    fake: FakeSlack, server_url: str, store: InstallationStore, count: int
) -> list[str]:
    """Install ``count`` workspaces (``T0BENCH001``…) with :func:`_install` and check that the
    installation store hands out each one's bot token; returns their team ids."""
    teams = [f"T0BENCH{n:03d}" for n in range(1, count + 1)]
    for team_id in teams:
        token = f"xoxb-bench-{team_id.lower()}-secret"
        _install(fake, server_url, team_id, token)
        installation = store.find_installation(enterprise_id=None, team_id=team_id)
        if installation is None or installation.bot_token != token:
            raise RuntimeError(f"{team_id}: the installation store does not hold its bot token")
    return teams


def oauth_compare(
    workspaces: int,
    requests: int,
    clients: int,
    rounds: int,
    rate: float,
    database_url: str | None,
) -> None:
    """``--oauth``: ``/templates`` ack latency of the bot in OAuth mode with ``workspaces``
    installed workspaces against single-workspace mode (see the module docstring)."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # saturation is the point
    results: dict[str, dict[str, list[float]]] = {
        name: {"sequential": [], "concurrent": [], "paced": [], "not_200": [], "sent": []}
        for name in OAUTH_MODES
    }
    backend = "PostgreSQL" if (database_url or "").startswith("postgresql") else "SQLite"
    with ExitStack() as stack:
        fake = stack.enter_context(FakeSlack())
        single_url = stack.enter_context(database(database_url))
        oauth_url = stack.enter_context(database(database_url))
        single = build_runtime(
            make_settings(fake, database_url=single_url, status_poll_seconds=3600)
        )
        stack.callback(single.close)
        oauth = build_runtime(
            make_settings(
                fake,
                database_url=oauth_url,
                status_poll_seconds=3600,
                slack_bot_token=None,
                slack_client_id=CLIENT_ID,
                slack_client_secret=CLIENT_SECRET,
                encryption_key=Fernet.generate_key().decode(),
            )
        )
        stack.callback(oauth.close)
        servers = {
            "single": BackgroundServer(single.wsgi_app, threads=16).start(),
            "oauth": BackgroundServer(oauth.wsgi_app, threads=16).start(),
        }
        for server in servers.values():
            stack.callback(server.stop)
        store = oauth.app.installation_store
        assert store is not None, "the OAuth bot has no installation store"
        teams = {
            "single": [TEAM_ID],
            "oauth": install_workspaces(fake, servers["oauth"].url, store, workspaces),
        }

        def auth_tests(name: str) -> int:
            return sum(len(fake.calls_for(team, "auth.test")) for team in teams[name])

        auth_tests_before = {name: auth_tests(name) for name in OAUTH_MODES}
        for _ in range(rounds):
            for name, server in servers.items():
                for mode, values in measure(
                    server.url,
                    requests,
                    clients,
                    rate,
                    teams[name],
                    check_list=True,
                    response_url=fake.response_url("bench"),
                ).items():
                    results[name][mode].extend(values)
        measured_auth_tests = {
            name: auth_tests(name) - auth_tests_before[name] for name in OAUTH_MODES
        }
    print(
        f"/templates ack latency (ms), OAuth mode ({workspaces} workspaces installed by the "
        f"OAuth redirect, each request authorized from the installation store on {backend}) "
        f"against single-workspace mode (SLACK_BOT_TOKEN): {rounds} rounds × {requests} "
        f"requests; sequential; {clients} concurrent clients as fast as they can (concurrent); "
        f"{clients} clients at {rate:g} requests/s in all (paced)"
    )
    print(f"{'mode':<12}{'bot':<8}{'p50':>8}{'p99':>8}{'mean':>8}")
    for mode in ("sequential", "concurrent", "paced"):
        for name in OAUTH_MODES:
            values = results[name][mode]
            print(
                f"{mode:<12}{name:<8}{statistics.median(values):8.2f}"
                f"{_pct(values, 0.99):8.2f}{statistics.mean(values):8.2f}"
            )
        ratio_p50 = statistics.median(results["oauth"][mode]) / statistics.median(
            results["single"][mode]
        )
        ratio_p99 = _pct(results["oauth"][mode], 0.99) / _pct(results["single"][mode], 0.99)
        print(f"{mode:<12}ratio oauth/single: p50 {ratio_p50:.2f}x, p99 {ratio_p99:.2f}x")
    for name in OAUTH_MODES:
        statuses = [int(s) for s in results[name]["not_200"]]
        print(
            f"{name}: not 200: {len(statuses)}{_statuses(statuses)}; "
            f"{int(sum(results[name]['sent']))} requests sent (warm-ups included), "
            f"{measured_auth_tests[name]} auth.test calls to Slack meanwhile"
        )


# -- /templates while /metrics is scraped every second ---------------------------------------

SEEDED_DEPLOYMENTS = 300
SCRAPE_SECONDS = 1.0


def _seed(sf: storage.SessionFactory, count: int) -> None:
    """``count`` deployment rows, spread over the statuses a real database holds most of."""
    statuses = ["ready", "stopped", "destroyed", "failed", "provisioning"]
    now = storage.utcnow()
    for n in range(count):
        dep, _ = storage.create_deployment(
            sf,
            request_key=uuid.uuid4().hex,
            team_id=TEAM_ID,
            user_id=f"U0SEED{n:04d}",
            channel_id="C0DEPLOYS1",
            template_slug="jupyter-lab",
            template_name="JupyterLab",
            offer_id=n + 1,
            gpu_name="RTX 4090",
            num_gpus=1 + n % 4,
            gpu_ram_gb=24,
            dph_total=0.4,
            disk_gb=20,
            simulated=True,
            now=now,
        )
        target = statuses[n % len(statuses)]
        if target == "failed":
            storage.mark_failed(sf, dep.id, "seeded", now=now)
            continue
        storage.set_instance(sf, dep.id, 100000 + n, now=now)
        path = {
            "provisioning": ["provisioning"],
            "ready": ["provisioning", "ready"],
            "stopped": ["provisioning", "ready", "stopped"],
            "destroyed": ["provisioning", "ready", "destroyed"],
        }[target]
        current = "creating"
        for step in path:
            storage.update_status(sf, dep.id, expected_status=current, new_status=step, now=now)
            current = step


def scrape_compare(requests: int, clients: int, rounds: int, rate: float) -> None:
    """``--scrape-metrics``: the bot's ``/templates`` ack without and with ``/metrics`` scraped
    every second, in alternating rounds of one run."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    names = ("without", "with")
    results: dict[str, dict[str, list[float]]] = {
        name: {"sequential": [], "concurrent": [], "paced": [], "not_200": [], "sent": []}
        for name in names
    }
    scrapes: list[int] = []
    scrape_ms: list[float] = []
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        database_url = f"sqlite:///{Path(folder) / 'bench.db'}"
        runtime = build_runtime(
            make_settings(fake, database_url=database_url, status_poll_seconds=3600)
        )
        _seed(runtime.services.session_factory, SEEDED_DEPLOYMENTS)
        server = BackgroundServer(runtime.wsgi_app, threads=16).start()
        try:
            for turn in range(rounds):
                # Alternate which goes first, so that drift on the machine hits both alike.
                for name in names if turn % 2 == 0 else names[::-1]:
                    answers = measure(
                        server.url,
                        requests,
                        clients,
                        rate,
                        check_list=True,
                        response_url=fake.response_url("bench"),
                        scrape=name == "with",
                    )
                    scrapes += [int(status) for status in answers.pop("scrapes", [])]
                    scrape_ms += answers.pop("scrape_ms", [])
                    for mode, values in answers.items():
                        results[name][mode].extend(values)
        finally:
            server.stop()
            runtime.close()
    print(
        f"/templates ack latency (ms) without and with GET /metrics every {SCRAPE_SECONDS:g} s "
        f"({SEEDED_DEPLOYMENTS} deployment rows): {rounds} rounds × {requests} requests; "
        f"sequential; {clients} concurrent clients (concurrent); {clients} clients at "
        f"{rate:g} requests/s in all (paced)"
    )
    print(f"{'mode':<12}{'scrape':<9}{'p50':>8}{'p99':>8}{'mean':>8}")
    for mode in ("sequential", "concurrent", "paced"):
        for name in names:
            values = results[name][mode]
            print(
                f"{mode:<12}{name:<9}{statistics.median(values):8.2f}"
                f"{_pct(values, 0.99):8.2f}{statistics.mean(values):8.2f}"
            )
        ratio = statistics.median(results["with"][mode]) / statistics.median(
            results["without"][mode]
        )
        print(f"{mode:<12}ratio with/without: p50 {ratio:.3f}x")
    answered = sum(1 for status in scrapes if status == 200)
    print(
        f"scrapes: {answered} answered 200 of {len(scrapes)}; p50 "
        f"{statistics.median(scrape_ms) if scrape_ms else 0:.1f} ms each (from the load's process)"
    )
    for name in names:
        statuses = [int(s) for s in results[name]["not_200"]]
        print(f"not 200 ({name} scrapes): {len(statuses)}{_statuses(statuses)}")


def _statuses(statuses: list[int]) -> str:
    return f" {sorted(set(statuses))}" if statuses else ""


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
    parser.add_argument("--teams", default=TEAM_ID, help=argparse.SUPPRESS)  # with --client
    parser.add_argument("--check-list", action="store_true", help=argparse.SUPPRESS)  # ditto
    parser.add_argument(  # ditto
        "--response-url", default=DEFAULT_RESPONSE_URL, help=argparse.SUPPRESS
    )
    parser.add_argument("--scrape", action="store_true", help=argparse.SUPPRESS)  # ditto
    parser.add_argument(
        "--deploy-load",
        action="store_true",
        help=f"/templates with {DEPLOY_CLICKS} Deploy clicks in flight on a slow Vast.ai",
    )
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="--deploy-load: seconds measured under load"
    )
    parser.add_argument(
        "--oauth",
        action="store_true",
        help="the bot in OAuth mode (installations in the database) against single-workspace mode",
    )
    parser.add_argument(
        "--scrape-metrics",
        action="store_true",
        help="the bot without and with GET /metrics scraped every second beside the load",
    )
    parser.add_argument(
        "--workspaces", type=int, default=2, help="--oauth: workspaces installed (requests spread)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="--oauth: a PostgreSQL URL (a fresh schema per bot); default a temporary SQLite file",
    )
    args = parser.parse_args(argv)
    if args.oauth:
        if args.workspaces < 1:
            parser.error("--workspaces must be at least 1")
        oauth_compare(
            args.workspaces,
            args.requests,
            args.clients,
            args.rounds,
            args.rate,
            args.database_url,
        )
        return
    if args.deploy_load:
        deploy_load(args.requests, args.seconds)
        return
    if args.scrape_metrics:
        scrape_compare(args.requests, args.clients, args.rounds, args.rate)
        return
    if args.client:
        _client_main(
            args.client,
            args.requests,
            args.clients,
            args.rate,
            args.teams.split(","),
            args.check_list,
            args.response_url,
            args.scrape,
        )
        return
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # saturation is the point
    results: dict[str, dict[str, list[float]]] = {
        name: {"sequential": [], "concurrent": [], "paced": [], "not_200": [], "sent": []}
        for name in ("bot", "bare")
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
                        server.url,
                        args.requests,
                        args.clients,
                        args.rate,
                        response_url=fake.response_url("bench"),
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
    for name in ("bot", "bare"):
        statuses = [int(s) for s in results[name]["not_200"]]
        print(f"not 200 ({name}): {len(statuses)}{_statuses(statuses)}")


if __name__ == "__main__":
    main()
