"""Settings per workspace: each workspace's effective settings, who its admins are,
and its Vast.ai key.

A workspace keeps its own overrides in the database (``workspaces.settings_json``, written by
:func:`storage.save_workspace_settings`); a setting it has not set falls back to the bot's
environment (:class:`bot.config.Settings`). :meth:`WorkspaceService.settings_for` merges the
two into one frozen :class:`WorkspaceSettings`.

The Vast.ai key of a workspace is entered by one of its admins in ``/templates setup``, checked
with Vast.ai (``GET /api/v0/users/current/`` with the candidate key) before anything is saved,
and stored only encrypted (``bot.crypto.SecretBox``, Fernet). The key is never logged, never
returned to Slack and never shown again, except as "key ending …a1b2". Keys are taken when the
service has a cipher and the environment does not impose one: in OAuth mode always, in
single-workspace mode only while ``VAST_API_KEY`` is unset (the environment wins).

Admins of a workspace (:meth:`WorkspaceService.is_admin`) are ``BOT_ADMINS``, the workspace's
own editable list, and its Slack owners and admins (``users.info`` ``is_owner``/``is_admin``,
read through a :data:`RoleReader` and cached for :data:`ROLE_CACHE_SECONDS`).

This module imports no Slack SDK: Slack reads go through the :data:`RoleReader` its callers
give (the listeners build one on their own workspace's client).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from bot.config import Settings
from bot.services.accounts import StoredKey
from bot.services.budgets import BudgetPolicy
from bot.services.rules.policy import LifetimePolicy
from bot.vast.client import VastClient
from bot.vast.errors import AuthError, VastError
from storage import (
    SessionFactory,
    WorkspaceRecord,
    count_live_real_deployments,
    get_workspace,
    list_workspaces,
    live_real_instance_ids,
    save_vast_key,
    save_workspace_settings,
    utcnow,
)

logger = logging.getLogger(__name__)

ROLE_CACHE_SECONDS = 600.0
"""How long a user's Slack role (``users.info`` is_admin / is_owner) is trusted: a new Slack
admin may wait this long before ``/templates setup`` lets them in."""
KEY_CACHE_SECONDS = 15.0
"""How long :meth:`WorkspaceService.stored_key` reuses a decrypted key read from the database
(a key saved by this process replaces it at once; another process sees it within this)."""
KEYS_URL = "https://cloud.vast.ai/manage-keys/"
"""Where a Vast.ai user copies an API key."""

ADMINS = "admins"
APPROVERS = "approvers"
APPROVAL_DPH = "approval_dph"
DIGEST_CHANNEL = "digest_channel"
DEFAULT_LIFETIME = "default_lifetime_hours"
MAX_LIFETIME = "max_lifetime_hours"
SETTING_NAMES = (ADMINS, APPROVERS, APPROVAL_DPH, DIGEST_CHANNEL, DEFAULT_LIFETIME, MAX_LIFETIME)
"""The names a workspace may override (keys of ``settings_json`` and of
:meth:`WorkspaceService.save_settings`'s ``changes``)."""

MAX_LIFETIME_HOURS = 24 * 365
MAX_APPROVAL_DPH = 10_000.0
MAX_PEOPLE = 100
"""Users in the admins or approvers list."""

KEY_REFUSED = "Vast.ai did not accept this key ({reason}). Copy it again from " + KEYS_URL
KEY_UNREACHABLE = (
    "Vast.ai could not be reached to check the key; nothing was saved, try again in a minute"
)
KEY_SHAPE = (
    "That does not look like a Vast.ai API key (it is empty, too long or has spaces or unusual "
    f"characters). Copy it again from {KEYS_URL}"
)
KEY_NO_ACCOUNT = (
    "Vast.ai accepted the key but did not say which account it belongs to; nothing was saved, "
    "try again in a minute"
)

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,30}")
_KEY = re.compile(r"[!-~]{4,256}")  # printable ASCII, no spaces

Setting = frozenset[str] | float | str | None
"""A parsed setting's value (people, $/hour or hours, a channel id; None: the default)."""

