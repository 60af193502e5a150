"""Bolt listeners, laid out by Slack surface. Thin: parse, check who acts, ack, hand over to a
service (slow work to the work pool); no SQL and no Vast.ai call here.

* :mod:`~bot.slack.listeners.commands`: slash commands (``/templates`` and its sub-commands).
* :mod:`~bot.slack.listeners.actions`: block actions (buttons, selects), a module per feature.
* :mod:`~bot.slack.listeners.views`: modal submissions, a module per feature.
* :mod:`~bot.slack.listeners.events`: Events API (``app_home_opened``, ``app_uninstalled``,
  ``tokens_revoked``).
* :mod:`~bot.slack.listeners.shortcuts`: global and message shortcuts (none yet; its docstring
  is the recipe for adding one).
* :mod:`~bot.slack.listeners.middleware`: global middleware (the installed workspace, an org's
  workspaces).
* Shared by all: :mod:`~bot.slack.listeners.gate` and :mod:`~bot.slack.listeners.models` refuse
  malformed payloads before any listener; :mod:`~bot.slack.listeners.membership` says who may
  act for a workspace; :mod:`~bot.slack.listeners.payloads` reads ids from payloads;
  :mod:`~bot.slack.listeners.replies` tells the clicker something from any surface.

Every listener is a method of a small class constructed with what it needs (so a test builds
one and calls the method with fakes); each surface's ``register(app, handlers)`` is the table
from Slack's ids to those methods. Bolt injects a bound method's arguments by name as it does
a function's: it reads the parameter names (``self`` included) and drops a first ``self``, so
every other parameter must be one of Bolt's names (``ack``, ``body``, ``action``, ``view``,
``command``, ``event``, ``shortcut``, ``client``, ``respond``, ``context``…).
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_bolt import App

from bot.services.context import Services
from bot.slack.listeners import actions, commands, events, middleware, shortcuts, views
from bot.slack.listeners.actions import ActionHandlers
from bot.slack.listeners.actions.approvals import ApprovalActions
from bot.slack.listeners.actions.budgets import AuditActions
from bot.slack.listeners.actions.deploy import DeployActions
from bot.slack.listeners.actions.manage import ManageActions
from bot.slack.listeners.actions.offer_search import PickerSearch
from bot.slack.listeners.actions.sharing import SharingActions
from bot.slack.listeners.actions.sshkeys import SshKeyActions
from bot.slack.listeners.actions.templates import TemplateActions
from bot.slack.listeners.commands import CommandHandlers
from bot.slack.listeners.commands.manage import deployment_lists
from bot.slack.listeners.commands.templates import TemplateLists, build_templates_command
from bot.slack.listeners.events import EventHandlers, HomeEvents, InstallEvents
from bot.slack.listeners.middleware import InstalledTeam, Middleware, OrgWorkspaces
from bot.slack.listeners.shortcuts import ShortcutHandlers
from bot.slack.listeners.views import ViewHandlers
from bot.slack.listeners.views.approvals import ApprovalViews
from bot.slack.listeners.views.budgets import BudgetViews
from bot.slack.listeners.views.deploy import DeployViews
from bot.slack.listeners.views.deploy_form import SubmissionReader
from bot.slack.listeners.views.setup import SetupViews
from bot.slack.listeners.views.sharing import SharingViews
from bot.slack.listeners.views.sshkeys import SshKeyViews


@dataclass(frozen=True)
class Handlers:
    """Every listener object, per surface."""

    middleware: Middleware
    commands: CommandHandlers
    actions: ActionHandlers
    views: ViewHandlers
    events: EventHandlers
    shortcuts: ShortcutHandlers


def build_handlers(services: Services, app: App) -> Handlers:
    """The listener objects, each given the collaborators it uses out of ``services``; OAuth
    mode's (uninstalls, org workspaces) only when ``app`` has an installation store and
    ``services.installs`` is set."""
    lists = TemplateLists(services.catalog)
    store = app.installation_store
    installs = services.installs if store is not None else None
    membership, messages, work = services.membership, services.messages, services.work
    picker = PickerSearch(
        offers=services.offers,
        recent_searches=services.recent_searches,
        accounts=services.accounts,
        lifetimes=services.lifetimes,
        budgets=services.budgets,
        credit=services.credit,
        manage=services.manage,
        lifetime_warning_minutes=services.settings.lifetime_warning_minutes,
    )
    return Handlers(
        middleware=Middleware(
            installed_team=None if services.settings.oauth_mode else InstalledTeam(services.home),
            org_workspaces=OrgWorkspaces(installs) if installs is not None else None,
        ),
        commands=CommandHandlers(templates=build_templates_command(services, lists)),
        actions=ActionHandlers(
            templates=TemplateActions(services.catalog, lists),
            deploy=DeployActions(
                catalog=services.catalog,
                work=work,
                membership=membership,
                messages=messages,
                search=picker,
            ),
            manage=ManageActions(
                services.manage,
                services.lifetimes,
                deployment_lists(services),
                services.home,
                membership,
                messages,
                work,
            ),
            sharing=SharingActions(services.sharing, membership, messages, services.home),
            approvals=ApprovalActions(services.approvals, membership, messages, work),
            audit=AuditActions(services.listings, services.manage, membership, messages),
            ssh_keys=SshKeyActions(services.ssh_keys, membership, messages),
        ),
        views=ViewHandlers(
            deploy=DeployViews(
                reader=SubmissionReader(services.catalog, services.lifetimes, services.manage),
                deploy=services.deploy,
                approvals=services.approvals,
                budgets=services.budgets,
                home=services.home,
                membership=membership,
                work=work,
                approval_dph=services.settings.approval_dph,
            ),
            sharing=SharingViews(services.sharing, membership, work),
            approvals=ApprovalViews(services.approvals, membership, messages),
            budgets=BudgetViews(services.budgets, services.manage, membership),
            setup=SetupViews(services.workspaces, membership, work, services.settings.oauth_mode),
            ssh_keys=SshKeyViews(services.ssh_keys, membership),
        ),
        events=EventHandlers(
            home=HomeEvents(services.home, membership),
            install=(
                InstallEvents(installs, store)
                if installs is not None and store is not None
                else None
            ),
        ),
        shortcuts=ShortcutHandlers(),
    )


def register(app: App, handlers: Handlers) -> None:
    """Attach every listener to ``app``: the global middleware first (it runs before every
    listener), then each surface's table."""
    middleware.register(app, handlers.middleware)
    commands.register(app, handlers.commands)
    actions.register(app, handlers.actions)
    views.register(app, handlers.views)
    events.register(app, handlers.events)
    shortcuts.register(app, handlers.shortcuts)
