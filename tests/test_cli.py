"""``python -m bot`` as a process: clear one-line start-up errors, clean SIGTERM shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from bot.playground.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parent.parent


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAST_"))}
    env.update(values, PYTHONPATH=str(ROOT))
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_slack_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=_env(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=f"http://127.0.0.1:{_free_port()}/api/",  # nothing listens
            DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Cannot start: could not reach the Slack Web API at SLACK_API_URL")
    assert "Traceback" not in result.stderr


def test_refused_token_is_named(tmp_path: Path) -> None:
    with FakeSlack() as fake:
        fake.fail("auth.test", "invalid_auth", times=10)
        result = subprocess.run(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=_env(
                SLACK_BOT_TOKEN="xoxb-revoked",
                SLACK_SIGNING_SECRET="s",
                SLACK_API_URL=fake.api_url,
                DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Cannot start: Slack refused the bot token (auth.test failed). Check SLACK_BOT_TOKEN."
    )
    assert "xoxb-revoked" not in result.stderr


def test_sigterm_stops_cleanly_and_gives_up_the_poller_lease(tmp_path: Path) -> None:
    database = tmp_path / "bot.db"
    port = _free_port()
    with FakeSlack() as fake:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=_env(
                SLACK_BOT_TOKEN="xoxb-test",
                SLACK_SIGNING_SECRET="s",
                SLACK_API_URL=fake.api_url,
                DATABASE_URL=f"sqlite:///{database}",
                PORT=str(port),
                STATUS_POLL_SECONDS="0.2",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        engine = sa.create_engine(f"sqlite:///{database}")
        try:
            deadline = time.monotonic() + 30
            leases: list[str] = []
            while time.monotonic() < deadline and not leases:
                try:
                    healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    if healthy.status_code == 200:
                        with engine.connect() as connection:
                            leases = list(
                                connection.execute(sa.text("SELECT name FROM leases")).scalars()
                            )
                except (httpx.HTTPError, sa.exc.OperationalError):
                    pass
                time.sleep(0.1)
            assert leases == ["status-poller"], "the poller never took its lease"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
            with engine.connect() as connection:
                left = list(connection.execute(sa.text("SELECT name FROM leases")).scalars())
            assert left == []  # given up: another process can take over at once
        finally:
            if process.poll() is None:
                process.kill()
            engine.dispose()


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken, FakeSlack() as fake:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=_env(
                SLACK_BOT_TOKEN="xoxb-test",
                SLACK_SIGNING_SECRET="s",
                SLACK_API_URL=fake.api_url,
                DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
                PORT=str(taken.getsockname()[1]),
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("Cannot start: the HTTP port is already in use")
    )


def test_socket_mode_process_serves_healthz_and_logs_a_disconnect_once(tmp_path: Path) -> None:
    """``python -m bot`` with SLACK_APP_TOKEN (the Procfile's ``worker:``) connects over a real
    WebSocket, serves ``GET /healthz`` on PORT with ``"socket"``, answers 503 when Slack goes
    away and logs that in one line, and stops cleanly on SIGTERM."""
    from tests.fakes.socket_mode import FakeSocketMode, SocketSlack

    port = _free_port()
    with FakeSocketMode() as endpoint, SocketSlack(endpoint) as fake:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"],
            cwd=tmp_path,
            env=_env(
                SLACK_BOT_TOKEN="xoxb-test",
                SLACK_APP_TOKEN="xapp-1-A0TEST-1-0123456789abcdef",
                SLACK_API_URL=fake.api_url,
                DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
                PORT=str(port),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        health = f"http://127.0.0.1:{port}/healthz"

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(health, timeout=1)
            except httpx.HTTPError:
                return None

        try:
            deadline = time.monotonic() + 30
            up = answer()
            while (up is None or up.status_code != 200) and time.monotonic() < deadline:
                time.sleep(0.1)
                up = answer()
            assert up is not None and up.status_code == 200, "no healthy /healthz"
            assert up.json()["socket"] is True and endpoint.handshakes == 1
            endpoint.drop(refuse=True)
            deadline = time.monotonic() + 10
            down = answer()
            while (down is None or down.status_code != 503) and time.monotonic() < deadline:
                time.sleep(0.1)
                down = answer()
            assert down is not None and down.status_code == 503
            assert down.json()["socket"] is False
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
        stderr = process.stderr.read() if process.stderr else ""
    assert stderr.count("Socket Mode: disconnected from Slack") == 1, stderr
    assert "Traceback" not in stderr and "xapp-1-A0TEST" not in stderr
