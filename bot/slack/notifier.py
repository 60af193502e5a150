"""Posting to Slack outside a listener's ack: status messages, thread replies, DMs, Home tabs.

One policy for every Slack call: :meth:`Notifier.call` turns each
transport failure (urllib's ``URLError``, socket timeouts, ``OSError``, slack_sdk's
``SlackRequestError`` / ``SlackClientError``) and each refusal (``SlackApiError``) into a
returned :class:`SlackResult` (``sent`` / ``refused`` with Slack's error code / ``unavailable``
with the ``Retry-After`` of a 429) and never raises. The methods on top keep their plain
answers: a channel the bot cannot post in falls back to a DM that says why; a deleted status
message (``message_not_found``) is ``refused``, not raised.

The ``WebClient`` given waits out 429s itself (slack_sdk's ``RateLimitErrorRetryHandler``, see
:func:`bot.slack.app.make_web_client`), sleeping in the caller; :func:`without_rate_limit_retries`
makes the copy the outbox (:mod:`bot.slack.outbox`) sends with, which honours ``Retry-After`` by
pausing its queue instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler

from bot.metrics import SlackRequestCounter

logger = logging.getLogger(__name__)

SENT, REFUSED, UNAVAILABLE = "sent", "refused", "unavailable"

# chat.postMessage errors that mean "not here, but a DM may work" (docs.slack.dev chat.postMessage).
CHANNEL_ERRORS = {
    "not_in_channel": "I'm not a member of <#{channel}>: invite me with `/invite @gpu-templates`",
    "channel_not_found": "I can't see the channel <#{channel}> (private or deleted?)",
    "is_archived": "<#{channel}> is archived",
    "restricted_action": "posting in <#{channel}> is restricted for apps",
    "restricted_action_read_only_channel": "<#{channel}> is read-only",
}
#: chat.update errors that mean the message can no longer be edited (docs.slack.dev chat.update).
GONE_MESSAGE_ERRORS = frozenset(
    {"message_not_found", "cant_update_message", "channel_not_found", "edit_window_closed"}
)
#: Errors that mean the token itself no longer works (revoked, uninstalled, rotated away):
#: the workspace's cached token is dropped so the next message reads the store again.
AUTH_ERRORS = frozenset(
    {"token_revoked", "invalid_auth", "account_inactive", "not_authed", "token_expired"}
)
#: The error of a message not sent because its workspace has no installation (OAuth mode: the
#: app was uninstalled, or never installed there, or the message names no workspace).
NOT_INSTALLED = "not_installed"
#: The error of a message not sent because the workspace's token could not be read or rotated
#: just now (the database or Slack's ``oauth.v2.access`` unavailable): worth trying again.
TOKEN_UNAVAILABLE = "token_unavailable"
#: Errors that are Slack being unavailable rather than refusing (try again later).
_TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


@dataclass(frozen=True)
class SlackResult:
    """How one Slack Web API call went.

    ``outcome``: ``sent`` (Slack said ok), ``refused`` (Slack answered ``ok: false``; ``error``
    is its code, e.g. ``message_not_found``) or ``unavailable`` (no answer: network, timeout,
    5xx, or a 429 with ``retry_after`` seconds from its ``Retry-After`` header). ``data`` is
    Slack's answer when sent. Truthy only when sent.
    """

    outcome: str
    error: str | None = None
    retry_after: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.outcome == SENT


def _retry_after(error: SlackApiError) -> float | None:
    headers = getattr(error.response, "headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class _Same:
    """The default of :func:`copy_client`'s ``token``: keep the client's own."""


SAME: Final = _Same()


def copy_client(
    client: WebClient,
    *,
    cls: type[WebClient] | None = None,
    retry_handlers: list[RetryHandler] | None = None,
    token: str | None | _Same = SAME,
) -> WebClient:
    """A copy of ``client``: its token, base URL, timeout, SSL context, proxy, headers,
    workspace and logger, as an instance of ``cls`` (default: the same class, so a checking
    client stays one), with ``retry_handlers`` (default: the same handlers) and ``token``
    (default: the same token; another workspace's bot token, or None for calls that
    authenticate otherwise, e.g. ``oauth.v2.access``). The client's request counter
    (:class:`bot.metrics.SlackRequestCounter`) stays first on every copy, so the metrics count
    the copies' requests too."""
    own = list(client.retry_handlers or [])
    handlers = own if retry_handlers is None else list(retry_handlers)
    counters = [h for h in own if isinstance(h, SlackRequestCounter) and h not in handlers]
    return (cls or type(client))(
        token=client.token if isinstance(token, _Same) else token,
        base_url=client.base_url,
        timeout=client.timeout,
        ssl=client.ssl,
        proxy=client.proxy,
        headers=client.headers,
        team_id=getattr(client, "team_id", None),
        logger=client.logger,
        retry_handlers=counters + handlers,
    )


