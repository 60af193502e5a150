"""Listeners for managing deployments (thin: parse, ack, hand over to
:mod:`bot.services.manage`).

* ``/templates mine|running|costs|credit``: registered in ``services.extras["keyword_handlers"]``
  and called by the ``/templates`` listener as ``handler(ack, command)``; each acks with an
  ephemeral answer within Slack's 3 s.
* Stop/Start/Destroy buttons (``deployment_stop|start|destroy``, value = deployment id) from the
  status message, the listings and the Home tab. Destroy's confirm dialog is Slack's: the
  action only arrives after the user confirmed.
* "Send me the login" (``deployment_credentials``): the requester or an admin gets the secrets
  by DM; anyone else is told who can.
* Listing paging buttons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk.webhook import WebhookClient

from bot.blocks import manage as blocks
from bot.blocks.home import HOME_BLOCK_PREFIX
from bot.blocks.status import ACTION_CREDENTIALS, ACTION_DESTROY, ACTION_START, ACTION_STOP
from bot.services import manage
from bot.services.context import Services

logger = logging.getLogger(__name__)

ACTION_KINDS = {
    ACTION_STOP: manage.STOP,
    ACTION_START: manage.START,
    ACTION_DESTROY: manage.DESTROY,
}
SLOW_ACK_BUDGET = 2.0
"""Seconds ``/templates credit`` and ``costs`` wait for their answer before acking and
answering later through the response_url (Slack drops an ack after 3 s)."""

KeywordHandler = Callable[[Ack, dict[str, Any]], None]


def _ephemeral(ack: Ack, payload: dict[str, Any]) -> None:
    ack(response_type="ephemeral", **payload)


def _keyword_handlers(services: Services) -> dict[str, KeywordHandler]:
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="credit")
    services.extras.setdefault("closers", []).append(lambda: executor.shutdown(wait=False))

    def listing(kind: str) -> KeywordHandler:
        def handler(ack: Ack, command: dict[str, Any]) -> None:
            _ephemeral(
                ack,
                manage.listing_payload(
                    services,
                    kind,
                    team_id=str(command.get("team_id") or ""),
                    user_id=str(command.get("user_id") or ""),
                    team_domain=command.get("team_domain") or None,
                ),
            )

        return handler

    def answer_soon(
        ack: Ack, command: dict[str, Any], compute: Callable[[], dict[str, Any]], waiting: str
    ) -> None:
        """Ack with ``compute()``'s answer when it comes within :data:`SLOW_ACK_BUDGET`,
        else ack with ``waiting`` and send the answer to the command's response_url."""
        future = executor.submit(compute)
        try:
            payload = future.result(timeout=SLOW_ACK_BUDGET)
        except FutureTimeout:
            ack(response_type="ephemeral", text=waiting)
            payload = future.result()
            url = command.get("response_url")
            if url:
                WebhookClient(str(url)).send(response_type="ephemeral", **payload)
            return
        _ephemeral(ack, payload)

    def costs(ack: Ack, command: dict[str, Any]) -> None:
        team, user = str(command.get("team_id") or ""), str(command.get("user_id") or "")
        answer_soon(
            ack,
            command,
            lambda: manage.costs_payload(services, team, user),
            ":hourglass: Adding up this month's costs…",
        )

    def credit(ack: Ack, command: dict[str, Any]) -> None:
        user = str(command.get("user_id") or "")
        if not services.is_admin(user):  # no Vast.ai call for a refusal
            _ephemeral(ack, manage.credit_payload(services, user))
            return
        answer_soon(
            ack,
            command,
            lambda: manage.credit_payload(services, user),
            ":hourglass: Asking Vast.ai for the balance…",
        )

    return {
        blocks.LIST_MINE: listing(blocks.LIST_MINE),
        blocks.LIST_RUNNING: listing(blocks.LIST_RUNNING),
        "costs": costs,
        "credit": credit,
    }


def _answer(
    services: Services,
    body: dict[str, Any],
    action: dict[str, Any],
    outcome: manage.Outcome,
    respond: Respond | None,
) -> None:
    """Tell the clicker how it went, where they clicked: the Home tab is redrawn with a notice,
    a listing is redrawn in place with a notice, the status message gets an ephemeral reply."""
    user = str((body.get("user") or {}).get("id") or "")
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    block_id = str(action.get("block_id") or "")
    if (body.get("container") or {}).get("type") == "view" or block_id.startswith(
        HOME_BLOCK_PREFIX
    ):
        manage.refresh_home(services, user, team_id=team, notice=outcome.message)
        return
    if respond is None or not body.get("response_url"):
        if services.notifier is not None:
            services.notifier.dm(user, outcome.message)
        return
    listing = blocks.parse_listing_block_id(block_id)
    if listing is not None and team:
        kind, page = listing
        respond(
            replace_original=True,
            response_type="ephemeral",
            **manage.listing_payload(
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


def register(app: App, services: Services) -> None:
    """Attach the management listeners to ``app`` and install the hooks other parts call
    (``extras["keyword_handlers"]``, ``extras["credit_warning"]``, ``extras["refresh_home"]``)."""
    manage.install(services)
    services.extras.setdefault("keyword_handlers", {}).update(_keyword_handlers(services))

    @app.action(ACTION_STOP)
    @app.action(ACTION_START)
    @app.action(ACTION_DESTROY)
    @app.action(ACTION_CREDENTIALS)
    def deployment_action(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        user = str((body.get("user") or {}).get("id") or "")
        try:
            deployment_id = int(str(action.get("value") or ""))
        except ValueError:
            outcome = manage.Outcome("not_found", "That button does not name a deployment.")
        else:
            if action.get("action_id") == ACTION_CREDENTIALS:
                outcome = manage.send_credentials(services, deployment_id, user)
            else:
                kind = ACTION_KINDS[str(action.get("action_id"))]
                outcome = manage.perform(services, kind, deployment_id, user)
        _answer(services, body, action, outcome, respond if body.get("response_url") else None)

    @app.action(blocks.ACTION_LIST_PAGE_PREV)
    @app.action(blocks.ACTION_LIST_PAGE_NEXT)
    def listing_page(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        kind, page = blocks.parse_list_page_value(str(action.get("value") or ""))
        team = body.get("team") or {}
        respond(
            replace_original=True,
            response_type="ephemeral",
            **manage.listing_payload(
                services,
                kind,
                team_id=str(team.get("id") or ""),
                user_id=str((body.get("user") or {}).get("id") or ""),
                page=page,
                team_domain=team.get("domain"),
            ),
        )
