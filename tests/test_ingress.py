"""The HTTP edge: size, then signature, then parsing (bot/slack/ingress.py, bot/slack/server.py).

The real bot over HTTP (waitress, as ``python -m bot`` serves it) and its WSGI application
called directly: bodies over the limit are refused with 413 before they are read, unsigned and
malformed requests get a 4xx and one log line without a traceback, and a signed body that is
not a Slack payload is a 400, never a 500. In OAuth mode the unsigned install paths answer
garbage without a 500, and expired OAuth states are deleted after the poller's pass.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import logging
import socket
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.slack.ingress import MAX_BODY_BYTES, REPLAY_WINDOW_SECONDS, read_body
from tests.fixtures.oauth import OAuthBot
from tests.fixtures.slack import SIGNING_SECRET, BotHarness

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

#: Bodies no Slack request has: (content type, raw bytes).
HOSTILE = [
    pytest.param(FORM, b"payload={not json", id="payload-not-json"),
    pytest.param(FORM, b"payload=[1]", id="payload-list"),
    pytest.param(FORM, b"payload=1", id="payload-number"),
    pytest.param(FORM, b"payload=%22x%22", id="payload-string"),
    pytest.param(FORM, b"payload=null", id="payload-null"),
    pytest.param(FORM, b"payload=\xff\xfe{}", id="invalid-utf8"),
    pytest.param(FORM, b"payload=" + b"[" * 100_000, id="payload-deep-nesting"),
    pytest.param(JSON, b"[" * 100_000, id="json-deep-nesting"),
    pytest.param(JSON, b'{"a":' * 50_000, id="json-deep-object"),
    pytest.param(JSON, b"[1]", id="json-list"),
    pytest.param(JSON, b'{"type": "event_callback", "enterprise": 5}', id="json-bad-enterprise"),
    pytest.param(JSON, b'{"type": "event_callback", "authorizations": 5}', id="json-bad-auths"),
    pytest.param(FORM, b'payload={"type":"block_actions","response_urls":["x"]}', id="bad-urls"),
    pytest.param(FORM, b'payload={"type":"block_actions","team":7}', id="payload-team-number"),
    pytest.param(FORM, b'payload={"type":"block_actions","channel":3}', id="payload-channel-3"),
]


def sign_bytes(body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers over the raw bytes (HMAC-SHA256 of ``v0:<ts>:<body>``)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest.hexdigest()}"}


def loud_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every record at WARNING or above."""
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def assert_one_quiet_line(caplog: pytest.LogCaptureFixture) -> str:
    """Exactly one WARNING+ record, one line, no traceback; returns it."""
    records = loud_records(caplog)
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records]
    assert len(records) == 1, [r.getMessage() for r in records]
    line = records[0].getMessage()
    assert "\n" not in line and "Traceback" not in caplog.text
    return line


class RaisingInput(io.RawIOBase):
    """A ``wsgi.input`` that holds ``size`` bytes of ``a`` and fails the test when more than
    ``allowed`` bytes are read from it."""

    def __init__(self, size: int, allowed: int) -> None:
        self.size = size
        self.allowed = allowed
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        want = self.size - self.read_bytes if n is None or n < 0 else n
        want = min(want, self.size - self.read_bytes)
        if self.read_bytes + want > self.allowed:
            raise AssertionError(f"read {self.read_bytes + want} bytes, allowed {self.allowed}")
        self.read_bytes += want
        return b"a" * want


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    """Call a WSGI application: ``(status line, body)``."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)

    chunks: Iterable[bytes] = app(environ, start_response)
    return statuses[0], b"".join(chunks)


def environ_for(body_input: Any, **extra: Any) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": FORM,
        "wsgi.input": body_input,
    }
    environ.update(extra)
    return environ


# -- size ------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_before_it_is_read(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Length`` of 100 MB, signed headers or not: 413 and not one byte read."""
    caplog.set_level(logging.INFO)
    size = 100 * 1024 * 1024
    for headers in ({}, sign_bytes(b"a" * 10)):
        stream = RaisingInput(size, allowed=0)
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        status, body = call_wsgi(
            bot.runtime.wsgi_app, environ_for(stream, CONTENT_LENGTH=str(size), **extra)
        )
        assert status.startswith("413"), status
        assert stream.read_bytes == 0
        assert b"payload_too_large" in body
    lines = [r.getMessage() for r in loud_records(caplog)]
    assert len(lines) == 2 and all("413" in line and "not read" in line for line in lines)


