"""Posting to Slack outside a listener's ack: status messages, thread replies, DMs.

Wraps slack_sdk's ``WebClient`` (whose retry handlers wait out 429 ``Retry-After``, see
:func:`bot.app.make_web_client`) and turns the Slack errors a user can meet into outcomes:
a channel the bot cannot post in falls back to a DM that says why; a deleted status message
(``message_not_found``) is reported, not raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

logger = logging.getLogger(__name__)

# chat.postMessage errors that mean "not here, but a DM may work" (docs.slack.dev chat.postMessage).
CHANNEL_ERRORS = {
    "not_in_channel": "I'm not a member of <#{channel}>: invite me with `/invite @gpu-templates`",
    "channel_not_found": "I can't see the channel <#{channel}> (private or deleted?)",
    "is_archived": "<#{channel}> is archived",
    "restricted_action": "posting in <#{channel}> is restricted for apps",
    "restricted_action_read_only_channel": "<#{channel}> is read-only",
}


@dataclass(frozen=True)
class Posted:
    """Where a message landed: ``channel`` (C…/D…), ``ts``, and ``fallback_reason`` when it went
    to the requester's DM instead of the chosen channel."""

    channel: str
    ts: str
    fallback_reason: str | None = None


class Notifier:
    """Sends the bot's own messages. Methods never raise for Slack-side refusals they can
    explain; other ``SlackApiError``s propagate."""

    def __init__(self, client: WebClient):
        self.client = client

    def open_dm(self, user_id: str) -> str:
        """The D… channel id of the bot's DM with ``user_id`` (``conversations.open``)."""
        response = self.client.conversations_open(users=user_id)
        return str(response["channel"]["id"])

    def post_status(self, channel: str, user_id: str, payload: dict[str, Any]) -> Posted:
        """Post ``payload`` (``{"text", "blocks"}``) in ``channel``; when the bot cannot post
        there, DM ``user_id`` the reason and post the message in that DM instead."""
        try:
            response = self.client.chat_postMessage(channel=channel, **payload)
            return Posted(channel=str(response["channel"]), ts=str(response["ts"]))
        except SlackApiError as error:
            code = str(error.response.get("error"))
            if code not in CHANNEL_ERRORS:
                raise
            reason = CHANNEL_ERRORS[code].format(channel=channel)
        dm = self.open_dm(user_id)
        self.client.chat_postMessage(
            channel=dm,
            text=f":information_source: {reason}, so I'll keep you posted here instead.",
        )
        response = self.client.chat_postMessage(channel=dm, **payload)
        return Posted(channel=dm, ts=str(response["ts"]), fallback_reason=reason)

    def update(self, channel: str, ts: str, payload: dict[str, Any]) -> bool:
        """``chat.update`` the message; False when it was deleted (``message_not_found``) or can
        no longer be edited, so a poller can carry on."""
        try:
            self.client.chat_update(channel=channel, ts=ts, **payload)
            return True
        except SlackApiError as error:
            code = error.response.get("error")
            if code in ("message_not_found", "cant_update_message", "channel_not_found"):
                logger.info("status message %s/%s not updated: %s", channel, ts, code)
                return False
            raise

    def reply(self, channel: str, thread_ts: str, text: str, blocks: Any = None) -> bool:
        """Reply in the thread of ``thread_ts``; False when the thread is gone."""
        try:
            self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text, blocks=blocks
            )
            return True
        except SlackApiError as error:
            if error.response.get("error") in ("message_not_found", "thread_not_found"):
                return self.post(channel, text, blocks) is not None
            if error.response.get("error") in CHANNEL_ERRORS:
                return False
            raise

    def post(self, channel: str, text: str, blocks: Any = None) -> str | None:
        """Plain ``chat.postMessage``; returns the ts, or None when the channel refuses."""
        try:
            response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
            return str(response["ts"])
        except SlackApiError as error:
            if error.response.get("error") in CHANNEL_ERRORS:
                return None
            raise

    def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None:
        """DM ``user_id`` (secrets go only this way); returns the ts."""
        return self.post(self.open_dm(user_id), text, blocks)

    def ephemeral(self, channel: str, user_id: str, text: str, blocks: Any = None) -> bool:
        """``chat.postEphemeral``; False when the channel refuses."""
        try:
            self.client.chat_postEphemeral(channel=channel, user=user_id, text=text, blocks=blocks)
            return True
        except SlackApiError as error:
            if error.response.get("error") in {*CHANNEL_ERRORS, "user_not_in_channel"}:
                return False
            raise

    def publish_home(self, user_id: str, view: Any) -> None:
        """``views.publish`` the App Home tab of ``user_id`` (needs the Home tab enabled)."""
        self.client.views_publish(user_id=user_id, view=view)

    def team_id(self) -> str:
        """The workspace id of the bot token (``auth.test``'s ``team_id``). Raises
        ``SlackApiError`` when Slack refuses, ``KeyError`` when the answer lacks it."""
        return str(self.client.auth_test()["team_id"])

    def user_tz(self, user_id: str) -> str | None:
        """The user's IANA time zone from ``users.info`` (``user.tz``; needs the ``users:read``
        scope), None when Slack gives none. Raises slack_sdk errors like the other calls."""
        response = self.client.users_info(user=user_id)
        tz = (response.get("user") or {}).get("tz")
        return str(tz) if tz else None
