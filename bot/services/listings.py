"""What ``/templates mine``, ``/templates running`` and ``/templates costs`` list (data only:
the listeners render it with :mod:`bot.slack.blocks.manage`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from bot import pricing
from bot.services.ports import AuditEntry, UnmanagedInstance
from bot.services.unmanaged import UNMANAGED_STATE, read_unmanaged
from storage import (
    LIVE_STATUSES,
    DeploymentRecord,
    DeploymentStatus,
    SessionFactory,
    collaborators,
    list_audit,
    list_events,
    list_for_team,
    list_for_user,
)

RECENT_ENDED = timedelta(days=7)
"""``/templates mine`` also lists deployments that ended this recently."""
OPEN_STATUSES = LIVE_STATUSES | {DeploymentStatus.PENDING_APPROVAL}
"""What a person's own lists show on top: what may bill, and requests waiting for approval."""


def newest_first(deps: Iterable[DeploymentRecord]) -> list[DeploymentRecord]:
    """``deps`` sorted by creation, newest first."""
    return sorted(deps, key=lambda d: (d.created_at, d.id), reverse=True)


class ListingService:
    """Reads deployments and spend for one workspace at a time.

    Args:
        session_factory: storage's sessionmaker.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        unmanaged_state: Callable[[str], str] = lambda team_id: UNMANAGED_STATE,
    ) -> None:
        self.sf = session_factory
        self._unmanaged_state = unmanaged_state

    def mine(self, team_id: str, user_id: str, now: datetime) -> list[DeploymentRecord]:
        """The user's live deployments and waiting requests (newest first), then those ended in
        the last :data:`RECENT_ENDED` (newest first); those shared with them
        (:mod:`storage.collaborators`) are among them."""
        deps = list_for_user(self.sf, team_id, user_id)
        deps += collaborators.list_shared_with(self.sf, team_id, user_id)
        live = [d for d in deps if d.status in OPEN_STATUSES]
        ended = [
            d
            for d in deps
            if d.status not in OPEN_STATUSES and now - d.last_state_change_at <= RECENT_ENDED
        ]
        return newest_first(live) + newest_first(ended)

    def running(self, team_id: str) -> list[DeploymentRecord]:
        """The workspace's live deployments (creating, provisioning, ready, stopped), newest
        first."""
        return newest_first(list_for_team(self.sf, team_id, LIVE_STATUSES))

    def live_for_user(self, team_id: str, user_id: str) -> list[DeploymentRecord]:
        """The user's live deployments and requests waiting for approval, and the live ones
        shared with them, newest first (the App Home)."""
        own = list_for_user(self.sf, team_id, user_id, OPEN_STATUSES)
        shared = collaborators.list_shared_with(self.sf, team_id, user_id, LIVE_STATUSES)
        return newest_first(own + shared)

    def collaborators(self, deployment_id: int) -> list[str]:
        """The Slack user ids ``deployment_id`` is shared with, in the order they were added."""
        return collaborators.collaborator_ids(self.sf, deployment_id)

    def month_report(self, team_id: str, now: datetime) -> pricing.CostReport:
        """The workspace's spend this month (UTC) up to ``now``: :func:`bot.pricing.cost_report`
        over its deployments, reading the event log only for deployments that began before
        the month."""
        start, end = pricing.month_window(now)

        def periods_for(dep: DeploymentRecord) -> list[pricing.Period]:
            return pricing.periods_from_events(dep, list_events(self.sf, dep.id), now)

        return pricing.cost_report(
            list_for_team(self.sf, team_id), start=start, end=end, now=now, periods_for=periods_for
        )

    def month_costs(
        self, team_id: str, month_start: datetime, now: datetime
    ) -> tuple[pricing.CostReport, list[pricing.DeploymentCost]]:
        """The workspace's spend in the month (UTC) that ``month_start`` falls in, up to
        ``now`` (the whole month when it is over): the report ``/templates costs`` shows
        (:func:`bot.pricing.cost_report`) and its rows per deployment
        (:func:`bot.pricing.deployment_costs`), read from one listing and the same event
        logs."""
        start, end = pricing.month_window(month_start)
        events: dict[int, list[pricing.Period]] = {}

        def periods_for(dep: DeploymentRecord) -> list[pricing.Period]:
            if dep.id not in events:
                events[dep.id] = pricing.periods_from_events(dep, list_events(self.sf, dep.id), now)
            return events[dep.id]

        deps = list_for_team(self.sf, team_id)
        report = pricing.cost_report(deps, start=start, end=end, now=now, periods_for=periods_for)
        rows = pricing.deployment_costs(
            deps, start=start, end=end, now=now, periods_for=periods_for
        )
        return report, rows

    def unmanaged(self, team_id: str, now: datetime | None = None) -> list[UnmanagedInstance]:
        """Instances on workspace ``team_id``'s Vast.ai account that the bot does not own (as
        the poller saw them last); for that workspace's admins only."""
        # A list the poller has not refreshed is ignored.
        return read_unmanaged(self.sf, now, state=self._unmanaged_state(team_id))

    def audit(self, team_id: str, page: int, page_size: int) -> tuple[list[AuditEntry], bool]:
        """Page ``page`` (0 = newest) of the workspace's audit log, ``page_size`` events, and
        whether older ones exist."""
        rows = list_audit(self.sf, team_id, offset=page * page_size, limit=page_size + 1)
        entries = [
            AuditEntry(
                at=row.at,
                actor=row.actor,
                action=row.action,
                detail=row.detail,
                deployment_id=row.deployment_id,
                template_name=row.template_name,
            )
            for row in rows[:page_size]
        ]
        return entries, len(rows) > page_size
