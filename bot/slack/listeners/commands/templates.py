"""``/templates`` (thin: parse, ack); its paging and Details buttons are
:mod:`bot.slack.listeners.actions.templates`.

``/templates`` followed by one word of :func:`subcommands` (``help``, ``mine``, ``running``,
``costs``, ``credit``, ``audit``) answers that sub-command; ``costs export [YYYY-MM]`` sends a
bot admin the month's costs as a CSV
(:meth:`bot.slack.listeners.commands.manage.DeploymentCommands.costs_export`); ``budget`` takes
arguments (:meth:`bot.slack.listeners.commands.budgets.BudgetCommands.budget`); ``setup`` opens
the workspace setup modal for its admins
(:meth:`bot.slack.listeners.commands.setup.SetupCommand.setup`); ``ssh-key`` opens the person's
SSH keys modal (:meth:`bot.slack.listeners.commands.sshkeys.SshKeyCommand.ssh_key`); any other
text is a catalog
filter. A text that holds a private key is answered with a warning to treat it as leaked, and
nothing else (no search echoes it).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.services.context import Services
from bot.slack.blocks import templates as blocks
from bot.slack.blocks.manage import LIST_MINE, LIST_RUNNING
from bot.slack.listeners.commands import budgets, manage, setup, sshkeys
from catalog import Catalog, filter_templates, parse_query

logger = logging.getLogger(__name__)

Subcommand = Callable[[Ack, dict[str, Any]], None]
"""A sub-command handler: ``handler(ack, command)``; it acks within Slack's 3 s."""


def subcommands(services: Services) -> dict[str, Subcommand]:
    """The table of ``/templates <word>`` sub-commands (the whole text is the word) of the
    command built on ``services``."""
    return build_templates_command(services, TemplateLists(services.catalog)).table


def list_payload(catalog: Catalog, text: str, page: int = 0) -> dict[str, Any]:
    """The message for ``/templates <text>`` at ``page``: the list, or a no-match answer."""
    query = parse_query(text)
    matches = filter_templates(catalog, query)
    if not matches:
        return blocks.no_match_message(
            text, catalog, vram_gb=query.vram_gb, has_words=bool(query.words)
        )
    return blocks.template_list_message(
        matches, query_text=text.strip(), vram_gb=query.vram_gb, page=page
    )


def tell_template_gone(respond: Respond) -> None:
    """Ephemeral answer to a button whose template left the catalog (e.g. after a restart)."""
    respond(replace_original=False, response_type="ephemeral", text=blocks.TEMPLATE_GONE)


class TemplateLists:
    """The catalog's listings, cached: the catalog does not change while the bot runs, so a
    listing is a function of the filter text and page alone (Block Kit built off the ack path,
    read-only dicts; at most 512 kept). Shared by the command and its paging buttons."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.get = functools.lru_cache(maxsize=512)(self._build)

    def _build(self, text: str, page: int) -> dict[str, Any]:
        return list_payload(self.catalog, text, page)


class TemplatesCommand:
    """``/templates``: the one-word sub-commands of :attr:`table` (``help``, ``mine``,
    ``running``, ``costs``, ``credit``, ``audit``), ``costs export``, ``budget``, ``setup`` and
    ``ssh-key``, else a catalog search (:class:`TemplateLists`)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        lists: TemplateLists,
        deployments: manage.DeploymentCommands,
        budgets: budgets.BudgetCommands,
        setup: setup.SetupCommand,
        ssh_keys: sshkeys.SshKeyCommand,
    ) -> None:
        self.catalog = catalog
        self.lists = lists
        self.deployments = deployments
        self.budgets = budgets
        self.setup = setup
        self.ssh_keys = ssh_keys
        self.table: dict[str, Subcommand] = {
            "help": self.help,
            LIST_MINE: functools.partial(deployments.listing, LIST_MINE),
            LIST_RUNNING: functools.partial(deployments.listing, LIST_RUNNING),
            "costs": deployments.costs,
            "credit": deployments.credit,
            "audit": budgets.audit,
        }

    def help(self, ack: Ack, command: dict[str, Any]) -> None:
        """``/templates help``."""
        ack(response_type="ephemeral", **blocks.help_message(len(self.catalog)))

    def on_templates(
        self, ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        """Route ``/templates <text>`` to its sub-command; any other text is a search."""
        text = str(command.get("text") or "")
        handler = self.table.get(" ".join(text.lower().split()))
        if handler is not None:
            handler(ack, command)
            return
        first, _, rest = text.strip().partition(" ")
        words = rest.split(None, 1)
        if first.lower() == "costs" and words and words[0].lower() == "export":
            self.deployments.costs_export(ack, command, words[1] if len(words) > 1 else "")
            return
        if first.lower() == "budget":
            self.budgets.budget(ack, command, client, rest)
            return
        if first.lower() == "setup" and not rest.strip():
            self.setup.setup(ack, command, client, respond)
            return
        words = text.split(None, 1)
        if words and words[0].lower() in sshkeys.WORDS:
            self.ssh_keys.ssh_key(ack, command, client, respond, words[1] if len(words) > 1 else "")
            return
        warning = sshkeys.private_key_reply(text)
        if warning is not None:
            ack(response_type="ephemeral", text=warning)
            return
        ack(response_type="ephemeral", **self.lists.get(text, 0))


def build_templates_command(services: Services, lists: TemplateLists) -> TemplatesCommand:
    """``/templates`` and its sub-commands, each given what it uses out of ``services``."""
    membership = services.membership
    return TemplatesCommand(
        catalog=services.catalog,
        lists=lists,
        deployments=manage.DeploymentCommands(
            lists=manage.deployment_lists(services),
            listings=services.listings,
            budgets=services.budgets,
            credit=services.credit,
            accounts=services.accounts,
            manage=services.manage,
            membership=membership,
            work=services.work,
            cost_export=services.cost_export,
        ),
        budgets=budgets.BudgetCommands(
            services.budgets, services.listings, services.manage, membership, services.messages
        ),
        setup=setup.SetupCommand(services.workspaces, membership, services.settings.oauth_mode),
        ssh_keys=sshkeys.SshKeyCommand(services.ssh_keys, membership),
    )
