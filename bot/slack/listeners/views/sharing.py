"""The Share modal's submission (``share_modal``; the modal opens from **Share**:
:mod:`bot.slack.listeners.actions.sharing`).

A refusal or a person who cannot be added is an inline error on the people field; a saved change
replaces the modal by what changed and who has access now, then the thread and the people
concerned are told on the work pool. A person who does not belong to the workspace
(:mod:`bot.slack.listeners.membership`) is refused first.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack

from bot.services.membership import MembershipService
from bot.services.sharing import ShareResult, SharingService
from bot.services.work import Busy, WorkPool
from bot.slack.blocks import sharing as blocks
from bot.slack.blocks.common import notice_modal
from bot.slack.listeners.membership import MANAGE, interaction_refusal
from bot.slack.listeners.payloads import team_of, user_of

logger = logging.getLogger(__name__)

FORM_TEXT = (
    ":warning: Slack sent this form back in a shape the bot cannot read, so nothing changed. "
    "Close it and press *Share* again."
)


class SharingViews:
    """The Share modal's submission."""

    def __init__(
        self,
        sharing: SharingService,
        membership: MembershipService,
        work: WorkPool,
    ) -> None:
        self.sharing = sharing
        self.membership = membership
        self.work = work

    def on_share_submitted(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Save who may use the deployment; answer in the modal, announce on the pool."""
        outsider = interaction_refusal(self.membership, body, MANAGE)
        if outsider is not None:
            ack(response_action="errors", errors={blocks.BLOCK_SHARE_USERS: outsider})
            return
        meta = blocks.parse_share_metadata(view.get("private_metadata"))
        chosen = blocks.selected_users(view)
        if meta is None or chosen is None:
            ack(
                response_action="update",
                view=notice_modal("Form not read", FORM_TEXT, block_id="share_not_read"),
            )
            return
        user = user_of(body)
        result = self.sharing.submit(
            meta.deployment_id, user, chosen, meta.previous, team_id=team_of(body)
        )
        if result.field_error is not None:
            ack(response_action="errors", errors={blocks.BLOCK_SHARE_USERS: result.field_error})
            return
        if result.refusal is not None:
            ack(
                response_action="update",
                view=notice_modal("Not shared", result.refusal, block_id="share_refused"),
            )
            return
        ack(response_action="update", view=blocks.share_done_view(result.message))
        _announce(self.sharing, self.work, result)


def _announce(sharing: SharingService, work: WorkPool, result: ShareResult) -> None:
    """Tell the thread and the people concerned on the work pool (here when it is full: the
    modal was answered already, and the change is saved)."""
    if not result.changed:
        return
    try:
        work.spawn(sharing.announce, result)
    except Busy:
        logger.warning("work pool full: a share is announced on the listener's thread")
        sharing.announce(result)