def test_a_body_without_length_is_read_only_up_to_the_limit(bot: BotHarness) -> None:
    """A chunked body (no ``Content-Length``; the server says its input ends) is read up to
    the limit and one byte more, then refused."""
    stream = RaisingInput(10 * MAX_BODY_BYTES, allowed=MAX_BODY_BYTES + 1)
    status, _ = call_wsgi(
        bot.runtime.wsgi_app,
        environ_for(stream, **{"wsgi.input_terminated": True, **_signed_environ(b"x")}),
    )
    assert status.startswith("413"), status
    assert stream.read_bytes == MAX_BODY_BYTES + 1


def _signed_environ(body: bytes) -> dict[str, str]:
    return {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in sign_bytes(body).items()}


def test_read_body_refuses_a_length_that_is_not_a_number() -> None:
    for declared in ("abc", "-1", "1e9", "١٢"):
        with pytest.raises(Exception) as raised:
            read_body({"CONTENT_LENGTH": declared, "wsgi.input": io.BytesIO(b"")})
        assert getattr(raised.value, "status", None) == 400


def _raw_request(url: str, head: bytes, body: bytes, timeout: float = 5.0) -> bytes:
    """Send ``head`` and ``body`` over a plain socket; the first bytes of the answer (the
    server may close before the body is sent: that is the point)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):  # refused mid-body: read what was answered
            sock.sendall(body)
        try:
            return sock.recv(200)
        except ConnectionResetError:
            return b""


def test_the_server_refuses_a_declared_100_mb_body_without_waiting_for_it(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """waitress' own limit: a ``Content-Length`` of 100 MB is answered 413 as soon as the
    headers are in (before, waitress waited for the whole body, up to its 1 GB default), with
    one log line."""
    caplog.set_level(logging.INFO)
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: " + FORM.encode() + b"\r\n"
        b"Content-Length: 104857600\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_request(bot.slack.server.url, head, b"a" * 65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert time.monotonic() - started < 3
    line = assert_one_quiet_line(caplog)
    assert "413" in line and "by the server" in line


def test_a_body_of_exactly_the_limit_passes_and_one_byte_more_does_not(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    base = b"ssl_check=1&token=x&pad="
    body = base + b"a" * (MAX_BODY_BYTES - len(base))
    assert len(body) == MAX_BODY_BYTES
    ok = bot.http.post(
        "/slack/events", content=body, headers={"Content-Type": FORM, **sign_bytes(body)}
    )
    assert ok.status_code == 200
    over = body + b"a"
    refused = bot.http.post(
        "/slack/events", content=over, headers={"Content-Type": FORM, **sign_bytes(over)}
    )
    assert refused.status_code == 413


# -- unsigned and malformed --------------------------------------------------------------------


@pytest.mark.parametrize(("content_type", "body"), HOSTILE)
def test_unsigned_hostile_bodies_get_4xx_and_one_line(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    answer = bot.http.post("/slack/events", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 401
    line = assert_one_quiet_line(caplog)
    assert "refused POST /slack/events" in line and "unsigned" in line


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        pytest.param(
            {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=" + "0" * 64},
            400,
            "not an integer",
            id="timestamp-abc",
        ),
        pytest.param(
            {"X-Slack-Request-Timestamp": "1" * 40, "X-Slack-Signature": "v0=" + "0" * 64},
            400,
            "not an integer",
            id="timestamp-huge",
        ),
        pytest.param(
            {"X-Slack-Request-Timestamp": "١٢٣", "X-Slack-Signature": "v0=" + "0" * 64},
            400,
            "not an integer",
            id="timestamp-arabic-digits",
        ),
        pytest.param(
            {"X-Slack-Request-Timestamp": "NOW", "X-Slack-Signature": "v0=é"},
            400,
            "v0=<64 hex digits>",
            id="signature-not-hex",
        ),
        pytest.param(
            {"X-Slack-Request-Timestamp": "FUTURE"} | {"X-Slack-Signature": "v0=" + "0" * 64},
            401,
            "in the future",
            id="timestamp-future",
        ),
        pytest.param(
            {
                "X-Slack-Request-Timestamp": "NOW",
                "X-Slack-Signature": "v0=" + "0" * 64,
            },
            401,
            "does not match",
            id="signature-wrong",
        ),
    ],
)
def test_malformed_signature_headers_get_4xx_and_one_line(
    bot: BotHarness,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    body = b"command=%2Ftemplates&text="
    # Timestamps are taken when the test runs, not when it is collected (a long run would
    # push a collection-time "now" out of the 5-minute window).
    now = int(time.time())
    moments = {"NOW": str(now), "FUTURE": str(now + 2 * REPLAY_WINDOW_SECONDS)}
    headers = {k: moments.get(v, v) for k, v in headers.items()}
    encoded = {k: v.encode() for k, v in headers.items()}  # httpx would refuse non-ASCII str
    answer = bot.http.post("/slack/events", content=body, headers={"Content-Type": FORM, **encoded})
    assert answer.status_code == status
    assert reason in assert_one_quiet_line(caplog)


@pytest.mark.parametrize(("content_type", "body"), HOSTILE)
def test_signed_bodies_that_are_no_payload_get_400_never_500(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    answer = bot.http.post(
        "/slack/events", content=body, headers={"Content-Type": content_type, **sign_bytes(body)}
    )
    assert answer.status_code == 400
    line = assert_one_quiet_line(caplog)
    assert "refused POST /slack/events" in line
    assert (
        ("UTF-8" in line)
        if b"\xff" in body
        else ("not a Slack payload" in line or "JSON object" in line)
    )


def test_a_signed_command_still_reaches_bolt_after_refusals(bot: BotHarness) -> None:
    for _, body in ((p.values[0], p.values[1]) for p in HOSTILE):
        bot.http.post("/slack/events", content=body, headers={"Content-Type": FORM})
    assert bot.command("").status_code == 200
    assert bot.http.get("/healthz").status_code == 200
    assert bot.http.get("/api/templates").status_code == 200


# -- OAuth mode: the unsigned GET paths ----------------------------------------------------------

GARBAGE_QUERIES = [
    "/slack/install?%ff%fe=%00&state=%ff",
    "/slack/install?" + "a=" + "b" * 60_000,
    "/slack/oauth_redirect",
    "/slack/oauth_redirect?code=%ff%fe&state=%00",
    "/slack/oauth_redirect?code=a&code=b&state=x&state=y",
    "/slack/oauth_redirect?state=not-a-state",
    "/slack/oauth_redirect?error=%3Cscript%3Ealert(1)%3C/script%3E",
    "/slack/oauth_redirect?code=abc&state=" + "x" * 5000,
]


def test_oauth_paths_answer_garbage_without_a_500(
    oauth_bot: OAuthBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    http = oauth_bot.harness.http
    for path in GARBAGE_QUERIES:
        for cookie in (None, "slack-app-oauth-state=%ff%00; other=\x7f"):
            headers = {"Cookie": cookie} if cookie else {}
            answer = http.get(path, headers=headers)
            assert answer.status_code < 500, (path, answer.status_code)
    assert not [r for r in caplog.records if r.exc_info]
    # A GET with a body over the limit is refused like a POST.
    big = http.request("GET", "/slack/install", content=b"a" * (MAX_BODY_BYTES + 1))
    assert big.status_code == 413


# -- Socket Mode -------------------------------------------------------------------------------


def test_socket_mode_drops_an_oversized_message_before_parsing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """slack_sdk's built-in client reads a frame of any size (it has no option to bound it), so
    a message over the limit is dropped before ``json.loads``, with one line; the next message
    is served as before."""
    from slack_bolt import Ack, App
    from slack_sdk import WebClient

    from bot.slack.server import SocketModeWatch
    from tests.fakes.socket_mode import FakeSocketMode, SocketSlack

    caplog.set_level(logging.INFO)
    with FakeSocketMode() as endpoint:
        slack = SocketSlack(endpoint)
        slack.start()
        app = App(
            client=WebClient(token="xoxb-test", base_url=slack.api_url),
            request_verification_enabled=False,
            token_verification_enabled=False,
        )
        seen: list[str] = []

        @app.command("/templates")
        def answer(ack: Ack, command: dict[str, Any]) -> None:
            seen.append(command["text"][:10])
            ack("ok")

        watch = SocketModeWatch(
            app, "xapp-1-A0TEST-1-0123", web_client=app.client, max_message_chars=64 * 1024
        )
        try:
            watch.start()

            def envelope(envelope_id: str, text: str) -> dict[str, Any]:
                payload = {"team_id": "T0GPU0001", "user_id": "U1", "command": "/templates"}
                return {
                    "envelope_id": envelope_id,
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": {**payload, "text": text},
                }

            endpoint.send(envelope("big", "x" * 100_000))
            endpoint.send(envelope("small", "hello"))
            endpoint.wait_for_ack("small")
            assert seen == ["hello"] and watch.dropped == 1
            assert not [m for m in endpoint.received if m.get("envelope_id") == "big"]
        finally:
            watch.close()
            slack.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.slack.ingress"]
    assert len(lines) == 1 and "refused a Socket Mode message" in lines[0]
    assert not [r for r in caplog.records if r.exc_info]
