"""Log lines without secrets, at every level, DEBUG included.

The bot's own lines never carry a secret; the libraries' DEBUG lines do: slack_sdk's Web API
and webhook clients log every request's parameters and body ("Sending a request - url: …,
json_body: …": a login DM holds the web password) and every response's body (``oauth.v2.access``
answers with bot and refresh tokens); Socket Mode logs whole frames (a ``/templates setup``
submission holds a Vast.ai key); Bolt logs the OAuth callback's query (the one-time ``code``),
the bodies it answers with, and a body no middleware handled; httpx logs each URL with its query
at INFO, httpcore each response's headers at DEBUG; SQLAlchemy, once its ``sqlalchemy.engine``
logger is set to INFO or DEBUG (to trace SQL), each statement's parameters.

:func:`install` puts filters on the loggers that write those lines, so each record is cut down
before any handler sees it: the URL and the status stay, parameters and bodies go. It also
keeps ``slack_sdk.socket_mode`` and ``httpcore`` at INFO at least (their DEBUG lines are frames
and wire traces) and, with :func:`install_scrubber` on the process's handlers, replaces any
configured secret or Slack-token-shaped text that still reaches a handler by ``[redacted]``.
SQLAlchemy's parameters are hidden by :func:`storage.make_engine` (``hide_parameters``).

Sources: slack_sdk's ``BaseClient._perform_urllib_http_request`` and ``WebhookClient`` log
lines (https://github.com/slackapi/python-slack-sdk), Bolt's ``slack_bolt.logger.messages``
(https://github.com/slackapi/bolt-python), httpx's request log
(https://www.python-httpx.org/logging/).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"

#: Loggers of slack_sdk's HTTP clients (``WebClient``, the legacy helpers, ``WebhookClient``
#: as Bolt's ``respond`` builds it): each request's body and each response's are dropped.
SLACK_HTTP_LOGGERS = (
    "slack_sdk.web.base_client",
    "slack_sdk.web.internal_utils",
    "slack_sdk.webhook.client",
    "slack_sdk.webhook.internal_utils",
)
#: Loggers whose DEBUG lines are whole Socket Mode frames or wire traces: kept at INFO.
QUIET_LOGGERS = ("slack_sdk.socket_mode", "httpcore")
#: The Socket Mode client's logger (``bot.slack.server.SDK_LOGGER``): its DEBUG records are dropped.
SOCKET_MODE_LOGGER = "bot.slack.server.socket_mode"

#: Slack token shapes (https://docs.slack.dev/authentication/tokens): bot, user, app-level,
#: configuration and rotating (``xoxe.``) tokens and refresh tokens (``xoxe-``).
SLACK_TOKEN = re.compile(r"\bxox(?:e\.xox)?[abposer]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")

_SENDING = re.compile(r"^(Sending a request)(?: - |: )(?:url: )?(?:POST )?(\S+?),?(?:\s|$)")
_RECEIVED = re.compile(r"^(Received the following response) - status: (\d+)")
_QUERY_SECRET = re.compile(r"\b(code|state|token|key|secret|password)=[^&\s)'\"]+", re.I)


def _short_url(url: str) -> str:
    """``url`` with its query and fragment dropped; a webhook (``response_url``) URL, whose
    path is its credential, cut to its host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    path = "/…" if "/response" in parts.path or "hooks." in parts.netloc else parts.path
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, query, ""))


def _rewrite(record: logging.LogRecord, text: str) -> None:
    record.msg, record.args = text, ()


