"""The GPU offer picker's search and render (:class:`PickerSearch`), used by the picker's block
actions (:mod:`bot.slack.listeners.actions.deploy`) on the work pool: not a listener itself."""

from __future__ import annotations

import logging
from typing import Any

from bot.services.accounts import VastAccounts
from bot.services.budgets import BudgetService
from bot.services.credit import CreditService
from bot.services.lifetimes import LifetimeService
from bot.services.manage import ManageService
from bot.services.offers import OfferCache, RecentSearches, gpu_models, picker_offers
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import picker
from bot.vast.errors import VastError
from catalog import RankedOffer, Template

logger = logging.getLogger(__name__)


class PickerSearch:
    """The picker's offer search and render: the offers (shared cache, or the search this
    picker last showed), the **Run for** choices of the workspace's lifetime policy, the
    budget and credit lines for the chosen offer.

    ``lifetime_warning_minutes``: how long before the end the owner is warned (shown in the
    picker)."""

    def __init__(
        self,
        *,
        offers: OfferCache,
        recent_searches: RecentSearches,
        accounts: VastAccounts,
        lifetimes: LifetimeService,
        budgets: BudgetService,
        credit: CreditService,
        manage: ManageService,
        lifetime_warning_minutes: float,
    ) -> None:
        self.offers = offers
        self.recent_searches = recent_searches
        self.accounts = accounts
        self.lifetimes = lifetimes
        self.budgets = budgets
        self.credit = credit
        self.manage = manage
        self.lifetime_warning_minutes = lifetime_warning_minutes

    def view(
        self,
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
        most) is shown again. ``lifetime``: the **Run for** value the modal holds now (kept when
        valid). ``team_id``: the workspace, whose budgets the picker shows for the chosen offer
        and run."""
        account = self.accounts.for_team(team_id)
        try:
            found = picker_offers(
                self.offers,
                template,
                view_id=view_id,
                disk_gb=state.disk_gb or template.disk_gb,
                gpu_name=state.gpu_name,
                max_dph=state.max_dph,
                recent=self.recent_searches,
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
        policy = self.lifetimes.policy_for(team_id)
        choices = policy.choices(template, admin=self.manage.is_admin(team_id, user_id))
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
            check = self.budgets.check(team_id, user_id, chosen.offer.dph_total, hours)
            budget_text = budget_blocks.picker_budget_text(check)
        return picker.picker_view(
            template,
            state,
            ranked,
            simulated=account.simulated,
            selected_offer_id=selected_offer_id,
            credit_warning=self._credit_warning(ranked, selected_offer_id, team_id),
            budget_text=budget_text,
            lifetimes=[picker.LifetimeChoice.for_hours(h) for h in choices],
            lifetime_warning_minutes=self.lifetime_warning_minutes,
            lifetime_hours=hours,
            prices_age_seconds=found.age,
        )

    def _credit_warning(
        self,
        ranked: list[RankedOffer],
        selected_offer_id: int | None,
        team_id: str | None,
    ) -> str | None:
        if selected_offer_id is None:
            return None
        chosen = next((r for r in ranked if r.offer.id == selected_offer_id), None)
        if chosen is None:
            return None
        return self.credit.warning(chosen.offer.dph_total, team_id=team_id)
