"""Who may act for a workspace: one rule for every act that spends a workspace's money (its
Vast.ai account, its budgets) or posts in its channels.

A signed Slack payload names the workspace it is served for (``team.id``, a command's
``team_id``) and, for interactivity payloads, the acting person's own workspace
(``user.team_id``). Slack sets both, but shared channels (Slack Connect) and Enterprise Grid
put people of one workspace in front of another's messages, so the two may differ. The bot
acts for workspace ``W`` only for a person who belongs to ``W``:

1. the payload's ``user.team_id`` is ``W`` (no call);
2. or ``W`` let the person in: ``BOT_ADMINS``, ``W``'s own bot admins or approvers
   (``let_in``; the bot keeps no other per-workspace list of people);
3. or ``W``'s own ``users.info`` (with ``W``'s token, through :class:`MemberLookup`) finds
   the person and names ``W``: the user's ``team_id`` is ``W``, or ``W`` is among the
   workspaces of an Enterprise Grid user (``enterprise_user.teams``), and the account is
   not deactivated (``deleted``). ``users.info`` answers ``user_not_found`` for a person of
   another workspace outside Enterprise Grid. Sources:
   https://api.slack.com/methods/users.info (errors) and https://api.slack.com/types/user
   (``team_id``, ``deleted``, ``enterprise_user.teams``).

Answers of step 3 (member or not) are cached in memory for :data:`CACHE_SECONDS` per
``(workspace, user)``, at most :data:`CACHE_ENTRIES` of them (the oldest dropped first). When
Slack cannot say (an error, a timeout, no token) the person is refused with a "try again"
text and nothing is cached: the bot never spends a workspace's money on a guess.

Single-workspace mode (``installed_team`` given): the bot serves one workspace whatever the
payload names, so ``W`` is the installed one. A payload whose ``user.team_id`` is that
workspace (every ordinary request) is decided without a call; only a person of another team
(a shared channel) is looked up. A slash command names no ``user.team_id``: one run from the
installed workspace is trusted there (Slack delivers a command to the app of the workspace
it was run in), one naming another workspace is looked up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger(__name__)

CACHE_SECONDS = 600.0
"""How long a ``users.info`` answer about one person in one workspace is reused (a person who
joins a workspace may wait this long before the bot lets them act there)."""
CACHE_ENTRIES = 4096
"""The most ``(workspace, user)`` answers kept; the oldest is dropped first."""
SLACKBOT = "USLACKBOT"
"""Slackbot's user id: in every workspace, and no person (https://api.slack.com/types/user)."""


@dataclass(frozen=True)
class SlackMember:
    """What ``users.info`` (asked with a workspace's token) says of a person.

    Attributes:
        team_id: the person's workspace (``user.team_id``); None when Slack gave none.
        teams: the workspaces of an Enterprise Grid user (``user.enterprise_user.teams``);
            empty outside Grid.
        deleted: the account is deactivated (``user.deleted``).
        is_bot: a bot or an app's user, not a person (``user.is_bot`` or
            ``user.is_app_user``).
    """

    team_id: str | None
    teams: frozenset[str] = frozenset()
    deleted: bool = False
    is_bot: bool = False

    def belongs_to(self, workspace: str) -> bool:
        """True when this (active) person is a member of ``workspace``."""
        return not self.deleted and (self.team_id == workspace or workspace in self.teams)


class LookupFailed(Exception):
    """Slack could not say who a person is just now (an error other than "not found", a
    timeout, the network, no token for the workspace). ``str()`` is one line, no token."""


class MemberLookup(Protocol):
    """``users.info`` of one workspace: the narrow port the rule needs (its Slack side:
    :func:`bot.slack.members.member_lookup`)."""

    def __call__(self, workspace: str, user_id: str) -> SlackMember | None:
        """What ``workspace``'s ``users.info`` says of ``user_id``; None when Slack answers
        that no such user is visible there (``user_not_found``). Raises
        :class:`LookupFailed` when Slack could not say. Should give up within about 2 s."""
        ...


class Standing(StrEnum):
    """How a person stands with a workspace: ``member`` (may act), ``outsider`` (does not
    belong: refused), ``unknown`` (Slack could not say: refused, may try again)."""

    MEMBER = "member"
    OUTSIDER = "outsider"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    """The rule's answer: ``standing`` and ``why`` (for the log: ``same team``, ``let in``,
    ``users.info``, ``cached``, Slack's error …; never a token)."""

    standing: Standing
    why: str

    @property
    def allowed(self) -> bool:
        """True when the person may act for the workspace."""
        return self.standing == Standing.MEMBER


def outsider_text(act: str) -> str:
    """What a person of another workspace is told (``act``: "deploy", "stop, start or
    destroy deployments" …). Names nothing of the workspace's deployments."""
    return (
        f"You are not a member of this workspace, so you cannot {act} here. Nothing was "
        "done. Ask someone who belongs to this workspace to do it for you."
    )


def unknown_text(act: str) -> str:
    """What a person is told when Slack could not confirm they belong to the workspace."""
    return (
        f"I could not check with Slack that you belong to this workspace (Slack did not "
        f"answer), so I did not {act} and nothing changed. Please try again in a moment."
    )


def refusal_text(verdict: Verdict, act: str) -> str | None:
    """The refusal for ``verdict`` (None when the person may act)."""
    if verdict.standing == Standing.OUTSIDER:
        return outsider_text(act)
    if verdict.standing == Standing.UNKNOWN:
        return unknown_text(act)
    return None


def _source(cached: bool) -> str:
    return "cached" if cached else "users.info"


