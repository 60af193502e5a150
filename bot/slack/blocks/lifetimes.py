"""Block Kit for deployment lifetimes (pure): end times, the expiry and idle warnings, what the
bot did on its own, reminders, the daily digest and the unmanaged instances.

Times are written with Slack's date formatting (:func:`slack_date`), so every reader sees them
in their own time zone; plain-text places (notification text, headers) use UTC or the digest's
time zone. Buttons reuse the status message's Stop/Start/Destroy action ids
(:mod:`bot.slack.blocks.status`), so one listener handles them wherever they are clicked. The
**Extend** and **Keep running** buttons carry the end time / the question they answer in
microseconds (:func:`micros`), so a button from an older warning is recognised as stale.

What each message says arrives as the plain dataclasses of :mod:`bot.notices`, which the
services fill in (this package imports no services: import-linter).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.formats import micros, money, mrkdwn_escape, slack_date, utc_text
from bot.notices import (
    WORKSPACE,
    AutoAction,
    DigestData,
    DigestLine,
    ExpiryNotice,
    IdleNotice,
    Reminder,
    UnmanagedInstance,
    effective_end,
)
from bot.pricing import cost_until, current_rate, disk_per_day
from bot.slack.blocks.budgets import budget_bar
from bot.slack.blocks.common import (
    MAX_SECTION_TEXT,
    message_payload,
    truncate,
    valid_deployment_id,
)
from bot.slack.blocks.status import ACTION_START, ACTION_STOP, destroy_button
from storage import DeploymentRecord, DeploymentStatus

ACTION_EXTEND = "lifetime_extend"
"""Base action id of the **Extend N h** buttons. Slack refuses two buttons with the same
action id in one actions block, so each button's id is ``lifetime_extend:<hours>``
(:func:`extend_action_id`); listen with :data:`ACTION_EXTEND_PATTERN`. The value is
``<deployment id>:<hours>:<ends_at in µs>`` (:func:`extend_value`)."""
ACTION_EXTEND_PATTERN = re.compile(r"^lifetime_extend(?::[0-9]{1,4})?$")
"""Matches every **Extend** action id (and the bare :data:`ACTION_EXTEND`): for
``app.action(...)``."""
ACTION_KEEP_RUNNING = "idle_keep_running"
"""**Keep running** on the idle warning; value ``<deployment id>:<warned_at in µs>``."""

STOP = "stop"
DESTROY = "destroy"

MAX_EXTEND_BUTTONS = 5
MAX_DIGEST_LINES = 30
"""Deployments listed per digest section (running, stopped); the rest are counted."""
MAX_DIGEST_SECTIONS = 6
"""Section blocks per digest list, so the digest stays far below 50 blocks."""
MAX_DIGEST_SPENDERS = 50
MAX_UNMANAGED_LISTED = 20

_ACTIVE = (DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING, DeploymentStatus.READY)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_EXTEND_VALUE = re.compile(r"([1-9][0-9]{0,18}):([1-9][0-9]{0,3}):([0-9]{1,18})")
_KEEP_VALUE = re.compile(r"([1-9][0-9]{0,18}):([0-9]{1,18})")
_LINE_LIMIT = 600  # one digest/listing line, so a freak name cannot eat a whole section


# --- what the builders read (bot.services.ports' dataclasses fit these) ------------------


# --- times and button values -------------------------------------------------------------


def _aware(when: datetime) -> datetime:
    # Rows are aware UTC; a naive datetime is taken as UTC rather than as local time.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def from_micros(value: int) -> datetime:
    """Inverse of :func:`micros`: an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


def extend_action_id(hours: int) -> str:
    """Action id of the **Extend ``hours`` h** button: ``lifetime_extend:<hours>``."""
    return f"{ACTION_EXTEND}:{hours}"


