"""Fuzzing the real app: generated Slack requests (validly signed, hostile contents) and
generated Vast.ai instance records go through the running bot (Bolt behind waitress, the fake
Slack Web API, the Vast.ai simulator), and after every example:

* no HTTP answer is a 5xx, and every listener acked (Bolt's "didn't call ack()" is Slack's
  "operation_timeout" for the user);
* no log record carries a traceback, and none is at ERROR: input a user (or a host on
  Vast.ai) controls is answered, not crashed on;
* the process made no TCP connection and no name lookup except to the fake Slack, the
  simulator, the bot's own server and the instance's own validated address and mapped ports;
  a sentinel HTTP server on 127.0.0.1, whose port the hostile data names, receives nothing;
* the simulator saw no Vast.ai write (rent, stop, start, destroy) that nobody chose: none at
  all for generated payloads, and for a poller pass at most the destroy of the example's own
  instance (the money-safe side of a failure);
* no message the bot posted or edited carries a broadcast (``<!channel>``, ``<!here>``,
  ``<!everyone>``, a user group) or the marker of an injected URL, and Slack accepts every
  call and every answer (the fake refuses what breaks Block Kit's limits, as Slack does; the
  acks are checked with the same :mod:`bot.slack.limits`).

One bot per property group is started for the module (``payload_bot``, ``poller_bot``), not one
per example. The examples are derandomized (the same ones on every run, so CI is
reproducible) and bounded so that the file runs in well under a minute;
``FUZZ_SCALE=10`` multiplies the number of examples and ``FUZZ_RANDOM=1`` draws new ones on
each run (for a longer hunt on a workstation).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_bolt import App

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.runtime import build_runtime
from bot.services.poller import StatusPoller
from bot.simulator import VastSimulator
from bot.simulator.instances import SimInstance
from bot.slack import blocks as blocks_package
from bot.slack import limits as slack_limits
from bot.slack.listeners.templates import subcommands
from storage import DeploymentStatus
from tests import fuzz_strategies as fs
from tests.conftest import settings_env_names
from tests.fixtures.slack import (
    ALICE,
    CHANNEL,
    FAST_TIMELINE,
    BotHarness,
    fast_vast_client,
    make_settings,
)

pytestmark = pytest.mark.filterwarnings(
    # Hypothesis warns when it prints a large strategy or example; huge inputs are the point.
    "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
)

ADMIN = "U0ADMIN001"
USERS = (ALICE, ADMIN)

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, round(n * SCALE))


def fuzz_settings(n: int) -> settings:
    """Hypothesis settings for one property: ``n`` examples (times ``FUZZ_SCALE``), no
    per-example deadline (the first example starts caches), derandomized unless
    ``FUZZ_RANDOM=1``, no example database (nothing written into the checkout). The health
    checks suppressed are about speed and about the module's long-lived bot, which is what
    this suite means to reuse."""
    return settings(
        max_examples=examples(n),
        deadline=None,
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )


#: Seconds Hypothesis may spend shrinking a failure (its own limit is five minutes, longer
#: than the test timeout; a bound keeps a failing CI run short and its report printed).
SHRINK_SECONDS = int(os.environ.get("FUZZ_SHRINK_SECONDS", "20"))


@pytest.fixture(scope="module", autouse=True)
def _bounded_shrinking() -> Iterator[None]:
    from hypothesis.internal.conjecture import engine

    with pytest.MonkeyPatch.context() as mp:
        if hasattr(engine, "MAX_SHRINKING_SECONDS"):  # an internal: skipped if it moves
            mp.setattr(engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS)
        yield


# -- instruments ------------------------------------------------------------------------------


def _ip(text: object) -> str | None:
    """``text`` as a normalised IP address, or None."""
    if not isinstance(text, str) or "%" in text:
        return None
    try:
        return ipaddress.ip_address(text.strip()).compressed
    except ValueError:
        return None


class NetWatch:
    """Every TCP connection and host-name lookup the process makes while installed.

    Connections to loopback go through (so the sentinel can see them); any other address is
    refused at once (there is no network in tests, and a refused connection is fast). A name
    lookup other than ``localhost`` is refused too. Each is recorded as ``(host, port)``."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.lookups: list[str] = []
        self._lock = threading.Lock()

    @contextmanager
    def installed(self) -> Iterator[NetWatch]:
        real_connect = socket.socket.connect
        real_getaddrinfo = socket.getaddrinfo
        watch = self

        def connect(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
                ip = _ip(str(address[0]))
                host = ip or str(address[0])  # a name here is resolved by C, unseen: refuse
                with watch._lock:
                    watch.connects.append((host, int(address[1])))
                if ip is None or not ipaddress.ip_address(ip).is_loopback:
                    raise ConnectionRefusedError(f"fuzz: no connection to {host}")
            return real_connect(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else host
            if name is not None and _ip(str(name).strip("[]")) is None and name != "localhost":
                with watch._lock:
                    watch.lookups.append(str(name))
                raise socket.gaierror(socket.EAI_NONAME, f"fuzz: no lookup of {name!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.getaddrinfo = getaddrinfo
        try:
            yield self
        finally:
            socket.socket.connect = real_connect  # type: ignore[method-assign]
            socket.getaddrinfo = real_getaddrinfo

    def since(self, mark: tuple[int, int]) -> tuple[list[tuple[str, int]], list[str]]:
        with self._lock:
            return self.connects[mark[0] :], self.lookups[mark[1] :]

    def mark(self) -> tuple[int, int]:
        with self._lock:
            return len(self.connects), len(self.lookups)


class Sentinel:
    """An HTTP server on 127.0.0.1 that hostile data points at: it must receive nothing."""

    def __init__(self) -> None:
        hits = self.hits = []  # type: list[str]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _hit(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _hit

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Sentinel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class LogWatch(logging.Handler):
    """Keeps every record at WARNING and above, and any record with a traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING or record.exc_info:
            with self._records_lock:
                self.records.append(record)

    def since(self, mark: int) -> list[logging.LogRecord]:
        with self._records_lock:
            return self.records[mark:]

    def mark(self) -> int:
        with self._records_lock:
            return len(self.records)


class CountingExecutor(Executor):
    """Bolt's listener executor, counting the listeners still running (after their ack)."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.in_flight = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self.in_flight += 1

        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.in_flight -= 1

        return self.inner.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


class FuzzSimulator(VastSimulator):
    """The Vast.ai simulator, serving an instance's record with fields changed or dropped
    (:meth:`set_record`) in every answer (list and show alike)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.changes: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}

    def set_record(
        self, instance_id: int, changes: dict[str, Any], dropped: frozenset[str] = frozenset()
    ) -> None:
        with self._lock:
            self.changes[instance_id] = (changes, dropped)

    def forget(self, instance_id: int) -> None:
        with self._lock:
            self.changes.pop(instance_id, None)
            if instance_id in self._instances:
                self._remove(instance_id)

    def real_record(self, instance_id: int) -> dict[str, Any]:
        """The record as the simulator has it, without the changes."""
        with self._lock:
            return super()._render(self._instances[instance_id])

    def _render(self, inst: SimInstance) -> dict[str, Any]:
        data = super()._render(inst)
        change = self.changes.get(inst.id)
        if change is None:
            return data
        changes, dropped = change
        data = {k: v for k, v in data.items() if k not in dropped}
        data.update(changes)
        return data


@dataclass
class Listeners:
    """What the app registered: action ids, view callback ids and commands (strings or
    patterns), recorded while ``App.action`` / ``App.view`` / ``App.command`` ran."""

    actions: list[str | re.Pattern[str]] = field(default_factory=list)
    views: list[str | re.Pattern[str]] = field(default_factory=list)
    commands: list[str | re.Pattern[str]] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[None]:
        lists = {"action": self.actions, "view": self.views, "command": self.commands}
        keys = {"action": "action_id", "view": "callback_id", "command": "command"}
        originals = {name: getattr(App, name) for name in lists}

        def recorder(name: str) -> Callable[..., Any]:
            def method(app: App, constraints: Any, *args: Any, **kwargs: Any) -> Any:
                found = (
                    constraints.get(keys[name]) if isinstance(constraints, dict) else constraints
                )
                if isinstance(found, str | re.Pattern):
                    lists[name].append(found)
                return originals[name](app, constraints, *args, **kwargs)

            return method

        with pytest.MonkeyPatch.context() as mp:
            for name in lists:
                mp.setattr(App, name, recorder(name))
            yield

    @staticmethod
    def ids(constraints: list[str | re.Pattern[str]]) -> st.SearchStrategy[str]:
        """Ids matching the constraints (a pattern gives strings it fully matches)."""
        plain = sorted(c for c in constraints if isinstance(c, str))
        patterns = [c for c in constraints if isinstance(c, re.Pattern)]
        return st.one_of(
            st.sampled_from(plain), *(st.from_regex(p, fullmatch=True) for p in patterns)
        )


def _where(exc: BaseException) -> str:
    """Where ``exc`` was raised (``file:line in function``), and the innermost frame of the
    project on the way when that is in a library."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"

    def short(frame: traceback.FrameSummary) -> str:
        path = re.sub(
            r".*/(?=(bot|catalog|storage|slack_bolt|slack_sdk|waitress|json)/)", "", frame.filename
        )
        return f"{path}:{frame.lineno} in {frame.name}"

    ours = [f for f in frames if re.search(r"/(bot|catalog|storage)/", f.filename)]
    where = short(frames[-1])
    if ours and ours[-1] is not frames[-1]:
        where += f" (via {short(ours[-1])})"
    return where


def describe(record: logging.LogRecord) -> str:
    """One line for a log record: logger, level, message and, for a traceback, the exception
    and where in the project it was raised."""
    text = f"{record.name} {record.levelname}: {record.getMessage()[:200]!r}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text += f" <- {type(exc).__name__}: {str(exc)[:120]!r} at {_where(exc)}"
    return text


BROADCAST_RE = re.compile(r"<!(channel|here|everyone|subteam\^)")
_POSTED = ("chat.postMessage", "chat.update")
_HARNESS_LOGGERS = ("bot.simulator", "tests")


@dataclass
class Mark:
    net: tuple[int, int]
    logs: int
    sim: int
    slack: int
    refusals: int
    sentinel: int


class FuzzBot:
    """A running bot with its instruments (see the module docstring). A plain class, not a
    dataclass, so that Hypothesis prints it as one short line in a failure report."""

    def __init__(
        self,
        harness: BotHarness,
        sim: FuzzSimulator,
        slack: FakeSlack,
        net: NetWatch,
        logs: LogWatch,
        sentinel: Sentinel,
        listeners: Listeners,
        executor: CountingExecutor,
    ) -> None:
        self.harness = harness
        self.sim = sim
        self.slack = slack
        self.net = net
        self.logs = logs
        self.sentinel = sentinel
        self.listeners = listeners
        self.executor = executor
        self.strategies: dict[str, st.SearchStrategy[Any]] = {}

    def strategy(
        self, name: str, build: Callable[[], st.SearchStrategy[Any]]
    ) -> st.SearchStrategy[Any]:
        """``build()``, made once per bot (building a strategy costs more than drawing)."""
        if name not in self.strategies:
            self.strategies[name] = build()
        return self.strategies[name]

    def __repr__(self) -> str:
        return f"<FuzzBot {self.harness.server.url}>"

    @property
    def services(self) -> Any:
        return self.harness.services

    def home_addresses(self) -> set[tuple[str, int]]:
        """Where the process may always connect: its own server, the fake Slack and the
        simulator."""
        ports = {
            urlsplit(url).port
            for url in (self.harness.server.url, self.slack.url, self.sim.base_url or "")
        }
        return {("127.0.0.1", port) for port in ports if port}

    def mark(self) -> Mark:
        return Mark(
            net=self.net.mark(),
            logs=self.logs.mark(),
            sim=len(self.sim.requests),
            slack=len(self.slack.calls),
            refusals=len(self.slack.refusals),
            sentinel=len(self.sentinel.hits),
        )

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until no listener, no work-pool job and no outbox entry is left."""
        deadline = time.monotonic() + timeout
        work = self.services.work
        while True:
            if not self.executor.in_flight and not work.in_flight:
                self.services.messages.flush(5.0)
                time.sleep(0.002)
                if not self.executor.in_flight and not work.in_flight:
                    return
            assert time.monotonic() < deadline, "the bot was still busy after the example"
            time.sleep(0.003)

    def check(
        self,
        mark: Mark,
        response: httpx.Response | None,
        *,
        targets: frozenset[tuple[str, int]] = frozenset(),
        writes: frozenset[tuple[str, str]] = frozenset(),
    ) -> None:
        """Assert the suite's properties for what happened since ``mark``. ``targets``: the
        instance's validated (address, port) pairs the bot may also reach; ``writes``: the
        ``(method, path)`` Vast.ai writes that are allowed. Each kind of failure is asserted on
        its own line, so that Hypothesis reports each as a distinct bug."""
        records = [r for r in self.logs.since(mark.logs) if not r.name.startswith(_HARNESS_LOGGERS)]
        log = [describe(r) for r in records][:4]
        status = response.status_code if response is not None else 200
        assert status < 500, f"HTTP {status}; log: {log}"

        no_ack = [r for r in records if "didn't call ack()" in r.getMessage()]
        assert not no_ack, f"a listener never acked (Slack shows the user an error); log: {log}"

        tracebacks = [describe(r) for r in records if r.exc_info]
        assert not tracebacks, f"traceback in the log: {tracebacks[:3]}"

        errors = [describe(r) for r in records if r.levelno >= logging.ERROR]
        assert not errors, f"ERROR in the log: {errors[:3]}"

        connects, lookups = self.net.since(mark.net)
        allowed = self.home_addresses() | targets
        stray = sorted({c for c in connects if c not in allowed})
        hits = self.sentinel.hits[mark.sentinel :]
        if ("127.0.0.1", self.sentinel.port) in targets:
            hits = []  # the instance itself said that port is its own (and the address valid)
        assert not (stray or lookups or hits), (
            f"requests to other addresses: connects {stray}, lookups {lookups[:3]}, "
            f"sentinel hits {hits[:3]}"
        )

        sent = self.sim.requests[mark.sim :]
        unchosen = [
            f"{r.method} {r.path}"
            for r in sent
            if (r.method in ("PUT", "DELETE") or (r.method == "POST" and "/bundles" not in r.path))
            and (r.method, r.path) not in writes
        ]
        assert not unchosen, f"Vast.ai writes nobody chose: {unchosen}"

        calls = self.slack.calls[mark.slack :]
        posted = [json.dumps(c.args) for c in calls if c.method in _POSTED]
        pings = [m.group(0) for text in posted for m in BROADCAST_RE.finditer(text)]
        assert not pings, f"a posted message broadcasts: {pings[:3]}"

        injected = [c.method for c in calls if fs.INJECTED in json.dumps(c.args)]
        assert not injected, f"an injected URL reached Slack in {injected}"

        refused = self.slack.refusals[mark.refusals :]
        assert not refused, f"Slack would refuse what the bot sent: {refused[:2]}"

        problems = [v.slack_message() for v in answer_violations(response)]
        assert not problems, f"Slack would refuse the answer: {problems[:3]}"


def answer_violations(response: httpx.Response | None) -> list[slack_limits.Violation]:
    """What breaks Block Kit's limits in an HTTP answer to Slack: a message's ``blocks`` (the
    ack of a command) or a ``response_action`` view (the ack of a submission)."""
    if response is None or response.status_code != 200 or not response.content:
        return []
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    if body.get("blocks") is not None:
        return slack_limits.check_message_blocks(body["blocks"])
    if body.get("response_action") in ("update", "push"):
        return slack_limits.check_view(body.get("view"))
    return []


def _seal(mp: pytest.MonkeyPatch) -> None:
    """The same sealed environment as conftest's ``sealed_environment``, for the module."""
    for name in list(os.environ):
        key = name.upper()
        if key == "TEST_DATABASE_URL":
            continue
        if key in settings_env_names() or key == "DATABASE_URL" or key.startswith("SLACK_"):
            mp.delenv(name, raising=False)


@contextmanager
def running_bot(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[FuzzBot]:
    """One bot for a group of properties: SQLite file, fake Slack, simulator (frozen clock,
    fast timeline), admins ``ADMIN``, the poller driven by hand; instruments installed."""
    directory = tmp_path_factory.mktemp(name)
    logs = LogWatch()
    root = logging.getLogger()
    with (
        pytest.MonkeyPatch.context() as mp,
        NetWatch().installed() as net,
        Sentinel() as sentinel,
        FakeSlack() as fake,
    ):
        _seal(mp)
        mp.chdir(directory)
        root.addHandler(logs)
        sim = FuzzSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
        url = sim.start()
        harness: BotHarness | None = None
        try:
            settings_ = make_settings(
                fake,
                database_url=f"sqlite:///{directory / 'fuzz.db'}",
                vast_api_url=url,
                status_poll_seconds=3600,
                bot_admins=ADMIN,
            )
            listeners = Listeners()
            with listeners.recording():
                runtime = build_runtime(settings_, vast=fast_vast_client(url))
            runner = runtime.app.listener_runner
            executor = CountingExecutor(runner.listener_executor)
            runner.listener_executor = executor
            harness = BotHarness(fake, runtime, sim)
            yield FuzzBot(harness, sim, fake, net, logs, sentinel, listeners, executor)
        finally:
            if harness is not None:
                harness.stop()
            sim.stop()
            root.removeHandler(logs)


@pytest.fixture(scope="module")
def payload_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBot]:
    """The bot the payload properties share (it never holds a deployment, so any Vast.ai
    write it makes is one nobody chose)."""
    with running_bot(tmp_path_factory, "fuzz-payloads") as bot:
        yield bot


@pytest.fixture(scope="module")
def poller_bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzBot]:
    with running_bot(tmp_path_factory, "fuzz-poller") as bot:
        yield bot


def _input_ids() -> tuple[tuple[str, str], ...]:
    """Every (block id, action id) pair the Block Kit builders define: ``BLOCK_X`` with the
    ``ACTION_X`` of the same module (the inputs of the bot's modals, whose values come back
    in ``view.state.values``), plus each lone ``BLOCK_*`` and ``ACTION_*`` with the other's
    first id, so that every id the builders know appears."""
    import importlib
    import pkgutil

    pairs: set[tuple[str, str]] = set()
    for module_info in pkgutil.iter_modules(blocks_package.__path__):
        module = importlib.import_module(f"{blocks_package.__name__}.{module_info.name}")
        names = {k: v for k, v in vars(module).items() if isinstance(v, str)}
        blocks = {k.removeprefix("BLOCK_"): v for k, v in names.items() if k.startswith("BLOCK_")}
        actions = {
            k.removeprefix("ACTION_"): v for k, v in names.items() if k.startswith("ACTION_")
        }
        for suffix, block in blocks.items():
            pairs.add((block, actions.get(suffix, block)))
        for suffix, action in actions.items():
            pairs.add((blocks.get(suffix, action), action))
    return tuple(sorted(pairs))


INPUT_IDS = _input_ids()


def run(bot: FuzzBot, send: Callable[[], httpx.Response]) -> None:
    """Send one generated request, let the bot finish with it, check the properties."""
    mark = bot.mark()
    response = send()
    bot.settle()
    bot.check(mark, response)


# -- the properties ---------------------------------------------------------------------------


def test_the_listeners_are_collected_from_the_app(payload_bot: FuzzBot) -> None:
    """The suite reaches every listener the app registers (not a list kept by hand)."""
    listeners = payload_bot.listeners
    assert {"deployment_destroy", "deploy_template", "approval_approve"} <= set(listeners.actions)
    assert any(isinstance(a, re.Pattern) for a in listeners.actions)  # lifetime_extend(:N)
    assert {"deploy_modal", "budget_modal", "workspace_setup"} <= set(listeners.views)
    assert listeners.commands == ["/templates"]


def command_forms(bot: FuzzBot) -> st.SearchStrategy[dict[str, str]]:
    """Slash command requests: ``/templates <text>`` from an admin or not, in a channel, a
    private channel or a DM (Slack's form fields)."""
    words = (*subcommands(bot.services), "budget", "setup")
    return st.fixed_dictionaries(
        {
            "token": st.just("deprecated"),
            "team_id": st.just(TEAM_ID),
            "team_domain": st.just("gpu-team"),
            "channel_id": st.sampled_from([CHANNEL, "G0PRIVATE1", "D0ALICE001"]),
            "channel_name": st.just("gpu-deploys"),
            "user_id": st.sampled_from(USERS),
            "command": st.just("/templates"),
            "text": fs.slash_text(words),
            "api_app_id": st.just("A0GPUBOT01"),
            "is_enterprise_install": st.just("false"),
            "response_url": st.just(bot.slack.response_url("fuzz-cmd")),
            "trigger_id": st.just("1.1234567890.fuzz"),
        }
    )


def action_payloads(bot: FuzzBot) -> st.SearchStrategy[dict[str, Any]]:
    """block_actions payloads for the app's action ids (see :func:`fs.block_actions`)."""
    slugs = tuple(bot.services.catalog.slugs)
    return fs.block_actions(
        action_ids=Listeners.ids(bot.slack.listeners.actions),
        pairs=INPUT_IDS,
        users=USERS,
        team=TEAM_ID,
        channel=CHANNEL,
        response_url=bot.slack.response_url("fuzz-act"),
        metadata=fs.picker_metadata(slugs, CHANNEL),
        value_words=[*slugs, "mine", "running"],
    )


def submission_payloads(bot: FuzzBot) -> st.SearchStrategy[dict[str, Any]]:
    """view_submission payloads for the app's callback ids (see :func:`fs.view_submission`),
    a near-valid picker submission among them (:func:`fs.deploy_state`)."""
    slugs = tuple(bot.services.catalog.slugs)
    return fs.view_submission(
        callback_ids=Listeners.ids(bot.slack.listeners.views),
        pairs=INPUT_IDS,
        users=USERS,
        team=TEAM_ID,
        metadata=fs.picker_metadata(slugs, CHANNEL),
        value_words=[*slugs, CHANNEL],
        states=fs.deploy_state(CHANNEL, fs.value_strings((*slugs, CHANNEL))),
    )


@fuzz_settings(150)
@given(data=st.data())
def test_slash_commands_survive_hostile_text(payload_bot: FuzzBot, data: st.DataObject) -> None:
    """``/templates <text>`` with any text, from an admin or not: sub-command names followed
    by garbage, odd numbers, mentions, control characters, huge texts."""
    bot = payload_bot
    form = data.draw(bot.strategy("command", lambda: command_forms(bot)), label="form")
    run(bot, lambda: bot.harness.post(urlencode(form), "application/x-www-form-urlencoded"))


@fuzz_settings(200)
@given(data=st.data())
def test_block_actions_survive_hostile_payloads(payload_bot: FuzzBot, data: st.DataObject) -> None:
    """A block_actions payload for every action id the app registers, with generated values
    (strings, huge and negative numbers, JSON, deep nesting) and fields dropped or mistyped."""
    bot = payload_bot
    payload = data.draw(bot.strategy("actions", lambda: action_payloads(bot)), label="payload")
    run(bot, lambda: bot.harness.interaction(payload))


@fuzz_settings(200)
@given(data=st.data())
def test_view_submissions_survive_hostile_payloads(
    payload_bot: FuzzBot, data: st.DataObject
) -> None:
    """A view_submission for every callback id the app registers, with generated
    ``state.values`` (the bot's own block and action ids, any shapes; a near-valid picker) and
    ``private_metadata`` (the bot's JSON with odd values, deep nesting, huge strings)."""
    bot = payload_bot
    strategy = bot.strategy("submissions", lambda: submission_payloads(bot))
    payload = data.draw(strategy, label="payload")
    run(bot, lambda: bot.harness.interaction(payload))


def _port(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value.strip()):
        number = int(value.strip())
    else:
        return None
    return number if 1 <= number <= 65535 else None


def instance_targets(record: dict[str, Any] | None) -> frozenset[tuple[str, int]]:
    """The (address, port) pairs an instance record makes legitimate to reach: its
    ``public_ipaddr`` if that is an IP address, with each ``HostPort`` in ``ports`` that is a
    port number."""
    if not record:
        return frozenset()
    address = _ip(record.get("public_ipaddr"))
    ports = record.get("ports")
    if address is None or not isinstance(ports, dict):
        return frozenset()
    found = {
        _port(entry.get("HostPort"))
        for entries in ports.values()
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    }
    return frozenset((address, port) for port in found if port is not None)


@fuzz_settings(30)
@given(data=st.data())
def test_poller_survives_hostile_instance_records(poller_bot: FuzzBot, data: st.DataObject) -> None:
    """A deployment whose instance Vast.ai lists with generated fields (hostile addresses
    aimed at the sentinel, host names, IPv6, ports 0 / 70000 / ``"abc"``, wrong types,
    missing fields, broadcasts in ``gpu_name``), then a poller pass, its requester asking for
    the login by DM and for ``/templates mine``, and an admin for ``/templates running``."""
    from tests.test_poller import deploy

    bot = poller_bot
    poller = bot.services.poller
    assert isinstance(poller, StatusPoller)
    dep = deploy(bot.harness)
    instance_id = dep.instance_id
    assert instance_id is not None
    try:
        bot.sim.advance(4)  # running, ports mapped, the app answering
        real = bot.sim.real_record(instance_id)
        changes, dropped = data.draw(fs.instance_changes(bot.sentinel.port), label="record")
        bot.sim.set_record(instance_id, fs.resolve_changes(changes, real), dropped)
        targets = instance_targets(bot.sim.instance(instance_id))
        own = frozenset({("DELETE", f"/api/v0/instances/{instance_id}/")})

        mark = bot.mark()
        poller.tick()
        bot.settle()
        bot.check(mark, None, targets=targets, writes=own)

        for send in (
            lambda: bot.harness.block_action("deployment_credentials", str(dep.id), user=ALICE),
            lambda: bot.harness.command("mine", user=ALICE),
            lambda: bot.harness.command("running", user=ADMIN),
        ):
            mark = bot.mark()
            response = send()
            bot.settle()
            bot.check(mark, response, targets=targets, writes=own)
    finally:
        bot.sim.forget(instance_id)
        current = storage.get_deployment(bot.services.session_factory, dep.id)
        if current is not None and current.status not in (
            DeploymentStatus.DESTROYED,
            DeploymentStatus.FAILED,
        ):
            storage.update_status(
                bot.services.session_factory,
                dep.id,
                expected_status=None,
                new_status=DeploymentStatus.DESTROYED,
            )
