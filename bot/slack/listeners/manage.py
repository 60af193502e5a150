"""Listeners for managing deployments (thin: parse, ack, hand over to the services and render
with :mod:`bot.slack.blocks.manage`).

* ``/templates mine|running|costs|credit``: sub-command handlers, listed in the command
  listener's table (:func:`bot.slack.listeners.templates.subcommands`); each acks with an ephemeral
  answer within Slack's 3 s.
* Stop/Start/Destroy buttons (``deployment_stop|start|destroy``, value = deployment id) from the
  status message, the listings and the Home tab. Destroy's confirm dialog is Slack's: the
  action only arrives after the user confirmed. The listener acks and hands the action to
  the work pool (``services.work``); a full pool answers "busy — try again in a minute".
* "Send me the login" (``deployment_credentials``): the requester, an admin or someone the
  deployment is shared with gets the secrets by DM; anyone else is told who can. Everyone it
  is shared with may also Stop, Start and Extend it, not Destroy it
  (:meth:`bot.services.actions.ManageService.may`).
* **Extend N h** (``lifetime_extend``, value ``id:hours:end``) and **Keep running**
  (``idle_keep_running``, value ``id:question``) from the expiry and idle warnings: the values
  carry which warning was answered, so an old button changes nothing and says so.
* Listing paging buttons.

Every command and button here first asks :mod:`bot.slack.listeners.membership` whether the person
belongs to the workspace; a person of another workspace is told so privately and learns
nothing of its deployments (a deployment id of another workspace answers "no longer exists").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.services import actions
from bot.services.context import Services
from bot.services.ports import UnmanagedInstance
from bot.services.work import BUSY_TEXT, Busy
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import manage as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.blocks.home import HOME_BLOCK_PREFIX
from bot.slack.blocks.status import ACTION_CREDENTIALS, ACTION_DESTROY, ACTION_START, ACTION_STOP
from bot.slack.listeners.membership import LOOK, MANAGE, command_refusal, refused
from bot.slack.listeners.payloads import team_of

logger = logging.getLogger(__name__)

ACTION_KINDS = {
    ACTION_STOP: actions.STOP,
    ACTION_START: actions.START,
    ACTION_DESTROY: actions.DESTROY,
}
SLOW_ACK_BUDGET = 2.0
"""Seconds ``/templates credit`` and ``costs`` wait for their answer before acking and
answering later through the response_url (Slack drops an ack after 3 s)."""


def listing_payload(
    services: Services,
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
        deps = services.listings.running(team_id)
        if services.is_admin(team_id, user_id):  # instances rented by hand: admins should know
            unmanaged = services.listings.unmanaged(team_id)
    else:
        deps = services.listings.mine(team_id, user_id, now)
    return blocks.deployment_list_message(
        kind,
        deps,
        now=now,
        # Buttons for whoever may Stop it (its owner, an admin, or someone it is shared with);
        # Destroy only for the owner and the admins.
        can_manage=lambda dep: services.manage.may(dep, user_id, actions.STOP),
        can_destroy=lambda dep: services.manage.can_manage(dep, user_id),
        viewer=user_id,
        page=page,
        team_domain=team_domain,
        notice=notice,
        unmanaged=unmanaged,
        expiry_action=services.settings.on_expiry,
    )


def costs_payload(services: Services, team_id: str, user_id: str) -> dict[str, Any]:
    """The ``/templates costs`` message for ``user_id``."""
    report = services.listings.month_report(team_id, datetime.now(UTC))
    budgets = services.budgets.all_lines(team_id)
    mine = next((line for line in budgets if line.subject == user_id), None)
    if mine is None:  # the viewer's own budget, even before they spend anything
        mine = services.budgets.lines(team_id, user_id)[0]
        if mine.budget is not None:
            budgets.insert(1, mine)
    return blocks.costs_message(report, viewer=user_id, budgets=budgets)


def credit_payload(services: Services, team_id: str, user_id: str) -> dict[str, Any]:
    """The ``/templates credit`` answer: the balance of the workspace's Vast.ai account and
    its burn rate for the workspace's bot admins; for anyone else, who can see it."""
    if not services.is_admin(team_id, user_id):
        return blocks.credit_refusal_message(services.manage.admins.admins(team_id))
    report = services.credit.report(team_id)
    if report.error is not None:
        return blocks.text_message(f":x: Could not read the Vast.ai balance: {report.error}")
    return blocks.credit_message(
        report.credit,
        burn_dph=report.burn_dph,
        live=report.billing,
        simulated=services.accounts.for_team(team_id).simulated,
    )


