"""``/templates budget`` and ``/templates audit`` (thin: parse, ack, hand over to the services and
render with :mod:`bot.slack.blocks.budgets`). Admins only (``BOT_ADMINS``); anyone else gets an
ephemeral refusal naming who can. The budgets modal's submission is
:mod:`bot.slack.listeners.views.budgets`; the audit log's paging buttons are
:mod:`bot.slack.listeners.actions.budgets`.

* ``/templates budget`` opens the budgets modal (current budgets, defaults, inputs);
  ``/templates budget @someone 200`` / ``/templates budget workspace 1500`` set one at once
  (``none``: no budget; ``default``: back to the configured default). The command's mentions
  arrive escaped (``<@U123|name>``): the manifest sets ``should_escape: true``.
* The modal's submission (``budget_modal``): bad amounts get an inline error on their field.
* ``/templates audit``: the latest 50 events, with Older / Newer buttons.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.formats import mentions
from bot.notices import WORKSPACE
from bot.services.budgets import (
    BudgetInput,
    BudgetInputError,
    BudgetService,
    parse_budget_amount,
)
from bot.services.listings import ListingService
from bot.services.manage import ManageService
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.slack.blocks import budgets as blocks
from bot.slack.listeners.membership import BUDGETS, command_refusal

MENTION = re.compile(r"<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>")
_WORKSPACE_WORDS = {"workspace", "team", "everyone"}
WORKSPACE_SUBJECT = WORKSPACE
USAGE = (
    "Usage: `/templates budget` opens the budgets form; `/templates budget @someone 200` sets "
    "someone's monthly budget in dollars, `/templates budget workspace 1500` the workspace's "
    "(`none`: no budget; `default`: back to the default)."
)


def refusal_text(manage: ManageService, team_id: str, what: str) -> str:
    """Who may ``what`` (budgets, the audit log): the bot admins of workspace ``team_id``."""
    admins = manage.admins.admins(team_id)
    if admins:
        return f":lock: Only bot admins can {what}: {mentions(admins)}. Ask one of them."
    return (
        f":lock: Only bot admins can {what}, and none are configured (an operator sets them "
        "with `BOT_ADMINS`)."
    )


def _subject(word: str) -> str | None:
    """The budget a command names: a user id from a mention, the workspace, or None."""
    if word.lower() in _WORKSPACE_WORDS:
        return WORKSPACE_SUBJECT
    match = MENTION.fullmatch(word)
    return match.group(1) if match else None


def budget_form(budgets: BudgetService, team_id: str) -> Any:
    """The budgets modal for ``team_id`` as it stands now."""
    month = budgets.month(team_id)
    lines = budgets.all_lines(team_id, month)
    shown: float | str | None = None  # no row: the configured default applies
    if WORKSPACE_SUBJECT in month.stored:
        stored = month.stored[WORKSPACE_SUBJECT]
        shown = "none" if stored is None else stored
    people = [line for line in lines[1:] if line.subject in month.stored]
    return blocks.budget_view(
        lines[0],
        people,
        workspace_default=budgets.policy.workspace_default,
        user_default=budgets.policy.user_default,
        stored_workspace=shown,
    )


def stored_state(stored: dict[str, float | None], subject: str) -> BudgetInput:
    """What the month's stored budgets (``BudgetService.month(...).stored``) say of ``subject``,
    as the input that would keep it."""
    if subject not in stored:
        return BudgetInput("default")
    dollars = stored[subject]
    return BudgetInput("none") if dollars is None else BudgetInput("set", dollars)


def audit_payload(listings: ListingService, team_id: str, page: int) -> dict[str, Any]:
    """Page ``page`` of ``/templates audit``."""
    entries, more = listings.audit(team_id, page, blocks.AUDIT_PAGE_SIZE)
    return blocks.audit_message(entries, page=page, has_more=more)


class BudgetCommands:
    """``/templates budget [target amount]`` and ``/templates audit`` (bot admins only)."""

    def __init__(
        self,
        budgets: BudgetService,
        listings: ListingService,
        manage: ManageService,
        membership: MembershipService,
        messages: DirectMessages,
    ) -> None:
        self.budgets = budgets
        self.listings = listings
        self.manage = manage
        self.membership = membership
        self.messages = messages

    def budget(self, ack: Ack, command: dict[str, Any], client: WebClient, args: str) -> None:
        """``/templates budget [target amount]``."""
        user = str(command.get("user_id") or "")
        team = str(command.get("team_id") or "")
        outsider = command_refusal(self.membership, command, BUDGETS)
        if outsider is not None:
            ack(response_type="ephemeral", text=outsider)
            return
        if not self.manage.is_admin(team, user):
            ack(response_type="ephemeral", text=refusal_text(self.manage, team, "change budgets"))
            return
        if not args.strip():
            ack()
            try:
                client.views_open(
                    trigger_id=str(command.get("trigger_id")), view=budget_form(self.budgets, team)
                )
            except SlackApiError as error:
                self.messages.dm(
                    user,
                    f"Slack did not open the budgets form ({error.response.get('error')}): run "
                    "`/templates budget` again.",
                    team_id=team,
                )
            return
        parts = args.split()
        subject = _subject(parts[0])
        if subject is None or len(parts) != 2:
            ack(response_type="ephemeral", text=USAGE)
            return
        try:
            value = parse_budget_amount(parts[1])
        except BudgetInputError as error:
            ack(response_type="ephemeral", text=f":x: {error} {USAGE}")
            return
        ack(response_type="ephemeral", text=self.budgets.set(team, subject, value, user))

    def audit(self, ack: Ack, command: dict[str, Any]) -> None:
        """``/templates audit``."""
        user = str(command.get("user_id") or "")
        team = str(command.get("team_id") or "")
        outsider = command_refusal(self.membership, command, BUDGETS)
        if outsider is not None:
            ack(response_type="ephemeral", text=outsider)
            return
        if not self.manage.is_admin(team, user):
            ack(
                response_type="ephemeral",
                text=refusal_text(self.manage, team, "read the audit log"),
            )
            return
        ack(response_type="ephemeral", **audit_payload(self.listings, team, 0))
