"""No secret in the log, even at DEBUG: a whole deploy-to-ready journey (picker submission,
rental on a Vast.ai account with a key, the poller to ready, the login DM, "Send me the login")
and an OAuth install with rotating tokens, each with the root logger at DEBUG, then every
captured record (message, arguments, exception and stack text) is searched for the generated
password, the tokens, the signing and client secrets and the Vast.ai key; and the pieces
(:mod:`bot.logsafe`, SQLAlchemy's hidden parameters) one by one."""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

import storage
from bot import logsafe
from bot.config import configured_secrets
from bot.playground.slack_api import CLIENT_SECRET, FakeSlack
from bot.runtime import build_runtime
from bot.simulator import VastSimulator
from bot.vast.client import VastClient
from bot.vast.pacing import NO_PACING
from tests.fixtures.oauth import KEY_A, TEAM_A, TOKEN_A, OAuthBotFactory
from tests.fixtures.slack import (
    ALICE,
    BOT_TOKEN,
    FAST_TIMELINE,
    SIGNING_SECRET,
    BotHarness,
    make_settings,
)
from tests.test_deploy import creates, pick_offer, settled, submitted_view, wait_until
from tests.test_oauth_workspaces import set_key
from tests.test_poller import dms, poller_of

VAST_KEY = "5e0c1d2b3a4f59687766554433221100ffeeddccbbaa99887766554433221100"


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could print of ``record``: the message with and without its
    arguments, the arguments themselves, the exception and the stack."""
    parts = [str(record.msg), record.getMessage() if record.args else "", repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    parts += [record.exc_text or "", record.stack_info or ""]
    return "\n".join(parts)


def leaks(records: list[logging.LogRecord], secrets: dict[str, str]) -> list[str]:
    """``"<secret name> in <logger>: <start of the line>"`` for each record holding a secret."""
    found = []
    for record in records:
        text = record_text(record)
        for name, secret in secrets.items():
            if secret in text:
                found.append(f"{name} in {record.name}: {str(record.msg)[:80]!r}")
    return found


@pytest.fixture
def keyed_bot(fake_slack: FakeSlack, database_url: str) -> Iterator[BotHarness]:
    """The bot renting on a Vast.ai account that needs ``VAST_KEY`` (the simulator refuses any
    other), in HTTP mode with the test signing secret."""
    with VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True, api_key=VAST_KEY) as sim:
        url = sim.start()
        settings = make_settings(
            fake_slack,
            database_url=database_url,
            vast_api_url=url,
            vast_api_key=VAST_KEY,
            status_poll_seconds=3600,
            allow_private_instance_addresses=True,  # the simulator's instances are on 127.0.0.1
        )
        client = VastClient(url, VAST_KEY, timeout=5.0, min_intervals=NO_PACING)
        harness = BotHarness(fake_slack, build_runtime(settings, vast=client), sim)
        try:
            yield harness
        finally:
            harness.stop()


def test_a_deploy_to_ready_journey_at_debug_logs_no_secret(
    keyed_bot: BotHarness, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    bot = keyed_bot
    caplog.set_level(logging.DEBUG)  # the root logger and the capture at DEBUG
    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = settled(bot)
    password = creates(bot)[0].json["env"]["JUPYTER_TOKEN"]
    assert len(password) >= 32

    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    wait_until(lambda: [c for c in dms(fake_slack) if password in str(c.args)])
    bot.block_action("deployment_credentials", str(dep.id), user=ALICE, is_ephemeral=False)
    wait_until(lambda: len([c for c in dms(fake_slack) if password in str(c.args)]) == 2)
    fake_slack.wait_for("response_url")

    records = caplog.records
    # The journey did log at DEBUG (Slack's client, Bolt, the bot), so the search means something.
    assert any(r.levelno == logging.DEBUG and r.name.startswith("slack_sdk") for r in records)
    secrets = {
        "web password": password,
        "bot token": BOT_TOKEN,
        "signing secret": SIGNING_SECRET,
        "Vast.ai key": VAST_KEY,
    }
    assert leaks(records, secrets) == []


def test_an_oauth_install_and_setup_with_rotating_tokens_at_debug_log_no_secret(
    oauth_bot_factory: OAuthBotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ob = oauth_bot_factory()
    caplog.set_level(logging.DEBUG)
    ob.slack.token_expires_in = 60  # every use rotates first: more tokens on the wire
    done = ob.install(TEAM_A, refresh=True)
    assert done.callback.status_code == 200
    set_key(ob, TEAM_A, KEY_A)  # the setup modal's submission carries the Vast.ai key
    assert ob.services.workspaces.stored_key(TEAM_A) is not None
    secrets = {
        "bot token": TOKEN_A,
        "client secret": CLIENT_SECRET,
        "signing": SIGNING_SECRET,
        "Vast.ai key": KEY_A,
        "encryption key": ob.encryption_key,
    }
    for n, call in enumerate(ob.slack.calls_to("oauth.v2.access")):
        answer = call.answer or {}
        secrets.update({f"{k} {n}": str(answer[k]) for k in ("access_token", "refresh_token")})
        if call.args.get("code"):
            secrets[f"code {n}"] = str(call.args["code"])
    assert len(secrets) >= 9
    assert any(
        r.levelno == logging.DEBUG and r.name.startswith("slack_sdk") for r in caplog.records
    )
    assert leaks(caplog.records, secrets) == []


def test_slack_sdk_request_and_response_lines_keep_the_url_and_status_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logsafe.install()
    caplog.set_level(logging.DEBUG)
    web = logging.getLogger("slack_sdk.web.base_client")
    web.debug(
        "Sending a request - url: https://slack.com/api/chat.postMessage, query_params: {}, "
        "body_params: {}, files: {}, json_body: {'text': 'pw-123456789'}, headers: {}"
    )
    web.debug(
        "Received the following response - status: 200, headers: {}, body: "
        '{"ok": true, "access_token": "xoxb-1-secret"}'
    )
    hook = logging.getLogger("slack_sdk.webhook.client")
    hook.debug(
        "Sending a request - url: https://hooks.slack.com/actions/T1/123/s3cr3tpath, body: "
        '{"text": "pw-123456789"}, headers: {}'
    )
    logging.getLogger("slack_bolt").debug(
        'Responding with status: 200 body: "pw-123456789" (3 millis)'
    )
    logging.getLogger("slack_bolt").debug(
        "Handling an OAuth callback success (request: {'code': ['c0de-1'], 'state': ['st']})"
    )
    logging.getLogger(logsafe.SOCKET_MODE_LOGGER).debug("on_message invoked: (message: key-1)")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Sending a request - url: https://slack.com/api/chat.postMessage (parameters and body "
        "not logged)",
        "Received the following response - status: 200 (headers and body not logged)",
        "Sending a request - url: https://hooks.slack.com/… (parameters and body not logged)",
        "Responding with status: 200 (body not logged)",
        "Handling an OAuth callback success (request query not logged)",
    ]
    for quiet in logsafe.QUIET_LOGGERS:
        assert not logging.getLogger(quiet).isEnabledFor(logging.DEBUG)


def test_httpx_request_lines_drop_the_query(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    logsafe.install()
    caplog.set_level(logging.DEBUG)
    httpx.get(f"{fake_slack.api_url}auth.test?token=xoxb-in-a-query-0001", timeout=5)
    assert "HTTP Request: GET" in caplog.text and "/api/auth.test?…" in caplog.text
    assert "xoxb-in-a-query-0001" not in caplog.text


def test_the_scrubber_on_a_handler_redacts_configured_secrets_and_slack_tokens() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logsafe.install_scrubber([VAST_KEY, SIGNING_SECRET, "short"], [handler])
    logger = logging.getLogger("tests.scrubbed")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("key %s and token %s", VAST_KEY, "xoxe.xoxb-1-abc-rotated")
        try:
            raise RuntimeError(f"signing secret {SIGNING_SECRET} in an error")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert out.count("[redacted]") == 3 and "Traceback" in out
    assert VAST_KEY not in out and SIGNING_SECRET not in out and "xoxb-1-abc" not in out


def test_configured_secrets_are_every_secret_setting(fake_slack: FakeSlack) -> None:
    key_a, key_b = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = make_settings(fake_slack, vast_api_key=VAST_KEY, encryption_key=f"{key_a},{key_b}")
    assert set(configured_secrets(settings)) == {BOT_TOKEN, SIGNING_SECRET, VAST_KEY, key_a, key_b}


def test_sql_parameters_are_neither_logged_nor_in_errors(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLAlchemy keeps its loggers at WARNING unless told otherwise: an operator tracing SQL.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    insert = text("INSERT INTO bot_state (name, value, updated_at) VALUES (:n, :v, :t)")
    row = {"n": "x", "v": "pw-secret-in-a-parameter", "t": storage.utcnow()}
    with engine.begin() as conn:
        conn.execute(insert, row)
    with pytest.raises(IntegrityError) as error, engine.begin() as conn:
        conn.execute(insert, row)
    assert "pw-secret-in-a-parameter" not in str(error.value)
    assert "sqlalchemy.engine" in {r.name.rsplit(".", 1)[0] for r in caplog.records}
    assert "pw-secret-in-a-parameter" not in caplog.text
