"""The Vast.ai credit: a short cache, the picker's low-credit warning and the admins' report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot import pricing
from bot.formats import format_duration, money
from bot.services.accounts import VastAccounts
from bot.vast.errors import VastError
from storage import LIVE_STATUSES, DeploymentStatus, SessionFactory, list_for_team

logger = logging.getLogger(__name__)

CREDIT_CACHE_SECONDS = 60.0
WARN_BELOW_HOURS = 1.0


class CreditCache:
    """The Vast.ai credit ($, ``GET /api/v0/users/current/`` field ``credit``, docs/VAST_API.md §5),
    cached for ``ttl`` seconds so the picker stays fast. Thread-safe; :meth:`get` raises
    ``VastError`` when Vast.ai cannot be read and nothing fresh is cached."""

    def __init__(
        self,
        fetch: Callable[[], float],
        ttl: float = CREDIT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = 0.0

    def get(self, *, max_age: float | None = None) -> float:
        """The credit in $, fetched again when older than ``max_age`` (default: the ttl)."""
        limit = self._ttl if max_age is None else max_age
        with self._lock:
            if self._value is not None and self._clock() - self._at <= limit:
                return self._value
            value = float(self._fetch())
            self._value, self._at = value, self._clock()
            return value

    def forget(self) -> None:
        """Drop the cached value: the next :meth:`get` asks Vast.ai."""
        with self._lock:
            self._value = None


@dataclass(frozen=True)
class CreditReport:
    """What ``/templates credit`` shows admins: the balance in $, the live burn rate in
    $/hour and how many deployments bill right now; ``error`` (a user message) when Vast.ai
    could not be read."""

    credit: float = 0.0
    burn_dph: float = 0.0
    billing: int = 0
    error: str | None = None


class CreditService:
    """The Vast.ai balance for the picker and for admins, per workspace: each workspace reads
    the credit of its own Vast.ai account (:class:`bot.services.accounts.VastAccounts`), cached
    per account for :data:`CREDIT_CACHE_SECONDS`.

    Args:
        accounts: which Vast.ai account a workspace rents on.
        session_factory: storage's sessionmaker (for the burn rate of live deployments).
    """

    def __init__(self, accounts: VastAccounts, session_factory: SessionFactory) -> None:
        self.accounts = accounts
        self.sf = session_factory
        self._caches: dict[str, CreditCache] = {}
        self._lock = threading.Lock()

    def _cache(self, team_id: str | None) -> CreditCache:
        account = self.accounts.for_team(team_id)
        with self._lock:
            cache = self._caches.get(account.name)
            if cache is None:
                cache = self._caches[account.name] = CreditCache(account.client.get_credit)
            return cache

    def forget(self) -> None:
        """Drop every cached balance: the next read asks Vast.ai."""
        with self._lock:
            self._caches.clear()

    def warning(self, dph_total: float, *, team_id: str | None) -> str | None:
        """The picker's warning when the credit of ``team_id``'s account would last less than
        :data:`WARN_BELOW_HOURS` at ``dph_total`` ($/hour); None otherwise, and None (never an
        exception) when the credit cannot be read."""
        try:
            credit = self._cache(team_id).get()
        except Exception as error:  # the picker must not break because of the balance
            logger.info("credit not read for the picker: %s", type(error).__name__)
            return None
        hours = pricing.hours_left(credit, dph_total)
        if hours is None or hours >= WARN_BELOW_HOURS:
            return None
        if credit <= 0:
            return (
                ":warning: The Vast.ai account has no credit left "
                f"({money(credit)}): Vast.ai would stop the instance at once. "
                "Ask an admin to add credit first."
            )
        return (
            f":warning: The Vast.ai credit ({money(credit)}) lasts only about "
            f"{format_duration(hours * 3600)} at {money(dph_total)}/h; at $0 Vast.ai stops "
            "the instance. Ask an admin to add credit."
        )

    def report(self, team_id: str) -> CreditReport:
        """The balance of ``team_id``'s account (read fresh: at most 5 s old) and the burn rate
        of that workspace's live deployments."""
        try:
            credit = self._cache(team_id).get(max_age=5.0)
        except VastError as error:
            return CreditReport(error=error.user_message)
        live = [
            d
            for d in list_for_team(self.sf, team_id, LIVE_STATUSES)
            if d.status != DeploymentStatus.CREATING
        ]
        rates = [pricing.current_rate(d) for d in live]
        return CreditReport(
            credit=credit, burn_dph=sum(rates), billing=sum(1 for r in rates if r > 0)
        )
