"""The instances on the Vast.ai account that no deployment owns and the bot did not label
(rented by hand): the status poller records them from the list it reads anyway, in one shared
document (``bot_state``), so every process can show them to admins. The bot never touches them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import storage
from bot.services.ports import UnmanagedInstance
from storage import SessionFactory

logger = logging.getLogger(__name__)

#: Name of the shared document (``bot_state``) holding the unmanaged instances.
UNMANAGED_STATE = "unmanaged_instances"


#: The poller rewrites the list at least this often while it reads instances…
REFRESH = timedelta(minutes=10)
#: …and readers ignore a list older than this (the poller stopped listing: nothing to follow).
STALE = timedelta(minutes=30)


def unmanaged_state(account_name: str | None) -> str:
    """The ``bot_state`` document of an account's unmanaged instances: :data:`UNMANAGED_STATE`
    for the one account of single-workspace mode (``None``), ``unmanaged:<account name>`` for
    each account in OAuth mode."""
    return UNMANAGED_STATE if account_name is None else f"unmanaged:{account_name}"


def read_unmanaged(
    sf: SessionFactory, now: datetime | None = None, *, state: str = UNMANAGED_STATE
) -> list[UnmanagedInstance]:
    """The unmanaged instances the status poller saw last on one account (its ``state``
    document, :func:`unmanaged_state`); empty when it never wrote any or its list is older than
    :data:`STALE` (it stops listing when the bot follows nothing)."""
    found = storage.get_state(sf, state)
    if found is None or (now or storage.utcnow()) - found[1] > STALE:
        return []
    try:
        return [UnmanagedInstance(**item) for item in json.loads(found[0])]
    except (TypeError, ValueError):
        logger.warning("unreadable %s document; ignored", state)
        return []


def write_unmanaged(
    sf: SessionFactory,
    instances: Sequence[UnmanagedInstance],
    now: datetime,
    *,
    state: str = UNMANAGED_STATE,
) -> None:
    """Store the unmanaged instances one account's pass saw (for listings, Home and the
    digest) in its ``state`` document (:func:`unmanaged_state`)."""
    items = [dataclasses.asdict(instance) for instance in instances]
    storage.put_state(sf, state, json.dumps(items, separators=(",", ":")), now)
