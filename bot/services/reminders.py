"""Non-urgent reminders at the owner's hours, and the daily digest.

A scheduler job (:data:`JOB_ID`, every :data:`CHECK_SECONDS`) runs :meth:`ReminderService.run`:

The two reminders are rules (:mod:`bot.services.rules.stopped_reminder`,
:mod:`bot.services.rules.long_running`, ``schedule="reminder"``); this job runs them:

* **Stopped but still paying**: a deployment stopped for more than ``STOPPED_REMINDER_DAYS``
  pays for its disk; its owner hears about it once a day, with **Start** / **Destroy**.
* **Running for long**: a deployment ready for more than :data:`LONG_RUN` gets one reminder a
  day, with **Stop** / **Destroy**.
* Both go out only in the owner's working hours (:data:`WORK_START`–:data:`WORK_END`, Monday to
  Friday) in their own time zone, read with ``users.info`` (``tz``) and cached in the database
  for :data:`TZ_CACHE`; an unknown zone counts as UTC. Urgent notices (an expiry or an idle stop
  that is coming) are not here: the status poller sends them when due.
* **The digest**: when ``DIGEST_CHANNEL`` is set, once a day from ``DIGEST_HOUR`` in
  ``DIGEST_TIMEZONE``: what runs and what is stopped, this month's spend per person and the
  unmanaged instances.

"Once" is a row in ``claims`` (``reminder:<kind>:<id>:<owner's local date>``,
``digest:<local date>``): across processes and restarts one reminder of a kind per
deployment per day and one digest per day. A message Slack refused gives its claim back, so
the next run tries again. Every reminder is also an event in the deployment's log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.base import BaseScheduler

import storage
from bot import pricing
from bot.services.listings import ListingService, newest_first
from bot.services.ports import (
    BudgetLine,
    DigestData,
    DigestLine,
    Reminder,
    ReminderMessages,
)
from bot.services.rules import RULES
from bot.services.rules.base import REMIND
from bot.services.rules.policy import LifetimePolicy
from bot.services.unmanaged import read_unmanaged
from storage import ACTIVE_STATUSES, DeploymentRecord, DeploymentStatus, SessionFactory

logger = logging.getLogger(__name__)

JOB_ID = "reminders"
#: How often the reminder job looks (seconds): reminders are not urgent.
CHECK_SECONDS = 60.0
#: A ready deployment older than this gets the daily "still running" reminder.
LONG_RUN = timedelta(days=1)
#: Working hours in the owner's time zone (local hours, [start, end)) and days (Mon=0…Fri=4).
WORK_START, WORK_END = 9, 18
WORK_DAYS = frozenset(range(5))
#: A cached time zone is read again from Slack after this long.
TZ_CACHE = timedelta(days=7)
#: After Slack could not say a user's zone, ask again only after this long (in memory).
TZ_RETRY = timedelta(hours=1)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def in_working_hours(local: datetime) -> bool:
    """True from 09:00 to 18:00, Monday to Friday, in ``local``'s own time zone."""
    return local.weekday() in WORK_DAYS and WORK_START <= local.hour < WORK_END


@dataclass
class ReminderReport:
    """What one run did: reminders sent, digests posted, reminders held for working hours."""

    reminders: int = 0
    digests: int = 0
    held: int = 0


class InstalledTeam(Protocol):
    """Single-workspace mode's one workspace (:class:`bot.services.home.HomeService`
    implements it: the id a Slack payload named, else ``auth.test``)."""

    def team_id(self) -> str | None:
        """The workspace id; None while it is not known (and in OAuth mode)."""
        ...


class DigestChannels(Protocol):
    """Where each workspace wants its daily digest, as set in ``/templates setup``
    (:class:`bot.services.workspaces.WorkspaceService` implements it)."""

    def digest_channel(self, team_id: str) -> str | None:
        """The digest channel of ``team_id`` (``DIGEST_CHANNEL`` unless it chose its own)."""
        ...

    def digest_targets(self) -> Sequence[tuple[str, str]]:
        """OAuth mode: ``[(team_id, channel)]`` of each installed workspace that chose a
        digest channel itself."""
        ...


class DigestBudgets(Protocol):
    """A workspace's budgets for its digest (:class:`bot.services.budgets.BudgetService`
    implements it)."""

    def all_lines(self, team_id: str) -> Sequence[BudgetLine]:
        """Every budget of ``team_id`` with this month's spend."""
        ...


