"""What the bot says about an act it carries out from a recorded desired state (pure): done
after a crash or a refusal, or failing again and again while the GPU may still bill.

The content arrives as :class:`bot.notices.IntentNotice`; times use Slack's date formatting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block, MarkdownTextObject, SectionBlock

from bot.formats import mrkdwn_escape, slack_date
from bot.notices import IntentNotice
from bot.slack.blocks.common import MAX_SECTION_TEXT, message_payload, truncate
from storage import SYSTEM_ACTOR, DeploymentRecord

_DONE = {
    "stop": ":double_vertical_bar: Stopped {name}{why}: Vast.ai confirmed it{tried}. The GPU "
    "no longer bills; the disk still does. *Start* brings it back.",
    "start": ":arrow_forward: Started {name} again{why}: Vast.ai confirmed it{tried}. The "
    "status message turns *Ready* when the app answers.",
    "destroy": ":wastebasket: Destroyed {name}{why}: Vast.ai confirmed it{tried}. The instance "
    "and its disk are gone; billing has stopped.",
}
_VERB = {"stop": "stop", "start": "start", "destroy": "destroy"}


def _name(dep: DeploymentRecord) -> str:
    return f"*{mrkdwn_escape(dep.template_name)}* (#{dep.id})"


def _why(notice: IntentNotice) -> str:
    if notice.actor == SYSTEM_ACTOR:
        return f" ({notice.reason.rstrip('.')})" if notice.reason else " (automatically)"
    return f" as <@{notice.actor}> asked"


def _tried(notice: IntentNotice) -> str:
    return f" after {notice.tries} tries" if notice.tries > 1 else ""


def intent_text(dep: DeploymentRecord, notice: IntentNotice) -> str:
    """mrkdwn for ``notice`` about ``dep``, e.g. ":double_vertical_bar: Stopped *JupyterLab*
    (#12) as <@U1> asked: Vast.ai confirmed it after 3 tries. …", or, while ``failing``,
    what keeps failing, that the GPU may still bill, when the bot tries next and how to end
    it by hand in the Vast.ai console."""
    name = _name(dep)
    if notice.outcome == "gone":
        return (
            f":wastebasket: The Vast.ai instance of {name} no longer exists (destroyed outside "
            "the bot, or the host removed it), so nothing bills any more. Deploy again if you "
            "still need it."
        )
    if notice.outcome == "late":
        after = {
            "stop": "The GPU no longer bills; the disk still does. *Start* brings it back.",
            "destroy": "The instance and its disk are gone; billing has stopped. Deploy again "
            "if you still need it.",
        }.get(notice.action, "")
        return (
            f":warning: The automatic {notice.action} of {name}{_why(notice)} had already been "
            "sent to Vast.ai when *Extend* or *Keep running* was pressed, so it could not be "
            f"called off: it went through. {after}"
        ).rstrip()
    if notice.outcome == "withdrawn":
        said = f" Vast.ai said: {truncate(notice.error, 300)}" if notice.error else ""
        return (
            f":x: Vast.ai did not start {name}{_why(notice)}, so it stays stopped (its disk "
            "still bills). The GPU it ran on may be rented by someone else now: try *Start* "
            f"later, or *Destroy* it and deploy again.{said}"
        )
    if notice.outcome == "failing":
        verb = _VERB.get(notice.action, notice.action)
        said = f" Vast.ai's last answer: {truncate(notice.error, 300)}" if notice.error else ""
        later = (
            f" The bot keeps trying (next try {slack_date(notice.next_try_at)})"
            if notice.next_try_at is not None
            else " The bot keeps trying"
        )
        simulated = " (simulated: nothing real bills)" if dep.simulated else ""
        where = f"instance {dep.instance_id}" if dep.instance_id is not None else "the instance"
        if notice.action == "start":  # not running yet: only its disk bills, as while stopped
            return (
                f":warning: The bot has tried {notice.tries} times to start {name}"
                f"{_why(notice)} and could not confirm that Vast.ai did.{said} As far as the bot "
                f"can tell it is still stopped (its disk bills){simulated}.{later} and says so "
                f"here when it runs. To give up, press *Destroy*, or destroy {where} in the "
                f"Vast.ai console: <{notice.console_url}|{notice.console_url}>."
            )
        return (
            f":warning: The bot has tried {notice.tries} times to {verb} {name}{_why(notice)} "
            f"and Vast.ai has not done it.{said} *The GPU may still be billing*{simulated}."
            f"{later} and says so here when it works. To end the billing now, destroy {where} "
            f"in the Vast.ai console: <{notice.console_url}|{notice.console_url}>."
        )
    template = _DONE.get(notice.action, "{name}: done{why}{tried}.")
    return template.format(name=name, why=_why(notice), tried=_tried(notice))


def intent_message(dep: DeploymentRecord, notice: IntentNotice) -> dict[str, Any]:
    """:func:`intent_text` as ``{"text", "blocks"}`` (one section)."""
    text = intent_text(dep, notice)
    blocks: list[Block] = [
        SectionBlock(
            block_id=f"intent_{dep.id}",
            text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT)),
        )
    ]
    return message_payload(blocks, text)


def pending_line(dep: DeploymentRecord, now: datetime) -> str | None:
    """The status message's line while an act is recorded but not confirmed by Vast.ai
    (``desired_next_try_at`` set), e.g. ":hourglass_flowing_sand: *Stopping…* Vast.ai has not
    confirmed the stop yet: the GPU may still bill until it does."; None when nothing is
    pending. ``now`` decides whether the next try is still to come."""
    if dep.desired_next_try_at is None or dep.desired_state is None:
        return None
    word, act = {
        "stopped": ("Stopping…", "stop"),
        "destroyed": ("Destroying…", "destroy"),
        "running": ("Starting…", "start"),
    }.get(dep.desired_state, ("Working…", dep.desired_state))
    line = f":hourglass_flowing_sand: *{word}* Vast.ai has not confirmed the {act} yet"
    line += ": the GPU may still bill until it does." if act != "start" else "."
    if dep.desired_tries > 1:
        line += f" Tried {dep.desired_tries} times;"
        line += (
            f" next try {slack_date(dep.desired_next_try_at)}."
            if dep.desired_next_try_at > now
            else " trying again now."
        )
    return line
