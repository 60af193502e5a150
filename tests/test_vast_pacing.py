"""The Vast.ai client lives within Vast.ai's limits: a pacer per endpoint shared by threads,
``Retry-After`` honoured, the daily search quota told apart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.config import ConfigError, load_settings
from bot.simulator import VastSimulator
from bot.simulator.faults import Fault
from bot.vast import VastClient
from bot.vast.errors import RateLimited, SearchQuotaExceeded
from bot.vast.pacing import (
    DEFAULT_MIN_INTERVALS,
    NO_PACING,
    Pacer,
    Pacers,
    PaceTooLong,
    parse_min_intervals,
)
from tests.fixtures.vast import VAST_TEST_API_KEY, client_for

SEARCH = {"limit": 5, "rentable": {"eq": True}}


class FakeTime:
    """A monotonic clock whose sleeps move it (no real waiting)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# -- the pacer -------------------------------------------------------------------------------


def test_pacer_spaces_calls_by_its_interval_and_a_defer_pushes_the_next_slot() -> None:
    clock = FakeTime()
    pacer = Pacer(1.5, clock=clock, sleep=clock.sleep)
    assert pacer.spacing == pytest.approx(1.65)  # the interval plus a 10 % margin
    starts = []
    for _ in range(3):
        pacer.wait()
        starts.append(clock.now - 100)
    assert starts == pytest.approx([0.0, 1.65, 3.3])
    clock.now += 10  # long after: free again
    assert pacer.delay() == 0.0
    pacer.defer(4.0)
    assert pacer.delay() == pytest.approx(4.0)
    before = clock.now
    pacer.wait()
    assert clock.now - before == pytest.approx(4.0)


def test_a_slot_further_than_the_caller_may_wait_fails_at_once() -> None:
    clock = FakeTime()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.defer(3600)
    with pytest.raises(PaceTooLong) as info:
        pacer.wait(max_wait=60)
    assert info.value.seconds == pytest.approx(3600)
    assert clock.now == 100.0  # nothing slept


def test_a_defer_holds_callers_already_waiting_for_their_slot() -> None:
    pacer = Pacer(0.05)  # 0.1 s apart
    starts: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        pacer.wait()
        with lock:
            starts.append(time.monotonic())

    first = threading.Thread(target=call)
    first.start()
    first.join()
    waiting = [threading.Thread(target=call) for _ in range(3)]
    for thread in waiting:
        thread.start()
    time.sleep(0.02)  # they wait for their slots now; then a 429 says "wait 0.4 s"
    held_at = time.monotonic()
    pacer.defer(0.4)
    for thread in waiting:
        thread.join()
    later = sorted(starts)[1:]
    assert len(later) == 3
    assert min(later) >= held_at + 0.39  # none of them went inside the hold


def test_threads_share_one_pacer_and_go_out_one_interval_apart() -> None:
    pacer = Pacer(0.05)
    starts: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        pacer.wait()
        with lock:
            starts.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 5
    assert min(gaps) >= 0.045  # never closer than the interval (a lower bound: not flaky)


def test_defaults_come_from_the_openapi_hints() -> None:
    assert DEFAULT_MIN_INTERVALS == {
        "search": 6.0,
        "list": 1.0,
        "get": 2.0,
        "create": 4.5,
        "manage": 1.0,
        "destroy": 3.0,
        "user": 1.0,
        "ssh": 2.0,
    }
    assert VastClient("http://vast.test").pacers.interval("create") == 4.5


def test_intervals_are_overridable_in_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_min_intervals("search=10, list=0")["search"] == 10.0
    assert parse_min_intervals("search=10, list=0")["list"] == 0.0
    assert parse_min_intervals("")["create"] == 4.5
    for bad in ("serch=1", "list", "list=fast", "list=-1"):
        with pytest.raises(ValueError):
            parse_min_intervals(bad)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("VAST_MIN_INTERVALS", "search=12")
    settings = load_settings()
    assert settings.vast_min_intervals["search"] == 12.0
    assert settings.vast_min_intervals["destroy"] == 3.0
    monkeypatch.setenv("VAST_MIN_INTERVALS", "search=soon")
    with pytest.raises(ConfigError, match="VAST_MIN_INTERVALS"):
        load_settings()


# -- against the simulator's rate limits ------------------------------------------------------


