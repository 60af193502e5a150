"""Several ``python -m bot`` processes on one PostgreSQL database, and the failover scenario that
``tests/test_failover.py`` asserts on and ``benchmarks/failover.py`` times.

:class:`Cluster` starts ``processes`` real bot processes (HTTP mode, each on its own port) on one
database, all renting from one Vast.ai simulator that runs in the calling process (so every
bot reads and writes the same instances) and posting to one fake Slack Web API. Requests are
signed as Slack signs them (v0 HMAC, https://api.slack.com/authentication/verifying-requests-
from-slack) and spread over the processes by the caller, as a load balancer in front of them
would. :func:`run_scenario` puts deployments in flight, clicks Stop on one (the process holding
the poller lease takes the click while Vast.ai answers its stop requests with 502s, so the
Stop is left pending), kills that process with SIGKILL, and waits for another to take over
and for everything to settle. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from sqlalchemy import create_engine, text

from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services.offers import find_offers
from bot.simulator import Fault, Timeline, VastSimulator
from bot.slack.blocks.picker import offer_label, offer_value
from bot.vast import VastClient
from bot.vast.pacing import ENDPOINTS, NO_PACING
from catalog import load_catalog
from tests.fixtures.slack import ALICE, BOT_TOKEN, CHANNEL, SIGNING_SECRET, sign

ROOT = Path(__file__).resolve().parent.parent
SIM_KEY = "failover-sim-key-0123456789"
JUPYTER = "jupyter-lab"
#: Boot of a simulated instance: running after 1 s, its app answering after 2 s.
TIMELINE = Timeline(created_after=0.0, loading_after=0.3, running_after=1.0, app_ready_after=2.0)
POLL_SECONDS = 1.0
LEASE_SECONDS = 3.0

T = TypeVar("T")


def wait_for(what: str, predicate: Callable[[], T | None], timeout: float) -> T:
    """Poll ``predicate`` every 50 ms until it returns something truthy (returned); raise
    AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BotProcess:
    """One ``python -m bot`` child: its port, ``Popen`` and log file."""

    port: int
    popen: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=15)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def health(self) -> dict[str, Any] | None:
        """``GET /healthz`` as JSON, or None when the process does not answer."""
        try:
            answer = self.http.get("/healthz", timeout=2)
            return dict(answer.json())
        except (httpx.HTTPError, ValueError):
            return None


