"""Picker latency: time from a Deploy click to the ``views.update`` carrying the offers.

Runs the real app over signed HTTP against the fake Slack Web API and the Vast.ai simulator
(real clock). Prints the median and p90 of ``--clicks`` clicks (default 50) and how many Vast.ai
requests one picker opening makes. Run: ``python -m benchmarks.picker_latency``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bot.runtime import build_runtime
from bot.simulator import VastSimulator
from tests.fakes.slack_api import FakeSlack
from tests.fixtures.slack import BotHarness, fast_vast_client, make_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clicks", type=int, default=50)
    parser.add_argument("--template", default="jupyter-lab")
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


if __name__ == "__main__":
    main()
