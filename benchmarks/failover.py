"""Takeover time after a SIGKILL of the poller's lease holder, several bot processes on one
PostgreSQL database.

Each run is :func:`tests.failover_cluster.run_scenario` on a new database
(``failover_<random>``, dropped after) on the server of ``--database-url``: ``--processes``
``python -m bot`` processes (HTTP mode, ``STATUS_POLL_SECONDS=1``, ``POLLER_LEASE_SECONDS=3``)
share the database, one Vast.ai simulator and one fake Slack; one deployment turns ready, a
Stop is clicked on the lease holder while Vast.ai answers stops with 502s (so it stays
pending), ``--in-flight`` more deployments are rented and still booting, then the lease holder
gets SIGKILL. Printed per run and as the median of the runs, in seconds after the kill: when
the lease row named another holder, when a surviving process's ``/healthz`` reported a clean
pass as the active poller (the takeover), and when every deployment, the Stop and every status
message had converged; and whether anything was rented twice or the Stop lost (each run
asserts both).

Run: ``python -m benchmarks.failover [--runs 5] [--processes 3] [--in-flight 3]
[--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]`` (about 30 s a run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from tests.failover_cluster import LEASE_SECONDS, POLL_SECONDS, fresh_database, run_scenario

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args(argv)
    print(
        f"{args.processes} processes, STATUS_POLL_SECONDS={POLL_SECONDS:g}, "
        f"POLLER_LEASE_SECONDS={LEASE_SECONDS:g}, {args.in_flight} deployments in flight "
        "and a pending Stop at the SIGKILL"
    )
    taken, takeovers, settled = [], [], []
    for run in range(1, args.runs + 1):
        with fresh_database(args.database_url) as url:
            outcome = run_scenario(url, processes=args.processes, in_flight=args.in_flight)
        assert outcome.instances == outcome.creates == outcome.deployments, outcome
        assert outcome.stopped_on_vast, outcome
        taken.append(outcome.lease_taken)
        takeovers.append(outcome.takeover)
        settled.append(outcome.settled)
        print(
            f"run {run}: lease moved {outcome.lease_taken:.2f} s, takeover (clean pass) "
            f"{outcome.takeover:.2f} s, all converged {outcome.settled:.2f} s; "
            f"{outcome.instances} instances for {outcome.deployments} deployments, "
            f"stop carried out: {outcome.stopped_on_vast}",
            flush=True,
        )
    print(
        f"median of {args.runs}: lease moved {statistics.median(taken):.2f} s, takeover "
        f"{statistics.median(takeovers):.2f} s (max {max(takeovers):.2f} s), all converged "
        f"{statistics.median(settled):.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