def extend_value(deployment_id: int, hours: int, ends_at: datetime) -> str:
    """Value of an **Extend** button: ``<id>:<hours>:<micros(ends_at)>`` (≤ 44 characters)."""
    return f"{deployment_id}:{hours}:{micros(ends_at)}"


def parse_extend_value(value: str) -> tuple[int, int, int] | None:
    """``(deployment id, hours, ends_at in µs)`` from :func:`extend_value` (untrusted input:
    ASCII digits only, an id in 1..2**31 − 1 (:func:`bot.slack.blocks.common.valid_deployment_id`),
    hours in 1..9999, a representable time). None otherwise."""
    if not isinstance(value, str):
        return None
    match = _EXTEND_VALUE.fullmatch(value)
    if match is None:
        return None
    deployment_id, hours, issued = (int(group) for group in match.groups())
    if not valid_deployment_id(deployment_id) or issued > _MAX_MICROS:
        return None
    return deployment_id, hours, issued


def keep_value(deployment_id: int, warned_at: datetime) -> str:
    """Value of **Keep running**: ``<id>:<micros(warned_at)>``."""
    return f"{deployment_id}:{micros(warned_at)}"


def parse_keep_value(value: str) -> tuple[int, int] | None:
    """``(deployment id, warned_at in µs)`` from :func:`keep_value` (untrusted input; same
    rules as :func:`parse_extend_value`). None when malformed."""
    if not isinstance(value, str):
        return None
    match = _KEEP_VALUE.fullmatch(value)
    if match is None:
        return None
    deployment_id, warned = int(match.group(1)), int(match.group(2))
    if not valid_deployment_id(deployment_id) or warned > _MAX_MICROS:
        return None
    return deployment_id, warned


# --- small text pieces --------------------------------------------------------------------


def span(seconds: float) -> str:
    """A human length of time: ``under a minute``, ``45 min``, ``5 h``, ``1 h 15 min``,
    ``4 days``, ``1 d 3 h`` (``seconds`` in seconds, rounded down to the minute)."""
    minutes = max(0, int(seconds // 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = divmod(hours, 24)
    if hours == 0:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{days} d {hours} h"


def _in(seconds: float) -> str:
    # Rounded up: a warning 29.5 minutes ahead says "in 30 min", never "in 29 min" too early.
    if seconds <= 0:
        return "now"
    return "in " + span(math.ceil(seconds / 60) * 60)


def _hours(hours: float) -> str:
    return f"{hours:g} h"


def _name(dep: DeploymentRecord) -> str:
    """``*JupyterLab* (#12)``."""
    return f"*{mrkdwn_escape(truncate(dep.template_name, 100))}* (#{dep.id})"


def _gpus(dep: DeploymentRecord) -> str:
    """``1× RTX 4090`` (no VRAM: the short form for sentences and digest lines)."""
    return f"{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 60))}"


def cost_by_end(dep: DeploymentRecord, now: datetime) -> float | None:
    """Dollars ``dep`` will have cost at its end if it keeps its current price:
    :func:`bot.pricing.cost_so_far` at ``now`` + ``dph_total`` × hours from ``now`` to
    :func:`bot.notices.effective_end` (never negative). None without an end time."""
    end = effective_end(dep)
    return None if end is None else cost_until(dep, now, end)


def ends_line(dep: DeploymentRecord, now: datetime, *, action: str = STOP) -> str | None:
    """The end-time line (mrkdwn) of an active deployment (creating, provisioning, ready):

    ``:alarm_clock: Stops at <slack_date> · ≈ $X.XX by then`` (``Destroyed at`` when the bot
    destroys at the end, ``action="destroy"``; $ from :func:`cost_by_end`), or
    ``:infinity: Runs until someone stops it`` without ``ends_at``. None when stopped or ended.
    """
    if dep.status not in _ACTIVE:
        return None
    total = cost_by_end(dep, now)
    end = effective_end(dep)
    if end is None or total is None:
        return ":infinity: Runs until someone stops it"
    verb = "Destroyed at" if action == DESTROY else "Stops at"
    return f":alarm_clock: {verb} {slack_date(end)} · ≈ {money(total)} by then"


def _stop_button(dep: DeploymentRecord, text: str = "Stop") -> ButtonElement | None:
    # Stop only makes sense on a running GPU (the manage service refuses it otherwise).
    if dep.status != DeploymentStatus.READY:
        return None
    return ButtonElement(text=text, action_id=ACTION_STOP, value=str(dep.id))


def _actions(block_id: str, buttons: Sequence[ButtonElement | None]) -> list[Block]:
    elements = [button for button in buttons if button is not None]
    return [ActionsBlock(block_id=block_id, elements=elements)] if elements else []


def _section(text: str, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(
        block_id=block_id, text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))
    )


def _context(text: str, block_id: str | None = None) -> ContextBlock:
    return ContextBlock(
        block_id=block_id,
        elements=[MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))],
    )


