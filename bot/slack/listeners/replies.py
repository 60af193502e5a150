"""Telling the clicker something from any surface, and modal updates that respect ``hash``.

Block actions from a message carry a ``response_url`` (an ephemeral answer); block actions
from a modal carry none (Bolt's ``respond`` raises "respond is unsupported here"), so
:func:`tell_user` updates the modal the click came from with a small notice instead, and
falls back to a DM through the messages port when Slack refuses that too.

:func:`update_view` sends ``views.update`` with the ``hash`` of the view the bot last knew,
so an older render never overwrites a newer one (Slack answers ``hash_conflict``);
:class:`ViewVersions` remembers, per open modal, the newest action and the last hash shown,
so a render that lost the race can tell whether to give way or render again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookClient

from bot.services.ports import DirectMessages
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.listeners.payloads import team_of, user_of
from catalog import Template

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shown:
    """How a ``views.update`` went: ``hash`` of the view now shown (None when not shown);
    ``conflict`` when Slack refused it because the view changed since the hash sent."""

    hash: str | None = None
    conflict: bool = False


def update_view(client: WebClient, view_id: str, view: Any, *, hash: str | None = None) -> Shown:
    """``views.update`` (with ``hash`` when given). Never raises, for Slack's refusals nor for
    a network failure: a modal the user closed meanwhile (``not_found``) is not an error, a
    ``hash_conflict`` is returned for the caller to render again, and nothing shown is
    ``Shown()``."""
    try:
        if hash:
            answer = client.views_update(view_id=view_id, view=view, hash=hash)
        else:
            answer = client.views_update(view_id=view_id, view=view)
    except SlackApiError as error:
        code = error.response.get("error")
        if code == "hash_conflict":
            return Shown(conflict=True)
        logger.info("views.update failed: %s", code)
        return Shown()
    except (URLError, OSError, SlackClientError) as error:  # the network, not Slack's word
        logger.warning("views.update unavailable: %s", type(error).__name__)
        return Shown()
    shown = answer.get("view") or {}
    return Shown(hash=str(shown.get("hash") or "") or None)


class ViewVersions:
    """Per open modal (view id): the sequence number of the newest action being rendered and
    the ``hash`` of the view the bot last showed. Thread-safe; at most ``size`` modals are
    remembered (oldest dropped)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._seq = 0
        self._views: OrderedDict[str, tuple[int, str | None]] = OrderedDict()

    def begin(self, view_id: str) -> int:
        """A new action on ``view_id``: its sequence number (older renders give way to it)."""
        with self._lock:
            self._seq += 1
            _, shown = self._views.get(view_id, (0, None))
            self._views[view_id] = (self._seq, shown)
            self._views.move_to_end(view_id)
            while len(self._views) > self.size:
                self._views.popitem(last=False)
            return self._seq

    def is_latest(self, view_id: str, seq: int) -> bool:
        """True while no newer action than ``seq`` began on ``view_id``."""
        with self._lock:
            newest, _ = self._views.get(view_id, (seq, None))
            return newest <= seq

    def shown(self, view_id: str, hash: str | None) -> None:
        """Remember ``hash`` as the view the bot last showed on ``view_id``."""
        if not hash:
            return
        with self._lock:
            newest, _ = self._views.get(view_id, (0, None))
            self._views[view_id] = (newest, hash)

    def last_hash(self, view_id: str) -> str | None:
        """The hash of the view the bot last showed on ``view_id`` (None: unknown)."""
        with self._lock:
            return self._views.get(view_id, (0, None))[1]


def tell_user(
    messages: DirectMessages,
    client: WebClient,
    body: dict[str, Any],
    text: str,
    *,
    template: Template | None = None,
) -> None:
    """Tell the clicker ``text``: an ephemeral reply through the payload's ``response_url``;
    from a modal (no response_url), that modal becomes a notice (with **Pick another GPU**
    when ``template`` is given); a DM when neither reached the user."""
    url = body.get("response_url")
    if url:
        try:
            sent = WebhookClient(str(url)).send(
                text=text, response_type="ephemeral", replace_original=False
            )
            if sent.status_code == 200:
                return
        except (URLError, OSError, SlackClientError) as error:  # try the other ways below
            logger.warning("response_url unavailable: %s", type(error).__name__)
    view = body.get("view") or {}
    view_id = view.get("id")
    if isinstance(view_id, str) and view_id:
        shown = update_view(client, view_id, deploy_blocks.problem_view(text, template=template))
        if shown.hash is not None:
            return
    user = user_of(body)
    if user:
        messages.dm(user, text, team_id=team_of(body))
