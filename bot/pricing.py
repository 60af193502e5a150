"""What deployments cost (pure: no database, no network, no Slack).

The model, in US dollars:

* **GPU time**: every hour in ``ready`` costs the offer's ``dph_total`` ($/hour). Vast.ai's
  ``dph_total`` already includes the storage of the disk that was asked for (docs/VAST_API.md §2,
  price identity ``dph_total = dph_base + disk_GB × storage_cost / 720``).
* **Storage while stopped**: Vast.ai keeps billing the disk of a stopped instance
  (docs/VAST_API.md §5, from vast-ai/docs ``hello-world.mdx``/``stop_instance.yaml``). The bot
  stores only ``dph_total``, not the offer's ``storage_cost``, so it *estimates* the storage
  price with :data:`TYPICAL_STORAGE_COST_PER_GB_MONTH` ($0.15/GB/month: between the two prices
  in Vast.ai's own examples, 0.14933 in ``show_instance.yaml`` and 0.2 in the search example)
  and Vast.ai's 720 hours per month. A 60 GB disk thus costs about $0.0125/hour stopped.
* **Not counted**: time in ``creating``/``provisioning`` (the image pull; storage bills then,
  the GPU only once the container runs), bandwidth, and the GPU time between "container
  running" and "app answers" — so figures are a slight underestimate of the Vast.ai bill.

Monthly figures cut each deployment's ``ready``/``stopped`` periods at the month's edges
(UTC). Periods come from the deployment's ``status`` events (their ``to_status`` column, set by
:func:`storage.repo.update_status`), see :func:`periods_from_events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from storage import (
    FINAL_STATUSES,
    DeploymentRecord,
    DeploymentStatus,
    seconds_in_ready,
    seconds_in_stopped,
)

TYPICAL_STORAGE_COST_PER_GB_MONTH = 0.15
"""Estimated Vast.ai storage price in $/GB/month (see the module docstring for the source)."""

HOURS_PER_MONTH = 720.0
"""Vast.ai prices storage per 30-day month: $/GB/month ÷ 720 = $/GB/hour (docs/VAST_API.md §2)."""

ENDED = FINAL_STATUSES


class EventLike(Protocol):
    """What :func:`periods_from_events` reads from an event (a ``storage.EventRecord`` fits)."""

    @property
    def at(self) -> datetime: ...
    @property
    def action(self) -> str: ...
    @property
    def from_status(self) -> DeploymentStatus | None: ...
    @property
    def to_status(self) -> DeploymentStatus | None: ...


@dataclass(frozen=True)
class Period:
    """``status`` held from ``start`` to ``end`` (aware UTC datetimes, ``start <= end``)."""

    status: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Length in seconds."""
        return max(0.0, (self.end - self.start).total_seconds())


def storage_dph(disk_gb: float, dph_total: float | None = None) -> float:
    """Estimated storage price of ``disk_gb`` GB in $/hour (never above ``dph_total`` when given).

    ``disk_gb × TYPICAL_STORAGE_COST_PER_GB_MONTH / 720``.
    """
    estimate = max(0.0, disk_gb) * TYPICAL_STORAGE_COST_PER_GB_MONTH / HOURS_PER_MONTH
    return min(estimate, dph_total) if dph_total is not None else estimate


def rate(dep: DeploymentRecord, status: str) -> float:
    """What ``dep`` costs per hour while in ``status``: ``dph_total`` in ``ready``, the storage
    estimate in ``stopped``, 0 otherwise."""
    if status == DeploymentStatus.READY:
        return dep.dph_total
    if status == DeploymentStatus.STOPPED:
        return storage_dph(dep.disk_gb, dep.dph_total)
    return 0.0


def disk_per_day(dep: DeploymentRecord) -> float:
    """Estimated $/day ``dep``'s disk costs while stopped (:func:`storage_dph` × 24)."""
    return storage_dph(dep.disk_gb, dep.dph_total) * 24


def current_rate(dep: DeploymentRecord) -> float:
    """$/hour ``dep`` costs right now (see :func:`rate`)."""
    return rate(dep, dep.status)


def cost_so_far(dep: DeploymentRecord, now: datetime) -> float:
    """Dollars spent by ``dep`` up to ``now`` (aware UTC): hours in ``ready`` × ``dph_total`` +
    hours in ``stopped`` × the storage estimate. Uses the accumulated seconds on the row, so it
    needs no event history."""
    ready_hours = seconds_in_ready(dep, now) / 3600.0
    stopped_hours = seconds_in_stopped(dep, now) / 3600.0
    ready_rate = rate(dep, DeploymentStatus.READY)
    stopped_rate = rate(dep, DeploymentStatus.STOPPED)
    return ready_hours * ready_rate + stopped_hours * stopped_rate


