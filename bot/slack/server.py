"""Serving Slack: HTTP mode (Bolt's WSGI adapter behind waitress) or Socket Mode (a watched
WebSocket connection), with ``GET /healthz`` and ``GET /metrics`` (Prometheus' text format,
:mod:`bot.metrics`) in both.

``POST /slack/events`` takes every Slack request (commands, interactivity, options, events),
through :class:`bot.slack.ingress.SlackIngress`: size, then signature, then parsing, before Bolt.
waitress is set to refuse a body over :data:`bot.slack.ingress.MAX_BODY_BYTES` itself (413, before
buffering it), and each request it refuses that way is logged in one line too.
``GET /api/templates`` and ``GET /api/templates/{slug}`` serve the template catalog read-only
as public JSON (:class:`CatalogApi`, no Slack signature), in both modes. waitress is a
production WSGI server (threaded, pure Python); Bolt's own development server is not used.

In Socket Mode Slack's requests arrive over a WebSocket that slack_sdk's built-in client opens
(``apps.connections.open``) and re-opens by itself when it closes or goes stale (no pong for
four ping intervals): :class:`SocketModeWatch` holds that client, reports its state
(``is_connected()``) to ``/healthz`` (served alone on ``PORT`` by :func:`make_health_app`), and
logs each disconnect and each reconnection in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from bot import logs
from bot.config import ConfigError
from bot.formats import format_duration
from bot.slack.ingress import (
    EVENTS_PATH,
    MAX_BODY_BYTES,
    SlackIngress,
    payload_team_id,
    printable,
    server_limits,
)
from catalog import Catalog, export_template

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
CATALOG_PATH = "/api/templates"

#: Seconds between two WebSocket pings (Bolt's default); a connection without a pong for four
#: of them is closed and opened again, and a failed reconnection is retried at this interval.
PING_INTERVAL = 10.0

#: How often :class:`SocketModeWatch` looks at the connection, seconds.
WATCH_SECONDS = 1.0

HealthCheck = Callable[[], Mapping[str, object]]
"""``() -> {name: value}``: each boolean value is a check (all true: 200, else 503); other
values (an age in seconds, a role, a one-line ``reason``) are reported as they are."""


def _health_answer(health: HealthCheck, start_response: StartResponse) -> Iterable[bytes]:
    """``{"ok": all, **checks}``: 200 when every boolean check is true, else 503."""
    try:
        checks = health()
    except Exception:  # an answer without a traceback, whatever broke
        logger.exception("health check failed")
        checks = {"health": False, "reason": "the health check itself failed: see the bot's log"}
    ok = all(value for value in checks.values() if isinstance(value, bool))
    body = json.dumps({"ok": ok, **checks}).encode()
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _is_health(environ: WSGIEnvironment) -> bool:
    return environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET"


Exposition = Callable[[], bytes]
"""``() -> body``: the metrics in Prometheus' text format (:meth:`bot.metrics.BotMetrics.
exposition`)."""


def _is_metrics(environ: WSGIEnvironment) -> bool:
    return environ.get("PATH_INFO") == METRICS_PATH and environ.get("REQUEST_METHOD") == "GET"


def _metrics_answer(metrics: Exposition, start_response: StartResponse) -> Iterable[bytes]:
    """200 with the exposition (``Content-Type``: prometheus_client's ``CONTENT_TYPE_LATEST``), or a
    500 without a traceback when building it failed (logged)."""
    try:
        body = metrics()
    except Exception:
        logger.exception("metrics exposition failed")
        body = b"# the metrics could not be built: see the bot's log\n"
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]
    start_response(
        "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
    )
    return [body]


#: The catalog's answers may be cached this long (it changes only when the bot restarts).
CATALOG_CACHE_CONTROL = "public, max-age=60"
CATALOG_METHODS = "GET, HEAD"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def _is_catalog(environ: WSGIEnvironment) -> bool:
    path = environ.get("PATH_INFO", "")
    return path == CATALOG_PATH or path.startswith(CATALOG_PATH + "/")


def _encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class CatalogApi:
    """The template catalog over HTTP, read-only public JSON (no Slack signature):

    * ``GET /api/templates`` → 200 ``{"templates": [<template>, …], "count": N}``, in catalog
      order (built-ins first, then ``CATALOG_DIR``'s);
    * ``GET /api/templates/{slug}`` → 200 ``<template>``, or 404
      ``{"error": "not_found", "message": "…"}`` for a slug the catalog does not have;
    * ``HEAD``: the same status and headers, no body; any other method → 405
      ``{"error": "method_not_allowed", …}`` with ``Allow: GET, HEAD``.

    ``<template>`` is :func:`catalog.export_template`'s object (the fields Details shows, units
    in the names, no env value or other secret). 200s carry ``Cache-Control:
    public, max-age=60`` and a strong ``ETag`` (``If-None-Match`` → 304). Every answer is
    ``application/json; charset=utf-8``. The answers are encoded once, here: the catalog is
    loaded at start and never changes while the bot runs.
    """

    def __init__(self, catalog: Catalog) -> None:
        records = [export_template(catalog, slug) for slug in catalog.slugs]
        bodies = {CATALOG_PATH: _encode({"templates": records, "count": len(records)})}
        for slug, record in zip(catalog.slugs, records, strict=True):
            bodies[f"{CATALOG_PATH}/{slug}"] = _encode(record)
        self._answers: dict[str, tuple[bytes, str]] = {
            path: (body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
            for path, body in bodies.items()
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        if path != CATALOG_PATH:
            path = path.rstrip("/")  # "/api/templates/" is the list, ".../vllm/" is vllm
        if method not in ("GET", "HEAD"):
            problem = {
                "error": "method_not_allowed",
                "message": "the catalog is read-only: use GET or HEAD",
            }
            return _json_answer(
                start_response,
                "405 Method Not Allowed",
                _encode(problem),
                [("Allow", CATALOG_METHODS)],
            )
        answer = self._answers.get(path)
        if answer is None:
            slug = path[len(CATALOG_PATH) + 1 :][:100]
            problem = {
                "error": "not_found",
                "message": f'no template "{slug}" in the catalog: GET {CATALOG_PATH} lists them',
            }
            return _json_answer(
                start_response, "404 Not Found", _encode(problem), head=method == "HEAD"
            )
        body, etag = answer
        cache = [("Cache-Control", CATALOG_CACHE_CONTROL), ("ETag", etag)]
        if _matches(environ.get("HTTP_IF_NONE_MATCH", ""), etag):
            start_response("304 Not Modified", cache)
            return [b""]
        return _json_answer(start_response, "200 OK", body, cache, head=method == "HEAD")


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak tags compared as strong, as
    RFC 9110 §13.1.2 says for If-None-Match; ``*`` matches any)."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _json_answer(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> Iterable[bytes]:
    start_response(
        status,
        [
            ("Content-Type", JSON_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            *(headers or []),
        ],
    )
    return [b""] if head else [body]


def make_wsgi_app(
    app: App,
    health: HealthCheck,
    *,
    signing_secret: str,
    catalog: Catalog | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    metrics: Exposition | None = None,
) -> WSGIApplication:
    """WSGI app: Slack requests go to Bolt through :class:`bot.slack.ingress.SlackIngress` (bodies
    over ``max_body_bytes`` → 413 unread, unsigned → 401, malformed → 400, each one log line;
    ``signing_secret`` is ``SLACK_SIGNING_SECRET``); ``GET /healthz`` answers 200 when every
    check in ``health()`` (e.g. ``{"database": True, "scheduler": True}``) is true, else 503;
    with a ``catalog``, ``/api/templates`` and ``/api/templates/{slug}`` serve it
    (:class:`CatalogApi`; None: those paths go to Bolt, which answers 404); with ``metrics``,
    ``GET /metrics`` answers its exposition (Prometheus' text format; no Slack signature: keep
    the path off the public internet, e.g. at the proxy, when that matters)."""
    bolt = SlackIngress(
        app, signing_secret=signing_secret, path=EVENTS_PATH, max_body_bytes=max_body_bytes
    )
    api = CatalogApi(catalog) if catalog is not None else None

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _is_health(environ):
            return _health_answer(health, start_response)
        if metrics is not None and _is_metrics(environ):
            return _metrics_answer(metrics, start_response)
        if api is not None and _is_catalog(environ):
            return api(environ, start_response)
        return bolt(environ, start_response)

    return wsgi


def make_health_app(
    health: HealthCheck, *, catalog: Catalog | None = None, metrics: Exposition | None = None
) -> WSGIApplication:
    """WSGI app for Socket Mode: ``GET /healthz`` (as in :func:`make_wsgi_app`; the checks
    include ``"socket"``), with ``metrics`` ``GET /metrics`` (as in :func:`make_wsgi_app`) and,
    with a ``catalog``, the catalog paths (:class:`CatalogApi`, as in
    HTTP mode: the port is open anyway, so tools read the catalog the same way in both modes);
    anything else is 404, since Slack's requests come over the WebSocket."""
    api = CatalogApi(catalog) if catalog is not None else None
    served = (
        "GET /healthz"
        + (f", GET {METRICS_PATH}" if metrics is not None else "")
        + (f" and GET {CATALOG_PATH}" if api is not None else "")
    )
    not_found = _encode({"ok": False, "error": f"not found: Socket Mode serves only {served}"})

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _is_health(environ):
            return _health_answer(health, start_response)
        if metrics is not None and _is_metrics(environ):
            return _metrics_answer(metrics, start_response)
        if api is not None and _is_catalog(environ):
            return api(environ, start_response)
        body = not_found
        start_response(
            "404 Not Found",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return wsgi


class _ConnectionChatter(logging.Filter):
    """Drops slack_sdk's per-attempt connection lines (several per disconnect, one per failed
    retry); :class:`SocketModeWatch` reports the state instead, one line per change."""

    PREFIXES = (
        "A new session has been established",
        "Starting to receive messages",
        "Stopped receiving messages",
        "The connection has been closed",
        "Received CLOSE event",
        "The session seems to be already closed",
        "Connecting to a new endpoint",
        "Connected to a new endpoint",
        "Using non-ssl socket",
        "Failed to establish a connection",
        "on_error invoked",
        "Error code:",
        "Failed to check the current session",
        "The connection seems to be stale",
        "Unable to send a ping message",
        "Received an unexpected response for handshake",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


#: slack_sdk's Socket Mode client logs here (Bolt's handler would use the app's logger).
SDK_LOGGER = logging.getLogger("bot.slack.server.socket_mode")
SDK_LOGGER.addFilter(_ConnectionChatter())


class ContextSocketModeHandler(SocketModeHandler):
    """Bolt's Socket Mode handler with the log context of :class:`bot.slack.ingress.SlackIngress`:
    each request over the socket is handled with a request id of its own (16 hex digits) and
    the payload's team id bound (:func:`bot.logs.bound`)."""

    def handle(self, client: Any, req: Any) -> None:
        payload = req.payload if isinstance(req.payload, dict) else {}
        with logs.bound(request_id=uuid.uuid4().hex[:16], team_id=payload_team_id(payload)):
            super().handle(client, req)


class SocketModeWatch:
    """Socket Mode for ``app``: the connection to Slack (slack_bolt's
    :class:`~slack_bolt.adapter.socket_mode.SocketModeHandler`, auto-reconnect on), what
    ``/healthz`` reports about it (:meth:`connected`), and a watcher thread that logs a
    disconnect, and the reconnection after it, in one line each.

    ``web_client``: where ``apps.connections.open`` is called (default: the app's client);
    ``ping_interval``: see :data:`PING_INTERVAL`; ``watch_seconds``: how often the state is
    looked at; ``max_message_chars``: a message over the socket longer than this is dropped
    before it is parsed, with one WARNING line (not acked: Slack retries it a few times, each
    dropped the same way). slack_sdk's built-in client has no frame-size option (it keeps
    reading a frame of any announced length), so this bounds what is parsed and dispatched,
    not what is received; the peer is Slack itself, over TLS, on a URL that
    ``apps.connections.open`` gave out.
    """

    def __init__(
        self,
        app: App,
        app_token: str,
        *,
        web_client: WebClient | None = None,
        ping_interval: float = PING_INTERVAL,
        watch_seconds: float = WATCH_SECONDS,
        max_message_chars: int = MAX_BODY_BYTES,
    ) -> None:
        self.handler = ContextSocketModeHandler(
            app,
            app_token,
            logger=SDK_LOGGER,
            web_client=web_client,
            auto_reconnect_enabled=True,
            ping_interval=ping_interval,
        )
        self.max_message_chars = max_message_chars
        self.dropped = 0
        """How many messages over ``max_message_chars`` were dropped."""
        enqueue = self.handler.client.enqueue_message

        def bounded_enqueue(message: str) -> None:
            if len(message) > self.max_message_chars:
                self.dropped += 1
                logging.getLogger("bot.slack.ingress").warning(
                    "refused a Socket Mode message of %d characters (over %d): not parsed",
                    len(message),
                    self.max_message_chars,
                )
                return
            enqueue(message)

        # The built-in client queues each text message here before json.loads (its only hook
        # between the socket and the parser).
        setattr(self.handler.client, "enqueue_message", bounded_enqueue)  # noqa: B010
        self.watch_seconds = watch_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="socket-watch")
        self._check_lock = threading.Lock()
        self._was_connected = False
        self._down_since: float | None = None
        self.disconnects = 0
        """How many disconnects the watcher saw (tests and figures)."""

    def connected(self) -> bool:
        """True while the WebSocket to Slack is open."""
        try:
            return bool(self.handler.client.is_connected())
        except Exception:  # a health check must answer, not raise
            return False

    def start(self) -> SocketModeWatch:
        """Connect (``apps.connections.open``, then the WebSocket) and start watching.

        Raises :class:`bot.config.ConfigError` when Slack refuses the app-level token, and
        slack_sdk's client errors when the Web API cannot be reached; a WebSocket that fails to
        open is retried by the client every ``ping_interval`` seconds (``/healthz`` says 503
        until then).
        """
        try:
            self.handler.connect()
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else "unknown"
            raise ConfigError(
                f"Slack refused SLACK_APP_TOKEN ({code}) in apps.connections.open: it must be "
                "an app-level token (xapp-…) with the connections:write scope."
            ) from None
        self._was_connected = self.connected()
        if self._was_connected:
            logger.info("Socket Mode: connected to Slack")
        else:
            self._down_since = time.monotonic()
            logger.warning("Socket Mode: could not connect to Slack yet; retrying")
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_seconds):
            self.check()

    def check(self) -> bool:
        """Look at the connection once and return whether it is open; a change of state since
        the last look is logged in one line (``/healthz`` calls this too, so what it reports
        has always been logged)."""
        with self._check_lock:
            return self._check()

    def _check(self) -> bool:
        now_connected = self.connected()
        if now_connected == self._was_connected:
            return now_connected
        self._was_connected = now_connected
        if not now_connected:
            self.disconnects += 1
            self._down_since = time.monotonic()
            logger.warning(
                "Socket Mode: disconnected from Slack; reconnecting (GET /healthz says 503 "
                "until then)"
            )
        else:
            down = time.monotonic() - (self._down_since or time.monotonic())
            logger.info("Socket Mode: reconnected to Slack after %s", format_duration(down))
            self._down_since = None
        return now_connected

    def close(self) -> None:
        """Stop watching and close the connection (no reconnection after this)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.handler.close()


class _LoggedErrorTask(ErrorTask):
    """waitress' answer to a request it refuses while reading it (413 for a body over
    ``max_request_body_size``, 431 for headers over ``max_request_header_size``, 400 for a
    malformed request), plus one WARNING line on ``bot.slack.ingress`` as the application's own
    refusals have (waitress logs nothing for these)."""

    def execute(self) -> None:
        request: Any = self.request
        error = request.error
        logging.getLogger("bot.slack.ingress").warning(
            "refused %s %s from %s: %d %s (by the server, before the application)",
            printable(getattr(request, "command", None) or "?", 10),
            printable(getattr(request, "path", None) or "?"),
            printable(str(self.channel.addr[0]) if self.channel.addr else "?", 45),
            error.code,
            printable(str(error.body), 120),
        )
        super().execute()


class _LoggedChannel(HTTPChannel):
    error_task_class = _LoggedErrorTask


def _create_server(wsgi_app: Any, **settings: Any) -> Any:
    """waitress' server for ``wsgi_app`` with the body and header limits of
    :func:`bot.slack.ingress.server_limits` and one log line per request it refuses."""
    options: dict[str, Any] = {**server_limits(), **settings}
    server: Any = create_server(wsgi_app, **options)
    server.channel_class = _LoggedChannel  # one listening socket: a plain WSGI server
    return server


class BackgroundServer:
    """waitress serving ``wsgi_app`` on ``host:port`` in a daemon thread (``port=0``: a free one),
    with the limits :func:`serve` has.

    Used by the tests and the benchmarks; ``python -m bot`` calls :func:`serve` instead.
    """

    def __init__(self, wsgi_app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
        # A short loop timeout lets stop() return quickly (waitress polls its socket map).
        self._server: Any = _create_server(
            wsgi_app, host=host, port=port, threads=threads, asyncore_loop_timeout=0.05
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="waitress")

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most 5 seconds)."""
        from waitress import wasyncore

        # Close the sockets from inside the serving loop (waitress's trigger runs the thunk
        # there), so the loop never selects on a closed descriptor; then stop the workers.
        try:
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
        except OSError:  # the trigger is already gone: close from here instead
            self._server.close()
        self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown()


def serve(wsgi_app: Any, *, port: int, host: str = "0.0.0.0", threads: int = 16) -> None:
    """Serve until interrupted (blocking), refusing bodies over
    :data:`bot.slack.ingress.MAX_BODY_BYTES` before reading them
    (:func:`bot.slack.ingress.server_limits`)."""
    _create_server(wsgi_app, host=host, port=port, threads=threads).run()