def without_rate_limit_retries(client: WebClient) -> WebClient:
    """A copy of ``client`` (:func:`copy_client`) that does not wait out 429s itself: for
    callers that pace and pause on ``Retry-After`` on their own thread. The copy is of the
    same class, so a checking client (``bot.slack.app.CheckedWebClient``) still checks payloads
    against Slack's limits."""
    handlers = client.retry_handlers or []
    return copy_client(
        client,
        retry_handlers=[h for h in handlers if not isinstance(h, RateLimitErrorRetryHandler)],
    )


@dataclass(frozen=True)
class Posted:
    """Where a message landed: ``channel`` (C…/D…), ``ts``, and ``fallback_reason`` when it went
    to the requester's DM instead of the chosen channel."""

    channel: str
    ts: str
    fallback_reason: str | None = None


class Notifier:
    """Sends the bot's own messages. No method raises for a Slack refusal or a transport
    failure (see the module docstring); each logs one line without the payload.

    ``on_auth_error`` is called (no arguments) when Slack refuses the token itself
    (:data:`AUTH_ERRORS`: revoked, uninstalled), e.g. to drop a cached workspace token
    (:meth:`bot.slack.clients.WorkspaceClients.forget`).
    """

    def __init__(self, client: WebClient, *, on_auth_error: Callable[[], object] | None = None):
        self.client = client
        self.on_auth_error = on_auth_error

    def call(self, method: str, **kwargs: Any) -> SlackResult:
        """Call the Web API ``method`` (e.g. ``chat.update``) with ``kwargs``; never raises.

        A 429 (after the client's own retries, if any), a 5xx or Slack's transient error codes
        are ``unavailable``; any other ``ok: false`` is ``refused`` with Slack's code."""
        try:
            # slack_sdk's own method (chat.update -> chat_update): it drops None arguments and
            # serialises Block Kit objects as Slack expects.
            response = getattr(self.client, method.replace(".", "_"))(**kwargs)
            data = response.data
            return SlackResult(SENT, data=dict(data) if isinstance(data, dict) else {})
        except SlackApiError as error:
            code = str(error.response.get("error") or "") or None
            status = int(getattr(error.response, "status_code", 200) or 200)
            if status == 429 or status >= 500 or code in _TRANSIENT_ERRORS:
                retry = _retry_after(error) if status == 429 or code == "ratelimited" else None
                logger.warning("%s unavailable: %s (HTTP %d)", method, code, status)
                return SlackResult(UNAVAILABLE, code, retry_after=retry)
            logger.info("%s refused: %s", method, code)
            if code in AUTH_ERRORS and self.on_auth_error is not None:
                self.on_auth_error()
            return SlackResult(REFUSED, code)
        except (URLError, TimeoutError, OSError, SlackClientError) as error:
            logger.warning("%s unavailable: %s", method, type(error).__name__)
            return SlackResult(UNAVAILABLE, type(error).__name__)

    def send(self, method: str, kwargs: dict[str, Any]) -> SlackResult:
        """:meth:`call` with the arguments as one dict (the outbox's ``send``)."""
        return self.call(method, **kwargs)

    def open_dm(self, user_id: str) -> str | None:
        """The D… channel id of the bot's DM with ``user_id`` (``conversations.open``); None
        when Slack refuses or cannot be reached."""
        result = self.call("conversations.open", users=user_id)
        channel = result.data.get("channel") or {}
        return (
            str(channel["id"]) if result and isinstance(channel, dict) and "id" in channel else None
        )

    def post_status(self, channel: str, user_id: str, payload: dict[str, Any]) -> Posted | None:
        """Post ``payload`` (``{"text", "blocks"}``) in ``channel``; when the bot cannot post
        there, DM ``user_id`` the reason and post the message in that DM instead. None when
        neither worked."""
        result = self.call("chat.postMessage", channel=channel, **payload)
        if result:
            return Posted(channel=str(result.data["channel"]), ts=str(result.data["ts"]))
        if result.outcome != REFUSED or result.error not in CHANNEL_ERRORS:
            return None
        reason = CHANNEL_ERRORS[result.error].format(channel=channel)
        dm = self.open_dm(user_id)
        if dm is None:
            return None
        self.call(
            "chat.postMessage",
            channel=dm,
            text=f":information_source: {reason}, so I'll keep you posted here instead.",
        )
        answer = self.call("chat.postMessage", channel=dm, **payload)
        if not answer:
            return None
        return Posted(channel=dm, ts=str(answer.data["ts"]), fallback_reason=reason)

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> SlackResult:
        """``chat.update`` the message. ``refused`` when it was deleted or can no longer be
        edited (:data:`GONE_MESSAGE_ERRORS`) or Slack refused the payload; ``unavailable`` when
        worth trying again later."""
        return self.call("chat.update", channel=channel, ts=ts, **payload)

    def reply(self, channel: str, thread_ts: str, text: str, blocks: Any = None) -> SlackResult:
        """Reply in the thread of ``thread_ts`` (in the channel when the thread is gone).
        Truthy when posted; ``refused`` (e.g. a channel refusal) or ``unavailable`` else."""
        result = self.call(
            "chat.postMessage", channel=channel, thread_ts=thread_ts, text=text, blocks=blocks
        )
        if result.outcome == REFUSED and result.error in ("message_not_found", "thread_not_found"):
            ts = self.post(channel, text, blocks)
            return SlackResult(SENT, data={"ts": ts}) if ts else SlackResult(REFUSED, result.error)
        return result

    def post(self, channel: str, text: str, blocks: Any = None) -> str | None:
        """Plain ``chat.postMessage``; returns the ts, or None when not posted."""
        result = self.call("chat.postMessage", channel=channel, text=text, blocks=blocks)
        return str(result.data["ts"]) if result else None

    def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None:
        """DM ``user_id`` (secrets go only this way); returns the ts, None when not sent."""
        channel = self.open_dm(user_id)
        return self.post(channel, text, blocks) if channel is not None else None

    def upload_dm(
        self, user_id: str, *, filename: str, content: str, title: str, comment: str
    ) -> SlackResult:
        """Upload ``content`` as the file ``filename`` into the DM of ``user_id``, with
        ``comment`` as its message: slack_sdk's ``files_upload_v2``, i.e.
        ``files.getUploadURLExternal``, the upload, ``files.completeUploadExternal``
        (https://api.slack.com/methods/files.getUploadURLExternal; needs ``files:write``).
        Truthy when shared; ``refused`` with Slack's code (``missing_scope``), or
        ``unavailable``."""
        channel = self.open_dm(user_id)
        if channel is None:
            return SlackResult(UNAVAILABLE, "dm_not_opened")
        return self.call(
            "files.upload_v2",
            channel=channel,
            filename=filename,
            content=content,
            title=title,
            initial_comment=comment,
        )

    def ephemeral(self, channel: str, user_id: str, text: str, blocks: Any = None) -> bool:
        """``chat.postEphemeral``; False when not posted."""
        result = self.call(
            "chat.postEphemeral", channel=channel, user=user_id, text=text, blocks=blocks
        )
        return bool(result)

    def publish_home(self, user_id: str, view: Any) -> SlackResult:
        """``views.publish`` the App Home tab of ``user_id`` (needs the Home tab enabled)."""
        return self.call("views.publish", user_id=user_id, view=view)

    def team_id(self) -> str | None:
        """The workspace id of the bot token (``auth.test``'s ``team_id``); None when Slack
        refuses, cannot be reached or does not say."""
        result = self.call("auth.test")
        return str(result.data["team_id"]) if result and result.data.get("team_id") else None

    def user_tz(self, user_id: str) -> str | None:
        """The user's IANA time zone from ``users.info`` (``user.tz``; needs the ``users:read``
        scope); None when Slack gives none, refuses or cannot be reached."""
        result = self.call("users.info", user=user_id)
        user = result.data.get("user") or {}
        tz = user.get("tz") if isinstance(user, dict) else None
        return str(tz) if tz else None


class NotSent(Notifier):
    """A notifier that sends nothing: every call answers ``result`` at once (logged in one
    line naming the method and ``why``). For a workspace without an installation (``refused``
    with :data:`NOT_INSTALLED`: nothing is sent, and the messages' marks are cleared rather
    than retried for ever) or whose token cannot be had right now (``unavailable`` with
    :data:`TOKEN_UNAVAILABLE`: retried later)."""

    def __init__(self, client: WebClient, result: SlackResult, why: str) -> None:
        super().__init__(client)
        self.result = result
        self.why = why

    def call(self, method: str, **kwargs: Any) -> SlackResult:
        """``result``, without calling Slack."""
        logger.info("%s not sent: %s", method, self.why)
        return self.result
