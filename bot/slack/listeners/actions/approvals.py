"""Block actions on approval requests (thin: parse, ack, hand over to
:class:`bot.services.approvals.ApprovalService`).

* **Approve** (``approval_approve``, value = deployment id): on the work pool
  (:class:`bot.services.work.WorkPool`; "busy — try again in a minute" when it is full), the
  service claims the decision and rents; the clicker gets an ephemeral answer (or a DM where
  there is no response_url).
* **Deny** (``approval_deny``): checked first (a non-approver, or a request already decided,
  gets an ephemeral answer and no modal), then ``views.open`` with the reason modal; its
  submission (``approval_deny_modal``, :mod:`bot.slack.listeners.views.approvals`) denies.

Button values and modal metadata are untrusted: a forged id, a foreign workspace or a
request that is not pending is refused by the service and nothing is rented. A person who
does not belong to the workspace (:mod:`bot.slack.listeners.membership`) is refused before the
request is even read.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.services.approvals import ApprovalService
from bot.services.manage import Outcome
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import budgets as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.listeners.membership import DECIDE, refused
from bot.slack.listeners.payloads import team_of, user_of

logger = logging.getLogger(__name__)


def ids_of(body: dict[str, Any]) -> tuple[str, str | None]:
    """(user id, workspace) of an interactivity payload."""
    return user_of(body), team_of(body)


def _tell(messages: DirectMessages, body: dict[str, Any], user: str, outcome: Outcome) -> None:
    """The outcome, privately, where the clicker clicked (response_url), else by DM."""
    url = body.get("response_url")
    if url:
        response = WebhookClient(str(url)).send(
            text=outcome.message, response_type="ephemeral", replace_original=False
        )
        if response.status_code == 200:
            return
    messages.dm(user, outcome.message, team_id=ids_of(body)[1])


class ApprovalActions:
    """**Approve** and **Deny** on an approval request (value: the deployment id)."""

    def __init__(
        self,
        approvals: ApprovalService,
        membership: MembershipService,
        messages: DirectMessages,
        work: WorkPool,
    ) -> None:
        self.approvals = approvals
        self.membership = membership
        self.messages = messages
        self.work = work

    def on_approve(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        """Approve on the work pool (an approval rents); the clicker is told how it went."""
        ack()
        user, team = ids_of(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None:
            outcome = Outcome("not_found", "That button does not name an approval request.")
            _tell(self.messages, body, user, outcome)
            return

        def job() -> None:  # on the work pool: an approval rents from Vast.ai
            if refused(self.membership, self.messages, client, body, DECIDE):
                return
            _tell(self.messages, body, user, self.approvals.approve(deployment_id, user, team))

        try:
            self.work.spawn(job)
        except Busy:
            _tell(self.messages, body, user, Outcome("busy", BUSY_TEXT))

    def on_deny(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        """Check that the clicker may deny, then open the reason modal."""
        ack()
        user, team = ids_of(body)
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None:
            _tell(self.messages, body, user, Outcome("not_found", "That button names no request."))
            return
        if refused(self.membership, self.messages, client, body, DECIDE):
            return
        dep, refusal = self.approvals.may_deny(deployment_id, user, team)
        if refusal is not None or dep is None:
            _tell(self.messages, body, user, refusal or Outcome("not_found", "No such request."))
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
                self.messages,
                body,
                user,
                Outcome("failed", "Slack did not open the reason form: press *Deny* again."),
            )
