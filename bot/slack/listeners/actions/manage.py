"""Block actions on deployments (thin: parse, ack, hand over to the services and answer where
the person clicked).

* Stop/Start/Destroy buttons (``deployment_stop|start|destroy``, value = deployment id) from the
  status message, the listings and the Home tab. Destroy's confirm dialog is Slack's: the
  action only arrives after the user confirmed. The listener acks and hands the action to
  the work pool; a full pool answers "busy — try again in a minute".
* "Send me the login" (``deployment_credentials``): the requester, an admin or someone the
  deployment is shared with gets the secrets by DM; anyone else is told who can. Everyone it
  is shared with may also Stop, Start and Extend it, not Destroy it
  (:meth:`bot.services.manage.ManageService.may`).
* **Extend N h** (``lifetime_extend``, value ``id:hours:end``) and **Keep running**
  (``idle_keep_running``, value ``id:question``) from the expiry and idle warnings: the values
  carry which warning was answered, so an old button changes nothing and says so.
* The paging buttons of ``/templates mine|running``
  (:mod:`bot.slack.listeners.commands.manage`).

Every button here first asks :mod:`bot.slack.listeners.membership` whether the person belongs
to the workspace; a person of another workspace is told so privately and learns nothing of its
deployments (a deployment id of another workspace answers "no longer exists").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.services import manage
from bot.services.home import HomeService
from bot.services.lifetimes import LifetimeService
from bot.services.manage import ManageService
from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import manage as blocks
from bot.slack.blocks.common import parse_deployment_id
from bot.slack.blocks.home import HOME_BLOCK_PREFIX
from bot.slack.blocks.status import ACTION_CREDENTIALS, ACTION_DESTROY, ACTION_START, ACTION_STOP
from bot.slack.listeners.commands.manage import DeploymentLists
from bot.slack.listeners.membership import LOOK, MANAGE, refused
from bot.slack.listeners.payloads import team_of, user_of

logger = logging.getLogger(__name__)

ACTION_KINDS = {
    ACTION_STOP: manage.STOP,
    ACTION_START: manage.START,
    ACTION_DESTROY: manage.DESTROY,
}


class ManageActions:
    """Stop, Start, Destroy, the login, Extend, Keep running and the listings' pages."""

    def __init__(
        self,
        manage: ManageService,
        lifetimes: LifetimeService,
        lists: DeploymentLists,
        home: HomeService,
        membership: MembershipService,
        messages: DirectMessages,
        work: WorkPool,
    ) -> None:
        self.manage = manage
        self.lifetimes = lifetimes
        self.lists = lists
        self.home = home
        self.membership = membership
        self.messages = messages
        self.work = work

    def on_deployment_action(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
    ) -> None:
        """Stop, Start, Destroy or "Send me the login" (value: the deployment id), on the
        work pool."""
        ack()
        user = user_of(body)
        team = team_of(body)
        reply = respond if body.get("response_url") else None
        deployment_id = parse_deployment_id(action.get("value"))
        if deployment_id is None or not team:  # forged or malformed (e.g. a huge id)
            outcome = manage.Outcome("not_found", manage.NOT_FOUND_TEXT)
            self._answer(body, action, outcome, reply)
            return

        def job() -> None:  # on the work pool: Vast.ai may be slow
            if refused(
                self.membership, self.messages, client, body, MANAGE
            ):  # an outsider learns nothing
                return
            if action.get("action_id") == ACTION_CREDENTIALS:
                outcome = self.manage.send_credentials(deployment_id, user, team_id=team)
            else:
                kind = ACTION_KINDS[str(action.get("action_id"))]
                outcome = self.manage.perform(kind, deployment_id, user, team_id=team)
            self._answer(body, action, outcome, reply)

        try:
            self.work.spawn(job)
        except Busy:
            logger.warning("work pool full: %s answered busy", action.get("action_id"))
            self._answer(body, action, manage.Outcome("busy", BUSY_TEXT), reply)

    def on_extend(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
    ) -> None:
        """**Extend N h** on an expiry warning."""
        self._warning_click(ack, body, action, respond, client, self._extend)

    def on_keep_running(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
    ) -> None:
        """**Keep running** on an idle-GPU warning."""
        self._warning_click(ack, body, action, respond, client, self._keep_running)

    def _extend(self, value: str, user: str, team: str) -> manage.Outcome | None:
        parsed = lifetime_blocks.parse_extend_value(value)
        if parsed is None:
            return None
        deployment_id, hours, issued = parsed
        return self.lifetimes.extend(deployment_id, hours, issued, user, team_id=team)

    def _keep_running(self, value: str, user: str, team: str) -> manage.Outcome | None:
        parsed = lifetime_blocks.parse_keep_value(value)
        if parsed is None:
            return None
        deployment_id, issued = parsed
        return self.lifetimes.keep_running(deployment_id, issued, user, team_id=team)

    def _warning_click(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
        act: Callable[[str, str, str], manage.Outcome | None],
    ) -> None:
        """A click on a lifetime or idle warning: ack, the membership check, then ``act(value,
        user, team)``, which answers None for a value it cannot read (forged or malformed: told
        "not found", as is a payload without a workspace)."""
        ack()
        if refused(self.membership, self.messages, client, body, MANAGE):
            return
        team = team_of(body)
        outcome = act(str(action.get("value") or ""), user_of(body), team) if team else None
        if outcome is None:
            outcome = manage.Outcome("not_found", manage.NOT_FOUND_TEXT)
        self._answer_warning(body, action, outcome, respond)

    def on_listing_page(
        self,
        ack: Ack,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Respond,
        client: WebClient,
    ) -> None:
        """Older / Newer on ``/templates mine|running``: the page redrawn in place."""
        ack()
        if refused(self.membership, self.messages, client, body, LOOK):
            return
        kind, page = blocks.parse_list_page_value(str(action.get("value") or ""))
        team = body.get("team") or {}
        respond(
            replace_original=True,
            response_type="ephemeral",
            **self.lists.payload(
                kind,
                team_id=team_of(body) or "",
                user_id=user_of(body),
                page=page,
                team_domain=team.get("domain"),
            ),
        )

    def _answer(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        outcome: manage.Outcome,
        respond: Respond | None,
    ) -> None:
        """Tell the clicker how it went, where they clicked: the Home tab is redrawn with a notice,
        a listing is redrawn in place with a notice, the status message gets an ephemeral reply."""
        user = user_of(body)
        team = team_of(body)
        block_id = str(action.get("block_id") or "")
        if (body.get("container") or {}).get("type") == "view" or block_id.startswith(
            HOME_BLOCK_PREFIX
        ):
            self.home.refresh(user, team_id=team, notice=outcome.message)
            return
        if respond is None or not body.get("response_url"):
            self.messages.dm(user, outcome.message, team_id=team)
            return
        listing = blocks.parse_listing_block_id(block_id)
        if listing is not None and team:
            kind, page = listing
            respond(
                replace_original=True,
                response_type="ephemeral",
                **self.lists.payload(
                    kind,
                    team_id=str(team),
                    user_id=user,
                    page=page,
                    team_domain=(body.get("team") or {}).get("domain"),
                    notice=outcome.message,
                ),
            )
            return
        respond(replace_original=False, response_type="ephemeral", text=outcome.message)

    def _answer_warning(
        self,
        body: dict[str, Any],
        action: dict[str, Any],
        outcome: manage.Outcome,
        respond: Respond,
    ) -> None:
        """Answer an **Extend** / **Keep running** click. When the warning has been answered (now
        or before: ``done``/``already``), the warning message itself is replaced by the answer, so
        it no longer shows an end time or buttons that are out of date; a refusal leaves it for
        someone who may answer and tells only the clicker."""
        message = body.get("message") or {}
        answered = outcome.kind in ("done", "already", "invalid", "not_found")
        if answered and body.get("response_url") and message and not message.get("is_ephemeral"):
            respond(replace_original=True, text=outcome.message)
            return
        self._answer(body, action, outcome, respond if body.get("response_url") else None)
