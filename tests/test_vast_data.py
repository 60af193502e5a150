"""Vast.ai's data is untrusted input wherever it reaches a URL, a probe or a Slack message.

* The address rules (pure table): a real Vast.ai instance has a public address; loopback,
  private, link-local (the cloud metadata address 169.254.169.254 included), multicast,
  unspecified, reserved and the IPv6 forms of such IPv4 addresses are refused unless the bot
  talks to a local simulator (``ALLOW_PRIVATE_INSTANCE_ADDRESSES``, or the built-in
  simulator's own rows).
* URLs are built from the parsed address and port only; the probe reads no body, follows no
  redirect and has a deadline.
* Vast.ai's text (``gpu_name``, ``status_msg``, statuses) is bounded where it enters and
  escaped for mrkdwn where it meets Slack: ``<!channel>`` never pings.
* End to end against the simulator, with the bot set up for real Vast.ai (a key, rows not
  simulated): an instance listing a loopback address, a port mapped to one of the bot's own
  services, or ``127.0.0.1:P/internal/admin?delete=all&x=`` makes no request to
  any address, puts no URL in the channel and no token in a DM.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

import storage
from bot.addresses import NOT_AN_ADDRESS, http_url, not_public, reachable_ip
from bot.notices import UnmanagedInstance
from bot.playground.slack_api import FakeSlack
from bot.services import states
from bot.services.probe import Prober
from bot.slack.blocks import notify
from bot.slack.blocks.budgets import approval_request_message
from bot.slack.blocks.deploy import offer_switched_note
from bot.slack.blocks.lifetimes import unmanaged_text
from bot.slack.blocks.status import app_urls, status_message
from bot.vast.models import MAX_NAME, Instance, Offer
from storage import DeploymentRecord, DeploymentStatus
from tests.fixtures.slack import CHANNEL, BotFactory, BotHarness, MovableClock
from tests.test_blocks_budgets import request as approval_request
from tests.test_poller import PASSWORD, _offer, insert_row, rent_labelled
from tests.test_states import NOW, TIMEOUT, instance, record, template

PING = "<!channel>"

# -- the address rules (pure) ----------------------------------------------------------------

ADDRESS_RULES: list[tuple[str, str | None]] = [
    ("8.8.8.8", None),
    ("1.1.1.1\n", None),
    ("2606:4700::1111", None),
    ("::ffff:8.8.8.8", None),  # IPv4-mapped public: judged by its IPv4 address
    ("64:ff9b::808:808", None),  # NAT64 of a public address
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd00:ec2::254", "private"),  # the EC2 metadata service's IPv6 address
    ("169.254.169.254", "link-local"),  # cloud metadata (AWS, GCP, Azure)
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ("100.100.100.200", "shared (carrier-grade NAT)"),  # Alibaba Cloud's metadata
    ("fec0::1", "site-local"),
    ("203.0.113.7", "not globally routable"),  # documentation (RFC 5737)
    ("2001:db8::1", "not globally routable"),  # documentation (RFC 3849)
    ("198.18.0.1", "not globally routable"),  # benchmarking
    ("0.1.2.3", "not globally routable"),  # "this network"
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("64:ff9b::7f00:1", "IPv4-mapped loopback"),  # NAT64 to 127.0.0.1
    ("2002:a00:1::1", "IPv4-mapped private"),  # 6to4 of 10.0.0.1
    ("localhost", "not an IP address"),
    ("127.0.0.1:8080/x?y=", "not an IP address"),
    ("fe80::1%eth0", "not an IP address"),
]


@pytest.mark.parametrize(("address", "kind"), ADDRESS_RULES)
def test_which_addresses_are_public(address: str, kind: str | None) -> None:
    assert not_public(address) == kind


@pytest.mark.parametrize(("address", "kind"), ADDRESS_RULES)
def test_reachable_ip_refuses_what_is_not_public_unless_allowed(
    address: str, kind: str | None
) -> None:
    found, why = reachable_ip(address)
    if kind is None:
        assert found is not None and why is None
    elif kind == "not an IP address":
        assert found is None and why == NOT_AN_ADDRESS
        assert reachable_ip(address, allow_private=True) == (None, NOT_AN_ADDRESS)
    else:
        assert found is None and why is not None and f"is not public ({kind})" in why
        allowed, none = reachable_ip(address, allow_private=True)
        assert allowed is not None and none is None  # a local simulator's addresses


def test_absent_addresses_are_no_problem_yet() -> None:
    for value in (None, "", " \n"):
        assert reachable_ip(value) == (None, None)
    assert reachable_ip(42) == (None, NOT_AN_ADDRESS)


@pytest.mark.parametrize(
    "path", ["//evil.example/x", "@evil.example/", "/\\evil.example", "/a b", "/%2e%2e/x?y#z"]
)
def test_a_url_always_reaches_the_address_and_port_it_was_built_from(path: str) -> None:
    url = http_url("8.8.8.8", 41888, path)
    assert url is not None
    parsed = httpx.URL(url)
    assert (parsed.host, parsed.port, parsed.scheme) == ("8.8.8.8", 41888, "http")


def test_a_url_is_http_or_https_only() -> None:
    assert http_url("8.8.8.8", 41888, "/", scheme="https") == "https://8.8.8.8:41888/"
    assert http_url("8.8.8.8", 41888, "/", scheme="file") is None


# -- what enters: the models ---------------------------------------------------------------


def test_vast_text_is_bounded_and_on_one_line_where_it_enters() -> None:
    hostile = f"{PING}\nRTX\t4090\u202e" + "x" * 500
    inst = Instance.from_api(
        {
            "id": 1,
            "gpu_name": hostile,
            "geolocation": hostile,
            "actual_status": hostile,
            "status_msg": "y" * 50_000,
        }
    )
    assert inst.gpu_name is not None and len(inst.gpu_name) <= MAX_NAME
    assert "\n" not in inst.gpu_name and "\u202e" not in inst.gpu_name
    assert inst.geolocation is not None and len(inst.geolocation) <= MAX_NAME
    assert inst.status_msg is not None and len(inst.status_msg) <= 2000
    offer = Offer.from_api({"id": 2, "gpu_name": hostile, "geolocation": hostile})
    # ``deployments.gpu_name`` is VARCHAR(100): a longer name failed the deploy on PostgreSQL.
    assert len(offer.gpu_name) <= MAX_NAME and "\n" not in offer.gpu_name


@pytest.mark.parametrize("token", [f"`{PING}`", "a b", "x" * 600, "tok&en=<1>", 7])
def test_a_jupyter_token_that_is_not_a_token_is_never_kept(token: Any) -> None:
    assert Instance.from_api({"id": 1, "jupyter_token": token}).jupyter_token is None
    assert Instance.from_api({"id": 1, "jupyter_token": "53fc448d-a0"}).jupyter_token


# -- the poller's state mapping: unreachable, never probed -----------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::ffff:127.0.0.1", "0.0.0.0", "fe80::1"],
)
def test_an_instance_whose_address_is_not_public_is_unreachable(address: str) -> None:
    inst = instance(public_ipaddr=address, ssh_host=address)
    verdict = states.assess(record(), inst, template(), now=NOW, timeout=TIMEOUT)
    assert verdict.status == "provisioning" and verdict.probe_url is None
    assert verdict.connection is not None and verdict.connection.public_ip is None
    assert verdict.connection.ssh_host is None  # no SSH command to it either
    assert verdict.unreachable is not None and "is not public" in verdict.unreachable
    # The same instance from a local simulator is probed.
    allowed = states.assess(
        record(), inst, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert allowed.probe_url is not None and allowed.unreachable is None


def test_a_ready_deployment_whose_address_turns_private_loses_its_urls() -> None:
    ready = record(status="ready", public_ip="8.8.8.8", ports_json='{"8888": 41888}', ready_at=NOW)
    verdict = states.assess(
        ready, instance(public_ipaddr="10.0.0.5"), template(), now=NOW, timeout=TIMEOUT
    )
    assert verdict.status == "ready" and verdict.connection is not None
    assert verdict.connection.public_ip is None and verdict.unreachable is not None


def test_an_unreachable_instance_times_out_with_the_reason() -> None:
    old = record(created_at=NOW - TIMEOUT - timedelta(minutes=1))
    inst = instance(public_ipaddr="169.254.169.254")
    verdict = states.assess(old, inst, template(), now=NOW, timeout=TIMEOUT)
    assert verdict.status == "failed" and verdict.destroy
    assert verdict.reason is not None
    assert "169.254.169.254 is not public (link-local)" in verdict.reason
    garbage = instance(public_ipaddr="127.0.0.1:9/admin?x=")
    verdict = states.assess(old, garbage, template(), now=NOW, timeout=TIMEOUT)
    assert verdict.reason is not None and NOT_AN_ADDRESS in verdict.reason


def test_the_probe_url_reaches_the_instance_whatever_the_health_path() -> None:
    hostile = template().model_copy(update={"health_path": "/@127.0.0.1:9/\\x y"})
    url = states.probe_url(instance(public_ipaddr="8.8.8.8"), hostile)
    assert url is not None
    parsed = httpx.URL(url)
    assert (parsed.host, parsed.port) == ("8.8.8.8", 41888)


# -- what leaves: Slack messages -----------------------------------------------------------


def test_a_stored_address_that_is_a_host_name_gives_no_link_and_no_login_url() -> None:
    """A row's ``public_ip`` is an IP address or nothing: a host name stored there (by an
    older version, or by hand) never becomes a link, nor the ``?token=`` login URL."""
    dep = record(
        status="ready",
        public_ip="evil.example",
        ports_json='{"8888": 41888}',
        ready_at=NOW,
        web_password="pw-secret",
    )
    assert app_urls(dep, template()) == []
    dm = _text(notify.secrets_dm(dep, template(), has_ssh_key=True))
    assert "evil.example" not in dm and "token=" not in dm
    assert "evil.example" not in notify.ready_text(dep, template())


def _text(payload: Any) -> str:
    return json.dumps(payload)


def test_a_gpu_name_that_pings_does_not_ping_in_any_message() -> None:
    dep = record(
        gpu_name=PING,
        status="ready",
        public_ip="8.8.8.8",
        ports_json='{"8888": 41888}',
        ready_at=NOW,
        web_password="pw",
    )
    payloads: list[Any] = [
        status_message(dep, template(), now=NOW),
        notify.ready_text(dep, template()),
        notify.secrets_dm(dep, template(), has_ssh_key=True),
        notify.failed_text(dep),
        notify.gone_text(dep),
        notify.stopped_outside_text(dep),
        approval_request_message(
            approval_request(dep=replace(dep, status=DeploymentStatus.PENDING_APPROVAL)), now=NOW
        ),
        offer_switched_note(
            dep, Offer(id=1, gpu_name=PING, dph_total=1.0), Offer(id=2, gpu_name=PING)
        ),
        unmanaged_text([UnmanagedInstance(7, PING, 1, 0.5, PING)]),
    ]
    for payload in payloads:
        assert PING not in _text(payload)
        assert "&lt;!channel&gt;" in _text(payload)


@pytest.mark.parametrize("actual", ["exited", "created"])
def test_vast_status_messages_in_failure_reasons_do_not_ping(actual: str) -> None:
    msg = f"Error: {PING} <https://evil.example|Open JupyterLab> failed"
    inst = instance(actual, status_msg=msg, intended_status="running")
    verdict = states.assess(record(), inst, template(), now=NOW, timeout=TIMEOUT)
    assert verdict.status == "failed" and verdict.reason is not None
    assert PING not in verdict.reason and "<https://evil" not in verdict.reason
    failed = record(status="failed", reason=verdict.reason)
    assert PING not in _text(status_message(failed, template(), now=NOW))
    assert PING not in notify.failed_text(failed)


def test_the_timeout_reason_escapes_vast_status_words() -> None:
    old = record(created_at=NOW - TIMEOUT - timedelta(minutes=1))
    inst = instance("loading", actual_status=f"{PING}", status_msg=None)
    verdict = states.assess(old, inst, template(), now=NOW, timeout=TIMEOUT)
    assert verdict.status == "failed" and verdict.reason is not None
    assert PING not in verdict.reason


# -- the probe: no redirect, no body, a deadline ---------------------------------------------


def test_the_probe_never_follows_a_redirect() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/"})

    prober = Prober(transport=httpx.MockTransport(handler))
    try:
        assert prober.is_up("http://8.8.8.8:41888/api") is True
    finally:
        prober.close()
    assert seen == ["http://8.8.8.8:41888/api"]


class _Hostile:
    """A loopback server answering every connection with ``head`` and then, slowly or
    forever, ``trickle`` (one chunk every ``every`` seconds) until the client goes."""

    def __init__(self, head: bytes, trickle: bytes, every: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.head, self.trickle, self.every = head, trickle, every
        self.sent = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.head)
                while not self.stop.is_set():
                    conn.sendall(self.trickle)
                    self.sent += len(self.trickle)
                    if self.every:
                        time.sleep(self.every)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _probe_within(prober: Prober, url: str, seconds: float) -> tuple[bool, bool | None]:
    """(finished within ``seconds``, its answer)."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(prober.is_up(url)), daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive(), result[0] if result else None)


