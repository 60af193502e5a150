"""Block actions on the catalog listing: its paging buttons and **Details** (thin: parse, ack;
the listing itself is ``/templates``, :mod:`bot.slack.listeners.commands.templates`)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.slack.blocks import templates as blocks
from bot.slack.listeners.commands.templates import TemplateLists, tell_template_gone
from catalog import Catalog


class TemplateActions:
    """Previous / Next on a listing, and **Details** on a template (value: its slug)."""

    def __init__(self, catalog: Catalog, lists: TemplateLists) -> None:
        self.catalog = catalog
        self.lists = lists

    def on_page(self, ack: Ack, action: dict[str, Any], respond: Respond) -> None:
        """The page the button names, redrawn in place (value: filter text and page)."""
        ack()
        text, page = blocks.parse_page_value(str(action.get("value") or ""))
        respond(replace_original=True, response_type="ephemeral", **self.lists.get(text, page))

    def on_details(
        self,
        ack: Ack,
        action: dict[str, Any],
        body: dict[str, Any],
        client: WebClient,
        respond: Respond,
    ) -> None:
        """Open the template's details modal."""
        ack()
        template = self.catalog.get(str(action.get("value") or ""))
        if template is None:
            tell_template_gone(respond)
            return
        client.views_open(
            trigger_id=body["trigger_id"], view=blocks.template_details_view(template)
        )
