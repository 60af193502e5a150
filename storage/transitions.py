"""The deployment state machine: which changes of ``deployments.status`` are allowed.

One table, :data:`TRANSITIONS`, of ``(from, to)`` pairs; every place in :mod:`storage` that
writes a status checks it (:func:`check_transition` for a change, :func:`check_initial` for a
new row), inside its write transaction: a refused change raises
:class:`~storage.errors.IllegalTransition`, logs one warning line and stores nothing. Keeping
the status (``from == to``, other columns changing) is always allowed. ::

                        approved
    pending_approval ───────────► creating ──► provisioning ──► ready ◄──► stopped
       │        │                    │                           ▲
       │        └──► denied          └───────────────────────────┘
       └───────────► expired           (the first read finds the app up already)

    creating, provisioning, ready, stopped ──► destroyed
    every status that is not final ──────────► failed

    final: failed, destroyed, denied, expired (never left)

``stopped → ready`` is both a start and the undo of a stop that Vast.ai refused. Nothing leaves
``destroyed``: once a row says destroyed, the bot no longer follows or bills it, so putting it
back would hide a GPU that may still run; a refused destroy is handled before that claim, not
by an undo after it. ``creating → ready`` happens when the status poller's first read of a new
instance finds the app answering already (the deploy service had not yet written
``provisioning``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from storage.errors import IllegalTransition
from storage.models import FINAL_STATUSES, DeploymentStatus

logger = logging.getLogger(__name__)

_S = DeploymentStatus

#: Statuses a new row may be inserted in: ``creating``, or ``pending_approval`` when an
#: approver must decide first.
INITIAL_STATUSES: frozenset[DeploymentStatus] = frozenset({_S.CREATING, _S.PENDING_APPROVAL})

_NEXT: Mapping[DeploymentStatus, frozenset[DeploymentStatus]] = {
    _S.PENDING_APPROVAL: frozenset({_S.CREATING, _S.DENIED, _S.EXPIRED, _S.FAILED}),
    _S.CREATING: frozenset({_S.PROVISIONING, _S.READY, _S.DESTROYED, _S.FAILED}),
    _S.PROVISIONING: frozenset({_S.READY, _S.DESTROYED, _S.FAILED}),
    _S.READY: frozenset({_S.STOPPED, _S.DESTROYED, _S.FAILED}),
    _S.STOPPED: frozenset({_S.READY, _S.DESTROYED, _S.FAILED}),
    _S.FAILED: frozenset(),
    _S.DESTROYED: frozenset(),
    _S.DENIED: frozenset(),
    _S.EXPIRED: frozenset(),
}

#: Every allowed change of status, as ``(from, to)`` pairs (``from != to``).
TRANSITIONS: frozenset[tuple[DeploymentStatus, DeploymentStatus]] = frozenset(
    (old, new) for old, targets in _NEXT.items() for new in targets
)

assert set(_NEXT) == set(DeploymentStatus), "every status needs a row in the table"
assert all(not _NEXT[s] for s in FINAL_STATUSES), "a final status is never left"


def allowed_next(status: DeploymentStatus | str) -> frozenset[DeploymentStatus]:
    """The statuses ``status`` may change to (not counting itself); empty for a final one.

    Raises:
        ValueError: ``status`` is no deployment status.
    """
    return _NEXT[DeploymentStatus(status)]


def is_allowed(old: DeploymentStatus | str, new: DeploymentStatus | str) -> bool:
    """True when a row in ``old`` may be written with status ``new``: the same status, or a
    pair in :data:`TRANSITIONS`.

    Raises:
        ValueError: either is no deployment status.
    """
    old, new = DeploymentStatus(old), DeploymentStatus(new)
    return old == new or (old, new) in TRANSITIONS


def check_transition(
    deployment_id: int, old: DeploymentStatus | str, new: DeploymentStatus | str
) -> None:
    """Refuse a change of status that :func:`is_allowed` does not allow.

    Call it inside the write transaction, before changing the row: the raise rolls it back.

    Raises:
        IllegalTransition: after logging one warning with the deployment id, ``old`` and ``new``.
        ValueError: either is no deployment status.
    """
    if is_allowed(old, new):
        return
    old_text, new_text = DeploymentStatus(old).value, DeploymentStatus(new).value
    logger.warning(
        "deployment %s: illegal status change %s -> %s refused", deployment_id, old_text, new_text
    )
    raise IllegalTransition(deployment_id, old_text, new_text)


def check_initial(status: DeploymentStatus | str) -> None:
    """Refuse inserting a row in a status that is not in :data:`INITIAL_STATUSES`.

    Raises:
        IllegalTransition: (``deployment_id`` and ``from_status`` None) after logging a warning.
        ValueError: ``status`` is no deployment status.
    """
    status = DeploymentStatus(status)
    if status in INITIAL_STATUSES:
        return
    logger.warning("new deployment: illegal initial status %s refused", status.value)
    raise IllegalTransition(None, None, status.value)
