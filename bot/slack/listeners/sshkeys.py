"""Listeners for ``/templates ssh-key`` and its modal (thin: check the person, hand over to
:class:`bot.services.sshkeys.SshKeyService`, answer with :mod:`bot.slack.blocks.sshkeys`).

* ``/templates ssh-key`` (routed here by :mod:`bot.slack.listeners.templates`): acked at once, then
  the modal of the person's keys opens with the command's ``trigger_id``. Text after the word
  is taken as a key to add (``/templates ssh-key ssh-ed25519 AAAA… me@laptop``); the modal
  then opens with the outcome.
* A button with action id :data:`bot.slack.blocks.sshkeys.ACTION_OPEN` anywhere (the ready DM; value
  a deployment id or empty) opens the same modal with the click's ``trigger_id``.
* The modal's submission: the pasted text is checked; a key added (or already there) updates
  the modal to the list (``response_action: "update"``, the box emptied); anything refused is
  answered on the input (``response_action: "errors"``), a private key with the words to treat
  it as leaked. Nothing pasted is ever echoed, logged or stored unless it is a public key.
* **Remove** on a key: ``views.update`` of the modal (with the view's ``hash``, again without
  when the view changed meanwhile).

SSH keys are per workspace: everyone acts only for a workspace they belong to
(:mod:`bot.slack.listeners.membership`), and only on their own keys. Slack's documentation of the
answers: https://api.slack.com/surfaces/modals (``response_action``, ``views.update``).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.context import Services
from bot.services.sshkeys import KeyAct, KeyOutcome
from bot.slack.blocks import sshkeys as blocks
from bot.slack.blocks.common import notice_modal, parse_deployment_id
from bot.slack.listeners.membership import command_refusal, interaction_refusal, refused
from bot.slack.listeners.payloads import team_of
from bot.slack.listeners.replies import tell_user, update_view
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


def _ids(body: dict[str, Any]) -> tuple[str, str]:
    """(workspace, user) of an interactivity payload."""
    user = body.get("user")
    user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
    return team_of(body) or "", user_id


def _view(
    services: Services,
    team: str,
    user: str,
    *,
    notice: str | None = None,
    revision: int = 0,
    deployment_id: int | None = None,
) -> dict[str, Any]:
    keys = services.ssh_keys.list_keys(team, user)
    return blocks.keys_view(
        keys,
        max_keys=services.ssh_keys.max_keys,
        notice=notice,
        revision=revision,
        deployment_id=deployment_id,
    ).to_dict()


def _notice(outcome: KeyOutcome) -> str:
    return f"✅ {outcome.message}" if outcome.ok else f"⚠️ {outcome.message}"


def ssh_key_command(
    services: Services,
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
    outsider = command_refusal(services, command, KEYS)
    if outsider is not None:
        respond(response_type="ephemeral", replace_original=False, text=outsider)
        return
    notice = None
    if rest.strip():
        notice = _notice(services.ssh_keys.add(team, user, rest))
    view = _view(services, team, user, notice=notice, revision=1 if notice else 0)
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


def register(app: App, services: Services) -> None:
    """Attach the SSH keys modal's listeners to ``app`` (the command is routed by
    :mod:`bot.slack.listeners.templates`)."""

    @app.action(blocks.ACTION_OPEN)
    def open_keys(
        ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, KEYS):
            return
        team, user = _ids(body)
        deployment_id = parse_deployment_id(action.get("value"))
        view = _view(services, team, user, deployment_id=deployment_id)
        try:
            client.views_open(trigger_id=str(body.get("trigger_id")), view=view)
        except (SlackApiError, SlackClientError, OSError) as error:
            code = error.response.get("error") if isinstance(error, SlackApiError) else None
            logger.info("ssh keys modal not opened: %s", code or type(error).__name__)
            tell_user(services, client, body, NOT_OPENED.format(error=code or "no answer"))

    @app.view(blocks.CALLBACK_SSH_KEYS)
    def key_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        team, user = _ids(body)
        block_id, text = blocks.read_submission(view)
        revision, deployment_id = blocks.read_metadata(view)
        outsider = interaction_refusal(services, body, KEYS)
        if outsider is not None:
            if block_id is not None:
                ack(response_action="errors", errors={block_id: outsider})
            else:
                ack(response_action="update", view=notice_modal(TITLE, outsider).to_dict())
            return
        if block_id is None:  # a form without the box (forged or from an older bot)
            notice = f"⚠️ {NO_FIELD}"
            ack(response_action="update", view=_view(services, team, user, notice=notice))
            return
        outcome = services.ssh_keys.add(team, user, text or "")
        if outcome.act in (KeyAct.ADDED, KeyAct.ALREADY):
            ack(
                response_action="update",
                view=_view(
                    services,
                    team,
                    user,
                    notice=_notice(outcome),
                    revision=revision + 1,
                    deployment_id=deployment_id,
                ),
            )
            return
        ack(response_action="errors", errors={block_id: outcome.message[:2000]})

    @app.action(blocks.ACTION_REMOVE)
    def remove_key(
        ack: Ack, action: dict[str, Any], body: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        if refused(services, client, body, KEYS):
            return
        team, user = _ids(body)
        outcome = services.ssh_keys.remove(team, user, blocks.parse_key_id(action.get("value")))
        shown = body.get("view") or {}
        view_id = str(shown.get("id") or "")
        if not view_id:  # a Remove outside the modal (forged): say it privately
            tell_user(services, client, body, outcome.message)
            return
        revision, deployment_id = blocks.read_metadata(shown)
        view = _view(
            services,
            team,
            user,
            notice=_notice(outcome),
            revision=revision,
            deployment_id=deployment_id,
        )
        hash_ = str(shown.get("hash") or "") or None
        if update_view(client, view_id, view, hash=hash_).conflict:
            update_view(client, view_id, view)  # drawn from the database: the newest anyway
