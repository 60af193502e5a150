"""Helpers shared by the Block Kit builders: limits and validation.

Limits are Slack's (from slack_sdk's models and api.slack.com/reference/block-kit, the block
reference). slack_sdk validates each block's own limits in ``to_dict()``; the per-message block
count it does not check, so :func:`message_payload` does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
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

from storage import MAX_ROW_ID

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_OPTION_TEXT = 75
MAX_MESSAGE_TEXT = 4000


_DEPLOYMENT_ID = re.compile(r"[1-9][0-9]{0,9}")  # ASCII only: int() also takes "١٢" or " 12"


def parse_deployment_id(value: object) -> int | None:
    """The deployment id a button value (or a field of one) names: a string of ASCII digits
    without sign, space or leading zero, in 1..``storage.MAX_ROW_ID`` (2**31 − 1: the id column
    is an INTEGER, and a larger id makes the database raise). None for anything else: values
    come back from Slack untrusted and may be forged."""
    if not isinstance(value, str) or _DEPLOYMENT_ID.fullmatch(value) is None:
        return None
    number = int(value)
    return number if number <= MAX_ROW_ID else None


def valid_deployment_id(number: int) -> bool:
    """Whether ``number`` can be a deployment id (1..``storage.MAX_ROW_ID``)."""
    return 1 <= number <= MAX_ROW_ID


#: Most characters of JSON the bot reads back from Slack (``private_metadata``: 3000, Slack's
#: limit, https://api.slack.com/reference/surfaces/views; a button value: 2000,
#: https://api.slack.com/reference/block-kit/block-elements#button).
MAX_JSON_CHARS = 3000
#: Deepest nesting of arrays and objects the bot's own values use, with room to spare.
MAX_JSON_DEPTH = 8


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def bounded_json(
    text: object, *, max_chars: int = MAX_JSON_CHARS, depth: int = MAX_JSON_DEPTH
) -> Any:
    """``json.loads(text)`` for a value that came back from Slack (untrusted: a button value,
    an option value, ``private_metadata``), refused before it is parsed when it is not a
    string, longer than ``max_chars`` characters or nested deeper than ``depth`` arrays and
    objects (``json.loads`` of deep nesting raises ``RecursionError``); ``NaN`` and
    ``Infinity`` (which Python's JSON accepts, RFC 8259 §6 does not) are refused too.

    Raises ``ValueError`` for anything refused or not JSON; never anything else."""
    if not isinstance(text, str) or len(text) > max_chars:
        raise ValueError("not a JSON text within the limit")
    level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level > depth:
                raise ValueError(f"JSON nested deeper than {depth}")
        elif char in "]}":
            level -= 1
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as error:  # not reached within the depth above; kept as a guard
        raise ValueError("JSON nested too deeply") from error


#: Highest page number a paging value may name (untrusted input; listings have far fewer).
MAX_PAGE = 9999


def page_number(value: object) -> int:
    """A page number from a paging button's value (untrusted): an int in 0..:data:`MAX_PAGE`,
    else 0 (the first page)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PAGE:
        return value
    return 0


class BlockLimitError(ValueError):
    """A built message breaks a Slack limit that slack_sdk does not check itself."""


#: A mrkdwn entity (``&amp;``, ``&lt;``, ``&gt;``) cut short at the end of a text.
_CUT_ENTITY = re.compile(r"&[a-z]{0,3}\Z")


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with an ellipsis when cut.

    A cut never leaves half an entity of :func:`bot.formats.mrkdwn_escape` (``&am…`` would
    show as typed): a trailing ``&``, ``&a``, ``&am``, ``&amp``, ``&l`` … is dropped with the
    rest (in plain text that only shortens the cut a little more).
    """
    if len(text) <= limit:
        return text
    return _CUT_ENTITY.sub("", text[: limit - 1]) + "…"


def message_payload(
    blocks: Sequence[Block], text: str, *, max_blocks: int = MAX_MESSAGE_BLOCKS
) -> dict[str, Any]:
    """Return ``{"text": ..., "blocks": [...]}`` ready for ack/respond/chat.postMessage.

    ``text`` is the notification fallback. Raises :class:`BlockLimitError` above ``max_blocks``
    blocks and ``slack_sdk.errors.SlackObjectFormationError`` when a block breaks its own limits.
    """
    if len(blocks) > max_blocks:
        raise BlockLimitError(f"{len(blocks)} blocks, Slack allows {max_blocks}")
    return {
        "text": truncate(text, MAX_MESSAGE_TEXT),
        "blocks": [block.to_dict() for block in blocks],
    }


def paging_block(
    page: int,
    pages: int,
    *,
    prev_action: str,
    next_action: str,
    value_for: Callable[[int], str],
    block_id: str,
) -> ActionsBlock | None:
    """◀ Previous / Next ▶ buttons for 0-based ``page`` of ``pages``; ``value_for(target_page)``
    is each button's value. None when everything fits on one page."""
    if pages <= 1:
        return None
    buttons: list[ButtonElement] = []
    if page > 0:
        buttons.append(
            ButtonElement(text="◀ Previous", action_id=prev_action, value=value_for(page - 1))
        )
    if page < pages - 1:
        buttons.append(
            ButtonElement(text="Next ▶", action_id=next_action, value=value_for(page + 1))
        )
    return ActionsBlock(block_id=block_id, elements=buttons)


def notice_modal(title: str, text: str, *, block_id: str = "notice") -> View:
    """A modal that only says ``text`` (mrkdwn, cut to Slack's 3000 characters for a section)
    under ``title`` (cut to Slack's 24), with a Close button and nothing to submit."""
    return View(
        type="modal",
        title=PlainTextObject(text=truncate(title, 24)),
        close=PlainTextObject(text="Close"),
        blocks=[
            SectionBlock(
                block_id=block_id, text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))
            )
        ],
    )
