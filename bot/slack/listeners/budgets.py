"""Listeners for budgets and the audit log (thin: parse, ack, hand over to the services and
render with :mod:`bot.slack.blocks.budgets`). Admins only (``BOT_ADMINS``); anyone else gets an
ephemeral refusal naming who can.

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

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.formats import mentions
from bot.notices import WORKSPACE
from bot.services.budgets import BudgetInput, BudgetInputError, parse_budget_amount
from bot.services.context import Services
from bot.slack.blocks import budgets as blocks
from bot.slack.blocks.manage import text_message
from bot.slack.listeners.membership import BUDGETS, command_refusal, interaction_refusal, refused
from bot.slack.listeners.payloads import team_of

_MENTION = re.compile(r"<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>")
_WORKSPACE_WORDS = {"workspace", "team", "everyone"}
WORKSPACE_SUBJECT = WORKSPACE
USAGE = (
    "Usage: `/templates budget` opens the budgets form; `/templates budget @someone 200` sets "
    "someone's monthly budget in dollars, `/templates budget workspace 1500` the workspace's "
    "(`none`: no budget; `default`: back to the default)."
)


def refusal_text(services: Services, team_id: str, what: str) -> str:
    """Who may ``what`` (budgets, the audit log): the bot admins of workspace ``team_id``."""
    admins = services.manage.admins.admins(team_id)
    if admins:
        return f":lock: Only bot admins can {what}: {mentions(admins)}. Ask one of them."
    return (
        f":lock: Only bot admins can {what}, and none are configured (an operator sets them "
        "with `BOT_ADMINS`)."
    )


def budget_command(
    services: Services, ack: Ack, command: dict[str, Any], client: WebClient, args: str
) -> None:
    """``/templates budget [target amount]``."""
    user = str(command.get("user_id") or "")
    team = str(command.get("team_id") or "")
    outsider = command_refusal(services, command, BUDGETS)
    if outsider is not None:
        ack(response_type="ephemeral", text=outsider)
        return
    if not services.is_admin(team, user):
        ack(response_type="ephemeral", text=refusal_text(services, team, "change budgets"))
        return
    if not args.strip():
        ack()
        try:
            client.views_open(
                trigger_id=str(command.get("trigger_id")), view=budget_form(services, team)
            )
        except SlackApiError as error:
            services.messages.dm(
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
    ack(response_type="ephemeral", text=services.budgets.set(team, subject, value, user))


def _subject(word: str) -> str | None:
    """The budget a command names: a user id from a mention, the workspace, or None."""
    if word.lower() in _WORKSPACE_WORDS:
        return WORKSPACE_SUBJECT
    match = _MENTION.fullmatch(word)
    return match.group(1) if match else None


def budget_form(services: Services, team_id: str) -> Any:
    """The budgets modal for ``team_id`` as it stands now."""
    budgets = services.budgets
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


def _state_of(stored: dict[str, float | None], subject: str) -> BudgetInput:
    if subject not in stored:
        return BudgetInput("default")
    dollars = stored[subject]
    return BudgetInput("none") if dollars is None else BudgetInput("set", dollars)


def audit_payload(services: Services, team_id: str, page: int) -> dict[str, Any]:
    """Page ``page`` of ``/templates audit``."""
    entries, more = services.listings.audit(team_id, page, blocks.AUDIT_PAGE_SIZE)
    return blocks.audit_message(entries, page=page, has_more=more)


def audit_command(services: Services, ack: Ack, command: dict[str, Any]) -> None:
    """``/templates audit``."""
    user = str(command.get("user_id") or "")
    team = str(command.get("team_id") or "")
    outsider = command_refusal(services, command, BUDGETS)
    if outsider is not None:
        ack(response_type="ephemeral", text=outsider)
        return
    if not services.is_admin(team, user):
        ack(response_type="ephemeral", text=refusal_text(services, team, "read the audit log"))
        return
    ack(response_type="ephemeral", **audit_payload(services, team, 0))


def register(app: App, services: Services) -> None:
    """Attach the budget modal and audit paging listeners to ``app``."""

    @app.view(blocks.CALLBACK_BUDGET)
    def budget_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        team = team_of(body) or ""
        outsider = interaction_refusal(services, body, BUDGETS)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_WORKSPACE_BUDGET: outsider})
            return
        if not services.is_admin(team, user):
            ack(
                response_action="errors",
                errors={
                    blocks.BLOCK_WORKSPACE_BUDGET: refusal_text(services, team, "change budgets")
                },
            )
            return
        values = blocks.budget_values(view)
        errors: dict[str, str] = {}
        changes: list[tuple[str, BudgetInput]] = []
        stored = services.budgets.month(team).stored
        try:
            workspace = parse_budget_amount(values["workspace"])
            if workspace != _state_of(stored, WORKSPACE_SUBJECT):
                changes.append((WORKSPACE_SUBJECT, workspace))
        except BudgetInputError as error:
            errors[blocks.BLOCK_WORKSPACE_BUDGET] = str(error)
        person = values["user"]
        try:
            amount = parse_budget_amount(values["amount"])
            if person and _MENTION.fullmatch(f"<@{person}>"):
                if amount != _state_of(stored, person):
                    changes.append((person, amount))
            elif values["amount"]:
                errors[blocks.BLOCK_BUDGET_USER] = "Choose whose budget this amount is."
        except BudgetInputError as error:
            errors[blocks.BLOCK_USER_BUDGET] = str(error)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        said = [services.budgets.set(team, subject, value, user) for subject, value in changes]
        ack(
            response_action="update",
            view=blocks.budget_saved_view(said or ["Nothing changed."]),
        )

    @app.action(blocks.ACTION_AUDIT_PREV)
    @app.action(blocks.ACTION_AUDIT_NEXT)
    def audit_page(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, BUDGETS):
            return
        user = str((body.get("user") or {}).get("id") or "")
        team = team_of(body) or ""
        if not services.is_admin(team, user):
            respond(
                replace_original=False,
                response_type="ephemeral",
                **text_message(refusal_text(services, team, "read the audit log")),
            )
            return
        page = blocks.parse_audit_page(action.get("value"))
        respond(
            replace_original=True, response_type="ephemeral", **audit_payload(services, team, page)
        )
