"""Who the bot's admins are, per workspace.

An admin may act on anyone's deployments in their workspace, set budgets, read the credit and
approve. The bot runs on the workspace service
(:class:`bot.services.workspaces.WorkspaceService`): ``BOT_ADMINS`` and the workspace's own list,
plus, in OAuth mode, its Slack owners and admins. :class:`StaticAdmins` (``BOT_ADMINS`` only)
serves services built without it (benchmarks, tests of one service).
"""

from __future__ import annotations

from typing import Protocol


class AdminDirectory(Protocol):
    """Answers "is this user a bot admin in this workspace?"."""

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        """True when ``user_id`` is a bot admin in ``team_id``."""
        ...

    def admins(self, team_id: str | None) -> frozenset[str]:
        """The user ids listed as bot admins of ``team_id`` (for "ask one of them" texts;
        Slack's own workspace admins are not listed)."""
        ...


class StaticAdmins:
    """``BOT_ADMINS``: the same admins in every workspace."""

    def __init__(self, admins: frozenset[str]) -> None:
        self._admins = frozenset(admins)

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        """True when ``user_id`` is listed in ``BOT_ADMINS``."""
        return user_id in self._admins

    def admins(self, team_id: str | None) -> frozenset[str]:
        """``BOT_ADMINS``."""
        return self._admins
