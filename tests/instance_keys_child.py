"""A bot process whose poller pass turns a deployment ready and then hangs while attaching its
owner's SSH key, so ``tests/test_instance_keys_e2e.py`` can kill -9 it between "ready" and
"key attached": ``python -m tests.instance_keys_child DATABASE_URL SIMULATOR_URL MODE``.

``MODE`` ``hang_before_send``: the attach never reaches Vast.ai; ``hang_after_send``: it does,
and the answer never comes back. Either way the child prints ``SENDING`` and sleeps until it
is killed.
"""

from __future__ import annotations

import sys
import time

import storage
from tests.fixtures.vast import VAST_TEST_API_KEY
from tests.test_instance_keys_e2e import keyed_process


def main(argv: list[str]) -> None:
    database_url, sim_url, mode = argv
    engine = storage.make_engine(database_url)
    sf = storage.make_session_factory(engine)
    from bot.vast import VastClient
    from bot.vast.pacing import NO_PACING

    client = VastClient(sim_url, VAST_TEST_API_KEY, timeout=2.0, min_intervals=NO_PACING)
    process = keyed_process(sf, client, storage.utcnow)
    real = client.attach_ssh_key

    def hang(instance_id: int, public_key: str) -> None:
        if mode == "hang_after_send":
            real(instance_id, public_key)
        print("SENDING", flush=True)
        time.sleep(600)

    client.attach_ssh_key = hang  # type: ignore[method-assign]
    process.poller.tick()


if __name__ == "__main__":
    main(sys.argv[1:])
