"""The App Home tab: each user's live deployments (their own and those shared with them) and
this month's spend."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.services.admins import AdminDirectory
from bot.services.listings import ListingService
from bot.services.ports import BudgetLine, HomeData, HomeTabs
from storage import DeploymentRecord, utcnow

logger = logging.getLogger(__name__)


class BudgetLines(Protocol):
    """A person's and their workspace's budgets, for the App Home
    (:class:`bot.services.budgets.BudgetService` implements it)."""

    def lines(self, team_id: str, user_id: str) -> tuple[BudgetLine, BudgetLine]:
        """``(user's budget, workspace's budget)`` in workspace ``team_id``."""
        ...


class HomeService:
    """Publishes Home tabs (``views.publish`` through the messages port).

    Args:
        listings: reads deployments, the month's spend and the unmanaged instances.
        messages: the messages port.
        admins: the bot admins per workspace, whose Home also lists the unmanaged instances
            of their workspace's Vast.ai account.
        budgets: the viewer's and the workspace's budget lines (:class:`BudgetLines`, e.g.
            :class:`bot.services.budgets.BudgetService`); None: the Home shows no budget.
        one_workspace: single-workspace mode: a Home refreshed without its workspace goes to
            the one workspace; False (OAuth mode): it is not published.
    """

    def __init__(
        self,
        listings: ListingService,
        messages: HomeTabs,
        admins: AdminDirectory | None = None,
        budgets: BudgetLines | None = None,
        *,
        one_workspace: bool = True,
    ) -> None:
        self.listings = listings
        self.one_workspace = one_workspace
        self.budgets = budgets
        self.messages = messages
        self.admins = admins
        self._team_id: str | None = None
        self._lock = threading.Lock()

    def remember_team(self, team_id: str) -> None:
        """Keep the workspace id a Slack payload named (spares an ``auth.test``). OAuth mode
        (not ``one_workspace``) keeps none: a Home without its workspace is not published."""
        if not self.one_workspace:
            return
        with self._lock:
            self._team_id = self._team_id or team_id

    def team_id(self) -> str | None:
        """The workspace id: remembered, else ``auth.test`` once; None in OAuth mode."""
        if not self.one_workspace:
            return None
        with self._lock:
            if self._team_id is None:
                self._team_id = self.messages.team_id()
            return self._team_id

    def data(self, user_id: str, team_id: str, *, notice: str | None = None) -> HomeData:
        """What ``user_id``'s Home shows now."""
        now = utcnow()
        report = self.listings.month_report(team_id, now)
        mine, everyone = self.budgets.lines(team_id, user_id) if self.budgets else (None, None)
        admin = self.admins is not None and self.admins.is_admin(team_id, user_id)
        return HomeData(
            deployments=self.listings.live_for_user(team_id, user_id),
            now=now,
            user_month=report.for_user(user_id).dollars,
            workspace_month=report.total,
            month_label=report.start.strftime("%B %Y"),
            notice=notice,
            unmanaged=self.listings.unmanaged(team_id) if admin else (),
            user_budget=mine,
            workspace_budget=everyone,
            team_id=team_id,
            viewer_admin=admin,
        )

    def refresh(
        self, user_id: str, team_id: str | None = None, *, notice: str | None = None
    ) -> bool:
        """Publish ``user_id``'s Home tab. Call it whenever one of the user's deployments
        changes; pass ``team_id`` (the deployment's) when known. The Home goes through the
        messages port's outbox (paced per workspace, the latest Home of a user wins). Returns
        False when it could not be built (a database error, logged, never raised), so the
        poller and the actions can call it freely; Slack failures never raise (the notifier
        turns them into outcomes)."""
        try:
            team = team_id or self.team_id()
            if team is None:
                return False
            return self.messages.publish_home(user_id, self.data(user_id, team, notice=notice))
        except SQLAlchemyError:  # a database hiccup must not break the caller's action
            logger.warning("Home tab of %s not refreshed", user_id, exc_info=True)
            return False

    def deployment_changed(self, dep: DeploymentRecord) -> None:
        """:class:`bot.services.ports.HomeRefresher` for the poller and the manage actions: the
        Home of its owner and of everyone it is shared with (their Home lists it too)."""
        self.refresh(dep.user_id, dep.team_id)
        try:
            shared = self.listings.collaborators(dep.id)
        except SQLAlchemyError:  # the owner's Home went out; theirs follow at the next change
            logger.warning("deployment %s: collaborators' Homes not refreshed", dep.id)
            return
        for user_id in shared:
            if user_id != dep.user_id:
                self.refresh(user_id, dep.team_id)
