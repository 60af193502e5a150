"""Listeners for the Deploy button and the GPU offer picker (thin: parse, ack, hand over).

Deploy → ``views.open`` at once with the trigger_id (it expires after 3 s) showing a
"searching" modal → the search and the render run on the work pool (``services.work``, off
Bolt's listener threads) → ``views.update`` with live offers. Reference:
docs/SLACK_API.md §1.4, §1.5.
Deploy pressed inside a modal (no response_url) that cannot push the picker, or whose
template is gone, turns that modal into a notice (:func:`bot.slack.listeners.replies.tell_user`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services.context import Services
from bot.services.offers import gpu_models, picker_offers
from bot.services.work import BUSY_TEXT, Busy
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import picker
from bot.slack.blocks.templates import ACTION_DEPLOY, TEMPLATE_GONE
from bot.slack.listeners.membership import DEPLOY, interaction_refusal
from bot.slack.listeners.payloads import team_of
from bot.slack.listeners.replies import ViewVersions, tell_user, update_view
from bot.vast.errors import VastError
from catalog import RankedOffer, Template, disk_problem

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


def search_view(
    services: Services,
    template: Template,
    state: picker.PickerState,
    view_id: str,
    *,
    user_id: str,
    selected_offer_id: int | None = None,
    reuse: bool = False,
    refresh: bool = False,
    lifetime: Any = None,
    team_id: str | None = None,
) -> Any:
    """Search offers for ``state`` and build the picker (or the error modal) as ``user_id``
    sees it (admins may choose lifetimes past the maximum). Offers come from the shared
    cache (a search at most ``OFFER_CACHE_SECONDS`` old; ``refresh`` forces a new one); with
    ``reuse``, the search this picker last showed (same filters, a couple of minutes old at
    most) is shown again. ``lifetime``: the **Run for** value the modal holds now (kept when valid).
    ``team_id``: the workspace, whose budgets the picker shows for the chosen offer and run."""
    account = services.accounts.for_team(team_id)
    try:
        found = picker_offers(
            services.offers,
            template,
            view_id=view_id,
            disk_gb=state.disk_gb or template.disk_gb,
            gpu_name=state.gpu_name,
            max_dph=state.max_dph,
            recent=services.recent_searches,
            reuse=reuse,
            refresh=refresh,
            account=account,
        )
    except VastError as error:
        logger.warning("offer search failed: %s", type(error).__name__)
        return picker.error_view(template, state, error.user_message)
    ranked = found.ranked
    if state.gpu_name is None and state.max_dph is None:
        state.models = gpu_models(ranked)
    policy = services.lifetimes.policy_for(team_id)
    choices = policy.choices(template, admin=services.is_admin(team_id, user_id))
    hours: float | None = policy.default_for(template)
    if lifetime is not None:
        try:
            held = picker.parse_lifetime_value(lifetime)
        except ValueError:
            pass
        else:
            if held in choices:
                hours = held
    chosen = next((r for r in ranked if r.offer.id == selected_offer_id), None)
    budget_text = None
    if chosen is not None and team_id:
        check = services.budgets.check(team_id, user_id, chosen.offer.dph_total, hours)
        budget_text = budget_blocks.picker_budget_text(check)
    return picker.picker_view(
        template,
        state,
        ranked,
        simulated=account.simulated,
        selected_offer_id=selected_offer_id,
        credit_warning=_credit_warning(services, ranked, selected_offer_id, team_id),
        budget_text=budget_text,
        lifetimes=[picker.LifetimeChoice.for_hours(h) for h in choices],
        lifetime_warning_minutes=services.settings.lifetime_warning_minutes,
        lifetime_hours=hours,
        prices_age_seconds=found.age,
    )


def _picker_of(
    services: Services, body: dict[str, Any]
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
    return view_id, state, services.catalog.get(state.template)


def template_gone_text(slug: str) -> str:
    """What a picker whose template left the catalog says (e.g. after a restart)."""
    return (
        f"The template `{slug[:40]}` is no longer in the catalog. "
        "Run `/templates` for the current list."
    )


def _credit_warning(
    services: Services,
    ranked: list[RankedOffer],
    selected_offer_id: int | None,
    team_id: str | None,
) -> str | None:
    if selected_offer_id is None:
        return None
    chosen = next((r for r in ranked if r.offer.id == selected_offer_id), None)
    if chosen is None:
        return None
    return services.credit.warning(chosen.offer.dph_total, team_id=team_id)


def register(app: App, services: Services) -> None:
    """Attach the deploy listeners to ``app``.

    Each listener acks, does what must happen within the click's 3 s (``views.open`` with the
    trigger_id) and hands the offer search and the render to ``services.work``; a full pool
    shows "busy — try again in a minute" in the modal at once. Renders of one modal are
    ordered by :class:`ViewVersions`: a render gives way to a newer action on the same modal,
    and ``views.update`` carries the hash of the view it replaces (on ``hash_conflict`` the
    newest action renders again on the newest view)."""
    versions = ViewVersions()

    def render(
        client: WebClient, view_id: str, seq: int, hash: str | None, build: Callable[[], Any]
    ) -> None:
        """Show ``build()`` on ``view_id`` unless a newer action began meanwhile."""
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

    def hand_over(
        client: WebClient,
        view_id: str,
        seq: int,
        hash: str | None,
        template: Template,
        state: picker.PickerState,
        job: Callable[[], None],
        body: dict[str, Any],
    ) -> None:
        """Run ``job`` on the work pool; when it is full, say so in the modal at once. A
        clicker who does not belong to the workspace (:mod:`bot.services.membership`) gets
        the refusal in the modal instead, and no offer is searched on its account."""

        def checked() -> None:
            refusal = interaction_refusal(services, body, DEPLOY)
            if refusal is None:
                job()
                return
            notice = deploy_blocks.problem_view(refusal)
            render(client, view_id, seq, versions.last_hash(view_id), lambda: notice)

        try:
            services.work.spawn(checked)
        except Busy:
            logger.warning("work pool full: picker %s answered busy", view_id)
            busy = picker.error_view(template, state, BUSY_TEXT)
            render(client, view_id, seq, hash, lambda: busy)

    def picker_click(body: dict[str, Any], client: WebClient) -> _Click | None:
        """What a block action on an open picker says (its view, state, template, inputs,
        user, workspace), begun as the modal's newest action; None when it is not from a
        picker of ours, or when its template left the catalog (the user is told so)."""
        found = _picker_of(services, body)
        if found is None:
            return None
        view_id, state, template = found
        if template is None:
            tell_user(services, client, body, template_gone_text(state.template))
            return None
        view = body.get("view") or {}
        return _Click(
            view_id=view_id,
            state=state,
            template=template,
            values=picker.selected_values(view),
            user=str((body.get("user") or {}).get("id") or ""),
            team=team_of(body),
            seq=versions.begin(view_id),
            hash=view.get("hash"),
        )

    @app.action(ACTION_DEPLOY)
    def deploy_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        template = services.catalog.get(str(action.get("value") or ""))
        if template is None:
            tell_user(services, client, body, TEMPLATE_GONE)
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
            tell_user(services, client, body, text, template=template)
            return
        view_id = str(opened["view"]["id"])
        seq = versions.begin(view_id)
        hash = opened["view"].get("hash")
        versions.shown(view_id, hash)
        user = str((body.get("user") or {}).get("id") or "")
        team = team_of(body)

        def build() -> Any:
            return search_view(services, template, state, view_id, user_id=user, team_id=team)

        hand_over(
            client,
            view_id,
            seq,
            hash,
            template,
            state,
            lambda: render(client, view_id, seq, hash, build),
            body,
        )

    @app.action(picker.ACTION_REFRESH)
    def picker_refresh(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        click = picker_click(body, client)
        if click is None:
            return
        view_id, state, template, values = click.view_id, click.state, click.template, click.values
        user, team, seq, hash = click.user, click.team, click.seq, click.hash
        gpu = values["gpu"]
        state.gpu_name = None if gpu in (None, picker.ANY_GPU) else str(gpu)[:100]
        state.max_dph = _price_filter(values["max_price"])
        disk = _positive_int(values["disk"])
        if disk is not None and disk_problem(template, disk) is None:
            state.disk_gb = disk

        def build() -> Any:
            return search_view(
                services,
                template,
                state,
                view_id,
                user_id=user,
                refresh=True,
                lifetime=values["lifetime"],
                team_id=team,
            )

        def job() -> None:
            loading = picker.loading_view(template, state)
            render(client, view_id, seq, hash, lambda: loading)
            render(client, view_id, seq, versions.last_hash(view_id), build)

        hand_over(client, view_id, seq, hash, template, state, job, body)

    @app.action(picker.ACTION_OFFER)
    @app.action(picker.ACTION_LIFETIME)
    def offer_chosen(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """An offer or a run length was chosen: redraw the cost and budget lines (the last
        search is reused, no new Vast.ai request)."""
        ack()
        click = picker_click(body, client)
        if click is None:
            return
        view_id, state, template, values = click.view_id, click.state, click.template, click.values
        user, team, seq, hash = click.user, click.team, click.seq, click.hash
        choice = picker.parse_offer_value(values["offer"])

        def build() -> Any:
            return search_view(
                services,
                template,
                state,
                view_id,
                user_id=user,
                selected_offer_id=choice.offer_id if choice is not None else None,
                reuse=True,
                lifetime=values["lifetime"],
                team_id=team,
            )

        hand_over(
            client,
            view_id,
            seq,
            hash,
            template,
            state,
            lambda: render(client, view_id, seq, hash, build),
            body,
        )

    @app.action(picker.ACTION_GPU_FILTER)
    @app.action(picker.ACTION_MAX_PRICE)  # a select in the no-offers view
    @app.action(picker.ACTION_CHANNEL)
    def input_changed(ack: Ack) -> None:
        ack()  # read on submit or "Search again"; nothing to do now


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
