"""Socket Mode is watched: the real app over a real WebSocket to a fake
Socket Mode endpoint (tests/fakes/socket_mode.py). ``GET /healthz`` is served on its own port
and reports the socket; a dropped connection is logged in one line, reported as 503, and
reconnected; Slack's requests over the socket are acked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.playground.slack_api import TEAM_ID
from bot.runtime import build_runtime, socket_mode
from bot.simulator import VastSimulator
from bot.slack.server import BackgroundServer
from tests.fakes.socket_mode import FakeSocketMode, SocketSlack
from tests.fixtures.slack import ALICE, CHANNEL, FAST_TIMELINE, fast_vast_client, make_settings
from tests.test_deploy import wait_until

APP_TOKEN = "xapp-1-A0TEST-1-0123456789abcdef"


@pytest.fixture
def endpoint() -> Iterator[FakeSocketMode]:
    with FakeSocketMode() as fake:
        yield fake


@pytest.fixture
def slack(endpoint: FakeSocketMode) -> Iterator[SocketSlack]:
    fake = SocketSlack(endpoint)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def test_socket_mode_health_reports_the_socket_and_the_bot_reconnects(
    endpoint: FakeSocketMode,
    slack: SocketSlack,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True)
    url = simulator.start()
    settings = make_settings(
        slack,
        slack_signing_secret=None,
        slack_app_token=APP_TOKEN,
        database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        vast_api_url=url,
        status_poll_seconds=3600,
    )
    assert settings.socket_mode
    runtime = build_runtime(settings, vast=fast_vast_client(url))
    runtime.start_background()
    watch, health_app = socket_mode(runtime, APP_TOKEN, ping_interval=0.5)
    watch.watch_seconds = 0.05
    server = BackgroundServer(health_app).start()
    http = httpx.Client(base_url=server.url, timeout=5)
    caplog.set_level(logging.INFO, logger="bot.slack.server")
    try:
        watch.start()
        healthy = http.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json() == {
            "ok": True,
            "catalog": True,
            "database": True,
            "scheduler": True,
            "poller": True,
            "poller_role": "starting",  # no tick yet, within the start-up grace
            "last_pass_age_seconds": None,
            "row_errors": None,  # no pass yet
            "rows_failing_since": None,
            "rows_failing_seconds": None,
            "rows": "ok",
            "socket": True,
        }
        assert http.post("/slack/events").status_code == 404  # requests come over the socket
        assert endpoint.handshakes == 1 and slack.calls_to("apps.connections.open")

        # A slash command over the socket is run by the real app and acked on the socket.
        endpoint.send(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "token": "unused",
                    "team_id": TEAM_ID,
                    "user_id": ALICE,
                    "channel_id": CHANNEL,
                    "command": "/templates",
                    "text": "jupyter",
                    "response_url": slack.response_url(),
                    "trigger_id": "13345224609.738474920.8088930838d88f008e0",
                },
            }
        )
        ack = endpoint.wait_for_ack("env-1")
        assert "JupyterLab" in ack["payload"]["text"]  # the list, in the ack

        # Slack goes away: one line in the log, /healthz says 503 with socket false.
        endpoint.drop(refuse=True)
        down = wait_until(
            lambda: (r := http.get("/healthz")).status_code == 503 and r.json(), timeout=5
        )
        assert down["socket"] is False and down["database"] is True
        # At least two failed reconnection attempts (ping_interval 0.5 s).
        wait_until(lambda: endpoint.refused >= 2, timeout=15)
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.slack.server")]
        assert sum("disconnected from Slack" in line for line in lines) == 1
        assert not any("Failed to establish" in r.getMessage() for r in caplog.records)

        # Slack is back: the client reconnects by itself, /healthz is 200 again.
        endpoint.allow()
        wait_until(lambda: http.get("/healthz").status_code == 200, timeout=5)
        assert endpoint.handshakes == 2 and watch.disconnects == 1
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.slack.server")]
        assert sum("reconnected to Slack after" in line for line in lines) == 1
        endpoint.send(
            {
                "envelope_id": "env-2",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "team_id": TEAM_ID,
                    "user_id": ALICE,
                    "channel_id": CHANNEL,
                    "command": "/templates",
                    "text": "help",
                    "response_url": slack.response_url("r2"),
                    "trigger_id": "13345224609.738474920.8088930838d88f008e1",
                },
            }
        )
        endpoint.wait_for_ack("env-2")
    finally:
        http.close()
        watch.close()
        server.stop()
        runtime.close()
        simulator.stop()
    assert endpoint.connections == 0  # closed: no reconnection after close()


def test_health_app_reports_a_stand_in_connection(tmp_path: Path) -> None:
    """The Socket Mode health app on its own: 200 while the connection says connected, 503
    (with ``"socket": false``) when it does not, whatever the other checks say."""
    from bot.slack.server import make_health_app

    state = {"socket": True}
    app = make_health_app(lambda: {"catalog": True, "database": True, **state})
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert http.get("/healthz").json() == {
                "ok": True,
                "catalog": True,
                "database": True,
                "socket": True,
            }
            state["socket"] = False
            answer = http.get("/healthz")
            assert answer.status_code == 503 and answer.json()["socket"] is False
            assert http.get("/").status_code == 404
    finally:
        server.stop()