# --- the expiry warning ------------------------------------------------------------------


def _expiry_buttons(
    dep: DeploymentRecord, notice: ExpiryNotice, now: datetime
) -> list[ButtonElement | None]:
    buttons: list[ButtonElement | None] = []
    primary_given = False
    for hours in list(notice.extend_hours)[:MAX_EXTEND_BUTTONS]:
        admin_only = hours in notice.needs_admin
        button = ButtonElement(
            text=f"Extend {hours} h" + (" (admin)" if admin_only else ""),
            action_id=extend_action_id(hours),
            value=extend_value(dep.id, hours, notice.issued_for or notice.ends_at),
        )
        if not admin_only and not primary_given:
            button.style = "primary"  # the answer most owners want
            primary_given = True
        buttons.append(button)
    buttons.append(_stop_button(dep, "Stop now"))
    buttons.append(destroy_button(dep, now))
    return buttons


def _expiry_outcome(dep: DeploymentRecord, notice: ExpiryNotice) -> str:
    if notice.action == DESTROY:
        return "the bot will destroy it with its disk (its files are lost)"
    return (
        "the bot will stop it (the disk is kept, about "
        f"{money(disk_per_day(dep))}/day, so no work is lost)"
    )


def _expiry_verb(notice: ExpiryNotice) -> str:
    return "ends" if notice.action == DESTROY else "stops"


def _admins_line(notice: ExpiryNotice) -> str | None:
    if not notice.needs_admin:
        return None
    if not notice.admins:
        return (
            "Extending past the maximum needs a bot admin; no bot admins are configured "
            "(`BOT_ADMINS`)."
        )
    names = ", ".join(f"<@{admin}>" for admin in sorted(notice.admins))
    return f"Extending past the maximum needs a bot admin: {names}"


def expiry_warning_message(
    dep: DeploymentRecord, notice: ExpiryNotice, *, now: datetime
) -> dict[str, Any]:
    """The DM before ``dep`` ends: ``{"text", "blocks"}``.

    ":hourglass: *JupyterLab* (#12) on 1× RTX 4090 stops at <date> (in 30 min) — the bot will
    stop it (…) / destroy it …. ≈ $X by then." Buttons: **Extend N h** for each of
    ``notice.extend_hours`` (those in ``needs_admin`` marked "(admin)", with a context line
    naming the admins), **Stop now** (while ready) and **Destroy** (with a confirmation).
    """
    left = (notice.ends_at - now).total_seconds()
    text = (
        f":hourglass: {_name(dep)} on {_gpus(dep)} {_expiry_verb(notice)} at "
        f"{slack_date(notice.ends_at)} ({_in(left)}) — {_expiry_outcome(dep, notice)}. "
        f"≈ {money(notice.cost_by_end)} by then."
    )
    blocks: list[Block] = [_section(text, f"lt_expiry_{dep.id}")]
    blocks += _actions(f"lt_expiry_actions_{dep.id}", _expiry_buttons(dep, notice, now))
    admins = _admins_line(notice)
    if admins:
        blocks.append(_context(admins, f"lt_expiry_admins_{dep.id}"))
    fallback = (
        f"{mrkdwn_escape(dep.template_name)} (#{dep.id}) {_expiry_verb(notice)} at "
        f"{utc_text(notice.ends_at)}"
    )
    return message_payload(blocks, fallback)


