"""100 deployments turning ready in one tick.

The whole bot runs against the fake Slack and the Vast.ai simulator (fast timeline, frozen
clock). 100 deployments are posted, one tick moves them to provisioning, the simulator moves
on, and one tick turns all 100 ready. The status edits go through the outbox; to keep the run
short its sliding window is scaled down by ``--scale`` (default 20: 45 calls per 3 s stand
for 45 per minute), and the figures are scaled back to per-minute. One 429 (Retry-After 1 s,
scaled) is injected in the middle of the burst.

Prints: chat.update and views.publish calls, the most in any sliding minute (scaled), the
tick's wall time (the tick must not wait for Slack), the time until every message showed
``ready``, how many messages end showing ``ready``, and the 429s (received by the outbox;
none reach a user: nothing is posted about them).

    .venv/bin/python -m benchmarks.slack_outbox [--deployments 100] [--scale 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bot.playground.slack_api import FakeSlack
from bot.runtime import build_runtime
from bot.simulator import VastSimulator
from bot.slack.outbox import LIMITS
from tests.fixtures.slack import FAST_TIMELINE, BotHarness, fast_vast_client, make_settings
from tests.test_poller import deploy


def max_in_window(times: list[float], window: float) -> int:
    """The most calls within any sliding ``window`` seconds."""
    best = 0
    for i, start in enumerate(times):
        best = max(best, sum(1 for t in times[i:] if t < start + window))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--scale", type=float, default=20.0)
    args = parser.parse_args()
    window = 60.0 / args.scale
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as slack:
        sim = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
        url = sim.start()
        settings = make_settings(
            slack,
            database_url=f"sqlite:///{Path(folder) / 'bench.db'}",
            vast_api_url=url,
            status_poll_seconds=3600,
        )
        runtime = build_runtime(settings, vast=fast_vast_client(url))
        harness = BotHarness(slack, runtime, sim)
        outbox = harness.services.messages.outbox
        outbox.limits = {  # the window scaled down, the calls per window kept
            method: (calls, per / args.scale) for method, (calls, per) in LIMITS.items()
        }
        try:
            for i in range(args.deployments):  # enough rentable offers with direct ports
                sim.add_offer(id=70_000_000 + i, rentable=True, direct_port_count=10)
            deps = [deploy(harness) for _ in range(args.deployments)]
            poller = harness.services.poller
            poller.tick()  # creating -> provisioning (edits paced too)
            harness.services.messages.flush(600)
            slack.reset()
            sim.advance(4)
            slack.fail(
                "chat.update",
                "ratelimited",
                status=429,
                headers={"Retry-After": "1"},
            )
            started = time.monotonic()
            with poller._lock:  # the tick alone, as the scheduler runs it (no flush)
                report = poller._tick()
            tick_seconds = time.monotonic() - started
            harness.services.messages.flush(600)
            done = time.monotonic() - started
            updates = sorted(c.at for c in slack.calls_to("chat.update"))
            homes = sorted(c.at for c in slack.calls_to("views.publish"))
            ready = sum(
                1
                for d in deps
                if str(slack.messages[(d.message_channel, d.message_ts)]["text"]).endswith("ready")
            )
            print(f"deployments turned ready in the tick: {report.changes}")
            print(f"tick wall time: {tick_seconds:.2f} s (it queues; the outbox sends)")
            print(
                f"chat.update calls: {len(updates)} (one 429 injected, retried after Retry-After)"
            )
            print(
                f"chat.update max in any minute (scaled x{args.scale:g}): "
                f"{max_in_window(updates, window)} (limit 45, Slack's Tier 3 is 50)"
            )
            print(
                f"views.publish calls: {len(homes)}, max in any minute: "
                f"{max_in_window(homes, window)} (limit 90, Tier 4 is 100)"
            )
            print(f"all edits sent after: {done:.1f} s = {done * args.scale / 60:.1f} min unscaled")
            print(
                f"chat.update span: first {updates[0] - started:.1f} s, last "
                f"{updates[-1] - started:.1f} s after the tick began; views.publish last "
                f"{homes[-1] - started:.1f} s"
            )
            print(f"messages ending on ready: {ready} of {len(deps)}")
            print(
                f"429s received by the outbox: {outbox.rate_limited}; edits coalesced: "
                f"{outbox.coalesced}"
            )
        finally:
            harness.stop()
            sim.stop()


if __name__ == "__main__":
    main()
