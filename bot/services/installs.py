"""Installs and uninstalls of the app in workspaces (OAuth mode, issue 13).

Bolt's OAuth flow keeps the installations themselves (slack_sdk's installation store); this
service records the workspace side in the bot's own ``workspaces`` table and drops what the
process holds for a workspace that left. An uninstalled workspace keeps its rows (the audit
trail) and the poller keeps applying its lifetimes, so nothing it left running bills for ever;
the bot only stops posting to it (it has no token there any more).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.services.ports import Messages
from storage import SessionFactory, record_install, record_uninstall, utcnow

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
            (:meth:`bot.slack_clients.WorkspaceClients.forget`).
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

    def uninstalled(self, team_id: str | None, enterprise_id: str | None) -> None:
        """``app_uninstalled`` or the bot token's ``tokens_revoked``: record it and stop posting
        there (the installation store has already dropped the tokens)."""
        self.forget(team_id, enterprise_id)
        if team_id and record_uninstall(self.sf, team_id, now=self.clock()):
            logger.info("uninstalled from workspace %s: rows kept, lifetimes still apply", team_id)
