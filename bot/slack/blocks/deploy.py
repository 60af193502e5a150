"""Block Kit for the deploy flow (pure functions from data to views and messages).

* Modal views answered on submission of the GPU picker (``deploy_modal``): the "renting…"
  view shown while the offer is still being checked, the "done" view, and the problem view
  for a submission that cannot be deployed (stale form, template gone, offer gone).
* Thread replies on the status message: "the offer was taken, renting a similar one", and
  the failure note that mentions the requester, with a **Pick another GPU** button
  (``deploy_template``, value = template slug: it opens the picker with fresh offers).
* The requester's private DM with the generated password (sent by the status poller when
  the deployment is ready; never posted in a channel).

:class:`bot.slack.messages.SlackMessages` sends them for the services.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.formats import mrkdwn_escape
from bot.slack.blocks.common import MAX_SECTION_TEXT, message_payload, truncate
from bot.slack.blocks.picker import CALLBACK_DEPLOY
from bot.slack.blocks.status import gpu_summary
from bot.slack.blocks.templates import ACTION_DEPLOY
from catalog import OfferLike, Template
from storage import DeploymentRecord, DeploymentStatus

#: Modal title when the template is unknown (titles are at most 24 characters).
DEFAULT_TITLE = "Deploy"


def _title(name: str | None) -> PlainTextObject:
    return PlainTextObject(text=truncate(f"Deploy {name}" if name else DEFAULT_TITLE, 24))


def _offer_text(offer: OfferLike) -> str:
    gpu = f"{offer.num_gpus}× {mrkdwn_escape(truncate(offer.gpu_name, 100))}"
    gpu += f" ({offer.gpu_ram_gb:.0f} GB)"
    return f"{gpu} at ${offer.dph_total:.3f}/h"


def pick_again_button(slug: str, text: str = "Pick another GPU") -> ButtonElement:
    """The button that re-opens the GPU picker with fresh offers for template ``slug``."""
    return ButtonElement(text=text, action_id=ACTION_DEPLOY, value=slug[:100], style="primary")


def _notice_view(name: str | None, blocks: list[Block]) -> View:
    """A modal after submission: no submit, only Close (nothing more to choose)."""
    return View(
        type="modal",
        callback_id=CALLBACK_DEPLOY,
        title=_title(name),
        close=PlainTextObject(text="Close"),
        blocks=blocks,
    )


def _notice_section(block_id: str, text: str) -> SectionBlock:
    return SectionBlock(
        block_id=block_id, text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))
    )


def working_view(template: Template, channel: str) -> View:
    """Shown (``response_action: update``) when checking the offer takes longer than the ack
    window allows: the submission is being handled, the modal may be closed."""
    text = (
        f":hourglass_flowing_sand: *Checking the GPU offer for {mrkdwn_escape(template.name)} "
        "with Vast.ai…*\n"
        f"You can close this window: the status message will appear in <#{channel}>."
    )
    return _notice_view(template.name, [_notice_section("deploy_working", text)])


def done_view(template: Template, channel: str) -> View:
    """Replaces :func:`working_view` once the rental has been handed to the deploy service."""
    text = (
        f":rocket: *Renting the GPU for {mrkdwn_escape(template.name)}.* Follow its progress "
        f"in <#{channel}>."
    )
    return _notice_view(template.name, [_notice_section("deploy_done", text)])


def _where(dep: DeploymentRecord) -> str:
    """Where the status message of ``dep`` is (or will be), for a sentence."""
    channel = dep.message_channel or dep.channel_id
    if channel.startswith("D"):
        return "in your DMs with the bot"
    return f"in <#{channel}>"


_ENDED = {
    DeploymentStatus.FAILED: "failed",
    DeploymentStatus.DESTROYED: "has been destroyed",
    DeploymentStatus.DENIED: "was denied",
    DeploymentStatus.EXPIRED: "expired before anyone approved it",
}


def already_text(dep: DeploymentRecord) -> str:
    """The truth about a submission delivered again (mrkdwn): what the first delivery of this
    form started, and where its status message is; nothing new was rented."""
    name = f"*{mrkdwn_escape(dep.template_name)}* (#{dep.id})"
    where = _where(dep)
    seen = "will appear" if dep.message_ts is None else "is"
    status = dep.status
    if status in (DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING):
        head = f":rocket: This form was already submitted: {name} is already deploying."
    elif status == DeploymentStatus.READY:
        head = f":white_check_mark: This form was already submitted: {name} is running."
    elif status == DeploymentStatus.PENDING_APPROVAL:
        head = f":hourglass: This form was already submitted: {name} is waiting for approval."
    elif status == DeploymentStatus.STOPPED:
        head = f":double_vertical_bar: This form was already submitted: {name} is stopped."
    else:
        ended = _ENDED.get(status, f"is {status}")
        head = (
            f":information_source: This form was already submitted: {name} {ended}. To "
            "deploy again, run `/templates` and press *Deploy*."
        )
    return f"{head} Nothing new was rented. Its status message {seen} {where}."


def already_view(dep: DeploymentRecord) -> View:
    """The modal's answer to a submission delivered again: :func:`already_text`."""
    return _notice_view(dep.template_name, [_notice_section("deploy_already", already_text(dep))])


def problem_view(message: str, *, template: Template | None = None) -> View:
    """A modal that says why the submission cannot be deployed and what to do (no submit;
    a **Pick another GPU** button when the template is known)."""
    blocks: list[Block] = [_notice_section("deploy_problem", f":warning: {message}")]
    if template is not None:
        blocks.append(
            ActionsBlock(
                block_id="deploy_problem_actions", elements=[pick_again_button(template.slug)]
            )
        )
    return _notice_view(template.name if template else None, blocks)


def offer_switched_note(
    dep: DeploymentRecord, taken: OfferLike, replacement: OfferLike
) -> dict[str, Any]:
    """Thread reply: the chosen offer was rented by someone else; a similar one is tried."""
    change = (replacement.dph_total - taken.dph_total) / taken.dph_total if taken.dph_total else 0
    text = (
        f":arrows_counterclockwise: <@{dep.user_id}> the offer you picked ({_offer_text(taken)}) "
        "was just rented by someone else. Trying a similar one instead: "
        f"{_offer_text(replacement)} ({change:+.0%})."
    )
    return message_payload(
        [SectionBlock(block_id="offer_switched", text=MarkdownTextObject(text=text))], text
    )


def failure_note(
    dep: DeploymentRecord, reason: str, *, retry_slug: str | None = None
) -> dict[str, Any]:
    """Thread reply (or DM) that tells the requester the deployment failed and why; with
    ``retry_slug`` a **Pick another GPU** button re-opens the picker with fresh offers."""
    text = (
        f":x: <@{dep.user_id}> {mrkdwn_escape(dep.template_name)} on {gpu_summary(dep)} "
        f"could not be deployed: {reason}"
    )
    blocks: list[Block] = [
        SectionBlock(
            block_id="deploy_failed", text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))
        )
    ]
    if retry_slug:
        blocks.append(
            ActionsBlock(block_id="deploy_failed_actions", elements=[pick_again_button(retry_slug)])
        )
    return message_payload(blocks, text)