def cost_until(dep: DeploymentRecord, now: datetime, end: datetime) -> float:
    """Dollars ``dep`` will have cost at ``end`` if it keeps running at its price: what it cost
    up to ``now`` (:func:`cost_so_far`) plus ``dph_total`` × the hours from ``now`` to ``end``
    (none when ``end`` is past). The committed cost of a lifetime."""
    hours_left = max(0.0, (end - now).total_seconds()) / 3600.0
    return cost_so_far(dep, now) + dep.dph_total * hours_left


def ended_at(dep: DeploymentRecord) -> datetime | None:
    """When ``dep`` stopped costing anything (a final status, e.g. ``destroyed``/``failed``),
    else None."""
    if dep.status in ENDED:
        return dep.last_state_change_at
    return None


def periods_from_events(
    dep: DeploymentRecord, events: Iterable[EventLike], now: datetime
) -> list[Period]:
    """Rebuild the status history of ``dep`` up to ``now`` from its ``status`` events.

    Starts at ``created_at``; each ``status`` event (``action == "status"`` with a
    ``to_status``) closes the current period at the event's time and opens one of its
    ``to_status``. The period it closes is in the event's ``from_status`` (the status left; so
    the first period is whatever the deployment started in), or, when that is unset, in the
    previous event's ``to_status`` (``creating`` before the first). The last period ends at
    ``now`` (or when the deployment ended). Other events, and status events without a
    ``to_status`` (old rows the migration could not read), are skipped.
    """
    periods: list[Period] = []
    status, since = DeploymentStatus.CREATING, dep.created_at
    for event in sorted(events, key=lambda e: e.at):
        new_status = event.to_status
        if event.action != "status" or new_status is None:
            continue
        at = max(event.at, since)
        periods.append(Period(event.from_status or status, since, at))
        status, since = new_status, at
    if status not in ENDED:
        periods.append(Period(status, since, max(since, now)))
    return [p for p in periods if p.seconds > 0]


