"""Block Kit for the App Home tab (pure): the user's live deployments with their buttons,
costs and end times, the workspace's spend this month, for admins the instances rented outside
the bot, and a short how-to.

Published with ``views.publish`` (``{"type": "home", "blocks": [...]}``, at most 100 blocks:
docs/SLACK_API.md §4, §9).
"""

from __future__ import annotations

from collections.abc import Sequence
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

from bot.notices import BudgetLine, UnmanagedInstance
from bot.slack.blocks.budgets import budget_bar, budget_sentence
from bot.slack.blocks.common import MAX_VIEW_BLOCKS, BlockLimitError, truncate
from bot.slack.blocks.lifetimes import unmanaged_text
from bot.slack.blocks.manage import deployment_text, money
from bot.slack.blocks.status import deployment_buttons
from storage import DeploymentRecord

MAX_HOME_DEPLOYMENTS = 30
"""Deployments drawn on the Home tab (2 blocks each); the rest are counted and pointed to
``/templates mine``."""
HOME_BLOCK_PREFIX = "home|"

HOW_TO = (
    "*How to*\n"
    "• `/templates` lists the GPU templates; *Deploy* picks a live Vast.ai offer and rents it.\n"
    "• The bot posts a status message in the channel you chose and tells you when the app is "
    "ready (the password comes by DM).\n"
    "• *Stop* releases the GPU (the disk still bills a little); *Start* gets it back if it is "
    "still free; *Destroy* deletes the instance and its disk and ends all billing.\n"
    "• Each deployment runs for the time chosen in the picker: you are asked before the end "
    "and can extend it.\n"
    "• *Share* lets teammates in: they get their own login by DM and may Stop, Start and "
    "Extend it; only you (and the bot admins) can Destroy it or change who has access.\n"
    "• `/templates mine` · `/templates running` · `/templates costs` · `/templates help`"
)


def home_block_id(deployment_id: int) -> str:
    """Block id of a deployment's buttons on the Home tab: ``home|<id>``."""
    return f"{HOME_BLOCK_PREFIX}{deployment_id}"


def home_view(
    *,
    deployments: Sequence[DeploymentRecord],
    now: datetime,
    user_month: float,
    workspace_month: float,
    month_label: str,
    notice: str | None = None,
    team_domain: str | None = None,
    unmanaged: Sequence[UnmanagedInstance] = (),
    expiry_action: str = "stop",
    user_budget: BudgetLine | None = None,
    workspace_budget: BudgetLine | None = None,
    viewer: str | None = None,
    viewer_admin: bool = False,
) -> dict[str, Any]:
    """The Home view ``{"type": "home", "blocks": [...]}``.

    ``deployments``: the user's live ones (not destroyed or failed), shown in order with their
    buttons and end times (``expiry_action``: ``stop``/``destroy``, what the bot does at the
    end). ``viewer``: whose Home it is; a deployment of someone else was shared with them: it
    says "shared by <@owner>" and has no **Share** and no **Destroy** (unless
    ``viewer_admin``: a bot admin may do both); their own have **Share**.
    ``user_month``/``workspace_month``: dollars spent this month (``month_label``, e.g.
    "June 2025"). ``notice``: a line shown on top (the outcome of the last button press).
    ``unmanaged``: instances on the Vast.ai account the bot did not rent (the caller passes
    them to admins only), one section when any. ``user_budget``: the user's monthly budget
    and spend ($), shown under the spend as "*Your budget for <month>*" and a
    :func:`bot.slack.blocks.budgets.budget_bar`; ``workspace_budget``: a context line with the
    workspace's :func:`bot.slack.blocks.budgets.budget_sentence` when it has a budget.
    Raises :class:`BlockLimitError` above 100 blocks (cannot happen with the caps used here).
    """
    blocks: list[Block] = [HeaderBlock(text="Your GPU deployments")]
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=truncate(notice, 2000))]))
    blocks.append(
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*You spent in {month_label}*\n{money(user_month)}"),
                MarkdownTextObject(
                    text=f"*Workspace spent in {month_label}*\n{money(workspace_month)}"
                ),
            ]
        )
    )
    if user_budget is not None:
        blocks.append(
            SectionBlock(
                block_id="home_budget",
                text=MarkdownTextObject(
                    text=f"*Your budget for {month_label}*\n{budget_bar(user_budget)}"
                ),
            )
        )
    if workspace_budget is not None and workspace_budget.budget is not None:
        blocks.append(
            ContextBlock(
                block_id="home_workspace_budget",
                elements=[
                    MarkdownTextObject(text=budget_sentence(workspace_budget, you=False) + ".")
                ],
            )
        )
    blocks.append(DividerBlock())
    if not deployments:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text="Nothing running for you: no GPU is billing on your behalf."
                )
            )
        )
    for dep in deployments[:MAX_HOME_DEPLOYMENTS]:
        blocks.append(
            SectionBlock(
                block_id=f"home_dep_{dep.id}",
                text=MarkdownTextObject(
                    text=deployment_text(
                        dep,
                        now,
                        show_requester=False,
                        team_domain=team_domain,
                        expiry_action=expiry_action,
                        viewer=viewer,
                    )
                ),
            )
        )
        full = viewer is None or viewer == dep.user_id or viewer_admin
        buttons = deployment_buttons(dep, now, share=full, destroy=full)
        if buttons:
            blocks.append(ActionsBlock(block_id=home_block_id(dep.id), elements=buttons))
    hidden = len(deployments) - MAX_HOME_DEPLOYMENTS
    if hidden > 0:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"…and {hidden} more: `/templates mine` lists them all."
                    )
                ]
            )
        )
    outside = unmanaged_text(unmanaged)
    if outside:
        blocks += [
            DividerBlock(),
            SectionBlock(block_id="home_unmanaged", text=MarkdownTextObject(text=outside)),
        ]
    blocks += [DividerBlock(), SectionBlock(text=MarkdownTextObject(text=HOW_TO))]
    if len(blocks) > MAX_VIEW_BLOCKS:
        raise BlockLimitError(f"{len(blocks)} blocks, the Home tab allows {MAX_VIEW_BLOCKS}")
    return {"type": "home", "blocks": [block.to_dict() for block in blocks]}
