"""The instances on the Vast.ai account that no deployment owns and the bot did not label
(rented by hand): the status poller records them from the list it reads anyway, in one shared
document (``bot_state``), so every process can show them to admins. The bot never touches them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

import storage
from bot.services.ports import UnmanagedInstance
from storage import SessionFactory

logger = logging.getLogger(__name__)

#: Name of the shared document (``bot_state``) holding the unmanaged instances.
UNMANAGED_STATE = "unmanaged_instances"


def read_unmanaged(sf: SessionFactory) -> list[UnmanagedInstance]:
    """The unmanaged instances the status poller saw last (empty when it never wrote any)."""
    found = storage.get_state(sf, UNMANAGED_STATE)
    if found is None:
        return []
    try:
        return [UnmanagedInstance(**item) for item in json.loads(found[0])]
    except (TypeError, ValueError):
        logger.warning("unreadable %s document; ignored", UNMANAGED_STATE)
        return []


def write_unmanaged(
    sf: SessionFactory, instances: Sequence[UnmanagedInstance], now: datetime
) -> None:
    """Store the unmanaged instances seen by this tick (for listings, Home and the digest)."""
    items = [
        {
            "id": i.id,
            "gpu_name": i.gpu_name,
            "num_gpus": i.num_gpus,
            "dph_total": i.dph_total,
            "status": i.status,
        }
        for i in instances
    ]
    storage.put_state(sf, UNMANAGED_STATE, json.dumps(items, separators=(",", ":")), now)
