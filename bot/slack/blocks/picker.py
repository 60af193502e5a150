"""Block Kit for the GPU offer picker modal (pure functions from data to views).

The modal's ``private_metadata`` carries :class:`PickerState` as compact JSON (Slack limit 3000
characters, docs/SLACK_API.md §4); modals carry no channel of their own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    DividerBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    OptionGroup,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.formats import lifetime_label, mrkdwn_escape
from bot.slack.blocks.common import MAX_OPTION_TEXT, MAX_VIEW_BLOCKS, bounded_json, truncate
from bot.slack.blocks.templates import vram_line
from catalog import RankedOffer, Template
from storage import MAX_ROW_ID

CALLBACK_DEPLOY = "deploy_modal"
BLOCK_OFFER = "offer_block"
ACTION_OFFER = "gpu_offer"
BLOCK_DISK = "disk_block"
ACTION_DISK = "disk_gb"
BLOCK_CHANNEL = "channel_block"
ACTION_CHANNEL = "channel"
BLOCK_GPU_FILTER = "gpu_filter_block"
ACTION_GPU_FILTER = "gpu_filter"
BLOCK_MAX_PRICE = "max_price_block"
ACTION_MAX_PRICE = "max_price"
ACTION_REFRESH = "picker_refresh"
BLOCK_COST = "cost_block"
BLOCK_BUDGET = "budget_block"
BLOCK_LIFETIME = "lifetime_block"
ACTION_LIFETIME = "lifetime"
UNLIMITED = "unlimited"
"""The **Run for** option value of "Until I stop it" (:func:`lifetime_value` of None)."""
MAX_LIFETIME_VALUE_HOURS = 24 * 365
"""The largest **Run for** value :func:`parse_lifetime_value` accepts (hours; the same bound as
the configuration's lifetimes)."""

ANY_GPU = "any"
MIN_PRICE_FILTER = 0.01  # $/hour, the max-price input's bounds
MAX_PRICE_FILTER = 1000.0
HOURS_PER_DAY = 8
MAX_OPTIONS = 100
MAX_METADATA = 3000


@dataclass
class PickerState:
    """What the modal remembers between updates (``private_metadata``).

    ``template``: slug; ``channel``: where ``/templates`` was typed; ``gpu_name``/``max_dph``:
    the user's filters ($/hour); ``disk_gb``: disk the prices were searched with; ``models``:
    GPU models seen in the last unfiltered search (for the filter's options).
    """

    template: str
    channel: str | None = None
    gpu_name: str | None = None
    max_dph: float | None = None
    disk_gb: int | None = None
    models: list[str] = field(default_factory=list)

    def to_metadata(self) -> str:
        """Compact JSON within Slack's 3000-character limit (drops GPU models if needed)."""
        data = asdict(self)
        text = json.dumps(data, separators=(",", ":"))
        while len(text) > MAX_METADATA and data["models"]:
            data["models"] = data["models"][:-1]
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def from_metadata(cls, text: str) -> PickerState:
        """Parse ``private_metadata`` (untrusted: at most :data:`MAX_METADATA` characters of
        shallow JSON, :func:`bot.slack.blocks.common.bounded_json`); raises ``ValueError`` when it
        is
        not ours. Fields of the wrong type or out of range are dropped (``disk_gb`` only in
        1..``storage.MAX_ROW_ID``); the template slug is cut to 200 characters."""
        data = bounded_json(text or "{}", max_chars=MAX_METADATA)
        if not isinstance(data, dict) or not isinstance(data.get("template"), str):
            raise ValueError("not a picker state")
        max_dph = _finite(data.get("max_dph"))
        disk = data.get("disk_gb")
        return cls(
            template=data["template"][:200],
            channel=data.get("channel") if isinstance(data.get("channel"), str) else None,
            gpu_name=data.get("gpu_name") if isinstance(data.get("gpu_name"), str) else None,
            max_dph=max_dph if max_dph is not None and max_dph > 0 else None,
            disk_gb=(
                disk
                if isinstance(disk, int) and not isinstance(disk, bool) and 0 < disk <= MAX_ROW_ID
                else None
            ),
            models=[m for m in data.get("models") or [] if isinstance(m, str)][:50],
        )


def _finite(value: object) -> float | None:
    """``value`` as a finite float when it is a JSON number (not a boolean), else None; an
    integer too large for a float (JSON allows any number of digits) is None too."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class OfferChoice:
    """What a picker option's value carries: the offer id, the $/hour it showed, and its GPU
    model (so the submission can re-check the offer with a narrowed search and tell whether
    the price rose after the user saw it). ``price``/``gpu_name`` are None for a bare id."""

    offer_id: int
    price: float | None = None
    gpu_name: str | None = None


@dataclass(frozen=True)
class LifetimeChoice:
    """One **Run for** option: ``hours`` (None = until someone stops it) and its ``label``
    (≤ 75 characters, e.g. "8 hours")."""

    hours: float | None
    label: str

    @classmethod
    def for_hours(cls, hours: float | None) -> LifetimeChoice:
        """The choice with the standard label: "2 hours", "1 day", "3 days", "1 week",
        "Until I stop it" (other lengths: "1.5 hours", "36 hours")."""
        return cls(hours, lifetime_label(hours))


def lifetime_value(hours: float | None) -> str:
    """The option value of a run length: ``"8"``, ``"1.5"`` (hours, at most two decimals), or
    ``"unlimited"`` for None. Raises ``ValueError`` for a length that is not positive and
    finite."""
    if hours is None:
        return UNLIMITED
    if not math.isfinite(hours) or hours <= 0:
        raise ValueError(f"not a run length: {hours!r}")
    text = f"{round(hours, 2):.2f}".rstrip("0").rstrip(".")
    if text == "0":
        raise ValueError(f"run length below 0.01 h: {hours!r}")
    return text


def parse_lifetime_value(value: object) -> float | None:
    """Hours from a **Run for** option value (untrusted input): ``"8"`` → 8.0, ``"1.5"`` →
    1.5, ``"unlimited"`` → None (until someone stops it).

    Raises ``ValueError`` for anything else: missing, not a string, not plain ASCII digits
    with at most two decimals, zero, or above :data:`MAX_LIFETIME_VALUE_HOURS`. Whether the
    user may pick that length (maximum, unlimited allowed) is the caller's to check.
    """
    if value == UNLIMITED:
        return None
    if not isinstance(value, str):
        raise ValueError("no run length")
    match = re.fullmatch(r"[0-9]{1,4}(?:\.[0-9]{1,2})?", value)
    hours = float(value) if match else 0.0
    if not 0 < hours <= MAX_LIFETIME_VALUE_HOURS:
        raise ValueError(f"not a run length: {value[:20]!r}")
    return hours


def selectable_channel(channel: str | None) -> bool:
    """Whether ``channel`` can be preselected in the picker's conversations select, which is
    filtered to public and private channels: ids starting ``C`` or ``G``; never a DM (``D…``)
    or a user id (``U…``/``W…``)."""
    return bool(channel) and re.fullmatch(r"[CG][A-Z0-9]{2,30}", channel or "") is not None


def offer_value(ranked: RankedOffer) -> str:
    """An option's value: ``<offer id>@<dph_total shown>@<gpu_name>`` (≤ 150 characters,
    Slack's limit for an option value)."""
    offer = ranked.offer
    return f"{offer.id}@{offer.dph_total:.6f}@{offer.gpu_name[:100]}"


def parse_offer_value(value: Any) -> OfferChoice | None:
    """The :class:`OfferChoice` in an option value (untrusted input); a bare id is accepted.
    None when it is not an offer value."""
    text = str(value).strip() if value is not None else ""
    match = re.fullmatch(r"(\d{1,12})(?:@(\d{1,6}(?:\.\d{1,8})?)(?:@([^@]{1,100}))?)?", text)
    if match is None:
        return None
    price = float(match.group(2)) if match.group(2) else None
    return OfferChoice(int(match.group(1)), price, match.group(3))


def offer_label(ranked: RankedOffer) -> str:
    """``1× RTX 4090 · 24 GB · $0.367/h · Oregon, US`` (≤ 75 characters, Slack's option limit)."""
    offer = ranked.offer
    place = (offer.geolocation or "").strip(" ,") or "unknown location"
    text = (
        f"{offer.num_gpus}× {offer.gpu_name} · {offer.gpu_ram_gb:.0f} GB · "
        f"${offer.dph_total:.3f}/h · {place}"
    )
    return truncate(text, MAX_OPTION_TEXT)


def cost_text(ranked: RankedOffer | None, hours: float | None = None) -> str:
    """Estimated cost of the chosen offer per hour and per 8-hour day and, with ``hours`` (the
    chosen run length), for the whole run: "· $2.94 for the 8 h run"."""
    if ranked is None:
        return "Pick an offer to see its estimated cost."
    price = ranked.offer.dph_total
    reliability = ranked.offer.reliability
    extra = f" · reliability {reliability:.1%}" if reliability is not None else ""
    run = f" · ${price * hours:,.2f} for the {hours:g} h run" if hours is not None else ""
    return (
        f"*Estimated cost:* ${price:.3f} per hour · ${price * HOURS_PER_DAY:.2f} per "
        f"{HOURS_PER_DAY}-hour day{run} (GPU and disk; bandwidth is billed on top){extra}"
    )


def _lifetime_block(
    lifetimes: Sequence[LifetimeChoice], selected_hours: float | None, warning_minutes: float
) -> InputBlock:
    options = [
        Option(text=truncate(choice.label, MAX_OPTION_TEXT), value=lifetime_value(choice.hours))
        for choice in lifetimes[:MAX_OPTIONS]
    ]
    select = StaticSelectElement(
        action_id=ACTION_LIFETIME, placeholder="How long it runs", options=options
    )
    # None is a real choice here ("Until I stop it"), so match on the option value.
    wanted = lifetime_value(selected_hours)
    select.initial_option = next((o for o in options if o.value == wanted), None)
    return InputBlock(
        block_id=BLOCK_LIFETIME,
        label="Run for",
        hint=(
            f"The bot stops it then (you are asked {warning_minutes:g} min before, and can extend)."
        ),
        element=select,
        # The cost line and the budget text price the chosen run: redraw them on a change.
        dispatch_action=True,
    )


def _needs_section(template: Template, disk_gb: int, simulated: bool) -> SectionBlock:
    text = (
        f"*{mrkdwn_escape(template.name)}* needs {vram_line(template)} per GPU.\n"
        f"Prices include {disk_gb} GB of disk. Offers that meet the recommended VRAM come first."
    )
    if simulated:
        text += "\n:test_tube: *Simulated*: offers come from the built-in Vast.ai simulator."
    return SectionBlock(block_id="needs", text=MarkdownTextObject(text=text))


def _title(template: Template) -> PlainTextObject:
    return PlainTextObject(text=truncate(f"Deploy {template.name}", 24))


def _modal(
    template: Template,
    state: PickerState,
    blocks: list[Block],
    *,
    close: str = "Close",
    submit: str | None = None,
) -> View:
    """The picker's modal shell: callback ``deploy_modal`` and the state in private_metadata."""
    return View(
        type="modal",
        callback_id=CALLBACK_DEPLOY,
        title=_title(template),
        submit=PlainTextObject(text=submit) if submit else None,
        close=PlainTextObject(text=close),
        private_metadata=state.to_metadata(),
        blocks=blocks,
    )


def loading_view(template: Template, state: PickerState) -> View:
    """The placeholder opened at once with the trigger_id (trigger_ids expire after 3 s)."""
    return _modal(
        template,
        state,
        close="Cancel",
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=":hourglass_flowing_sand: Searching live GPU offers for "
                    f"*{mrkdwn_escape(template.name)}*…"
                )
            ),
            ContextBlock(elements=[MarkdownTextObject(text=vram_line(template))]),
        ],
    )


