"""``LOG_LEVEL`` and ``LOG_FORMAT`` (:mod:`bot.logs`): with ``LOG_FORMAT=json`` a journey
through the real app (``/templates``, a deploy to ready, "Send me the login") writes only lines
that each parse as one JSON object with time, level, logger and message, some of them carrying
the request, workspace and deployment ids, and at DEBUG none holds a secret; ``LOG_LEVEL=WARNING``
hides the INFO lines; the context follows jobs onto pools and never leaks between them."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot import logs
from bot.config import ConfigError, load_settings
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services.work import WorkPool
from bot.slack.server import ContextSocketModeHandler
from tests.fixtures.slack import ALICE, BOT_TOKEN, SIGNING_SECRET, BotHarness, make_settings
from tests.test_deploy import creates, pick_offer, settled, submitted_view, wait_until
from tests.test_poller import dms, poller_of
from tests.test_secret_logs import VAST_KEY, keyed_bot  # noqa: F401 (a fixture)


class Captured:
    """The root handler :func:`bot.logs.configure` installs, writing to a string."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def configure(self, level: logs.LogLevel, fmt: logs.LogFormat, secrets: list[str]) -> None:
        self.stream.seek(0)
        self.stream.truncate()
        logs.configure(level, fmt, secrets=secrets, stream=self.stream)

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        """Every line parsed with :func:`json.loads` (fails on the first line that is not one
        JSON object)."""
        parsed = []
        for line in self.lines:
            value = json.loads(line)
            assert isinstance(value, dict), line
            parsed.append(value)
        return parsed


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    capture = Captured()
    try:
        yield capture
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logs._Handler)]:
            root.removeHandler(handler)
        root.setLevel(level)
        for name, old in noisy.items():
            logging.getLogger(name).setLevel(old)


def test_a_journey_in_json_at_debug_parses_line_by_line_with_ids_and_no_secret(
    keyed_bot: BotHarness,  # noqa: F811
    fake_slack: FakeSlack,
    captured: Captured,
) -> None:
    bot = keyed_bot
    captured.configure("DEBUG", "json", [BOT_TOKEN, SIGNING_SECRET, VAST_KEY])
    assert bot.command("").status_code == 200  # /templates: the catalog (in the ack)
    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = settled(bot)
    password = creates(bot)[0].json["env"]["JUPYTER_TOKEN"]
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    wait_until(lambda: [c for c in dms(fake_slack) if password in str(c.args)])
    bot.block_action("deployment_credentials", str(dep.id), user=ALICE, is_ephemeral=False)
    wait_until(lambda: len([c for c in dms(fake_slack) if password in str(c.args)]) == 2)

    records = captured.records()  # every line is one JSON object
    assert len(records) > 20
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    assert any(r["level"] == "DEBUG" and r["logger"].startswith("slack_sdk") for r in records)
    with_request = [r for r in records if "request_id" in r]
    assert with_request and all(len(r["request_id"]) == 16 for r in with_request)
    assert {r["team_id"] for r in records if "team_id" in r} == {TEAM_ID}
    # The deploy (a job on the work pool, from the submission) and the poller's rows.
    assert [r for r in records if r.get("deployment_id") == dep.id and "request_id" not in r]
    assert len({r["request_id"] for r in with_request}) >= 3  # one per Slack request
    (rented,) = [r for r in records if r["message"].endswith(" created")]
    assert (rented["logger"], rented["deployment_id"]) == ("bot.services.deploy", dep.id)
    assert rented["request_id"] and rented["team_id"] == TEAM_ID  # the submission's
    text = captured.stream.getvalue()
    secrets = {
        "web password": password,
        "bot token": BOT_TOKEN,
        "signing secret": SIGNING_SECRET,
        "Vast.ai key": VAST_KEY,
    }
    assert [name for name, secret in secrets.items() if secret in text] == []


def test_log_level_warning_hides_the_info_lines(bot: BotHarness, captured: Captured) -> None:
    secrets = [BOT_TOKEN, SIGNING_SECRET, VAST_KEY]
    captured.configure("INFO", "text", secrets)
    assert bot.command("help").status_code == 200
    logging.getLogger("httpcore").info("kept at INFO by bot.logsafe")  # a logger set lower
    assert any(" INFO " in line for line in captured.lines)  # the same steps do log INFO

    captured.configure("WARNING", "text", secrets)
    assert bot.command("help").status_code == 200
    logging.getLogger("httpcore").info("kept at INFO by bot.logsafe")
    assert bot.post("x=1", "application/x-www-form-urlencoded", headers={}).status_code == 401
    lines = captured.lines
    assert any(" WARNING bot.slack.ingress: refused POST /slack/events" in line for line in lines)
    assert [line for line in lines if " INFO " in line or " DEBUG " in line] == []


