"""``/templates setup``, and what its modal's submission shares with it (thin: parse, check the
admin, ack; :class:`bot.services.workspaces.WorkspaceService` decides).

* ``/templates setup``: acked at once; a workspace admin (``BOT_ADMINS``, the workspace's own
  list, or a Slack owner or admin read with ``users.info``) gets the setup modal
  (:func:`bot.slack.blocks.setup.setup_view`, opened with the command's ``trigger_id``); anyone
  else an ephemeral refusal.
* The modal's submission (``workspace_setup``) is :mod:`bot.slack.listeners.views.setup`: it
  checks a new Vast.ai key on the work pool within Slack's 3 s, saves everything or nothing,
  and confirms by DM.
* :func:`roles_by_workspace`: the Slack roles reader the composition root gives the workspace
  service.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.membership import MembershipService
from bot.services.workspaces import (
    ADMINS,
    APPROVAL_DPH,
    APPROVERS,
    DEFAULT_LIFETIME,
    DIGEST_CHANNEL,
    MAX_LIFETIME,
    RoleReader,
    SlackRole,
    WorkspaceService,
    WorkspaceSettings,
)
from bot.slack.blocks import setup as blocks
from bot.slack.listeners.membership import SETUP, command_refusal
from bot.slack.notifier import copy_client

logger = logging.getLogger(__name__)

ROLE_TIMEOUT_SECONDS = 2
"""Seconds a ``users.info`` read of a user's role may take (no retries) before it counts as
"Slack could not say"."""

REFUSAL = (
    ":lock: Only workspace admins (or the bot's admins) can change setup: the workspace's "
    "Slack owners and admins, and the people they add as bot admins. Ask one of them."
)
#: Single-workspace mode: Slack's own admins are not bot admins there (only those listed).
REFUSAL_LISTED = (
    ":lock: Only workspace admins (or the bot's admins) can change setup: the people in "
    "`BOT_ADMINS` and those they add as bot admins. Ask one of them."
)


def refusal(oauth_mode: bool) -> str:
    """Who may change setup, as the mode (OAuth or single-workspace) counts admins."""
    return REFUSAL if oauth_mode else REFUSAL_LISTED


BLOCK_OF = {
    ADMINS: blocks.BLOCK_ADMINS,
    APPROVERS: blocks.BLOCK_APPROVERS,
    APPROVAL_DPH: blocks.BLOCK_APPROVAL_DPH,
    DIGEST_CHANNEL: blocks.BLOCK_DIGEST,
    DEFAULT_LIFETIME: blocks.BLOCK_DEFAULT_LIFETIME,
    MAX_LIFETIME: blocks.BLOCK_MAX_LIFETIME,
}
"""The modal's input block of each setting."""


def slack_roles(client: WebClient) -> RoleReader:
    """A :data:`bot.services.workspaces.RoleReader` on ``client`` (the request's workspace):
    ``users.info``'s ``is_admin`` / ``is_owner``, within :data:`ROLE_TIMEOUT_SECONDS` and
    without retries; None when Slack refuses, is slow or cannot be reached (logged)."""
    quick = copy_client(client, retry_handlers=[])
    quick.timeout = ROLE_TIMEOUT_SECONDS

    def read(team_id: str, user_id: str) -> SlackRole | None:
        try:
            answer = quick.users_info(user=user_id)
        except SlackApiError as error:
            logger.info("users.info for %s refused: %s", user_id, error.response.get("error"))
            return None
        except (URLError, OSError, SlackClientError) as error:
            logger.warning("users.info for %s unavailable: %s", user_id, type(error).__name__)
            return None
        user = answer.get("user")
        if not isinstance(user, dict):
            return None
        return SlackRole(is_admin=bool(user.get("is_admin")), is_owner=bool(user.get("is_owner")))

    return read


def roles_by_workspace(client_for: Callable[[str], WebClient | None]) -> RoleReader:
    """A :data:`bot.services.workspaces.RoleReader` that reads each workspace's users with that
    workspace's client (``client_for(team_id)``, e.g.
    :meth:`bot.slack.clients.WorkspaceClients.client_for`; None: not installed, no answer)."""

    def read(team_id: str, user_id: str) -> SlackRole | None:
        client = client_for(team_id)
        return slack_roles(client)(team_id, user_id) if client is not None else None

    return read


def setup_form(settings: WorkspaceSettings) -> blocks.SetupForm:
    """What the modal shows of ``settings``."""
    return blocks.SetupForm(
        key_source=settings.key_source,
        key_hint=settings.vast_key_hint,
        vast_user_id=settings.vast_user_id,
        admins=sorted(settings.admins),
        bot_admins=sorted(settings.bot_admins),
        approvers=sorted(settings.approvers),
        digest_channel=settings.digest_channel,
        approval_dph=settings.approval_dph,
        default_lifetime_hours=settings.default_lifetime_hours,
        max_lifetime_hours=settings.max_lifetime_hours,
    )


class SetupCommand:
    """``/templates setup``: ack, then the setup modal for a workspace admin, else an ephemeral
    refusal. ``oauth_mode``: whether Slack's own admins count as workspace admins."""

    def __init__(
        self, workspaces: WorkspaceService, membership: MembershipService, oauth_mode: bool
    ) -> None:
        self.workspaces = workspaces
        self.membership = membership
        self.oauth_mode = oauth_mode

    def setup(self, ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        """``/templates setup``: ack, then the modal for an admin, else an ephemeral refusal."""
        ack()
        user = str(command.get("user_id") or "")
        team = str(command.get("team_id") or "")
        outsider = command_refusal(self.membership, command, SETUP)
        if outsider is not None:
            respond(response_type="ephemeral", replace_original=False, text=outsider)
            return
        workspaces = self.workspaces
        if not workspaces.is_admin(team, user, roles=slack_roles(client)):
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=refusal(self.oauth_mode),
            )
            return
        view = blocks.setup_view(setup_form(workspaces.settings_for(team)))
        try:
            client.views_open(trigger_id=str(command.get("trigger_id")), view=view)
        except SlackApiError as error:
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=f"Slack did not open the setup form ({error.response.get('error')}): run "
                "`/templates setup` again.",
            )