def expiry_note_message(
    dep: DeploymentRecord, notice: ExpiryNotice, *, now: datetime
) -> dict[str, Any]:
    """The short thread version of :func:`expiry_warning_message`: one section and the same
    buttons. ``{"text", "blocks"}``."""
    left = (notice.ends_at - now).total_seconds()
    text = (
        f":hourglass: {_expiry_verb(notice).capitalize()} at {slack_date(notice.ends_at)} "
        f"({_in(left)}): {_expiry_outcome(dep, notice)}. ≈ {money(notice.cost_by_end)} by then."
    )
    if notice.needs_admin:
        text += " Extending past the maximum needs a bot admin."
    blocks: list[Block] = [_section(text, f"lt_expiry_note_{dep.id}")]
    blocks += _actions(f"lt_expiry_note_actions_{dep.id}", _expiry_buttons(dep, notice, now))
    fallback = (
        f"{mrkdwn_escape(dep.template_name)} {_expiry_verb(notice)} at {utc_text(notice.ends_at)}"
    )
    return message_payload(blocks, fallback)


# --- the idle warning ---------------------------------------------------------------------


def idle_warning_message(
    dep: DeploymentRecord, notice: IdleNotice, *, now: datetime
) -> dict[str, Any]:
    """The DM about an idle GPU: ``{"text", "blocks"}``.

    ":zzz: The GPU of *JupyterLab* (#12) has been idle for 1 h (GPU 2 %), $2.10 so far.
    Unless you answer, the bot stops it at <date>." Buttons: **Keep running** (primary; value
    :func:`keep_value` of ``warned_at``), **Stop** (while ready), **Destroy** (confirmed).
    """
    idle = span((now - notice.idle_since).total_seconds())
    does = "destroys it (and its disk)" if notice.action == DESTROY else "stops it"
    text = (
        f":zzz: The GPU of {_name(dep)} has been idle for {idle} "
        f"(GPU {notice.gpu_util:.0f} %), {money(notice.cost_so_far)} so far. "
        f"Unless you answer, the bot {does} at {slack_date(notice.acts_at)}."
    )
    keep = ButtonElement(
        text="Keep running",
        action_id=ACTION_KEEP_RUNNING,
        value=keep_value(dep.id, notice.warned_at),
        style="primary",
    )
    blocks: list[Block] = [_section(text, f"lt_idle_{dep.id}")]
    blocks += _actions(
        f"lt_idle_actions_{dep.id}", [keep, _stop_button(dep), destroy_button(dep, now)]
    )
    blocks.append(
        _context(
            f"*Keep running*: no idle checks for the next {_hours(notice.snooze_hours)}. "
            f"*Stop* keeps the disk (about {money(disk_per_day(dep))}/day); "
            "*Destroy* deletes it and ends all billing.",
            f"lt_idle_ctx_{dep.id}",
        )
    )
    fallback = f"The GPU of {mrkdwn_escape(dep.template_name)} (#{dep.id}) has been idle for {idle}"
    return message_payload(blocks, fallback)


# --- what the bot did on its own ----------------------------------------------------------

_REASONS = {
    "expiry": "its lifetime ended",
    "idle": "its GPU was idle and nobody answered",
}


