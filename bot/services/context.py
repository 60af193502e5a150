"""The objects every listener and job shares: one frozen, typed container, built once by
:func:`bot.runtime.build_services` (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass

from apscheduler.schedulers.base import BaseScheduler

from bot.config import Settings
from bot.services.accounts import VastAccounts
from bot.services.actions import ManageService
from bot.services.approvals import ApprovalService
from bot.services.budgets import BudgetService
from bot.services.cost_export import CostExportService
from bot.services.credit import CreditService
from bot.services.deploy import DeployService
from bot.services.heartbeat import HeartbeatService
from bot.services.home import HomeService
from bot.services.installs import InstallService
from bot.services.lifetimes import LifetimeService
from bot.services.listings import ListingService
from bot.services.membership import MembershipService
from bot.services.offers import OfferCache, RecentSearches
from bot.services.poller import StatusPoller
from bot.services.ports import Messages
from bot.services.reminders import ReminderService
from bot.services.sharing import SharingService
from bot.services.sshkeys import SshKeyService
from bot.services.work import WorkPool
from bot.services.workspaces import WorkspaceService
from bot.vast.client import VastClient
from catalog import Catalog
from storage import SessionFactory


@dataclass(frozen=True)
class Services:
    """What listeners hand work to.

    Attributes:
        settings: the process's configuration. catalog: the template catalog.
        vast: the Vast.ai client of the default account (single-workspace mode's only one:
            the real API, or the built-in simulator; in OAuth mode, the simulator's).
        accounts: the Vast.ai account of each workspace and deployment.
        session_factory: storage's sessionmaker.
        scheduler: APScheduler (the poller's job; started by ``Runtime.start_background``).
        messages: the messages port (its Slack side: :class:`bot.slack.messages.SlackMessages`).
        deploy: rents instances. manage: stop, start, destroy, login.
        listings: ``/templates mine|running|costs`` data. credit: the Vast.ai balance.
        home: the App Home tab. poller: the status poller.
        lifetimes: end times, extensions and idle GPUs (its ``policy`` feeds the picker).
        reminders: reminders at the owner's hours and the daily digest.
        budgets: monthly budgets, spend against them, the 80 % / 100 % notices.
        approvals: requests waiting for an approver (ask, approve, deny, expire).
        offers: offer searches shared by everyone for ``OFFER_CACHE_SECONDS``.
        recent_searches: the offer search each open picker last showed.
        work: the bounded pool for long work, off Bolt's listener threads
            (:class:`bot.services.work.WorkPool`): offer searches, the submission's re-check
            and rental, stop / start / destroy, approvals, slow ``/templates costs`` and
            ``credit`` answers. A listener acks and hands over (or waits at most its ack
            budget for an answer); a full pool raises ``Busy`` at once and the listener says
            "busy — try again in a minute".
        workspaces: each workspace's effective settings, admins and Vast.ai key
            (:class:`bot.services.workspaces.WorkspaceService`; ``/templates setup``).
        membership: who may act for which workspace
            (:class:`bot.services.membership.MembershipService`): every listener that spends a
            workspace's money or posts in its channels asks it first.
        ssh_keys: each person's SSH public keys per workspace
            (:class:`bot.services.sshkeys.SshKeyService`; ``/templates ssh-key``).
        sharing: the **Share** button: who else may use a deployment
            (:class:`bot.services.sharing.SharingService`).
        installs: OAuth mode's installs and uninstalls (None in single-workspace mode).
        heartbeat: the poller's heartbeat, behind ``/healthz`` and the admins' alert.
        cost_export: ``/templates costs export``, the month's CSV for a bot admin (None: not
            offered).
    """

    settings: Settings
    catalog: Catalog
    vast: VastClient
    accounts: VastAccounts
    session_factory: SessionFactory
    scheduler: BaseScheduler
    messages: Messages
    deploy: DeployService
    manage: ManageService
    listings: ListingService
    credit: CreditService
    home: HomeService
    poller: StatusPoller
    lifetimes: LifetimeService
    reminders: ReminderService
    budgets: BudgetService
    approvals: ApprovalService
    offers: OfferCache
    recent_searches: RecentSearches
    work: WorkPool
    workspaces: WorkspaceService
    membership: MembershipService
    ssh_keys: SshKeyService
    sharing: SharingService
    installs: InstallService | None = None
    heartbeat: HeartbeatService | None = None
    cost_export: CostExportService | None = None

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        """True when ``user_id`` is a bot admin of workspace ``team_id``
        (:meth:`ManageService.is_admin`)."""
        return self.manage.is_admin(team_id, user_id)
