"""Status messages converge on the database.

What a status message shows is rendered from its ``deployments`` row. Whenever it should
change (the poller moved the row, someone pressed Stop / Start / Destroy, the bot acted on its
own), :meth:`MessageSync.changed` first marks the row (``message_stale_since``, kept across
restarts) and then queues the edit in the messages port's paced outbox
(:meth:`bot.services.ports.Messages.queue_status`). When Slack accepts the edit (or refuses it
for good: the message was deleted), the mark is cleared, but only if it is still the
mark that edit was queued under (:func:`storage.clear_message_stale`), so a change marked
meanwhile keeps it. Each edit is rendered from the row as it is when the outbox sends it.

:meth:`MessageSync.reconcile` runs at the start of every poller tick on the process holding
the poller lease: it re-reads every marked row, final ones (ready, stopped, destroyed, failed)
included, and queues its current state again, until Slack takes it. A 429 or a network failure
therefore only delays a message; a restart loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import storage
from bot.services.ports import Delivery, StatusMessages
from catalog import Template
from storage import DeploymentRecord, SessionFactory

logger = logging.getLogger(__name__)

#: Marked rows queued again per reconcile (the outbox paces them; 45 edits a minute).
RECONCILE_LIMIT = 500


class MessageSync:
    """Marks, queues and reconciles status-message edits (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. messages: the messages port.
        catalog_get: ``slug -> Template | None``. clock: aware UTC now (the mark's time).
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: StatusMessages,
        catalog_get: Callable[[str], Template | None],
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.catalog_get = catalog_get
        self.clock = clock

    def changed(self, dep: DeploymentRecord, *, note: str | None = None) -> Delivery:
        """The status message of ``dep`` must show its row: mark, then queue the edit (rendered
        from the row as it is when sent; ``note``: an extra context line)."""
        if not dep.message_channel or not dep.message_ts:
            return Delivery.REFUSED
        marked_at = self.clock()
        storage.mark_message_stale(self.sf, dep.id, marked_at)
        return self._queue(dep, note, marked_at)

    def reconcile(self, *, limit: int = RECONCILE_LIMIT) -> int:
        """Queue the current state of every row whose message is marked (the longest stale
        first, at most ``limit``); returns how many were queued."""
        stale = storage.list_stale_messages(self.sf, limit=limit)
        for dep in stale:
            assert dep.message_stale_since is not None
            self._queue(dep, None, dep.message_stale_since, replace=False)
        if stale:
            logger.info("message reconciler: %d status message(s) queued", len(stale))
        return len(stale)

    def _queue(
        self,
        dep: DeploymentRecord,
        note: str | None,
        marked_at: datetime,
        *,
        replace: bool = True,
    ) -> Delivery:
        def done(delivery: Delivery) -> None:
            if delivery in (Delivery.SENT, Delivery.REFUSED):
                storage.clear_message_stale(self.sf, dep.id, marked_at)

        return self.messages.queue_status(
            dep,
            self.catalog_get(dep.template_slug),
            note=note,
            on_done=done,
            latest=lambda: storage.get_deployment(self.sf, dep.id),
            replace=replace,
        )
