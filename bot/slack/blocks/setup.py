"""Block Kit for ``/templates setup`` (pure): the workspace setup modal, reading its inputs
back, and the confirmation sentence.

The modal shows where the workspace's Vast.ai key stands ("key ending …a1b2", or that it runs
on the simulator), an optional input for a new key (never pre-filled), the workspace's extra bot
admins and approvers (multi_users_select), the digest channel (conversations_select), and the
approval threshold and run lengths (number inputs), each pre-filled with the current effective
value. Everything that comes back from Slack is untrusted: :func:`setup_values` only reads it;
the service validates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    PlainTextInputElement,
    SectionBlock,
    UserMultiSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.blocks.common import truncate

CALLBACK_SETUP = "workspace_setup"
BLOCK_KEY_STATE = "setup_key_state"
BLOCK_KEY = "setup_key_block"
ACTION_KEY = "setup_key"
BLOCK_ADMINS = "setup_admins_block"
ACTION_ADMINS = "setup_admins"
BLOCK_ALWAYS_ADMINS = "setup_always_admins"
BLOCK_APPROVERS = "setup_approvers_block"
ACTION_APPROVERS = "setup_approvers"
BLOCK_DIGEST = "setup_digest_block"
ACTION_DIGEST = "setup_digest"
BLOCK_APPROVAL_DPH = "setup_approval_dph_block"
ACTION_APPROVAL_DPH = "setup_approval_dph"
BLOCK_DEFAULT_LIFETIME = "setup_default_lifetime_block"
ACTION_DEFAULT_LIFETIME = "setup_default_lifetime"
BLOCK_MAX_LIFETIME = "setup_max_lifetime_block"
ACTION_MAX_LIFETIME = "setup_max_lifetime"

MAX_KEY_INPUT = 256
"""Characters the key input takes (a Vast.ai key is 64)."""
MAX_LIFETIME_HOURS = 24 * 365
MAX_APPROVAL_DPH = 10_000
MAX_SHOWN_PEOPLE = 100
"""Users pre-selected in a multi_users_select (more are not shown)."""
KEYS_URL = "https://cloud.vast.ai/manage-keys/"

NO_KEY_TEXT = "No key yet: this workspace runs on the simulator and every message says simulated."

KeySource = Literal["workspace", "env", "none"]


@dataclass(frozen=True)
class SetupForm:
    """What the setup modal shows (plain values; the listener fills them from the service).

    Attributes:
        key_source: ``workspace`` (keys entered here; ``key_hint`` None: none yet), ``env``
            (``VAST_API_KEY``), ``none`` (the simulator; no key can be entered here).
        key_hint: "key ending …a1b2", or None. vast_user_id: the key's Vast.ai account.
        admins: the workspace's extra bot admins (user ids). bot_admins: ``BOT_ADMINS``.
        approvers: who decides approvals (user ids; empty: the admins).
        digest_channel: channel id, or None. approval_dph: $/hour, or None (no threshold).
        default_lifetime_hours / max_lifetime_hours: hours.
    """

    key_source: KeySource
    key_hint: str | None
    vast_user_id: str | None
    admins: Sequence[str]
    bot_admins: Sequence[str]
    approvers: Sequence[str]
    digest_channel: str | None
    approval_dph: float | None
    default_lifetime_hours: float
    max_lifetime_hours: float


def _people(user_ids: Sequence[str]) -> str:
    """``<@U1>, <@U2>`` (sorted)."""
    return ", ".join(f"<@{user}>" for user in sorted(user_ids))


def _number(value: float) -> str:
    """``8`` / ``2.5`` / ``0.125`` for a number input (no exponent, no trailing zeros)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def key_state_text(form: SetupForm) -> str:
    """The Vast.ai key line of the modal (mrkdwn)."""
    account = f" (account #{form.vast_user_id})" if form.vast_user_id else ""
    if form.key_source == "env":
        hint = f", {form.key_hint}" if form.key_hint else ""
        return (
            f":key: *Vast.ai key:* from the bot's `VAST_API_KEY`{hint}. The environment wins: "
            "it is not set here."
        )
    if form.key_source == "none":
        return (
            ":warning: *Vast.ai key:* none. The bot runs on the simulator (`VAST_API_KEY` is "
            "unset) and every message says simulated; an operator sets `VAST_API_KEY`."
        )
    if form.key_hint:
        return f":key: *Vast.ai key:* {form.key_hint}{account}. Rentals go to that account."
    return f":warning: *Vast.ai key:* {NO_KEY_TEXT}"


