"""Who acts for which workspace, at the edge: what each listener asks
:class:`bot.services.membership.MembershipService` before it spends a workspace's money or
posts in its channels, and how a refused person is told (privately; nothing is done).

* :func:`interaction_refusal` / :func:`command_refusal`: the refusal text for the person of a
  payload (None when they may act). An interactivity payload names the workspace
  (:func:`bot.slack.listeners.payloads.team_of`) and the person's own (``user.team_id``); a slash
  command names only the workspace (``team_id``).
* :func:`refused`: the check and, when refused, the answer: an ephemeral reply through the
  payload's ``response_url``; from a modal, the modal becomes the notice; else a DM.

Single-workspace mode remembers the installed workspace as Bolt authorized it
(:class:`bot.slack.listeners.middleware.InstalledTeam`), so the rule needs no call of its own.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient

from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.slack.listeners.payloads import team_of
from bot.slack.listeners.replies import tell_user

logger = logging.getLogger(__name__)

DEPLOY = "deploy GPUs"
MANAGE = "stop, start, destroy or change deployments"
DECIDE = "decide on approval requests"
BUDGETS = "change budgets or read the audit log"
SETUP = "change this workspace's setup"
LOOK = "see this workspace's deployments, costs or credit"


def user_team_of(body: dict[str, Any]) -> str | None:
    """The acting person's own workspace in an interactivity payload (``user.team_id``);
    None when it names none."""
    user = body.get("user")
    team = user.get("team_id") if isinstance(user, dict) else None
    return str(team) if isinstance(team, str) and team else None


def interaction_refusal(
    membership: MembershipService, body: dict[str, Any], act: str
) -> str | None:
    """The refusal for the person of a ``block_actions`` / ``view_submission`` payload who
    wants to ``act`` (see :mod:`bot.services.membership`), or None when they may."""
    user = body.get("user")
    user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
    return membership.refusal(team_of(body), user_id, user_team_of(body), act)


def command_refusal(membership: MembershipService, command: dict[str, Any], act: str) -> str | None:
    """The refusal for the person of a slash command who wants to ``act``, or None."""
    team = str(command.get("team_id") or "") or None
    return membership.refusal(team, str(command.get("user_id") or ""), None, act)


def refused(
    membership: MembershipService,
    messages: DirectMessages,
    client: WebClient,
    body: dict[str, Any],
    act: str,
) -> bool:
    """Check the person of an interactivity payload; when refused, tell them privately
    (:func:`tell_outsider`) and return True: the caller then does nothing."""
    text = interaction_refusal(membership, body, act)
    if text is None:
        return False
    tell_outsider(messages, client, body, text)
    return True


def tell_outsider(
    messages: DirectMessages, client: WebClient, body: dict[str, Any], text: str
) -> None:
    """Tell the clicker ``text`` (:func:`bot.slack.listeners.replies.tell_user`): ephemeral through
    the ``response_url``, else in the modal clicked, else by DM. The Home tab is never
    replaced by it (the DM says it)."""
    view = body.get("view")
    if isinstance(view, dict) and view.get("type") == "home" and not body.get("response_url"):
        user = body.get("user")
        user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
        if user_id:
            messages.dm(user_id, text, team_id=team_of(body))
        return
    tell_user(messages, client, body, text)
