"""The playground's HTTP side, mounted on the Slack stand-in's server (:meth:`FakeSlack.mount`).

* ``GET /`` and ``GET /static/<file>``: the page (``bot/playground/static/``; a placeholder
  page when it is absent).
* ``GET /playground/api/state?user=U…``: that person's client (:meth:`WorkspaceState.snapshot`)
  plus the simulated ``clock`` and the simulator's ``instances``.
* ``POST /playground/api/command`` ``{"user", "channel", "text": "/templates 12gb"}``,
  ``/action``, ``/submit``, ``/close``, ``/home_opened``: what a person does in Slack, sent to
  the bot's ``/slack/events`` as Slack sends it (:mod:`bot.playground.slack_requests`: signed,
  with ``response_url`` and ``trigger_id`` the stand-in serves), and the bot's acknowledgement
  applied as Slack applies it.
* ``POST /playground/api/sim`` ``{"op": "ready"|"idle"|"busy"|"gone"|"advance",
  "instance_id"?, "seconds"?}``: moves the simulated instance (default: the newest) or the
  simulated clock along.

Only the page itself may use these (the stand-in listens on 127.0.0.1 unauthenticated): a
request whose ``Host`` is not ``127.0.0.1:<port>`` or ``localhost:<port>`` is refused (another
site's name resolving to 127.0.0.1, "DNS rebinding"), and so is a POST from another page
(an ``Origin`` that is not this server's) or without ``Content-Type: application/json``, which
a browser sends cross-site only after a CORS preflight that this server never approves
(https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS#simple_requests). Those answer 403.

Every answer is JSON: ``{"ok": true, …}`` or ``{"ok": false, "error": "<Slack's word>"}``
(HTTP 200, as Slack's Web API; 400 for a malformed request). Slack gives the app 3 seconds to
acknowledge (https://api.slack.com/interactivity/handling#acknowledgment_response); a slower
bot gets ``operation_timeout``, an unreachable one ``dispatch_failed``, an error status
``http_service_error``, the words Slack shows in the client.
"""

from __future__ import annotations

import itertools
import json
import logging
import mimetypes
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

from bot.playground import slack_requests
from bot.playground.slack_api import BOT_ID, FakeSlack
from bot.playground.workspace import ResponseTarget, WorkspaceState, dm_channel_id

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
API = "/playground/api/"
#: Seconds Slack waits for an app's acknowledgement.
ACK_SECONDS = 3.0
SIM_OPS = frozenset({"ready", "idle", "busy", "gone", "advance"})
#: ``gpu_util`` the panel's "idle" and "busy" set (Vast.ai reports a fraction).
IDLE_GPU_UTIL = 0.0
BUSY_GPU_UTIL = 0.87

Answer = tuple[int, bytes, str, dict[str, str]]

