"""The Deny reason modal's submission (``approval_deny_modal``; the modal opens from **Deny**:
:mod:`bot.slack.listeners.actions.approvals`). Its metadata is untrusted: a forged id, a
foreign workspace or a request that is not pending is refused by the service."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack

from bot.services.approvals import ApprovalService
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.slack.blocks import budgets as blocks
from bot.slack.listeners.membership import DECIDE, interaction_refusal
from bot.slack.listeners.payloads import team_of, user_of


class ApprovalViews:
    """The Deny reason modal's submission."""

    def __init__(
        self,
        approvals: ApprovalService,
        membership: MembershipService,
        messages: DirectMessages,
    ) -> None:
        self.approvals = approvals
        self.membership = membership
        self.messages = messages

    def on_deny_submitted(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Deny with the reason given; a refusal is an inline error on the reason."""
        user, team = user_of(body), team_of(body)
        parsed = blocks.parse_deny_metadata(str(view.get("private_metadata") or ""))
        if parsed is None:
            ack(
                response_action="errors",
                errors={blocks.BLOCK_DENY_REASON: "This form is not from the bot any more."},
            )
            return
        outsider = interaction_refusal(self.membership, body, DECIDE)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_DENY_REASON: outsider[:300]})
            return
        deployment_id = parsed[0]
        _, refusal = self.approvals.may_deny(deployment_id, user, team)
        if refusal is not None:
            ack(response_action="errors", errors={blocks.BLOCK_DENY_REASON: refusal.message[:300]})
            return
        ack()
        outcome = self.approvals.deny(deployment_id, user, team, blocks.deny_reason_value(view))
        if outcome.kind != "done":  # decided by someone else in the meantime
            self.messages.dm(user, outcome.message, team_id=team)
