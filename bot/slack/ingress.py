"""The HTTP edge for Slack's requests: size first, then the signature, then parsing.

:class:`SlackIngress` is the WSGI application in front of Bolt (it replaces Bolt's own WSGI
adapter for ``POST /slack/events`` and wraps it for everything else). A request to
``POST /slack/events`` goes through these steps, and the first one that fails answers at once
(a JSON body ``{"error": "<code>"}``) with one WARNING line on the ``bot.slack.ingress`` logger
(method, path, client address, status, reason: never a header value, the body or a
traceback); Bolt never sees a refused request:

1. **Size.** A ``Content-Length`` over :data:`MAX_BODY_BYTES` → 413 before a byte is read; a
   body without one (chunked, where the server says ``wsgi.input_terminated``) is read up to
   the limit and refused with 413 when it goes past it. A ``Content-Length`` that is not a
   number → 400, a body shorter than it → 400.
2. **Signature headers.** ``X-Slack-Request-Timestamp`` or ``X-Slack-Signature`` missing →
   401; a timestamp that is not a plain integer, or a signature that is not ``v0=`` and 64 hex
   digits → 400; a timestamp more than :data:`REPLAY_WINDOW_SECONDS` from now → 401.
3. **Body.** Read (bounded, as above); not UTF-8 → 400 (Slack's bodies are UTF-8 form data or
   JSON, and the signature is computed over that text).
4. **Signature.** HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret, compared
   in constant time (slack_sdk's :class:`~slack_sdk.signature.SignatureVerifier`) → 401 when it
   does not match.
5. **Parsing.** Bolt's own parse of the body (:class:`slack_bolt.request.BoltRequest`: form
   fields, ``payload=<JSON>``, or a JSON body) → 400 when it cannot make a JSON object of it
   (``payload={not json``, ``payload=[1]``, nesting deeper than Python's JSON parser goes, …).
   The parsed request is then dispatched to Bolt as it is (the body is read and parsed once).

Source for the signature and the replay window: Slack, "Verifying requests from Slack",
https://api.slack.com/authentication/verifying-requests-from-slack (sign ``v0:`` + timestamp +
``:`` + the raw body with HMAC-SHA256; refuse a timestamp more than five minutes from now).

Every request gets a request id (16 hex digits, random) and, once parsed, the payload's team id
as log context (:func:`bot.logs.bound`): each line logged while it is handled, here, in Bolt and
in the jobs its listeners hand over, carries them.

Other paths go to Bolt's WSGI adapter (``GET /slack/install`` and ``GET
/slack/oauth_redirect`` in OAuth mode, which Slack does not sign; anything else is Bolt's 404),
with the body bounded the same way first. :func:`server_limits` gives the server (waitress) the
same limit, so it refuses an oversized body before buffering it: the WSGI check here is the
same rule for any other server, and for tests that call the application directly.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import extract_team_id
from slack_sdk.signature import Clock, SignatureVerifier

from bot import logs

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body the bot reads, bytes (1 MiB).

Slack's largest requests are interactivity payloads that carry a whole view (a
``view_submission``, or a ``block_actions`` from a modal or the Home tab): a view is at most
250 kB, or Slack refuses it with ``view_too_large`` (https://api.slack.com/methods/views.open,
"Errors"), and the bot's own views are far smaller. Form encoding (``payload=<JSON>``) at most
triples the JSON's punctuation, so 1 MiB leaves room for any view plus the state and user
fields around it, while a body a thousand times larger (waitress' own default is 1 GB) is
refused before it is read. Slash commands and Events API callbacks are a few kB."""

MAX_HEADER_BYTES = 256 * 1024
"""The largest request line plus headers waitress reads, bytes (waitress' own default, named
here: ``GET /slack/install`` and ``/slack/oauth_redirect`` carry everything in the query
string and cookies, and Slack's signed requests only a few headers)."""

REPLAY_WINDOW_SECONDS = 300
"""A signed request whose ``X-Slack-Request-Timestamp`` is further than this from now is
refused (Slack: "Verifying requests from Slack" — five minutes)."""

READ_CHUNK_BYTES = 64 * 1024
"""The body is read in pieces of this size (never all at once on a server's say-so)."""

