"""Block actions of the Deploy button and the GPU offer picker (thin: parse, ack, hand over).

Deploy → ``views.open`` at once with the trigger_id (it expires after 3 s) showing a
"searching" modal → the search and the render (:class:`PickerSearch`) run on the work pool
(:class:`bot.services.work.WorkPool`, off Bolt's listener threads) → ``views.update`` with live
offers. Reference: docs/SLACK_API.md §1.4, §1.5.
Deploy pressed inside a modal (no response_url) that cannot push the picker, or whose
template is gone, turns that modal into a notice (:func:`bot.slack.listeners.replies.tell_user`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.membership import MembershipService
from bot.services.ports import DirectMessages
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import picker
from bot.slack.blocks.templates import TEMPLATE_GONE
from bot.slack.listeners.actions.offer_search import PickerSearch
from bot.slack.listeners.membership import DEPLOY, interaction_refusal
from bot.slack.listeners.payloads import team_of, user_of
from bot.slack.listeners.replies import ViewVersions, tell_user, update_view
from catalog import Catalog, Template, disk_problem

logger = logging.getLogger(__name__)

#: What to tell the user when Slack refuses to open the picker (views.open errors,
#: docs/SLACK_API.md §1.4).
PICKER_NOT_OPENED = {
    "expired_trigger_id": "Slack's moment to open the GPU picker passed (Slack was slow to "
    "reach the bot). Press *Deploy* again.",
    "exchanged_trigger_id": "That click already opened a picker. Press *Deploy* again for a new "
    "one.",
    "push_limit_reached": "Too many windows are open: close one, then press *Deploy* again.",
    "default": "Slack did not open the GPU picker. Press *Deploy* again in a moment.",
}


def _origin_channel(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    if channel:
        return str(channel)
    view = body.get("view") or {}
    try:  # Deploy pressed inside the Details modal: its metadata carries the channel
        return picker.PickerState.from_metadata(view.get("private_metadata") or "").channel
    except ValueError:
        return None


def _picker_of(
    catalog: Catalog, body: dict[str, Any]
) -> tuple[str, picker.PickerState, Template | None] | None:
    """(view id, state, template) of the picker a block_actions payload came from (template
    None when it has left the catalog), or None when the payload is not from a picker of ours
    (untrusted input)."""
    view = body.get("view") or {}
    try:
        state = picker.PickerState.from_metadata(view.get("private_metadata") or "")
    except ValueError:
        return None
    view_id = view.get("id")
    if not isinstance(view_id, str) or not view_id:
        return None
    return view_id, state, catalog.get(state.template)


def template_gone_text(slug: str) -> str:
    """What a picker whose template left the catalog says (e.g. after a restart)."""
    return (
        f"The template `{slug[:40]}` is no longer in the catalog. "
        "Run `/templates` for the current list."
    )


class DeployActions:
    """The Deploy button and the GPU offer picker's block actions.

    Each method acks, does what must happen within the click's 3 s (``views.open`` with the
    trigger_id) and hands the offer search and the render to the work pool; a full pool
    shows "busy — try again in a minute" in the modal at once. Renders of one modal are
    ordered by :class:`ViewVersions`: a render gives way to a newer action on the same modal,
    and ``views.update`` carries the hash of the view it replaces (on ``hash_conflict`` the
    newest action renders again on the newest view)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        work: WorkPool,
        membership: MembershipService,
        messages: DirectMessages,
        search: PickerSearch,
        versions: ViewVersions | None = None,
    ) -> None:
        self.catalog = catalog
        self.work = work
        self.membership = membership
        self.messages = messages
        self.search = search
        self.versions = versions or ViewVersions()

    def on_deploy_clicked(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        """**Deploy** on a template (value: its slug): open the picker, search on the pool."""
        ack()
        template = self.catalog.get(str(action.get("value") or ""))
        if template is None:
            tell_user(self.messages, client, body, TEMPLATE_GONE)
            return
        state = picker.PickerState(template=template.slug, channel=_origin_channel(body))
        loading = picker.loading_view(template, state)
        try:
            if (body.get("container") or {}).get("type") == "view":
                opened = client.views_push(trigger_id=body["trigger_id"], view=loading)
            else:
                opened = client.views_open(trigger_id=body["trigger_id"], view=loading)
        except SlackApiError as error:
            code = error.response.get("error")
            logger.info("could not open the picker: %s", code)
            text = PICKER_NOT_OPENED.get(str(code), PICKER_NOT_OPENED["default"])
            tell_user(self.messages, client, body, text, template=template)
            return
        view_id = str(opened["view"]["id"])
        seq = self.versions.begin(view_id)
        hash = opened["view"].get("hash")
        self.versions.shown(view_id, hash)
        click = _Click(
            view_id=view_id,
            state=state,
            template=template,
            values={},
            user=user_of(body),
            team=team_of(body),
            seq=seq,
            hash=hash,
        )
        build = functools.partial(self._search, click)
        self._hand_over(client, click, lambda: self._render(client, click, hash, build), body)

    def on_refresh(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """**Search again**: read the filters, show "searching", then a fresh search."""
        ack()
        click = self._click(body, client)
        if click is None:
            return
        state, template, values = click.state, click.template, click.values
        gpu = values["gpu"]
        state.gpu_name = None if gpu in (None, picker.ANY_GPU) else str(gpu)[:100]
        state.max_dph = _price_filter(values["max_price"])
        disk = _positive_int(values["disk"])
        if disk is not None and disk_problem(template, disk) is None:
            state.disk_gb = disk
        build = functools.partial(self._search, click, refresh=True, lifetime=values["lifetime"])

        def job() -> None:
            loading = picker.loading_view(template, state)
            self._render(client, click, click.hash, lambda: loading)
            self._render(client, click, self.versions.last_hash(click.view_id), build)

        self._hand_over(client, click, job, body)

    def on_offer_chosen(self, ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """An offer or a run length was chosen: redraw the cost and budget lines (the last
        search is reused, no new Vast.ai request)."""
        ack()
        click = self._click(body, client)
        if click is None:
            return
        choice = picker.parse_offer_value(click.values["offer"])
        build = functools.partial(
            self._search,
            click,
            selected_offer_id=choice.offer_id if choice is not None else None,
            reuse=True,
            lifetime=click.values["lifetime"],
        )
        self._hand_over(client, click, lambda: self._render(client, click, click.hash, build), body)

    def on_input_changed(self, ack: Ack) -> None:
        """A filter or the channel changed: read on submit or "Search again"; nothing now."""
        ack()

    def _search(self, click: _Click, **options: Any) -> Any:
        return self.search.view(
            click.template,
            click.state,
            click.view_id,
            user_id=click.user,
            team_id=click.team,
            **options,
        )

    def _render(
        self, client: WebClient, click: _Click, hash: str | None, build: Callable[[], Any]
    ) -> None:
        """Show ``build()`` on the click's modal unless a newer action began meanwhile."""
        versions, view_id, seq = self.versions, click.view_id, click.seq
        sent = hash
        for _ in range(3):
            if not versions.is_latest(view_id, seq):
                return
            view = build()
            if not versions.is_latest(view_id, seq):
                return
            shown = update_view(client, view_id, view, hash=sent)
            if not shown.conflict:
                versions.shown(view_id, shown.hash)
                return
            newest = versions.last_hash(view_id)  # changed by another render of ours, or not
            sent = newest if newest and newest != sent else None

    def _hand_over(
        self, client: WebClient, click: _Click, job: Callable[[], None], body: dict[str, Any]
    ) -> None:
        """Run ``job`` on the work pool; when it is full, say so in the modal at once. A
        clicker who does not belong to the workspace (:mod:`bot.services.membership`) gets
        the refusal in the modal instead, and no offer is searched on its account."""
        view_id = click.view_id

        def checked() -> None:
            refusal = interaction_refusal(self.membership, body, DEPLOY)
            if refusal is None:
                job()
                return
            notice = deploy_blocks.problem_view(refusal)
            self._render(client, click, self.versions.last_hash(view_id), lambda: notice)

        try:
            self.work.spawn(checked)
        except Busy:
            logger.warning("work pool full: picker %s answered busy", view_id)
            busy = picker.error_view(click.template, click.state, BUSY_TEXT)
            self._render(client, click, click.hash, lambda: busy)

    def _click(self, body: dict[str, Any], client: WebClient) -> _Click | None:
        """What a block action on an open picker says (its view, state, template, inputs,
        user, workspace), begun as the modal's newest action; None when it is not from a
        picker of ours, or when its template left the catalog (the user is told so)."""
        found = _picker_of(self.catalog, body)
        if found is None:
            return None
        view_id, state, template = found
        if template is None:
            tell_user(self.messages, client, body, template_gone_text(state.template))
            return None
        view = body.get("view") or {}
        return _Click(
            view_id=view_id,
            state=state,
            template=template,
            values=picker.selected_values(view),
            user=user_of(body),
            team=team_of(body),
            seq=self.versions.begin(view_id),
            hash=view.get("hash"),
        )


@dataclass(frozen=True)
class _Click:
    """A block action on an open picker: the modal (``view_id``, its ``hash``), its state and
    template, the inputs' ``values`` (:func:`bot.slack.blocks.picker.selected_values`), who clicked
    in which workspace, and the action's sequence number on the modal (``seq``)."""

    view_id: str
    state: picker.PickerState
    template: Template
    values: dict[str, Any]
    user: str
    team: str | None
    seq: int
    hash: str | None


def _positive_int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _price_filter(value: Any) -> float | None:
    """The max-price filter in $/hour: a finite number within the input's bounds, else None."""
    try:
        number = float(str(value))
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return min(max(number, picker.MIN_PRICE_FILTER), picker.MAX_PRICE_FILTER)
