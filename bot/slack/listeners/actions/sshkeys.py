"""Block actions of the SSH keys modal: **SSH keys** buttons anywhere (the ready DM; value a
deployment id or empty) open it with the click's ``trigger_id``; **Remove** on a key redraws it
(``views.update`` with the view's ``hash``, again without when the view changed meanwhile).
The modal itself and ``/templates ssh-key`` are :mod:`bot.slack.listeners.commands.sshkeys`."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.services.sshkeys import SshKeyService
from bot.slack.blocks import sshkeys as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.listeners.commands.sshkeys import (
    KEYS,
    NOT_OPENED,
    ids_of,
    keys_view,
    outcome_notice,
)
from bot.slack.listeners.membership import refused
from bot.slack.listeners.replies import tell_user, update_view

logger = logging.getLogger(__name__)


class SshKeyActions:
    """Open the SSH keys modal; remove a key from it."""

    def __init__(
        self,
        ssh_keys: SshKeyService,
        membership: MembershipService,
        messages: DirectMessages,
    ) -> None:
        self.ssh_keys = ssh_keys
        self.membership = membership
        self.messages = messages

    def on_open(
        self, ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient
    ) -> None:
        """Open the person's SSH keys modal (a refusal or Slack's "no" is told privately)."""
        ack()
        if refused(self.membership, self.messages, client, body, KEYS):
            return
        team, user = ids_of(body)
        deployment_id = parse_deployment_id(action.get("value"))
        view = keys_view(self.ssh_keys, team, user, deployment_id=deployment_id)
        try:
            client.views_open(trigger_id=str(body.get("trigger_id")), view=view)
        except (SlackApiError, SlackClientError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            logger.info("ssh keys modal not opened: %s", code or type(error).__name__)
            tell_user(self.messages, client, body, NOT_OPENED.format(error=code or "no answer"))

    def on_remove(
        self, ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient
    ) -> None:
        """Remove the key the button names (value: its id) and redraw the modal."""
        ack()
        if refused(self.membership, self.messages, client, body, KEYS):
            return
        team, user = ids_of(body)
        outcome = self.ssh_keys.remove(team, user, blocks.parse_key_id(action.get("value")))
        shown = body.get("view") or {}
        view_id = str(shown.get("id") or "")
        if not view_id:  # a Remove outside the modal (forged): say it privately
            tell_user(self.messages, client, body, outcome.message)
            return
        revision, deployment_id = blocks.read_metadata(shown)
        view = keys_view(
            self.ssh_keys,
            team,
            user,
            notice=outcome_notice(outcome),
            revision=revision,
            deployment_id=deployment_id,
        )
        hash_ = str(shown.get("hash") or "") or None
        if update_view(client, view_id, view, hash=hash_).conflict:
            update_view(client, view_id, view)  # drawn from the database: the newest anyway