def cost_in_window(
    dep: DeploymentRecord, periods: Sequence[Period], start: datetime, end: datetime
) -> float:
    """Dollars ``dep`` cost between ``start`` and ``end``: each period's overlap with the window
    × its hourly :func:`rate`."""
    total = 0.0
    for period in periods:
        overlap = (min(period.end, end) - max(period.start, start)).total_seconds()
        if overlap > 0:
            total += overlap / 3600.0 * rate(dep, period.status)
    return total


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """``(first instant of now's month, first instant of the next month)`` in UTC."""
    now = now.astimezone(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        return start, start.replace(year=start.year + 1, month=1)
    return start, start.replace(month=start.month + 1)


@dataclass(frozen=True)
class UserCost:
    """One requester's spend in a window: ``dollars`` over ``deployments`` deployments."""

    user_id: str
    dollars: float
    deployments: int


@dataclass(frozen=True)
class CostReport:
    """Spend between ``start`` and ``end`` (aware UTC): workspace ``total`` ($), per user
    (highest first), and how many deployments overlapped the window."""

    start: datetime
    end: datetime
    total: float
    per_user: list[UserCost] = field(default_factory=list)
    deployments: int = 0

    def for_user(self, user_id: str) -> UserCost:
        """The line of ``user_id`` (zero when they spent nothing)."""
        return next(
            (line for line in self.per_user if line.user_id == user_id),
            UserCost(user_id, 0.0, 0),
        )


def overlaps(dep: DeploymentRecord, start: datetime, end: datetime) -> bool:
    """True when ``dep`` existed at some point between ``start`` and ``end``."""
    finished = ended_at(dep)
    return dep.created_at < end and (finished is None or finished > start)


def cost_report(
    deployments: Iterable[DeploymentRecord],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    periods_for: Callable[[DeploymentRecord], Sequence[Period]],
) -> CostReport:
    """Spend of ``deployments`` between ``start`` and ``min(end, now)``.

    A deployment created at or after ``start`` whose life lies inside the window is costed from
    its row (:func:`cost_so_far`); only those that cross a window edge need their status
    history, which ``periods_for(dep)`` supplies (e.g. from the event log). So a monthly report
    reads events only for deployments that started in an earlier month.
    """
    stop = min(end, now)
    per_user: dict[str, list[float]] = {}
    counted = 0
    for dep in deployments:
        if not overlaps(dep, start, stop):
            continue
        finished = ended_at(dep)
        inside = dep.created_at >= start and (finished or now) <= stop
        if inside:
            dollars = cost_so_far(dep, finished or now)
        else:
            dollars = cost_in_window(dep, periods_for(dep), start, stop)
        counted += 1
        line = per_user.setdefault(dep.user_id, [0.0, 0])
        line[0] += dollars
        line[1] += 1
    lines = [UserCost(user, round(v[0], 6), int(v[1])) for user, v in per_user.items()]
    lines.sort(key=lambda line: (-line.dollars, line.user_id))
    total = sum(line.dollars for line in lines)
    return CostReport(start=start, end=end, total=total, per_user=lines, deployments=counted)


@dataclass(frozen=True)
class DeploymentCost:
    """One deployment's spend in a window (the cost export's row): hours in ``ready`` and in
    ``stopped`` inside the window, ``compute`` = ready hours × ``dph_total`` ($), ``disk`` =
    stopped hours × the storage estimate (:func:`storage_dph`, $), ``total`` their sum."""

    dep: DeploymentRecord
    ready_hours: float
    stopped_hours: float
    compute: float
    disk: float

    @property
    def total(self) -> float:
        """Dollars: ``compute + disk``."""
        return self.compute + self.disk


def deployment_costs(
    deployments: Iterable[DeploymentRecord],
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    periods_for: Callable[[DeploymentRecord], Sequence[Period]],
) -> list[DeploymentCost]:
    """Per-deployment spend between ``start`` and ``min(end, now)``, by the rules of
    :func:`cost_report` (so each person's rows add up to their line of the report): the row's
    accumulated seconds for a deployment whose life lies inside the window, its status periods
    cut at the window's edges otherwise. Ordered by requester, then deployment id."""
    stop = min(end, now)
    rows: list[DeploymentCost] = []
    for dep in deployments:
        if not overlaps(dep, start, stop):
            continue
        finished = ended_at(dep)
        if dep.created_at >= start and (finished or now) <= stop:
            at = finished or now
            ready = seconds_in_ready(dep, at) / 3600.0
            stopped = seconds_in_stopped(dep, at) / 3600.0
        else:
            ready = stopped = 0.0
            for period in periods_for(dep):
                overlap = (min(period.end, stop) - max(period.start, start)).total_seconds()
                if overlap <= 0:
                    continue
                if period.status == DeploymentStatus.READY:
                    ready += overlap / 3600.0
                elif period.status == DeploymentStatus.STOPPED:
                    stopped += overlap / 3600.0
        compute = ready * rate(dep, DeploymentStatus.READY)
        disk = stopped * rate(dep, DeploymentStatus.STOPPED)
        rows.append(DeploymentCost(dep, ready, stopped, compute, disk))
    rows.sort(key=lambda row: (row.dep.user_id, row.dep.id))
    return rows


def hours_left(credit: float, dph: float) -> float | None:
    """How many hours ``credit`` ($) lasts at ``dph`` ($/hour); None when nothing is spent."""
    if dph <= 0:
        return None
    return max(0.0, credit) / dph


def committed_in_window(dep: DeploymentRecord, now: datetime, window_end: datetime) -> float:
    """Dollars ``dep`` will still cost from ``now`` until ``window_end`` (e.g. the end of the
    month) if nothing changes: while it runs or is on its way (creating, provisioning, ready),
    ``dph_total`` up to its ``ends_at`` (the window's end when it has none); while stopped, the
    disk's storage estimate up to the window's end; nothing once it ended or while it waits
    for approval. The "committed" part of a budget's projected spend."""
    if dep.status in (
        DeploymentStatus.CREATING,
        DeploymentStatus.PROVISIONING,
        DeploymentStatus.READY,
    ):
        until = window_end if dep.ends_at is None else min(dep.ends_at, window_end)
        return max(0.0, (until - now).total_seconds()) / 3600.0 * dep.dph_total
    if dep.status == DeploymentStatus.STOPPED:
        return max(0.0, (window_end - now).total_seconds()) / 3600.0 * rate(dep, dep.status)
    return 0.0


def run_in_window(dph: float, hours: float | None, now: datetime, window_end: datetime) -> float:
    """Dollars of a run starting at ``now`` for ``hours`` at ``dph`` ($/hour) that fall before
    ``window_end`` (the whole rest of the window when ``hours`` is None: no end)."""
    end = window_end if hours is None else min(window_end, now + timedelta(hours=hours))
    return max(0.0, (end - now).total_seconds()) / 3600.0 * dph
