"""Installs and uninstalls of the app in workspaces (OAuth mode).

Bolt's OAuth flow keeps the installations themselves (slack_sdk's installation store); this
service records the workspace side in the bot's own ``workspaces`` table and drops what the
process holds for a workspace that left. An uninstalled workspace keeps its rows (the audit
trail) and the poller keeps applying its lifetimes, so nothing it left running bills for ever;
the bot only stops posting to it (it has no token there any more).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.services.ports import Messages
from storage import (
    SessionFactory,
    get_workspace,
    list_workspaces,
    record_install,
    record_uninstall,
    utcnow,
)

logger = logging.getLogger(__name__)

#: The DM the installer gets once the app is in their workspace.
WELCOME_TEXT = (
    ":wave: GPU Templates is installed. Until a workspace admin adds your team's Vast.ai API "
    "key with `/templates setup`, deployments run on the built-in simulator: nothing is rented "
    "and every message says *simulated*. Type `/templates` to see the catalog."
)


class InstallService:
    """Records installs and uninstalls (see the module docstring).

    Args:
        session_factory: storage's sessionmaker.
        messages: the messages port (the installer's welcome DM).
        forget: drops the cached Slack client of ``(team_id, enterprise_id)``
            (:meth:`bot.slack.clients.WorkspaceClients.forget`).
        clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: Messages,
        forget: Callable[[str | None, str | None], object] = lambda team, enterprise: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.forget = forget
        self.clock = clock
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def installed(
        self,
        team_id: str | None,
        enterprise_id: str | None,
        team_name: str | None,
        installer: str | None,
    ) -> None:
        """The OAuth flow saved an installation: record the workspace (an org-wide install
        has no ``team_id``: each workspace is recorded on its first request instead) and DM
        ``installer`` how to go on. Never raises for Slack errors."""
        self.forget(team_id, enterprise_id)  # a reinstall brings a new token
        if not team_id:
            return
        record_install(
            self.sf, team_id, enterprise_id=enterprise_id, team_name=team_name, now=self.clock()
        )
        logger.info("installed in workspace %s", team_id)
        if installer:
            self.messages.dm(installer, WELCOME_TEXT, team_id=team_id)

    def served_by_org(self, team_id: str, enterprise_id: str) -> None:
        """A request from workspace ``team_id`` was authorized by the org-wide install of
        Enterprise Grid org ``enterprise_id``: record the workspace (once per process) with its
        org, as an install does. Without that row, what the bot sends on its own (status edits,
        Home tabs, DMs, which name only the team) could not find the org's installation
        (:class:`bot.slack.clients.WorkspaceClients` reads the org from it). Never raises
        (a database error is logged and tried again on the next request)."""
        key = (team_id, enterprise_id)
        with self._lock:
            if key in self._seen:
                return
        try:
            record = get_workspace(self.sf, team_id)
            if (
                record is None
                or record.enterprise_id != enterprise_id
                or record.uninstalled_at is not None
            ):
                record_install(
                    self.sf, team_id, enterprise_id=enterprise_id, team_name=None, now=self.clock()
                )
                self.forget(team_id, enterprise_id)
                logger.info(
                    "workspace %s served by the org-wide install of %s", team_id, enterprise_id
                )
        except Exception:  # the request goes on; the next one tries again
            logger.exception("workspace %s of org %s not recorded", team_id, enterprise_id)
            return
        with self._lock:
            self._seen.add(key)

    def uninstalled(self, team_id: str | None, enterprise_id: str | None) -> None:
        """``app_uninstalled`` or the bot token's ``tokens_revoked``: record it and stop posting
        there (the installation store has already dropped the tokens). An org-wide install
        leaving (``team_id`` None) records every workspace of its org as uninstalled."""
        self.forget(team_id, enterprise_id)
        now = self.clock()
        if team_id:
            teams = [team_id]
        elif enterprise_id:
            teams = [
                record.team_id
                for record in list_workspaces(self.sf, installed_only=True)
                if record.enterprise_id == enterprise_id
            ]
        else:
            teams = []
        with self._lock:
            self._seen = {key for key in self._seen if key[0] not in teams}
        for team in teams:
            if record_uninstall(self.sf, team, now=now):
                logger.info("uninstalled from workspace %s: rows kept, lifetimes still apply", team)
