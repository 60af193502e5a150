"""The **Share** button (thin: parse, ack, hand over to
:class:`bot.services.sharing.SharingService`, render with :mod:`bot.slack.blocks.sharing`).

* **Share** (``deployment_share``, value = deployment id) on the status message and on the
  Home tab: the owner or a bot admin gets the Share modal (``views.open`` with the click's
  ``trigger_id``, which Slack honours for 3 s, so it is opened on the listener's thread);
  anyone else is told who can, where they clicked.
* The modal's submission (``share_modal``) is :mod:`bot.slack.listeners.views.sharing`.

It first asks :mod:`bot.slack.listeners.membership` whether the person belongs to the workspace.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.home import HomeService
from bot.services.manage import NOT_FOUND_TEXT, Outcome
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.services.sharing import SharingService
from bot.slack.blocks import sharing as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.blocks.home import HOME_BLOCK_PREFIX
from bot.slack.listeners.membership import MANAGE, refused
from bot.slack.listeners.payloads import team_of, user_of
from bot.slack.listeners.replies import tell_user

logger = logging.getLogger(__name__)


def _from_home(body: dict[str, Any], action: dict[str, Any]) -> bool:
    container = body.get("container") or {}
    return container.get("type") == "view" or str(action.get("block_id") or "").startswith(
        HOME_BLOCK_PREFIX
    )


def _tell(
    home: HomeService,
    messages: DirectMessages,
    client: WebClient,
    body: dict[str, Any],
    action: dict[str, Any],
    text: str,
) -> None:
    """Tell the clicker ``text`` where they clicked: the Home tab redrawn with it as a notice,
    else an ephemeral reply (or a DM) under the status message."""
    user = user_of(body)
    if _from_home(body, action):
        home.refresh(user, team_id=team_of(body), notice=text)
        return
    tell_user(messages, client, body, text)


class SharingActions:
    """**Share** on the status message and the Home tab."""

    def __init__(
        self,
        sharing: SharingService,
        membership: MembershipService,
        messages: DirectMessages,
        home: HomeService,
    ) -> None:
        self.sharing = sharing
        self.membership = membership
        self.messages = messages
        self.home = home

    def on_share_clicked(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        """Open the Share modal for the owner or a bot admin (value: the deployment id)."""
        ack()
        if refused(
            self.membership, self.messages, client, body, MANAGE
        ):  # an outsider learns nothing
            return
        user = user_of(body)
        team = team_of(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None or not team:
            _tell(self.home, self.messages, client, body, action, NOT_FOUND_TEXT)
            return
        form = self.sharing.form(deployment_id, user, team_id=team)
        if isinstance(form, Outcome):
            _tell(self.home, self.messages, client, body, action, form.message)
            return
        view = blocks.share_modal(form.deployment, form.collaborators, max_people=form.max_people)
        try:
            client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        except (SlackApiError, SlackClientError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            logger.warning("share modal not opened: %s", code or type(error).__name__)
            _tell(
                self.home,
                self.messages,
                client,
                body,
                action,
                f"Slack did not open the Share form ({code or 'no answer'}): press *Share* again.",
            )
