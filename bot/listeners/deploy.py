"""Listeners for the Deploy button and the GPU offer picker (thin: parse, ack, hand over).

Deploy → ``views.open`` at once with the trigger_id (it expires after 3 s) showing a
"searching" modal → ``views.update`` with live offers. Reference: slack.md §1.4, §1.5.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks import budgets as budget_blocks
from bot.blocks import picker
from bot.blocks.templates import ACTION_DEPLOY
from bot.listeners.templates import tell_template_gone
from bot.services.context import Services
from bot.services.offers import gpu_models, picker_offers
from bot.vast.errors import VastError
from catalog import RankedOffer, Template, disk_problem

logger = logging.getLogger(__name__)

#: What to tell the user when Slack refuses to open the picker (views.open errors, slack.md §1.4).
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
        )
    except VastError as error:
        logger.warning("offer search failed: %s", type(error).__name__)
        return picker.error_view(template, state, error.user_message)
    ranked = found.ranked
    if state.gpu_name is None and state.max_dph is None:
        state.models = gpu_models(ranked)
    policy = services.lifetimes.policy
    choices = policy.choices(template, admin=services.is_admin(user_id))
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
        simulated=services.settings.simulated,
        selected_offer_id=selected_offer_id,
        credit_warning=_credit_warning(services, ranked, selected_offer_id),
        budget_text=budget_text,
        lifetimes=[picker.LifetimeChoice.for_hours(h) for h in choices],
        lifetime_warning_minutes=services.settings.lifetime_warning_minutes,
        lifetime_hours=hours,
        prices_age_seconds=found.age,
    )


def _picker_of(
    services: Services, body: dict[str, Any]
) -> tuple[str, picker.PickerState, Template] | None:
    """(view id, state, template) of the picker a block_actions payload came from, or None
    when the payload is not from a picker of ours (untrusted input)."""
    view = body.get("view") or {}
    try:
        state = picker.PickerState.from_metadata(view.get("private_metadata") or "")
    except ValueError:
        return None
    template = services.catalog.get(state.template)
    view_id = view.get("id")
    if template is None or not isinstance(view_id, str):
        return None
    return view_id, state, template


def _credit_warning(
    services: Services, ranked: list[RankedOffer], selected_offer_id: int | None
) -> str | None:
    if selected_offer_id is None:
        return None
    chosen = next((r for r in ranked if r.offer.id == selected_offer_id), None)
    return services.credit.warning(chosen.offer.dph_total) if chosen is not None else None


def update_view(client: WebClient, view_id: str, view: Any) -> None:
    """``views.update``; a modal the user closed meanwhile (``not_found``) is not an error."""
    try:
        client.views_update(view_id=view_id, view=view)
    except SlackApiError as error:  # the user closed the modal meanwhile: nothing to show
        logger.info("views.update failed: %s", error.response.get("error"))


def register(app: App, services: Services) -> None:
    """Attach the deploy listeners to ``app``."""

    @app.action(ACTION_DEPLOY)
    def deploy_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        template = services.catalog.get(str(action.get("value") or ""))
        if template is None:
            tell_template_gone(respond)
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
            respond(
                replace_original=False,
                response_type="ephemeral",
                text=PICKER_NOT_OPENED.get(str(code), PICKER_NOT_OPENED["default"]),
            )
            return
        view_id = opened["view"]["id"]
        user = str((body.get("user") or {}).get("id") or "")
        update_view(
            client,
            view_id,
            search_view(services, template, state, view_id, user_id=user, team_id=_team_of(body)),
        )

    @app.action(picker.ACTION_REFRESH)
    def picker_refresh(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        found = _picker_of(services, body)
        if found is None:
            return
        view_id, state, template = found
        values = picker.selected_values(body["view"])
        gpu = values["gpu"]
        state.gpu_name = None if gpu in (None, picker.ANY_GPU) else str(gpu)[:100]
        state.max_dph = _price_filter(values["max_price"])
        disk = _positive_int(values["disk"])
        if disk is not None and disk_problem(template, disk) is None:
            state.disk_gb = disk
        update_view(client, view_id, picker.loading_view(template, state))
        user = str((body.get("user") or {}).get("id") or "")
        update_view(
            client,
            view_id,
            search_view(
                services,
                template,
                state,
                view_id,
                user_id=user,
                refresh=True,
                lifetime=values["lifetime"],
                team_id=_team_of(body),
            ),
        )

    @app.action(picker.ACTION_OFFER)
    @app.action(picker.ACTION_LIFETIME)
    def offer_chosen(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """An offer or a run length was chosen: redraw the cost and budget lines (the last
        search is reused, no new Vast.ai request)."""
        ack()
        found = _picker_of(services, body)
        values = picker.selected_values(body.get("view") or {})
        choice = picker.parse_offer_value(values["offer"])
        if found is None:
            return
        view_id, state, template = found
        new_view = search_view(
            services,
            template,
            state,
            view_id,
            user_id=str((body.get("user") or {}).get("id") or ""),
            selected_offer_id=choice.offer_id if choice is not None else None,
            reuse=True,
            lifetime=values["lifetime"],
            team_id=_team_of(body),
        )
        update_view(client, view_id, new_view)

    @app.action(picker.ACTION_GPU_FILTER)
    @app.action(picker.ACTION_MAX_PRICE)  # a select in the no-offers view
    @app.action(picker.ACTION_CHANNEL)
    def input_changed(ack: Ack) -> None:
        ack()  # read on submit or "Search again"; nothing to do now


def _team_of(body: dict[str, Any]) -> str | None:
    """The workspace a payload came from (``team.id``, else ``user.team_id``)."""
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    return str(team) if team else None


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