def _burst(client: VastClient, calls: int, what: Callable[[VastClient], Any]) -> list[Any]:
    errors: list[Any] = []

    def one() -> None:
        try:
            what(client)
        except Exception as error:  # collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=one) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize(
    ("endpoint", "what"),
    [
        ("list", lambda c: c.list_instances_page()),
        ("search", lambda c: c.search_offers(SEARCH)),
        ("user", lambda c: c.get_user()),
    ],
)
def test_a_burst_from_many_threads_draws_no_429(
    make_vast_sim: Callable[..., VastSimulator], endpoint: str, what: Callable[[VastClient], Any]
) -> None:
    # The simulator refuses calls closer than 0.2 s; the client paces at 0.3 s (plus its
    # margin): room for a loaded machine's scheduling jitter between two sends.
    sim = make_vast_sim(api_key=VAST_TEST_API_KEY, rate_limits={endpoint: 0.2})
    paced = client_for(sim, min_intervals={**NO_PACING, endpoint: 0.3})
    try:
        assert _burst(paced, 8, what) == []
    finally:
        paced.close()
    assert sim.rate_limited_count == 0
    assert paced.rate_limited_count == 0

    # The same burst unpaced is what the simulator refuses (the test can fail).
    unpaced = client_for(sim, max_attempts=1)
    try:
        errors = _burst(unpaced, 8, what)
    finally:
        unpaced.close()
    assert sim.rate_limited_count > 0
    assert errors and all(isinstance(e, RateLimited) for e in errors)


# -- 429 answers ---------------------------------------------------------------------------


def _mock(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> VastClient:
    options: dict[str, Any] = {
        "backoff_initial": 0.001,
        "backoff_max": 0.002,
        "min_intervals": NO_PACING,
    }
    options.update(kwargs)
    return VastClient("http://vast.test", "k", transport=httpx.MockTransport(handler), **options)


def test_retry_after_is_waited_out_and_holds_back_the_endpoint() -> None:
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        if len(sent) == 1:
            return httpx.Response(
                429, text="API requests too frequent", headers={"Retry-After": "0.3"}
            )
        return httpx.Response(200, json={"success": True, "credit": 3.0})

    client = _mock(handler)
    assert client.get_user().credit == 3.0
    assert len(sent) == 2
    assert sent[1] - sent[0] >= 0.29
    assert client.rate_limited_count == 1
    # The 429 also pushed back the endpoint's pacer for every other caller.
    assert client.pacers["user"].delay() <= 0.3


def test_a_retry_after_over_a_minute_is_not_waited_inline_nor_by_the_next_caller() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(429, text="API requests too frequent", headers={"Retry-After": "600"})

    client = _mock(handler)
    with pytest.raises(RateLimited) as info:
        client.get_user()
    assert calls == 1
    assert info.value.retry_after == 600
    # The next caller is told at once, nothing is sent, and nobody hangs for ten minutes.
    started = time.monotonic()
    with pytest.raises(RateLimited) as again:
        client.get_user()
    assert time.monotonic() - started < 1
    assert calls == 1
    assert "Try again in 10 minutes" in again.value.user_message


def test_the_daily_search_quota_is_its_own_error_and_never_retried() -> None:
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(
            429,
            json={
                "success": False,
                "error": "search_quota_exceeded",
                "msg": "Daily search quota exceeded",
            },
            headers={"X-RateLimit-Reset": str(int(reset.timestamp()))},
        )

    client = _mock(handler)
    with pytest.raises(SearchQuotaExceeded) as info:
        client.search_offers(SEARCH)
    assert calls == 1
    assert info.value.resets_at == reset
    message = info.value.user_message
    assert "daily offer-search quota" in message
    assert f"<!date^{int(reset.timestamp())}^" in message  # in each reader's own time
    assert f"|{reset:%H:%M} UTC on {reset:%b %d}>" in message  # the fallback
    assert "wait a minute" not in message.lower()
    # Known used up: later searches are refused here until the reset, not sent again.
    with pytest.raises(SearchQuotaExceeded):
        client.search_offers(SEARCH)
    assert calls == 1


def test_the_simulator_faults_reach_the_client_as_vast_sends_them(
    vast_sim: VastSimulator,
) -> None:
    client = client_for(vast_sim)
    try:
        vast_sim.inject(Fault.SEARCH_QUOTA_EXCEEDED)
        with pytest.raises(SearchQuotaExceeded) as info:
            client.search_offers(SEARCH)
        assert info.value.resets_at is not None
        assert info.value.resets_at.time() == datetime.min.time()  # next UTC midnight

        vast_sim.inject(Fault.RATE_LIMIT_RETRY_AFTER, endpoint="list", seconds=0.2)
        started = time.monotonic()
        client.list_instances_page()
        assert time.monotonic() - started >= 0.19
        assert client.rate_limited_count == 2
    finally:
        client.close()


def test_pacers_can_be_shared_between_clients_of_one_key() -> None:
    clock = FakeTime()
    pacers = Pacers.build({"list": 2.0}, clock=clock, sleep=clock.sleep)

    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "instances": [], "next_token": None})

    first = _mock(ok, pacers=pacers)
    second = _mock(ok, pacers=pacers)
    first.list_instances_page()
    second.list_instances_page()
    first.list_instances_page()
    assert clock.now == pytest.approx(104.4)  # two waits of 2.2 s, whichever client sent