class MembershipService:
    """The rule of the module docstring. Thread-safe.

    Args:
        lookup: ``users.info`` per workspace (:class:`MemberLookup`).
        let_in: ``(workspace, user_id) -> bool``: people the workspace let in (bot admins,
            approvers); None: nobody. An error reading it counts as no (logged).
        installed_team: single-workspace mode: the installed workspace's id (``auth.test``;
            None when unknown); None in OAuth mode.
        cache_seconds, cache_entries: the ``users.info`` answers' cache.
        monotonic: seconds, for the cache (tests move it).
    """

    def __init__(
        self,
        *,
        lookup: MemberLookup,
        let_in: Callable[[str, str], bool] | None = None,
        installed_team: Callable[[], str | None] | None = None,
        cache_seconds: float = CACHE_SECONDS,
        cache_entries: int = CACHE_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.let_in = let_in
        self.installed_team = installed_team
        self.cache_seconds = float(cache_seconds)
        self.cache_entries = int(cache_entries)
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, SlackMember | None]] = OrderedDict()

    @property
    def single(self) -> bool:
        """True in single-workspace mode."""
        return self.installed_team is not None

    def check(self, workspace: str | None, user_id: str, user_team: str | None) -> Verdict:
        """May ``user_id`` act for ``workspace`` (the payload's workspace: ``team.id``, a
        command's ``team_id``)? ``user_team``: the payload's ``user.team_id`` (None when it
        names none, as slash commands). Never raises."""
        if not user_id:
            return Verdict(Standing.OUTSIDER, "no user")
        if self.installed_team is not None:
            installed = self._installed()
            if user_team is None and (installed is None or workspace in (None, installed)):
                return Verdict(Standing.MEMBER, "command in the installed workspace")
            workspace = installed or workspace
        if not workspace:
            return Verdict(Standing.OUTSIDER, "no workspace")
        if user_team is not None and user_team == workspace:
            return Verdict(Standing.MEMBER, "same team")
        if self._let_in(workspace, user_id):
            return Verdict(Standing.MEMBER, "let in")
        try:
            found, cached = self._slack_says(workspace, user_id)
        except LookupFailed as error:
            return Verdict(Standing.UNKNOWN, str(error)[:200])
        member = found is not None and found.belongs_to(workspace)
        if not member and not cached:
            logger.warning(
                "%s acted for workspace %s but belongs to %s: refused",
                user_id,
                workspace,
                (found.team_id if found is not None else None) or "another workspace",
            )
        return Verdict(Standing.MEMBER if member else Standing.OUTSIDER, _source(cached))

    def teammate(self, workspace: str, user_id: str) -> Verdict:
        """May ``user_id`` be given a share of something of ``workspace`` by someone else (a
        deployment shared with them)? Unlike :meth:`check` there is no payload of theirs to
        trust: a person ``workspace`` let in is a member, else ``users.info`` with its token
        must find an active person of it (cached as in :meth:`check`). A bot or an app's
        user (``is_bot`` / ``is_app_user``) and Slackbot (``USLACKBOT``) are outsiders: no
        person to let in. Single-workspace mode asks the installed workspace. Never raises;
        ``unknown`` when Slack could not say."""
        if not user_id or user_id == SLACKBOT:
            return Verdict(Standing.OUTSIDER, "no person")
        if self.installed_team is not None:
            workspace = self._installed() or workspace
        if not workspace:
            return Verdict(Standing.OUTSIDER, "no workspace")
        if self._let_in(workspace, user_id):
            return Verdict(Standing.MEMBER, "let in")
        try:
            found, cached = self._slack_says(workspace, user_id)
        except LookupFailed as error:
            return Verdict(Standing.UNKNOWN, str(error)[:200])
        member = found is not None and found.belongs_to(workspace) and not found.is_bot
        return Verdict(Standing.MEMBER if member else Standing.OUTSIDER, _source(cached))

    def refusal(
        self, workspace: str | None, user_id: str, user_team: str | None, act: str
    ) -> str | None:
        """:func:`refusal_text` of :meth:`check` (None: the person may ``act``)."""
        return refusal_text(self.check(workspace, user_id, user_team), act)

    # -- internals -----------------------------------------------------------------------

    def _installed(self) -> str | None:
        assert self.installed_team is not None
        try:
            return self.installed_team() or None
        except Exception:  # auth.test failed: decide on the payload's workspace
            logger.warning("membership: the installed workspace could not be read")
            return None

    def _let_in(self, workspace: str, user_id: str) -> bool:
        if self.let_in is None:
            return False
        try:
            return bool(self.let_in(workspace, user_id))
        except Exception as error:  # the settings' database: fall back to Slack's word
            logger.warning("membership: who %s let in not read: %s", workspace, error)
            return False

    def _slack_says(self, workspace: str, user_id: str) -> tuple[SlackMember | None, bool]:
        """What ``workspace``'s ``users.info`` says of ``user_id`` (None: not found there),
        and whether it came from the cache. The answer itself is cached, not a verdict, so
        :meth:`check` and :meth:`teammate` each judge it by their own rule. Raises
        :class:`LookupFailed` (logged; nothing cached)."""
        key = (workspace, user_id)
        now = self.monotonic()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[0] > now:
                return entry[1], True
            if entry is not None:
                del self._cache[key]
        try:
            found = self.lookup(workspace, user_id)
        except LookupFailed as error:
            logger.warning(
                "membership of %s in %s: Slack could not say (%s)", user_id, workspace, error
            )
            raise
        self._remember(workspace, user_id, found)
        return found, False

    def _remember(self, workspace: str, user_id: str, found: SlackMember | None) -> None:
        key = (workspace, user_id)
        with self._lock:
            self._cache[key] = (self.monotonic() + self.cache_seconds, found)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_entries:
                self._cache.popitem(last=False)
