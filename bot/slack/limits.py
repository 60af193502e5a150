"""Slack's documented payload limits, checked in one place before anything is sent.

slack_sdk's model classes check each block's own lengths in ``to_dict()``, but not the rules
that span a payload (blocks per message, unique ``block_id``s, a modal with an input block
needs ``submit``), and raw dicts not at all. These pure functions check a message's ``blocks``
or a view (modal / Home tab) and return :class:`Violation`s worded and pointed as Slack's own
refusals are (``[ERROR] <message> [json-pointer:/blocks/0/text/text]``).

Sources: slack_sdk's Block Kit models, the node-slack-sdk types and api.slack.com's Block Kit
reference:

* blocks: 50 per message, 100 per modal or Home tab (api.slack.com/reference/block-kit/blocks);
* ``block_id`` ≤ 255 characters, unique within a message or view (same page);
* section text 1–3000, fields ≤ 10 of ≤ 2000 each; header text ≤ 150; markdown block ≤ 12,000;
* actions block ≤ 25 elements; context block ≤ 10 elements;
* button text ≤ 75, value ≤ 2000, url ≤ 3000; ``action_id`` ≤ 255, unique within its block;
* option text ≤ 75, value ≤ 150, description ≤ 75; ≤ 100 options or option groups; group
  label ≤ 75; placeholder ≤ 150; input label and hint ≤ 2000;
* confirm dialog: title ≤ 100, text ≤ 300, confirm and deny ≤ 30;
* modal: ``title`` 1–24, ``submit`` and ``close`` ≤ 24, ``submit`` required when an input
  block is present ("submit is required when an input block is within the blocks array"),
  ``private_metadata`` ≤ 3000, ``callback_id`` and ``external_id`` ≤ 255; a view above 250 kB
  is refused with ``view_too_large``;
* text objects must not be empty ("must be more than 0 characters").

Lengths are counted in characters (Python ``len``), as slack_sdk counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BLOCKS = 50
"""Blocks per message (api.slack.com/reference/block-kit/blocks)."""
MAX_VIEW_BLOCKS = 100
"""Blocks per modal or Home tab (same page; slack_sdk ``View.blocks_max_length``)."""
MAX_BLOCK_ID = 255
MAX_ACTION_ID = 255
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_MARKDOWN_TEXT = 12_000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_OPTION_DESCRIPTION = 75
MAX_OPTIONS = 100
MAX_GROUP_LABEL = 75
MAX_PLACEHOLDER = 150
MAX_INPUT_LABEL = 2000
MAX_INPUT_HINT = 2000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
MAX_VIEW_TITLE = 24
"""Modal ``title``, ``submit`` and ``close`` (slack_sdk ``View``; node-types ``views.ts``)."""
MAX_PRIVATE_METADATA = 3000
MAX_CALLBACK_ID = 255
MAX_EXTERNAL_ID = 255
MAX_VIEW_BYTES = 250_000
"""A view's size in bytes of JSON (api-ref views.*: ``view_too_large``)."""

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})
VIEW_METHODS = frozenset({"views.open", "views.update", "views.push", "views.publish"})


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` is a short name (e.g. ``button_value``), ``pointer`` the
    JSON pointer into the arguments (``/view/blocks/3/elements/0/value``), ``message`` Slack's
    wording (``must be less than 2001 characters``)."""

    rule: str
    pointer: str
    message: str

    def slack_message(self) -> str:
        """The line as Slack writes it in ``response_metadata.messages``."""
        return f"[ERROR] {self.message} [json-pointer:{self.pointer}]"


def _too_long(limit: int) -> str:
    return f"must be less than {limit + 1} characters"


def _text_of(value: Any) -> str | None:
    """The string of a text object (``{"type": "plain_text", "text": …}``) or a plain str."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        text = value.get("text")
        return text if isinstance(text, str) else None
    return None


class _Walker:
    def __init__(self) -> None:
        self.found: list[Violation] = []
        self.block_ids: set[str] = set()
        self.has_input = False

    def add(self, rule: str, pointer: str, message: str) -> None:
        self.found.append(Violation(rule, pointer, message))

    def length(
        self, rule: str, pointer: str, text: Any, limit: int, *, required: bool = False
    ) -> None:
        if text is None:
            if required:
                self.add(rule, pointer, "must provide a value")
            return
        if not isinstance(text, str):
            self.add(rule, pointer, "must be a string")
        elif len(text) > limit:
            self.add(rule, pointer, _too_long(limit))
        elif required and not text:
            self.add(rule, pointer, "must be more than 0 characters")

    def text_object(
        self, rule: str, pointer: str, obj: Any, limit: int, *, required: bool = True
    ) -> None:
        if obj is None:
            if required:
                self.add(rule, pointer, "must provide an object")
            return
        self.length(rule, pointer + "/text", _text_of(obj), limit, required=True)

    def confirm(self, pointer: str, confirm: Any) -> None:
        if not isinstance(confirm, Mapping):
            return
        self.text_object(
            "confirm_title", pointer + "/title", confirm.get("title"), MAX_CONFIRM_TITLE
        )
        self.text_object("confirm_text", pointer + "/text", confirm.get("text"), MAX_CONFIRM_TEXT)
        self.text_object(
            "confirm_button", pointer + "/confirm", confirm.get("confirm"), MAX_CONFIRM_BUTTON
        )
        self.text_object(
            "confirm_button", pointer + "/deny", confirm.get("deny"), MAX_CONFIRM_BUTTON
        )

    def option(self, pointer: str, option: Any) -> None:
        if not isinstance(option, Mapping):
            return
        self.text_object("option_text", pointer + "/text", option.get("text"), MAX_OPTION_TEXT)
        self.length("option_value", pointer + "/value", option.get("value"), MAX_OPTION_VALUE)
        self.text_object(
            "option_description",
            pointer + "/description",
            option.get("description"),
            MAX_OPTION_DESCRIPTION,
            required=False,
        )

    def element(self, pointer: str, element: Any) -> None:
        if not isinstance(element, Mapping):
            return
        kind = element.get("type")
        self.length("action_id", pointer + "/action_id", element.get("action_id"), MAX_ACTION_ID)
        self.text_object(
            "placeholder",
            pointer + "/placeholder",
            element.get("placeholder"),
            MAX_PLACEHOLDER,
            required=False,
        )
        self.confirm(pointer + "/confirm", element.get("confirm"))
        if kind == "button":
            self.text_object("button_text", pointer + "/text", element.get("text"), MAX_BUTTON_TEXT)
            self.length("button_value", pointer + "/value", element.get("value"), MAX_BUTTON_VALUE)
            self.length("button_url", pointer + "/url", element.get("url"), MAX_URL)
        for key in ("options", "option_groups"):
            items = element.get(key)
            if isinstance(items, list) and len(items) > MAX_OPTIONS:
                self.add(key, f"{pointer}/{key}", f"no more than {MAX_OPTIONS} items allowed")
        for i, option in enumerate(element.get("options") or []):
            self.option(f"{pointer}/options/{i}", option)
        for key in ("initial_option",):
            if element.get(key) is not None:
                self.option(f"{pointer}/{key}", element.get(key))
        for i, option in enumerate(element.get("initial_options") or []):
            self.option(f"{pointer}/initial_options/{i}", option)
        for g, group in enumerate(element.get("option_groups") or []):
            if not isinstance(group, Mapping):
                continue
            gp = f"{pointer}/option_groups/{g}"
            self.text_object(
                "option_group_label", gp + "/label", group.get("label"), MAX_GROUP_LABEL
            )
            options = group.get("options") or []
            if len(options) > MAX_OPTIONS:
                self.add("options", gp + "/options", f"no more than {MAX_OPTIONS} items allowed")
            for i, option in enumerate(options):
                self.option(f"{gp}/options/{i}", option)

    def block(self, pointer: str, block: Any) -> None:
        if not isinstance(block, Mapping):
            self.add("block", pointer, "must be an object")
            return
        kind = block.get("type")
        block_id = block.get("block_id")
        if block_id is not None:
            self.length("block_id", pointer + "/block_id", block_id, MAX_BLOCK_ID)
            if isinstance(block_id, str):
                if block_id in self.block_ids:
                    self.add("block_id_unique", pointer + "/block_id", "duplicate block_id")
                self.block_ids.add(block_id)
        if kind == "section":
            text, fields = block.get("text"), block.get("fields")
            if text is None and not fields:
                self.add("section_text", pointer, "must provide text or fields")
            self.text_object(
                "section_text", pointer + "/text", text, MAX_SECTION_TEXT, required=False
            )
            if isinstance(fields, list):
                if len(fields) > MAX_SECTION_FIELDS:
                    self.add(
                        "section_fields",
                        pointer + "/fields",
                        f"no more than {MAX_SECTION_FIELDS} items allowed",
                    )
                for i, item in enumerate(fields):
                    self.text_object("section_field", f"{pointer}/fields/{i}", item, MAX_FIELD_TEXT)
            if block.get("accessory") is not None:
                self.element(pointer + "/accessory", block.get("accessory"))
        elif kind == "header":
            self.text_object("header_text", pointer + "/text", block.get("text"), MAX_HEADER_TEXT)
        elif kind == "markdown":
            self.length("markdown_text", pointer + "/text", block.get("text"), MAX_MARKDOWN_TEXT)
        elif kind in ("actions", "context"):
            elements = block.get("elements")
            limit = MAX_ACTIONS_ELEMENTS if kind == "actions" else MAX_CONTEXT_ELEMENTS
            if not isinstance(elements, list) or not elements:
                self.add(f"{kind}_elements", pointer + "/elements", "must provide elements")
                return
            if len(elements) > limit:
                self.add(
                    f"{kind}_elements", pointer + "/elements", f"no more than {limit} items allowed"
                )
            action_ids: set[str] = set()
            for i, element in enumerate(elements):
                if kind == "context":
                    if isinstance(element, Mapping) and element.get("type") != "image":
                        self.text_object(
                            "context_text", f"{pointer}/elements/{i}", element, MAX_SECTION_TEXT
                        )
                    continue
                self.element(f"{pointer}/elements/{i}", element)
                action_id = element.get("action_id") if isinstance(element, Mapping) else None
                if isinstance(action_id, str):
                    if action_id in action_ids:
                        self.add(
                            "action_id_unique",
                            f"{pointer}/elements/{i}/action_id",
                            "duplicate action_id",
                        )
                    action_ids.add(action_id)
        elif kind == "input":
            self.has_input = True
            self.text_object("input_label", pointer + "/label", block.get("label"), MAX_INPUT_LABEL)
            self.text_object(
                "input_hint", pointer + "/hint", block.get("hint"), MAX_INPUT_HINT, required=False
            )
            self.element(pointer + "/element", block.get("element"))

    def blocks(self, pointer: str, blocks: Any, limit: int) -> None:
        if not isinstance(blocks, list):
            self.add("blocks", pointer, "must be an array")
            return
        if len(blocks) > limit:
            self.add("block_count", pointer, f"no more than {limit} items allowed")
        for i, block in enumerate(blocks):
            self.block(f"{pointer}/{i}", block)


def check_message_blocks(blocks: Any, *, pointer: str = "/blocks") -> list[Violation]:
    """The violations in a message's ``blocks`` (chat.postMessage / update / postEphemeral,
    ``respond``): at most :data:`MAX_MESSAGE_BLOCKS` blocks plus every per-block rule of the
    module docstring. An empty list means Slack's documented limits are met."""
    walker = _Walker()
    walker.blocks(pointer, blocks, MAX_MESSAGE_BLOCKS)
    return walker.found


def check_view(view: Any, *, pointer: str = "/view") -> list[Violation]:
    """The violations in a view (``type`` ``modal`` or ``home``): at most
    :data:`MAX_VIEW_BLOCKS` blocks, every per-block rule, and for a modal its title (1–24),
    submit/close (≤ 24), ``submit`` required with an input block, ``private_metadata`` ≤ 3000,
    ``callback_id``/``external_id`` ≤ 255; the whole view ≤ 250 kB of JSON."""
    walker = _Walker()
    if not isinstance(view, Mapping):
        walker.add("view", pointer, "must be an object")
        return walker.found
    walker.blocks(pointer + "/blocks", view.get("blocks") or [], MAX_VIEW_BLOCKS)
    kind = view.get("type")
    if kind == "modal":
        walker.text_object("view_title", pointer + "/title", view.get("title"), MAX_VIEW_TITLE)
        for key in ("submit", "close"):
            walker.text_object(
                f"view_{key}", f"{pointer}/{key}", view.get(key), MAX_VIEW_TITLE, required=False
            )
        if walker.has_input and not view.get("submit"):
            walker.add(
                "modal_submit_required",
                pointer + "/submit",
                "submit is required when an input block is within the blocks array",
            )
    elif kind != "home":
        walker.add("view_type", pointer + "/type", "must be one of modal, home")
    for key, limit in (
        ("private_metadata", MAX_PRIVATE_METADATA),
        ("callback_id", MAX_CALLBACK_ID),
        ("external_id", MAX_EXTERNAL_ID),
    ):
        walker.length(key, f"{pointer}/{key}", view.get(key), limit)
    if len(json.dumps(view, ensure_ascii=False).encode()) > MAX_VIEW_BYTES:
        walker.add("view_too_large", pointer, f"must be at most {MAX_VIEW_BYTES} bytes")
    return walker.found


def _decoded(value: Any) -> Any:
    """``blocks``/``view`` as sent: slack_sdk may pass them as JSON strings (form encoding)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def check_api_call(method: str, args: Mapping[str, Any] | None) -> list[Violation]:
    """The violations in the arguments of a Web API call: ``blocks`` of
    :data:`MESSAGE_METHODS`, ``view`` of :data:`VIEW_METHODS`; other methods pass."""
    if not args:
        return []
    if method in MESSAGE_METHODS and args.get("blocks") is not None:
        return check_message_blocks(_decoded(args["blocks"]))
    if method in VIEW_METHODS and args.get("view") is not None:
        return check_view(_decoded(args["view"]))
    return []


def refusal(method: str, violations: Sequence[Violation]) -> dict[str, Any]:
    """Slack's answer to such a call (docs/SLACK_API.md §1.5 and §4): ``invalid_blocks`` for
    messages, ``invalid_arguments`` for views, ``view_too_large`` for an oversized view, each
    line in ``response_metadata.messages``."""
    if any(v.rule == "view_too_large" for v in violations):
        error = "view_too_large"
    else:
        error = "invalid_arguments" if method in VIEW_METHODS else "invalid_blocks"
    messages = [v.slack_message() for v in violations]
    answer: dict[str, Any] = {"ok": False, "error": error}
    if error == "invalid_blocks":
        answer["errors"] = [f"{v.message} [json-pointer:{v.pointer}]" for v in violations]
    answer["response_metadata"] = {"messages": messages}
    return answer


def iter_rules(violations: Sequence[Violation]) -> Iterator[str]:
    """Each distinct rule name, in order (for a one-line log)."""
    seen: set[str] = set()
    for violation in violations:
        if violation.rule not in seen:
            seen.add(violation.rule)
            yield violation.rule
