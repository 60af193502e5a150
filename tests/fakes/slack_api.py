"""A fake Slack Web API on 127.0.0.1 that records every call.

Point slack_sdk's ``WebClient(base_url=fake.api_url)`` at it. It answers the methods the bot
uses with Slack's response shapes (reference/slack.md), records each call with its decoded
arguments, serves ``response_url`` endpoints under ``/response/<id>``, and can be told to fail a
method (``fail("chat.update", "ratelimited", status=429, headers={"Retry-After": "1"})``).
``views.update`` with a ``hash`` that is not the view's current one answers
``hash_conflict``, as Slack does; :attr:`FakeSlack.views` holds each view as last shown.
``users.info`` answers each user's time zone from :attr:`FakeSlack.users_tz` (UTC when absent)
and ``is_admin`` from :attr:`FakeSlack.users_admin`.

Like real Slack it refuses payloads that break Block Kit's documented limits (checked with
:mod:`bot.slack_limits` on what arrives over HTTP, whatever the client did before sending):
``{"ok": false, "error": "invalid_blocks" | "invalid_arguments", "response_metadata":
{"messages": ["[ERROR] … [json-pointer:/…]"]}}``, and a bare 400 ``invalid_blocks`` on a
``response_url``. Refused calls are recorded with ``answer`` None and listed in
:attr:`FakeSlack.refusals`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from bot import slack_limits

TEAM_ID = "T0GPU0001"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0GPUBOT1"

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


@dataclass
class _Failure:
    error: str
    status: int
    headers: dict[str, str]
    times: int


class FakeSlack:
    """The fake server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._views = itertools.count(1)
        self._hashes = itertools.count(1)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted_messages: set[tuple[str, str]] = set()
        # views.open/push/update: each view as last shown, by view id (with its ``hash``)
        self.views: dict[str, dict[str, Any]] = {}
        self.channels_without_bot: set[str] = set()
        # users.info: user id -> IANA zone ("Europe/Berlin"), UTC when absent; and the user
        # ids it reports with is_admin: true.
        self.users_tz: dict[str, str] = {}
        self.users_admin: set[str] = set()
        # Calls refused for breaking Slack's limits: (method, Slack's answer).
        self.refusals: list[tuple[str, dict[str, Any]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
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

    def response_url(self, name: str = "r1") -> str:
        """A ``response_url`` served by this fake; calls to it are recorded as ``response_url``."""
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

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://gpu-team.slack.com/",
                "team": "GPU team",
                "user": "gpu-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
            }
        if method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            if channel in self.channels_without_bot:
                return {"ok": False, "error": "not_in_channel"}
            ts = f"1732900000.{next(self._ts):06d}"
            message = {"ts": ts, "text": args.get("text"), "blocks": args.get("blocks")}
            self.messages[(channel, ts)] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            key = (str(args.get("channel", "")), str(args.get("ts", "")))
            if key in self.deleted_messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key] = {
                "ts": key[1],
                "text": args.get("text"),
                "blocks": args.get("blocks"),
            }
            return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1732900000.{next(self._ts):06d}"}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = dict(args.get("view") or {})
            view_id = args.get("view_id") or f"V{next(self._views):08d}"
            with self._lock:  # views.update's ``hash``: refuse an edit of an older view
                current = self.views.get(view_id)
                sent = args.get("hash")
                if method == "views.update" and sent and current and current["hash"] != sent:
                    return {"ok": False, "error": "hash_conflict"}
                view.update({"id": view_id, "hash": f"{time.time():.6f}.{next(self._hashes)}"})
                self.views[view_id] = view
            return {"ok": True, "view": view}
        if method == "users.info":
            return self._user_info(str(args.get("user") or ""))
        if method == "conversations.open":
            users = str(args.get("users", ""))
            return {"ok": True, "channel": {"id": "D" + users.split(",")[0][1:]}}
        return {"ok": True}

    def _user_info(self, user_id: str) -> dict[str, Any]:
        """``users.info``: tz_offset (seconds east of UTC) and tz_label for the zone now."""
        if not user_id:
            return {"ok": False, "error": "invalid_arguments"}
        if not user_id.startswith(("U", "W")):
            return {"ok": False, "error": "user_not_found"}
        tz = self.users_tz.get(user_id, "UTC")
        now = datetime.now(ZoneInfo(tz))  # a bad zone name raises (connection drops)
        offset = now.utcoffset()
        abbreviation = now.tzname() or tz
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": user_id.lower(),
                "tz": tz,
                "tz_label": _TZ_LABELS.get(abbreviation, abbreviation),
                "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
                "is_admin": user_id in self.users_admin,
                "is_owner": False,
                "is_bot": user_id == BOT_USER_ID,
                "deleted": False,
            },
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                headers = {key.lower(): value for key, value in self.headers.items()}
                args = _decode(raw, headers.get("content-type", ""))
                if self.path.startswith("/response/"):
                    fake._record(Call("response_url", args, headers, path=self.path))
                    if args.get("blocks") is not None:
                        problems = slack_limits.check_message_blocks(args["blocks"])
                        if problems:
                            answer = slack_limits.refusal("chat.postMessage", problems)
                            fake._refused("response_url", answer)
                            self._send(400, b"invalid_blocks", "text/plain", {})
                            return
                    self._send(200, b"ok", "text/plain", {})
                    return
                method = self.path.removeprefix("/api/").split("?")[0]
                call = Call(method, args, headers, path=self.path)
                fake._record(call)
                failure = fake._take_failure(method)
                if failure is not None:
                    body = {"ok": False, "error": failure.error}
                    self._send(
                        failure.status,
                        json.dumps(body).encode(),
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
                answer = fake._answer(method, args)
                call.answer = answer if answer.get("ok") else None
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


def _decode(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"_": value}
    args: dict[str, Any] = {key: values[-1] for key, values in parse_qs(raw).items()}
    for key in _JSON_ARGS & args.keys():
        with contextlib.suppress(ValueError):
            args[key] = json.loads(args[key])
    return args