PRICE_STEPS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
"""The max-price choices ($/hour) of the no-offers view, where the filters are selects."""
ANY_PRICE = "any"


def _gpu_options(state: PickerState) -> tuple[list[Option], Option]:
    models = sorted(set(state.models) | ({state.gpu_name} if state.gpu_name else set()))
    any_option = Option(text="Any GPU model", value=ANY_GPU)
    options = [any_option] + [
        Option(text=truncate(model, MAX_OPTION_TEXT), value=model[:150]) for model in models[:99]
    ]
    initial = next((o for o in options if o.value == state.gpu_name), any_option)
    return options, initial


def _select_filter_blocks(state: PickerState) -> list[Block]:
    """The filters of the view without offers: selects in actions blocks, so the modal has no
    input block and needs no submit (Slack refuses a modal with an input block and no
    ``submit``: docs/SLACK_API.md §4, :mod:`bot.slack.limits`). **Search again** reads them
    from ``view.state.values`` as it reads the inputs."""
    options, initial = _gpu_options(state)
    any_price = Option(text="Any price", value=ANY_PRICE)
    steps = set(PRICE_STEPS) | ({state.max_dph} if state.max_dph is not None else set())
    prices = [any_price] + [
        Option(text=f"Up to ${step:g}/h", value=f"{step:.2f}") for step in sorted(steps)
    ]
    wanted = f"{state.max_dph:.2f}" if state.max_dph is not None else ANY_PRICE
    price_initial = next((o for o in prices if o.value == wanted), any_price)
    return [
        DividerBlock(),
        SectionBlock(
            block_id=BLOCK_GPU_FILTER,
            text=MarkdownTextObject(text="*GPU model*"),
            accessory=StaticSelectElement(
                action_id=ACTION_GPU_FILTER, options=options, initial_option=initial
            ),
        ),
        SectionBlock(
            block_id=BLOCK_MAX_PRICE,
            text=MarkdownTextObject(text="*Max price ($/hour)*"),
            accessory=StaticSelectElement(
                action_id=ACTION_MAX_PRICE, options=prices, initial_option=price_initial
            ),
        ),
        ActionsBlock(
            block_id="refresh_block",
            elements=[
                ButtonElement(
                    text="Search again", action_id=ACTION_REFRESH, value="refresh", style="primary"
                )
            ],
        ),
    ]


