"""The SSH keys modal's submission (``ssh_keys``; the modal:
:mod:`bot.slack.listeners.commands.sshkeys`).

The pasted text is checked; a key added (or already there) updates the modal to the list
(``response_action: "update"``, the box emptied); anything refused is answered on the input
(``response_action: "errors"``), a private key with the words to treat it as leaked. Nothing
pasted is ever echoed, logged or stored unless it is a public key.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack

from bot.services.membership import MembershipService
from bot.services.sshkeys import KeyAct, SshKeyService
from bot.slack.blocks import sshkeys as blocks
from bot.slack.blocks.common import notice_modal
from bot.slack.listeners.commands.sshkeys import (
    KEYS,
    NO_FIELD,
    TITLE,
    ids_of,
    keys_view,
    outcome_notice,
)
from bot.slack.listeners.membership import interaction_refusal


class SshKeyViews:
    """The SSH keys modal's submission."""

    def __init__(self, ssh_keys: SshKeyService, membership: MembershipService) -> None:
        self.ssh_keys = ssh_keys
        self.membership = membership

    def on_key_submitted(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Add the pasted public key; the modal shows the list, or the refusal on the box."""
        team, user = ids_of(body)
        block_id, text = blocks.read_submission(view)
        revision, deployment_id = blocks.read_metadata(view)
        outsider = interaction_refusal(self.membership, body, KEYS)
        if outsider is not None:
            if block_id is not None:
                ack(response_action="errors", errors={block_id: outsider})
            else:
                ack(response_action="update", view=notice_modal(TITLE, outsider).to_dict())
            return
        if block_id is None:  # a form without the box (forged or from an older bot)
            notice = f"⚠️ {NO_FIELD}"
            ack(response_action="update", view=keys_view(self.ssh_keys, team, user, notice=notice))
            return
        outcome = self.ssh_keys.add(team, user, text or "")
        if outcome.act in (KeyAct.ADDED, KeyAct.ALREADY):
            ack(
                response_action="update",
                view=keys_view(
                    self.ssh_keys,
                    team,
                    user,
                    notice=outcome_notice(outcome),
                    revision=revision + 1,
                    deployment_id=deployment_id,
                ),
            )
            return
        ack(response_action="errors", errors={block_id: outcome.message[:2000]})
