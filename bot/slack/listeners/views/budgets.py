"""The budgets modal's submission (``budget_modal``, opened by ``/templates budget``:
:mod:`bot.slack.listeners.commands.budgets`). Admins only; bad amounts get an inline error on
their field, and nothing is saved then."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack

from bot.services.budgets import (
    BudgetInput,
    BudgetInputError,
    BudgetService,
    parse_budget_amount,
)
from bot.services.manage import ManageService
from bot.services.membership import MembershipService
from bot.slack.blocks import budgets as blocks
from bot.slack.listeners.commands.budgets import (
    MENTION,
    WORKSPACE_SUBJECT,
    refusal_text,
    stored_state,
)
from bot.slack.listeners.membership import BUDGETS, interaction_refusal
from bot.slack.listeners.payloads import team_of, user_of


class BudgetViews:
    """The budgets modal's submission."""

    def __init__(
        self,
        budgets: BudgetService,
        manage: ManageService,
        membership: MembershipService,
    ) -> None:
        self.budgets = budgets
        self.manage = manage
        self.membership = membership

    def on_budget_submitted(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Validate every field, then save what changed; the modal shows what was said."""
        user = user_of(body)
        team = team_of(body) or ""
        outsider = interaction_refusal(self.membership, body, BUDGETS)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_WORKSPACE_BUDGET: outsider})
            return
        if not self.manage.is_admin(team, user):
            ack(
                response_action="errors",
                errors={
                    blocks.BLOCK_WORKSPACE_BUDGET: refusal_text(self.manage, team, "change budgets")
                },
            )
            return
        values = blocks.budget_values(view)
        errors: dict[str, str] = {}
        changes: list[tuple[str, BudgetInput]] = []
        stored = self.budgets.month(team).stored
        try:
            workspace = parse_budget_amount(values["workspace"])
            if workspace != stored_state(stored, WORKSPACE_SUBJECT):
                changes.append((WORKSPACE_SUBJECT, workspace))
        except BudgetInputError as error:
            errors[blocks.BLOCK_WORKSPACE_BUDGET] = str(error)
        person = values["user"]
        try:
            amount = parse_budget_amount(values["amount"])
            if person and MENTION.fullmatch(f"<@{person}>"):
                if amount != stored_state(stored, person):
                    changes.append((person, amount))
            elif values["amount"]:
                errors[blocks.BLOCK_BUDGET_USER] = "Choose whose budget this amount is."
        except BudgetInputError as error:
            errors[blocks.BLOCK_USER_BUDGET] = str(error)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        said = [self.budgets.set(team, subject, value, user) for subject, value in changes]
        ack(
            response_action="update",
            view=blocks.budget_saved_view(said or ["Nothing changed."]),
        )
