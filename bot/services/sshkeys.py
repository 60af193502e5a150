"""Each person's own SSH public keys, per workspace (``/templates ssh-key``).

:class:`SshKeyService` checks what a person pasted (:func:`bot.sshkeys.parse_public_key`),
stores public keys only (:mod:`storage.ssh_keys`), lists and removes them, and answers each
act with an outcome whose ``message`` is plain text for the person.

Nothing secret is ever recorded: a paste that looks like a private key is refused before
anything is written (:attr:`KeyAct.PRIVATE`), and no log line of this module holds any of the
pasted text: lines name the workspace, the person, the outcome, and for a public key its type
and fingerprint (public facts, as ``ssh-keygen -l`` prints them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.sshkeys import PRIVATE_KEY_TEXT, KeyRefused, parse_public_key, type_label
from storage import (
    SessionFactory,
    SshKeyAddOutcome,
    SshKeyRecord,
    add_ssh_key,
    list_ssh_keys,
    remove_ssh_key,
    utcnow,
)

logger = logging.getLogger(__name__)

MAX_KEYS = 20
"""The most keys one person keeps in one workspace."""


class KeyAct(StrEnum):
    """How an add or a remove went: ``added``; ``already`` (the person has that key: nothing
    changed); ``limit`` (:data:`MAX_KEYS` reached: nothing added); ``refused`` (not a public
    key the bot takes); ``private`` (looked like a private key: nothing stored anywhere);
    ``removed``; ``not_found`` (no such key of theirs: nothing changed)."""

    ADDED = "added"
    ALREADY = "already"
    LIMIT = "limit"
    REFUSED = "refused"
    PRIVATE = "private"
    REMOVED = "removed"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class KeyOutcome:
    """What :meth:`SshKeyService.add` or :meth:`SshKeyService.remove` did.

    Attributes:
        act: how it went (:class:`KeyAct`).
        message: one or two sentences for the person, plain text (no mrkdwn, no pasted text
            except a public key's fingerprint).
        key: the key added, already there or removed (None otherwise).
    """

    act: KeyAct
    message: str
    key: SshKeyRecord | None = None

    @property
    def ok(self) -> bool:
        """True when the person's keys are as they wanted (added, already there, removed)."""
        return self.act in (KeyAct.ADDED, KeyAct.ALREADY, KeyAct.REMOVED)


class SshKeyService:
    """Add, list and remove a person's SSH public keys in one workspace.

    Args:
        session_factory: storage's sessionmaker.
        clock: "now" (aware UTC) for ``created_at`` and the events.
        max_keys: the most keys per person and workspace (:data:`MAX_KEYS`).
        on_change: called as ``on_change(team_id, user_id)`` after a key was added or removed
            (e.g. to put it on, or take it off, the person's instances). It runs on the
            listener's thread before Slack is answered, so it must return at once (hand network
            work to a pool); an exception is logged and does not undo the change.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        clock: Callable[[], datetime] = utcnow,
        max_keys: int = MAX_KEYS,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.max_keys = max_keys
        self.on_change = on_change

    def list_keys(self, team_id: str, user_id: str) -> list[SshKeyRecord]:
        """``user_id``'s keys in ``team_id``, oldest first."""
        return list_ssh_keys(self.session_factory, team_id, user_id)

    def add(self, team_id: str, user_id: str, text: str) -> KeyOutcome:
        """Check ``text`` (what the person pasted) and store it when it is one public key the
        bot takes; see :class:`KeyAct` for the outcomes. ``text`` is never logged nor stored
        unless it is a public key (then only its normalized form and sanitized comment)."""
        parsed = parse_public_key(text)
        if isinstance(parsed, KeyRefused):
            if parsed.private:
                logger.warning(
                    "ssh key: %s in %s pasted what looks like a private key: refused, "
                    "nothing stored",
                    user_id,
                    team_id,
                )
                return KeyOutcome(KeyAct.PRIVATE, PRIVATE_KEY_TEXT)
            logger.info("ssh key: %s in %s: refused (%s)", user_id, team_id, parsed.problem)
            return KeyOutcome(KeyAct.REFUSED, parsed.message)
        result = add_ssh_key(
            self.session_factory,
            team_id=team_id,
            user_id=user_id,
            key_type=parsed.key_type,
            public_key=parsed.public_key,
            fingerprint=parsed.fingerprint,
            comment=parsed.comment,
            limit=self.max_keys,
            now=self.clock(),
        )
        if result.outcome == SshKeyAddOutcome.LIMIT:
            logger.info("ssh key: %s in %s has %d keys: not added", user_id, team_id, result.count)
            return KeyOutcome(
                KeyAct.LIMIT,
                f"You have {result.count} keys here, the most one person may keep. Remove one "
                "you no longer use, then add this one.",
            )
        if result.outcome == SshKeyAddOutcome.ALREADY:
            return KeyOutcome(
                KeyAct.ALREADY,
                f"That key is already there ({parsed.fingerprint}): nothing changed.",
                result.key,
            )
        logger.info(
            "ssh key: %s in %s added %s %s",
            user_id,
            team_id,
            parsed.key_type,
            parsed.fingerprint,
        )
        self._changed(team_id, user_id)
        return KeyOutcome(
            KeyAct.ADDED,
            f"Added your {parsed.label} key {parsed.fingerprint}.",
            result.key,
        )

    def remove(self, team_id: str, user_id: str, key_id: int | None) -> KeyOutcome:
        """Remove ``user_id``'s key ``key_id`` in ``team_id`` (None: an id that could not be
        read). Someone else's key, or one already removed, is :attr:`KeyAct.NOT_FOUND`."""
        removed = (
            remove_ssh_key(self.session_factory, team_id, user_id, key_id, now=self.clock())
            if key_id is not None
            else None
        )
        if removed is None:
            return KeyOutcome(
                KeyAct.NOT_FOUND,
                "That key is not among yours (it may have been removed already): nothing changed.",
            )
        logger.info(
            "ssh key: %s in %s removed %s %s",
            user_id,
            team_id,
            removed.key_type,
            removed.fingerprint,
        )
        self._changed(team_id, user_id)
        return KeyOutcome(
            KeyAct.REMOVED,
            f"Removed your {type_label(removed.key_type)} key {removed.fingerprint}.",
            removed,
        )

    def _changed(self, team_id: str, user_id: str) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(team_id, user_id)
        except Exception:  # the key is saved: a follower's failure must not undo it
            logger.exception("ssh key: the change hook failed for %s in %s", user_id, team_id)
