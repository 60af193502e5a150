"""OAuth mode: the installations each process found, kept in memory for a short while.

Bolt authorizes every request from the installation store (``InstallationStoreAuthorize``:
``find_installation`` of the workspace, then of the requesting user; slack_bolt's
``slack_bolt/authorization/authorize.py``), and :class:`bot.slack.clients.WorkspaceClients`
reads it for every workspace it sends to. Each read is two or three SQL queries and the
decryption of the tokens (:class:`bot.slack.token_store.SealedInstallationStore`).
:class:`CachedInstallationStore` keeps what ``find_installation`` and ``find_bot`` answered for
at most ``ttl_seconds``, under the **store version** it read first
(:mod:`storage.installations_version`, one ``bot_state`` row):

* every lookup compares the version (one primary-key read, reused for at most
  ``version_seconds``: Bolt's two lookups of a request, and the requests of one second, share
  one read) and serves its cached answer only when the version is unchanged and the entry is
  younger than ``ttl_seconds``;
* every write through this store (``save`` by the OAuth redirect or a token rotation,
  ``save_bot``, ``delete_*`` by an uninstall or a revoked token) gives the version a new value
  once its own write has committed, so the store is read again: at once in the process that
  wrote, and within ``version_seconds`` (1 s by default) in every other process, not after the
  TTL. Both are far shorter than Slack's own delay in sending ``app_uninstalled``, and a token
  Slack revoked is refused by Slack meanwhile anyway;
* "no installation" is kept too (Bolt asks for the requesting user's own installation on every
  request, and there is none for anyone but the installer), under the same version, so a fresh
  install, which bumps it, works at once in every process; for at most
  ``not_found_seconds`` (shorter), which bounds the one case the version cannot cover below.

A lookup's version is read *before* the store, so an answer read while another process was
changing the store is kept under the old version, which that change has already replaced: it
is read again on the next lookup. Only a process that dies between its write and the version
change can leave others serving the old answer, for at most ``ttl_seconds`` (or
``not_found_seconds`` for a "not installed").

The cache holds the decrypted ``Installation``/``Bot`` objects the sealed store returns (plain
tokens in this process's memory, as each request already holds them), for at most
``ttl_seconds``; entries read under an older version are dropped as soon as a lookup sees the
new one. Callers get copies, so nothing they change reaches the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from logging import Logger
from typing import Any, TypeVar

from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore

#: How long a found installation is served from memory at most, seconds.
CACHE_TTL_SECONDS = 30.0
#: How long a "not installed" answer is served from memory at most, seconds.
NOT_FOUND_SECONDS = 5.0
#: How long one read of the store version is reused, seconds.
VERSION_SECONDS = 1.0

_Found = TypeVar("_Found", Installation, Bot)


@dataclass(frozen=True)
class _Entry:
    version: str
    until: float
    value: Any  # an Installation or a Bot, as the key says, or None (not installed)


class CachedInstallationStore(InstallationStore):
    """``inner`` (the sealed store) with a per-process cache of its answers (see the module
    docstring).

    Args:
        inner: the installation store every read and write goes to.
        read_version: the store version, e.g. ``lambda: read_installations_version(engine)``
            (its errors propagate, as the store's would).
        bump_version: gives the version a new value and returns it; called after each write.
        version_seconds: how long one read of the version is reused (0: every lookup reads
            it).
        ttl_seconds: how long an answer is served from memory at most (0: never).
        not_found_seconds: the same for "not installed" (None) answers.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        inner: InstallationStore,
        *,
        read_version: Callable[[], str],
        bump_version: Callable[[], str],
        ttl_seconds: float = CACHE_TTL_SECONDS,
        not_found_seconds: float = NOT_FOUND_SECONDS,
        version_seconds: float = VERSION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.read_version = read_version
        self.bump_version = bump_version
        self.ttl_seconds = ttl_seconds
        self.not_found_seconds = not_found_seconds
        self.version_seconds = version_seconds
        self._version: tuple[str, float] | None = None  # (value, clock when read)
        self.clock = clock
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._lock = threading.Lock()

    @property
    def logger(self) -> Logger:
        return self.inner.logger

    def entries(self) -> int:
        """Entries held now (for tests and diagnostics). Not ``__len__``: an empty store must
        stay truthy (Bolt's settings replace a falsy ``installation_store`` with a default)."""
        with self._lock:
            return len(self._entries)

    # -- reads -----------------------------------------------------------------------------

    def version(self) -> str:
        """The store version: read from the database, or the read of the last
        ``version_seconds`` (a write through this store sets it at once). Raises what
        ``read_version`` raises."""
        now = self.clock()
        with self._lock:
            memo = self._version
        if memo is not None and now < memo[1] + self.version_seconds:
            return memo[0]
        value = self.read_version()
        with self._lock:
            self._version = (value, now)
        return value

    def _cached(
        self, key: tuple[Any, ...], kind: type[_Found], load: Callable[[], _Found | None]
    ) -> _Found | None:
        version = self.version()
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and now < entry.until:
                return None if entry.value is None else _copy(entry.value, kind)
            # Anything read under another version is stale: drop it (and its plain tokens).
            self._entries = {
                k: e for k, e in self._entries.items() if e.version == version and now < e.until
            }
        value = load()
        seconds = self.ttl_seconds if value is not None else self.not_found_seconds
        with self._lock:
            if seconds > 0:
                kept = None if value is None else _copy(value, kind)
                self._entries[key] = _Entry(version, now + seconds, kept)
            else:
                self._entries.pop(key, None)
        return value

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The inner store's ``find_bot``, from memory when the version is unchanged."""
        return self._cached(
            ("bot", enterprise_id, team_id, bool(is_enterprise_install)),
            Bot,
            lambda: self.inner.find_bot(
                enterprise_id=enterprise_id,
                team_id=team_id,
                is_enterprise_install=is_enterprise_install,
            ),
        )

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The inner store's ``find_installation``, from memory when the version is
        unchanged."""
        return self._cached(
            ("installation", enterprise_id, team_id, user_id, bool(is_enterprise_install)),
            Installation,
            lambda: self.inner.find_installation(
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                is_enterprise_install=is_enterprise_install,
            ),
        )

    # -- writes: the inner store's, then a new version -------------------------------------

    def _changed(self) -> None:
        """After a write: forget this process's entries and give the version a new value (its
        error propagates: the caller's write is then retried, as for a store error)."""
        with self._lock:
            self._entries = {}
            self._version = None
        value = self.bump_version()
        with self._lock:
            self._version = (value, self.clock())

    def save(self, installation: Installation) -> None:
        self.inner.save(installation)
        self._changed()

    def save_bot(self, bot: Bot) -> None:
        self.inner.save_bot(bot)
        self._changed()

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.inner.delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        self._changed()

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        self.inner.delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )
        self._changed()

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        self.inner.delete_all(enterprise_id=enterprise_id, team_id=team_id)
        self._changed()


def _copy(value: _Found, kind: type[_Found]) -> _Found:
    """A copy of ``value`` (slack_sdk's own copying constructor arguments)."""
    return kind(**value.to_dict_for_copying())
