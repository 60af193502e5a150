"""Listeners for approval requests (thin: parse, ack, hand over to
:class:`bot.services.approvals.ApprovalService`).

* **Approve** (``approval_approve``, value = deployment id): on the work pool
  (``services.work``; "busy — try again in a minute" when it is full), the service claims
  the decision and rents; the clicker gets an ephemeral answer (or a DM where there is no
  response_url).
* **Deny** (``approval_deny``): checked first (a non-approver, or a request already decided,
  gets an ephemeral answer and no modal), then ``views.open`` with the reason modal; its
  submission (``approval_deny_modal``) denies.

Button values and modal metadata are untrusted: a forged id, a foreign workspace or a
request that is not pending is refused by the service and nothing is rented. A person who
does not belong to the workspace (:mod:`bot.slack.listeners.membership`) is refused before the
request is even read.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.services.actions import Outcome
from bot.services.context import Services
from bot.services.work import BUSY_TEXT, Busy
from bot.slack.blocks import budgets as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.listeners.membership import DECIDE, interaction_refusal, refused
from bot.slack.listeners.payloads import team_of

logger = logging.getLogger(__name__)


def _ids(body: dict[str, Any]) -> tuple[str, str | None]:
    return str((body.get("user") or {}).get("id") or ""), team_of(body)


def _tell(services: Services, body: dict[str, Any], user: str, outcome: Outcome) -> None:
    """The outcome, privately, where the clicker clicked (response_url), else by DM."""
    url = body.get("response_url")
    if url:
        response = WebhookClient(str(url)).send(
            text=outcome.message, response_type="ephemeral", replace_original=False
        )
        if response.status_code == 200:
            return
    services.messages.dm(user, outcome.message, team_id=_ids(body)[1])


def register(app: App, services: Services) -> None:
    """Attach the approval listeners to ``app``."""

    @app.action(blocks.ACTION_APPROVE)
    def approve_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        user, team = _ids(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None:
            outcome = Outcome("not_found", "That button does not name an approval request.")
            _tell(services, body, user, outcome)
            return

        def job() -> None:  # on the work pool: an approval rents from Vast.ai
            if refused(services, client, body, DECIDE):
                return
            _tell(services, body, user, services.approvals.approve(deployment_id, user, team))

        try:
            services.work.spawn(job)
        except Busy:
            _tell(services, body, user, Outcome("busy", BUSY_TEXT))

    @app.action(blocks.ACTION_DENY)
    def deny_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        user, team = _ids(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None:
            _tell(services, body, user, Outcome("not_found", "That button names no request."))
            return
        if refused(services, client, body, DECIDE):
            return
        dep, refusal = services.approvals.may_deny(deployment_id, user, team)
        if refusal is not None or dep is None:
            _tell(services, body, user, refusal or Outcome("not_found", "No such request."))
            return
        container = body.get("container") or {}
        view = blocks.deny_view(
            dep.id,
            dep.template_name,
            dep.user_id,
            channel=container.get("channel_id"),
            ts=container.get("message_ts"),
        )
        try:
            client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as error:
            logger.info("deny modal not opened: %s", error.response.get("error"))
            _tell(
                services,
                body,
                user,
                Outcome("failed", "Slack did not open the reason form: press *Deny* again."),
            )

    @app.view(blocks.CALLBACK_DENY)
    def deny_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user, team = _ids(body)
        parsed = blocks.parse_deny_metadata(str(view.get("private_metadata") or ""))
        if parsed is None:
            ack(
                response_action="errors",
                errors={blocks.BLOCK_DENY_REASON: "This form is not from the bot any more."},
            )
            return
        outsider = interaction_refusal(services, body, DECIDE)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_DENY_REASON: outsider[:300]})
            return
        deployment_id = parsed[0]
        _, refusal = services.approvals.may_deny(deployment_id, user, team)
        if refusal is not None:
            ack(response_action="errors", errors={blocks.BLOCK_DENY_REASON: refusal.message[:300]})
            return
        ack()
        outcome = services.approvals.deny(deployment_id, user, team, blocks.deny_reason_value(view))
        if outcome.kind != "done":  # decided by someone else in the meantime
            services.messages.dm(user, outcome.message, team_id=team)
