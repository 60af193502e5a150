"""Offer searches shared across people: keyed by what they ask, reused for
``OFFER_CACHE_SECONDS``, one search per burst, **Search again** forces a new one."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from bot.playground.slack_api import FakeSlack
from bot.services.offers import OfferCache
from bot.simulator import Fault
from bot.slack.blocks import picker
from bot.vast.errors import Unreachable
from bot.vast.models import Offer
from catalog import Template, load_catalog
from tests.fixtures.slack import BOB, BotFactory, BotHarness

CATALOG = load_catalog()
BUNDLES = "/api/v0/bundles/"


def template(slug: str) -> Template:
    found = CATALOG.get(slug)
    assert found is not None
    return found


class SlowSource:
    """An offer source that takes ``delay`` seconds and counts its searches."""

    def __init__(self, delay: float = 0.2, fail: bool = False) -> None:
        self.delay = delay
        self.fail = fail
        self.queries: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def search_offers(self, query: dict[str, object]) -> list[Offer]:
        with self._lock:
            self.queries.append(query)
        time.sleep(self.delay)
        if self.fail:
            raise Unreachable("POST /api/v0/bundles/: timed out")
        return [
            Offer(
                id=1,
                gpu_name="RTX 4090",
                num_gpus=1,
                gpu_ram_gb=24.0,
                cuda_max_good=12.4,
                compute_cap=890,
                dph_total=0.4,
                disk_space_gb=200,
                reliability=0.99,
                verified=True,
                rentable=True,
                direct_port_count=100,
                inet_down=500,
            )
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_searches_for_one_template_sends_one() -> None:
    source = SlowSource()
    cache = OfferCache(source, ttl=30)
    results: list[Any] = []

    def search() -> None:
        results.append(cache.search(template("vllm"), disk_gb=80))

    threads = [threading.Thread(target=search) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(source.queries) == 1
    assert len(results) == 20
    assert {len(r.ranked) for r in results} == {1}


def test_searches_are_keyed_by_what_they_ask_and_live_for_the_ttl() -> None:
    source = SlowSource(delay=0)
    clock = Clock()
    cache = OfferCache(source, ttl=30, clock=clock)
    vllm = template("vllm")
    cache.search(vllm, disk_gb=80)
    cache.search(vllm, disk_gb=80)
    assert len(source.queries) == 1
    cache.search(vllm, disk_gb=80, gpu_name="RTX 4090")
    cache.search(vllm, disk_gb=80, max_dph=0.5)
    cache.search(vllm, disk_gb=120)
    assert len(source.queries) == 4  # each filter and disk is its own search
    clock.now += 12
    found = cache.search(vllm, disk_gb=80)
    assert len(source.queries) == 4
    assert found.age == pytest.approx(12)
    clock.now += 19  # 31 s old: past the ttl
    assert cache.search(vllm, disk_gb=80).age == 0
    assert len(source.queries) == 5


def test_refresh_searches_again_unless_a_search_is_seconds_old() -> None:
    source = SlowSource(delay=0)
    clock = Clock()
    cache = OfferCache(source, ttl=30, refresh_floor=5, clock=clock)
    jupyter = template("jupyter-lab")
    cache.search(jupyter, disk_gb=20)
    cache.search(jupyter, disk_gb=20, refresh=True)  # several people pressing at once
    assert len(source.queries) == 1
    clock.now += 6
    assert cache.search(jupyter, disk_gb=20, refresh=True).age == 0
    assert len(source.queries) == 2


def test_a_failed_search_is_not_cached_and_every_waiter_hears_of_it() -> None:
    source = SlowSource(fail=True)
    cache = OfferCache(source, ttl=30)
    errors: list[Exception] = []

    def search() -> None:
        try:
            cache.search(template("comfy-ui"), disk_gb=40)
        except Unreachable as error:
            errors.append(error)

    threads = [threading.Thread(target=search) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 5
    assert len(source.queries) == 1
    source.fail = False
    cache.search(template("comfy-ui"), disk_gb=40)
    assert len(source.queries) == 2


# -- through the app ---------------------------------------------------------------------------


def _open_picker(bot: BotHarness, fake_slack: FakeSlack, slug: str, user: str) -> dict[str, Any]:
    before = len(fake_slack.calls_to("views.update"))
    assert bot.block_action("deploy_template", slug, user=user).status_code == 200
    update = fake_slack.wait_for("views.update", count=before + 1)[before]
    return {**update.args["view"], "id": update.args["view_id"]}


def _hint(view: dict[str, Any]) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == picker.BLOCK_OFFER)
    return str(block["hint"]["text"])


def test_two_people_opening_deploy_share_one_search_and_see_its_age(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    first = _open_picker(bot, fake_slack, "stable-diffusion", user="U0ALICE01")
    second = _open_picker(bot, fake_slack, "stable-diffusion", user=BOB)
    assert bot.vast.request_count("POST", BUNDLES) == 1
    assert _hint(first) == "Prices just fetched; press Search again below for fresh ones."
    assert _hint(second).startswith("Prices ")

    # Search again sends a new search (once the last one is more than a few seconds old).
    bot.services.offers.refresh_floor = 0
    bot.block_action(picker.ACTION_REFRESH, "refresh", view=second)
    fake_slack.wait_for("views.update", count=4)
    assert bot.vast.request_count("POST", BUNDLES) == 2


def test_the_daily_search_quota_is_told_in_the_picker(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory()
    bot.vast.inject(Fault.SEARCH_QUOTA_EXCEEDED)
    view = _open_picker(bot, fake_slack, "jupyter-lab", user="U0ALICE01")
    text = json.dumps(view)
    assert "daily offer-search quota" in text
    assert "00:00 UTC" in text  # the reset Vast.ai gave (next UTC midnight)
    assert bot.vast.request_count("POST", BUNDLES) == 1  # not retried
