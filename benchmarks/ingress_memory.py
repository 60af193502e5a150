"""The bot's memory under unsigned 100 MB POSTs to ``/slack/events``.

The real bot runs as ``python -m bot`` in its own process (HTTP mode, waitress, the built-in
Vast.ai simulator since ``VAST_API_KEY`` is unset, a temporary SQLite database) against the
fake Slack Web API on 127.0.0.1. After a warm-up (a signed ``/templates`` and an unsigned small
POST, so that lazy imports are done), its resident set size (``VmRSS`` in ``/proc/<pid>/status``)
is read; then ``--requests`` unsigned POSTs of ``--megabytes`` MB each (a form body of one
long field) are sent ``--parallel`` at a time over loopback, each from its own socket in 1 MB
writes (the client never holds a whole body). A sampler reads the bot's RSS every 20 ms
throughout. Printed: RSS before, the peak while the bodies were sent, RSS after (once it has
stayed within 1 MB for 1 s), the answers' status lines, and the seconds each batch took.
Exit status 1 when the peak or the after figure is more than ``--budget`` MB over before.

``--pythonpath DIR`` runs the bot from another checkout (e.g. the main branch, to compare; the
bot there reads whole bodies, so give it fewer ``--requests``).

Run: ``python -m benchmarks.ingress_memory [--requests 20] [--parallel 4] [--megabytes 100]
[--budget 20] [--chunked] [--pythonpath DIR]``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bot.playground.slack_api import TEAM_ID, FakeSlack
from tests.fixtures.slack import BOT_TOKEN, SIGNING_SECRET, sign

CHUNK = 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    """``VmRSS`` of ``pid`` in MB (MiB), from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class Sampler:
    """Reads a process's RSS every 20 ms in a thread; :attr:`peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_unsigned(port: int, megabytes: int, answers: list[str], chunked: bool = False) -> None:
    """One unsigned POST of ``megabytes`` MB (``a=aaa…``) in 1 MB writes (``chunked``: as
    ``Transfer-Encoding: chunked``, no ``Content-Length``); appends the answer's status line
    (or how the connection ended) to ``answers``."""
    size = megabytes * CHUNK
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"{length}\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b"a=" + b"a" * (CHUNK - 2)
    rest = b"a" * CHUNK
    if chunked:
        frame = f"{CHUNK:x}\r\n".encode()
        chunk, rest = frame + chunk + b"\r\n", frame + rest + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head)
        try:
            for n in range(megabytes):
                sock.sendall(chunk if n == 0 else rest)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server answered and closed before the whole body
            pass
        try:
            answer = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
        except OSError as error:
            answer = f"({type(error).__name__})"
    answers.append(answer or "(closed without an answer)")


def _warm_up(url: str) -> None:
    body = urlencode(
        {
            "team_id": TEAM_ID,
            "channel_id": "C0DEPLOYS1",
            "user_id": "U0ALICE01",
            "command": "/templates",
            "text": "",
            "response_url": "http://127.0.0.1:9/response",
            "trigger_id": "1.1.x",
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(3):
            ok = http.post("/slack/events", content=body, headers={**headers, **sign(body)})
            if ok.status_code != 200:
                raise RuntimeError(f"warm-up /templates answered {ok.status_code}")
            http.post("/slack/events", content=b"a=b", headers=headers)


def _settled(pid: int, seconds: float = 1.0, timeout: float = 30.0) -> float:
    """RSS once it has stayed within 1 MB for ``seconds`` (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = rss_mb(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = rss_mb(pid)
        if abs(now - last) > 1:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return now
    return rss_mb(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--budget", type=float, default=20.0, help="MB over the RSS before")
    parser.add_argument("--pythonpath", default=str(ROOT), help="the checkout the bot runs from")
    parser.add_argument(
        "--chunked", action="store_true", help="send the bodies chunked, without Content-Length"
    )
    args = parser.parse_args(argv)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as fake:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLACK_", "VAST_")) and key != "DATABASE_URL"
        }
        env.update(
            PYTHONPATH=args.pythonpath,
            PORT=str(port),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=fake.api_url,
            DATABASE_URL=f"sqlite:///{Path(folder) / 'bench.db'}",
            STATUS_POLL_SECONDS="3600",
        )
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(folder) / "bot.log", "w"),  # noqa: SIM115 - closed with the folder
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or bot.poll() is not None:
                    raise RuntimeError("the bot did not answer /healthz within 60 s")
                time.sleep(0.2)
            _warm_up(url)
            before = _settled(bot.pid)
            answers: list[str] = []
            batches: list[float] = []
            with Sampler(bot.pid) as sampler:
                for first in range(0, args.requests, args.parallel):
                    count = min(args.parallel, args.requests - first)
                    started = time.monotonic()
                    threads = [
                        threading.Thread(
                            target=post_unsigned, args=(port, args.megabytes, answers, args.chunked)
                        )
                        for _ in range(count)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    batches.append(time.monotonic() - started)
            after = _settled(bot.pid)
            _warm_up(url)  # still serving
            lines = (Path(folder) / "bot.log").read_text().splitlines()
        finally:
            bot.terminate()
            bot.wait(timeout=30)
    refused_lines = sum("refused POST /slack/events" in line for line in lines)
    tracebacks = sum(line.startswith("Traceback") for line in lines)
    print(
        f"bot from {args.pythonpath}: {args.requests} unsigned POSTs of {args.megabytes} MB"
        f"{' (chunked)' if args.chunked else ''}, {args.parallel} at a time, over loopback"
    )
    print(
        f"RSS before {before:.1f} MB, peak while sending {sampler.peak:.1f} MB "
        f"(+{sampler.peak - before:.1f}), after {after:.1f} MB (+{after - before:.1f})"
    )
    statuses = {answer: answers.count(answer) for answer in sorted(set(answers))}
    print(f"answers: {statuses}")
    print(f"seconds per batch: {', '.join(f'{s:.2f}' for s in batches)}")
    print(f"log: {refused_lines} 'refused' lines, {tracebacks} tracebacks, {len(lines)} lines")
    worst = max(sampler.peak, after) - before
    if worst > args.budget:
        print(f"over budget: +{worst:.1f} MB > {args.budget:g} MB")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
