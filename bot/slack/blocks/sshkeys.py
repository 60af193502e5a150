"""Block Kit for ``/templates ssh-key`` (pure): the modal of a person's SSH public keys, and
reading its submission and buttons back.

The modal (callback :data:`CALLBACK_SSH_KEYS`, title "Your SSH keys", **Add key** / **Done**)
lists the person's keys (type, fingerprint, comment, date added), each with a **Remove** button
(:data:`ACTION_REMOVE`, value the key's id, with a confirmation), and a multiline input to paste
one more. It is private to the person (a modal, never a message). What comes back from Slack
is untrusted: :func:`read_submission`, :func:`read_metadata` and :func:`parse_key_id` only read
and bound it.

The input's ``block_id`` carries a revision (:data:`BLOCK_ADD` + ``-<n>``): Slack keeps what
was typed in an input across ``views.update`` while its ``block_id`` and ``action_id`` stay the
same (https://api.slack.com/surfaces/modals#preserving_input), so a new revision after a key
was added empties the box, and a **Remove** (same revision) keeps what was being typed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.formats import mrkdwn_escape, slack_date
from bot.slack.blocks.common import MAX_SECTION_TEXT, bounded_json, parse_deployment_id, truncate
from bot.sshkeys import type_label

CALLBACK_SSH_KEYS = "ssh_keys"
ACTION_OPEN = "ssh_key_open"
"""A button anywhere (the ready DM) that opens the modal; its value is a deployment id or
empty."""
ACTION_REMOVE = "ssh_key_remove"
ACTION_ADD = "ssh_key_paste"
BLOCK_ADD = "ssh_key_add"
"""Prefix of the input block's id (``ssh_key_add-<revision>``)."""
BLOCK_INTRO = "ssh_key_intro"
BLOCK_NOTICE = "ssh_key_notice"
BLOCK_EMPTY = "ssh_key_empty"
KEY_BLOCK = "ssh_key_row-"
"""Prefix of each key's section (``ssh_key_row-<id>``)."""

#: Slack's longest plain-text input (https://api.slack.com/reference/block-kit/block-elements
#: #input): an ed25519 ``.pub`` line is about 100 characters, an RSA 4096 one about 750.
MAX_INPUT = 3000
MAX_COMMENT_SHOWN = 200
MAX_REVISION = 1_000_000

TITLE = "Your SSH keys"
PLACEHOLDER = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… you@laptop"
ADD_HINT = (
    "One key: the single line of your .pub file. Never the private key (the same name "
    "without .pub)."
)
INTRO = (
    "Your public SSH keys in this workspace. The bot puts them on the GPU instances you "
    "deploy and on those shared with you, so that you can log in with `ssh`. Nobody else sees "
    "this list; the workspace's audit log records that a key was added or removed (its "
    "fingerprint)."
)


