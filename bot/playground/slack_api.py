"""A fake Slack Web API on 127.0.0.1 that records every call.

Point slack_sdk's ``WebClient(base_url=fake.api_url)`` at it. It answers the methods the bot
uses with Slack's response shapes (docs/SLACK_API.md), records each call with its decoded
arguments, serves ``response_url`` endpoints under ``/response/<id>``, and can be told to fail a
method (``fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "1"})``).
``views.update`` with a ``hash`` that is not the view's current one answers
``hash_conflict``, as Slack does; :attr:`FakeSlack.views` holds each view as last shown.
``users.info`` answers each user's time zone from :attr:`FakeSlack.users_tz` (UTC when absent),
``is_admin`` / ``is_owner`` from :attr:`FakeSlack.users_admin` / :attr:`FakeSlack.users_owner`
and ``team_id`` from :attr:`FakeSlack.users_team` (the caller's workspace when absent; a user of
another workspace is ``user_not_found``, as Slack answers outside Enterprise Grid).

Workspaces (OAuth mode). The default workspace (:data:`TEAM_ID`, bot :data:`BOT_USER_ID` /
:data:`BOT_ID`) answers every token that is not registered, so a single-workspace bot needs no
set-up. :meth:`FakeSlack.add_workspace` registers another one and returns an OAuth ``code``;
``oauth.v2.access`` exchanges it (once: a used or unknown code is ``invalid_code``) for that
workspace's bot token, after checking the app's credentials (:attr:`FakeSlack.client_id` /
:attr:`FakeSlack.client_secret`, as form fields or HTTP Basic auth, which slack_sdk sends:
``invalid_client_id`` / ``bad_client_secret``). With ``refresh=True`` (token rotation) the answer
adds ``refresh_token`` and ``expires_in`` (:attr:`FakeSlack.token_expires_in` seconds), and
``grant_type=refresh_token`` issues a new access token and a new refresh token (each refresh
token works once, else ``invalid_refresh_token``); an access token past its expiry answers
``token_expired``. ``auth.test`` answers per token. :meth:`FakeSlack.revoke` makes one token
answer ``token_revoked`` on every method, and :meth:`FakeSlack.uninstall` makes every token of a
workspace answer ``account_inactive`` (Slack's error for a bot token of an app that was removed:
"Authentication token is for a deleted user or workspace when using a bot token"). Every
:class:`Call` records the ``token`` it came with and the workspace it resolved to
(``team_id``, ``enterprise_id``).

Files (``files.upload_v2`` in slack_sdk, https://api.slack.com/methods/files.getUploadURLExternal):
``files.getUploadURLExternal`` (``filename`` and a positive ``length`` required, else
``invalid_arguments``) answers a ``file_id`` and an ``upload_url`` served by this fake
(``POST /upload/<file_id>`` takes the bytes, ``200 OK - <size>``); ``files.completeUploadExternal``
shares the uploaded files in ``channel_id`` (a file id never uploaded is ``file_not_found``) and
keeps each in :attr:`FakeSlack.files`. Both answer ``missing_scope`` (with ``needed`` and
``provided``), as Slack does, when :attr:`FakeSlack.scopes` lacks ``files:write``.

Like real Slack it refuses payloads that break Block Kit's documented limits (checked with
:mod:`bot.slack.limits` on what arrives over HTTP, whatever the client did before sending):
``{"ok": false, "error": "invalid_blocks" | "invalid_arguments", "response_metadata":
{"messages": ["[ERROR] … [json-pointer:/…]"]}}``, and a bare 400 ``invalid_blocks`` on a
``response_url``. Refused calls are recorded with ``answer`` None and listed in
:attr:`FakeSlack.refusals`.

Triggers (https://api.slack.com/interactivity/handling#modal_responses: a ``trigger_id``
"expires in three seconds" and "can be used only once"): :meth:`FakeSlack.issue_trigger`
hands out a ``trigger_id`` for a user, as Slack puts one in each interaction payload.
``views.open`` / ``views.push`` with an issued one that was already used answer
``exchanged_trigger_id``, after :data:`TRIGGER_SECONDS` ``expired_trigger_id``. A
``trigger_id`` this fake never issued (the test suite's made-up ones) is accepted, unless
``strict=True`` (the playground), where it is ``invalid_trigger_id``. ``strict=True`` also
makes ``chat.update`` / ``chat.delete`` of a message never posted answer
``message_not_found`` and ``views.update`` of a view never opened ``not_found``, as Slack
does; without it the fake stays lenient, so tests can fake what came before.

A client's view (:class:`bot.playground.workspace.WorkspaceState`, optional ``state``): every
accepted Web API call and ``response_url`` post is applied to it, so the playground page shows
what a Slack client would.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from bot.playground.workspace import MAX_STACK, WorkspaceState
from bot.slack import limits as slack_limits

TEAM_ID = "T0GPU0001"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0GPUBOT1"
APP_ID = "A0GPUBOT01"
CLIENT_ID = "1111111111.2222222222"
"""Default :attr:`FakeSlack.client_id` (the app's OAuth client id)."""
CLIENT_SECRET = "fake-client-secret-0123456789abcdef"
"""Default :attr:`FakeSlack.client_secret`."""
BOT_SCOPES = "commands,chat:write,chat:write.public,im:write,users:read,files:write"
"""Default :attr:`FakeSlack.scopes`: the manifest's bot scopes, as ``oauth.v2.access`` gives
them."""
TOKEN_EXPIRES_IN = 43_200
"""Seconds a rotating access token lives (Slack: 12 hours)."""
TRIGGER_SECONDS = 3.0
"""Seconds a ``trigger_id`` can be exchanged after it was issued (Slack: three)."""
MESSAGE_TS_EPOCH = 1732900000
"""The seconds part of the ``ts`` of each message when no ``ts_clock`` is given."""

#: Bytes a request to a mounted route (the playground's page and JSON API) may carry: a
#: person's click or command is a few kilobytes.
MAX_ROUTE_BODY = 1024 * 1024

Route = Callable[[str, str, dict[str, str], bytes], "tuple[int, bytes, str, dict[str, str]] | None"]
"""``(method, path, headers, body) -> (status, body, content type, headers)`` or None (not
mine): extra HTTP routes mounted on the fake's server (:meth:`FakeSlack.mount`)."""

_JSON_ARGS = {"blocks", "view", "attachments", "metadata"}

# Slack's ``tz_label`` is a long name; zoneinfo only knows abbreviations. Others pass through.
_TZ_LABELS = {
    "UTC": "Coordinated Universal Time",
    "GMT": "Greenwich Mean Time",
    "BST": "British Summer Time",
    "CET": "Central European Time",
    "CEST": "Central European Summer Time",
    "EST": "Eastern Standard Time",
    "EDT": "Eastern Daylight Time",
    "CST": "Central Standard Time",
    "CDT": "Central Daylight Time",
    "MST": "Mountain Standard Time",
    "MDT": "Mountain Daylight Time",
    "PST": "Pacific Standard Time",
    "PDT": "Pacific Daylight Time",
    "JST": "Japan Standard Time",
}


@dataclass
class Call:
    """One request the fake saw: ``method`` is e.g. ``chat.postMessage`` or ``response_url``."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    path: str = ""
    answer: dict[str, Any] | None = None
    """What the fake answered (e.g. a posted message's ``ts``); None for refused calls."""
    token: str | None = None
    """The token the call carried (``Authorization: Bearer`` or a ``token`` field); None for
    ``oauth.v2.access`` (app credentials) and ``response_url`` posts."""
    team_id: str | None = None
    """The workspace the call resolved to: the token's (an unregistered token is the default
    :data:`TEAM_ID`), the code's or refresh token's for ``oauth.v2.access``, the one given to
    :meth:`FakeSlack.response_url` for a ``response_url`` post; None for an org-wide token."""
    enterprise_id: str | None = None
    """The Enterprise Grid org of that workspace, when it has one."""


@dataclass
class Workspace:
    """A workspace the fake knows (see :meth:`FakeSlack.add_workspace`)."""

    team_id: str
    name: str
    bot_token: str
    """The bot token the first code exchange gives (and that works from the start)."""
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    bot_user_id: str = BOT_USER_ID
    bot_id: str = BOT_ID
    installer: str = "U0INSTALL1"
    """``authed_user.id`` of the code exchange: who installed the app."""
    refresh: bool = False
    """Token rotation: the code exchange also gives a refresh token and an expiry."""
    org_install: bool = False
    """An org-wide install: ``team`` null and ``is_enterprise_install`` true."""
    uninstalled: bool = False

    @property
    def domain(self) -> str:
        return self.team_id.lower()


@dataclass
class FakeFile:
    """A file uploaded through ``files.getUploadURLExternal``; ``channel`` is set once
    ``files.completeUploadExternal`` shared it."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    initial_comment: str | None = None

    @property
    def text(self) -> str:
        """The uploaded bytes as UTF-8 text."""
        return (self.content or b"").decode()


@dataclass
class _Token:
    team_id: str
    expires_at: float | None = None
    refused: str | None = None
    """The error every call with this token gets (``token_revoked``, ``account_inactive``)."""


@dataclass
class _Trigger:
    user_id: str
    issued_at: float
    used: bool = False


@dataclass
class _Failure:
    error: str
    status: int
    headers: dict[str, str]
    times: int


class FakeSlack:
    """The fake server; use as a context manager or call :meth:`start` / :meth:`stop`.

    Args:
        client_id, client_secret: the app's OAuth credentials ``oauth.v2.access`` accepts
            (also attributes, changeable).
        port: the port on 127.0.0.1 (0: a free one). OSError when taken.
        state: the client's view to keep up to date (the playground), or None.
        strict: refuse unknown trigger ids, messages and views as Slack does (module doc).
        ts_clock: epoch seconds for the ``ts`` of new messages (the playground's simulated
            clock); None: :data:`MESSAGE_TS_EPOCH` for all, as the tests expect.
        bot_token: when given, the Web API answers only calls that carry it (or a registered
            workspace's token), as Slack does: none gets ``not_authed``, another
            ``invalid_auth`` (https://api.slack.com/methods/chat.postMessage#errors). The
            playground sets it, so that another site cannot call the Web API in the person's
            browser; None (the tests' default): any token or none is the default workspace's.
    """

    def __init__(
        self,
        *,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        port: int = 0,
        state: WorkspaceState | None = None,
        strict: bool = False,
        ts_clock: Callable[[], float] | None = None,
        bot_token: str | None = None,
    ) -> None:
        self.bot_token = bot_token
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = BOT_SCOPES
        self.token_expires_in = TOKEN_EXPIRES_IN
        """Seconds a rotating access token lives from its issue (set it low, e.g. 60, to make
        slack_sdk's TokenRotator refresh at once: it refreshes within 2 hours of expiry)."""
        self.redirect_uri: str | None = None
        """When set, ``oauth.v2.access`` with another ``redirect_uri`` is ``bad_redirect_uri``."""
        self.workspaces: dict[str, Workspace] = {}
        self._tokens: dict[str, _Token] = {}
        self._codes: dict[str, str | None] = {}  # code -> team id; None once used
        self._refresh_tokens: dict[str, str | None] = {}  # refresh token -> team; None once used
        self._default_refused: str | None = None  # uninstall(TEAM_ID): unregistered tokens
        self._response_teams: dict[str, str] = {}
        self._serial = itertools.count(1)
        self._local = threading.local()  # .call: the Call the handler thread is answering
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        # Slack's view ids are unique for good; the bot remembers submitted ones (a repeated
        # delivery is answered, not deployed again), so a playground restarted on the same
        # database must not hand out the last run's ids again.
        self._view_prefix = secrets.token_hex(2).upper()
        self._hashes = itertools.count(1)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted_messages: set[tuple[str, str]] = set()
        # views.open/push/update: each view as last shown, by view id (with its ``hash``)
        self.views: dict[str, dict[str, Any]] = {}
        self.channels_without_bot: set[str] = set()
        # files.getUploadURLExternal / upload / files.completeUploadExternal, by file id.
        self.files: dict[str, FakeFile] = {}
        # users.info: user id -> IANA zone ("Europe/Berlin"), UTC when absent; and the user
        # ids it reports with is_admin: true.
        self.users_tz: dict[str, str] = {}
        self.users_admin: set[str] = set()
        # users.info: user ids reported with is_owner: true, and user id -> team id (a user
        # looked up from another workspace is user_not_found).
        self.users_owner: set[str] = set()
        self.users_team: dict[str, str] = {}
        # Calls refused for breaking Slack's limits: (method, Slack's answer).
        self.refusals: list[tuple[str, dict[str, Any]]] = []
        # users.info: user id -> {"name": ..., "real_name": ...} (default: the id in lower case)
        self.users_names: dict[str, dict[str, str]] = {}
        self.state = state
        self.strict = strict
        self._ts_clock = ts_clock
        self._triggers: dict[str, _Trigger] = {}
        self.trigger_seconds = TRIGGER_SECONDS
        """Seconds an issued ``trigger_id`` stays usable (tests set 0 to see it expire)."""
        self._routes: list[Route] = []
        if state is not None:  # one sequence for every ts, whoever makes the message
            state.new_ts = self._new_ts
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """Value for ``SLACK_API_URL``."""
        return self.url + "/api/"

    def response_url(self, name: str = "r1", *, team_id: str | None = None) -> str:
        """A ``response_url`` served by this fake; calls to it are recorded as ``response_url``
        with ``team_id`` (default :data:`TEAM_ID`)."""
        if team_id is not None:
            with self._lock:
                self._response_teams[name] = team_id
        return f"{self.url}/response/{name}"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control ---------------------------------------------------------------------------
    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` answer ``{"ok": false, "error": error}``."""
        with self._lock:
            self._failures.setdefault(method, []).append(
                _Failure(error, status, headers or {}, times)
            )

    def issue_trigger(self, user_id: str) -> str:
        """A fresh ``trigger_id`` for ``user_id`` (Slack's format ``<n>.<n>.<hex>``), usable
        once within :data:`TRIGGER_SECONDS` by ``views.open`` / ``views.push``."""
        trigger_id = f"{next(self._serial)}.{int(time.time())}.{secrets.token_hex(8)}"
        with self._lock:
            self._triggers[trigger_id] = _Trigger(user_id, time.monotonic())
        return trigger_id

    def mount(self, route: Route) -> None:
        """Serve more paths on this server: ``route`` is asked first for every request whose
        path is not the Web API's (``/api/``), a ``response_url`` or an upload."""
        self._routes.append(route)

    # -- workspaces ------------------------------------------------------------------------
    def add_workspace(
        self,
        team_id: str,
        *,
        name: str,
        bot_token: str,
        enterprise_id: str | None = None,
        code: str | None = None,
        refresh: bool = False,
        enterprise_name: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
        installer: str = "U0INSTALL1",
        org_install: bool = False,
    ) -> str:
        """Register (or re-install) workspace ``team_id`` and return a fresh OAuth code for it.

        ``bot_token`` works at once (``auth.test`` and every method answer as this workspace)
        and is what the code exchange gives first. ``bot_user_id`` / ``bot_id`` default to
        ids derived from ``team_id`` (``U0BOT…`` / ``B0BOT…``); ``installer`` is the
        ``authed_user``. ``refresh=True`` turns token rotation on. ``org_install=True`` (needs
        ``enterprise_id``) is an org-wide Enterprise Grid install. Adding a known workspace
        again is a re-install: it is no longer uninstalled and the new ``bot_token`` works
        (tokens refused before stay refused, unless given again as ``bot_token``).
        """
        if org_install and not enterprise_id:
            raise ValueError("an org-wide install needs enterprise_id")
        suffix = "".join(ch for ch in team_id.upper() if ch.isalnum())[-6:]
        workspace = Workspace(
            team_id=team_id,
            name=name,
            bot_token=bot_token,
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name or (f"{name} org" if enterprise_id else None),
            bot_user_id=bot_user_id or f"U0BOT{suffix}",
            bot_id=bot_id or f"B0BOT{suffix}",
            installer=installer,
            refresh=refresh,
            org_install=org_install,
        )
        with self._lock:
            self.workspaces[team_id] = workspace
            self._tokens[bot_token] = _Token(team_id)
            if team_id == TEAM_ID:
                self._default_refused = None
            code = code or f"code-{team_id}-{next(self._serial)}"
            self._codes[code] = team_id
        return code

    def new_code(self, team_id: str) -> str:
        """Another OAuth code for known workspace ``team_id`` (a re-install through the OAuth
        redirect). It clears the uninstalled state and the exchange gives a new bot token
        (``<old>-r<n>``), as Slack issues new tokens when an app is installed again."""
        with self._lock:
            workspace = self.workspaces[team_id]
            if workspace.uninstalled:
                workspace.uninstalled = False
                workspace.bot_token = f"{workspace.bot_token}-r{next(self._serial)}"
                self._tokens[workspace.bot_token] = _Token(team_id)
            code = f"code-{team_id}-{next(self._serial)}"
            self._codes[code] = team_id
        return code

    def revoke(self, token: str, *, error: str = "token_revoked") -> None:
        """Every later call with ``token`` answers ``{"ok": false, "error": error}`` (any
        token, the default workspace's included)."""
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                record = self._tokens[token] = _Token(TEAM_ID)
            record.refused = error

    def uninstall(self, team_id: str, *, error: str = "account_inactive") -> None:
        """The app is removed from ``team_id``: every access token issued for it answers
        ``error``, its refresh tokens and unused codes stop working. For :data:`TEAM_ID` every
        unregistered token is refused too. Other workspaces are untouched."""
        with self._lock:
            for record in self._tokens.values():
                if record.team_id == team_id and record.refused is None:
                    record.refused = error
            for table in (self._refresh_tokens, self._codes):
                for key, team in table.items():
                    if team == team_id:
                        table[key] = None
            if team_id in self.workspaces:
                self.workspaces[team_id].uninstalled = True
            if team_id == TEAM_ID:
                self._default_refused = error

    def expire(self, token: str) -> None:
        """``token`` is past its expiry from now on: every call answers ``token_expired``."""
        with self._lock:
            record = self._tokens.setdefault(token, _Token(TEAM_ID))
            record.expires_at = time.time() - 1

    def current_token(self, team_id: str) -> str:
        """The access token last issued for ``team_id`` (its ``bot_token`` until a refresh)."""
        with self._lock:
            return self.workspaces[team_id].bot_token

    def token_team(self, token: str) -> str | None:
        """The workspace ``token`` belongs to (:data:`TEAM_ID` when it is not registered)."""
        with self._lock:
            record = self._tokens.get(token)
            return record.team_id if record is not None else TEAM_ID

    def calls_for(self, team_id: str, method: str | None = None) -> list[Call]:
        """Calls that resolved to workspace ``team_id`` (of ``method`` when given)."""
        with self._lock:
            return [
                call
                for call in self.calls
                if call.team_id == team_id and (method is None or call.method == method)
            ]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def methods(self) -> list[str]:
        with self._lock:
            return [call.method for call in self.calls]

    def wait_for(
        self, method: str, count: int = 1, timeout: float = 5.0, **match: Any
    ) -> list[Call]:
        """Block until ``count`` calls of ``method`` whose args contain ``match`` were seen."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    call
                    for call in self.calls
                    if call.method == method
                    and all(call.args.get(key) == value for key, value in match.items())
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [call.method for call in self.calls]
                    raise AssertionError(
                        f"expected {count} × {method} {match or ''} within {timeout}s; saw {seen}"
                    )
                self._cond.wait(remaining)

    # -- HTTP ------------------------------------------------------------------------------
    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _refused(self, method: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self.refusals.append((method, answer))
        if self.state is not None:
            self.state.refused(method, answer)

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get(method) or []
            if not queue:
                return None
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.pop(0)
            return failure

    # -- auth ------------------------------------------------------------------------------
    def _resolve(self, call: Call) -> str | None:
        """Fill ``call.team_id`` / ``enterprise_id`` from its token; return the error the
        token gets (None when it is accepted)."""
        with self._lock:
            if call.token is None:
                if self.bot_token is not None and call.method not in (
                    "response_url",
                    "oauth.v2.access",
                ):
                    return "not_authed"
                if call.method == "response_url":
                    name = call.path.removeprefix("/response/").split("?")[0]
                    call.team_id = self._response_teams.get(name, TEAM_ID)
                elif call.method != "oauth.v2.access":
                    call.team_id = TEAM_ID  # no token: the default workspace, as before
                self._set_enterprise(call)
                return None
            record = self._tokens.get(call.token)
            call.team_id = record.team_id if record is not None else TEAM_ID
            self._set_enterprise(call)
            if record is None:
                if self.bot_token is not None and call.token != self.bot_token:
                    return "invalid_auth"
                return self._default_refused
            if record.refused is not None:
                return record.refused
            if record.expires_at is not None and time.time() >= record.expires_at:
                return "token_expired"
            return None

    def _set_enterprise(self, call: Call) -> None:
        workspace = self.workspaces.get(call.team_id or "")
        if workspace is not None:
            call.enterprise_id = workspace.enterprise_id
            if workspace.org_install:
                call.team_id = None

    def _workspace_of(self, call: Call) -> Workspace | None:
        """The registered workspace of the call's token (None: the default workspace)."""
        if call.token is None:
            return None
        record = self._tokens.get(call.token)
        return self.workspaces.get(record.team_id) if record is not None else None

    def _auth_test(self, call: Call) -> dict[str, Any]:
        """``auth.test`` for the call's token: its workspace's team and bot ids."""
        workspace = self._workspace_of(call)
        if workspace is None:
            return {
                "ok": True,
                "url": "https://gpu-team.slack.com/",
                "team": "GPU team",
                "user": "gpu-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
        org = workspace.org_install
        answer: dict[str, Any] = {
            "ok": True,
            "url": f"https://{workspace.domain}.slack.com/",
            "team": None if org else workspace.name,
            "user": "gpu-bot",
            "team_id": None if org else workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": org,
        }
        if workspace.enterprise_id:
            answer["enterprise_id"] = workspace.enterprise_id
        record = self._tokens.get(call.token or "")
        if record is not None and record.expires_at is not None:
            answer["expires_in"] = max(0, int(record.expires_at - time.time()))
        return answer

    def _oauth_v2_access(self, call: Call) -> dict[str, Any]:
        """``oauth.v2.access``: the app's credentials, then a code exchange or a refresh."""
        args = call.args
        client_id, client_secret = args.get("client_id"), args.get("client_secret")
        basic = call.headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                decoded = base64.b64decode(basic[len("Basic ") :], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant = args.get("grant_type") or "authorization_code"
        with self._lock:
            if grant == "refresh_token":
                return self._refresh(call, str(args.get("refresh_token") or ""))
            if grant != "authorization_code":
                return {"ok": False, "error": "invalid_grant_type"}
            redirect = args.get("redirect_uri")
            if self.redirect_uri is not None and redirect not in (None, self.redirect_uri):
                return {"ok": False, "error": "bad_redirect_uri"}
            team_id = self._codes.get(str(args.get("code") or ""))
            if team_id is None:
                return {"ok": False, "error": "invalid_code"}
            self._codes[str(args["code"])] = None  # a code works once
            workspace = self.workspaces[team_id]
            call.team_id = team_id
            self._set_enterprise(call)
            answer = self._token_answer(workspace, workspace.bot_token)
            answer["authed_user"] = {"id": workspace.installer}
            return answer

    def _refresh(self, call: Call, refresh_token: str) -> dict[str, Any]:
        """``grant_type=refresh_token``: a new access token and a new refresh token. Lock held."""
        team_id = self._refresh_tokens.get(refresh_token)
        if team_id is None or self.workspaces[team_id].uninstalled:
            return {"ok": False, "error": "invalid_refresh_token"}
        self._refresh_tokens[refresh_token] = None  # each refresh token works once
        workspace = self.workspaces[team_id]
        call.team_id = team_id
        self._set_enterprise(call)
        workspace.bot_token = f"xoxe.xoxb-1-{team_id}-{next(self._serial)}"
        return self._token_answer(workspace, workspace.bot_token)

    def _token_answer(self, workspace: Workspace, access_token: str) -> dict[str, Any]:
        """Slack's ``oauth.v2.access`` answer giving ``access_token``; registers it (and a new
        refresh token when rotation is on). Lock held."""
        record = self._tokens[access_token] = _Token(workspace.team_id)
        org = workspace.org_install
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": APP_ID,
            "scope": self.scopes,
            "token_type": "bot",
            "access_token": access_token,
            "bot_user_id": workspace.bot_user_id,
            "team": None if org else {"id": workspace.team_id, "name": workspace.name},
            "enterprise": (
                {"id": workspace.enterprise_id, "name": workspace.enterprise_name}
                if workspace.enterprise_id
                else None
            ),
            "is_enterprise_install": org,
        }
        if workspace.refresh:
            refresh_token = f"xoxe-1-{workspace.team_id}-{next(self._serial)}"
            self._refresh_tokens[refresh_token] = workspace.team_id
            record.expires_at = time.time() + self.token_expires_in
            answer["refresh_token"] = refresh_token
            answer["expires_in"] = self.token_expires_in
        return answer

    # -- methods -----------------------------------------------------------------------------
    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's answer to ``method``. The call being answered (its token and workspace) is
        the handler thread's current one; the ``(method, args)`` signature stays, as
        subclasses and tests wrap it."""
        call = getattr(self._local, "call", None) or Call(method, args, {})
        if method == "auth.test":
            return self._auth_test(call)
        if method == "oauth.v2.access":
            return self._oauth_v2_access(call)
        if method == "auth.revoke":
            if call.token is not None and args.get("test") not in ("1", "true", True):
                self.revoke(call.token)
            return {"ok": True, "revoked": True}
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            if channel in self.channels_without_bot:
                return {"ok": False, "error": "not_in_channel"}
            ts = self._new_ts()
            message = {"ts": ts, "text": args.get("text"), "blocks": args.get("blocks")}
            self.messages[(channel, ts)] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            key = (str(args.get("channel", "")), str(args.get("ts", "")))
            if key in self.deleted_messages or (self.strict and key not in self.messages):
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {
                "ts": key[1],
                "text": args.get("text"),
                "blocks": args.get("blocks"),
            }
            return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text")}
        if method == "chat.delete":
            key = (str(args.get("channel", "")), str(args.get("ts", "")))
            if key in self.deleted_messages or (self.strict and key not in self.messages):
                return {"ok": False, "error": "message_not_found"}
            self.messages.pop(key, None)
            self.deleted_messages.add(key)
            return {"ok": True, "channel": key[0], "ts": key[1]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._new_ts()}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = dict(args.get("view") or {})
            view_id = args.get("view_id") or self._new_view_id()
            if method in ("views.open", "views.push"):
                trigger_id = str(args.get("trigger_id") or "")
                refused = self._exchange_trigger(trigger_id)
                if refused is not None:
                    return {"ok": False, "error": refused}
                user_id = self.trigger_user(trigger_id)
                if (
                    method == "views.push"
                    and self.state is not None
                    and user_id is not None
                    and self.state.stack_depth(user_id) >= MAX_STACK
                ):
                    return {"ok": False, "error": "push_limit_reached"}
            with self._lock:  # views.update's ``hash``: refuse an edit of an older view
                current = self.views.get(view_id)
                if method == "views.update" and self.strict and current is None:
                    return {"ok": False, "error": "not_found"}
                sent = args.get("hash")
                if method == "views.update" and sent and current and current["hash"] != sent:
                    return {"ok": False, "error": "hash_conflict"}
                view.update({"id": view_id, "hash": f"{time.time():.6f}.{next(self._hashes)}"})
                self.views[view_id] = view
            return {"ok": True, "view": view}
        if method == "users.info":
            workspace = self._workspace_of(call)
            return self._user_info(str(args.get("user") or ""), workspace)
        if method in ("files.getUploadURLExternal", "files.completeUploadExternal"):
            return self._files(method, args)
        if method == "conversations.open":
            users = str(args.get("users", ""))
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0][1:]}}
        return {"ok": True}

    def _new_ts(self) -> str:
        """A new message ``ts``: ``<epoch seconds>.<serial>``, unique and increasing."""
        seconds = int(self._ts_clock()) if self._ts_clock is not None else MESSAGE_TS_EPOCH
        return f"{seconds}.{next(self._ts):06d}"

    def _new_view_id(self) -> str:
        """A view id, ``V`` and 12 upper-case hex digits: unique to this stand-in."""
        return f"V{self._view_prefix}{next(self._views):08d}"

    def show_view(self, view: dict[str, Any]) -> dict[str, Any]:
        """Register ``view`` as shown by Slack itself (a ``view_submission``'s ``update`` or
        ``push`` response_action): a copy with a new ``id`` (unless it has one) and ``hash``,
        which ``views.update`` then accepts."""
        shown = dict(view)
        shown.setdefault("id", self._new_view_id())
        with self._lock:
            shown["hash"] = f"{time.time():.6f}.{next(self._hashes)}"
            self.views[shown["id"]] = shown
        return dict(shown)

    def _exchange_trigger(self, trigger_id: str) -> str | None:
        """Use ``trigger_id`` for a view: None when it may open one, else Slack's error."""
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                return "invalid_trigger_id" if self.strict else None
            if trigger.used:
                return "exchanged_trigger_id"
            trigger.used = True
            if time.monotonic() - trigger.issued_at > self.trigger_seconds:
                return "expired_trigger_id"
            return None

    def trigger_user(self, trigger_id: str) -> str | None:
        """The user a ``trigger_id`` from :meth:`issue_trigger` was issued for (None: not
        issued here)."""
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            return trigger.user_id if trigger is not None else None

    def _files(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """``files.getUploadURLExternal`` and ``files.completeUploadExternal``."""
        granted = [scope.strip() for scope in self.scopes.split(",")]
        if "files:write" not in granted:
            return {
                "ok": False,
                "error": "missing_scope",
                "needed": "files:write",
                "provided": self.scopes,
            }
        if method == "files.getUploadURLExternal":
            filename = str(args.get("filename") or "")
            try:
                length = int(args.get("length") or 0)
            except ValueError:
                length = 0
            if not filename or length <= 0:
                return {"ok": False, "error": "invalid_arguments"}
            file_id = f"F{next(self._serial):08d}"
            with self._lock:
                self.files[file_id] = FakeFile(file_id, filename, length)
            return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        try:
            wanted = json.loads(str(args.get("files") or "[]"))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        channel = str(args.get("channel_id") or "")
        if channel in self.channels_without_bot:
            return {"ok": False, "error": "not_in_channel"}
        shared = []
        with self._lock:
            for item in wanted if isinstance(wanted, list) else []:
                found = self.files.get(str((item or {}).get("id") or ""))
                if found is None or found.content is None:
                    return {"ok": False, "error": "file_not_found"}
                found.title = item.get("title") or found.filename
                found.channel = channel or None
                found.initial_comment = args.get("initial_comment")
                shared.append({"id": found.file_id, "name": found.filename, "title": found.title})
        if not shared:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "files": shared}

    def _upload(self, path: str, data: bytes) -> tuple[int, bytes]:
        """``POST /upload/<file_id>``: keep the bytes of a file asked for and not yet sent."""
        file_id = path.removeprefix("/upload/").split("?")[0]
        with self._lock:
            found = self.files.get(file_id)
            if found is None or found.content is not None:
                return 404, b"not found"
            found.content = data
        return 200, f"OK - {len(data)}".encode()

    def _user_info(self, user_id: str, workspace: Workspace | None = None) -> dict[str, Any]:
        """``users.info`` as seen from ``workspace`` (None: the default one): tz_offset
        (seconds east of UTC) and tz_label for the zone now; a user of another workspace
        (:attr:`users_team`) is ``user_not_found`` unless both share an Enterprise Grid org."""
        if not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        if not user_id.startswith(("U", "W")):
            return {"ok": False, "error": "user_not_found"}
        caller_team = workspace.team_id if workspace is not None else TEAM_ID
        team = self.users_team.get(user_id, caller_team)
        if team != caller_team:
            theirs = self.workspaces.get(team)
            org = workspace.enterprise_id if workspace is not None else None
            if org is None or theirs is None or theirs.enterprise_id != org:
                return {"ok": False, "error": "user_not_found"}
        bots = {BOT_USER_ID} | {w.bot_user_id for w in self.workspaces.values()}
        tz = self.users_tz.get(user_id, "UTC")
        now = datetime.now(ZoneInfo(tz))  # a bad zone name raises (connection drops)
        offset = now.utcoffset()
        abbreviation = now.tzname() or tz
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": team,
                "name": self.users_names.get(user_id, {}).get("name", user_id.lower()),
                "tz": tz,
                "tz_label": _TZ_LABELS.get(abbreviation, abbreviation),
                "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
                "is_admin": user_id in self.users_admin,
                "is_owner": user_id in self.users_owner,
                "is_bot": user_id in bots,
                "deleted": False,
                **(
                    {"real_name": self.users_names[user_id]["real_name"]}
                    if "real_name" in self.users_names.get(user_id, {})
                    else {}
                ),
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                routed = not self.path.startswith(("/api/", "/response/", "/upload/"))
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0 or (routed and length > MAX_ROUTE_BODY):
                    # Unread, the body cannot linger into a next request: close after this.
                    self.close_connection = True
                    status, problem = (400, "invalid_content_length")
                    if length > 0:
                        status, problem = (413, "request_too_large")
                    refusal = json.dumps({"ok": False, "error": problem}).encode()
                    self._send(status, refusal, "application/json", {"Connection": "close"})
                    return
                data = self.rfile.read(length)
                if routed:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    for route in fake._routes:
                        answered = route(self.command, self.path, headers, data)
                        if answered is not None:
                            self._send(*answered)
                            return
                    self._send(404, b"not found", "text/plain", {})
                    return
                if self.path.startswith("/upload/"):
                    status, body = fake._upload(self.path, data)
                    self._send(status, body, "text/plain", {})
                    return
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    args = _decode(data.decode(), headers.get("content-type", ""))
                except (ValueError, RecursionError):  # not UTF-8 or JSON; nested too deep
                    # Slack's word for it (https://api.slack.com/methods/chat.postMessage#errors)
                    refusal = json.dumps({"ok": False, "error": "invalid_json"}).encode()
                    self._send(200, refusal, "application/json", {})
                    return
                if self.path.startswith("/response/"):
                    posted = Call("response_url", args, headers, path=self.path)
                    fake._resolve(posted)
                    fake._record(posted)
                    if args.get("blocks") is not None:
                        problems = slack_limits.check_message_blocks(args["blocks"])
                        if problems:
                            answer = slack_limits.refusal("chat.postMessage", problems)
                            fake._refused("response_url", answer)
                            self._send(400, b"invalid_blocks", "text/plain", {})
                            return
                    if fake.state is not None:
                        name = self.path.removeprefix("/response/").split("?")[0]
                        fake.state.respond(name, args)
                    self._send(200, b"ok", "text/plain", {})
                    return
                method = self.path.removeprefix("/api/").split("?")[0]
                call = Call(method, args, headers, path=self.path, token=_token_of(headers, args))
                auth_error = fake._resolve(call)
                fake._record(call)
                if auth_error is not None:
                    refusal = json.dumps({"ok": False, "error": auth_error}).encode()
                    self._send(200, refusal, "application/json", {})
                    return
                failure = fake._take_failure(method)
                if failure is not None:
                    failed = {"ok": False, "error": failure.error}
                    self._send(
                        failure.status,
                        json.dumps(failed).encode(),
                        "application/json",
                        failure.headers,
                    )
                    return
                problems = slack_limits.check_api_call(method, args)
                if problems:
                    refused = slack_limits.refusal(method, problems)
                    fake._refused(method, refused)
                    self._send(200, json.dumps(refused).encode(), "application/json", {})
                    return
                fake._local.call = call
                try:
                    answer = fake._answer(method, args)
                finally:
                    fake._local.call = None
                call.answer = answer if answer.get("ok") else None
                if fake.state is not None and call.answer is not None:
                    trigger = str(args.get("trigger_id") or "")
                    fake.state.apply(method, args, answer, user_id=fake.trigger_user(trigger))
                elif fake.state is not None:
                    fake.state.refused(method, answer)
                self._send(200, json.dumps(answer).encode(), "application/json", {})

            do_GET = do_POST

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _token_of(headers: dict[str, str], args: dict[str, Any]) -> str | None:
    """The token a Web API call carries: ``Authorization: Bearer …``, else a ``token`` field."""
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer ") and auth[len("Bearer ") :].strip():
        return auth[len("Bearer ") :].strip()
    token = args.get("token")
    return str(token) if token else None


def _decode(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"_": value}
    args: dict[str, Any] = {key: values[-1] for key, values in parse_qs(raw).items()}
    for key in _JSON_ARGS & args.keys():
        with contextlib.suppress(ValueError, RecursionError):
            args[key] = json.loads(args[key])
    return args