def _people_select(action_id: str, people: Sequence[str], placeholder: str) -> Any:
    element = UserMultiSelectElement(action_id=action_id, placeholder=placeholder)
    if people:
        element.initial_users = sorted(people)[:MAX_SHOWN_PEOPLE]
    return element


def _hours_input(
    block_id: str, action_id: str, label: str, hint: str, initial: float
) -> InputBlock:
    return InputBlock(
        block_id=block_id,
        label=label,
        hint=hint,
        element=NumberInputElement(
            action_id=action_id,
            is_decimal_allowed=True,
            initial_value=_number(initial),
            min_value="0.1",
            max_value=str(MAX_LIFETIME_HOURS),
        ),
    )


def setup_view(form: SetupForm) -> View:
    """The setup modal (callback :data:`CALLBACK_SETUP`, title "Workspace setup", **Save** /
    **Cancel**; 11 blocks at most).

    Inputs (block ids): :data:`BLOCK_KEY` (only when ``form.key_source == "workspace"``;
    optional, empty), :data:`BLOCK_ADMINS`, :data:`BLOCK_APPROVERS`, :data:`BLOCK_DIGEST`,
    :data:`BLOCK_APPROVAL_DPH` (optional), :data:`BLOCK_DEFAULT_LIFETIME`,
    :data:`BLOCK_MAX_LIFETIME`, pre-filled with ``form``'s values.
    """
    blocks: list[Block] = [
        SectionBlock(block_id=BLOCK_KEY_STATE, text=MarkdownTextObject(text=key_state_text(form)))
    ]
    if form.key_source == "workspace":
        blocks.append(
            InputBlock(
                block_id=BLOCK_KEY,
                label="New Vast.ai API key",
                optional=True,
                hint=(
                    "Leave empty to keep the current key. A new key is checked with Vast.ai "
                    "before it is saved, stored encrypted and never shown again (only its last "
                    f"4 characters). Create one at {KEYS_URL}"
                ),
                element=PlainTextInputElement(
                    action_id=ACTION_KEY,
                    placeholder="Paste an API key from cloud.vast.ai",
                    max_length=MAX_KEY_INPUT,
                ),
            )
        )
    always = "the workspace's Slack owners and admins"
    if form.bot_admins:
        always += f", and {_people(form.bot_admins)} (BOT_ADMINS)"
    digest = ConversationSelectElement(
        action_id=ACTION_DIGEST,
        placeholder="No digest",
        filter=ConversationFilter(include=["public", "private"], exclude_bot_users=True),
    )
    if form.digest_channel:
        digest.initial_conversation = form.digest_channel
    dph = NumberInputElement(
        action_id=ACTION_APPROVAL_DPH,
        is_decimal_allowed=True,
        min_value="0",
        max_value=str(MAX_APPROVAL_DPH),
        placeholder="No price threshold",
    )
    if form.approval_dph is not None:
        dph.initial_value = _number(form.approval_dph)
    blocks += [
        DividerBlock(),
        InputBlock(
            block_id=BLOCK_ADMINS,
            label="Bot admins of this workspace",
            optional=True,
            hint="They may change this setup, budgets and anyone's deployments.",
            element=_people_select(ACTION_ADMINS, form.admins, "Add people"),
        ),
        ContextBlock(
            block_id=BLOCK_ALWAYS_ADMINS,
            elements=[MarkdownTextObject(text=truncate(f"Always bot admins: {always}.", 3000))],
        ),
        InputBlock(
            block_id=BLOCK_APPROVERS,
            label="Approvers",
            optional=True,
            hint="Who approves rentals that need approval. Empty: the bot admins.",
            element=_people_select(ACTION_APPROVERS, form.approvers, "The bot admins"),
        ),
        InputBlock(
            block_id=BLOCK_APPROVAL_DPH,
            label="Approval above ($ per hour)",
            optional=True,
            hint="Rentals above this price wait for an approver. Empty: the bot's default.",
            element=dph,
        ),
        InputBlock(
            block_id=BLOCK_DIGEST,
            label="Daily digest channel",
            optional=True,
            hint="Where the daily summary of running deployments goes. Empty: the default.",
            element=digest,
        ),
        _hours_input(
            BLOCK_DEFAULT_LIFETIME,
            ACTION_DEFAULT_LIFETIME,
            "Default run length (hours)",
            "What the picker's Run for starts at.",
            form.default_lifetime_hours,
        ),
        _hours_input(
            BLOCK_MAX_LIFETIME,
            ACTION_MAX_LIFETIME,
            "Longest run length (hours)",
            "The longest run people other than admins may choose.",
            form.max_lifetime_hours,
        ),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="A value equal to the bot's default follows the default when it "
                    "changes. Every change goes to `/templates audit`."
                )
            ]
        ),
    ]
    return View(
        type="modal",
        callback_id=CALLBACK_SETUP,
        title="Workspace setup",
        submit="Save",
        close="Cancel",
        blocks=blocks,
    )