def _filter_blocks(state: PickerState) -> list[Block]:
    options, initial = _gpu_options(state)
    price_element = NumberInputElement(
        action_id=ACTION_MAX_PRICE,
        is_decimal_allowed=True,
        min_value=f"{MIN_PRICE_FILTER:.2f}",
        max_value=f"{MAX_PRICE_FILTER:.0f}",
        placeholder="e.g. 0.50",
    )
    if state.max_dph is not None:
        bounded = min(max(state.max_dph, MIN_PRICE_FILTER), MAX_PRICE_FILTER)
        price_element.initial_value = f"{bounded:.2f}"
    return [
        DividerBlock(),
        InputBlock(
            block_id=BLOCK_GPU_FILTER,
            label="GPU model",
            optional=True,
            element=StaticSelectElement(
                action_id=ACTION_GPU_FILTER, options=options, initial_option=initial
            ),
        ),
        InputBlock(
            block_id=BLOCK_MAX_PRICE,
            label="Max price ($/hour)",
            optional=True,
            element=price_element,
        ),
        ActionsBlock(
            block_id="refresh_block",
            elements=[
                ButtonElement(text="Search again", action_id=ACTION_REFRESH, value="refresh")
            ],
        ),
    ]


def prices_age_text(seconds: float | None) -> str | None:
    """How old a search is, for the picker: ``"Prices just fetched"`` (under 2 s), ``"Prices
    from 12 s ago"``, ``"Prices from 2 min 5 s ago"``; None for None."""
    if seconds is None:
        return None
    whole = int(max(0.0, seconds))
    if whole < 2:
        return "Prices just fetched"
    if whole < 60:
        return f"Prices from {whole} s ago"
    minutes, rest = divmod(whole, 60)
    return f"Prices from {minutes} min {rest} s ago" if rest else f"Prices from {minutes} min ago"


