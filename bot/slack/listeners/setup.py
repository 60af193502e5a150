"""Listeners for ``/templates setup`` and its modal (thin: parse, check the admin, hand the key
check to the work pool, ack, confirm; :class:`bot.services.workspaces.WorkspaceService` decides).

* ``/templates setup``: acked at once; a workspace admin (``BOT_ADMINS``, the workspace's own
  list, or a Slack owner or admin read with ``users.info``) gets the setup modal
  (:func:`bot.slack.blocks.setup.setup_view`, opened with the command's ``trigger_id``); anyone else
  an ephemeral refusal.
* The modal's submission (``workspace_setup``): every field is validated first; a new Vast.ai
  key is checked with Vast.ai (``users/current``) on the work pool, waited for at most
  :data:`ACK_BUDGET_SECONDS` in all, so that Slack's 3-second ack is kept. Any problem is
  answered inline (``response_action: "errors"``) and then *nothing* is saved, neither the key
  nor the other fields. Otherwise the key is saved encrypted, then the settings, the modal is
  closed (``response_action: "clear"``) and the admin gets a DM confirming what is now in
  force ("Saved. Vast.ai key ending …a1b2 (account #1001).").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.context import Services
from bot.services.work import BUSY_TEXT, Busy
from bot.services.workspaces import (
    ADMINS,
    APPROVAL_DPH,
    APPROVERS,
    DEFAULT_LIFETIME,
    DIGEST_CHANNEL,
    KEY_UNREACHABLE,
    MAX_LIFETIME,
    CheckedKey,
    KeyRefused,
    RoleReader,
    SlackRole,
    WorkspaceSettings,
)
from bot.slack.blocks import setup as blocks
from bot.slack.listeners.membership import SETUP, command_refusal, interaction_refusal
from bot.slack.listeners.payloads import team_of
from bot.slack.notifier import Notifier, copy_client

logger = logging.getLogger(__name__)

ACK_BUDGET_SECONDS = 2.2
"""Seconds a submission may spend (admin check and key check together) before it acks: Slack
drops an ack later than 3 s, and Bolt and the network need the rest."""
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


def refusal(services: Services) -> str:
    """Who may change setup, as this mode counts admins."""
    return REFUSAL if services.settings.oauth_mode else REFUSAL_LISTED


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


def _ids(body: dict[str, Any]) -> tuple[str, str]:
    """(team id, user id) of an interactivity payload."""
    return team_of(body) or "", str((body.get("user") or {}).get("id") or "")


def setup_command(
    services: Services, ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
) -> None:
    """``/templates setup``: ack, then the modal for an admin, else an ephemeral refusal."""
    ack()
    user = str(command.get("user_id") or "")
    team = str(command.get("team_id") or "")
    outsider = command_refusal(services, command, SETUP)
    if outsider is not None:
        respond(response_type="ephemeral", replace_original=False, text=outsider)
        return
    workspaces = services.workspaces
    if not workspaces.is_admin(team, user, roles=slack_roles(client)):
        respond(response_type="ephemeral", replace_original=False, text=refusal(services))
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


def _check_key(services: Services, team: str, key: str, deadline: float) -> CheckedKey | str:
    """The checked key, or the sentence for the key field. The check (network) runs on the
    work pool; this waits until ``deadline`` (``time.monotonic()``) at most, and a late answer
    is dropped (nothing is saved for it)."""
    try:
        future = services.work.submit(services.workspaces.check_vast_key, team, key)
    except Busy:
        return BUSY_TEXT
    try:
        return future.result(timeout=max(0.2, deadline - time.monotonic()))
    except KeyRefused as refused:
        return str(refused)
    except TimeoutError:
        logger.warning("workspace %s: the Vast.ai key check did not answer in time", team)
        return KEY_UNREACHABLE


def register(app: App, services: Services) -> None:
    """Attach the setup modal's submission listener to ``app`` (the command is routed by
    :mod:`bot.slack.listeners.templates`)."""

    @app.view(blocks.CALLBACK_SETUP)
    def setup_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        deadline = time.monotonic() + ACK_BUDGET_SECONDS
        team, user = _ids(body)
        workspaces = services.workspaces
        outsider = interaction_refusal(services, body, SETUP)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_ADMINS: outsider})
            return
        if not team or not workspaces.is_admin(team, user, roles=slack_roles(client)):
            ack(response_action="errors", errors={blocks.BLOCK_ADMINS: refusal(services)})
            return
        values = blocks.setup_values(view)
        changes = {name: values[name] for name in BLOCK_OF if name in values}
        errors = {
            BLOCK_OF[name]: text[:2000]
            for name, text in workspaces.settings_problems(team, changes).items()
        }
        key = (values.get("key") or "").strip()
        checked: CheckedKey | None = None
        if key:
            result = _check_key(services, team, key, deadline)
            if isinstance(result, str):
                errors[blocks.BLOCK_KEY] = result[:2000]
            else:
                checked = result
        if errors:
            ack(response_action="errors", errors=errors)
            return
        if checked is not None:
            try:
                workspaces.save_checked_key(checked, user)
            except KeyRefused as refused:
                ack(response_action="errors", errors={blocks.BLOCK_KEY: str(refused)[:2000]})
                return
        settings = workspaces.save_settings(team, changes, user)
        ack(response_action="clear")
        text = blocks.saved_text(setup_form(settings), key_saved=checked is not None)
        Notifier(client).dm(user, text)