class ReminderService:
    """Sends the reminders and the digest (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. messages: the messages port.
        listings: spend per person for the digest.
        stopped_after: ``STOPPED_REMINDER_DAYS`` as a timedelta.
        digest_channel: ``DIGEST_CHANNEL`` (None: no digest). digest_hour: ``DIGEST_HOUR``
            (0–23). digest_timezone: ``DIGEST_TIMEZONE`` (IANA name).
        workspace: single-workspace mode's workspace id (:class:`InstalledTeam`; None, or
            None from it: not known yet).
        channels: where each workspace wants its digest (:class:`DigestChannels`, e.g.
            :class:`bot.services.workspaces.WorkspaceService`); None: ``digest_channel``.
        per_workspace: OAuth mode: one digest per workspace that chose a channel
            (:meth:`DigestChannels.digest_targets`), showing only its own deployments, spend,
            budgets and the unmanaged instances of its own Vast.ai account; False:
            single-workspace mode, one digest in the workspace's channel.
        budgets: a workspace's budgets for the digest (:class:`DigestBudgets`, e.g.
            :class:`bot.services.budgets.BudgetService`); None: none shown.
        clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: ReminderMessages,
        listings: ListingService,
        stopped_after: timedelta,
        digest_channel: str | None = None,
        digest_hour: int = 9,
        digest_timezone: str = "UTC",
        workspace: InstalledTeam | None = None,
        channels: DigestChannels | None = None,
        per_workspace: bool = False,
        budgets: DigestBudgets | None = None,
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.budgets = budgets
        self.listings = listings
        self.stopped_after = stopped_after
        self.policy = LifetimePolicy(stopped_after=stopped_after, long_run=LONG_RUN)
        self.digest_channel = digest_channel
        self.digest_hour = digest_hour
        self.digest_zone = _zone(digest_timezone)
        self.digest_timezone = digest_timezone
        self.workspace = workspace
        self.channels = channels
        self.per_workspace = per_workspace
        self.clock = clock
        self._lock = threading.Lock()
        self._tz_failed: dict[str, datetime] = {}

    def team_id(self) -> str | None:
        """Single-workspace mode's workspace id (None: not known yet, or OAuth mode)."""
        return self.workspace.team_id() if self.workspace is not None else None

    def install(self, scheduler: BaseScheduler, *, seconds: float = CHECK_SECONDS) -> None:
        """Add the reminder job to ``scheduler``, every ``seconds`` (not started here)."""
        scheduler.add_job(
            self.run_scheduled,
            "interval",
            seconds=seconds,
            id=JOB_ID,
            name="reminders and digest",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )

    def run_scheduled(self) -> None:
        """The job body; never raises."""
        try:
            report = self.run()
            if report.reminders or report.digests:
                logger.info("reminders: %s", report)
        except Exception:  # the job must survive anything one run meets
            logger.exception("reminder run failed")

    def run(self, now: datetime | None = None) -> ReminderReport:
        """One pass: due reminders in their owners' working hours, then the digest when due."""
        with self._lock:
            now = now or self.clock()
            report = ReminderReport()
            live = storage.list_by_status(
                self.sf, [DeploymentStatus.READY, DeploymentStatus.STOPPED]
            )
            for dep in live:
                try:
                    reminder = self._due(dep, now)
                    if reminder is not None:
                        self._remind(dep, reminder, now, report)
                except Exception:  # one deployment's trouble must not stop the others
                    logger.exception("reminders: deployment %d not processed", dep.id)
            if self.per_workspace:
                for team, channel in self.channels.digest_targets() if self.channels else ():
                    try:
                        self._digest(now, report, channel=channel, team_id=team)
                    except Exception:  # one workspace's trouble must not stop the others
                        logger.exception("reminders: digest of %s not sent", team)
            else:
                single = self.single_digest_channel()
                if single:
                    self._digest(now, report, channel=single)
            return report

    def single_digest_channel(self) -> str | None:
        """Single-workspace mode's digest channel: the one chosen in ``/templates setup``
        (:meth:`DigestChannels.digest_channel` of the workspace), else ``DIGEST_CHANNEL``."""
        if self.channels is not None:
            team = self.team_id()
            if team:
                return self.channels.digest_channel(team)
        return self.digest_channel

    # -- reminders --------------------------------------------------------------------------

    def _due(self, dep: DeploymentRecord, now: datetime) -> Reminder | None:
        """The first reminder a ``schedule="reminder"`` rule of
        :data:`bot.services.rules.RULES` asks for, with its costs; None when none is due."""
        for rule in RULES:
            if rule.schedule != "reminder":
                continue
            action = rule.check(dep, None, self.policy, now)
            if action is None or action.kind != REMIND or action.value is None:
                continue
            since = action.value
            if action.why == "stopped":
                rate = pricing.rate(dep, DeploymentStatus.STOPPED)
                stopped_hours = max(0.0, (now - since).total_seconds()) / 3600
                return Reminder(
                    kind="stopped",
                    since=since,
                    cost_so_far=rate * stopped_hours,
                    per_month=rate * pricing.HOURS_PER_MONTH,
                )
            return Reminder(
                kind=action.why,
                since=since,
                cost_so_far=pricing.cost_so_far(dep, now),
                per_month=None,
            )
        return None

    def _remind(
        self, dep: DeploymentRecord, reminder: Reminder, now: datetime, report: ReminderReport
    ) -> None:
        local = now.astimezone(_zone(self.owner_tz(dep.user_id, now, team_id=dep.team_id)))
        key = f"reminder:{reminder.kind}:{dep.id}:{local.date().isoformat()}"
        if not in_working_hours(local):
            report.held += 1
            return
        if not storage.claim(self.sf, key, now):
            return
        if not self.messages.reminder(dep, reminder):
            storage.release_claim(self.sf, key)  # Slack refused: the next run tries again
            return
        storage.add_event(self.sf, dep.id, storage.SYSTEM_ACTOR, "reminder", reminder.kind, now=now)
        report.reminders += 1

    def owner_tz(self, user_id: str, now: datetime, *, team_id: str | None = None) -> str | None:
        """The IANA zone of ``user_id`` (of workspace ``team_id``): from the database cache
        (fresh for :data:`TZ_CACHE`), else ``users.info``; None when Slack does not say."""
        cached = storage.get_user_tz(self.sf, user_id)
        if cached is not None and now - cached[1] < TZ_CACHE:
            return cached[0]
        failed = self._tz_failed.get(user_id)
        if failed is not None and now - failed < TZ_RETRY:
            return cached[0] if cached else None
        tz = self.messages.user_tz(user_id, team_id=team_id)
        if tz is None:
            self._tz_failed[user_id] = now
            return cached[0] if cached else None
        self._tz_failed.pop(user_id, None)
        storage.save_user_tz(self.sf, user_id, tz, now)
        return tz

    # -- the digest -------------------------------------------------------------------------

    def _digest(
        self, now: datetime, report: ReminderReport, *, channel: str, team_id: str | None = None
    ) -> None:
        local = now.astimezone(self.digest_zone)
        if local.hour < self.digest_hour:
            return
        day = local.date().isoformat()
        key = f"digest:{day}" if team_id is None else f"digest:{team_id}:{day}"
        if not storage.claim(self.sf, key, now):
            return
        data = self.digest_data(now, team_id=team_id)
        if not self.messages.digest(channel, data, team_id=team_id):
            storage.release_claim(self.sf, key)
            return
        report.digests += 1

    def digest_data(self, now: datetime, *, team_id: str | None = None) -> DigestData:
        """What the digest shows at ``now``: of workspace ``team_id`` only, or (None:
        single-workspace mode) of every row."""
        live = newest_first(
            storage.list_by_status(self.sf, storage.LIVE_STATUSES)
            if team_id is None
            else storage.list_for_team(self.sf, team_id, storage.LIVE_STATUSES)
        )
        lines = [DigestLine(d, pricing.cost_so_far(d, now)) for d in live]
        running = [line for line in lines if line.dep.status in ACTIVE_STATUSES]
        stopped = [line for line in lines if line.dep.status == DeploymentStatus.STOPPED]
        teams = (
            {d.team_id for d in live} | ({self.team_id()} - {None})
            if team_id is None
            else {team_id}
        )
        spend: dict[str, float] = {}
        budgets: list[BudgetLine] = []
        for team in sorted(t for t in teams if t):
            for line in self.listings.month_report(team, now).per_user:
                spend[line.user_id] = spend.get(line.user_id, 0.0) + line.dollars
            of_team = self.budgets.all_lines(team) if self.budgets is not None else ()
            budgets += [b for b in of_team if b.budget is not None]
        return DigestData(
            now=now,
            tz=self.digest_timezone,
            running=running,
            stopped=stopped,
            spend=sorted(spend.items(), key=lambda item: (-item[1], item[0])),
            month_label=f"{now:%B %Y}",
            unmanaged=(
                list(self.listings.unmanaged(team_id))
                if team_id is not None
                else read_unmanaged(self.sf, now)
            ),
            budgets=budgets,
        )