def picker_view(
    template: Template,
    state: PickerState,
    offers: Sequence[RankedOffer],
    *,
    simulated: bool,
    selected_offer_id: int | None = None,
    credit_warning: str | None = None,
    lifetimes: Sequence[LifetimeChoice] = (),
    lifetime_hours: float | None = None,
    lifetime_warning_minutes: float = 30,
    budget_text: str | None = None,
    prices_age_seconds: float | None = None,
) -> View:
    """The GPU picker: offers grouped by recommended/minimum VRAM, cost, disk, run length,
    channel, filters.

    ``offers`` is ranked best first (at most 100 shown, Slack's option limit); with no offers the
    modal says so and what to try, without a submit button and so without input blocks (the
    filters are selects there). ``lifetimes``: the **Run for**
    choices (no input without them), ``lifetime_hours`` the preselected one (None = "Until I
    stop it"; nothing is preselected when no choice matches) and the run the cost line prices;
    ``lifetime_warning_minutes``: how long before the end the owner is asked (for the hint).
    ``budget_text``: mrkdwn under the cost line
    (:func:`bot.slack.blocks.budgets.picker_budget_text`:
    the run's cost to its end, the budgets, whether it needs approval), in the section
    :data:`BLOCK_BUDGET`; the **Run for** select dispatches an action on change so the caller
    can redraw both. ``prices_age_seconds``: how old the search is (searches are shared for
    ``OFFER_CACHE_SECONDS``), said under the offers with a pointer to **Search again**.
    """
    disk_gb = state.disk_gb or template.disk_gb
    age = prices_age_text(prices_age_seconds)
    blocks: list[Block] = [_needs_section(template, disk_gb, simulated)]
    if not offers:
        filters = []
        if state.gpu_name:
            filters.append(f"GPU model {mrkdwn_escape(truncate(state.gpu_name, 100))}")
        if state.max_dph is not None:
            filters.append(f"max ${state.max_dph:g}/h")
        hint = (
            f"Your filters ({', '.join(filters)}) may be too narrow: widen them and search again."
            if filters
            else "GPUs come and go on Vast.ai: search again in a minute, or pick a template that "
            "needs less VRAM."
        )
        blocks.append(
            SectionBlock(
                block_id="no_offers",
                text=MarkdownTextObject(
                    text=f":mag: *No GPU offer fits {mrkdwn_escape(template.name)} right now.* "
                    + hint
                    + (f" _({age}.)_" if age else "")
                ),
            )
        )
        blocks += _select_filter_blocks(state)
        return _modal(template, state, blocks)

    shown = list(offers[:MAX_OPTIONS])
    recommended = [r for r in shown if r.meets_recommended]
    minimum = [r for r in shown if not r.meets_recommended]
    groups = []
    if recommended:
        groups.append(
            OptionGroup(
                label=f"Meets recommended VRAM (≥ {template.recommended_vram_gb} GB)",
                options=[Option(text=offer_label(r), value=offer_value(r)) for r in recommended],
            )
        )
    if minimum:
        groups.append(
            OptionGroup(
                label=f"Meets minimum VRAM (≥ {template.min_vram_gb} GB)",
                options=[Option(text=offer_label(r), value=offer_value(r)) for r in minimum],
            )
        )
    selected = next((r for r in shown if r.offer.id == selected_offer_id), None)
    select = StaticSelectElement(
        action_id=ACTION_OFFER, placeholder="Choose a GPU offer", option_groups=groups
    )
    if selected is not None:
        select.initial_option = Option(text=offer_label(selected), value=offer_value(selected))
    blocks.append(
        InputBlock(
            block_id=BLOCK_OFFER,
            label=f"GPU offer ({len(shown)} live, best first)",
            hint=f"{age}; press Search again below for fresh ones." if age else None,
            element=select,
            dispatch_action=True,
        )
    )
    run_hours = lifetime_hours if lifetimes else None
    blocks.append(
        ContextBlock(
            block_id=BLOCK_COST,
            elements=[MarkdownTextObject(text=cost_text(selected, run_hours))],
        )
    )
    if budget_text:
        blocks.append(
            SectionBlock(
                block_id=BLOCK_BUDGET,
                text=MarkdownTextObject(text=truncate(budget_text, 2900)),
            )
        )
    if credit_warning:
        blocks.append(
            SectionBlock(
                block_id="credit_warning",
                text=MarkdownTextObject(text=f":warning: {truncate(credit_warning, 2900)}"),
            )
        )
    blocks.append(
        InputBlock(
            block_id=BLOCK_DISK,
            label="Disk (GB)",
            hint=f"Between {template.disk_gb} and {template.max_disk_gb} GB.",
            element=NumberInputElement(
                action_id=ACTION_DISK,
                is_decimal_allowed=False,
                initial_value=str(disk_gb),
                min_value=str(template.disk_gb),
                max_value=str(template.max_disk_gb),
            ),
        )
    )
    if lifetimes:
        blocks.append(_lifetime_block(lifetimes, lifetime_hours, lifetime_warning_minutes))
    channel_select = ConversationSelectElement(
        action_id=ACTION_CHANNEL,
        default_to_current_conversation=True,
        filter=ConversationFilter(include=["public", "private"], exclude_bot_users=True),
    )
    if selectable_channel(state.channel):
        channel_select.initial_conversation = state.channel
    blocks.append(
        InputBlock(
            block_id=BLOCK_CHANNEL,
            label="Post status updates in",
            element=channel_select,
        )
    )
    blocks += _filter_blocks(state)
    assert len(blocks) <= MAX_VIEW_BLOCKS
    return _modal(template, state, blocks, close="Cancel", submit="Deploy")


