"""Block Kit for sharing a deployment (pure): the **Share** modal and what it reads back.

The modal (callback :data:`CALLBACK_SHARE`) holds one optional ``multi_users_select``
(https://api.slack.com/reference/block-kit/block-elements#users_multi_select: ``initial_users``
pre-selects the people it is shared with now, ``max_selected_items`` bounds the choice) inside
an input block, so saving it with nobody chosen removes everyone. ``private_metadata`` carries
the deployment id and who it was shared with when the modal opened (at most 3000 characters:
https://api.slack.com/reference/surfaces/views), so that the submission changes only what
this person changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
    UserMultiSelectElement,
)
from slack_sdk.models.views import View

from bot.formats import mrkdwn_escape
from bot.slack.blocks.common import bounded_json, notice_modal, truncate, valid_deployment_id
from bot.slack.blocks.status import ACTION_SHARE, gpu_summary
from storage import DeploymentRecord

__all__ = [
    "ACTION_SHARE",
    "ACTION_SHARE_USERS",
    "BLOCK_SHARE_USERS",
    "CALLBACK_SHARE",
    "ShareMetadata",
    "parse_share_metadata",
    "selected_users",
    "share_done_view",
    "share_metadata",
    "share_modal",
]

CALLBACK_SHARE = "share_modal"
BLOCK_SHARE_USERS = "share_users"
ACTION_SHARE_USERS = "share_users_select"
#: A Slack user id as the bot stores it (``U…`` or ``W…`` for Enterprise Grid).
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


@dataclass(frozen=True)
class ShareMetadata:
    """What a submitted Share modal names: ``deployment_id`` and ``previous`` (who it was
    shared with when the modal opened)."""

    deployment_id: int
    previous: tuple[str, ...]


def share_metadata(deployment_id: int, previous: Sequence[str]) -> str:
    """``private_metadata`` of the Share modal: ``{"d": id, "was": [user ids]}``."""
    return json.dumps({"d": deployment_id, "was": list(previous)}, separators=(",", ":"))


def parse_share_metadata(text: object) -> ShareMetadata | None:
    """Inverse of :func:`share_metadata` for the untrusted value Slack sends back; None when
    it is not one (not JSON, no valid deployment id, a user id that is not one)."""
    try:
        data = bounded_json(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    number, was = data.get("d"), data.get("was")
    if type(number) is not int or not valid_deployment_id(number) or not isinstance(was, list):
        return None
    if not all(isinstance(user, str) and _USER_ID.fullmatch(user) for user in was):
        return None
    return ShareMetadata(number, tuple(was))


def selected_users(view: dict[str, Any]) -> list[str] | None:
    """The user ids chosen in a submitted Share modal, in Slack's order (empty: nobody);
    None when the field is missing or holds something that is not a user id."""
    values = ((view.get("state") or {}).get("values") or {}).get(BLOCK_SHARE_USERS) or {}
    element = values.get(ACTION_SHARE_USERS)
    if not isinstance(element, dict):
        return None
    chosen = element.get("selected_users") or []
    if not isinstance(chosen, list):
        return None
    if not all(isinstance(user, str) and _USER_ID.fullmatch(user) for user in chosen):
        return None
    return list(chosen)


def share_modal(
    dep: DeploymentRecord, collaborators: Sequence[str], *, max_people: int = 20
) -> View:
    """The Share modal of ``dep`` (callback :data:`CALLBACK_SHARE`, **Save** / **Cancel**):
    what sharing means, and the people field (block :data:`BLOCK_SHARE_USERS`, action
    :data:`ACTION_SHARE_USERS`, optional, at most ``max_people``) pre-filled with
    ``collaborators``. Four blocks."""
    head = (
        f"*{mrkdwn_escape(truncate(dep.template_name, 100))}* (#{dep.id}) on {gpu_summary(dep)}"
        f" · owner <@{dep.user_id}>"
    )
    blocks: list[Block] = [
        SectionBlock(block_id="share_head", text=MarkdownTextObject(text=head)),
        SectionBlock(
            block_id="share_what",
            text=MarkdownTextObject(
                text=(
                    "The people you choose may *Stop*, *Start* and *Extend* it, within the "
                    "same lifetime and budget rules, and each gets their own login by DM; "
                    "their SSH keys (`/templates ssh-key`) are put on the instance. Only the "
                    "owner and the bot admins can *Destroy* it or change who has access."
                )
            ),
        ),
        InputBlock(
            block_id=BLOCK_SHARE_USERS,
            label=PlainTextObject(text="Share with"),
            optional=True,
            element=UserMultiSelectElement(
                action_id=ACTION_SHARE_USERS,
                placeholder=PlainTextObject(text="Choose teammates"),
                initial_users=list(collaborators)[:max_people] or None,
                max_selected_items=max_people,
            ),
            hint=PlainTextObject(
                text="Remove someone to take their access away (their SSH keys go too)."
            ),
        ),
        ContextBlock(
            block_id="share_note",
            elements=[
                MarkdownTextObject(
                    text="Only people of this workspace can be added. Every change is posted "
                    "in the status message's thread and kept in the audit log."
                )
            ],
        ),
    ]
    return View(
        type="modal",
        callback_id=CALLBACK_SHARE,
        title=PlainTextObject(text="Share"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=share_metadata(dep.id, list(collaborators)[:max_people]),
        blocks=blocks,
    )


def share_done_view(text: str) -> View:
    """The modal after a save: ``text`` (mrkdwn: who was added and removed, who has access
    now) and a Close button."""
    return notice_modal("Shared", text, block_id="share_done")
