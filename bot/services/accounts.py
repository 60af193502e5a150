"""Which Vast.ai account a workspace, or one of its deployments, rents on.

Single-workspace mode has one account: ``VAST_API_KEY``'s, or the built-in simulator's when it
is unset. In OAuth mode each workspace brings its own key (``/templates setup``, stored
encrypted); a workspace without one runs on the built-in simulator, and so does every row
marked ``simulated``, whatever key its workspace has since entered (its instance lives there).

An account is named by a stable ``name``: ``"simulator"``, ``"env"`` (``VAST_API_KEY``), or
``"vast-user:<id>"`` for a stored key (the Vast.ai user id that ``users/current`` returned when
the key was checked), so two workspaces, or two keys, of one Vast.ai user share one account and
one client: the poller makes one pass per account, and an instance is never judged by a pass
that cannot see its rows. One :class:`bot.vast.client.VastClient` per account, so each account
is paced on its own (:mod:`bot.vast.pacing`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.vast.client import VastClient
from bot.vast.errors import VastError
from storage import DeploymentRecord

SIMULATOR = "simulator"
ENV = "env"


class AccountUnavailable(VastError):
    """A deployment rented on real Vast.ai whose workspace has no key in the bot (it ran on
    ``VAST_API_KEY`` before OAuth mode, or its key was removed): its instance is out of reach,
    and must never be sent to the simulator, which would answer "done" while it bills."""

    default_user_message = (
        "The bot has no Vast.ai key for the account this deployment runs on, so nothing was "
        "done and the instance is still running (and billing). A workspace admin can enter that "
        "account's key with `/templates setup`; until then, stop it in the Vast.ai console."
    )


@dataclass(frozen=True)
class StoredKey:
    """A workspace's Vast.ai key as the settings store gives it: the key in clear (decrypted
    only in memory, never logged) and the Vast.ai user id it belongs to."""

    api_key: str
    vast_user_id: str

    def __repr__(self) -> str:  # never the key
        return f"StoredKey(vast_user_id={self.vast_user_id!r})"


@dataclass(frozen=True)
class VastAccount:
    """One Vast.ai account: its ``name`` (see the module docstring), the client that talks to
    it, and whether it is the built-in simulator (messages then say "simulated")."""

    name: str
    client: VastClient
    simulated: bool

    def __repr__(self) -> str:
        return f"VastAccount(name={self.name!r}, simulated={self.simulated})"


class VastAccounts:
    """Resolves workspaces and deployments to their :class:`VastAccount`.

    Args:
        default: the account of single-workspace mode (``env`` or ``simulator``); in OAuth mode
            the simulator's account, used by workspaces without a key.
        stored_key: OAuth mode only: ``team_id -> StoredKey | None`` (the workspace's key, or
            None when it has none). None: single-workspace mode, every team gets ``default``.
        make_client: builds the client of a stored key (``api_key -> VastClient``).
        simulator: the simulator's account when it is not ``default`` (single-workspace mode
            with ``VAST_API_KEY`` set has none: its rows are never simulated).
    """

    def __init__(
        self,
        default: VastAccount,
        *,
        stored_key: Callable[[str], StoredKey | None] | None = None,
        make_client: Callable[[str], VastClient] | None = None,
        simulator: VastAccount | None = None,
    ) -> None:
        self.default = default
        self.simulator = simulator or (default if default.simulated else None)
        self._stored_key = stored_key
        self._make_client = make_client
        # sha256 of the key -> (account name, client): one client per key, never closed while
        # the process runs (another thread may be using it); two keys of one Vast.ai user are
        # one account with two clients.
        self._clients: dict[str, tuple[str, VastClient]] = {}
        self._lock = threading.Lock()

    @classmethod
    def single(cls, client: VastClient, *, simulated: bool) -> VastAccounts:
        """Single-workspace mode: every workspace and row on ``client`` (``VAST_API_KEY``'s
        account, or the built-in simulator's when ``simulated``)."""
        return cls(VastAccount(SIMULATOR if simulated else ENV, client, simulated))

    @property
    def multi(self) -> bool:
        """True in OAuth mode (accounts per workspace)."""
        return self._stored_key is not None

    def for_team(self, team_id: str | None) -> VastAccount:
        """The account new rentals of ``team_id`` go to (the simulator's while it has no key).

        Raises whatever the settings store raises (e.g. a database error)."""
        if self._stored_key is None or not team_id:
            return self.default
        stored = self._stored_key(team_id)
        if stored is None:
            return self.simulator or self.default
        return self._account(stored)

    def for_deployment(self, dep: DeploymentRecord) -> VastAccount:
        """The account ``dep``'s instance lives on: the simulator's for a simulated row, else
        its workspace's (:meth:`for_team`).

        Raises :class:`AccountUnavailable` for a row rented on real Vast.ai whose workspace has
        no key now (never the simulator for it), and whatever the settings store raises."""
        return self.for_row(dep.team_id, dep.simulated)

    def for_row(self, team_id: str, simulated: bool) -> VastAccount:
        """:meth:`for_deployment` from the two columns that decide it (the poller reads only
        those for the rows it follows)."""
        if simulated and self.simulator is not None:
            return self.simulator
        account = self.for_team(team_id)
        if account.simulated and not simulated:
            raise AccountUnavailable(f"workspace {team_id} has no key for its Vast.ai rows")
        return account

    def _account(self, stored: StoredKey) -> VastAccount:
        name = f"vast-user:{stored.vast_user_id}"
        digest = hashlib.sha256(stored.api_key.encode()).hexdigest()
        with self._lock:
            cached = self._clients.get(digest)
            if cached is None:
                if self._make_client is None:
                    raise RuntimeError("VastAccounts has stored keys but no make_client")
                cached = (name, self._make_client(stored.api_key))
                self._clients[digest] = cached
            return VastAccount(name=name, client=cached[1], simulated=False)

    def close(self) -> None:
        """Close the clients built for stored keys (``default`` and the simulator's are closed
        by whoever built them)."""
        with self._lock:
            for _, client in self._clients.values():
                client.close()
            self._clients.clear()
