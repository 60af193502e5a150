"""The cost export for finance: ``/templates costs export [YYYY-MM]`` sends a workspace's bot
admin a CSV of a month's spend, one row per deployment (so per person too), as a file in
their DM.

The figures are those of ``/templates costs`` (:meth:`bot.services.listings.ListingService.
month_costs`, :mod:`bot.pricing`): each person's rows add up to their line of that report.
Every cell is escaped against formula injection (a template name, say, that begins with
``=``, ``+``, ``-`` or ``@`` would run as a formula in a spreadsheet: OWASP, "CSV Injection",
https://owasp.org/www-community/attacks/CSV_Injection): such a cell gets a leading ``'``.

The file goes up with Slack's ``files.getUploadURLExternal`` + upload +
``files.completeUploadExternal`` (https://api.slack.com/methods/files.getUploadURLExternal),
which need the ``files:write`` bot scope; without it Slack answers ``missing_scope`` and the
admin is told to reinstall the app.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from bot import pricing
from bot.services.listings import ListingService
from bot.services.ports import FileSender

#: The CSV's columns, in order.
COLUMNS = (
    "deployment id",
    "template",
    "person",
    "GPU",
    "$/hour",
    "hours ready",
    "compute $",
    "disk $",
    "total $",
    "status",
    "started",
    "ended",
)
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class MonthError(ValueError):
    """The month asked for is not ``YYYY-MM`` or has not begun; ``str()`` is the answer for
    the person (what went wrong, what to type)."""


def parse_month(text: str, now: datetime) -> datetime:
    """The first instant (aware UTC) of the month ``text`` names (``YYYY-MM``, e.g.
    ``2026-11``); ``now``'s month when ``text`` is empty.

    Raises:
        MonthError: not ``YYYY-MM``, no such month, or a month after ``now``'s.
    """
    text = text.strip()
    current = pricing.month_window(now)[0]
    if not text:
        return current
    match = _MONTH.fullmatch(text)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise MonthError(
            f"`{text[:20]}` is not a month. Type `/templates costs export` for this month or "
            "`/templates costs export 2026-11` for another one (year-month)."
        )
    start = datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)
    if start > current:
        raise MonthError(f"{start:%Y-%m} has not begun yet: there are no costs to export.")
    return start


def escape_cell(value: str) -> str:
    """``value`` safe in a spreadsheet: a leading ``'`` when it begins with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return (which a spreadsheet would read as a formula)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value is not None else ""


def csv_text(rows: Iterable[pricing.DeploymentCost]) -> str:
    """The CSV (RFC 4180, ``\\r\\n`` line ends, a header row of :data:`COLUMNS`) of ``rows``:
    dollars to the cent ($/hour to 1/10,000), hours to 1/100, times ``YYYY-MM-DD HH:MM`` UTC
    (``ended`` empty while it runs); every cell escaped by :func:`escape_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        dep = row.dep
        cells = [
            str(dep.id),
            dep.template_name,
            dep.user_id,
            f"{dep.num_gpus}x {dep.gpu_name}",
            f"{dep.dph_total:.4f}",
            f"{row.ready_hours:.2f}",
            f"{row.compute:.2f}",
            f"{row.disk:.2f}",
            f"{row.total:.2f}",
            str(dep.status),
            _when(dep.created_at),
            _when(pricing.ended_at(dep)),
        ]
        writer.writerow([escape_cell(cell) for cell in cells])
    return out.getvalue()


class CostExportService:
    """Builds and sends the export (see the module docstring).

    Args:
        listings: the month's report and rows (:meth:`ListingService.month_costs`).
        files: uploads a file to a person's DM (:class:`bot.slack.messages.SlackMessages`).
        retention_days: ``RETENTION_DAYS``: a month that old may have lost rows, which the
            answer says.
        clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        listings: ListingService,
        files: FileSender,
        retention_days: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.listings = listings
        self.files = files
        self.retention_days = retention_days
        self.clock = clock

    def export(self, team_id: str, user_id: str, month_text: str) -> str:
        """Send ``user_id`` the CSV of workspace ``team_id``'s month ``month_text`` (see
        :func:`parse_month`) in their DM; returns the answer for them (what was sent, or why
        not and what to do). The caller checks that they are a bot admin. Never raises for
        Slack; raises storage errors."""
        now = self.clock()
        try:
            start = parse_month(month_text, now)
        except MonthError as error:
            return f":x: {error}"
        report, rows = self.listings.month_costs(team_id, start, now)
        month = f"{start:%Y-%m}"
        summary = f"{len(rows)} deployments, ${report.total:,.2f} in all"
        comment = (
            f"GPU costs of {month} (UTC), per deployment: {summary} (estimates, as "
            "`/templates costs` shows them)."
        )
        refused = self.files.upload_dm(
            user_id,
            filename=f"gpu-costs-{month}.csv",
            content=csv_text(rows),
            title=f"GPU costs {month}",
            comment=comment,
            team_id=team_id,
        )
        if refused == "missing_scope":
            return (
                ":x: Slack refused the file: this app may not upload files yet (it lacks the "
                "`files:write` scope). Reinstall the app from its updated manifest, then try "
                "again."
            )
        if refused is not None:
            return (
                f":x: Slack did not take the file (`{refused}`). Nothing was sent; try again in a "
                "minute."
            )
        text = f":page_facing_up: Sent you the costs of {month} as a CSV in your DM ({summary})."
        if self.retention_days is not None and start < now - timedelta(days=self.retention_days):
            text += (
                f"\n:information_source: Deployments that ended more than "
                f"{self.retention_days:g} days ago are deleted (data retention), so this month "
                "may be incomplete."
            )
        return text
