"""Which Vast.ai offers fit a template, and in what order to show them (pure; no HTTP).

Facts from Vast.ai's search-offers reference (docs.vast.ai/api-reference, `POST
/api/v0/bundles/`) and the Vast.ai provider of github.com/dstackai/gpuhunt:
- Offers come from `POST /api/v0/bundles/` with a JSON body of filters
  `{"field": {"op": value}}`; `limit` caps the count (about 64 come back without it).
- `gpu_ram` is per-GPU VRAM in MB ("MiB-ish"): a card sold as 24 GB reports ~24,564 MB.
- `cuda_max_good` (float) alone dropped Hopper offers, so the query pairs it with a
  `compute_cap` floor (dstackai/gpuhunt#142).
- `dph_total` is $/hour for the GPU plus storage for `allocated_storage` GB; send the disk
  you will rent so the price shown is the price paid.
- Server-side filters are not always applied, so every offer is checked again here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from catalog.models import MIN_DISK_GB, Template

#: A card sold as N GB reports a bit less (24 GB -> ~24,564 MB = 23.99 GiB, some 16 GB cards
#: ~15.9 GB). An offer's per-GPU VRAM counts as N GB when it is at least N * 0.93; this is
#: gpuhunt's rule (its lower bound is GiB * 1024 * 0.93 MB, github.com/dstackai/gpuhunt). The same
#: tolerance is used for "meets recommended".
VRAM_TOLERANCE = 0.93

#: Extra direct port every instance needs besides the template's ports: SSH (22).
SSH_PORTS = 1

#: Most offers `rank_offers` returns (and the default `limit` of a search).
MAX_OFFERS = 100


class OfferLike(Protocol):
    """What catalog needs from a Vast.ai offer (the bot's `Offer` model), in human units.

    id: offer (ask) id. gpu_name: e.g. "RTX 4090". num_gpus: GPUs in the offer.
    gpu_ram_gb: VRAM per GPU in GB, converted from Vast.ai's `gpu_ram` MB as MB / 1024.
    cuda_max_good: highest CUDA version the host driver supports, a float like 12.8.
    compute_cap: CUDA compute capability x100 (e.g. 890). disk_space_gb: most disk, GB.
    direct_port_count: open direct ports. dph_total: $/hour incl. storage for the
    `allocated_storage` GB the search asked for. verified, rentable: booleans.
    reliability: 0..1. geolocation: free text like "Oregon, US".
    """

    @property
    def id(self) -> int: ...
    @property
    def gpu_name(self) -> str: ...
    @property
    def num_gpus(self) -> int: ...
    @property
    def gpu_ram_gb(self) -> float: ...
    @property
    def cuda_max_good(self) -> float | None: ...
    @property
    def compute_cap(self) -> int | None: ...
    @property
    def disk_space_gb(self) -> float: ...
    @property
    def direct_port_count(self) -> int: ...
    @property
    def dph_total(self) -> float: ...
    @property
    def verified(self) -> bool: ...
    @property
    def rentable(self) -> bool: ...
    @property
    def reliability(self) -> float | None: ...
    @property
    def geolocation(self) -> str | None: ...


@dataclass(frozen=True)
class RankedOffer:
    """An offer that fits a template; `meets_recommended`: its VRAM per GPU reaches the
    template's recommended VRAM (with `VRAM_TOLERANCE`)."""

    offer: OfferLike
    meets_recommended: bool


def cuda_tuple_from_float(value: float | str) -> tuple[int, int]:
    """A host's `cuda_max_good` as `(major, minor)`: 12.8 -> (12, 8), 12.1 -> (12, 1).

    Rule: round to 2 decimals, then read Python's shortest repr of the float ("12.1", not
    "12.10", and 12.799999999 becomes "12.8"), so the digits after the point are the minor
    version. A float cannot tell 12.1 from 12.10; Vast.ai sends floats, and CUDA minors have
    been single digits so far, so 12.1 is read as 12.1. Strings ("12.8", as in instance
    objects) are read as written. Raises ValueError for anything else.
    """
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        text = repr(round(float(value), 2))
    else:
        raise ValueError(f"not a CUDA version: {value!r}")
    major, _, minor = text.partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        raise ValueError(f"not a CUDA version: {value!r}")
    return int(major), int(minor or "0")


def vram_fits(needed_gb: int, gpu_ram_gb: float) -> bool:
    """True when per-GPU VRAM `gpu_ram_gb` (GB, measured) counts as `needed_gb` (nominal)."""
    return gpu_ram_gb >= needed_gb * VRAM_TOLERANCE


def min_gpu_ram_mb(needed_gb: int) -> int:
    """The `gpu_ram` floor in MB for a search: needed_gb * 1024 * 0.93, rounded down."""
    return math.floor(needed_gb * 1024 * VRAM_TOLERANCE)


def disk_problem(template: Template, disk_gb: int) -> str | None:
    """Why `disk_gb` cannot be rented for this template, or None when it is fine.

    Allowed: the template's default `disk_gb` (what its image and data need; never below
    Vast.ai's minimum of 8 GB) up to `template.max_disk_gb`. Used by the picker's disk input,
    the submission check and the offer query alike.
    """
    floor = max(MIN_DISK_GB, template.disk_gb)
    if disk_gb < floor:
        return f"disk must be at least {floor} GB for {template.name}"
    if disk_gb > template.max_disk_gb:
        return f"disk must be at most {template.max_disk_gb} GB for {template.name}"
    return None


def _check_disk(template: Template, disk_gb: int) -> None:
    problem = disk_problem(template, disk_gb)
    if problem is not None:
        raise ValueError(problem)


def build_offer_query(
    template: Template,
    *,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
    limit: int = MAX_OFFERS,
) -> dict[str, Any]:
    """The JSON body for `POST /api/v0/bundles/` that finds offers for `template`.

    Filters (docs.vast.ai/api-reference, search offers): verified, rentable, not already
    rented by us, not external; `gpu_ram` >= min VRAM in MB with `VRAM_TOLERANCE`;
    `cuda_max_good` >= the template's CUDA as a float; `compute_cap` >=
    `template.min_compute_cap`; `disk_space` >= disk_gb;
    `direct_port_count` >= ports + 1 (SSH); optional exact `gpu_name` (with spaces, e.g.
    "RTX 4090") and `dph_total` <= max_dph ($/hour). On-demand prices, `allocated_storage`
    = disk_gb so `dph_total` includes the disk, cheapest first, explicit `limit`.

    CUDA pitfall: the float of "12.10" is 12.1, which is below 12.2..12.9. The filter is then
    looser than meant, never stricter; `offer_fits` re-checks with version tuples.

    Raises ValueError when disk_gb is outside 8..template.max_disk_gb or limit < 1.
    """
    _check_disk(template, disk_gb)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    query: dict[str, Any] = {
        "verified": {"eq": True},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "external": {"eq": False},
        "gpu_ram": {"gte": min_gpu_ram_mb(template.min_vram_gb)},
        "cuda_max_good": {"gte": float(template.cuda_version)},
        "compute_cap": {"gte": template.min_compute_cap},
        "disk_space": {"gte": disk_gb},
        "direct_port_count": {"gte": len(template.ports) + SSH_PORTS},
        "type": "on-demand",
        "allocated_storage": disk_gb,
        "order": [["dph_total", "asc"]],
        "limit": limit,
    }
    if gpu_name is not None:
        query["gpu_name"] = {"eq": gpu_name}
    if max_dph is not None:
        query["dph_total"] = {"lte": max_dph}
    return query


def offer_fits(
    template: Template,
    offer: OfferLike,
    *,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
) -> str | None:
    """None when `offer` fits `template`, else a short reason for a person to read.

    Checks again everything `build_offer_query` asks the server for, since Vast.ai does not
    always apply its filters: verified, rentable, gpu_name (exact), VRAM per GPU (with
    `VRAM_TOLERANCE`), CUDA (as version tuples, see `cuda_tuple_from_float`), compute
    capability, disk, direct ports (template ports + SSH) and price. An offer with an unknown
    CUDA version or compute capability does not fit. Raises ValueError on a bad disk_gb.
    """
    _check_disk(template, disk_gb)
    if not offer.verified:
        return "the host is not verified"
    if not offer.rentable:
        return "the offer is no longer rentable"
    if gpu_name is not None and offer.gpu_name != gpu_name:
        return f"GPU is {offer.gpu_name}, not {gpu_name}"
    if offer.num_gpus < 1:
        return "the offer has no GPU"
    if not vram_fits(template.min_vram_gb, offer.gpu_ram_gb):
        return (
            f"{offer.gpu_ram_gb:.1f} GB VRAM per GPU, {template.name} needs "
            f"{template.min_vram_gb} GB"
        )
    if offer.cuda_max_good is None:
        return "the host's CUDA version is unknown"
    try:
        host_cuda = cuda_tuple_from_float(offer.cuda_max_good)
    except ValueError:
        return "the host's CUDA version is unknown"
    if host_cuda < template.cuda_tuple:
        return (
            f"the host supports CUDA up to {host_cuda[0]}.{host_cuda[1]}, "
            f"{template.name} needs {template.cuda_version}"
        )
    if offer.compute_cap is None:
        return "the GPU's compute capability is unknown"
    if offer.compute_cap < template.min_compute_cap:
        return (
            f"compute capability {offer.compute_cap / 100:.1f} is below "
            f"{template.min_compute_cap / 100:.1f}"
        )
    if offer.disk_space_gb < disk_gb:
        return f"only {offer.disk_space_gb:.0f} GB of disk, {disk_gb} GB asked"
    needed_ports = len(template.ports) + SSH_PORTS
    if offer.direct_port_count < needed_ports:
        return f"{offer.direct_port_count} direct ports, {needed_ports} needed"
    if max_dph is not None and offer.dph_total > max_dph:
        return f"${offer.dph_total:.3f}/hour is above ${max_dph:.3f}/hour"
    return None


def _meets_recommended(template: Template, offer: OfferLike) -> bool:
    return vram_fits(template.recommended_vram_gb, offer.gpu_ram_gb)


def rank_offers(
    template: Template,
    offers: Iterable[OfferLike],
    *,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
    limit: int = MAX_OFFERS,
) -> list[RankedOffer]:
    """Offers that fit `template`, best first, at most `limit` (default 100).

    Order: offers meeting the recommended VRAM first, then `dph_total` ascending ($/hour),
    then reliability descending (unknown counts as 0), then offer id. Duplicate ids are kept
    once. Raises ValueError on a bad disk_gb.
    """
    _check_disk(template, disk_gb)
    ranked: list[RankedOffer] = []
    seen: set[int] = set()
    for offer in offers:
        if offer.id in seen:
            continue
        if offer_fits(template, offer, disk_gb=disk_gb, gpu_name=gpu_name, max_dph=max_dph):
            continue
        seen.add(offer.id)
        ranked.append(RankedOffer(offer, _meets_recommended(template, offer)))
    ranked.sort(
        key=lambda r: (
            not r.meets_recommended,
            r.offer.dph_total,
            -(r.offer.reliability or 0.0),
            r.offer.id,
        )
    )
    return ranked[: max(limit, 0)]


def similar_offers(
    template: Template,
    failed_offer: OfferLike,
    offers: Iterable[OfferLike],
    *,
    disk_gb: int,
    max_price_increase: float = 0.10,
) -> list[RankedOffer]:
    """Stand-ins for an offer that was taken between search and create (Vast.ai answers 404
    ``no_such_ask``: docs.vast.ai/api-reference/instances/create-instance).

    Returns the offers of `offers` that fit `template`, have the same `gpu_name` and
    `num_gpus` as `failed_offer`, are not `failed_offer` itself, and cost at most
    `failed_offer.dph_total * (1 + max_price_increase)` $/hour (10 % more by default);
    cheapest first, then reliability descending, then id. Raises ValueError on a bad disk_gb.
    """
    _check_disk(template, disk_gb)
    cap = failed_offer.dph_total * (1 + max_price_increase) + 1e-9  # float slack
    found: list[RankedOffer] = []
    seen: set[int] = {failed_offer.id}
    for offer in offers:
        if offer.id in seen:
            continue
        if offer.gpu_name != failed_offer.gpu_name or offer.num_gpus != failed_offer.num_gpus:
            continue
        if offer.dph_total > cap:
            continue
        if offer_fits(template, offer, disk_gb=disk_gb):
            continue
        seen.add(offer.id)
        found.append(RankedOffer(offer, _meets_recommended(template, offer)))
    found.sort(key=lambda r: (r.offer.dph_total, -(r.offer.reliability or 0.0), r.offer.id))
    return found