def auto_action_text(dep: DeploymentRecord, done: AutoAction) -> str:
    """mrkdwn for the thread and the owner's DM after the bot stopped or destroyed ``dep``:

    ":double_vertical_bar: Stopped automatically: its lifetime ended. *JupyterLab* (#12) keeps
    its disk, so no work is lost; it still costs about $0.30/day. *Start* brings it back.
    Total so far $12.40." — or ":wastebasket: Destroyed automatically: its lifetime ended.
    The instance of *JupyterLab* (#12) and its disk are gone; billing has stopped. Total
    $12.40." (an unknown ``reason`` gives no reason clause; ``exited`` quotes Vast.ai's
    ``status_msg``, escaped for mrkdwn).
    """
    why = _REASONS.get(done.reason)
    if done.reason == "exited":
        msg = " ".join((dep.status_msg or "").split()) or "exited"
        why = (
            f"its app's container exited (Vast.ai: {mrkdwn_escape(truncate(msg, 300))}) while "
            "Vast.ai still held its GPU"
        )
    because = f": {why}" if why else ""
    if done.action == DESTROY:
        return (
            f":wastebasket: Destroyed automatically{because}. The instance of {_name(dep)} and "
            f"its disk are gone; billing has stopped. Total {money(done.total)}."
        )
    disk = (
        f"it still costs about {money(done.disk_per_day)}/day"
        if done.disk_per_day is not None
        else "the disk still bills a little"
    )
    return (
        f":double_vertical_bar: Stopped automatically{because}. {_name(dep)} keeps its disk, "
        f"so no work is lost; {disk}. *Start* brings it back. Total so far {money(done.total)}."
    )


def auto_action_message(
    dep: DeploymentRecord, done: AutoAction, *, now: datetime
) -> dict[str, Any]:
    """:func:`auto_action_text` as ``{"text", "blocks"}``, with **Start**/**Destroy** after a
    stop (so a DM can act without finding the status message)."""
    text = auto_action_text(dep, done)
    blocks: list[Block] = [_section(text, f"lt_auto_{dep.id}")]
    if done.action != DESTROY:
        blocks += _actions(f"lt_auto_actions_{dep.id}", _start_buttons(dep, now))
    return message_payload(blocks, text)


def _start_buttons(dep: DeploymentRecord, now: datetime) -> list[ButtonElement | None]:
    start = None
    if dep.status == DeploymentStatus.STOPPED:
        start = ButtonElement(
            text="Start", action_id=ACTION_START, value=str(dep.id), style="primary"
        )
    return [start, destroy_button(dep, now)]


# --- reminders ----------------------------------------------------------------------------


def reminder_message(dep: DeploymentRecord, reminder: Reminder, *, now: datetime) -> dict[str, Any]:
    """A non-urgent DM: ``{"text", "blocks"}``.

    ``kind == "stopped"``: ":floppy_disk: *JupyterLab* (#12) has been stopped for 4 days and
    still pays for its 60 GB disk: $1.20 so far, about $9.00/month." with **Start**/**Destroy**.
    Any other kind is the running reminder: ":stopwatch: *vLLM* (#7) has been running for
    1 d 3 h, $30.10 so far." and its :func:`ends_line`, with **Stop**/**Destroy**.
    """
    length = span((now - reminder.since).total_seconds())
    if reminder.kind == "stopped":
        monthly = (
            f", about {money(reminder.per_month)}/month" if reminder.per_month is not None else ""
        )
        text = (
            f":floppy_disk: {_name(dep)} has been stopped for {length} and still pays for its "
            f"{dep.disk_gb:g} GB disk: {money(reminder.cost_so_far)} so far{monthly}."
        )
        buttons = _start_buttons(dep, now)
        hint = (
            "*Start* gets the GPU back if the machine still has it free; *Destroy* deletes the "
            "disk and ends all billing."
        )
    else:
        text = (
            f":stopwatch: {_name(dep)} has been running for {length}, "
            f"{money(reminder.cost_so_far)} so far."
        )
        line = ends_line(dep, now)
        if line:
            text += "\n" + line
        buttons = [_stop_button(dep), destroy_button(dep, now)]
        hint = "*Stop* keeps the disk (it still bills a little); *Destroy* deletes it."
    blocks: list[Block] = [_section(text, f"lt_reminder_{dep.id}")]
    blocks += _actions(f"lt_reminder_actions_{dep.id}", buttons)
    blocks.append(_context(hint, f"lt_reminder_ctx_{dep.id}"))
    fallback = (
        f"{mrkdwn_escape(dep.template_name)} (#{dep.id}) has been {reminder.kind} for {length}"
    )
    return message_payload(blocks, fallback)


