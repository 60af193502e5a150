"""Offer search for a template: one ``POST /bundles/`` per search, checked again and ranked.

The query and the matching rules live in :mod:`catalog.matching`; this module only runs them
against the Vast.ai client.
"""

from __future__ import annotations

from typing import Protocol

from bot.vast.models import Offer
from catalog import RankedOffer, Template, build_offer_query, rank_offers


class OfferSource(Protocol):
    """What the search needs from :class:`bot.vast.client.VastClient`."""

    def search_offers(self, query: dict[str, object]) -> list[Offer]: ...


def find_offers(
    vast: OfferSource,
    template: Template,
    *,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
) -> list[RankedOffer]:
    """Live offers that fit ``template``, best first (recommended VRAM, then $/hour), ≤ 100.

    ``disk_gb`` is priced into ``dph_total`` ($/hour) through ``allocated_storage``;
    ``max_dph`` caps ``dph_total``. Every offer is re-checked on our side, since Vast.ai's
    server filters are not always applied (vast-api.md §2). Raises ``bot.vast.errors.VastError``
    subclasses (e.g. Unreachable, RateLimited) and ``ValueError`` for a disk out of bounds.
    """
    query = build_offer_query(template, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)
    offers = vast.search_offers(query)
    return rank_offers(template, offers, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)


def gpu_models(ranked: list[RankedOffer]) -> list[str]:
    """Distinct GPU model names among ``ranked``, sorted (for the picker's GPU filter)."""
    return sorted({r.offer.gpu_name for r in ranked})
