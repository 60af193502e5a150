"""``python -m bot simulator``: the Vast.ai simulator on its own, in the foreground.

It serves on 127.0.0.1 only, requires an API key (generated when not given) and prints its
URL, the key and an example ``vastai`` command; Ctrl-C or SIGTERM stops it. More accounts, each
with its own instances and credit, are added with ``--account KEY=USERID`` (repeatable; see
:func:`parse_account`).
"""

from __future__ import annotations

import errno
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

from bot.simulator.clock import Timeline
from bot.simulator.server import VastSimulator

__all__ = ["DEFAULT_PORT", "parse_account", "serve"]

DEFAULT_PORT = 8090
"""Port of ``python -m bot simulator`` unless ``--port`` says otherwise."""


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def parse_account(text: str) -> tuple[str, int]:
    """``"KEY=USERID"`` -> ``(key, user_id)``, the value of one ``--account`` (an argparse
    ``type=``). Raises ValueError (argparse shows "invalid parse_account value") when there is
    no ``=``, the key is empty or the user id is not a positive integer."""
    key, sep, user_id = text.partition("=")
    if not sep or not key.strip() or not user_id.strip().isdigit() or int(user_id) <= 0:
        raise ValueError("expected KEY=USERID, e.g. key-a=1001")
    return key.strip(), int(user_id)


def serve(
    port: int = DEFAULT_PORT,
    api_key: str | None = None,
    rate_limits: bool = False,
    out: TextIO | None = None,
    accounts: Mapping[str, int] | None = None,
) -> int:
    """Serve a :class:`VastSimulator` on ``127.0.0.1:port`` until Ctrl-C or SIGTERM.

    Prints (to ``out``, default stdout, flushed) the base URL, the API key it enforces
    (``api_key``, or a new random one), one line per extra account of ``accounts``
    (``{key: vast_user_id}``, keys the caller chose) and a one-line ``vastai`` example.
    Returns the exit status: 0 after a clean stop, 2 when the port cannot be bound.
    """
    out = out or sys.stdout
    key = api_key or f"sim-{secrets.token_hex(16)}"
    sim = VastSimulator(
        api_key=key, accounts=accounts, timeline=Timeline(), rate_limits=rate_limits
    )
    try:
        url = sim.start(port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"Cannot start: port {port} is already in use. Stop the other process or "
                "pass --port with a free port.",
                file=sys.stderr,
            )
        else:
            print(f"Cannot start: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    limits = "on (Vast.ai's per-endpoint intervals)" if rate_limits else "off"
    print(f"Vast.ai simulator at {url} (127.0.0.1 only; rate limits {limits})", file=out)
    print(f"API key: {key}", file=out)
    for extra, user_id in (accounts or {}).items():
        print(f"Account: key {extra} is Vast.ai user {user_id}", file=out)
    print(
        f"Try: vastai --url {url} --api-key {key} search offers 'gpu_ram>=8 num_gpus=1'",
        file=out,
    )
    print("Ctrl-C stops it.", file=out, flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        threading.Event().wait()  # until Ctrl-C / SIGTERM raise KeyboardInterrupt here
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sim.stop()
    print("Simulator stopped.", file=out, flush=True)
    return 0
