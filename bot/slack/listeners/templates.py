"""Listeners for ``/templates``, its paging buttons and the Details button (thin: parse, ack).

``/templates`` followed by one word of :func:`subcommands` (``help``, ``mine``, ``running``,
``costs``, ``credit``, ``audit``) answers that sub-command; ``costs export [YYYY-MM]`` sends a
bot admin the month's costs as a CSV (:func:`bot.slack.listeners.manage.costs_export_command`);
``budget`` takes arguments
(:func:`bot.slack.listeners.budgets.budget_command`); ``setup`` opens the workspace setup modal for
its admins (:func:`bot.slack.listeners.setup.setup_command`); ``ssh-key`` opens the person's SSH
keys
modal (:func:`bot.slack.listeners.sshkeys.ssh_key_command`); any other text is a catalog filter. A
text that holds a private key is answered with a warning to treat it as leaked, and nothing
else (no search echoes it).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.services.context import Services
from bot.slack.blocks import templates as blocks
from bot.slack.blocks.manage import LIST_MINE, LIST_RUNNING
from bot.slack.listeners import budgets, manage, setup, sshkeys
from catalog import filter_templates, parse_query

logger = logging.getLogger(__name__)

Subcommand = Callable[[Ack, dict[str, Any]], None]
"""A sub-command handler: ``handler(ack, command)``; it acks within Slack's 3 s."""


def subcommands(services: Services) -> dict[str, Subcommand]:
    """The table of ``/templates <word>`` sub-commands (the whole text is the word)."""

    def help_(ack: Ack, command: dict[str, Any]) -> None:
        ack(response_type="ephemeral", **blocks.help_message(len(services.catalog)))

    return {
        "help": help_,
        LIST_MINE: functools.partial(manage.listing_command, services, LIST_MINE),
        LIST_RUNNING: functools.partial(manage.listing_command, services, LIST_RUNNING),
        "costs": functools.partial(manage.costs_command, services),
        "credit": functools.partial(manage.credit_command, services),
        "audit": functools.partial(budgets.audit_command, services),
    }


def list_payload(services: Services, text: str, page: int = 0) -> dict[str, Any]:
    """The message for ``/templates <text>`` at ``page``: the list, or a no-match answer."""
    query = parse_query(text)
    matches = filter_templates(services.catalog, query)
    if not matches:
        return blocks.no_match_message(
            text, services.catalog, vram_gb=query.vram_gb, has_words=bool(query.words)
        )
    return blocks.template_list_message(
        matches, query_text=text.strip(), vram_gb=query.vram_gb, page=page
    )


def tell_template_gone(respond: Respond) -> None:
    """Ephemeral answer to a button whose template left the catalog (e.g. after a restart)."""
    respond(replace_original=False, response_type="ephemeral", text=blocks.TEMPLATE_GONE)


def register(app: App, services: Services) -> None:
    """Attach the catalog listeners to ``app``."""
    table = subcommands(services)

    # The catalog does not change while the bot runs, so a listing is a function of the
    # filter text and page alone: cache the built Block Kit off the ack path (read-only dicts).
    @functools.lru_cache(maxsize=512)
    def cached_list(text: str, page: int) -> dict[str, Any]:
        return list_payload(services, text, page)

    @app.command("/templates")
    def templates_command(
        ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        text = str(command.get("text") or "")
        handler = table.get(" ".join(text.lower().split()))
        if handler is not None:
            handler(ack, command)
            return
        first, _, rest = text.strip().partition(" ")
        words = rest.split(None, 1)
        if first.lower() == "costs" and words and words[0].lower() == "export":
            manage.costs_export_command(services, ack, command, words[1] if len(words) > 1 else "")
            return
        if first.lower() == "budget":
            budgets.budget_command(services, ack, command, client, rest)
            return
        if first.lower() == "setup" and not rest.strip():
            setup.setup_command(services, ack, command, client, respond)
            return
        words = text.split(None, 1)
        if words and words[0].lower() in sshkeys.WORDS:
            sshkeys.ssh_key_command(
                services, ack, command, client, respond, words[1] if len(words) > 1 else ""
            )
            return
        warning = sshkeys.private_key_reply(text)
        if warning is not None:
            ack(response_type="ephemeral", text=warning)
            return
        ack(response_type="ephemeral", **cached_list(text, 0))

    @app.action(blocks.ACTION_PAGE_NEXT)
    @app.action(blocks.ACTION_PAGE_PREV)
    def templates_page(ack: Ack, action: dict[str, Any], respond: Respond) -> None:
        ack()
        text, page = blocks.parse_page_value(str(action.get("value") or ""))
        respond(replace_original=True, response_type="ephemeral", **cached_list(text, page))

    @app.action(blocks.ACTION_DETAILS)
    def template_details(
        ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        template = services.catalog.get(str(action.get("value") or ""))
        if template is None:
            tell_template_gone(respond)
            return
        client.views_open(
            trigger_id=body["trigger_id"], view=blocks.template_details_view(template)
        )