KeySource = Literal["workspace", "env", "none"]
"""Where a workspace's Vast.ai key comes from: entered in setup (``workspace``; none yet means
the simulator), ``VAST_API_KEY`` (``env``), or nowhere: the bot runs on the simulator and no key
can be entered (single-workspace mode without ``VAST_API_KEY`` nor ``ENCRYPTION_KEY``)."""


@dataclass(frozen=True)
class SlackRole:
    """A user's role in their Slack workspace (``users.info``: ``is_admin``, ``is_owner``)."""

    is_admin: bool
    is_owner: bool


RoleReader = Callable[[str, str], SlackRole | None]
"""``(team_id, user_id) -> SlackRole | None``: reads a user's role from Slack; None when Slack
could not say (refused, unreachable, slow). It should give up within about 2 s."""


class Cipher(Protocol):
    """What the service needs of ``bot.crypto.SecretBox``."""

    def encrypt(self, text: str) -> str: ...

    def decrypt(self, token: str) -> str: ...


class VastUserLike(Protocol):
    """What a key check returns (``bot.vast.models.User``): the account's Vast.ai user id."""

    @property
    def id(self) -> int | None: ...


InstanceCheck = Callable[[str, Sequence[int]], set[int]]
"""``(api_key, instance ids) -> the ids among them on that key's Vast.ai account``. Raises
``bot.vast.errors.AuthError`` for a key Vast.ai refuses, another ``VastError`` when it cannot
tell."""

KeyCheck = Callable[[str], VastUserLike]
"""``api_key -> user``: ``GET /api/v0/users/current/`` with that key. Raises
``bot.vast.errors.AuthError`` for a key Vast.ai refuses, another ``VastError`` when it cannot
tell (unreachable, rate-limited, an answer it cannot read)."""


@dataclass(frozen=True)
class WorkspaceSettings:
    """The effective settings of one workspace: its own value where it set one, else the
    environment's.

    Attributes:
        team_id: the workspace (``T…``).
        admins: the workspace's editable list of extra bot admins (Slack user ids); empty by
            default. ``BOT_ADMINS`` (``bot_admins``) and Slack's owners/admins are admins too.
        approvers: who decides approvals (``APPROVERS`` by default); empty: the admins.
        approval_dph: rentals above this price ($/hour) need approval (``APPROVAL_DPH``);
            None: no price threshold.
        digest_channel: channel id of the daily digest (``DIGEST_CHANNEL``); None: no digest.
        default_lifetime_hours / max_lifetime_hours: the picker's default run length and the
            longest one allowed for non-admins (hours; default ≤ max).
        vast_key_hint: "key ending …a1b2" for the workspace's stored key (or ``VAST_API_KEY``
            when that is the key), None without one.
        vast_user_id: the Vast.ai user id of the stored key (None without one).
        simulated: True when rentals go to the built-in simulator (OAuth mode: no key yet;
            single-workspace mode: no ``VAST_API_KEY`` and no stored key).
        key_source: see :data:`KeySource`.
        overridden: the names (:data:`SETTING_NAMES`) this workspace set itself.
        bot_admins: ``BOT_ADMINS`` (the environment's admins, in every workspace).
    """

    team_id: str
    admins: frozenset[str]
    approvers: frozenset[str]
    approval_dph: float | None
    digest_channel: str | None
    default_lifetime_hours: float
    max_lifetime_hours: float
    vast_key_hint: str | None
    vast_user_id: str | None
    simulated: bool
    key_source: KeySource
    overridden: frozenset[str] = frozenset()
    bot_admins: frozenset[str] = frozenset()

    @property
    def listed_admins(self) -> frozenset[str]:
        """``BOT_ADMINS`` plus the workspace's list (Slack's owners and admins not included:
        they are read from Slack per user)."""
        return self.bot_admins | self.admins

    @property
    def approver_ids(self) -> frozenset[str]:
        """Who decides approvals: :attr:`approvers`, else :attr:`listed_admins`."""
        return self.approvers or self.listed_admins


@dataclass(frozen=True)
class CheckedKey:
    """A Vast.ai key that Vast.ai accepted for ``team_id`` (not saved yet): ``api_key`` in clear
    (never in ``repr``), ``last4`` its last characters, ``vast_user_id`` its account."""

    team_id: str
    api_key: str = field(repr=False)
    last4: str
    vast_user_id: str


