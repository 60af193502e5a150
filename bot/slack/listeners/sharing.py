"""Listeners for sharing a deployment (thin: parse, ack, hand over to
:class:`bot.services.sharing.SharingService`, render with :mod:`bot.slack.blocks.sharing`).

* **Share** (``deployment_share``, value = deployment id) on the status message and on the
  Home tab: the owner or a bot admin gets the Share modal (``views.open`` with the click's
  ``trigger_id``, which Slack honours for 3 s, so it is opened on the listener's thread);
  anyone else is told who can, where they clicked.
* The modal's submission (``share_modal``): a refusal or a person who cannot be added is an
  inline error on the people field; a saved change replaces the modal by what changed and
  who has access now, then the thread and the people concerned are told on the work pool.

Both first ask :mod:`bot.slack.listeners.membership` whether the person belongs to the workspace.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.actions import NOT_FOUND_TEXT, Outcome
from bot.services.context import Services
from bot.services.sharing import ShareResult
from bot.services.work import Busy
from bot.slack.blocks import sharing as blocks
from bot.slack.blocks.common import notice_modal, parse_deployment_id
from bot.slack.blocks.home import HOME_BLOCK_PREFIX
from bot.slack.listeners.membership import MANAGE, interaction_refusal, refused
from bot.slack.listeners.payloads import team_of
from bot.slack.listeners.replies import tell_user

logger = logging.getLogger(__name__)

FORM_TEXT = (
    ":warning: Slack sent this form back in a shape the bot cannot read, so nothing changed. "
    "Close it and press *Share* again."
)


def _from_home(body: dict[str, Any], action: dict[str, Any]) -> bool:
    container = body.get("container") or {}
    return container.get("type") == "view" or str(action.get("block_id") or "").startswith(
        HOME_BLOCK_PREFIX
    )


def _tell(
    services: Services,
    client: WebClient,
    body: dict[str, Any],
    action: dict[str, Any],
    text: str,
) -> None:
    """Tell the clicker ``text`` where they clicked: the Home tab redrawn with it as a notice,
    else an ephemeral reply (or a DM) under the status message."""
    user = str((body.get("user") or {}).get("id") or "")
    if _from_home(body, action):
        services.home.refresh(user, team_id=team_of(body), notice=text)
        return
    tell_user(services, client, body, text)


def register(app: App, services: Services) -> None:
    """Attach the sharing listeners to ``app``."""

    @app.action(blocks.ACTION_SHARE)
    def share_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, MANAGE):  # an outsider learns nothing
            return
        user = str((body.get("user") or {}).get("id") or "")
        team = team_of(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None or not team:
            _tell(services, client, body, action, NOT_FOUND_TEXT)
            return
        form = services.sharing.form(deployment_id, user, team_id=team)
        if isinstance(form, Outcome):
            _tell(services, client, body, action, form.message)
            return
        view = blocks.share_modal(form.deployment, form.collaborators, max_people=form.max_people)
        try:
            client.views_open(trigger_id=str(body.get("trigger_id") or ""), view=view)
        except (SlackApiError, SlackClientError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            logger.warning("share modal not opened: %s", code or type(error).__name__)
            _tell(
                services,
                client,
                body,
                action,
                f"Slack did not open the Share form ({code or 'no answer'}): press *Share* again.",
            )

    @app.view(blocks.CALLBACK_SHARE)
    def share_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        outsider = interaction_refusal(services, body, MANAGE)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_SHARE_USERS: outsider})
            return
        meta = blocks.parse_share_metadata(view.get("private_metadata"))
        chosen = blocks.selected_users(view)
        if meta is None or chosen is None:
            ack(
                response_action="update",
                view=notice_modal("Form not read", FORM_TEXT, block_id="share_not_read"),
            )
            return
        user = str((body.get("user") or {}).get("id") or "")
        result = services.sharing.submit(
            meta.deployment_id, user, chosen, meta.previous, team_id=team_of(body)
        )
        if result.field_error is not None:
            ack(response_action="errors", errors={blocks.BLOCK_SHARE_USERS: result.field_error})
            return
        if result.refusal is not None:
            ack(
                response_action="update",
                view=notice_modal("Not shared", result.refusal, block_id="share_refused"),
            )
            return
        ack(response_action="update", view=blocks.share_done_view(result.message))
        _announce(services, result)


def _announce(services: Services, result: ShareResult) -> None:
    """Tell the thread and the people concerned on the work pool (here when it is full: the
    modal was answered already, and the change is saved)."""
    if not result.changed:
        return
    try:
        services.work.spawn(services.sharing.announce, result)
    except Busy:
        logger.warning("work pool full: a share is announced on the listener's thread")
        services.sharing.announce(result)
