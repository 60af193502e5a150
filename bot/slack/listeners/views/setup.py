"""The workspace setup modal's submission (``workspace_setup``, opened by ``/templates setup``:
:mod:`bot.slack.listeners.commands.setup`).

Every field is validated first; a new Vast.ai key is checked with Vast.ai (``users/current``)
on the work pool, waited for at most :data:`ACK_BUDGET_SECONDS` in all, so that Slack's
3-second ack is kept. Any problem is answered inline (``response_action: "errors"``) and then
*nothing* is saved. Otherwise the key is saved encrypted, then the settings, the modal is
closed (``response_action: "clear"``) and the admin gets a DM confirming what is now in force.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.services.membership import MembershipService
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.services.workspaces import KEY_UNREACHABLE, CheckedKey, KeyRefused, WorkspaceService
from bot.slack.blocks import setup as blocks
from bot.slack.listeners.commands.setup import BLOCK_OF, refusal, setup_form, slack_roles
from bot.slack.listeners.membership import SETUP, interaction_refusal
from bot.slack.listeners.payloads import team_of, user_of
from bot.slack.notifier import Notifier

logger = logging.getLogger(__name__)

ACK_BUDGET_SECONDS = 2.2
"""Seconds a submission may spend (admin check and key check together) before it acks: Slack
drops an ack later than 3 s, and Bolt and the network need the rest."""


class SetupViews:
    """The setup modal's submission."""

    def __init__(
        self,
        workspaces: WorkspaceService,
        membership: MembershipService,
        work: WorkPool,
        oauth_mode: bool,
    ) -> None:
        self.workspaces = workspaces
        self.membership = membership
        self.work = work
        self.oauth_mode = oauth_mode

    def on_setup_submitted(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        """Validate, check a new key with Vast.ai, save all or nothing, ack, confirm by DM."""
        deadline = time.monotonic() + ACK_BUDGET_SECONDS
        team, user = _ids(body)
        workspaces = self.workspaces
        outsider = interaction_refusal(self.membership, body, SETUP)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_ADMINS: outsider})
            return
        if not team or not workspaces.is_admin(team, user, roles=slack_roles(client)):
            ack(response_action="errors", errors={blocks.BLOCK_ADMINS: refusal(self.oauth_mode)})
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
            result = _check_key(self.work, workspaces, team, key, deadline)
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


def _ids(body: dict[str, Any]) -> tuple[str, str]:
    """(team id, user id) of an interactivity payload."""
    return team_of(body) or "", user_of(body)


def _check_key(
    work: WorkPool, workspaces: WorkspaceService, team: str, key: str, deadline: float
) -> CheckedKey | str:
    """The checked key, or the sentence for the key field. The check (network) runs on the
    work pool; this waits until ``deadline`` (``time.monotonic()``) at most, and a late answer
    is dropped (nothing is saved for it)."""
    try:
        future = work.submit(workspaces.check_vast_key, team, key)
    except Busy:
        return BUSY_TEXT
    try:
        return future.result(timeout=max(0.2, deadline - time.monotonic()))
    except KeyRefused as refused:
        return str(refused)
    except TimeoutError:
        logger.warning("workspace %s: the Vast.ai key check did not answer in time", team)
        return KEY_UNREACHABLE
