"""Which Slack token a message goes out with: one bot token per installed workspace.

Listeners answer with the token Bolt authorized the request with. Everything the bot sends on
its own (status messages and their edits, thread replies, DMs, Home tabs, reminders, digests,
approvals, budget notices) has no request: :class:`WorkspaceClients` gives the
``WebClient`` of the workspace a message concerns, and :class:`WorkspaceNotifiers` the
:class:`bot.slack.notifier.Notifier` on it (or one that sends nothing).

* **Single-workspace mode** (no installation store): always the one client, whatever the
  workspace (``SLACK_BOT_TOKEN``), as before OAuth existed.
* **OAuth mode**: the bot token of the workspace's installation in slack_sdk's
  ``InstallationStore``, found the way Bolt's ``InstallationStoreAuthorize`` finds it for a
  request (``slack_bolt/authorization/authorize.py``): ``find_installation`` (the latest
  installation of the workspace), else ``find_bot``; an org-wide Enterprise Grid install is
  stored with ``team_id`` None and found by its ``enterprise_id``
  (``is_enterprise_install=True``). A bot token that expires within
  ``rotation_minutes`` (token rotation: ``bot_token_expires_at``) is rotated with slack_sdk's
  ``TokenRotator`` (``oauth.v2.access`` with ``grant_type=refresh_token``) and the rotated
  installation saved back in the store, as Bolt does. No installation: None, and nothing is
  sent (a message that names no workspace is never sent to some other one).

Tokens are cached for ``cache_seconds`` (never past the point where they need rotating), and
with ``store_version`` only while the installation store's version is the one they were read
under (an uninstall or a rotation by any process changes it:
:mod:`bot.slack.installation_cache`); :meth:`WorkspaceClients.forget` drops a workspace's entry (on
uninstall, or when Slack answers ``token_revoked`` / ``invalid_auth``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.token_rotation import TokenRotator

from bot.slack.notifier import (
    NOT_INSTALLED,
    REFUSED,
    TOKEN_UNAVAILABLE,
    UNAVAILABLE,
    Notifier,
    NotSent,
    SlackResult,
    copy_client,
    without_rate_limit_retries,
)

logger = logging.getLogger(__name__)

#: Seconds a workspace's token is reused before the store is read again.
CACHE_SECONDS = 60.0
#: A bot token expiring within this many minutes is rotated first (Bolt's default, 120).
ROTATION_MINUTES = 120

_Key = tuple[str | None, str | None]  # (enterprise_id, team_id) as asked


class TokenUnavailable(Exception):
    """The workspace's token could not be read or rotated just now (the installation store's
    database, or Slack's ``oauth.v2.access``, failed or is rate-limited): worth trying again.
    ``str()`` is one line and never holds a token."""


@dataclass
class _Cached:
    token: str
    until: float  # clock seconds after which the store is read again
    source: _Key  # the installation it came from: (enterprise_id, team_id or None if org-wide)
    version: str  # the store version it was read under ("" without store_version)
    clients: dict[bool, WebClient] = field(default_factory=dict)  # by rate_limit_retries


@dataclass(frozen=True)
class _Found:
    token: str
    expires_at: int | None
    source: _Key


class WorkspaceClients:
    """The ``WebClient`` of each workspace (see the module docstring). Thread-safe.

    Args:
        client: the base client (a :class:`bot.slack.app.CheckedWebClient` on ``SLACK_API_URL``
            with its retry handlers); workspace clients are copies of it with their token
            (:func:`bot.slack.notifier.copy_client`). In single-workspace mode it is the client.
        installation_store: slack_sdk's store of installations (OAuth mode); None for
            single-workspace mode.
        client_id, client_secret: the app's credentials, for token rotation (without them an
            installation with a refresh token is used as it is until its token expires).
        clock: epoch seconds (``time.time``), compared with ``bot_token_expires_at``.
        enterprise_of: ``team_id -> enterprise_id | None`` (the bot's workspace record), used
            when a caller names only the team of a workspace in an Enterprise Grid org.
        cache_seconds: how long a token is reused. rotation_minutes: rotate a bot token that
            expires within this many minutes.
        store_version: the installation store's version (e.g. :meth:`bot.slack.installation_cache.
            CachedInstallationStore.version`), compared before each use of a cached token: a
            changed version means the store is read again (an uninstall or a rotation by any
            process is seen as soon as the version is). None: the token is reused for
            ``cache_seconds``.
    """

    def __init__(
        self,
        client: WebClient,
        *,
        installation_store: InstallationStore | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        enterprise_of: Callable[[str], str | None] | None = None,
        cache_seconds: float = CACHE_SECONDS,
        rotation_minutes: int = ROTATION_MINUTES,
        store_version: Callable[[], str] | None = None,
    ) -> None:
        self.client = client
        self.store = installation_store
        self.clock = clock
        self.enterprise_of = enterprise_of
        self.cache_seconds = cache_seconds
        self.rotation_minutes = rotation_minutes
        self.store_version = store_version
        self.rotator = (
            TokenRotator(
                client_id=client_id,
                client_secret=client_secret,
                client=copy_client(client, token=None),
            )
            if client_id and client_secret
            else None
        )
        self._paced = without_rate_limit_retries(client)
        self._cache: dict[_Key, _Cached] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[_Key, threading.Lock] = {}

    @property
    def oauth(self) -> bool:
        """True in OAuth mode (an installation store was given)."""
        return self.store is not None

    def client_for(
        self,
        team_id: str | None,
        enterprise_id: str | None = None,
        *,
        rate_limit_retries: bool = True,
    ) -> WebClient | None:
        """The client to send to workspace ``team_id`` (of org ``enterprise_id``) with.

        Single-workspace mode: the one client (``team_id`` is not looked at). OAuth mode: a
        copy of the base client with the installation's bot token (rotated first when it
        expires soon); None when the workspace has no installation, or when ``team_id`` and
        ``enterprise_id`` are both None. ``rate_limit_retries=False``: the copy that does not
        wait out 429s itself (:func:`bot.slack.notifier.without_rate_limit_retries`; the outbox's).

        Raises :class:`TokenUnavailable` when the store or a needed rotation failed for a
        reason worth retrying (database error, Slack unavailable).
        """
        if self.store is None:
            return self.client if rate_limit_retries else self._paced
        key: _Key = (enterprise_id or None, team_id or None)
        if key == (None, None):
            return None
        with self._key_lock(key):
            now = self.clock()
            version = self._version()
            with self._lock:
                cached = self._cache.get(key)
            if cached is None or cached.until <= now or cached.version != version:
                found = self._find(*key)
                if found is None:
                    with self._lock:
                        self._cache.pop(key, None)
                    return None
                until = now + self.cache_seconds
                if found.expires_at is not None:
                    until = min(until, found.expires_at - self.rotation_minutes * 60)
                cached = _Cached(found.token, until, found.source, version)
                with self._lock:
                    self._cache[key] = cached
            client = cached.clients.get(rate_limit_retries)
            if client is None:
                base = self.client if rate_limit_retries else self._paced
                client = cached.clients[rate_limit_retries] = copy_client(base, token=cached.token)
            return client

    def forget(self, team_id: str | None, enterprise_id: str | None = None) -> None:
        """Drop the cached token of workspace ``team_id`` (whatever org it is in), or with
        ``team_id`` None the org-wide install of ``enterprise_id`` and every workspace it
        served: the next message reads the store again (after an uninstall: nothing there,
        nothing sent)."""
        with self._lock:
            for key, cached in list(self._cache.items()):
                if team_id is not None:
                    gone = team_id in (key[1], cached.source[1])
                else:
                    gone = enterprise_id is not None and (enterprise_id, None) in (
                        key,
                        cached.source,
                    )
                if gone:
                    del self._cache[key]

    # -- the store -------------------------------------------------------------------------

    def _version(self) -> str:
        """The store version now ("" without ``store_version``); a database error is
        :class:`TokenUnavailable` (worth trying again), as a failed store read is."""
        if self.store_version is None:
            return ""
        try:
            return self.store_version()
        except Exception as error:
            raise TokenUnavailable(f"installation store version: {type(error).__name__}") from error

    def _key_lock(self, key: _Key) -> threading.Lock:
        """One lock per workspace: one store read and one rotation at a time (a refresh
        token is not used twice by two threads)."""
        with self._lock:
            lock = self._key_locks.get(key)
            if lock is None:
                lock = self._key_locks[key] = threading.Lock()
            return lock

    def _find(self, enterprise_id: str | None, team_id: str | None) -> _Found | None:
        """The workspace's installation: its own (``enterprise_id``, ``team_id``), else its
        org's org-wide install (stored with ``team_id`` None)."""
        if enterprise_id is None and team_id is not None and self.enterprise_of is not None:
            try:
                enterprise_id = self.enterprise_of(team_id)
            except Exception as error:  # the workspace record: a database hiccup
                raise TokenUnavailable(f"workspace {team_id}: {type(error).__name__}") from error
        places: list[tuple[str | None, str | None, bool]] = []
        if team_id is not None:
            places.append((enterprise_id, team_id, False))
        if enterprise_id is not None:
            places.append((enterprise_id, None, True))
        for enterprise, team, org_wide in places:
            try:
                found = self._find_at(enterprise, team, org_wide)
            except TokenUnavailable:
                raise
            except SlackTokenRotationError as error:  # Slack refused the refresh token
                logger.error(
                    "workspace %s: token rotation refused: %s",
                    team or enterprise,
                    _rotation_code(error),
                )
                return None
            except Exception as error:  # the store's database
                raise TokenUnavailable(
                    f"workspace {team or enterprise}: installation store: {type(error).__name__}"
                ) from error
            if found is not None:
                return found
        logger.info("workspace %s: no installation", team_id or enterprise_id)
        return None

    def _find_at(
        self, enterprise_id: str | None, team_id: str | None, org_wide: bool
    ) -> _Found | None:
        """As Bolt's ``InstallationStoreAuthorize`` (bot token only): the latest installation
        and its rotation, else ``find_bot`` and its rotation."""
        assert self.store is not None
        source: _Key = (enterprise_id, team_id)
        try:
            installation = self.store.find_installation(
                enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org_wide
            )
        except NotImplementedError:
            installation = None
        if installation is not None and installation.bot_token:
            rotated = self._rotate_installation(installation)
            if rotated is not None:
                installation = rotated
            if installation.bot_token:
                return _Found(
                    installation.bot_token, _epoch(installation.bot_token_expires_at), source
                )
        bot = self.store.find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=org_wide
        )
        if bot is None or not bot.bot_token:
            return None
        rotated_bot = self._rotate_bot(bot)
        if rotated_bot is not None:
            bot = rotated_bot
        return _Found(bot.bot_token, _epoch(bot.bot_token_expires_at), source)

    def _rotate_installation(self, installation: Installation) -> Installation | None:
        """The rotated installation, saved in the store; None when no rotation is due (or
        none is possible: no refresh token, no client credentials)."""
        if self.rotator is None or installation.bot_refresh_token is None:
            return None
        if not self._due(installation.bot_token_expires_at):
            return None
        rotated = self._rotating(
            lambda: self.rotator.perform_token_rotation(  # type: ignore[union-attr]
                installation=installation, minutes_before_expiration=self.rotation_minutes
            ),
            installation.team_id or installation.enterprise_id,
        )
        if rotated is not None:
            assert self.store is not None
            self.store.save(rotated)
            logger.info("workspace %s: bot token rotated", rotated.team_id or rotated.enterprise_id)
        return rotated

    def _rotate_bot(self, bot: Bot) -> Bot | None:
        """As :meth:`_rotate_installation`, for a bot found with ``find_bot``."""
        if self.rotator is None or bot.bot_refresh_token is None:
            return None
        if not self._due(bot.bot_token_expires_at):
            return None
        rotated = self._rotating(
            lambda: self.rotator.perform_bot_token_rotation(  # type: ignore[union-attr]
                bot=bot, minutes_before_expiration=self.rotation_minutes
            ),
            bot.team_id or bot.enterprise_id,
        )
        if rotated is not None:
            assert self.store is not None
            self.store.save_bot(rotated)
            logger.info("workspace %s: bot token rotated", rotated.team_id or rotated.enterprise_id)
        return rotated

    def _due(self, expires_at: int | None) -> bool:
        epoch = _epoch(expires_at)
        return epoch is not None and epoch <= self.clock() + self.rotation_minutes * 60

    def _rotating(self, rotate: Callable[[], Any], workspace: str | None) -> Any:
        """Run ``rotate``; Slack unavailable (429, 5xx, network) → :class:`TokenUnavailable`;
        Slack refusing (``invalid_refresh_token``, …) → ``SlackTokenRotationError``."""
        try:
            return rotate()
        except SlackTokenRotationError as error:
            api_error = error.api_error
            status = int(getattr(api_error.response, "status_code", 200) or 200)
            if status == 429 or status >= 500:
                raise TokenUnavailable(
                    f"workspace {workspace}: token rotation: HTTP {status}"
                ) from error
            raise
        except (SlackApiError, OSError, TimeoutError) as error:  # URLError is an OSError
            raise TokenUnavailable(
                f"workspace {workspace}: token rotation: {type(error).__name__}"
            ) from error


def _epoch(value: int | None) -> int | None:
    """``bot_token_expires_at`` (epoch seconds; slack_sdk's ``Bot`` and ``Installation``
    turn a stored datetime into them)."""
    return None if value is None else int(value)


def _rotation_code(error: SlackTokenRotationError) -> str:
    response = getattr(error.api_error, "response", None)
    code = response.get("error") if response is not None else None
    return str(code or type(error.api_error).__name__)


class WorkspaceNotifiers:
    """A :class:`bot.slack.notifier.Notifier` per workspace, on :class:`WorkspaceClients`.

    Calling it (``notifiers(team_id, enterprise_id)``) gives the workspace's notifier, or a
    :class:`bot.slack.notifier.NotSent` one: ``refused`` :data:`bot.slack.notifier.NOT_INSTALLED`
    when
    the workspace has no installation (or none is named, in OAuth mode), ``unavailable``
    :data:`bot.slack.notifier.TOKEN_UNAVAILABLE` when its token cannot be had just now. A token
    Slack refuses (revoked) drops the workspace's cached token.

    ``rate_limit_retries=False``: notifiers on clients that do not wait out 429s (the
    outbox's, which pauses its queue on ``Retry-After`` instead); :meth:`send` is then the
    outbox's ``send``.
    """

    def __init__(self, clients: WorkspaceClients, *, rate_limit_retries: bool = True) -> None:
        self.clients = clients
        self.rate_limit_retries = rate_limit_retries

    def __call__(self, team_id: str | None, enterprise_id: str | None = None) -> Notifier:
        """The notifier for workspace ``team_id`` (see the class docstring); never raises."""
        where = team_id or enterprise_id or "(none named)"
        try:
            client = self.clients.client_for(
                team_id, enterprise_id, rate_limit_retries=self.rate_limit_retries
            )
        except TokenUnavailable as error:
            return NotSent(
                self.clients.client, SlackResult(UNAVAILABLE, TOKEN_UNAVAILABLE), str(error)
            )
        if client is None:
            return NotSent(
                self.clients.client,
                SlackResult(REFUSED, NOT_INSTALLED),
                f"workspace {where} has no installation",
            )
        return Notifier(client, on_auth_error=lambda: self.clients.forget(team_id, enterprise_id))

    def send(self, workspace: str, method: str, kwargs: dict[str, Any]) -> SlackResult:
        """One call in ``workspace`` (a team id; "" or unknown: not sent in OAuth mode), never
        raising: the outbox's ``send`` (:data:`bot.slack.outbox.Send`)."""
        return self(workspace or None).call(method, **kwargs)
