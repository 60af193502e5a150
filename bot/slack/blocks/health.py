"""Block Kit for the bot's own health (pure): the DM bot admins get when the status poller
(the reconciler that follows every deployment) has been failing, and the one when it
recovered; the same for deployment steps that keep failing inside its passes. Times use
Slack's date formatting (:func:`bot.formats.slack_date`), durations
:func:`bot.formats.format_duration`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.formats import format_duration, slack_date
from bot.slack.blocks.common import message_payload


def poller_alert_message(
    *,
    down: bool,
    since: datetime,
    errors: bool,
    now: datetime,
    kind: Literal["poller", "rows"] = "poller",
) -> dict[str, Any]:
    """The admins' DM about the status poller: ``{"text", "blocks"}``.

    ``down``: ":rotating_light: The status poller has completed no pass since <date> (for 5m
    00s)…" (``errors``: "its passes have been ending in errors since <date>…"), with what waits
    meanwhile (status changes, ready notices, expiry and idle stops) and what to do (the bot's
    log; ``GET /healthz`` says why). Else ":white_check_mark: The status poller recovered: a
    pass completed at <date>…". ``since`` and ``now`` are aware UTC.

    ``kind="rows"`` (``errors`` unused): ``down``: ":warning: Deployment steps keep failing:
    since <date> (5m 00s) poller passes have hit errors on deployments…", that those
    deployments' automatic guards (deploy timeout, idle stop) may not apply, and to look at the
    log lines with "deployment <id>". Else ":white_check_mark: Deployment steps pass again…"
    (``since``: the last clean pass).
    """
    if kind == "rows":
        return _rows_alert_message(down=down, since=since, now=now)
    if down:
        how_long = format_duration((now - since).total_seconds())
        what = (
            f"its passes have been ending in errors since {slack_date(since)}"
            if errors
            else f"it has completed no pass since {slack_date(since)}"
        )
        text = (
            f":rotating_light: The status poller is failing: {what} ({how_long}). Deployments "
            "are not followed meanwhile: status changes, ready notices and the expiry and idle "
            "stops wait, so GPUs may bill longer than planned."
        )
        hint = (
            "Check the bot's log and `GET /healthz` (its `reason` says what is wrong). You get "
            "one more message when it recovers."
        )
        fallback = f"The status poller is failing ({how_long})"
    else:
        text = (
            f":white_check_mark: The status poller recovered: a pass completed at "
            f"{slack_date(since)}. Deployments are followed again; expiry and idle stops that "
            "came due meanwhile run now."
        )
        hint = "Nothing to do."
        fallback = "The status poller recovered"
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=text), block_id="poller_alert"),
        ContextBlock(elements=[MarkdownTextObject(text=hint)], block_id="poller_alert_hint"),
    ]
    return message_payload(blocks, fallback)


def _rows_alert_message(*, down: bool, since: datetime, now: datetime) -> dict[str, Any]:
    if down:
        how_long = format_duration((now - since).total_seconds())
        text = (
            f":warning: Deployment steps keep failing: since {slack_date(since)} ({how_long}) "
            "the status poller's passes have hit errors on one or more deployments. The other "
            "deployments are followed, but for the failing ones the automatic guards (deploy "
            "timeout, idle stop) may not apply, so their GPUs may bill longer than planned."
        )
        hint = (
            'Look at the bot\'s log lines with "deployment <id>" (e.g. `poller: deployment 42 '
            "not assessed`) to see which ones and why; `GET /healthz` shows `row_errors`. You "
            "get one more message when they clear."
        )
        fallback = f"Deployment steps keep failing ({how_long})"
    else:
        text = (
            ":white_check_mark: Deployment steps pass again: the status poller's passes no "
            f"longer hit errors on deployments (last clean pass {slack_date(since)}). Their "
            "automatic guards apply again."
        )
        hint = "Nothing to do."
        fallback = "Deployment steps pass again"
    blocks = [
        SectionBlock(text=MarkdownTextObject(text=text), block_id="rows_alert"),
        ContextBlock(elements=[MarkdownTextObject(text=hint)], block_id="rows_alert_hint"),
    ]
    return message_payload(blocks, fallback)
