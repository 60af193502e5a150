"""Block Kit for the ``/templates`` list, its help, and the template details modal (pure)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.formats import mrkdwn_escape
from bot.slack.blocks.common import (
    MAX_SECTION_TEXT,
    bounded_json,
    message_payload,
    page_number,
    paging_block,
    truncate,
)
from bot.slack.limits import MAX_BUTTON_VALUE
from catalog import Catalog, Template, TemplateMatch
from catalog.models import DOCS_LINK_PREFIX

PAGE_SIZE = 10
MAX_QUERY_IN_VALUE = 500

ACTION_DEPLOY = "deploy_template"
ACTION_DETAILS = "template_details"
ACTION_PAGE_PREV = "templates_page_prev"
ACTION_PAGE_NEXT = "templates_page_next"

TEMPLATE_GONE = "That template is no longer in the catalog. Run `/templates` for the current list."

FILTER_HINT = (
    "Filter: `/templates jupyter` (name, slug or category) · `/templates 12gb` (fits a 12 GB GPU)"
    " · `/templates mine` · `/templates help`"
)


def page_value(query_text: str, page: int) -> str:
    """The paging button's value: the filter text and the target page, as compact JSON.

    The query is cut to :data:`MAX_QUERY_IN_VALUE` characters and then further until the
    *escaped* JSON fits Slack's 2000 characters for a button value (api.slack.com/reference/
    block-kit/block-elements#button):
    ``json.dumps`` writes a non-ASCII character as up to 12 (``\\ud83d\\ude00``), so 500
    emoji would be 6000.
    """
    query = query_text[:MAX_QUERY_IN_VALUE]
    while True:
        value = json.dumps({"q": query, "p": page}, separators=(",", ":"))
        over = len(value) - MAX_BUTTON_VALUE
        if over <= 0:
            return value
        query = query[: len(query) - max(1, over // 12)]


def parse_page_value(value: str) -> tuple[str, int]:
    """Inverse of :func:`page_value`; untrusted input, so a bad value gives page 0 of no filter."""
    try:
        data = bounded_json(value)
        query, page = data.get("q", ""), data.get("p", 0)
    except (ValueError, AttributeError):
        return "", 0
    if not isinstance(query, str):
        return "", 0
    return query[:MAX_QUERY_IN_VALUE], page_number(page)


def vram_line(template: Template) -> str:
    """``VRAM 8 GB min · 12 GB recommended · CUDA ≥ 11.8``."""
    return (
        f"VRAM {template.min_vram_gb} GB min · {template.recommended_vram_gb} GB recommended"
        f" · CUDA ≥ {template.cuda_version}"
    )


def _template_section(match: TemplateMatch, vram_gb: int | None) -> SectionBlock:
    template = match.template
    lines = [
        f"*{mrkdwn_escape(template.name)}*  `{template.slug}` · "
        f"_{mrkdwn_escape(template.category)}_",
        mrkdwn_escape(truncate(template.description, 300)),
        vram_line(template),
    ]
    if vram_gb is not None:
        if match.meets_recommended:
            lines.append(f":white_check_mark: {vram_gb} GB meets the recommendation")
        else:
            lines.append(
                f":warning: runs on {vram_gb} GB, below the recommended "
                f"{template.recommended_vram_gb} GB"
            )
    return SectionBlock(
        block_id=f"tpl_{template.slug}",
        text=MarkdownTextObject(text=truncate("\n".join(lines), MAX_SECTION_TEXT)),
    )


def _template_actions(template: Template) -> ActionsBlock:
    return ActionsBlock(
        block_id=f"tpl_actions_{template.slug}",
        elements=[
            ButtonElement(
                text="Deploy",
                action_id=ACTION_DEPLOY,
                value=template.slug,
                style="primary",
            ),
            ButtonElement(text="Details", action_id=ACTION_DETAILS, value=template.slug),
        ],
    )


def template_list_message(
    matches: Sequence[TemplateMatch],
    *,
    query_text: str = "",
    vram_gb: int | None = None,
    page: int = 0,
    page_size: int = PAGE_SIZE,
) -> dict[str, Any]:
    """The ``/templates`` answer: header, one section + buttons per template, footer, paging.

    ``matches`` must be non-empty. ``page`` is 0-based and clamped to the last page. Returns
    ``{"text", "blocks"}``; at most ``4 + 2 * page_size + 2`` blocks, within Slack's 50.
    """
    pages = max(1, math.ceil(len(matches) / page_size))
    page = min(max(page, 0), pages - 1)
    shown = matches[page * page_size : (page + 1) * page_size]
    title = "GPU templates" if vram_gb is None else f"GPU templates for a {vram_gb} GB GPU"
    summary = f"{len(matches)} template{'s' if len(matches) != 1 else ''}"
    if query_text:
        summary += f" matching “{truncate(query_text, 100)}”"
    if pages > 1:
        summary += f" · page {page + 1} of {pages}"
    blocks: list[Block] = [
        HeaderBlock(text=title),
        ContextBlock(elements=[MarkdownTextObject(text=summary)]),
        DividerBlock(),
    ]
    for match in shown:
        blocks.append(_template_section(match, vram_gb))
        blocks.append(_template_actions(match.template))
    blocks.append(DividerBlock())
    paging = paging_block(
        page,
        pages,
        prev_action=ACTION_PAGE_PREV,
        next_action=ACTION_PAGE_NEXT,
        value_for=lambda target: page_value(query_text, target),
        block_id=f"templates_paging_{page}",
    )
    if paging is not None:
        blocks.append(paging)
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=FILTER_HINT)]))
    names = ", ".join(mrkdwn_escape(match.template.name) for match in shown)
    return message_payload(blocks, f"{title}: {names}")


def no_match_message(
    query_text: str, catalog: Catalog, *, vram_gb: int | None = None, has_words: bool = True
) -> dict[str, Any]:
    """Friendly answer when the filter matched nothing, listing what exists."""
    if vram_gb is not None and not has_words:
        smallest = min((t.min_vram_gb for t in catalog), default=0)
        reason = f"No template runs on a {vram_gb} GB GPU; the smallest needs {smallest} GB."
    else:
        reason = f"No template matches “{truncate(query_text, 100)}”."
    listed = [
        f"*{mrkdwn_escape(t.name)}* (`{t.slug}`, {mrkdwn_escape(t.category)})" for t in catalog
    ]
    body = ""
    for index, item in enumerate(listed):
        candidate = f"{body}\n• {item}" if body else f"• {item}"
        if len(candidate) > MAX_SECTION_TEXT - 80:
            body += f"\n…and {len(listed) - index} more: `/templates` shows them all."
            break
        body = candidate
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"{reason} Here is what exists:")),
        SectionBlock(text=MarkdownTextObject(text=body or "_The catalog is empty._")),
        ContextBlock(elements=[MarkdownTextObject(text=FILTER_HINT)]),
    ]
    return message_payload(blocks, reason)


def help_message(catalog_size: int) -> dict[str, Any]:
    """Usage of ``/templates`` and its filters."""
    text = (
        "*`/templates`* lists the GPU templates you can deploy on Vast.ai "
        f"({catalog_size} in the catalog).\n"
        "• `/templates jupyter` or `/templates image-generation`: filter by name, slug or category"
        " (all words must match)\n"
        "• `/templates 12gb`, `/templates 12 GB` or `/templates vram:12`: templates that run on a "
        "12 GB GPU; ✅ marks those for which 12 GB meets the recommendation\n"
        "• `/templates mine`: your deployments · `/templates running`: the workspace's active"
        " ones\n"
        "• `/templates costs`: this month's spend and budgets · `/templates costs export` "
        "(or `… export 2026-11`): the month per deployment as a CSV in your DM (admins) · "
        "`/templates credit`: Vast.ai balance (admins)\n"
        "• `/templates budget`: monthly budgets · `/templates budget @someone 200`: set one · "
        "`/templates audit`: who did what (admins)\n"
        "• `/templates setup`: the workspace's Vast.ai key, admins, approvers, digest channel "
        "and run lengths (admins)\n"
        "• `/templates ssh-key`: your SSH public keys (add, list, remove); the bot puts them on "
        "your instances so that you can `ssh` in\n"
        "• *Deploy* picks a live GPU offer and rents it for the time you choose in *Run for*: "
        "you are asked before the end (*Extend*, *Stop*, *Destroy*), and an idle GPU is stopped "
        "after asking you; an expensive or over-budget request waits for an approver's click; "
        "*Details* shows image, ports and env."
    )
    blocks: list[Block] = [
        HeaderBlock(text="How to use /templates"),
        SectionBlock(text=MarkdownTextObject(text=text)),
    ]
    return message_payload(blocks, "How to use /templates")


def _field(title: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=truncate(f"*{title}*\n{value}", 2000))


def env_display(template: Template) -> str:
    """Env names for display; values of secret env or the generated password never appear."""
    hidden = template.secret_env_names
    names = sorted(set(template.env) | hidden)
    if not names:
        return "_none_"
    return ", ".join(f"`{name}`" + (" (secret)" if name in hidden else "") for name in names)


def template_details_view(template: Template) -> View:
    """A modal with the template's image, ports, volumes, launch command, env names, VRAM, docs.

    Every text of the template is shown as typed (:func:`bot.formats.mrkdwn_escape`); the
    header (``plain_text``) is cut to Slack's 150 characters.
    """
    command = mrkdwn_escape(template.launch_command or "the image's default")
    blocks: list[Block] = [
        HeaderBlock(text=truncate(template.name, 150)),
        SectionBlock(
            text=MarkdownTextObject(
                text=truncate(mrkdwn_escape(template.description), MAX_SECTION_TEXT)
            )
        ),
        SectionBlock(
            fields=[
                _field("Image", f"`{mrkdwn_escape(template.docker_image)}`"),
                _field("Ports", ", ".join(str(port) for port in template.ports)),
                _field(
                    "Volumes",
                    ", ".join(f"`{mrkdwn_escape(v)}`" for v in template.volumes) or "_none_",
                ),
                _field("Disk", f"{template.disk_gb} GB by default"),
                _field(
                    "VRAM",
                    f"{template.min_vram_gb} GB minimum · {template.recommended_vram_gb} GB "
                    "recommended",
                ),
                _field("CUDA", f"{template.cuda_version} or newer"),
                _field("Env", env_display(template)),
                _field("Category", mrkdwn_escape(template.category)),
            ]
        ),
        SectionBlock(
            text=MarkdownTextObject(
                text=truncate(f"*Launch command*\n```{command}```", MAX_SECTION_TEXT)
            )
        ),
        SectionBlock(
            text=MarkdownTextObject(text=f"{DOCS_LINK_PREFIX}<{mrkdwn_escape(template.docs_url)}>")
        ),
        ActionsBlock(
            block_id=f"details_actions_{template.slug}",
            elements=[
                ButtonElement(
                    text="Deploy", action_id=ACTION_DEPLOY, value=template.slug, style="primary"
                )
            ],
        ),
    ]
    return View(
        type="modal",
        callback_id="template_details",
        title=PlainTextObject(text="Template details"),
        close=PlainTextObject(text="Close"),
        blocks=blocks,
    )
