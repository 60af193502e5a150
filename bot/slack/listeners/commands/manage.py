"""``/templates mine|running|costs|credit`` and ``costs export`` (thin: check the person, hand
over to the services and render with :mod:`bot.slack.blocks.manage`).

Sub-command handlers, listed in the command's table
(:func:`bot.slack.listeners.commands.templates.subcommands`); each acks with an ephemeral answer
within Slack's 3 s (a slow answer acks "working on it" and follows through the response_url).
The buttons on these listings are :mod:`bot.slack.listeners.actions.manage`.

Every command here first asks :mod:`bot.slack.listeners.membership` whether the person belongs
to the workspace; a person of another workspace is told so privately and learns nothing of its
deployments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack
from slack_sdk.webhook import WebhookClient

from bot.services import manage
from bot.services.accounts import VastAccounts
from bot.services.budgets import BudgetService
from bot.services.context import Services
from bot.services.cost_export import CostExportService
from bot.services.credit import CreditService
from bot.services.listings import ListingService
from bot.services.manage import ManageService
from bot.services.membership import MembershipService
from bot.services.ports import UnmanagedInstance
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import manage as blocks
from bot.slack.listeners.membership import LOOK, command_refusal

logger = logging.getLogger(__name__)

SLOW_ACK_BUDGET = 2.0
"""Seconds ``/templates credit`` and ``costs`` wait for their answer before acking and
answering later through the response_url (Slack drops an ack after 3 s)."""


class DeploymentLists:
    """The ``/templates mine|running`` messages, for the command and for the buttons that redraw
    them. ``expiry_action``: what happens at a deployment's end (``ON_EXPIRY``: stop or
    destroy), shown on each row."""

    def __init__(self, listings: ListingService, manage: ManageService, expiry_action: str) -> None:
        self.listings = listings
        self.manage = manage
        self.expiry_action = expiry_action

    def payload(
        self,
        kind: str,
        *,
        team_id: str,
        user_id: str,
        page: int = 0,
        team_domain: str | None = None,
        notice: str | None = None,
    ) -> dict[str, Any]:
        """The ``/templates mine|running`` message as seen by ``user_id`` (buttons only on
        deployments they may manage; ``mine`` also lists those shared with them)."""
        now = datetime.now(UTC)
        unmanaged: list[UnmanagedInstance] = []
        if kind == blocks.LIST_RUNNING:
            deps = self.listings.running(team_id)
            if self.manage.is_admin(team_id, user_id):  # rented by hand: admins should know
                unmanaged = self.listings.unmanaged(team_id)
        else:
            deps = self.listings.mine(team_id, user_id, now)
        return blocks.deployment_list_message(
            kind,
            deps,
            now=now,
            # Buttons for whoever may Stop it (its owner, an admin, or someone it is shared
            # with); Destroy only for the owner and the admins.
            can_manage=lambda dep: self.manage.may(dep, user_id, manage.STOP),
            can_destroy=lambda dep: self.manage.can_manage(dep, user_id),
            viewer=user_id,
            page=page,
            team_domain=team_domain,
            notice=notice,
            unmanaged=unmanaged,
            expiry_action=self.expiry_action,
        )


def _send_later(done: Future[dict[str, Any]], url: str | None) -> None:
    """Send a slow answer to the response_url (a failed computation is logged)."""
    try:
        payload = done.result()
    except Exception:
        logger.exception("slow answer failed")
        payload = {"text": ":x: Something went wrong on our side. Try again in a minute."}
    if url:
        WebhookClient(url).send(response_type="ephemeral", **payload)


def deployment_lists(services: Services) -> DeploymentLists:
    """The :class:`DeploymentLists` of ``services``."""
    return DeploymentLists(services.listings, services.manage, services.settings.on_expiry)


def export_refusal(admins: Iterable[str]) -> str:
    """The answer to someone who is not a bot admin: who may export, and who to ask."""
    names = ", ".join(f"<@{admin}>" for admin in sorted(admins))
    if names:
        return (
            ":lock: Only bot admins can export the costs: "
            f"{names}. Ask one of them, or see your own with `/templates costs`."
        )
    return (
        ":lock: Only bot admins can export the costs, and none are configured (an operator sets "
        "them with `BOT_ADMINS`). See your own with `/templates costs`."
    )


class DeploymentCommands:
    """``/templates mine|running|costs|credit`` and ``costs export [YYYY-MM]``: each method
    acks with an ephemeral answer within Slack's 3 s (``costs``, ``credit`` and the export wait
    at most :data:`SLOW_ACK_BUDGET` for the work pool, then answer through the response_url).
    ``cost_export``: None where the export is not offered."""

    def __init__(
        self,
        *,
        lists: DeploymentLists,
        listings: ListingService,
        budgets: BudgetService,
        credit: CreditService,
        accounts: VastAccounts,
        manage: ManageService,
        membership: MembershipService,
        work: WorkPool,
        cost_export: CostExportService | None = None,
    ) -> None:
        self.lists = lists
        self.listings = listings
        self.budgets = budgets
        self.credit_service = credit
        self.accounts = accounts
        self.manage = manage
        self.membership = membership
        self.work = work
        self.cost_export = cost_export

    def listing(self, kind: str, ack: Ack, command: dict[str, Any]) -> None:
        """``/templates mine`` / ``/templates running``."""
        refusal = command_refusal(self.membership, command, LOOK)
        if refusal is not None:
            ack(response_type="ephemeral", text=refusal)
            return
        ack(
            response_type="ephemeral",
            **self.lists.payload(
                kind,
                team_id=str(command.get("team_id") or ""),
                user_id=str(command.get("user_id") or ""),
                team_domain=command.get("team_domain") or None,
            ),
        )

    def costs(self, ack: Ack, command: dict[str, Any]) -> None:
        """``/templates costs``."""
        refusal = command_refusal(self.membership, command, LOOK)
        if refusal is not None:
            ack(response_type="ephemeral", text=refusal)
            return
        team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
        self._answer_soon(
            ack,
            command,
            lambda: self.costs_payload(team, user),
            ":hourglass: Adding up this month's costs…",
        )

    def costs_export(self, ack: Ack, command: dict[str, Any], month_text: str) -> None:
        """``/templates costs export [YYYY-MM]`` (bot admins): the month's CSV in their DM."""
        refusal = command_refusal(self.membership, command, LOOK)
        if refusal is not None:
            ack(response_type="ephemeral", text=refusal)
            return
        team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
        exporter = self.cost_export
        if exporter is None:
            ack(response_type="ephemeral", text=":x: The cost export is not available here.")
            return
        if not self.manage.is_admin(team, user):
            admins = self.manage.admins.admins(team)
            ack(response_type="ephemeral", **blocks.text_message(export_refusal(admins)))
            return
        self._answer_soon(
            ack,
            command,
            lambda: blocks.text_message(exporter.export(team, user, month_text)),
            ":hourglass: Adding up the month's costs; the CSV comes in your DM…",
        )

    def credit(self, ack: Ack, command: dict[str, Any]) -> None:
        """``/templates credit`` (no Vast.ai call for a refusal)."""
        refusal = command_refusal(self.membership, command, LOOK)
        if refusal is not None:
            ack(response_type="ephemeral", text=refusal)
            return
        team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
        if not self.manage.is_admin(team, user):
            ack(response_type="ephemeral", **self.credit_payload(team, user))
            return
        self._answer_soon(
            ack,
            command,
            lambda: self.credit_payload(team, user),
            ":hourglass: Asking Vast.ai for the balance…",
        )

    def costs_payload(self, team_id: str, user_id: str) -> dict[str, Any]:
        """The ``/templates costs`` message for ``user_id``."""
        report = self.listings.month_report(team_id, datetime.now(UTC))
        budgets = self.budgets.all_lines(team_id)
        mine = next((line for line in budgets if line.subject == user_id), None)
        if mine is None:  # the viewer's own budget, even before they spend anything
            mine = self.budgets.lines(team_id, user_id)[0]
            if mine.budget is not None:
                budgets.insert(1, mine)
        return blocks.costs_message(report, viewer=user_id, budgets=budgets)

    def credit_payload(self, team_id: str, user_id: str) -> dict[str, Any]:
        """The ``/templates credit`` answer: the balance of the workspace's Vast.ai account and
        its burn rate for the workspace's bot admins; for anyone else, who can see it."""
        if not self.manage.is_admin(team_id, user_id):
            return blocks.credit_refusal_message(self.manage.admins.admins(team_id))
        report = self.credit_service.report(team_id)
        if report.error is not None:
            return blocks.text_message(f":x: Could not read the Vast.ai balance: {report.error}")
        return blocks.credit_message(
            report.credit,
            burn_dph=report.burn_dph,
            live=report.billing,
            simulated=self.accounts.for_team(team_id).simulated,
        )

    def _answer_soon(
        self,
        ack: Ack,
        command: dict[str, Any],
        compute: Callable[[], dict[str, Any]],
        waiting: str,
    ) -> None:
        """Ack with ``compute()``'s answer when the work pool gives it within
        :data:`SLOW_ACK_BUDGET`, else ack with ``waiting`` and send the answer to the command's
        response_url when it comes (the listener does not wait for it). A full pool is answered
        "busy — try again in a minute" at once."""
        try:
            future = self.work.submit(compute)
        except Busy:
            ack(response_type="ephemeral", text=BUSY_TEXT)
            return
        try:
            payload = future.result(timeout=SLOW_ACK_BUDGET)
        except FutureTimeout:
            ack(response_type="ephemeral", text=waiting)
            url = command.get("response_url")
            future.add_done_callback(lambda done: _send_later(done, str(url) if url else None))
            return
        ack(response_type="ephemeral", **payload)
