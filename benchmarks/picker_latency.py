"""Picker latency: time from a Deploy click to the ``views.update`` carrying the offers.

Runs the real app over signed HTTP against the fake Slack Web API and the Vast.ai simulator
(real clock). Prints the median and p90 of ``--clicks`` clicks (default 50) and how many Vast.ai
requests one picker opening makes.

Then a burst (``--burst``, default 20): that many Deploy clicks on one template within 2 s,
from as many threads, against a simulator that enforces Vast.ai's rate limits (offer search:
one per 6 s) and a client paced as in production. It prints how many offer searches reached
Vast.ai (the shared offer cache should send one), the 429s, and the median and p90 click →
offers. Run: ``python -m benchmarks.picker_latency``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bot.playground.slack_api import FakeSlack
from bot.runtime import build_runtime
from bot.simulator import VastSimulator
from bot.vast import VastClient
from tests.fixtures.slack import BotHarness, fast_vast_client, make_settings

BUNDLES = "/api/v0/bundles/"


def burst(clicks: int, template: str, spread: float = 2.0) -> None:
    """``clicks`` Deploy clicks on ``template`` within ``spread`` seconds, production pacing
    and the simulator's rate limits on; print searches, 429s and click → offers."""
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        simulator = VastSimulator(rate_limits=True)
        url = simulator.start()
        settings = make_settings(
            fake,
            database_url=f"sqlite:///{Path(folder) / 'burst.db'}",
            vast_api_url=url,
            status_poll_seconds=3600,
        )
        vast = VastClient(url, None, timeout=30)  # Vast.ai's own intervals
        harness = BotHarness(fake, build_runtime(settings, vast=vast), simulator)
        sent: dict[str, float] = {}
        lock = threading.Lock()

        def click(i: int) -> None:
            time.sleep(i * spread / clicks)
            trigger = f"burst-{i}.1234567890.trigger"
            with lock:
                sent[trigger] = time.monotonic()
            harness.block_action("deploy_template", template, extra={"trigger_id": trigger})

        try:
            threads = [threading.Thread(target=click, args=(i,)) for i in range(clicks)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            fake.wait_for("views.update", count=clicks, timeout=60)
        finally:
            harness.stop()
            simulator.stop()
        view_of = {
            str(c.args["trigger_id"]): c.answer["view"]["id"]
            for c in fake.calls_to("views.open")
            if c.answer
        }
        offers_at: dict[str, float] = {}
        for call in fake.calls_to("views.update"):
            if "GPU offer" in str(call.args.get("view")):
                offers_at.setdefault(str(call.args["view_id"]), call.at)
        timings = sorted(
            (offers_at[view_of[t]] - started) * 1000
            for t, started in sent.items()
            if t in view_of and view_of[t] in offers_at
        )
    print(
        f"burst: {clicks} Deploy clicks on {template} within {spread:g} s, Vast.ai's rate limits "
        "on (search: one per 6 s), the client paced as in production"
    )
    print(
        f"  offer searches that reached Vast.ai: {simulator.request_count('POST', BUNDLES)}; "
        f"429s received: {vast.rate_limited_count}; refused by the simulator: "
        f"{simulator.rate_limited_count}"
    )
    if len(timings) < clicks:
        print(f"  !! only {len(timings)} of {clicks} pickers showed offers")
    if timings:
        p90 = timings[int(0.9 * (len(timings) - 1))]
        print(
            f"  click → offers: median {statistics.median(timings):.1f} ms, p90 {p90:.1f} ms, "
            f"max {timings[-1]:.1f} ms"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--template", default="jupyter-lab")
    parser.add_argument("--burst", type=int, default=20, help="clicks in the burst; 0 skips it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        simulator = VastSimulator()
        url = simulator.start()
        settings = make_settings(
            fake,
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
            vast_api_url=url,
            status_poll_seconds=3600,
        )
        harness = BotHarness(fake, build_runtime(settings, vast=fast_vast_client(url)), simulator)
        try:
            timings: list[float] = []
            requests_per_open: list[int] = []
            for n in range(args.clicks + 1):  # the first click warms up and is not counted
                before_vast = simulator.request_count()
                before_updates = len(fake.calls_to("views.update"))
                started = time.perf_counter()
                harness.block_action("deploy_template", args.template)
                fake.wait_for("views.update", count=before_updates + 1, timeout=10)
                if n > 0:
                    timings.append((time.perf_counter() - started) * 1000)
                    requests_per_open.append(simulator.request_count() - before_vast)
        finally:
            harness.stop()
            simulator.stop()
    ordered = sorted(timings)
    print(f"picker: click → views.update with offers, {len(timings)} clicks ({args.template})")
    p90 = ordered[int(0.9 * len(ordered))]
    print(f"  median {statistics.median(timings):.1f} ms, p90 {p90:.1f} ms")
    print(f"  Vast.ai requests per picker opening: {statistics.median(requests_per_open):.0f}")
    if args.burst:
        burst(args.burst, args.template)


if __name__ == "__main__":
    main()
