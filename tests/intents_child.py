"""A bot process that presses Stop and hangs mid-request, so ``tests/test_intents.py`` can
kill -9 it: ``python -m tests.intents_child DATABASE_URL SIMULATOR_URL DEPLOYMENT_ID MODE``.

``MODE`` ``hang_before_send``: the Stop request never reaches Vast.ai; ``hang_after_send``: it
does, and the answer never comes back. Either way the child prints ``SENDING`` and sleeps
until it is killed.
"""

from __future__ import annotations

import sys
import time

import storage
from tests.fixtures.slack import ALICE
from tests.fixtures.vast import VAST_TEST_API_KEY
from tests.test_intents import start_process


def main(argv: list[str]) -> None:
    database_url, sim_url, deployment_id, mode = argv
    engine = storage.make_engine(database_url)
    sf = storage.make_session_factory(engine)
    from bot.vast import VastClient
    from bot.vast.pacing import NO_PACING

    client = VastClient(sim_url, VAST_TEST_API_KEY, timeout=2.0, min_intervals=NO_PACING)
    process = start_process(sf, client, storage.utcnow)
    real = client.stop_instance

    def hang(instance_id: int) -> None:
        if mode == "hang_after_send":
            real(instance_id)
        print("SENDING", flush=True)
        time.sleep(600)

    client.stop_instance = hang  # type: ignore[method-assign]
    process.manage.perform("stop", int(deployment_id), ALICE)


if __name__ == "__main__":
    main(sys.argv[1:])
