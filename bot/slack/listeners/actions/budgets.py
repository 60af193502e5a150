"""The audit log's paging buttons (Older / Newer on ``/templates audit``:
:mod:`bot.slack.listeners.commands.budgets`). Admins only."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.services.listings import ListingService
from bot.services.manage import ManageService
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.slack.blocks import budgets as blocks
from bot.slack.blocks.manage import text_message
from bot.slack.listeners.commands.budgets import audit_payload, refusal_text
from bot.slack.listeners.membership import BUDGETS, refused
from bot.slack.listeners.payloads import team_of, user_of


class AuditActions:
    """Older / Newer on the audit log."""

    def __init__(
        self,
        listings: ListingService,
        manage: ManageService,
        membership: MembershipService,
        messages: DirectMessages,
    ) -> None:
        self.listings = listings
        self.manage = manage
        self.membership = membership
        self.messages = messages

    def on_audit_page(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
    ) -> None:
        """The page the button names (value: the page number), redrawn in place."""
        ack()
        if refused(self.membership, self.messages, client, body, BUDGETS):
            return
        user = user_of(body)
        team = team_of(body) or ""
        if not self.manage.is_admin(team, user):
            respond(
                replace_original=False,
                response_type="ephemeral",
                **text_message(refusal_text(self.manage, team, "read the audit log")),
            )
            return
        page = blocks.parse_audit_page(action.get("value"))
        respond(
            replace_original=True,
            response_type="ephemeral",
            **audit_payload(self.listings, team, page),
        )
