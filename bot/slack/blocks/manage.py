"""Block Kit for managing deployments: listings, monthly costs, Vast.ai credit (pure).

Listings reuse the Stop/Start/Destroy buttons of the status message
(:func:`bot.slack.blocks.status.deployment_buttons`), so the same action ids reach the same
listener wherever they are clicked. The listing's ``actions`` block id carries the listing
kind and page (:func:`listing_block_id`), so the listener can redraw the listing after an
action. Limits: 50 blocks per message (docs/SLACK_API.md §4).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import pricing as costs
from bot.formats import format_duration, mentions, money, mrkdwn_escape
from bot.notices import WORKSPACE, BudgetLine, UnmanagedInstance
from bot.slack.blocks.budgets import budget_bar, budget_sentence
from bot.slack.blocks.common import (
    MAX_PAGE,
    MAX_SECTION_TEXT,
    bounded_json,
    message_payload,
    page_number,
    paging_block,
    truncate,
)
from bot.slack.blocks.lifetimes import ends_line, unmanaged_text
from bot.slack.blocks.status import STATUS_ICONS, deployment_buttons, gpu_summary
from storage import DeploymentRecord, DeploymentStatus

LIST_MINE = "mine"
LIST_RUNNING = "running"
LIST_KINDS = (LIST_MINE, LIST_RUNNING)
LIST_PAGE_SIZE = 10
ACTION_LIST_PAGE_PREV = "manage_list_prev"
ACTION_LIST_PAGE_NEXT = "manage_list_next"
_LIST_BLOCK_PREFIX = "mgl"

CanManage = Callable[[DeploymentRecord], bool]

_STATUS_WORDS = {
    DeploymentStatus.PENDING_APPROVAL: "waiting for approval",
    DeploymentStatus.DENIED: "denied",
    DeploymentStatus.EXPIRED: "request expired",
}
# States in which nothing was ever rented: no price is billing, no cost so far to speak of.
_NEVER_RENTED = frozenset(_STATUS_WORDS)


# --- small pieces -----------------------------------------------------------------------


#: A workspace's Slack subdomain (``gpu-team`` of ``gpu-team.slack.com``): one DNS label
#: (RFC 1123), so that it can only ever be the first label of a host under slack.com.
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def status_link(
    dep: DeploymentRecord, *, team_domain: str | None = None, team_id: str | None = None
) -> str | None:
    """A URL to the deployment's status message, built without any Slack call.

    With the workspace's domain (slash commands and block actions carry ``team_domain`` /
    ``team.domain``) this is the permalink form ``https://<domain>.slack.com/archives/<C>/p<ts
    without the dot>`` (the shape ``chat.getPermalink`` returns); without it, Slack's
    documented ``https://slack.com/app_redirect?channel=<C>&team=<T>`` opens the channel
    (api.slack.com/docs/deep-linking). A ``team_domain`` that is not one DNS label (letters,
    digits, hyphens: a payload's field, untrusted) is not used. None when no message was
    posted yet.
    """
    if not dep.message_channel or not dep.message_ts:
        return None
    if team_domain and _DOMAIN_LABEL.fullmatch(team_domain):
        ts = dep.message_ts.replace(".", "")
        return f"https://{team_domain}.slack.com/archives/{dep.message_channel}/p{ts}"
    url = f"https://slack.com/app_redirect?channel={dep.message_channel}"
    team = team_id or dep.team_id
    return f"{url}&team={team}" if team else url


def deployment_text(
    dep: DeploymentRecord,
    now: datetime,
    *,
    show_requester: bool = True,
    team_domain: str | None = None,
    expiry_action: str = "stop",
    viewer: str | None = None,
) -> str:
    """The mrkdwn summary of one deployment: template, GPU, status, age, $/hour, cost so far,
    requester, a link to its status message and, while active, its end time
    (:func:`bot.slack.blocks.lifetimes.ends_line`; ``expiry_action`` ``stop``/``destroy``).
    Seen by ``viewer`` who is not its requester (it was shared with them), the requester is
    named as "shared by <@owner>" even when ``show_requester`` is False.

    A request that waits for approval, was denied or expired says so ("waiting for approval",
    "$X/h once approved", "nothing rented") with its reason (who may approve, why it ended).
    """
    icon = STATUS_ICONS.get(dep.status, ":grey_question:")
    head = f"*{mrkdwn_escape(dep.template_name)}* · #{dep.id} · {gpu_summary(dep)}"
    if dep.simulated:
        head += " · :test_tube: simulated"
    parts = [f"{icon} {_STATUS_WORDS.get(dep.status, dep.status)}"]
    ended = costs.ended_at(dep)
    if dep.status == DeploymentStatus.PENDING_APPROVAL:
        parts.append(f"asked {format_duration((now - dep.created_at).total_seconds())} ago")
    elif ended is None:
        parts.append(f"age {format_duration((now - dep.created_at).total_seconds())}")
    else:
        parts.append(f"ended {format_duration((now - ended).total_seconds())} ago")
    if dep.status == DeploymentStatus.PENDING_APPROVAL:
        parts.append(f"{money(dep.dph_total)}/h once approved · nothing rented yet")
    elif dep.status in _NEVER_RENTED:
        parts.append(f"{money(dep.dph_total)}/h asked · nothing rented")
    elif dep.status == DeploymentStatus.STOPPED:
        parts.append(
            f"{money(dep.dph_total)}/h when running, ~{money(costs.current_rate(dep))}/h "
            "storage now"
        )
    else:
        parts.append(f"{money(dep.dph_total)}/h")
    if dep.status not in _NEVER_RENTED:
        parts.append(f"{money(costs.cost_so_far(dep, now))} so far")
    if viewer is not None and viewer != dep.user_id:
        parts.append(f":busts_in_silhouette: shared by <@{dep.user_id}>")
    elif show_requester:
        parts.append(f"<@{dep.user_id}>")
    link = status_link(dep, team_domain=team_domain)
    if link:
        parts.append(f"<{link}|status message>")
    lines = [head, " · ".join(parts)]
    ends = ends_line(dep, now, action=expiry_action)
    if ends:
        lines.append(ends)
    if (dep.status == DeploymentStatus.FAILED or dep.status in _NEVER_RENTED) and dep.reason:
        lines.append(f"> {truncate(dep.reason, 300)}")
    return truncate("\n".join(lines), MAX_SECTION_TEXT)


def listing_block_id(kind: str, page: int, deployment_id: int) -> str:
    """Block id of a listing's buttons: ``mgl|<kind>|<page>|<id>``."""
    return f"{_LIST_BLOCK_PREFIX}|{kind}|{page}|{deployment_id}"


def parse_listing_block_id(block_id: str) -> tuple[str, int] | None:
    """``(kind, page)`` from :func:`listing_block_id`, or None for any other block id (the
    page: ASCII digits, at most ``MAX_PAGE``)."""
    parts = block_id.split("|")
    if len(parts) != 4 or parts[0] != _LIST_BLOCK_PREFIX or parts[1] not in LIST_KINDS:
        return None
    page = parts[2]
    if not (page.isascii() and page.isdigit() and len(page) <= len(str(MAX_PAGE))):
        return None
    return parts[1], int(page)


def list_page_value(kind: str, page: int) -> str:
    """Value of the paging buttons: ``{"k": kind, "p": page}``."""
    return json.dumps({"k": kind, "p": page}, separators=(",", ":"))


def parse_list_page_value(value: str) -> tuple[str, int]:
    """Inverse of :func:`list_page_value`; untrusted input gives page 0 of ``mine``."""
    try:
        data = bounded_json(value)
        kind = data.get("k", LIST_MINE)
        page = data.get("p", 0)
        return (kind if kind in LIST_KINDS else LIST_MINE), page_number(page)
    except (ValueError, AttributeError):
        return LIST_MINE, 0


# --- listings ---------------------------------------------------------------------------


def _notice_block(notice: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(notice, 2000))])