class KeyRow(Protocol):
    """What the modal shows of a key (``storage.SshKeyRecord`` has it)."""

    @property
    def id(self) -> int: ...

    @property
    def key_type(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    @property
    def comment(self) -> str | None: ...

    @property
    def created_at(self) -> datetime: ...


def key_text(key: KeyRow) -> str:
    """``*ED25519*  `SHA256:…` `` then the comment (escaped, cut to 200) and the date added,
    in mrkdwn."""
    comment = (
        mrkdwn_escape(truncate(" ".join(key.comment.split()), MAX_COMMENT_SHOWN))
        if key.comment
        else "_no comment_"
    )
    return truncate(
        f"*{type_label(key.key_type)}*  `{key.fingerprint}`\n{comment} · added "
        f"{slack_date(key.created_at, '{date_short_pretty}')}",
        MAX_SECTION_TEXT,
    )


def _remove_button(key: KeyRow) -> ButtonElement:
    return ButtonElement(
        text="Remove",
        action_id=ACTION_REMOVE,
        value=str(key.id),
        style="danger",
        confirm=ConfirmObject(
            title="Remove this key?",
            text=f"Remove {type_label(key.key_type)} key {key.fingerprint}? The bot stops "
            "putting it on your instances.",
            confirm="Remove",
            deny="Keep it",
        ),
    )


def metadata(revision: int, deployment_id: int | None) -> str:
    """The modal's ``private_metadata``: ``{"rev": revision, "dep": deployment id or null}``."""
    return json.dumps({"rev": revision, "dep": deployment_id}, separators=(",", ":"))


def read_metadata(view: dict[str, Any]) -> tuple[int, int | None]:
    """``(revision, deployment id or None)`` from a view Slack sent back (untrusted: anything
    unreadable is ``(0, None)``)."""
    try:
        data = bounded_json(view.get("private_metadata") or "{}")
    except ValueError:
        return 0, None
    if not isinstance(data, dict):
        return 0, None
    rev = data.get("rev")
    revision = rev if isinstance(rev, int) and not isinstance(rev, bool) else 0
    revision = revision if 0 <= revision <= MAX_REVISION else 0
    dep = data.get("dep")
    return revision, parse_deployment_id(str(dep)) if isinstance(dep, int) else None


def keys_view(
    keys: Sequence[KeyRow],
    *,
    max_keys: int,
    notice: str | None = None,
    revision: int = 0,
    deployment_id: int | None = None,
) -> View:
    """The SSH keys modal.

    Blocks: :data:`BLOCK_INTRO`; for a ``deployment_id`` a line naming it; ``notice`` (plain
    text for the person, e.g. "Added your ED25519 key SHA256:…", escaped here) in
    :data:`BLOCK_NOTICE`; one section per key (``ssh_key_row-<id>``, :func:`key_text`, a
    **Remove** button), or :data:`BLOCK_EMPTY` saying how to make one; then, below
    ``max_keys`` keys, the input ``ssh_key_add-<revision>`` (:data:`ACTION_ADD`, multiline,
    at most :data:`MAX_INPUT` characters) with **Add key**; at ``max_keys``, a line saying to
    remove one first and no input. At most ``max_keys`` + 7 blocks.
    """
    blocks: list[Block] = [SectionBlock(block_id=BLOCK_INTRO, text=MarkdownTextObject(text=INTRO))]
    if deployment_id is not None:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"For deployment #{deployment_id}: add a key below and the bot "
                        "puts it on that instance."
                    )
                ]
            )
        )
    if notice:
        blocks.append(
            SectionBlock(
                block_id=BLOCK_NOTICE,
                text=MarkdownTextObject(text=truncate(mrkdwn_escape(notice), MAX_SECTION_TEXT)),
            )
        )
    blocks.append(DividerBlock())
    shown = list(keys)[:max_keys]
    for key in shown:
        blocks.append(
            SectionBlock(
                block_id=f"{KEY_BLOCK}{key.id}",
                text=MarkdownTextObject(text=key_text(key)),
                accessory=_remove_button(key),
            )
        )
    if not shown:
        blocks.append(
            SectionBlock(
                block_id=BLOCK_EMPTY,
                text=MarkdownTextObject(
                    text="_You have no keys here yet._ Make one with `ssh-keygen -t ed25519`, "
                    "then paste the line of `~/.ssh/id_ed25519.pub` below."
                ),
            )
        )
    full = len(shown) >= max_keys
    if full:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"You have {len(shown)} keys, the most one person may keep here. "
                        "Remove one to add another."
                    )
                ]
            )
        )
    else:
        blocks += [
            DividerBlock(),
            InputBlock(
                block_id=f"{BLOCK_ADD}-{revision}",
                label="Add a public key",
                hint=ADD_HINT,
                element=PlainTextInputElement(
                    action_id=ACTION_ADD,
                    multiline=True,
                    max_length=MAX_INPUT,
                    placeholder=PLACEHOLDER,
                ),
            ),
        ]
    return View(
        type="modal",
        callback_id=CALLBACK_SSH_KEYS,
        title=PlainTextObject(text=TITLE),
        submit=None if full else PlainTextObject(text="Add key"),
        close=PlainTextObject(text="Done"),
        private_metadata=metadata(revision, deployment_id),
        blocks=blocks,
    )


def read_submission(view: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(block id, text)`` of the modal's key input in ``view.state.values`` (untrusted):
    the first block whose id starts with :data:`BLOCK_ADD` and holds :data:`ACTION_ADD`.
    ``(None, None)`` when there is none; text None when the input is empty."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        return None, None
    for block_id, inputs in values.items():
        if not (isinstance(block_id, str) and block_id.startswith(BLOCK_ADD)):
            continue
        element = inputs.get(ACTION_ADD) if isinstance(inputs, dict) else None
        if isinstance(element, dict):
            value = element.get("value")
            return block_id, value if isinstance(value, str) else None
    return None, None


def parse_key_id(value: object) -> int | None:
    """The key id a **Remove** button's value names (untrusted): ASCII digits in the id
    column's range (as :func:`bot.slack.blocks.common.parse_deployment_id`), else None."""
    return parse_deployment_id(value)
