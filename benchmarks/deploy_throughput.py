"""Deploys per second that the deploy service sustains with 8 concurrent submitters.

Calls :meth:`bot.services.deploy.DeployService.deploy` directly (not over HTTP): per deploy
that is the row insert (unique request key), the status message posted to the fake Slack Web
API over HTTP, ``set_message``, the create at the Vast.ai simulator over HTTP, ``set_instance``,
the move to ``provisioning`` and the status message update. The listener's offer re-check (one
search) is not included. Every ``--duplicate-every``-th submission is delivered twice, by two
submitters at about the same time; at the end the number of creates the simulator received,
its instances and the rows must all equal the number of distinct submissions.

Run: ``python -m benchmarks.deploy_throughput [--database-url URL] [--deploys 400]``. Without
``--database-url`` a SQLite file in a temporary folder is used; a PostgreSQL URL gets a fresh
schema that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

import storage
from bot.crypto import SecretBox
from bot.playground.slack_api import FakeSlack
from bot.services.accounts import VastAccounts
from bot.services.deploy import DeployRequest, DeployService, parse_label
from bot.simulator import Timeline, VastSimulator
from bot.slack.app import make_web_client
from bot.slack.messages import SlackMessages
from bot.slack.notifier import Notifier
from bot.vast import Offer, VastClient
from catalog import load_catalog
from tests.fixtures.slack import make_settings
from tests.fixtures.storage import postgres_schema_url

TEAM = "T0BENCH01"


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A migrated-to-nothing database URL: a temporary SQLite file, or a fresh PostgreSQL
    schema in ``url`` (dropped afterwards)."""
    if url is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    if not url.startswith("postgresql"):
        yield url
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        yield from postgres_schema_url(admin, url, prefix="bench")
    finally:
        admin.dispose()


def run(url: str, deploys: int, submitters: int, duplicate_every: int) -> dict[str, float]:
    """One measured run; returns the figures (and raises AssertionError on a duplicate)."""
    template = load_catalog(None).get("jupyter-lab")
    assert template is not None
    engine = storage.make_engine(url)
    storage.migrate(engine)
    sf = storage.make_session_factory(engine)
    sim = VastSimulator(timeline=Timeline.instant(), credit=1e9)
    sim_url = sim.start()
    offer_ids = [
        sim.add_offer(
            gpu_name="RTX 4090",
            num_gpus=1,
            verified=True,
            rentable=True,
            direct_port_count=100,
            disk_space=500.0,
            cuda_max_good=12.4,
            compute_cap=890,
        )
        for _ in range(deploys)
    ]
    raw = {o["id"]: o for o in sim.offers}
    offers = [Offer.from_api(raw[i]) for i in offer_ids]
    vast = VastClient(sim_url, None)
    with FakeSlack() as slack:
        notifier = Notifier(make_web_client(make_settings(slack)))
        passwords = SecretBox(Fernet.generate_key().decode())
        service = DeployService(
            installation_id=storage.installation_id(sf),
            accounts=VastAccounts.single(vast, simulated=True),
            session_factory=sf,
            messages=SlackMessages(notifier, passwords=passwords),
            passwords=passwords,
            catalog_get=lambda slug: template,
        )
        work: queue.Queue[DeployRequest | None] = queue.Queue()
        distinct = 0
        for n, offer in enumerate(offers):
            request = DeployRequest(
                f"VBENCH{n:06d}", TEAM, "U0BENCH01", "C0BENCH01", template, offer, 20, 8.0
            )
            work.put(request)
            distinct += 1
            if duplicate_every and n % duplicate_every == 0:
                work.put(request)  # a second delivery of the same submission
        for _ in range(submitters):
            work.put(None)
        latencies: list[float] = []
        lock = threading.Lock()

        def submitter() -> None:
            while (request := work.get()) is not None:
                started = time.perf_counter()
                service.deploy(request)
                with lock:
                    latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=submitter) for _ in range(submitters)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

    creates = sim.request_count("PUT", "/api/v0/asks/")
    instances = sim.instances
    rows = storage.list_for_team(sf, TEAM)
    labels = [parse_label(i.get("label")) for i in instances.values()]
    assert creates == distinct, f"{creates} creates for {distinct} submissions"
    assert len(instances) == distinct and len(set(labels)) == distinct
    assert len(rows) == distinct and all(r.status == "provisioning" for r in rows)
    assert {r.instance_id for r in rows} == set(instances)
    sim.stop()
    vast.close()
    engine.dispose()
    latencies.sort()
    return {
        "submissions": float(len(latencies)),
        "distinct": float(distinct),
        "creates": float(creates),
        "seconds": elapsed,
        "deploys_per_second": distinct / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1] * 1000,
    }


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--deploys", type=int, default=400, help="distinct submissions")
    parser.add_argument("--submitters", type=int, default=8)
    parser.add_argument("--duplicate-every", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with database(args.database_url) as url:
        kind = make_url(url).get_backend_name()
        figures = run(url, args.deploys, args.submitters, args.duplicate_every)
    print(
        f"{kind}: {figures['deploys_per_second']:.1f} deploys/s with {args.submitters} "
        f"submitters ({figures['distinct']:.0f} distinct submissions, "
        f"{figures['submissions']:.0f} deliveries, {figures['seconds']:.2f} s; "
        f"per deploy p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms)"
    )
    print(
        f"{kind}: {figures['creates']:.0f} creates at the simulator = "
        f"{figures['distinct']:.0f} rows = {figures['distinct']:.0f} instances: "
        "no duplicate instance"
    )


if __name__ == "__main__":
    main()