class SlackHttpBodyFilter(logging.Filter):
    """slack_sdk's request and response lines, down to the URL and the status:
    ``Sending a request - url: https://slack.com/api/chat.postMessage (parameters and body not
    logged)``, ``Received the following response - status: 200 (headers and body not logged)``.
    Any other line of these loggers keeps its text with Slack tokens redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        sending = _SENDING.match(text)
        if sending:
            url = _short_url(sending.group(2))
            _rewrite(record, f"{sending.group(1)} - url: {url} (parameters and body not logged)")
            return True
        received = _RECEIVED.match(text)
        if received:
            _rewrite(
                record,
                f"{received.group(1)} - status: {received.group(2)} (headers and body not logged)",
            )
            return True
        if record.args or SLACK_TOKEN.search(text):
            _rewrite(record, SLACK_TOKEN.sub(REDACTED, record.getMessage()))
        return True


class BoltBodyFilter(logging.Filter):
    """Bolt's lines that carry a request or response body or the OAuth query keep their first
    words only: "Responding with status: 200 (body not logged)", "Handling an OAuth callback
    success (request query not logged)", a global middleware that skipped ``next()`` or a
    skipped self event (body not logged); values of ``code=``, ``state=``, ``token=`` … are
    redacted in any other line. Bolt copies the ``slack_bolt`` logger's filters to the loggers
    of its middlewares (``slack_bolt.IgnoringSelfEvents`` …) when it builds them."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith("Responding with status: "):
            status = text.removeprefix("Responding with status: ").split(" ", 1)[0]
            _rewrite(record, f"Responding with status: {status} (body not logged)")
        elif text.startswith("Responding with listener middleware's response"):
            _rewrite(record, "Responding with listener middleware's response (body not logged)")
        elif text.startswith("Handling an OAuth callback"):
            kind = "success" if "success" in text.split("(", 1)[0] else "failure"
            _rewrite(record, f"Handling an OAuth callback {kind} (request query not logged)")
        elif text.startswith("A global middleware ("):
            _rewrite(record, text.split(" for the request (", 1)[0] + " (body not logged)")
        elif text.startswith("Skipped self event: "):
            _rewrite(record, "Skipped self event (body not logged)")
        elif text.startswith("Failed to fetch oauth.v2.access result with code"):
            _rewrite(record, "Failed to fetch oauth.v2.access result (code not logged)")
        else:
            message = record.getMessage() if record.args else text
            cleaned = SLACK_TOKEN.sub(REDACTED, _QUERY_SECRET.sub(r"\1=" + REDACTED, message))
            if cleaned != message:
                _rewrite(record, cleaned)
        return True


class HttpxUrlFilter(logging.Filter):
    """httpx's ``HTTP Request: GET <url> "HTTP/1.1 200 OK"``: the URL without its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and str(record.msg).startswith("HTTP"):
            record.args = (args[0], _short_url(str(args[1])), *args[2:])
        return True


class DropDebugFilter(logging.Filter):
    """Drop DEBUG records (a logger whose DEBUG lines are whole Socket Mode frames)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


class SecretScrubber(logging.Filter):
    """For a handler: replace each of ``secrets`` (the configured tokens, signing and client
    secrets, Vast.ai and encryption keys) and anything shaped like a Slack token by
    ``[redacted]`` in the message and the exception text of every record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so that a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return SLACK_TOKEN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True


def _attach(name: str, flt: logging.Filter) -> None:
    logger = logging.getLogger(name)
    if not any(type(existing) is type(flt) for existing in logger.filters):
        logger.addFilter(flt)


def install() -> None:
    """Put the filters on the libraries' loggers and keep the noisy ones at INFO at least
    (idempotent; called when the app is built, so by every way the bot runs)."""
    for name in SLACK_HTTP_LOGGERS:
        _attach(name, SlackHttpBodyFilter())
    _attach("slack_bolt", BoltBodyFilter())
    _attach("httpx", HttpxUrlFilter())
    _attach(SOCKET_MODE_LOGGER, DropDebugFilter())
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level in (logging.NOTSET, logging.DEBUG):
            logger.setLevel(logging.INFO)


def install_scrubber(secrets: Iterable[str], handlers: Iterable[logging.Handler]) -> None:
    """Add a :class:`SecretScrubber` of ``secrets`` to each of ``handlers`` (``python -m bot``:
    the root logger's, after ``logging.basicConfig``)."""
    scrubber = SecretScrubber(secrets)
    for handler in handlers:
        handler.addFilter(scrubber)