PLACEHOLDER = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Slack playground</title></head>
<body><h1>Slack playground</h1>
<p>The playground page is not installed (bot/playground/static/index.html is missing).
The bot runs: its JSON API answers at <a href="/playground/api/state">/playground/api/state</a>.
</p></body></html>
"""


class Simulator(Protocol):
    """What the playground needs of :class:`bot.simulator.VastSimulator`."""

    @property
    def instances(self) -> dict[int, dict[str, Any]]: ...

    def make_ready(self, instance_id: int) -> None: ...

    def set_utilisation(
        self, instance_id: int, *, gpu_util: float | None, cpu_util: float | None = None
    ) -> None: ...

    def vanish(self, instance_id: int) -> None: ...


class BadRequest(Exception):
    """A malformed playground request (answered 400 ``invalid_arguments``)."""


class Playground:
    """The playground endpoints over a running stand-in and a running bot.

    Args:
        slack: the stand-in (its ``state`` is the workspace shown).
        events_url: the bot's ``/slack/events``.
        signing_secret: the bot's ``SLACK_SIGNING_SECRET``.
        team: who the requests come from.
        simulator: the Vast.ai simulator the bot rents from (None: no sim panel).
        clock: the bot's clock (aware UTC now); ``offset_seconds`` when it has one.
        advance: moves every simulated clock by seconds (the sim panel's "advance").
        after_sim: called after each sim panel change (the demo runs the bot's scheduled
            passes at once, so the change shows without waiting for the next one).
        static_dir: where the page's files are.
        ack_seconds: how long the bot has to acknowledge (Slack: :data:`ACK_SECONDS`).
    """

    def __init__(
        self,
        slack: FakeSlack,
        *,
        events_url: str,
        signing_secret: str,
        team: slack_requests.Team,
        simulator: Simulator | None = None,
        clock: Callable[[], datetime] | None = None,
        advance: Callable[[float], None] | None = None,
        after_sim: Callable[[], None] | None = None,
        static_dir: Path = STATIC_DIR,
        ack_seconds: float = ACK_SECONDS,
    ) -> None:
        if slack.state is None:
            raise ValueError("the playground needs a stand-in with a WorkspaceState")
        self.slack = slack
        self.state: WorkspaceState = slack.state
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.team = team
        self.simulator = simulator
        self.clock = clock
        self.advance = advance
        self.after_sim = after_sim
        self.static_dir = static_dir
        self._serial = itertools.count(1)
        self._http = httpx.Client(timeout=ack_seconds)

    def close(self) -> None:
        self._http.close()

    # -- HTTP ------------------------------------------------------------------------------
    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        """The stand-in's extra route (:data:`bot.playground.slack_api.Route`); ``headers``
        with lower-case names."""
        parts = urlsplit(path)
        if parts.path in ("/", "/index.html") or parts.path.startswith(("/static/", API)):
            refused = self._refuse_foreign(method, headers)
            if refused is not None:
                return _json(403, {"ok": False, "error": "forbidden", "detail": refused})
        if method == "GET" and parts.path in ("/", "/index.html"):
            return self._static("index.html")
        if method == "GET" and parts.path.startswith("/static/"):
            return self._static(parts.path.removeprefix("/static/"))
        if not parts.path.startswith(API):
            return None
        name = parts.path.removeprefix(API)
        try:
            if method == "GET" and name == "state":
                user = (parse_qs(parts.query).get("user") or [""])[0]
                if user and self.state.user(user) is None:
                    raise BadRequest(f"unknown user {user!r}")
                return _json(200, self.state_of(user or self.state.users[0].id))
            handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
                "command": self.command,
                "action": self.action,
                "submit": self.submit,
                "close": self.close_view,
                "home_opened": self.home_opened,
                "sim": self.sim,
            }
            if method != "POST" or name not in handlers:
                return _json(404, {"ok": False, "error": "unknown_method"})
            try:
                request = json.loads(body or b"{}")
            except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
                raise BadRequest("the body is not JSON") from error
            if not isinstance(request, dict):
                raise BadRequest("the body is not a JSON object")
            return _json(200, handlers[name](request))
        except BadRequest as error:
            return _json(400, {"ok": False, "error": "invalid_arguments", "detail": str(error)})

    def _refuse_foreign(self, method: str, headers: dict[str, str]) -> str | None:
        """Why a request does not come from the page served here (None: it does)."""
        port = urlsplit(self.slack.url).port
        hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if port == 80:  # a browser leaves the default port out
            hosts |= {"127.0.0.1", "localhost"}
        host = headers.get("host", "").strip().lower()
        if host not in hosts:
            return f"Host {host!r} is not this playground's; open it at {self.slack.url}/"
        if method == "POST":
            origin = headers.get("origin")
            if origin is not None and origin.strip().lower() not in {f"http://{h}" for h in hosts}:
                return f"a request from {origin!r}, another site, is refused"
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return "a POST must have Content-Type: application/json"
        return None

    def _static(self, name: str) -> Answer:
        root = self.static_dir.resolve()
        target = (root / name).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            if name == "index.html":
                return 200, PLACEHOLDER, "text/html; charset=utf-8", {}
            return 404, b"not found", "text/plain", {}
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype == "application/javascript":
            ctype += "; charset=utf-8"
        return 200, target.read_bytes(), ctype, {"Cache-Control": "no-store"}

    # -- the JSON API ------------------------------------------------------------------------
    def state_of(self, user_id: str) -> dict[str, Any]:
        """``GET /playground/api/state``: the contract's state for ``user_id``."""
        snapshot = self.state.snapshot(user_id)
        now = self.clock() if self.clock is not None else None
        snapshot["clock"] = {
            "now": now.isoformat() if now is not None else None,
            "offset_seconds": float(getattr(self.clock, "offset_seconds", 0.0)),
        }
        snapshot["instances"] = self._instances()
        return snapshot

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /command``: a slash command typed in ``channel``."""
        user = self._user(request)
        channel = self._channel(request.get("channel"), user)
        typed = str(request.get("text") or "").strip()
        if not typed.startswith("/"):
            raise BadRequest("text must start with a slash command, e.g. /templates")
        command, _, text = typed.partition(" ")
        name = self._response_name("cmd")
        self.state.expect_response(name, ResponseTarget(user, channel))
        body = slack_requests.slash_command(
            self.team,
            command=command,
            text=text.strip(),
            user_id=user,
            user_name=self._user_name(user),
            channel_id=channel,
            channel_name=self._channel_name(channel),
            response_url=self.slack.response_url(name),
            trigger_id=self.slack.issue_trigger(user),
        )
        answered = self._send(body, slack_requests.FORM)
        if isinstance(answered, str):
            return {"ok": False, "error": answered}
        self.state.command_ack(user, channel, answered)
        return {"ok": True}

    def action(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /action``: a click or a choice in a message, a modal or the Home tab."""
        user = self._user(request)
        action = request.get("action")
        if not isinstance(action, dict) or not action.get("action_id"):
            raise BadRequest("action needs an action_id")
        action = {**action, "action_ts": f"{time.time():.6f}"}
        action.setdefault("block_id", "")
        state = _state_values(request.get("state"))
        trigger_id = self.slack.issue_trigger(user)
        user_object = self._user_object(user)
        view_id = request.get("view_id")
        if view_id:
            view = self._view(user, str(view_id), state)
            payload = slack_requests.block_actions(
                self.team,
                user=user_object,
                action=action,
                trigger_id=trigger_id,
                state=state,
                view=view,
            )
        else:
            channel = self._channel(request.get("channel"), user)
            ts = str(request.get("message_ts") or "")
            message = self.state.message(channel, ts)
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            name = self._response_name("act")
            self.state.expect_response(
                name, ResponseTarget(user, channel, ts, ephemeral=bool(message["ephemeral"]))
            )
            payload = slack_requests.block_actions(
                self.team,
                user=user_object,
                action=action,
                trigger_id=trigger_id,
                state=state,
                channel={"id": channel, "name": self._channel_name(channel)},
                message_ts=ts,
                is_ephemeral=bool(message["ephemeral"]),
                message=self._message_payload(message),
                response_url=self.slack.response_url(name),
            )
        answered = self._send(slack_requests.interaction(payload), slack_requests.FORM)
        return {"ok": False, "error": answered} if isinstance(answered, str) else {"ok": True}

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /submit``: the modal's submit button, with the inputs' ``state``."""
        user = self._user(request)
        view_id = str(request.get("view_id") or "")
        view = self._view(user, view_id, _state_values(request.get("state")))
        payload = slack_requests.view_submission(
            self.team,
            user=self._user_object(user),
            view=view,
            trigger_id=self.slack.issue_trigger(user),
        )
        answered = self._send(slack_requests.interaction(payload), slack_requests.FORM)
        if isinstance(answered, str):
            return {"ok": False, "error": answered}
        shown = None
        action = answered.get("response_action")
        if action in ("update", "push") and isinstance(answered.get("view"), dict):
            new_view = dict(answered["view"])
            if action == "update":
                new_view["id"] = view_id
            shown = self.slack.show_view(new_view)
        self.state.submission_ack(user, view_id, answered, shown)
        return {"ok": True}

    def close_view(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /close``: the modal's close button (``view_closed`` when it asks)."""
        user = self._user(request)
        closed = self.state.close_view(user, str(request.get("view_id") or ""))
        if closed is None:
            return {"ok": False, "error": "not_found"}
        if closed.get("notify_on_close"):
            closed.pop("errors", None)
            payload = slack_requests.view_closed(
                self.team,
                user=self._user_object(user),
                view={**closed, "state": {"values": {}}},
                is_cleared=bool(closed.get("clear_on_close")),
            )
            answered = self._send(slack_requests.interaction(payload), slack_requests.FORM)
            if isinstance(answered, str):
                return {"ok": False, "error": answered}
        return {"ok": True}

    def home_opened(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /home_opened``: the person opens the bot's Home tab."""
        user = self._user(request)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user,
            "channel": dm_channel_id(user),
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        home = self.state.home(user)
        if home is not None:
            home.pop("errors", None)
            event["view"] = home
        body = slack_requests.event_callback(
            self.team, event, event_id=f"EvPG{next(self._serial):08d}"
        )
        answered = self._send(body, slack_requests.JSON)
        return {"ok": False, "error": answered} if isinstance(answered, str) else {"ok": True}

    def sim(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /sim``: move the simulated instance or the simulated clock along."""
        op = request.get("op")
        if op not in SIM_OPS:
            raise BadRequest(f"op must be one of {sorted(SIM_OPS)}")
        if op == "advance":
            seconds = request.get("seconds", 600)
            if not isinstance(seconds, int | float) or not 0 <= seconds <= 366 * 86_400:
                raise BadRequest("seconds must be a number from 0 to a year")
            if self.advance is None:
                return {"ok": False, "error": "no_clock"}
            self.advance(float(seconds))
        else:
            if self.simulator is None:
                return {"ok": False, "error": "no_simulator"}
            instance_id = self._instance_id(request.get("instance_id"))
            if instance_id is None:
                return {"ok": False, "error": "no_instance"}
            try:
                if op == "ready":
                    self.simulator.make_ready(instance_id)
                elif op == "idle":
                    self.simulator.set_utilisation(instance_id, gpu_util=IDLE_GPU_UTIL, cpu_util=1)
                elif op == "busy":
                    self.simulator.set_utilisation(instance_id, gpu_util=BUSY_GPU_UTIL, cpu_util=40)
                else:
                    self.simulator.vanish(instance_id)
            except KeyError:
                return {"ok": False, "error": "no_instance"}
        if self.after_sim is not None:
            self.after_sim()
        return {"ok": True}

    # -- helpers -----------------------------------------------------------------------------
    def _send(self, body: str, content_type: str) -> dict[str, Any] | str:
        """POST ``body`` to the bot as Slack does: its acknowledgement body (``{}`` when
        empty or not JSON), or the error word Slack would show."""
        headers = {"Content-Type": content_type}
        headers.update(slack_requests.sign(body, secret=self.signing_secret))
        try:
            response = self._http.post(self.events_url, content=body.encode(), headers=headers)
        except httpx.TimeoutException:
            return "operation_timeout"
        except httpx.HTTPError:
            return "dispatch_failed"
        if response.status_code != 200:
            logger.info("the bot answered HTTP %d", response.status_code)
            return "http_service_error"
        try:
            answered = response.json() if response.content.strip() else {}
        except ValueError:  # a plain-text ack is a message text, as Slack treats it
            answered = {"text": response.text}
        return answered if isinstance(answered, dict) else {}

    def _response_name(self, kind: str) -> str:
        """A ``response_url``'s last part: unguessable, as Slack's (which end in a secret),
        so that another site cannot post into the playground through one."""
        return f"pg-{kind}-{next(self._serial)}-{secrets.token_urlsafe(16)}"

    def _user(self, request: dict[str, Any]) -> str:
        user = str(request.get("user") or "")
        if self.state.user(user) is None:
            raise BadRequest(f"unknown user {user!r}")
        return user

    def _channel(self, value: Any, user: str) -> str:
        channel = str(value or "")
        known = self.state.channel(channel)
        if known is None or (known.is_im and known.user_id != user):
            raise BadRequest(f"unknown channel {channel!r}")
        return channel

    def _user_name(self, user: str) -> str:
        found = self.state.user(user)
        return found.name if found is not None else user.lower()

    def _user_object(self, user: str) -> dict[str, Any]:
        return slack_requests.user_object(user, self.team.team_id, self._user_name(user))

    def _channel_name(self, channel: str) -> str:
        known = self.state.channel(channel)
        if known is None or known.is_im:
            return "directmessage"  # Slack's channel_name for a DM
        return known.name

    def _view(self, user: str, view_id: str, state: dict[str, Any]) -> dict[str, Any]:
        """The view as Slack sends it in a payload: as shown, with the inputs' ``state``."""
        view = self.state.view(user, view_id)
        if view is None:
            raise BadRequest(f"no view {view_id!r} open for {user}")
        view.pop("errors", None)
        view.update(
            state=state,
            team_id=self.team.team_id,
            app_id=self.team.api_app_id,
            bot_id=BOT_ID,
        )
        view.setdefault("private_metadata", "")
        view.setdefault("callback_id", "")
        stack = [shown["id"] for shown in self.state.views(user)]
        at = stack.index(view_id) if view_id in stack else None  # None: the Home tab
        view["root_view_id"] = stack[0] if at is not None else view_id
        view["previous_view_id"] = stack[at - 1] if at else None
        return view

    def _message_payload(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "message",
            "user": message["user"],
            "ts": message["ts"],
            "text": message["text"],
            "blocks": message["blocks"] or [],
        }

    def _instances(self) -> list[dict[str, Any]]:
        if self.simulator is None:
            return []
        rows = []
        for instance_id, raw in sorted(self.simulator.instances.items()):
            rows.append(
                {
                    "id": instance_id,
                    "actual_status": raw.get("actual_status"),
                    "gpu_name": raw.get("gpu_name"),
                    "label": raw.get("label"),
                    "gpu_util": raw.get("gpu_util"),
                }
            )
        return rows

    def _instance_id(self, value: Any) -> int | None:
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError) as error:
                raise BadRequest("instance_id must be a number") from error
        live = self._instances()
        return int(live[-1]["id"]) if live else None


def _state_values(value: Any) -> dict[str, Any]:
    """The ``state`` of a payload: ``{"values": {block_id: {action_id: {...}}}}``."""
    if isinstance(value, dict) and isinstance(value.get("values"), dict):
        return {"values": value["values"]}
    return {"values": {}}


def _json(status: int, document: dict[str, Any]) -> Answer:
    body = json.dumps(document, ensure_ascii=False).encode()
    return status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"}
