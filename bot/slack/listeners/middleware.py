"""Global middleware (Bolt runs it before every listener, in the order registered).

* :class:`InstalledTeam` (single-workspace mode): remember the installed workspace from Bolt's
  authorization of each request (:meth:`bot.services.home.HomeService.remember_team`; ``auth.test``
  at start), which the membership rule (:mod:`bot.slack.listeners.membership`) reads as the
  workspace every request spends for, so the rule needs no call of its own.
* :class:`OrgWorkspaces` (OAuth mode): an org-wide (Enterprise Grid) install has no workspace at
  install time: each workspace of the org is recorded on its first authorized request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltContext

from bot.services.home import HomeService
from bot.services.installs import InstallService


class InstalledTeam:
    """Single-workspace mode: the workspace Bolt authorized each request for."""

    def __init__(self, home: HomeService) -> None:
        self.home = home

    def remember_installed_team(self, context: BoltContext, next: Any) -> None:
        """Remember the request's authorized workspace, then go on."""
        result = context.authorize_result
        if result is not None and result.team_id:
            self.home.remember_team(str(result.team_id))
        next()


class OrgWorkspaces:
    """OAuth mode: the workspaces of an org-wide install, as they first use the bot."""

    def __init__(self, installs: InstallService) -> None:
        self.installs = installs

    def record_org_workspaces(self, context: BoltContext, next: Any) -> None:
        """Record the request's workspace as served by its org's install, then go on."""
        if context.is_enterprise_install and context.team_id and context.enterprise_id:
            self.installs.served_by_org(context.team_id, context.enterprise_id)
        next()


@dataclass(frozen=True)
class Middleware:
    """The global middleware objects (each None when its mode is off)."""

    installed_team: InstalledTeam | None = None
    org_workspaces: OrgWorkspaces | None = None


def register(app: App, middleware: Middleware) -> None:
    """Attach the global middleware to ``app``."""
    if middleware.installed_team is not None:
        app.use(middleware.installed_team.remember_installed_team)
    if middleware.org_workspaces is not None:
        app.use(middleware.org_workspaces.record_org_workspaces)