class Cluster:
    """``processes`` bot processes on ``database_url``, one simulator, one fake Slack.

    Use as a context manager; on exit every process still running gets SIGTERM (SIGKILL after
    15 s) and the simulator and the fake Slack stop. ``alive`` lists the processes not killed.
    """

    def __init__(self, database_url: str, processes: int = 3) -> None:
        self.database_url = database_url
        self.count = processes
        self.procs: list[BotProcess] = []
        self.killed: set[int] = set()
        self.sim = VastSimulator(api_key=SIM_KEY, timeline=TIMELINE, credit=1e6, seed=24)
        self.slack = FakeSlack()
        self._folder = tempfile.TemporaryDirectory(prefix="failover-")
        self._n = 0
        self._next = 0
        self.engine = create_engine(database_url, pool_size=1)

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        sim_url = self.sim.start()
        self.slack.start()
        folder = Path(self._folder.name)
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLACK_", "VAST_")) and key != "DATABASE_URL"
        }
        base.update(
            PYTHONPATH=str(ROOT),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self.slack.api_url,
            DATABASE_URL=self.database_url,
            VAST_API_KEY=SIM_KEY,
            VAST_API_URL=sim_url,
            VAST_MIN_INTERVALS=",".join(f"{name}=0" for name in ENDPOINTS),
            ALLOW_PRIVATE_INSTANCE_ADDRESSES="true",
            STATUS_POLL_SECONDS=str(POLL_SECONDS),
            POLLER_LEASE_SECONDS=str(LEASE_SECONDS),
            STEADY_SWEEP_SECONDS="5",
        )
        for n in range(self.count):
            port = _free_port()
            log = folder / f"bot{n}.log"
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot"],
                cwd=folder,
                env={**base, "PORT": str(port)},
                stdout=subprocess.DEVNULL,
                stderr=open(log, "w"),  # noqa: SIM115 - the child holds it; closed with the folder
            )
            self.procs.append(BotProcess(port, popen, log))
        for proc in self.procs:
            wait_for(
                f"bot on port {proc.port} answers /healthz (log: {proc.log})",
                lambda proc=proc: proc.popen.poll() is None and proc.health() is not None,  # type: ignore[misc]
                timeout=60,
            )

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)
            proc.http.close()
        self.engine.dispose()
        self.slack.stop()
        self.sim.stop()
        self._folder.cleanup()

    @property
    def alive(self) -> list[BotProcess]:
        return [proc for proc in self.procs if proc.pid not in self.killed]

    def kill(self, proc: BotProcess) -> None:
        """SIGKILL ``proc`` and reap it."""
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=10)
        self.killed.add(proc.pid)

    def logs(self) -> str:
        """Every process's log (for a failure message)."""
        return "\n".join(f"--- {p.log.name} (pid {p.pid})\n{p.log.read_text()}" for p in self.procs)

    # -- the database -------------------------------------------------------------------------

    def lease(self) -> tuple[str, float] | None:
        """The ``status-poller`` lease: (holder, seconds until it expires), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT holder, EXTRACT(EPOCH FROM expires_at - now()) FROM leases "
                    "WHERE name = 'status-poller'"
                )
            ).first()
        return (str(row[0]), float(row[1])) if row else None

    def holder_process(self) -> BotProcess | None:
        """The live process whose pid the lease's holder (``host:pid:random``) names."""
        lease = self.lease()
        if lease is None or lease[1] <= 0:
            return None
        pid = int(lease[0].split(":")[1])
        return next((p for p in self.alive if p.pid == pid), None)

    def deployments(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, status, instance_id, request_key, message_channel, message_ts, "
                    "desired_state, desired_next_try_at FROM deployments ORDER BY id"
                )
            ).mappings()
            return [dict(row) for row in rows]

    # -- Slack requests, spread over the processes -------------------------------------------

    def pick(self, proc: BotProcess | None = None) -> BotProcess:
        """``proc``, or the next live process in turn (round-robin)."""
        if proc is not None:
            return proc
        alive = self.alive
        self._next += 1
        return alive[self._next % len(alive)]

    def _post(self, proc: BotProcess, body: str) -> httpx.Response:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
        return proc.http.post("/slack/events", content=body.encode(), headers=headers)

    def deploy(self, proc: BotProcess | None = None) -> str:
        """Submit the GPU picker for JupyterLab on the best free offer, as Slack sends a
        view_submission; returns the view id (the deployment's request key)."""
        self._n += 1
        template = load_catalog().get(JUPYTER)
        assert template is not None
        with VastClient(self.sim.start(), SIM_KEY, min_intervals=NO_PACING) as client:
            ranked = find_offers(client, template, disk_gb=20)[0]
        view_id = f"V0FAILOVER{self._n:03d}"
        values = {
            "disk_block": {"disk_gb": {"type": "number_input", "value": "20"}},
            "channel_block": {
                "channel": {"type": "conversations_select", "selected_conversation": CHANNEL}
            },
            "gpu_filter_block": {"gpu_filter": {"type": "static_select", "selected_option": None}},
            "max_price_block": {"max_price": {"type": "number_input", "value": None}},
            "offer_block": {
                "gpu_offer": {
                    "type": "static_select",
                    "selected_option": {
                        "text": {"type": "plain_text", "text": offer_label(ranked), "emoji": True},
                        "value": offer_value(ranked),
                    },
                }
            },
        }
        view = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "callback_id": "deploy_modal",
            "private_metadata": json.dumps({"template": JUPYTER, "channel": CHANNEL, "models": []}),
            "hash": "1732900000.abcdef",
            "title": {"type": "plain_text", "text": "Deploy JupyterLab"},
            "blocks": [],
            "state": {"values": values},
            "root_view_id": view_id,
            "app_id": "A0GPUBOT01",
            "bot_id": "B0GPUBOT1",
        }
        payload = {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": "gpu-team"},
            "user": {"id": ALICE, "username": "alice", "name": "alice", "team_id": TEAM_ID},
            "api_app_id": "A0GPUBOT01",
            "token": "deprecated",
            "trigger_id": f"{self._n}.1234567890.submit",
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        answer = self._post(self.pick(proc), urlencode({"payload": json.dumps(payload)}))
        assert answer.status_code == 200, answer.text
        return view_id

    def click(self, action_id: str, dep: dict[str, Any], proc: BotProcess | None = None) -> None:
        """Press ``action_id`` (e.g. ``deployment_stop``) on ``dep``'s status message."""
        self._n += 1
        payload = {
            "type": "block_actions",
            "user": {"id": ALICE, "username": "alice", "name": "alice", "team_id": TEAM_ID},
            "api_app_id": "A0GPUBOT01",
            "token": "deprecated",
            "trigger_id": f"{self._n}.1234567890.trigger",
            "team": {"id": TEAM_ID, "domain": "gpu-team"},
            "enterprise": None,
            "is_enterprise_install": False,
            "state": {"values": {}},
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": f"dep_actions_{dep['id']}",
                    "value": str(dep["id"]),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
            "container": {
                "type": "message",
                "message_ts": dep["message_ts"],
                "channel_id": dep["message_channel"],
                "is_ephemeral": False,
            },
            "channel": {"id": dep["message_channel"], "name": "gpu-deploys"},
            "response_url": self.slack.response_url(f"act{self._n}"),
            "message": {"type": "message", "ts": dep["message_ts"], "text": "", "blocks": []},
        }
        answer = self._post(self.pick(proc), urlencode({"payload": json.dumps(payload)}))
        assert answer.status_code == 200, answer.text

    def last_update_text(self, ts: str) -> str | None:
        """The ``text`` of the last ``chat.update`` of the message ``ts`` (None: none yet)."""
        updates = [c for c in self.slack.calls_to("chat.update") if c.args.get("ts") == ts]
        return str(updates[-1].args.get("text")) if updates else None


@dataclass
class Outcome:
    """What :func:`run_scenario` saw. Times in seconds after the SIGKILL."""

    processes: int
    deployments: int
    lease_taken: float
    """The ``status-poller`` lease row names another holder."""
    takeover: float
    """A surviving process's ``/healthz`` says ``poller_role`` ``active`` with a clean pass
    that ended after the kill."""
    settled: float
    """Every deployment in its final state, the Stop carried out, every message shown."""
    instances: int
    """Instances the simulator holds (each rented once: equals ``deployments``)."""
    creates: int
    """Create requests the simulator received."""
    stopped_on_vast: bool
    at_kill: list[str]
    """The in-flight deployments' statuses when the leader was killed."""
    final_texts: dict[int, str]
    statuses: dict[int, str]


def _ended(status_text: str | None, word: str) -> bool:
    return status_text is not None and status_text.endswith(f": {word}")


def run_scenario(database_url: str, *, processes: int = 3, in_flight: int = 3) -> Outcome:
    """The failover scenario on an empty ``database_url`` (see the module docstring).

    1. ``processes`` bots start; one deployment is submitted and becomes ready.
    2. Vast.ai answers every stop with a 502 (the outcome is unknown: the Stop stays pending);
       Stop is clicked on the process that holds the poller lease, and ``in_flight`` more
       deployments are submitted round-robin; the scenario waits until each has its instance
       (rented, still booting) and the Stop is recorded as pending.
    3. The lease holder gets SIGKILL; Vast.ai answers stops again.
    4. Wait (bounded) for the lease to change hands, for a surviving process's ``/healthz`` to
       report a clean pass as the active poller, and for everything to converge: the new
       deployments ready, the stopped one stopped on Vast.ai and in the database, and the last
       ``chat.update`` of every status message showing that final state.

    Raises AssertionError (with the processes' logs) when a step does not happen in time.
    """
    with Cluster(database_url, processes) as cluster:
        try:
            return _scenario(cluster, in_flight)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{cluster.logs()}") from None


def _scenario(cluster: Cluster, in_flight: int) -> Outcome:
    leader = wait_for("a process takes the poller lease", cluster.holder_process, 15)
    first = cluster.deploy()
    ready = wait_for(
        "the first deployment becomes ready",
        lambda: [d for d in cluster.deployments() if d["status"] == "ready"],
        20,
    )
    (stopping,) = ready
    assert stopping["request_key"] == first

    # Stops reach Vast.ai and get a 502: the outcome is unknown, so the Stop stays pending.
    cluster.sim.inject(Fault.BAD_GATEWAY, times=None, endpoint="manage")
    cluster.click("deployment_stop", stopping, proc=leader)
    keys = [cluster.deploy() for _ in range(in_flight)]

    def in_flight_rented() -> list[dict[str, Any]] | None:
        rows = cluster.deployments()
        fresh = [d for d in rows if d["request_key"] in keys]
        stop = next(d for d in rows if d["id"] == stopping["id"])
        if (
            len(fresh) == in_flight
            and all(d["instance_id"] is not None and d["message_ts"] for d in fresh)
            and stop["desired_state"] == "stopped"
            and stop["desired_next_try_at"] is not None
        ):
            return rows
        return None

    rows = wait_for("the deployments are rented and the Stop is pending", in_flight_rented, 20)
    booting = [d["status"] for d in rows if d["request_key"] in keys]
    holder = cluster.holder_process()
    assert holder is leader, "the lease moved before the kill"
    old_holder = cluster.lease()
    assert old_holder is not None

    killed_at = time.monotonic()
    cluster.kill(leader)
    cluster.sim.clear_faults()

    def lease_moved() -> float | None:
        lease = cluster.lease()
        if lease is not None and lease[0] != old_holder[0]:
            return time.monotonic() - killed_at
        return None

    def active_pass() -> float | None:
        now = time.monotonic()
        for proc in cluster.alive:
            health = proc.health() or {}
            age = health.get("last_pass_age_seconds")
            if health.get("poller_role") == "active" and age is not None:
                ended = now - float(age)
                if ended > killed_at:
                    return now - killed_at
        return None

    lease_taken = wait_for("another process takes the lease", lease_moved, 30)
    takeover = wait_for("another process completes a pass as the active poller", active_pass, 30)

    wanted = {d["id"]: ("ready" if d["id"] != stopping["id"] else "stopped") for d in rows}

    def converged() -> dict[int, str] | None:
        now_rows = {d["id"]: d for d in cluster.deployments()}
        texts: dict[int, str] = {}
        for dep_id, word in wanted.items():
            dep = now_rows[dep_id]
            if dep["status"] != word or dep["desired_next_try_at"] is not None:
                return None
            shown = cluster.last_update_text(dep["message_ts"])
            if not _ended(shown, word):
                return None
            texts[dep_id] = str(shown)
        return texts

    final_texts = wait_for("every deployment and status message converges", converged, 40)
    settled = time.monotonic() - killed_at
    instances = cluster.sim.instances
    stopped_instance = instances.get(int(stopping["instance_id"]))
    return Outcome(
        processes=cluster.count,
        deployments=len(wanted),
        lease_taken=lease_taken,
        takeover=takeover,
        settled=settled,
        instances=len(instances),
        creates=cluster.sim.request_count("PUT", "/api/v0/asks/"),
        stopped_on_vast=bool(
            stopped_instance and stopped_instance.get("intended_status") == "stopped"
        ),
        at_kill=booting,
        final_texts=final_texts,
        statuses={d["id"]: d["status"] for d in cluster.deployments()},
    )


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new database ``failover_<random>`` on the server of ``admin_url`` (its URL), dropped
    afterwards (its connections ended first: a killed process's may linger)."""
    import uuid

    from sqlalchemy.engine import make_url

    name = f"failover_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                conn.execute(text(f'DROP DATABASE "{name}"'))
    finally:
        admin.dispose()
