"""Several bot processes on one PostgreSQL database, the poller's lease holder killed with
SIGKILL while deployments are in flight and a Stop is pending: another process takes over
within a bounded time, nothing is rented twice, the Stop is carried out and every status
message shows the final state (:func:`tests.failover_cluster.run_scenario`).

PostgreSQL only (a database ``failover_<random>`` made and dropped on the server of
``TEST_DATABASE_URL``); skipped when it is unset.
"""

from __future__ import annotations

import pytest

from tests.failover_cluster import LEASE_SECONDS, POLL_SECONDS, fresh_database, run_scenario
from tests.fixtures.storage import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="TEST_DATABASE_URL is not set (PostgreSQL tests)"
)


def test_killing_the_leader_hands_over_without_a_duplicate_or_a_lost_stop() -> None:
    with fresh_database(TEST_DATABASE_URL) as url:
        outcome = run_scenario(url, processes=3, in_flight=3)
    print(
        f"takeover {outcome.takeover:.2f} s (lease moved {outcome.lease_taken:.2f} s), "
        f"settled {outcome.settled:.2f} s after the SIGKILL"
    )
    # No duplicate rental: one create and one instance per deployment.
    assert outcome.deployments == 4
    assert outcome.instances == outcome.deployments
    assert outcome.creates == outcome.deployments
    # No lost stop: pending at the kill, carried out by the new leader.
    assert outcome.stopped_on_vast
    assert sorted(outcome.statuses.values()) == ["ready", "ready", "ready", "stopped"]
    # The in-flight deployments were still booting when the leader died.
    assert all(status in ("creating", "provisioning") for status in outcome.at_kill)
    # Bounded takeover: the lease expires LEASE_SECONDS after the last renewal at most, and a
    # standby takes it on its next tick (one poll interval), then runs a pass.
    assert outcome.takeover <= LEASE_SECONDS + 2 * POLL_SECONDS + 3.0
    assert outcome.lease_taken <= outcome.takeover
