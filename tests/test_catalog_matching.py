"""Offer matching and ranking against Vast.ai-shaped offers (pure, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from catalog import (
    VRAM_TOLERANCE,
    OfferLike,
    Template,
    build_offer_query,
    cuda_tuple_from_float,
    disk_problem,
    load_catalog,
    offer_fits,
    rank_offers,
    similar_offers,
)


@dataclass(frozen=True)
class FakeOffer:
    """Implements catalog.matching.OfferLike; defaults describe a good RTX 4090 offer."""

    id: int = 1
    gpu_name: str = "RTX 4090"
    num_gpus: int = 1
    gpu_ram_gb: float = 24564 / 1024
    cuda_max_good: float | None = 12.8
    compute_cap: int | None = 890
    disk_space_gb: float = 400.0
    direct_port_count: int = 40
    dph_total: float = 0.40
    verified: bool = True
    rentable: bool = True
    reliability: float | None = 0.99
    geolocation: str | None = "Oregon, US"


def make_template(**overrides: Any) -> Template:
    data: dict[str, Any] = {
        "slug": "app",
        "name": "App",
        "description": "Test app.",
        "category": "llm-serving",
        "docker_image": "example/app:1",
        "ports": [8000],
        "min_vram_gb": 16,
        "recommended_vram_gb": 24,
        "cuda_version": "12.1",
        "disk_gb": 60,
        "docs_url": "https://example.org/",
        "health_path": "/",
    }
    data.update(overrides)
    return Template.model_validate(data)


def offer_typed(offer: OfferLike) -> OfferLike:  # mypy checks FakeOffer satisfies OfferLike
    return offer


VLLM = make_template()


# --- offer_fits -----------------------------------------------------------------------------


def test_a_good_offer_fits() -> None:
    assert offer_fits(VLLM, offer_typed(FakeOffer()), disk_gb=60) is None


def test_exactly_the_minimum_vram_fits() -> None:
    assert offer_fits(VLLM, FakeOffer(gpu_ram_gb=16.0), disk_gb=60) is None
    at_tolerance = FakeOffer(gpu_ram_gb=16 * VRAM_TOLERANCE)
    assert offer_fits(VLLM, at_tolerance, disk_gb=60) is None
    below = FakeOffer(gpu_ram_gb=16 * VRAM_TOLERANCE - 0.01)
    reason = offer_fits(VLLM, below, disk_gb=60)
    assert reason is not None and "needs 16 GB" in reason


def test_24564_mb_counts_as_24_gb_for_recommended() -> None:
    ranked = rank_offers(VLLM, [FakeOffer(gpu_ram_gb=24564 / 1024)], disk_gb=60)
    assert [r.meets_recommended for r in ranked] == [True]
    ranked = rank_offers(VLLM, [FakeOffer(gpu_ram_gb=16376 / 1024)], disk_gb=60)
    assert [r.meets_recommended for r in ranked] == [False]


def test_vram_is_per_gpu_for_multi_gpu_offers() -> None:
    two_12gb = FakeOffer(num_gpus=2, gpu_ram_gb=12.0)
    assert offer_fits(VLLM, two_12gb, disk_gb=60) is not None
    two_24gb = FakeOffer(num_gpus=2, gpu_ram_gb=24.0)
    assert offer_fits(VLLM, two_24gb, disk_gb=60) is None


@pytest.mark.parametrize(
    ("needed", "host", "fits"),
    [
        ("12.1", 12.1, True),
        ("12.1", 12.8, True),
        ("12.1", 12.0, False),
        ("12.1", 11.8, False),
        ("11.8", 12.1, True),  # as strings "11.8" > "12.1"; as versions it is lower
        ("12.10", 12.9, False),  # as floats 12.9 > 12.1; as versions 12.9 < 12.10
        ("12.10", 13.0, True),
        ("12.2", 12.10000000001, False),  # float noise is rounded away: host is 12.1
        ("12.8", 12.799999999, True),
    ],
)
def test_cuda_is_compared_as_versions(needed: str, host: float, fits: bool) -> None:
    template = make_template(cuda_version=needed)
    reason = offer_fits(template, FakeOffer(cuda_max_good=host), disk_gb=60)
    assert (reason is None) is fits, reason


def test_cuda_tuple_from_float() -> None:
    assert cuda_tuple_from_float(12.1) == (12, 1)
    assert cuda_tuple_from_float(12.8) == (12, 8)
    assert cuda_tuple_from_float(11.8) == (11, 8)
    assert cuda_tuple_from_float(13.0) == (13, 0)
    assert cuda_tuple_from_float(12) == (12, 0)
    assert cuda_tuple_from_float("12.10") == (12, 10)
    with pytest.raises(ValueError):
        cuda_tuple_from_float(float("nan"))
    with pytest.raises(ValueError):
        cuda_tuple_from_float("twelve")


def test_unknown_cuda_or_compute_cap_does_not_fit() -> None:
    assert offer_fits(VLLM, FakeOffer(cuda_max_good=None), disk_gb=60) is not None
    assert offer_fits(VLLM, FakeOffer(compute_cap=None), disk_gb=60) is not None


def test_compute_cap_floor() -> None:
    template = make_template(min_compute_cap=800)
    assert offer_fits(template, FakeOffer(compute_cap=800), disk_gb=60) is None
    reason = offer_fits(template, FakeOffer(compute_cap=750), disk_gb=60)
    assert reason == "compute capability 7.5 is below 8.0"
    assert offer_fits(make_template(), FakeOffer(compute_cap=750), disk_gb=60) is None


def test_disk_and_ports() -> None:
    assert offer_fits(VLLM, FakeOffer(disk_space_gb=60.0), disk_gb=60) is None
    assert offer_fits(VLLM, FakeOffer(disk_space_gb=59.9), disk_gb=60) is not None
    two_ports = make_template(ports=[8000, 8080])
    assert offer_fits(two_ports, FakeOffer(direct_port_count=3), disk_gb=60) is None
    reason = offer_fits(two_ports, FakeOffer(direct_port_count=2), disk_gb=60)
    assert reason == "2 direct ports, 3 needed"
    assert offer_fits(VLLM, FakeOffer(direct_port_count=0), disk_gb=60) is not None


def test_unverified_unrentable_wrong_gpu_and_price_are_dropped() -> None:
    assert offer_fits(VLLM, FakeOffer(verified=False), disk_gb=60) is not None
    assert offer_fits(VLLM, FakeOffer(rentable=False), disk_gb=60) is not None
    assert offer_fits(VLLM, FakeOffer(), disk_gb=60, gpu_name="RTX 3090") is not None
    assert offer_fits(VLLM, FakeOffer(), disk_gb=60, gpu_name="RTX 4090") is None
    assert offer_fits(VLLM, FakeOffer(dph_total=0.5), disk_gb=60, max_dph=0.45) is not None
    assert offer_fits(VLLM, FakeOffer(dph_total=0.45), disk_gb=60, max_dph=0.45) is None


def test_disk_size_limits() -> None:
    assert disk_problem(VLLM, 60) is None and disk_problem(VLLM, 500) is None
    assert disk_problem(VLLM, 59) == "disk must be at least 60 GB for App"  # its default
    assert disk_problem(VLLM, 7) == "disk must be at least 60 GB for App"
    assert disk_problem(VLLM, 501) is not None
    with pytest.raises(ValueError, match="at least 60"):
        offer_fits(VLLM, FakeOffer(), disk_gb=4)
    with pytest.raises(ValueError):
        build_offer_query(VLLM, disk_gb=1000)


# --- ranking --------------------------------------------------------------------------------


def test_rank_offers_order() -> None:
    offers = [
        FakeOffer(id=1, gpu_ram_gb=16.0, dph_total=0.10),  # cheapest, below recommended
        FakeOffer(id=2, dph_total=0.50, reliability=0.90),
        FakeOffer(id=3, dph_total=0.30),
        FakeOffer(id=4, dph_total=0.50, reliability=0.99),
        FakeOffer(id=5, dph_total=0.50, reliability=0.99),
        FakeOffer(id=6, dph_total=0.05, verified=False),  # dropped
        FakeOffer(id=7, gpu_ram_gb=16.0, dph_total=0.20, reliability=None),
        FakeOffer(id=8, gpu_ram_gb=80.0, num_gpus=4, dph_total=0.50, reliability=None),
        FakeOffer(id=3, dph_total=0.30),  # listed twice by the server: kept once
    ]

    ranked = rank_offers(VLLM, offers, disk_gb=60)

    assert [r.offer.id for r in ranked] == [3, 4, 5, 2, 8, 1, 7]
    assert [r.meets_recommended for r in ranked] == [True] * 5 + [False] * 2


def test_rank_offers_limit_is_100_by_default() -> None:
    offers = [FakeOffer(id=i, dph_total=1.0 - i / 1000) for i in range(150)]

    ranked = rank_offers(VLLM, offers, disk_gb=60)

    assert len(ranked) == 100
    assert ranked[0].offer.id == 149 and ranked[-1].offer.id == 50
    assert len(rank_offers(VLLM, offers, disk_gb=60, limit=5)) == 5


def test_rank_offers_passes_gpu_name_and_price_cap() -> None:
    offers = [FakeOffer(id=1, gpu_name="RTX 3090"), FakeOffer(id=2, dph_total=0.9), FakeOffer(id=3)]
    ranked = rank_offers(VLLM, offers, disk_gb=60, gpu_name="RTX 4090", max_dph=0.5)
    assert [r.offer.id for r in ranked] == [3]


def test_similar_offers_10_percent_rule() -> None:
    failed = FakeOffer(id=1, dph_total=0.40)
    offers = [
        failed,
        FakeOffer(id=2, dph_total=0.44),  # exactly +10 %: kept
        FakeOffer(id=3, dph_total=0.4401),  # over +10 %
        FakeOffer(id=4, dph_total=0.38),
        FakeOffer(id=5, dph_total=0.30, gpu_name="RTX 3090"),  # other GPU
        FakeOffer(id=6, dph_total=0.30, num_gpus=2),  # other count
        FakeOffer(id=7, dph_total=0.30, rentable=False),  # does not fit
    ]

    similar = similar_offers(VLLM, failed, offers, disk_gb=60)

    assert [s.offer.id for s in similar] == [4, 2]
    wider = similar_offers(VLLM, failed, offers, disk_gb=60, max_price_increase=0.5)
    assert [s.offer.id for s in wider] == [4, 2, 3]


# --- the search query -----------------------------------------------------------------------


def test_build_offer_query_contents() -> None:
    vllm = load_catalog().get("vllm")
    assert vllm is not None

    query = build_offer_query(vllm, disk_gb=80)

    assert query == {
        "verified": {"eq": True},
        "rentable": {"eq": True},
        "rented": {"eq": False},
        "external": {"eq": False},
        "gpu_ram": {"gte": 15237},  # floor(16 * 1024 * 0.93)
        "cuda_max_good": {"gte": 12.1},
        "compute_cap": {"gte": 800},
        "disk_space": {"gte": 80},
        "direct_port_count": {"gte": 2},  # port 8000 + SSH
        "type": "on-demand",
        "allocated_storage": 80,
        "order": [["dph_total", "asc"]],
        "limit": 100,
    }


def test_build_offer_query_options() -> None:
    template = make_template(min_vram_gb=24, cuda_version="12.10", ports=[8188, 8080], disk_gb=40)

    query = build_offer_query(template, disk_gb=40, gpu_name="RTX 4090", max_dph=0.6, limit=20)

    assert query["gpu_ram"] == {"gte": 22855}
    assert query["cuda_max_good"] == {"gte": 12.1}  # the float pitfall: re-checked locally
    assert query["direct_port_count"] == {"gte": 3}
    assert query["gpu_name"] == {"eq": "RTX 4090"}
    assert query["dph_total"] == {"lte": 0.6}
    assert query["limit"] == 20
    # The server floor is loose, never stricter than our own check:
    floor_gb = 22855 / 1024
    assert floor_gb < 24 * VRAM_TOLERANCE
    with pytest.raises(ValueError):
        build_offer_query(template, disk_gb=40, limit=0)


def test_offer_at_the_query_floor_is_rechecked() -> None:
    template = make_template(min_vram_gb=24, cuda_version="12.10")
    floor_offer = replace(FakeOffer(), gpu_ram_gb=24564 / 1024, cuda_max_good=12.2)
    assert offer_fits(template, floor_offer, disk_gb=60) is not None
