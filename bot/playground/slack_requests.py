"""The requests Slack sends to an app, shaped and signed as Slack sends them.

One builder for the test suite (``tests/fixtures/slack.py``) and the playground
(:mod:`bot.playground.page`), so both send the bot the same thing:

* a slash command: ``application/x-www-form-urlencoded`` fields
  (https://api.slack.com/interactivity/slash-commands#app_command_handling);
* interactivity (``block_actions``, ``view_submission``, ``view_closed``): one form field
  ``payload`` holding the JSON (https://api.slack.com/reference/interaction-payloads);
* an Events API ``event_callback`` envelope as JSON
  (https://api.slack.com/apis/events-api#callback-field).

Each body is signed with Slack's v0 scheme: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of
"v0:<timestamp>:<body>" under the signing secret>`` and ``X-Slack-Request-Timestamp``
(https://api.slack.com/authentication/verifying-requests-from-slack).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
DEPRECATED_TOKEN = "deprecated"
"""The verification token field Slack still sends (deprecated; the signature is what counts)."""


def sign(body: str, *, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for ``body``: ``{"X-Slack-Request-Timestamp": "<epoch s>",
    "X-Slack-Signature": "v0=<hex>"}`` (``timestamp`` defaults to now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass(frozen=True)
class Team:
    """Who the requests come from: the workspace and the app."""

    team_id: str
    domain: str
    api_app_id: str
    bot_user_id: str


def user_object(user_id: str, team_id: str, name: str | None = None) -> dict[str, Any]:
    """The ``user`` object of an interaction payload."""
    login = name or user_id.lower()
    return {"id": user_id, "username": login, "name": login, "team_id": team_id}


def slash_command(
    team: Team,
    *,
    command: str,
    text: str,
    user_id: str,
    channel_id: str,
    channel_name: str,
    response_url: str,
    trigger_id: str,
    user_name: str | None = None,
) -> str:
    """The form-encoded body of a slash command (``command`` like ``/templates``)."""
    return urlencode(
        {
            "token": DEPRECATED_TOKEN,
            "team_id": team.team_id,
            "team_domain": team.domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name or user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": team.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def interaction(payload: dict[str, Any]) -> str:
    """The form-encoded body of an interactivity payload (``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)})


def _base(team: Team, kind: str, user: dict[str, Any], trigger_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "user": user,
        "api_app_id": team.api_app_id,
        "token": DEPRECATED_TOKEN,
        "trigger_id": trigger_id,
        "team": {"id": team.team_id, "domain": team.domain},
        "enterprise": None,
        "is_enterprise_install": False,
    }


def block_actions(
    team: Team,
    *,
    user: dict[str, Any],
    action: dict[str, Any],
    trigger_id: str,
    state: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    channel: dict[str, Any] | None = None,
    message_ts: str | None = None,
    is_ephemeral: bool = True,
    message: dict[str, Any] | None = None,
    response_url: str | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for one ``action`` (``{"type", "action_id", "block_id",
    "action_ts", "value"? | "selected_option"? …}``).

    In a view (modal or Home tab: ``view`` with its ``id`` and ``state``) the container is
    ``{"type": "view", "view_id"}`` and there is no ``response_url``; in a message
    (``channel`` ``{"id", "name"}`` and ``message_ts``) the container is ``{"type":
    "message", …, "is_ephemeral"}`` with the ``response_url``, and a non-ephemeral
    ``message`` is sent along (Slack does not send an ephemeral one)."""
    payload = _base(team, "block_actions", user, trigger_id)
    payload["state"] = state if state is not None else {"values": {}}
    payload["actions"] = [action]
    if view is not None:
        payload["container"] = {"type": "view", "view_id": view.get("id", "V0MODAL01")}
        payload["view"] = view
        return payload
    assert channel is not None and message_ts is not None, "a message action needs its message"
    payload["container"] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel["id"],
        "is_ephemeral": is_ephemeral,
    }
    payload["channel"] = channel
    if response_url is not None:
        payload["response_url"] = response_url
    if not is_ephemeral:
        payload["message"] = message or {
            "type": "message",
            "ts": message_ts,
            "text": "",
            "blocks": [],
        }
    return payload


def view_submission(
    team: Team,
    *,
    user: dict[str, Any],
    view: dict[str, Any],
    trigger_id: str,
    response_urls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``view_submission`` payload: ``view`` as Slack shows it (``id``, ``hash``,
    ``callback_id``, ``private_metadata``, ``state``)."""
    payload = _base(team, "view_submission", user, trigger_id)
    payload["view"] = view
    payload["response_urls"] = response_urls or []
    return payload


def view_closed(
    team: Team, *, user: dict[str, Any], view: dict[str, Any], is_cleared: bool = False
) -> dict[str, Any]:
    """A ``view_closed`` payload (sent only for a view with ``notify_on_close``)."""
    payload = _base(team, "view_closed", user, "")
    del payload["trigger_id"]  # Slack sends none: a closed modal cannot open another
    payload["view"] = view
    payload["is_cleared"] = is_cleared
    return payload


def event_callback(
    team: Team, event: dict[str, Any], *, event_id: str, event_time: int | None = None
) -> str:
    """The JSON body of an Events API ``event_callback`` carrying ``event``."""
    return json.dumps(
        {
            "token": DEPRECATED_TOKEN,
            "team_id": team.team_id,
            "api_app_id": team.api_app_id,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()) if event_time is None else event_time,
            "event": event,
            "authorizations": [
                {"team_id": team.team_id, "user_id": team.bot_user_id, "is_bot": True}
            ],
        }
    )