def _unmanaged_block(text: str) -> SectionBlock:
    return SectionBlock(block_id="mgl_unmanaged", text=MarkdownTextObject(text=text))


def deployment_list_message(
    kind: str,
    deployments: Sequence[DeploymentRecord],
    *,
    now: datetime,
    can_manage: CanManage,
    page: int = 0,
    page_size: int = LIST_PAGE_SIZE,
    team_domain: str | None = None,
    notice: str | None = None,
    unmanaged: Sequence[UnmanagedInstance] = (),
    expiry_action: str = "stop",
    viewer: str | None = None,
    can_destroy: CanManage | None = None,
) -> dict[str, Any]:
    """``/templates mine`` (``kind="mine"``) or ``/templates running`` (``"running"``).

    ``deployments`` are shown in the given order, ``page_size`` per page (0-based ``page``,
    clamped). Each gets a section (:func:`deployment_text`) and, when ``can_manage(dep)``, the
    Stop/Start/Destroy buttons its state allows (Destroy only when ``can_destroy(dep)`` too;
    default: ``can_manage``). In ``mine``, a deployment whose requester is not ``viewer`` was
    shared with them and says "shared by <@owner>". ``unmanaged``: instances on the Vast.ai
    account the bot did not rent, summed up in one section of the ``running`` listing (the
    caller passes them to admins only; ignored for ``mine``). At most
    ``6 + 2 × page_size + 2`` blocks (28 by default, Slack allows 50). Returns
    ``{"text", "blocks"}``.
    """
    title = "Your deployments" if kind == LIST_MINE else "Active deployments in this workspace"
    pages = max(1, math.ceil(len(deployments) / page_size))
    page = min(max(page, 0), pages - 1)
    shown = deployments[page * page_size : (page + 1) * page_size]
    blocks: list[Block] = [HeaderBlock(text=title)]
    if notice:
        blocks.append(_notice_block(notice))
    # Only the workspace-wide listing speaks for the whole Vast.ai account.
    outside = unmanaged_text(unmanaged) if kind == LIST_RUNNING else None
    if not deployments:
        empty = (
            "You have no deployments. Run `/templates` and press *Deploy* to rent a GPU."
            if kind == LIST_MINE
            else "Nothing is running in this workspace right now: no GPU is billing."
        )
        if outside:
            empty = "The bot runs nothing in this workspace right now."
        blocks.append(SectionBlock(text=MarkdownTextObject(text=empty)))
        if outside:
            blocks.append(_unmanaged_block(outside))
        return message_payload(blocks, f"{title}: none")
    live = [d for d in deployments if costs.ended_at(d) is None]
    burn = sum(costs.current_rate(d) for d in live)
    summary = f"{len(deployments)} deployment{'s' if len(deployments) != 1 else ''}"
    summary += f" · {len(live)} live, costing {money(burn)}/h now"
    if pages > 1:
        summary += f" · page {page + 1} of {pages}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=summary)]))
    if outside:
        blocks.append(_unmanaged_block(outside))
    blocks.append(DividerBlock())
    for dep in shown:
        blocks.append(
            SectionBlock(
                block_id=f"mgl_dep_{dep.id}",
                text=MarkdownTextObject(
                    text=deployment_text(
                        dep,
                        now,
                        show_requester=kind != LIST_MINE,
                        team_domain=team_domain,
                        expiry_action=expiry_action,
                        viewer=viewer if kind == LIST_MINE else None,
                    )
                ),
            )
        )
        buttons = (
            deployment_buttons(dep, now, destroy=(can_destroy or can_manage)(dep))
            if can_manage(dep)
            else []
        )
        if buttons:
            blocks.append(
                ActionsBlock(block_id=listing_block_id(kind, page, dep.id), elements=buttons)
            )
    paging = paging_block(
        page,
        pages,
        prev_action=ACTION_LIST_PAGE_PREV,
        next_action=ACTION_LIST_PAGE_NEXT,
        value_for=lambda target: list_page_value(kind, target),
        block_id=f"mgl_paging_{kind}_{page}",
    )
    if paging is not None:
        blocks.append(paging)
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="`/templates mine` · `/templates running` · `/templates costs`"
                )
            ]
        )
    )
    return message_payload(blocks, f"{title}: {len(deployments)}")


