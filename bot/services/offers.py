"""Offer search for a template: one ``POST /bundles/`` per search, checked again and ranked,
shared by everyone asking the same within ``OFFER_CACHE_SECONDS`` (:class:`OfferCache`).

The query and the matching rules live in :mod:`catalog.matching`; this module only runs them
against the Vast.ai client.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from bot.services.accounts import VastAccount
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
    server filters are not always applied (docs/VAST_API.md §2). Raises
    ``bot.vast.errors.VastError`` subclasses (e.g. Unreachable, RateLimited) and ``ValueError``
    for a disk out of bounds.
    """
    query = build_offer_query(template, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)
    offers = vast.search_offers(query)
    return rank_offers(template, offers, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)


def gpu_models(ranked: list[RankedOffer]) -> list[str]:
    """Distinct GPU model names among ``ranked``, sorted (for the picker's GPU filter)."""
    return sorted({r.offer.gpu_name for r in ranked})


@dataclass(frozen=True)
class OfferSearch:
    """The result of one offer search as a picker shows it.

    Attributes:
        ranked: offers that fit, best first (:func:`catalog.rank_offers`).
        searched_at: when Vast.ai answered, in the cache's monotonic seconds.
        age: seconds between that answer and the moment this result was handed out (what the
            picker shows as "prices from 12 s ago").
    """

    ranked: list[RankedOffer]
    searched_at: float
    age: float


class OfferCache:
    """Offer searches shared by everyone in the process, keyed by what they ask.

    Offer search is limited to about 10 requests per minute per IP (docs/VAST_API.md §1,
    search_offers.yaml ``x-rate-limit``), so the picker must not search once per person: a
    search is keyed by its Vast.ai query (the template's requirements, the GPU filter, the max
    price and the disk, as :func:`catalog.build_offer_query` builds it) and its raw offers are
    reused for ``ttl`` seconds (``OFFER_CACHE_SECONDS``) by anyone asking the same, each
    ranking them for their own template. Concurrent misses for one key wait for the one search
    in flight (one request reaches Vast.ai for a burst of Deploy clicks). Thread-safe; at most
    ``size`` keys are kept (oldest dropped).

    Args:
        vast: what searches (:class:`bot.vast.client.VastClient`, paced per endpoint).
        ttl: seconds a search is reused (0: never, every call searches).
        refresh_floor: a forced refresh (**Search again**) reuses a search younger than this
            many seconds instead of sending another (several people pressing it at once).
        clock: monotonic seconds (tests move it).
    """

    def __init__(
        self,
        vast: OfferSource,
        *,
        ttl: float = 30.0,
        refresh_floor: float = 5.0,
        size: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.vast = vast
        self.ttl = float(ttl)
        self.refresh_floor = float(refresh_floor)
        self.size = size
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, list[Offer]]] = OrderedDict()
        self._flights: dict[str, Future[tuple[float, list[Offer]]]] = {}
        self.searches = 0
        """Searches this cache sent to Vast.ai (for benchmarks and tests)."""

    def search(
        self,
        template: Template,
        *,
        disk_gb: int,
        gpu_name: str | None = None,
        max_dph: float | None = None,
        refresh: bool = False,
        account: VastAccount | None = None,
    ) -> OfferSearch:
        """Offers that fit ``template`` with these filters (see :func:`find_offers`), from a
        search at most ``ttl`` seconds old; ``refresh`` sends a new one unless one younger
        than ``refresh_floor`` exists or one is in flight. ``account``: search with that Vast.ai
        account's client (its own pacing and quota; searches are shared per account), else
        this cache's own client. Raises what :meth:`bot.vast.client.VastClient.search_offers`
        raises (nothing is cached then) and ``ValueError`` for a disk out of bounds."""
        query = build_offer_query(template, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)
        source = account.client if account is not None else self.vast
        prefix = account.name if account is not None else ""
        key = prefix + "|" + json.dumps(query, sort_keys=True, default=str)
        max_age = self.refresh_floor if refresh else self.ttl
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.clock() - entry[0] <= max_age:
                self._entries.move_to_end(key)
                flight = None
                leader = False
            else:
                entry = None
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = Future()
                    self._flights[key] = flight
        if entry is None:
            assert flight is not None
            entry = self._fetch(source, key, query, flight) if leader else flight.result()
        searched_at, offers = entry
        ranked = rank_offers(template, offers, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph)
        return OfferSearch(ranked, searched_at, max(0.0, self.clock() - searched_at))

    def _fetch(
        self,
        source: OfferSource,
        key: str,
        query: dict[str, object],
        flight: Future[tuple[float, list[Offer]]],
    ) -> tuple[float, list[Offer]]:
        try:
            offers = source.search_offers(query)
        except BaseException as error:
            with self._lock:
                self._flights.pop(key, None)
            flight.set_exception(error)
            raise
        entry = (self.clock(), offers)
        with self._lock:
            self.searches += 1
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            self._flights.pop(key, None)
        flight.set_result(entry)
        return entry


class RecentSearches:
    """The search each open picker last showed, by view id, for ``ttl`` seconds.

    Choosing an offer or a run length re-renders the picker (to show that offer's cost);
    reusing the search the user is looking at keeps the list from shifting under the user's
    cursor and keeps its age true. Thread-safe; at most ``size`` pickers are remembered
    (oldest dropped). Per process: a miss goes to the shared :class:`OfferCache`.
    """

    def __init__(self, ttl: float = 120.0, size: int = 256) -> None:
        self.ttl = ttl
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Hashable, OfferSearch]] = OrderedDict()

    def put(self, view_id: str, key: Hashable, search: OfferSearch) -> None:
        """Remember ``search`` for ``view_id`` and the search ``key`` (template and filters)."""
        with self._lock:
            self._entries[view_id] = (key, search)
            self._entries.move_to_end(view_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get(self, view_id: str, key: Hashable, now: float) -> OfferSearch | None:
        """The remembered search for ``view_id`` if made with the same ``key`` at most ``ttl``
        seconds before ``now`` (monotonic seconds), with its age as of ``now``."""
        with self._lock:
            entry = self._entries.get(view_id)
        if entry is None or entry[0] != key or now - entry[1].searched_at > self.ttl:
            return None
        search = entry[1]
        return OfferSearch(search.ranked, search.searched_at, max(0.0, now - search.searched_at))


def picker_offers(
    cache: OfferCache,
    template: Template,
    *,
    view_id: str,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
    recent: RecentSearches | None = None,
    reuse: bool = False,
    refresh: bool = False,
    account: VastAccount | None = None,
) -> OfferSearch:
    """The offers the picker ``view_id`` shows, remembered in ``recent``.

    With ``reuse`` the search this picker last showed (same template and filters, within
    ``recent``'s ttl) is returned as it was; otherwise the shared ``cache`` answers (a search
    at most ``OFFER_CACHE_SECONDS`` old, or a new one with ``refresh``). Raises what
    :meth:`OfferCache.search` raises.
    """
    key = (account.name if account else "", template.slug, gpu_name, max_dph, disk_gb)
    found = recent.get(view_id, key, cache.clock()) if reuse and recent is not None else None
    if found is None:
        found = cache.search(
            template,
            disk_gb=disk_gb,
            gpu_name=gpu_name,
            max_dph=max_dph,
            refresh=refresh,
            account=account,
        )
        if recent is not None:
            recent.put(view_id, key, found)
    return found
