"""``/templates ssh-key``, and what the SSH keys modal's listeners share (thin: check the person,
hand over to :class:`bot.services.sshkeys.SshKeyService`, answer with
:mod:`bot.slack.blocks.sshkeys`).

* ``/templates ssh-key`` (routed here by :mod:`bot.slack.listeners.commands.templates`): acked
  at once, then the modal of the person's keys opens with the command's ``trigger_id``. Text
  after the word is taken as a key to add (``/templates ssh-key ssh-ed25519 AAAA… me@laptop``);
  the modal then opens with the outcome.
* A button with action id :data:`bot.slack.blocks.sshkeys.ACTION_OPEN` anywhere (the ready DM;
  value a deployment id or empty) opens the same modal, and **Remove** on a key redraws it:
  :mod:`bot.slack.listeners.actions.sshkeys`.
* The modal's submission: :mod:`bot.slack.listeners.views.sshkeys` (nothing pasted is ever
  echoed, logged or stored unless it is a public key).

SSH keys are per workspace: everyone acts only for a workspace they belong to
(:mod:`bot.slack.listeners.membership`), and only on their own keys. Slack's documentation of the
answers: https://api.slack.com/surfaces/modals (``response_action``, ``views.update``).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.membership import MembershipService
from bot.services.sshkeys import KeyOutcome, SshKeyService
from bot.slack.blocks import sshkeys as blocks
from bot.slack.listeners.membership import command_refusal
from bot.slack.listeners.payloads import team_of
from bot.sshkeys import PRIVATE_KEY_TEXT, looks_like_private_key

logger = logging.getLogger(__name__)

KEYS = "add or remove SSH keys"
"""The act named in a refusal (:func:`bot.services.membership.outsider_text`)."""
TITLE = blocks.TITLE
WORDS = frozenset({"ssh-key", "ssh-keys", "sshkey", "sshkeys"})
"""The sub-command's words (``/templates ssh-key``)."""

NOT_OPENED = "Slack did not open your SSH keys ({error}). Run `/templates ssh-key` to try again."
NO_FIELD = "Slack sent the form without the key box: nothing was added. Paste the key again."


def private_key_reply(text: str) -> str | None:
    """The warning for a ``/templates`` text that holds a private key (None: it does not):
    such text is answered with it and goes nowhere else (no catalog search echoing it)."""
    return f":warning: {PRIVATE_KEY_TEXT}" if looks_like_private_key(text) else None


def ids_of(body: dict[str, Any]) -> tuple[str, str]:
    """(workspace, user) of an interactivity payload."""
    user = body.get("user")
    user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
    return team_of(body) or "", user_id


def keys_view(
    ssh_keys: SshKeyService,
    team: str,
    user: str,
    *,
    notice: str | None = None,
    revision: int = 0,
    deployment_id: int | None = None,
) -> dict[str, Any]:
    """The SSH keys modal of ``user`` in ``team`` as it stands now (a view dict), with
    ``notice`` on top; ``revision`` and ``deployment_id`` ride in its metadata."""
    keys = ssh_keys.list_keys(team, user)
    return blocks.keys_view(
        keys,
        max_keys=ssh_keys.max_keys,
        notice=notice,
        revision=revision,
        deployment_id=deployment_id,
    ).to_dict()


def outcome_notice(outcome: KeyOutcome) -> str:
    """The modal's notice for ``outcome`` (✅ or ⚠️ and its message)."""
    return f"✅ {outcome.message}" if outcome.ok else f"⚠️ {outcome.message}"


class SshKeyCommand:
    """``/templates ssh-key [key]``."""

    def __init__(self, ssh_keys: SshKeyService, membership: MembershipService) -> None:
        self.ssh_keys = ssh_keys
        self.membership = membership

    def ssh_key(
        self,
        ack: Ack,
        command: dict[str, Any],
        client: WebClient,
        respond: Respond,
        rest: str,
    ) -> None:
        """``/templates ssh-key [key]``: ack, then the modal (with the outcome of adding ``rest``
        when given); an outsider gets an ephemeral refusal, a modal Slack refused an ephemeral
        "try again"."""
        ack()
        team = str(command.get("team_id") or "")
        user = str(command.get("user_id") or "")
        outsider = command_refusal(self.membership, command, KEYS)
        if outsider is not None:
            respond(response_type="ephemeral", replace_original=False, text=outsider)
            return
        notice = None
        if rest.strip():
            notice = outcome_notice(self.ssh_keys.add(team, user, rest))
        view = keys_view(self.ssh_keys, team, user, notice=notice, revision=1 if notice else 0)
        try:
            client.views_open(trigger_id=str(command.get("trigger_id")), view=view)
        except (SlackApiError, SlackClientError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            logger.info("ssh keys modal not opened: %s", code or type(error).__name__)
            text = NOT_OPENED.format(error=code or "no answer")
            respond(
                response_type="ephemeral",
                replace_original=False,
                text=f"{notice}\n{text}" if notice else text,
            )
