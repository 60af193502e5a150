"""The objects every listener and job shares, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from catalog import Catalog


@dataclass
class Services:
    """What listeners hand work to: settings, the catalog, and (when built) the Vast.ai client,
    the database session factory and the background scheduler.

    Fields typed ``Any`` are filled by :mod:`bot.runtime`; they stay ``None`` in tests that only
    need the catalog.
    """

    settings: Settings
    catalog: Catalog
    vast: Any = None
    session_factory: Any = None
    scheduler: Any = None
    notifier: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def is_admin(self, user_id: str) -> bool:
        """True when ``user_id`` is listed in ``BOT_ADMINS``."""
        return user_id in self.settings.bot_admins