@dataclass(frozen=True)
class KeyOutcome:
    """What :meth:`WorkspaceService.set_vast_key` did: ``saved``, and ``message`` (the
    confirmation, or why nothing was saved; never the key)."""

    saved: bool
    message: str
    last4: str | None = None
    vast_user_id: str | None = None


class KeyRefused(Exception):
    """A key was not saved; ``str()`` is the sentence for the modal's key field (no key in it)."""


class SettingsError(Exception):
    """Settings that do not validate: ``errors`` maps a setting name (:data:`SETTING_NAMES`)
    to the sentence for its field. Nothing was saved."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in errors.items()))
        self.errors = dict(errors)


def key_hint(last4: str | None) -> str | None:
    """``"key ending …a1b2"``, or None without ``last4``."""
    return f"key ending …{last4}" if last4 else None


def _last4(key: str) -> str:
    return key[-4:]


class WorkspaceService:
    """Effective settings, admins and the Vast.ai key of each workspace.

    Args:
        session_factory: storage's sessionmaker.
        box: encrypts and decrypts stored keys (``bot.crypto.SecretBox``); None: no key can be
            stored (single-workspace mode without ``ENCRYPTION_KEY``).
        check_key: asks Vast.ai ``users/current`` with a candidate key (:data:`KeyCheck`).
        settings: the environment's settings (the defaults, ``BOT_ADMINS``, ``VAST_API_KEY``,
            OAuth mode or not).
        roles: the default :data:`RoleReader` (None: only the one given per call, if any).
        sees_instances: :data:`InstanceCheck`, which instances a candidate key's account holds
            (the first key of a workspace whose deployments already run on Vast.ai must be of
            their account); None: such a first key is refused.
        clock: aware UTC now (the audit's times).
        monotonic: seconds for the caches (tests move it).
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        box: Cipher | None,
        check_key: KeyCheck,
        settings: Settings,
        roles: RoleReader | None = None,
        sees_instances: InstanceCheck | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sf = session_factory
        self._box = box
        self._check_key = check_key
        self._sees_instances = sees_instances
        self._settings = settings
        self._roles = roles
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._role_cache: dict[tuple[str, str], tuple[float, SlackRole]] = {}
        self._key_cache: dict[str, tuple[float, StoredKey | None]] = {}

    # -- modes -------------------------------------------------------------------------------

    @property
    def oauth_mode(self) -> bool:
        """True when the bot runs in OAuth mode (several workspaces)."""
        return self._settings.oauth_mode

    @property
    def accepts_keys(self) -> bool:
        """True when admins can enter a Vast.ai key in setup: a cipher is configured and the
        environment does not impose a key (OAuth mode, or ``VAST_API_KEY`` unset)."""
        return self._box is not None and (self.oauth_mode or self._settings.vast_api_key is None)

    def key_source(self) -> KeySource:
        """Where keys come from in this process (:data:`KeySource`)."""
        if self.accepts_keys:
            return "workspace"
        if self._settings.vast_api_key is not None and not self.oauth_mode:
            return "env"
        return "none"

    # -- settings ----------------------------------------------------------------------------

    def _defaults(self) -> dict[str, Setting]:
        env = self._settings
        return {
            ADMINS: frozenset(),
            APPROVERS: frozenset(env.approvers),
            APPROVAL_DPH: env.approval_dph,
            DIGEST_CHANNEL: env.digest_channel,
            DEFAULT_LIFETIME: env.default_lifetime_hours,
            MAX_LIFETIME: env.max_lifetime_hours,
        }

    def settings_for(self, team_id: str) -> WorkspaceSettings:
        """The effective settings of ``team_id`` (:class:`WorkspaceSettings`). A stored value
        that does not validate (written by hand, or by another version) is ignored: the
        default applies. Raises SQLAlchemy errors when the database fails."""
        record = get_workspace(self._sf, team_id)
        values = self._defaults()
        overridden: set[str] = set()
        for name, raw in (record.settings if record is not None else {}).items():
            if name not in values:
                continue
            try:
                value = _parse(name, raw)
            except ValueError:
                continue
            if value is not None:
                values[name] = value
                overridden.add(name)
        maximum = _hours_of(values[MAX_LIFETIME], self._settings.max_lifetime_hours)
        default = _hours_of(values[DEFAULT_LIFETIME], self._settings.default_lifetime_hours)
        source = self.key_source()
        hint, vast_user_id, simulated = self._key_state(record, source)
        return WorkspaceSettings(
            team_id=team_id,
            admins=_people_of(values[ADMINS]),
            approvers=_people_of(values[APPROVERS]),
            approval_dph=_dph_of(values[APPROVAL_DPH]),
            digest_channel=_channel_of(values[DIGEST_CHANNEL]),
            default_lifetime_hours=min(default, maximum),
            max_lifetime_hours=maximum,
            vast_key_hint=hint,
            vast_user_id=vast_user_id,
            simulated=simulated,
            key_source=source,
            overridden=frozenset(overridden),
            bot_admins=frozenset(self._settings.bot_admins),
        )

    def _key_state(
        self, record: WorkspaceRecord | None, source: KeySource
    ) -> tuple[str | None, str | None, bool]:
        """(key hint, Vast.ai user id, simulated) of a workspace."""
        if source == "env":
            env_key = self._settings.vast_api_key
            last4 = _last4(env_key.get_secret_value()) if env_key is not None else None
            return key_hint(last4), None, False
        if source == "workspace" and record is not None and record.has_vast_key:
            return key_hint(record.vast_key_last4), record.vast_user_id, False
        return None, None, True

    def settings_problems(self, team_id: str, changes: Mapping[str, object]) -> dict[str, str]:
        """What is wrong with ``changes`` for ``team_id`` (name → sentence), without saving:
        the checks of :meth:`save_settings`. Empty when they would be saved."""
        try:
            self._merged(team_id, changes)
        except SettingsError as error:
            return error.errors
        return {}

    def _merged(self, team_id: str, changes: Mapping[str, object]) -> dict[str, object]:
        """The overrides ``team_id`` keeps once ``changes`` apply (JSON-ready). A change to
        None, or to the environment's value, removes the override (the default applies and
        follows the environment). Raises :class:`SettingsError`."""
        defaults = self._defaults()
        errors: dict[str, str] = {}
        parsed: dict[str, Setting] = {}
        for name, raw in changes.items():
            if name not in defaults:
                errors[name] = f"{name} is not a setting a workspace can change."
                continue
            try:
                parsed[name] = _parse(name, raw)
            except ValueError as error:
                errors[name] = str(error)
        record = get_workspace(self._sf, team_id)
        overrides: dict[str, object] = dict(record.settings) if record is not None else {}
        effective = dict(defaults)
        for name, raw in overrides.items():
            if name in defaults:
                try:
                    value = _parse(name, raw)
                except ValueError:
                    value = None
                if value is None:
                    overrides.pop(name)  # unreadable: drop it, the default applies
                else:
                    effective[name] = value
        for name, value in parsed.items():
            effective[name] = defaults[name] if value is None else value
        default = _hours_of(effective[DEFAULT_LIFETIME], self._settings.default_lifetime_hours)
        maximum = _hours_of(effective[MAX_LIFETIME], self._settings.max_lifetime_hours)
        if DEFAULT_LIFETIME not in errors and MAX_LIFETIME not in errors and default > maximum:
            where = DEFAULT_LIFETIME if DEFAULT_LIFETIME in parsed else MAX_LIFETIME
            errors[where] = (
                f"The default run length ({default:g} h) is longer than the maximum "
                f"({maximum:g} h): lower the default or raise the maximum."
            )
        if errors:
            raise SettingsError(errors)
        for name, value in parsed.items():
            if value is None or value == defaults[name]:
                overrides.pop(name, None)
            else:
                overrides[name] = sorted(value) if isinstance(value, frozenset) else value
        return overrides

    def save_settings(
        self, team_id: str, changes: Mapping[str, object], actor: str
    ) -> WorkspaceSettings:
        """Apply ``changes`` (setting name → new value; None: back to the default) to
        ``team_id``'s settings, written by ``actor`` (a Slack user id); the storage layer adds a
        ``settings_changed`` audit event naming what changed. Values: ``admins`` and
        ``approvers`` an iterable of Slack user ids (≤ 100); ``approval_dph`` a number ≥ 0
        ($/hour, ≤ 10,000); ``digest_channel`` a channel id (``C…``/``G…``); the lifetimes
        positive hours (≤ 8760) with the default ≤ the maximum. Numbers may come as text.

        Returns the new effective settings. Raises :class:`SettingsError` (nothing saved) and
        SQLAlchemy errors."""
        overrides = self._merged(team_id, changes)
        save_workspace_settings(self._sf, team_id, overrides, actor=actor, now=self._clock())
        logger.info("workspace %s: settings saved by %s", team_id, actor)
        return self.settings_for(team_id)

    # -- admins ------------------------------------------------------------------------------

    def admins(self, team_id: str | None) -> frozenset[str]:
        """The user ids listed as bot admins of ``team_id``: ``BOT_ADMINS`` and the workspace's
        own list (Slack's owners and admins are not listed: they are read per user).
        (:class:`bot.services.admins.AdminDirectory`.)"""
        if not team_id:
            return frozenset(self._settings.bot_admins)
        return self.settings_for(team_id).listed_admins

    def alert_recipients(self) -> list[tuple[str | None, frozenset[str]]]:
        """Who hears about the status poller (:class:`bot.services.heartbeat.Recipients`):
        ``BOT_ADMINS`` in single-workspace mode; in OAuth mode each installed workspace's listed
        admins (``BOT_ADMINS`` and its own list) in that workspace."""
        if not self._settings.oauth_mode:
            return [(None, self.admins(None))]
        return [
            (record.team_id, self.admins(record.team_id))
            for record in list_workspaces(self._sf, installed_only=True)
        ]

    def digest_channel(self, team_id: str) -> str | None:
        """The daily digest's channel in ``team_id`` (its own, else ``DIGEST_CHANNEL``; None:
        no digest). Raises SQLAlchemy errors when the database fails."""
        return self.settings_for(team_id).digest_channel

    def digest_targets(self) -> list[tuple[str, str]]:
        """OAuth mode: ``[(team_id, channel)]`` of each installed workspace that chose a digest
        channel in ``/templates setup`` (``DIGEST_CHANNEL`` names a channel of one workspace
        only, so it is no default here)."""
        targets = []
        for record in list_workspaces(self._sf, installed_only=True):
            own = self.settings_for(record.team_id)
            if own.digest_channel and DIGEST_CHANNEL in own.overridden:
                targets.append((record.team_id, own.digest_channel))
        return targets

    def lets_in(self, team_id: str, user_id: str) -> bool:
        """True when workspace ``team_id`` lets ``user_id`` act for it although Slack may not
        count them as its member: listed in ``BOT_ADMINS``, in its own bot admins or among its
        approvers (``APPROVERS`` or its own list). Used by
        :class:`bot.services.membership.MembershipService`. Raises SQLAlchemy errors."""
        if not user_id:
            return False
        if user_id in self._settings.bot_admins:
            return True
        own = self.settings_for(team_id)
        return user_id in own.listed_admins or user_id in own.approver_ids

    def is_admin(
        self, team_id: str | None, user_id: str, *, roles: RoleReader | None = None
    ) -> bool:
        """True when ``user_id`` administers the bot in ``team_id``: listed in ``BOT_ADMINS`` or
        in the workspace's own list, or, in OAuth mode only, a Slack owner or admin of the
        workspace (read with ``roles``, else the service's reader; cached
        :data:`ROLE_CACHE_SECONDS`; a read that fails counts as no and is not cached).
        Single-workspace mode keeps its rule from before OAuth mode existed: only the people
        listed are admins, so an upgrade gives Slack's admins no power over anyone's GPUs.
        Without a workspace only ``BOT_ADMINS`` count.
        (:class:`bot.services.admins.AdminDirectory`.) Raises SQLAlchemy errors."""
        if not user_id:
            return False
        if user_id in self._settings.bot_admins:
            return True
        if not team_id:
            return False
        if user_id in self.settings_for(team_id).admins:
            return True
        if not self._settings.oauth_mode:
            return False
        role = self.slack_role(team_id, user_id, roles=roles)
        return role is not None and (role.is_admin or role.is_owner)

    def slack_role(
        self, team_id: str, user_id: str, *, roles: RoleReader | None = None
    ) -> SlackRole | None:
        """The user's Slack role, from the cache or ``roles`` (else the service's reader);
        None when neither can say."""
        key = (team_id, user_id)
        now = self._monotonic()
        with self._lock:
            cached = self._role_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        reader = roles or self._roles
        if reader is None:
            return None
        role = reader(team_id, user_id)
        if role is not None:
            with self._lock:
                self._role_cache[key] = (now + ROLE_CACHE_SECONDS, role)
        return role

    # -- the Vast.ai key ---------------------------------------------------------------------

    def stored_key(self, team_id: str) -> StoredKey | None:
        """``team_id``'s Vast.ai key, decrypted (what :class:`bot.services.accounts.VastAccounts`
        is given in OAuth mode); None when it has none or keys are not taken here. Cached
        :data:`KEY_CACHE_SECONDS`. Raises ``bot.crypto.EncryptionKeyError`` when
        ``ENCRYPTION_KEY`` does not decrypt it, SQLAlchemy errors when the database fails."""
        if self._box is None:
            return None
        now = self._monotonic()
        with self._lock:
            cached = self._key_cache.get(team_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = get_workspace(self._sf, team_id)
        stored: StoredKey | None = None
        if record is not None and record.vast_key_ciphertext and record.vast_user_id:
            stored = StoredKey(
                api_key=self._box.decrypt(record.vast_key_ciphertext),
                vast_user_id=record.vast_user_id,
            )
        with self._lock:
            self._key_cache[team_id] = (now + KEY_CACHE_SECONDS, stored)
        return stored

    def check_vast_key(self, team_id: str, key: str) -> CheckedKey:
        """Check ``key`` (surrounding spaces stripped) for ``team_id`` without saving it: its
        shape, Vast.ai's ``users/current`` answer with it (network: may take seconds, so a
        listener runs it on the work pool), and :meth:`_guard_account`.

        Raises :class:`KeyRefused` with the sentence for the modal: a key Vast.ai refuses
        ("Vast.ai did not accept this key (Invalid user key). Copy it again from …"), Vast.ai
        unreachable (:data:`KEY_UNREACHABLE`), a key of another account while deployments run
        on the current one, or keys not taken here."""
        if not self.accepts_keys:
            raise KeyRefused(
                "This bot takes its Vast.ai key from VAST_API_KEY (the environment), not from "
                "setup."
                if self.key_source() == "env"
                else "Vast.ai keys cannot be stored here: the bot has no ENCRYPTION_KEY."
            )
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise KeyRefused(KEY_SHAPE)
        try:
            user = self._check_key(key)
        except AuthError as error:
            error.redact([key])
            raise KeyRefused(KEY_REFUSED.format(reason=_auth_reason(error))) from None
        except VastError as error:
            logger.warning(
                "workspace %s: Vast.ai key check failed: %s", team_id, type(error).__name__
            )
            raise KeyRefused(KEY_UNREACHABLE) from None
        if user.id is None:
            raise KeyRefused(KEY_NO_ACCOUNT)
        checked = CheckedKey(
            team_id=team_id, api_key=key, last4=_last4(key), vast_user_id=str(user.id)
        )
        self._guard_account(checked)
        return checked

    def _guard_account(self, checked: CheckedKey) -> None:
        """Refuse a key of another Vast.ai account while the workspace has live deployments on
        real Vast.ai: their instances are on the current account, and the bot would lose sight
        of them (they would bill with nobody able to stop them from Slack)."""
        record = get_workspace(self._sf, checked.team_id)
        current = record.vast_user_id if record is not None and record.has_vast_key else None
        if current == checked.vast_user_id:
            return
        live = count_live_real_deployments(self._sf, checked.team_id)
        if live and current is None:
            # No key yet, but deployments already run on Vast.ai (on VAST_API_KEY before OAuth
            # mode, say): the first key must be of the account that holds their instances.
            self._guard_first_key(checked, live)
            return
        if live:
            runs = "deployment still runs" if live == 1 else "deployments still run"
            raise KeyRefused(
                f"{live} {runs} on the Vast.ai account of the current key; destroy them (or "
                "enter a key of that account) first"
            )

    def _guard_first_key(self, checked: CheckedKey, live: int) -> None:
        ids = live_real_instance_ids(self._sf, checked.team_id)
        if self._sees_instances is None or len(ids) < live:
            raise KeyRefused(
                f"{live} deployment(s) of this workspace run on Vast.ai already, and the bot "
                "cannot tell yet whether this key's account holds them (one is still being "
                "created): try again in a minute"
            )
        try:
            seen = self._sees_instances(checked.api_key, ids)
        except AuthError as error:
            error.redact([checked.api_key])
            raise KeyRefused(KEY_REFUSED.format(reason=_auth_reason(error))) from None
        except VastError as error:
            logger.warning(
                "workspace %s: instance check failed: %s", checked.team_id, type(error).__name__
            )
            raise KeyRefused(KEY_UNREACHABLE) from None
        missing = [i for i in ids if i not in seen]
        if missing:
            shown = ", ".join(f"#{i}" for i in missing[:5]) + (" …" if len(missing) > 5 else "")
            raise KeyRefused(
                f"this workspace's running instances ({shown}) are not on this key's Vast.ai "
                "account: enter the key of the account they run on"
            )

    def save_checked_key(self, checked: CheckedKey, actor: str) -> WorkspaceSettings:
        """Encrypt and save a key :meth:`check_vast_key` accepted, set by ``actor`` (the storage
        layer adds a ``vast_key_set`` audit event, "key ending …a1b2"). The account guard runs
        again first (a deployment may have started since the check). Raises
        :class:`KeyRefused` (nothing saved) and SQLAlchemy errors."""
        if self._box is None or not self.accepts_keys:
            raise KeyRefused("Vast.ai keys cannot be stored here.")
        self._guard_account(checked)
        save_vast_key(
            self._sf,
            checked.team_id,
            ciphertext=self._box.encrypt(checked.api_key),
            last4=checked.last4,
            vast_user_id=checked.vast_user_id,
            actor=actor,
            now=self._clock(),
        )
        with self._lock:
            self._key_cache.pop(checked.team_id, None)
        logger.info(
            "workspace %s: Vast.ai key ending …%s (account %s) saved by %s",
            checked.team_id,
            checked.last4,
            checked.vast_user_id,
            actor,
        )
        return self.settings_for(checked.team_id)

    def set_vast_key(self, team_id: str, key: str, actor: str) -> KeyOutcome:
        """Check ``key`` (:meth:`check_vast_key`, network) and, when Vast.ai accepts it, save
        it encrypted (:meth:`save_checked_key`). Returns what happened (the refusal's sentence
        when nothing was saved); raises SQLAlchemy errors."""
        try:
            checked = self.check_vast_key(team_id, key)
            self.save_checked_key(checked, actor)
        except KeyRefused as refused:
            return KeyOutcome(saved=False, message=str(refused))
        return KeyOutcome(
            saved=True,
            message=f"Saved. Vast.ai {key_hint(checked.last4)} (account #{checked.vast_user_id})",
            last4=checked.last4,
            vast_user_id=checked.vast_user_id,
        )


def _auth_reason(error: AuthError) -> str:
    """Vast.ai's own words for a refused key (``msg``, e.g. "Invalid user key"), ≤ 120
    characters; the error's text is "<operation>: HTTP 401 auth_error: <msg>"."""
    reason = str(error).rsplit(": ", 1)[-1].strip()
    if not reason or reason.startswith("HTTP ") or "/" in reason:
        reason = "Invalid user key"
    return reason[:120]


def _people_of(value: Setting) -> frozenset[str]:
    return value if isinstance(value, frozenset) else frozenset()


def _dph_of(value: Setting) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _hours_of(value: Setting, fallback: float) -> float:
    return float(value) if isinstance(value, int | float) else fallback


def _channel_of(value: Setting) -> str | None:
    return value if isinstance(value, str) else None


def _number(raw: object, what: str) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, bool):
        raise ValueError(f"Enter {what}.")
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        raise ValueError(f"Enter {what}.") from None
    if not math.isfinite(value):
        raise ValueError(f"Enter {what}.")
    return value


def _people(raw: object, name: str) -> frozenset[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise ValueError("Choose people from the list.")
    people = frozenset(str(item) for item in raw)
    if any(not _USER_ID.fullmatch(person) for person in people):
        raise ValueError("Choose people from the list.")
    if len(people) > MAX_PEOPLE:
        raise ValueError(f"Choose at most {MAX_PEOPLE} people.")
    return people


def _parse(name: str, raw: object) -> Setting:
    """A setting's value from untrusted input (JSON, a form); None: back to the default.
    Raises ValueError with the sentence for the field."""
    if name in (ADMINS, APPROVERS):
        return _people(raw, name)
    if name == DIGEST_CHANNEL:
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or not _CHANNEL_ID.fullmatch(raw):
            raise ValueError("Choose a channel from the list.")
        return raw
    if name == APPROVAL_DPH:
        value = _number(raw, "a price in dollars per hour, such as 2.50")
        if value is not None and not 0 <= value <= MAX_APPROVAL_DPH:
            raise ValueError(f"Enter a price between $0 and ${MAX_APPROVAL_DPH:,.0f} per hour.")
        return value
    if name in (DEFAULT_LIFETIME, MAX_LIFETIME):
        value = _number(raw, "a number of hours, such as 8")
        if value is not None and not 0 < value <= MAX_LIFETIME_HOURS:
            raise ValueError(f"Enter a number of hours above 0 and at most {MAX_LIFETIME_HOURS}.")
        return value
    raise ValueError(f"{name} is not a setting a workspace can change.")


def _candidate_client(
    base_url: str, api_key: str, timeout: float, min_intervals: Mapping[str, float] | None
) -> VastClient:
    """A short-lived client for checking a candidate key: ``timeout`` seconds per request, two
    attempts (an auth error is not retried)."""
    return VastClient(
        base_url,
        api_key,
        timeout=timeout,
        max_attempts=2,
        backoff_max=1.0,
        min_intervals=min_intervals,
    )


def instance_checker(
    base_url: str,
    *,
    timeout: float = 10.0,
    min_intervals: Mapping[str, float] | None = None,
) -> InstanceCheck:
    """An :data:`InstanceCheck` on the Vast.ai API at ``base_url``: each call builds a client
    with the candidate key, reads those ids from the account's instance list (``select_filters
    id in``, docs/VAST_API.md §4) and closes the client."""

    def check(api_key: str, instance_ids: Sequence[int]) -> set[int]:
        with _candidate_client(base_url, api_key, timeout, min_intervals) as client:
            found = client.list_instances(select_filters={"id": {"in": list(instance_ids)}})
            return {instance.id for instance in found}

    return check


def key_checker(
    base_url: str,
    *,
    timeout: float = 10.0,
    min_intervals: Mapping[str, float] | None = None,
) -> KeyCheck:
    """A :data:`KeyCheck` on the Vast.ai API at ``base_url``: each call builds a client with the
    candidate key, asks ``users/current`` (``timeout`` seconds per request, two attempts; an
    auth error is not retried) and closes the client."""

    def check(api_key: str) -> VastUserLike:
        with _candidate_client(base_url, api_key, timeout, min_intervals) as client:
            return client.get_user()

    return check


@dataclass(frozen=True)
class WorkspacePolicies:
    """Each workspace's lifetime and budget rules: the configured ones (``lifetimes``,
    ``budgets``: from the environment) with what the workspace set in ``/templates setup``
    (``workspaces``). Implements :class:`bot.services.lifetimes.LifetimePolicies` and
    :class:`bot.services.budgets.BudgetPolicies`. ``oauth``: a configured approval channel
    names a channel of one workspace only, so in OAuth mode no workspace inherits it."""

    workspaces: WorkspaceService
    lifetimes: LifetimePolicy
    budgets: BudgetPolicy
    oauth: bool

    def lifetime_policy(self, team_id: str) -> LifetimePolicy:
        """The lifetime rules of ``team_id`` (its default and maximum run length)."""
        own = self.workspaces.settings_for(team_id)
        return replace(
            self.lifetimes,
            default_hours=own.default_lifetime_hours,
            max_hours=own.max_lifetime_hours,
        )

    def budget_policy(self, team_id: str) -> BudgetPolicy:
        """The budget rules of ``team_id`` (its approval threshold, approvers and admins)."""
        own = self.workspaces.settings_for(team_id)
        return replace(
            self.budgets,
            approval_dph=own.approval_dph,
            approvers=own.approver_ids,
            admins=own.listed_admins,
            approval_channel=None if self.oauth else self.budgets.approval_channel,
        )