def setup_values(view: dict[str, Any]) -> dict[str, Any]:
    """The modal's inputs from ``view.state.values`` (untrusted; not validated here).

    Returns a dict with a key for each input present in the state (an input missing from it,
    e.g. in a forged or older form, is left out, so it changes nothing): ``"key"`` (str | None),
    ``"admins"`` and ``"approvers"`` (list[str], ``[]`` when emptied), ``"digest_channel"``
    (str | None: emptied), ``"approval_dph"``, ``"default_lifetime_hours"`` and
    ``"max_lifetime_hours"`` (the number inputs' text, None when emptied).
    """
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    found: dict[str, Any] = {}

    def element(block: str, action: str) -> dict[str, Any] | None:
        inputs = values.get(block) if isinstance(values, dict) else None
        value = inputs.get(action) if isinstance(inputs, dict) else None
        return value if isinstance(value, dict) else None

    for name, block, action in (
        ("key", BLOCK_KEY, ACTION_KEY),
        ("approval_dph", BLOCK_APPROVAL_DPH, ACTION_APPROVAL_DPH),
        ("default_lifetime_hours", BLOCK_DEFAULT_LIFETIME, ACTION_DEFAULT_LIFETIME),
        ("max_lifetime_hours", BLOCK_MAX_LIFETIME, ACTION_MAX_LIFETIME),
    ):
        input_ = element(block, action)
        if input_ is not None:
            value = input_.get("value")
            found[name] = str(value) if value is not None else None
    for name, block, action in (
        ("admins", BLOCK_ADMINS, ACTION_ADMINS),
        ("approvers", BLOCK_APPROVERS, ACTION_APPROVERS),
    ):
        input_ = element(block, action)
        if input_ is not None:
            selected = input_.get("selected_users") or []
            found[name] = [str(user) for user in selected] if isinstance(selected, list) else []
    digest = element(BLOCK_DIGEST, ACTION_DIGEST)
    if digest is not None:
        channel = digest.get("selected_conversation")
        found["digest_channel"] = str(channel) if channel else None
    return found


def saved_text(form: SetupForm, *, key_saved: bool) -> str:
    """The confirmation after **Save** (mrkdwn): "Saved. Vast.ai key ending …a1b2 (account
    #1001)." when a key was saved, then the settings now in force."""
    account = f" (account #{form.vast_user_id})" if form.vast_user_id else ""
    if key_saved and form.key_hint:
        first = f":white_check_mark: Saved. Vast.ai {form.key_hint}{account}."
    else:
        first = ":white_check_mark: Saved the workspace setup."
    admins = _people(form.admins) if form.admins else "none"
    approvers = _people(form.approvers) if form.approvers else "the bot admins"
    dph = f"${form.approval_dph:,.2f}/h" if form.approval_dph is not None else "no threshold"
    digest = f"<#{form.digest_channel}>" if form.digest_channel else "none"
    lines = [
        first,
        f"• Extra bot admins: {admins}",
        f"• Approvers: {approvers} · approval above: {dph}",
        f"• Daily digest: {digest}",
        f"• Run length: {form.default_lifetime_hours:g} h by default, at most "
        f"{form.max_lifetime_hours:g} h",
    ]
    return truncate("\n".join(lines), 3000)