def test_the_probe_reads_no_body() -> None:
    """An app answering 200 with an endless body: the probe answers at once and reads none
    of it (the body of a host's choosing never fills the bot's memory)."""
    server = _Hostile(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"x" * 65536, 0)
    prober = Prober(timeout=1.0)
    try:
        finished, up = _probe_within(prober, f"http://127.0.0.1:{server.port}/api", 5)
    finally:
        server.close()
        prober.close()
    assert finished and up is True


def test_the_probe_gives_up_on_an_app_that_answers_a_byte_at_a_time() -> None:
    """Each byte within the read timeout, so only a deadline for the whole request ends it."""
    server = _Hostile(b"HTTP/1.1 200 OK\r\n", b"X", 0.2)
    prober = Prober(timeout=1.0)  # and a deadline of twice that
    try:
        started = time.monotonic()
        finished, up = _probe_within(prober, f"http://127.0.0.1:{server.port}/api", 6)
        took = time.monotonic() - started
    finally:
        server.close()
        prober.close()
    assert finished and up is False and took < 4.5


# -- end to end: the bot set up for real Vast.ai, against the simulator ---------------------


class _Recorder:
    """A service of the bot's own network on loopback (an admin endpoint): records every
    request it gets."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    found = _Recorder()
    yield found
    found.close()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


def _real_vast_bot(bot_factory: BotFactory, clock: MovableClock, **overrides: Any) -> BotHarness:
    """The bot as it runs against real Vast.ai (a key: its rows are not simulated), talking
    to the simulator (the client is the test's)."""
    return bot_factory(clock=clock, vast_api_key="vast-key-for-the-simulator", **overrides)


def _deploy(harness: BotHarness, now: datetime, *, simulated: bool = False) -> DeploymentRecord:
    """A JupyterLab deployment (token ``PASSWORD``) rented and announced, its row not
    simulated (as the deploy service makes them with a Vast.ai key) unless ``simulated``."""
    services = harness.services
    sf = services.session_factory
    found = services.catalog.get("jupyter-lab")
    assert found is not None
    offer = _offer(harness.vast)
    dep = insert_row(sf, found, offer, simulated=simulated, now=now)
    rent_labelled(services.vast, sf, found, offer, dep, now=now)
    fresh = storage.get_deployment(sf, dep.id)
    assert fresh is not None
    posted = services.messages.post_status(fresh, found)
    assert posted is not None and posted.channel == CHANNEL
    storage.set_message(sf, dep.id, posted.channel, posted.ts)
    again = storage.get_deployment(sf, dep.id)
    assert again is not None
    return again


def _requests_sent(harness: BotHarness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the poller's probe sends a request to, from now on."""
    sent: list[str] = []
    http = harness.services.poller.prober._http
    real = http.send

    def send(request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(str(request.url))
        return real(request, **kwargs)

    monkeypatch.setattr(http, "send", send)
    return sent


def _current(harness: BotHarness, dep: DeploymentRecord) -> DeploymentRecord:
    found = storage.get_deployment(harness.services.session_factory, dep.id)
    assert found is not None
    return found


def _slack_text(fake_slack: FakeSlack) -> str:
    return json.dumps([call.args for call in fake_slack.calls])


@pytest.mark.parametrize(
    "listed",
    [
        pytest.param({"public_ipaddr": "127.0.0.1"}, id="loopback"),
        pytest.param({"public_ipaddr": "::ffff:127.0.0.1"}, id="ipv4-mapped-loopback"),
        pytest.param({"public_ipaddr": "0.0.0.0"}, id="unspecified"),
        pytest.param(
            {"public_ipaddr": "127.0.0.1", "ports": {"8888/tcp": [{"HostPort": "{P}"}]}},
            id="port-mapped-to-a-service-of-the-bot",
        ),
        pytest.param({"public_ipaddr": "127.0.0.1:{P}/internal/admin?delete=all&x="}, id="issue"),
    ],
)
def test_an_instance_that_names_the_bots_own_network_gets_no_request(
    bot_factory: BotFactory,
    clock: MovableClock,
    fake_slack: FakeSlack,
    recorder: _Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    listed: dict[str, Any],
) -> None:
    bot = _real_vast_bot(bot_factory, clock)
    sent = _requests_sent(bot, monkeypatch)
    dep = _deploy(bot, clock())
    assert dep.instance_id is not None
    fields = json.loads(json.dumps(listed).replace("{P}", str(recorder.port)))
    bot.vast.set_listed(dep.instance_id, **fields)
    caplog.set_level(logging.WARNING, logger="bot.services.poller")

    bot.services.poller.tick()
    bot.vast.advance(4)  # running, every port mapped, the app answers
    bot.services.poller.tick()
    clock.advance(minutes=1)
    bot.services.poller.tick()

    assert sent == [] and recorder.hits == []  # no request to any address
    now = _current(bot, dep)
    assert now.status == "provisioning" and now.public_ip is None  # not reachable yet
    shown = _slack_text(fake_slack)
    assert "127.0.0.1" not in shown and "0.0.0.0" not in shown  # no URL in the channel
    assert "token=" not in shown and PASSWORD not in shown  # no token in a DM
    warnings = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1 and f"deployment {dep.id}" in warnings[0]  # logged once

    clock.advance(minutes=40)  # past DEPLOY_TIMEOUT_MINUTES: destroyed, with the reason
    bot.services.poller.tick()
    failed = _current(bot, dep)
    assert failed.status == "failed" and failed.reason is not None
    assert "not public" in failed.reason or NOT_AN_ADDRESS in failed.reason
    assert sent == [] and recorder.hits == []


def test_with_the_simulator_allowance_the_same_instance_is_probed_and_linked(
    bot_factory: BotFactory,
    clock: MovableClock,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ALLOW_PRIVATE_INSTANCE_ADDRESSES`` (a simulator on this machine): the instance on
    127.0.0.1 is probed, becomes ready and its URL is posted (the control for the test
    above)."""
    bot = _real_vast_bot(bot_factory, clock, allow_private_instance_addresses=True)
    sent = _requests_sent(bot, monkeypatch)
    dep = _deploy(bot, clock())
    bot.services.poller.tick()
    bot.vast.advance(4)
    bot.services.poller.tick()
    assert _current(bot, dep).status == "ready"
    assert sent and all(url.startswith("http://127.0.0.1:") for url in sent)
    assert "http://127.0.0.1:" in _slack_text(fake_slack)


def test_a_gpu_name_that_pings_does_not_ping_the_channel(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """An offer whose ``gpu_name`` is ``<!channel>``: the status message and the ready
    notification show it escaped."""
    bot = bot_factory(clock=clock)
    offer_id = bot.vast.add_offer(gpu_name=PING, direct_port_count=100, rentable=True)
    services = bot.services
    found = services.catalog.get("jupyter-lab")
    assert found is not None
    offer = next(o for o in bot.vast.offers if o["id"] == offer_id)
    dep = insert_row(services.session_factory, found, offer, now=clock())
    rent_labelled(services.vast, services.session_factory, found, offer, dep, now=clock())
    fresh = _current(bot, dep)
    posted = services.messages.post_status(fresh, found)
    assert posted is not None
    storage.set_message(services.session_factory, dep.id, posted.channel, posted.ts)
    services.poller.tick()
    bot.vast.advance(4)
    services.poller.tick()
    assert _current(bot, dep).status == "ready"
    shown = _slack_text(fake_slack)
    assert "&lt;!channel&gt;" in shown and PING not in shown


def test_a_status_message_that_pings_does_not_ping_the_channel(
    bot_factory: BotFactory, clock: MovableClock, fake_slack: FakeSlack
) -> None:
    """The container exits before ready with ``<!channel>`` in Vast.ai's ``status_msg``:
    the failure reason in the status message and the thread shows it escaped."""
    bot = bot_factory(clock=clock)
    dep = _deploy(bot, clock(), simulated=True)
    assert dep.instance_id is not None
    bot.services.poller.tick()
    bot.vast.exit_instance(dep.instance_id, msg=f"{PING} exited with code 1")
    bot.vast.advance(4)
    bot.services.poller.tick()
    assert _current(bot, dep).status == "failed"
    shown = _slack_text(fake_slack)
    assert "&lt;!channel&gt;" in shown and PING not in shown