# --- unmanaged instances -----------------------------------------------------------------


def _instances(count: int) -> str:
    return f"{count} instance{'s' if count != 1 else ''}"


def unmanaged_text(instances: Sequence[UnmanagedInstance]) -> str | None:
    """For admins: ":warning: Unmanaged: 2 instances, $1.10/h — rented outside the bot, which
    never stops or destroys them: #123 1× RTX 4090 $0.40/h running, …" (at most
    :data:`MAX_UNMANAGED_LISTED` listed, ≤ 3000 characters; $/h is the sum of their
    ``dph_total``). None when there are none."""
    if not instances:
        return None
    total = sum(i.dph_total for i in instances)
    items = [
        f"#{i.id} {i.num_gpus}× {mrkdwn_escape(truncate(i.gpu_name, 40))} "
        f"{money(i.dph_total)}/h {mrkdwn_escape(truncate(i.status, 20))}"
        for i in instances[:MAX_UNMANAGED_LISTED]
    ]
    rest = len(instances) - len(items)
    if rest > 0:
        items.append(f"…and {rest} more")
    text = (
        f":warning: Unmanaged: {_instances(len(instances))}, {money(total)}/h — rented "
        "outside the bot, which never stops or destroys them: " + ", ".join(items)
    )
    return truncate(text, MAX_SECTION_TEXT)


# --- the daily digest ---------------------------------------------------------------------


def _packed(title: str, lines: Sequence[str]) -> list[Block]:
    """``title`` and ``lines`` as mrkdwn sections of at most 3000 characters each: at most
    :data:`MAX_DIGEST_LINES` lines in :data:`MAX_DIGEST_SECTIONS` sections, then
    "…and N more"."""
    budget = MAX_SECTION_TEXT - 40  # room for the "…and N more" line
    texts = [title]
    shown = 0
    for line in lines[:MAX_DIGEST_LINES]:
        line = truncate(line, _LINE_LIMIT)
        if len(texts[-1]) + 1 + len(line) <= budget:
            texts[-1] += "\n" + line
        elif len(texts) < MAX_DIGEST_SECTIONS:
            texts.append(line)
        else:
            break
        shown += 1
    rest = len(lines) - shown
    if rest > 0:
        texts[-1] += f"\n…and {rest} more"
    return [_section(text) for text in texts]


def _running_line(line: DigestLine, now: datetime) -> str:
    dep = line.dep
    since = (now - dep.last_state_change_at).total_seconds()
    if dep.status == DeploymentStatus.READY:
        up = f"up {span(since)}"
    else:  # still starting: how long it has been trying
        up = f"{dep.status.value} {span((now - dep.created_at).total_seconds())}"
    end = effective_end(dep)
    ends = f"stops {slack_date(end)}" if end is not None else "no end time"
    return (
        f"<@{dep.user_id}> · *{mrkdwn_escape(truncate(dep.template_name, 60))}* #{dep.id} · "
        f"{_gpus(dep)} · {money(dep.dph_total)}/h · {up} · {ends} · {money(line.cost_so_far)}"
    )


def _stopped_line(line: DigestLine, now: datetime) -> str:
    dep = line.dep
    since = dep.stopped_at or dep.last_state_change_at
    return (
        f"<@{dep.user_id}> · *{mrkdwn_escape(truncate(dep.template_name, 60))}* #{dep.id} · "
        f"{dep.disk_gb:g} GB disk · stopped {span((now - since).total_seconds())} · "
        f"{money(disk_per_day(dep))}/day · {money(line.cost_so_far)}"
    )