def test_json_exception_text_is_scrubbed_and_text_lines_show_the_context(
    captured: Captured,
) -> None:
    captured.configure("INFO", "json", [VAST_KEY])
    log = logging.getLogger("bot.test_logs")
    with logs.bound(request_id="r1", team_id="T1", deployment_id=7):
        try:
            raise RuntimeError(f"key {VAST_KEY} in an error")
        except RuntimeError:
            log.exception("failed with %s", VAST_KEY)
    log.info("outside")
    first, second = captured.records()
    assert first["message"] == "failed with [redacted]"
    assert "Traceback" in first["exc_info"] and "key [redacted] in an error" in first["exc_info"]
    assert (first["request_id"], first["team_id"], first["deployment_id"]) == ("r1", "T1", 7)
    assert VAST_KEY not in captured.stream.getvalue()
    assert "request_id" not in second and "deployment_id" not in second

    captured.configure("INFO", "text", [])
    with logs.bound(team_id="T1", deployment_id=7):
        log.info("in context")
    log.info("outside")
    inside, outside = captured.lines
    assert inside.endswith("INFO bot.test_logs: in context [deployment=7 team=T1]")
    assert outside.endswith("INFO bot.test_logs: outside")


def test_the_work_pool_carries_the_submitters_context_and_leaks_none() -> None:
    pool = WorkPool(threads=1, queue=4)
    seen: list[dict[str, str | int]] = []
    try:
        with logs.bound(request_id="req-a", team_id="T1"):
            pool.submit(lambda: seen.append(logs.current())).result()

        def sets_its_own() -> None:
            logs.DEPLOYMENT_ID.set(99)  # set without a reset, in the job's copy only

        pool.submit(sets_its_own).result()
        pool.submit(lambda: seen.append(logs.current())).result()
    finally:
        pool.shutdown(wait=True)
    assert seen == [{"team_id": "T1", "request_id": "req-a"}, {}]
    assert logs.current() == {}
    other: list[dict[str, str | int]] = []
    with logs.bound(deployment_id=5):
        thread = threading.Thread(target=lambda: other.append(logs.current()))
        thread.start()
        thread.join()
    assert other == [{}]  # a thread started normally does not inherit it


def test_log_level_and_format_are_validated_in_one_line(fake_slack: FakeSlack) -> None:
    settings = make_settings(fake_slack, log_level="warning", log_format="JSON")
    assert (settings.log_level, settings.log_format) == ("WARNING", "json")
    assert make_settings(fake_slack).log_level == "INFO"
    assert make_settings(fake_slack).log_format == "text"
    with pytest.raises(ConfigError) as error:
        load_settings(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, log_level="verbose"
        )
    assert str(error.value) == (
        "LOG_LEVEL is invalid (unknown level): set it to DEBUG, INFO, WARNING or ERROR, or "
        "unset it for INFO (see README › Configuration)."
    )
    with pytest.raises(ConfigError, match=r"^LOG_FORMAT is invalid \(unknown format\)"):
        load_settings(
            slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, log_format="xml"
        )


def test_a_socket_mode_request_is_handled_with_its_own_request_and_team_ids() -> None:
    app = App(token=BOT_TOKEN, signing_secret=SIGNING_SECRET, token_verification_enabled=False)
    seen: list[dict[str, str | int]] = []

    def dispatch(request: BoltRequest) -> BoltResponse:
        seen.append(logs.current())
        return BoltResponse(status=200, body="")

    app.dispatch = dispatch  # type: ignore[method-assign]
    handler = ContextSocketModeHandler(app, "xapp-1-A0TEST-1-0123456789abcdef")
    sent: list[SocketModeResponse] = []
    client = handler.client
    client.send_socket_mode_response = sent.append  # type: ignore[method-assign,assignment]
    try:
        for n in (1, 2):
            payload = {"type": "block_actions", "team": {"id": TEAM_ID}, "user": {"id": ALICE}}
            request = SocketModeRequest(type="interactive", envelope_id=f"e{n}", payload=payload)
            handler.handle(client, request)
    finally:
        handler.client.close()
    assert [r.envelope_id for r in sent] == ["e1", "e2"]
    assert [s["team_id"] for s in seen] == [TEAM_ID, TEAM_ID]
    assert len({str(s["request_id"]) for s in seen}) == 2
    assert logs.current() == {}