# --- costs and credit -------------------------------------------------------------------


MAX_COST_BUDGETS = 10
"""Budget entries in ``/templates costs`` (two lines each, so that they fit one section)."""


def _budget_lines(budgets: Sequence[BudgetLine], viewer: str) -> str:
    shown = list(budgets[:MAX_COST_BUDGETS])
    own = next((line for line in budgets if line.subject == viewer), None)
    if own is not None and own not in shown:
        shown.append(own)  # the viewer's own budget is always shown
    lines = []
    for line in shown:
        if line.subject == WORKSPACE:
            text = "Workspace: " + budget_sentence(line, you=False)
        elif line.subject == viewer:
            text = f"<@{viewer}> (you): " + budget_sentence(line, you=True)
        else:  # "<@U> has $X of their $Y left this month"
            text = budget_sentence(line, you=False)
        lines.append(f"• {truncate(text, 200)}.\n   {budget_bar(line)}")
    rest = len(budgets) - len(shown)
    if rest > 0:
        lines.append(f"…and {rest} more")
    return truncate("*Budgets*\n" + "\n".join(lines), MAX_SECTION_TEXT)


def costs_message(
    report: costs.CostReport,
    *,
    viewer: str,
    max_users: int = 25,
    budgets: Sequence[BudgetLine] = (),
) -> dict[str, Any]:
    """``/templates costs``: this month's spend for the workspace and per requester.

    Lists the ``max_users`` biggest spenders (the viewer's own line is always shown) and
    states how the figures are computed. ``budgets`` (the workspace's line first, as given,
    then people's; $ this month): a "*Budgets*" section after the totals, one entry each with
    :func:`bot.slack.blocks.budgets.budget_sentence` and, under it,
    :func:`bot.slack.blocks.budgets.budget_bar`
    ("• Workspace: …", "• <@U> (you): …"; at most :data:`MAX_COST_BUDGETS` and the viewer's,
    the rest counted).
    """
    month = report.start.strftime("%B %Y")
    mine = report.for_user(viewer)
    blocks: list[Block] = [
        HeaderBlock(text=f"GPU spend in {month}"),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Workspace*\n{money(report.total)}"),
                MarkdownTextObject(text=f"*You*\n{money(mine.dollars)}"),
                MarkdownTextObject(text=f"*Deployments*\n{report.deployments}"),
            ]
        ),
    ]
    if budgets:
        blocks.append(
            SectionBlock(
                block_id="costs_budgets",
                text=MarkdownTextObject(text=_budget_lines(budgets, viewer)),
            )
        )
    if report.per_user:
        lines = []
        shown = report.per_user[:max_users]
        for line in shown:
            count = f"{line.deployments} deployment{'s' if line.deployments != 1 else ''}"
            lines.append(f"• <@{line.user_id}>: {money(line.dollars)} ({count})")
        if mine not in shown and mine.deployments:
            lines.append(f"• <@{viewer}> (you): {money(mine.dollars)}")
        rest = len(report.per_user) - len(shown)
        if rest > 0:
            lines.append(f"…and {rest} more")
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=truncate("*By requester*\n" + "\n".join(lines), MAX_SECTION_TEXT)
                )
            )
        )
    else:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="Nothing was spent this month so far."))
        )
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=(
                        "Hours in *ready* × the offer's $/hour, plus an estimate of disk storage "
                        f"while *stopped* (${costs.TYPICAL_STORAGE_COST_PER_GB_MONTH:.2f}/GB/month)"
                        ", from the 1st of the month (UTC) until now. Vast.ai's own bill may "
                        "differ slightly (start-up time, bandwidth)."
                    )
                )
            ]
        )
    )
    return message_payload(blocks, f"GPU spend in {month}: {money(report.total)}")