def _local_day(now: datetime, tz: str) -> str:
    zone: tzinfo = UTC  # a bad DIGEST_TIMEZONE must not lose the digest: UTC then
    with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
        zone = ZoneInfo(tz)
    local = _aware(now).astimezone(zone)
    return f"{local:%a}, {local:%b} {local.day}"


def digest_message(data: DigestData) -> dict[str, Any]:
    """The daily digest for a channel: ``{"text", "blocks"}`` (at most 25 blocks).

    Header "GPU digest · Wed, Dec 2" (in ``data.tz``), a one-line summary, then "Running (N) ·
    $X/h" (one line per deployment: owner, template and id, GPUs, $/h, uptime, end time, cost
    so far), "Stopped (N) · disk $X/day", "This month (December 2026)" spend per person
    (largest first), when any "Budgets (December 2026)" ("• Workspace: <bar>", "• <@U>:
    <bar>", :func:`bot.slack.blocks.budgets.budget_bar`, as ``data.budgets`` orders them) and the
    unmanaged instances (count and $/h only). Long lists are cut (:data:`MAX_DIGEST_LINES`)
    and the rest counted.
    """
    now = data.now
    burn = sum(current_rate(line.dep) for line in data.running)
    disk_day = sum(disk_per_day(line.dep) for line in data.stopped)
    month_total = sum(dollars for _, dollars in data.spend)
    blocks: list[Block] = [
        HeaderBlock(text=truncate(f"GPU digest · {_local_day(now, data.tz)}", 150)),
        _context(
            f"{len(data.running)} running · {money(burn)}/h now · {len(data.stopped)} stopped "
            f"· {money(month_total)} in {data.month_label}"
        ),
    ]
    if data.running:
        blocks += _packed(
            f"*Running ({len(data.running)}) · {money(burn)}/h*",
            [_running_line(line, now) for line in data.running],
        )
    else:
        blocks.append(_section("Nothing is running."))
    if data.stopped:
        blocks.append(DividerBlock())
        blocks += _packed(
            f"*Stopped ({len(data.stopped)}) · disk {money(disk_day)}/day*",
            [_stopped_line(line, now) for line in data.stopped],
        )
    blocks.append(DividerBlock())
    spenders = sorted(data.spend, key=lambda item: (-item[1], item[0]))
    entries = [f"<@{user}> {money(dollars)}" for user, dollars in spenders[:MAX_DIGEST_SPENDERS]]
    if len(spenders) > MAX_DIGEST_SPENDERS:
        entries.append(f"…and {len(spenders) - MAX_DIGEST_SPENDERS} more")
    month = f"*This month ({data.month_label})* · {money(month_total)}\n"
    month += " · ".join(entries) if entries else "Nothing spent yet."
    blocks.append(_section(month))
    if data.budgets:
        blocks += _packed(
            f"*Budgets ({data.month_label})*",
            [
                f"• {'Workspace' if line.subject == WORKSPACE else f'<@{line.subject}>'}: "
                f"{budget_bar(line)}"
                for line in data.budgets
            ],
        )
    if data.unmanaged:
        total = sum(i.dph_total for i in data.unmanaged)
        blocks.append(
            _section(
                f":warning: Unmanaged: {_instances(len(data.unmanaged))}, {money(total)}/h "
                "(rented outside the bot; never touched by it)"
            )
        )
    blocks.append(
        _context(
            "Times are in your time zone. Costs: hours running × the offer's $/h, plus an "
            "estimate for disks while stopped."
        )
    )
    fallback = (
        f"GPU digest: {len(data.running)} running at {money(burn)}/h, "
        f"{len(data.stopped)} stopped, {money(month_total)} in {data.month_label}"
    )
    return message_payload(blocks, fallback)
