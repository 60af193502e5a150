"""The gate every signed Slack request passes before authorization and the listeners: its
body is parsed into a typed model (:func:`bot.slack.listeners.models.parse_payload`), and a body
that does not fit is answered here, never by a 500 and never with a traceback in the log.

What a malformed payload gets (one warning line in the log naming the surface and the
fields at fault, never their values):

* a view submission: an inline error on the input block at fault
  (``response_action: "errors"``) when one can be named, else the modal is replaced by a
  notice (``response_action: "update"``) that says nothing was done and to start again;
* a button or select (block_actions): an ephemeral message through its ``response_url``,
  or a DM when it carries none that is valid; nothing else is done;
* a slash command: an ephemeral answer in the HTTP response; nothing else is done;
* an event, or a payload type the bot has no listener for: 200, nothing done.

Slack's documentation of the answers: https://api.slack.com/surfaces/modals#displaying_errors
(``response_action``) and https://api.slack.com/interactivity/handling#message_responses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.error import URLError

from slack_bolt import BoltResponse
from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_sdk.errors import SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.services.context import Services
from bot.services.work import Busy
from bot.slack.blocks.common import notice_modal
from bot.slack.listeners.models import Refusal, loggable, origin_of, parse_payload

logger = logging.getLogger(__name__)

#: Context key under which the parsed payload (a :data:`bot.slack.listeners.models.Payload`) is
# kept.
PAYLOAD_KEY = "payload"

ACTION_TEXT = (
    ":warning: Slack delivered that click in a form the bot cannot read, so nothing was done. "
    "Try again; if it keeps happening, run `/templates` for fresh buttons and tell your admin."
)
FIELD_TEXT = (
    "Slack delivered this field in a form the bot cannot read. Fill it in again, then submit."
)
FORM_TEXT = (
    ":warning: Slack delivered this form in a shape the bot cannot read, so nothing was done "
    "(nothing was rented or saved). Close this window and start again from `/templates`."
)
COMMAND_TEXT = (
    ":warning: Slack delivered this command in a form the bot cannot read, so nothing was "
    "done. Type it again; if it keeps happening, tell your admin."
)
FORM_TITLE = "Form not read"


class PayloadGate(Middleware):
    """Bolt middleware (run as ``before_authorize``, so before any workspace lookup): parses
    the request body into its model and keeps it in the context under :data:`PAYLOAD_KEY`, or
    answers a malformed one as the module docstring says and stops there.

    ``origins``: extra origins (``scheme://host[:port]``) a ``response_url`` may have besides
    Slack's hooks (:func:`gate_origins`). ``tell``: sends a refused click's message (by
    default on ``services.work``, through the response_url or else a DM)."""

    def __init__(
        self,
        services: Services,
        *,
        origins: Iterable[str] = (),
        tell: Callable[[Refusal], None] | None = None,
    ) -> None:
        self.services = services
        self.origins = tuple(origins)
        self.tell = tell or self._tell_later

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        parsed = parse_payload(req.body, origins=self.origins)
        if not isinstance(parsed, Refusal):
            if parsed is not None:
                req.context[PAYLOAD_KEY] = parsed
            return next()
        return self.refuse(parsed)

    def refuse(self, refusal: Refusal) -> BoltResponse:
        """The answer to a refused payload (the click's message is sent by :attr:`tell`)."""
        level = logging.INFO if refusal.surface == "other" else logging.WARNING
        logger.log(
            level,
            "refused a malformed %s payload%s: %s",
            refusal.surface,
            f" ({loggable(refusal.reply.callback_id)})" if refusal.reply.callback_id else "",
            "; ".join(refusal.problems),
        )
        if refusal.surface == "view_submission":
            if refusal.block_id is not None:
                body: dict[str, Any] = {
                    "response_action": "errors",
                    "errors": {refusal.block_id: FIELD_TEXT},
                }
            else:
                view = notice_modal(FORM_TITLE, FORM_TEXT, block_id="form_not_read")
                body = {"response_action": "update", "view": view.to_dict()}
            return BoltResponse(status=200, body=body)
        if refusal.surface == "slash_command":
            return BoltResponse(
                status=200, body={"response_type": "ephemeral", "text": COMMAND_TEXT}
            )
        if refusal.surface == "block_actions":
            self.tell(refusal)
        return BoltResponse(status=200, body="")

    def _tell_later(self, refusal: Refusal) -> None:
        try:
            self.services.work.spawn(tell_refused, self.services, refusal)
        except Busy:
            logger.warning("work pool full: a refused click was not answered")


def tell_refused(services: Services, refusal: Refusal, text: str = ACTION_TEXT) -> None:
    """Tell the sender of a refused click ``text``: ephemerally through its ``response_url``,
    else by DM in its workspace; nobody when neither is known. Never raises."""
    reply = refusal.reply
    if reply.response_url:
        try:
            sent = WebhookClient(reply.response_url).send(
                text=text, response_type="ephemeral", replace_original=False
            )
            if sent.status_code == 200:
                return
        except (URLError, OSError, SlackClientError, ValueError) as error:
            logger.warning("response_url unavailable: %s", type(error).__name__)
    if reply.user_id:
        try:
            services.messages.dm(reply.user_id, text, team_id=reply.team_id)
        except Exception:  # a notice about a broken click must never raise
            logger.warning("could not DM %s about a refused click", reply.user_id)


def gate_origins(slack_api_url: str) -> tuple[str, ...]:
    """The extra origin a ``response_url`` may have: ``SLACK_API_URL``'s (Slack's own, or the
    Slack-compatible server a test or staging set-up points the bot at)."""
    origin = origin_of(slack_api_url)
    return (origin,) if origin else ()
