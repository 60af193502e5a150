"""Offer search for a template: one ``POST /bundles/`` per search, checked again and ranked.

The query and the matching rules live in :mod:`catalog.matching`; this module only runs them
against the Vast.ai client.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
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


class RecentSearches:
    """The last offer search shown in each open picker, by view id, for ``ttl`` seconds.

    Choosing an offer re-renders the picker (to show that offer's cost); reusing the search the
    user is looking at spares a Vast.ai request (offer search is rate limited per IP, vast-api.md
    §1) and keeps the list from shifting under the user's cursor. Thread-safe; at most ``size``
    pickers are remembered (oldest dropped). Per process: a miss just searches again.
    """

    def __init__(self, ttl: float = 120.0, size: int = 256) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Hashable, list[RankedOffer]]] = OrderedDict()

    def put(self, view_id: str, key: Hashable, ranked: list[RankedOffer]) -> None:
        """Remember ``ranked`` for ``view_id`` and the search ``key`` (template and filters)."""
        with self._lock:
            self._entries[view_id] = (time.monotonic(), key, ranked)
            self._entries.move_to_end(view_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get(self, view_id: str, key: Hashable) -> list[RankedOffer] | None:
        """The remembered offers for ``view_id`` if searched with the same ``key`` within ttl."""
        with self._lock:
            entry = self._entries.get(view_id)
        if entry is None or entry[1] != key or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[2]


def picker_offers(
    vast: OfferSource,
    template: Template,
    *,
    view_id: str,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
    recent: RecentSearches | None = None,
    reuse: bool = False,
) -> list[RankedOffer]:
    """:func:`find_offers` for the picker ``view_id``, remembered in ``recent``; with ``reuse``
    the search this picker last showed (same template and filters, within the cache's ttl)
    is returned without a Vast.ai request. Raises what :func:`find_offers` raises."""
    key = (template.slug, gpu_name, max_dph, disk_gb)
    ranked = recent.get(view_id, key) if reuse and recent is not None else None
    if ranked is None:
        ranked = find_offers(vast, template, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)
        if recent is not None:
            recent.put(view_id, key, ranked)
    return ranked