_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_SIGNATURE = re.compile(r"v0=[0-9a-fA-F]{64}", re.ASCII)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_TEAM = re.compile(r"[TE][A-Z0-9]{1,30}", re.ASCII)


def server_limits(max_body_bytes: int = MAX_BODY_BYTES) -> dict[str, int]:
    """waitress settings (``create_server(**server_limits())``) that refuse a body over
    ``max_body_bytes`` with 413 while reading the request, before the application is called
    (waitress refuses a ``Content-Length`` *equal* to its limit too, hence the ``+ 1``), and
    bound the request line plus headers to :data:`MAX_HEADER_BYTES`."""
    return {
        "max_request_body_size": max_body_bytes + 1,
        "max_request_header_size": MAX_HEADER_BYTES,
    }


class Refusal(Exception):
    """A request the edge refuses: ``status`` (an HTTP status code), ``error`` (the short code
    answered in the JSON body) and ``reason`` (the log line's words)."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def printable(text: str, limit: int = 80) -> str:
    """``text`` safe for one log line: at most ``limit`` characters, anything outside printable
    ASCII (a newline in a path, say) as ``?``."""
    return _UNPRINTABLE.sub("?", text[:limit])


def declared_length(environ: WSGIEnvironment, limit: int = MAX_BODY_BYTES) -> int | None:
    """The request's ``Content-Length`` (None when it has none), checked before anything is
    read. Raises :class:`Refusal`: 413 when it is over ``limit``, 400 when it is not a
    number."""
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not declared:
        return None
    if not declared.isascii() or not declared.isdigit():
        raise Refusal(400, "bad_content_length", "Content-Length is not a number")
    length = int(declared)
    if length > limit:
        raise Refusal(
            413, "payload_too_large", f"body of {length} bytes is over {limit} (not read)"
        )
    return length


def read_body(environ: WSGIEnvironment, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, at most ``limit`` bytes, read in :data:`READ_CHUNK_BYTES` pieces.

    Raises :class:`Refusal`: 413 when ``Content-Length`` is over ``limit`` (nothing is read)
    or, without a ``Content-Length``, when the body goes past ``limit`` (``limit + 1`` bytes
    at most are read); 400 when ``Content-Length`` is not a number or the body ends before it.
    Without a ``Content-Length`` the body is read only when the server says its input ends
    (``wsgi.input_terminated``, PEP 3333), else it is empty."""
    stream = environ.get("wsgi.input")
    length = declared_length(environ, limit)
    if length is not None:
        body = _read(stream, length)
        if len(body) < length:
            raise Refusal(400, "incomplete_body", f"body ended after {len(body)} of {length} bytes")
        return body
    if stream is None or not environ.get("wsgi.input_terminated"):
        return b""
    body = _read(stream, limit + 1)
    if len(body) > limit:
        raise Refusal(413, "payload_too_large", f"body over {limit} bytes (read no further)")
    return body


def _read(stream: Any, count: int) -> bytes:
    """Up to ``count`` bytes of ``stream``, fewer only at its end."""
    if stream is None:
        return b""
    parts: list[bytes] = []
    left = count
    while left > 0:
        part = stream.read(min(left, READ_CHUNK_BYTES))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


