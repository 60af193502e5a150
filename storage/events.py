"""The kinds of event the bot writes: ``deployment_events.action`` and ``team_events.action``.

:class:`EventKind` lists every kind written. It is a StrEnum, so a member equals its string
(``EventKind.STOP == "stop"``) and callers that still pass bare strings keep working. Every
write goes through :func:`event_kind`: an unknown string is logged (once per kind and process)
and stored as given while :data:`STRICT` is False (production: an event row must never stop an
act on a billing GPU halfway); the test suite sets :data:`STRICT` to refuse it with
``ValueError``, and scans the code for every kind it writes.
"""

from __future__ import annotations

import logging
from enum import StrEnum

logger = logging.getLogger(__name__)

#: False: an unknown kind is logged and stored. True: an unknown kind raises ``ValueError``.
STRICT = False

_warned: set[str] = set()


class EventKind(StrEnum):
    """Every ``action`` of an event row. ``<action>_refused``: someone without the right
    pressed a button; ``<action>_failed``: Vast.ai refused or lost the instance;
    ``auto_<action>``: the bot acted on its own (lifetime over, idle GPU)."""

    # --- a deployment's life (deployment_events) ---
    REQUESTED = "requested"
    """A request was submitted (by the requester); detail ``<template> on offer <id>``."""
    APPROVAL_REQUESTED = "approval_requested"
    APPROVED = "approved"
    DENIED = "denied"
    APPROVAL_EXPIRED = "approval_expired"
    CREATED = "created"
    """The Vast.ai instance id was stored on the row."""
    STATUS = "status"
    """A change of status; ``from_status``/``to_status`` say which."""
    FAILED = "failed"
    """Failed, with the reason for people as detail."""
    NOTIFIED = "notified"
    SECRETS_SENT = "secrets_sent"
    CREDENTIALS_SENT = "credentials_sent"
    MESSAGE_DM = "message_dm"
    """The status message went to the requester's DM (the channel refused it)."""
    OFFER_RETRY = "offer_retry"
    DESTROYED_LEFTOVER = "destroyed_leftover"
    RECOVERED = "recovered"
    REMINDER = "reminder"
    EXPIRY_WARNING = "expiry_warning"
    IDLE_WARNING = "idle_warning"
    KEEP_RUNNING = "keep_running"
    EXTEND = "extend"
    LIFETIME_RESTARTED = "lifetime_restarted"

    # --- buttons and what came of them ---
    STOP = "stop"
    START = "start"
    DESTROY = "destroy"
    STOP_FAILED = "stop_failed"
    START_FAILED = "start_failed"
    DESTROY_FAILED = "destroy_failed"
    STOP_REFUSED = "stop_refused"
    START_REFUSED = "start_refused"
    DESTROY_REFUSED = "destroy_refused"
    CREDENTIALS_REFUSED = "credentials_refused"
    EXTEND_REFUSED = "extend_refused"
    EXTEND_APPROVED = "extend_approved"
    KEEP_RUNNING_REFUSED = "keep_running_refused"
    APPROVE_REFUSED = "approve_refused"
    DENY_REFUSED = "deny_refused"
    AUTO_STOP = "auto_stop"
    AUTO_DESTROY = "auto_destroy"
    AUTO_STOP_FAILED = "auto_stop_failed"
    AUTO_DESTROY_FAILED = "auto_destroy_failed"
    RULE_NOTICE = "rule_notice"
    # --- desired states (storage.intents, bot.services.intents) ---
    START_REQUESTED = "start_requested"
    STOP_REQUESTED = "stop_requested"
    DESTROY_REQUESTED = "destroy_requested"
    START_RETRY = "start_retry"
    STOP_RETRY = "stop_retry"
    DESTROY_RETRY = "destroy_retry"
    START_WITHDRAWN = "start_withdrawn"
    STOP_WITHDRAWN = "stop_withdrawn"
    DESTROY_WITHDRAWN = "destroy_withdrawn"
    START_KEEPS_FAILING = "start_keeps_failing"
    STOP_KEEPS_FAILING = "stop_keeps_failing"
    DESTROY_KEEPS_FAILING = "destroy_keeps_failing"
    START_SEEN = "start_seen"
    WITHDRAWN_TOO_LATE = "withdrawn_too_late"
    # --- SSH keys on the instance (storage.instance_keys, bot.services.instance_keys) ---
    SSH_KEY_ATTACHED = "ssh_key_attached"
    """A person's public key was attached to the instance; detail: whose, and its
    fingerprint."""
    SSH_KEY_DETACHED = "ssh_key_detached"
    SSH_KEY_KEPT = "ssh_key_kept"
    """The key could not be removed (Vast.ai refused, or gave no key id): it stays on the
    instance until it is destroyed."""
    SSH_KEY_FAILED = "ssh_key_failed"
    """A try to attach or detach a key did not go through (retried with backoff)."""
    # --- sharing (storage.collaborators, bot.services.sharing) ---
    SHARED = "shared"
    """Shared with a teammate (actor: who shared it; detail ``with <@U…>``)."""
    UNSHARED = "unshared"
    """A teammate's access taken away (actor: who did it; detail ``from <@U…>``)."""
    SHARE_REFUSED = "share_refused"

    # --- a workspace (team_events) ---
    INSTALLED = "installed"
    UNINSTALLED = "uninstalled"
    VAST_KEY_SET = "vast_key_set"
    VAST_KEY_REMOVED = "vast_key_removed"
    SETTINGS_CHANGED = "settings_changed"
    BUDGET_SET = "budget_set"
    BUDGET_DEFAULT = "budget_default"
    BUDGET_ALERT = "budget_alert"
    SSH_KEY_ADDED = "ssh_key_added"
    """A person added an SSH public key (``/templates ssh-key``); detail ``<type> <SHA256:…>``."""
    SSH_KEY_REMOVED = "ssh_key_removed"


def event_kind(action: EventKind | str) -> str:
    """``action`` as the plain string to store.

    A member, or a string equal to one, is returned as the member's value. Another string is
    stored as given after a warning (logged once per kind and process), unless :data:`STRICT`.

    Raises:
        ValueError: an unknown kind while :data:`STRICT` is True.
    """
    try:
        return EventKind(action).value
    except ValueError:
        if STRICT:
            raise ValueError(f"unknown event kind {action!r}") from None
    text = str(action)
    if text not in _warned:
        _warned.add(text)
        logger.warning("event kind %r is not an EventKind member; stored as given", text)
    return text