def error_view(template: Template, state: PickerState, message: str) -> View:
    """Vast.ai down or rate limited: say so, with a button to try again."""
    return _modal(
        template,
        state,
        blocks=[
            SectionBlock(
                block_id="picker_error",
                text=MarkdownTextObject(
                    text=f":warning: *Could not load GPU offers.* {truncate(message, 2800)}"
                ),
            ),
            ActionsBlock(
                block_id="retry_block",
                elements=[
                    ButtonElement(
                        text="Try again", action_id=ACTION_REFRESH, value="retry", style="primary"
                    )
                ],
            ),
        ],
    )


def selected_values(view: dict[str, Any]) -> dict[str, Any]:
    """Read the picker's inputs from ``view.state.values`` (untrusted; no validation here, and
    any part of another shape reads as absent).

    Returns ``{"offer": str|None, "disk": str|None, "channel": str|None, "gpu": str|None,
    "max_price": str|None, "lifetime": str|None}`` (``lifetime``: the **Run for** option value,
    for :func:`parse_lifetime_value`; None when the modal has no such input).
    """
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None

    def get(block: str, action: str, key: str) -> Any:
        inputs = values.get(block) if isinstance(values, dict) else None
        element = inputs.get(action) if isinstance(inputs, dict) else None
        if not isinstance(element, dict):
            return None
        if key == "selected_option" or "selected_option" in element:
            option = element.get("selected_option")
            return option.get("value") if isinstance(option, dict) else None
        return element.get(key)

    return {
        "offer": get(BLOCK_OFFER, ACTION_OFFER, "selected_option"),
        "disk": get(BLOCK_DISK, ACTION_DISK, "value"),
        "channel": get(BLOCK_CHANNEL, ACTION_CHANNEL, "selected_conversation"),
        "gpu": get(BLOCK_GPU_FILTER, ACTION_GPU_FILTER, "selected_option"),
        "max_price": get(BLOCK_MAX_PRICE, ACTION_MAX_PRICE, "value"),
        "lifetime": get(BLOCK_LIFETIME, ACTION_LIFETIME, "selected_option"),
    }
