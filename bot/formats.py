"""Text formats shared by Block Kit builders and services (pure: no Slack, no database).

Services write short mrkdwn answers (an action's outcome, the picker's credit warning) and
blocks render messages; both format money, durations and mentions the same way from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol


def mrkdwn_escape(text: str) -> str:
    """``text`` made inert inside Slack mrkdwn: ``&`` → ``&amp;``, ``<`` → ``&lt;``, ``>`` →
    ``&gt;``, Slack's three escapes (api.slack.com/reference/surfaces/formatting#escaping).

    Every text the bot did not write itself goes through this before it reaches a ``mrkdwn``
    text object or a message's ``text``: a template's name, description, category, image,
    volumes, launch command and env values (from a catalog file), Vast.ai's messages, notes
    people typed. Escaped, ``<!channel>`` cannot ping and ``<https://x|label>`` cannot link;
    Slack shows the characters as typed. Not for ``plain_text`` objects, which Slack shows
    as they are (there ``&lt;`` would show literally).
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class NamedDeployment(Protocol):
    """What :func:`deployment_ref` reads of a deployment (``storage.DeploymentRecord`` has it)."""

    @property
    def id(self) -> int: ...

    @property
    def template_name(self) -> str: ...


def deployment_ref(dep: NamedDeployment) -> str:
    """``*JupyterLab* (#12)``: a deployment named in mrkdwn, the template's name escaped
    (:func:`mrkdwn_escape`; it comes from a catalog file)."""
    return f"*{mrkdwn_escape(dep.template_name)}* (#{dep.id})"


def money(dollars: float) -> str:
    """``$0.83``; amounts under a cent keep three decimals (``$0.004``)."""
    if 0 < abs(dollars) < 0.01:
        return f"${dollars:.3f}"
    return f"${dollars:,.2f}"


def mentions(user_ids: Iterable[str]) -> str:
    """``<@U1>, <@U2> or <@U3>``; empty text for no users."""
    names = [f"<@{user}>" for user in sorted(user_ids)]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def format_duration(seconds: float) -> str:
    """``45s``, ``3m 05s``, ``2h 07m``, ``3d 4h`` (``seconds`` in seconds)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def format_elapsed(seconds: float) -> str:
    """Coarse elapsed time for progress lines, so the text changes at most once a minute:
    ``under a minute``, ``3 min`` (under 10 min), ``25 min`` (5-minute steps under an hour),
    ``1 h 15 min`` (15-minute steps)."""
    minutes = max(0, int(seconds)) // 60
    if minutes < 1:
        return "under a minute"
    if minutes < 10:
        return f"{minutes} min"
    if minutes < 60:
        return f"{minutes // 5 * 5} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest // 15 * 15:02d} min"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(when: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (integer arithmetic, no float rounding), for
    button values that name a moment (an end time, a question). A naive ``when`` is UTC."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def lifetime_label(hours: float | None) -> str:
    """A run length for people: ``"2 hours"``, ``"1 day"``, ``"3 days"``, ``"1 week"``,
    ``"1.5 hours"``; None → ``"Until I stop it"``."""
    if hours is None:
        return "Until I stop it"
    if hours == 168:
        return "1 week"
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


DATE_TOKEN = "{date_short_pretty} at {time}"
"""Default :func:`slack_date` token: "Dec 2 at 6:30 PM" (or "Today at …") in the reader's zone."""


def utc_text(when: datetime) -> str:
    """``Dec 2, 18:30 UTC``: plain text for places Slack does not format (fallbacks)."""
    when = (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)
    return f"{when:%b} {when.day}, {when:%H:%M} UTC"


def slack_date(when: datetime, token: str = DATE_TOKEN) -> str:
    """``<!date^EPOCH^TOKEN|Dec 2, 18:30 UTC>``: Slack shows ``when`` in each reader's own time
    zone (api.slack.com/reference/surfaces/formatting#date-formatting); clients that cannot
    format it show the UTC fallback. ``EPOCH`` is whole seconds (rounded down); ``token`` uses
    Slack's ``{date_short_pretty}``, ``{time}`` … and must not contain ``^``, ``|`` or ``>``."""
    if any(char in token for char in "^|>"):
        raise ValueError(f"not a Slack date token: {token!r}")
    epoch = micros(when) // 1_000_000
    return f"<!date^{epoch}^{token}|{utc_text(when)}>"