class SlackIngress:
    """WSGI application for Slack's requests (see the module docstring for the steps).

    Args:
        app: the Bolt app; its request verification may stay on (it then checks again).
        signing_secret: the app's signing secret (``SLACK_SIGNING_SECRET``).
        path: where Slack posts (Bolt's default, :data:`EVENTS_PATH`).
        max_body_bytes: see :data:`MAX_BODY_BYTES`.
        clock: seconds since the epoch (the replay window's "now"; tests move it).

    Raises ValueError for an empty ``signing_secret``.
    """

    def __init__(
        self,
        app: App,
        *,
        signing_secret: str,
        path: str = EVENTS_PATH,
        max_body_bytes: int = MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.verifier = SignatureVerifier(signing_secret, clock=_Clock(clock))
        self._bolt = SlackRequestHandler(app, path=path)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Every log line about this request, here, in Bolt and in the jobs its listeners hand
        # over (bot.logs.ContextExecutor copies the context), carries this id.
        with logs.bound(request_id=uuid.uuid4().hex[:16]):
            return self._serve(environ, start_response)

    def _serve(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        try:
            if method == "POST" and path == self.path:
                request = self.admit(environ)
                with logs.bound(team_id=_team_id(request)):
                    response = self.app.dispatch(request)
                answer = WsgiHttpResponse(
                    status=response.status, headers=response.headers, body=response.body
                )
                start_response(answer.status, answer.get_headers())
                return answer.get_body()
            body = read_body(environ, self.max_body_bytes)
        except Refusal as refusal:
            return self._refuse(environ, start_response, refusal)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._bolt(environ, start_response)

    def admit(self, environ: WSGIEnvironment) -> BoltRequest:
        """Steps 1–5 for one ``POST``: the parsed :class:`BoltRequest`, or :class:`Refusal`."""
        declared_length(environ, self.max_body_bytes)  # size first: nothing read yet
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if timestamp is None or signature is None:
            raise Refusal(401, "invalid_request", "unsigned (no Slack signature headers)")
        if not _TIMESTAMP.fullmatch(timestamp):
            raise Refusal(400, "invalid_request", "X-Slack-Request-Timestamp is not an integer")
        if not _SIGNATURE.fullmatch(signature):
            raise Refusal(400, "invalid_request", "X-Slack-Signature is not v0=<64 hex digits>")
        skew = self.clock() - int(timestamp)
        if abs(skew) > REPLAY_WINDOW_SECONDS:
            raise Refusal(
                401,
                "invalid_request",
                f"timestamp {abs(skew):.0f} s in the {'past' if skew > 0 else 'future'} "
                f"(over {REPLAY_WINDOW_SECONDS} s)",
            )
        raw = read_body(environ, self.max_body_bytes)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "invalid_request", "body is not UTF-8") from None
        if not self.verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
            raise Refusal(401, "invalid_request", "signature does not match the body")
        request = WsgiHttpRequest(environ)
        try:
            parsed = BoltRequest(
                body=text, query=request.query_string, headers=request.get_headers()
            )
        except (ValueError, TypeError, AttributeError, LookupError, RecursionError) as error:
            # ValueError includes json.JSONDecodeError; the others: a JSON value that is not
            # an object, or one Bolt's context builder cannot read.
            raise Refusal(
                400,
                "invalid_payload",
                f"signed body is not a Slack payload ({type(error).__name__})",
            ) from None
        if not isinstance(parsed.body, dict):
            raise Refusal(400, "invalid_payload", "signed body is not a JSON object")
        return parsed

    def _refuse(
        self, environ: WSGIEnvironment, start_response: StartResponse, refusal: Refusal
    ) -> Iterable[bytes]:
        logger.warning(
            "refused %s %s from %s: %d %s",
            printable(environ.get("REQUEST_METHOD", "?"), 10),
            printable(environ.get("PATH_INFO", "")),
            printable(environ.get("REMOTE_ADDR", "?"), 45),
            refusal.status,
            refusal.reason,
        )
        body = json.dumps({"error": refusal.error}).encode()
        phrase = _PHRASES.get(refusal.status, "Bad Request")
        start_response(
            f"{refusal.status} {phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


def _team_id(request: BoltRequest) -> str | None:
    """The workspace of a parsed request (Bolt reads ``team_id``, ``team.id`` … from the
    payload), when it is a plausible Slack team id."""
    team = request.context.team_id
    return team if isinstance(team, str) and _TEAM.fullmatch(team) else None


def payload_team_id(payload: dict[str, Any]) -> str | None:
    """The workspace of a Slack payload as Bolt finds it (``team_id``, ``team.id``, ``user.
    team_id`` …: :func:`slack_bolt.request.internals.extract_team_id`), when it is a plausible
    Slack team id (``T…`` or ``E…``); None otherwise."""
    try:
        team = extract_team_id(payload)
    except (AttributeError, LookupError, TypeError, ValueError):
        return None
    return team if isinstance(team, str) and _TEAM.fullmatch(team) else None


_PHRASES = {400: "Bad Request", 401: "Unauthorized", 413: "Content Too Large"}