def _answer_soon(
    services: Services,
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
        future = services.work.submit(compute)
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


def _send_later(done: Future[dict[str, Any]], url: str | None) -> None:
    """Send a slow answer to the response_url (a failed computation is logged)."""
    try:
        payload = done.result()
    except Exception:
        logger.exception("slow answer failed")
        payload = {"text": ":x: Something went wrong on our side. Try again in a minute."}
    if url:
        WebhookClient(url).send(response_type="ephemeral", **payload)


def listing_command(services: Services, kind: str, ack: Ack, command: dict[str, Any]) -> None:
    """``/templates mine`` / ``/templates running``."""
    refusal = command_refusal(services, command, LOOK)
    if refusal is not None:
        ack(response_type="ephemeral", text=refusal)
        return
    ack(
        response_type="ephemeral",
        **listing_payload(
            services,
            kind,
            team_id=str(command.get("team_id") or ""),
            user_id=str(command.get("user_id") or ""),
            team_domain=command.get("team_domain") or None,
        ),
    )


def costs_command(services: Services, ack: Ack, command: dict[str, Any]) -> None:
    """``/templates costs``."""
    refusal = command_refusal(services, command, LOOK)
    if refusal is not None:
        ack(response_type="ephemeral", text=refusal)
        return
    team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
    _answer_soon(
        services,
        ack,
        command,
        lambda: costs_payload(services, team, user),
        ":hourglass: Adding up this month's costs…",
    )


def costs_export_command(
    services: Services, ack: Ack, command: dict[str, Any], month_text: str
) -> None:
    """``/templates costs export [YYYY-MM]`` (bot admins): the month's CSV in their DM."""
    refusal = command_refusal(services, command, LOOK)
    if refusal is not None:
        ack(response_type="ephemeral", text=refusal)
        return
    team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
    exporter = services.cost_export
    if exporter is None:
        ack(response_type="ephemeral", text=":x: The cost export is not available here.")
        return
    if not services.is_admin(team, user):
        admins = services.manage.admins.admins(team)
        ack(response_type="ephemeral", **blocks.text_message(export_refusal(admins)))
        return
    _answer_soon(
        services,
        ack,
        command,
        lambda: blocks.text_message(exporter.export(team, user, month_text)),
        ":hourglass: Adding up the month's costs; the CSV comes in your DM…",
    )


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


def credit_command(services: Services, ack: Ack, command: dict[str, Any]) -> None:
    """``/templates credit`` (no Vast.ai call for a refusal)."""
    refusal = command_refusal(services, command, LOOK)
    if refusal is not None:
        ack(response_type="ephemeral", text=refusal)
        return
    team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
    if not services.is_admin(team, user):
        ack(response_type="ephemeral", **credit_payload(services, team, user))
        return
    _answer_soon(
        services,
        ack,
        command,
        lambda: credit_payload(services, team, user),
        ":hourglass: Asking Vast.ai for the balance…",
    )


def _answer(
    services: Services,
    body: dict[str, Any],
    action: dict[str, Any],
    outcome: actions.Outcome,
    respond: Respond | None,
) -> None:
    """Tell the clicker how it went, where they clicked: the Home tab is redrawn with a notice,
    a listing is redrawn in place with a notice, the status message gets an ephemeral reply."""
    user = str((body.get("user") or {}).get("id") or "")
    team = team_of(body)
    block_id = str(action.get("block_id") or "")
    if (body.get("container") or {}).get("type") == "view" or block_id.startswith(
        HOME_BLOCK_PREFIX
    ):
        services.home.refresh(user, team_id=team, notice=outcome.message)
        return
    if respond is None or not body.get("response_url"):
        services.messages.dm(user, outcome.message, team_id=team)
        return
    listing = blocks.parse_listing_block_id(block_id)
    if listing is not None and team:
        kind, page = listing
        respond(
            replace_original=True,
            response_type="ephemeral",
            **listing_payload(
                services,
                kind,
                team_id=str(team),
                user_id=user,
                page=page,
                team_domain=(body.get("team") or {}).get("domain"),
                notice=outcome.message,
            ),
        )
        return
    respond(replace_original=False, response_type="ephemeral", text=outcome.message)


def _answer_warning(
    services: Services,
    body: dict[str, Any],
    action: dict[str, Any],
    outcome: actions.Outcome,
    respond: Respond,
) -> None:
    """Answer an **Extend** / **Keep running** click. When the warning has been answered (now
    or before: ``done``/``already``), the warning message itself is replaced by the answer, so
    it no longer shows an end time or buttons that are out of date; a refusal leaves it for
    someone who may answer and tells only the clicker."""
    message = body.get("message") or {}
    answered = outcome.kind in ("done", "already", "invalid", "not_found")
    if answered and body.get("response_url") and message and not message.get("is_ephemeral"):
        respond(replace_original=True, text=outcome.message)
        return
    _answer(services, body, action, outcome, respond if body.get("response_url") else None)


def register(app: App, services: Services) -> None:
    """Attach the management listeners to ``app``."""

    @app.action(ACTION_STOP)
    @app.action(ACTION_START)
    @app.action(ACTION_DESTROY)
    @app.action(ACTION_CREDENTIALS)
    def deployment_action(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        user = str((body.get("user") or {}).get("id") or "")
        team = team_of(body)
        reply = respond if body.get("response_url") else None
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None or not team:  # forged or malformed (e.g. a huge id)
            outcome = actions.Outcome("not_found", actions.NOT_FOUND_TEXT)
            _answer(services, body, action, outcome, reply)
            return

        def job() -> None:  # on the work pool: Vast.ai may be slow
            if refused(services, client, body, MANAGE):  # an outsider learns nothing
                return
            if action.get("action_id") == ACTION_CREDENTIALS:
                outcome = services.manage.send_credentials(deployment_id, user, team_id=team)
            else:
                kind = ACTION_KINDS[str(action.get("action_id"))]
                outcome = services.manage.perform(kind, deployment_id, user, team_id=team)
            _answer(services, body, action, outcome, reply)

        try:
            services.work.spawn(job)
        except Busy:
            logger.warning("work pool full: %s answered busy", action.get("action_id"))
            _answer(services, body, action, actions.Outcome("busy", BUSY_TEXT), reply)

    @app.action(lifetime_blocks.ACTION_EXTEND_PATTERN)
    def extend_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, MANAGE):
            return
        user = str((body.get("user") or {}).get("id") or "")
        parsed = lifetime_blocks.parse_extend_value(str(action.get("value") or ""))
        team = team_of(body)
        if parsed is None or not team:
            outcome = actions.Outcome("not_found", actions.NOT_FOUND_TEXT)
        else:
            deployment_id, hours, issued = parsed
            outcome = services.lifetimes.extend(deployment_id, hours, issued, user, team_id=team)
        _answer_warning(services, body, action, outcome, respond)

    @app.action(lifetime_blocks.ACTION_KEEP_RUNNING)
    def keep_running_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, MANAGE):
            return
        user = str((body.get("user") or {}).get("id") or "")
        parsed = lifetime_blocks.parse_keep_value(str(action.get("value") or ""))
        team = team_of(body)
        if parsed is None or not team:
            outcome = actions.Outcome("not_found", actions.NOT_FOUND_TEXT)
        else:
            deployment_id, issued = parsed
            outcome = services.lifetimes.keep_running(deployment_id, issued, user, team_id=team)
        _answer_warning(services, body, action, outcome, respond)

    @app.action(blocks.ACTION_LIST_PAGE_PREV)
    @app.action(blocks.ACTION_LIST_PAGE_NEXT)
    def listing_page(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, LOOK):
            return
        kind, page = blocks.parse_list_page_value(str(action.get("value") or ""))
        team = body.get("team") or {}
        respond(
            replace_original=True,
            response_type="ephemeral",
            **listing_payload(
                services,
                kind,
                team_id=team_of(body) or "",
                user_id=str((body.get("user") or {}).get("id") or ""),
                page=page,
                team_domain=team.get("domain"),
            ),
        )