def credit_message(
    credit: float, *, burn_dph: float, live: int, simulated: bool = False
) -> dict[str, Any]:
    """``/templates credit`` for an admin: the Vast.ai balance (``credit``, $) and how long it
    lasts at the current burn rate (``burn_dph``, $/hour over ``live`` deployments)."""
    text = f"*Vast.ai credit:* {money(credit)}"
    if simulated:
        text += " (:test_tube: simulated account)"
    hours = costs.hours_left(credit, burn_dph)
    if hours is None:
        text += "\nNo deployment is billing right now."
    else:
        text += (
            f"\n{live} live deployment{'s cost' if live != 1 else ' costs'} {money(burn_dph)}/h: "
            f"the credit lasts about {format_duration(hours * 3600)} at this rate."
        )
        if hours < 24:
            text += (
                "\n:warning: Less than a day left. At $0 Vast.ai stops every instance; "
                "add credit on console.vast.ai."
            )
    return message_payload([SectionBlock(text=MarkdownTextObject(text=text))], text)


def text_message(text: str) -> dict[str, Any]:
    """A one-section message (refusals, errors)."""
    return message_payload(
        [SectionBlock(text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT)))],
        text,
    )


def credit_refusal_message(admins: Iterable[str]) -> dict[str, Any]:
    """``/templates credit`` for anyone but a bot admin: who can see the balance."""
    admins = list(admins)
    if admins:
        return text_message(
            ":lock: The Vast.ai balance is shown to bot admins only: "
            f"{mentions(admins)}. Ask one of them."
        )
    return text_message(
        ":lock: The Vast.ai balance is shown to bot admins only, and none are configured "
        "(an operator sets them with `BOT_ADMINS`)."
    )
