"""Signed but malformed payloads through the real app (fake Slack, Vast.ai simulator): never a
500, never a traceback in the log (one warning line), and the user is told what to do where
Slack left a way to tell them. The models themselves: ``tests/test_payloads.py``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.playground.slack_api import TEAM_ID
from bot.slack.listeners.gate import ACTION_TEXT, COMMAND_TEXT, FIELD_TEXT, FORM_TEXT
from tests.fixtures.slack import ALICE, CHANNEL, BotHarness
from tests.test_deploy import creates, pick_offer, submitted_view

NINETEEN_NINES = "9" * 19  # past every integer column: int() is fine, the database is not


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    yield caplog


def wait_until(predicate: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def assert_quiet(log: pytest.LogCaptureFixture, warnings: int = 1) -> None:
    """No traceback anywhere in the log, and at most ``warnings`` lines at WARNING or above."""
    tracebacks = [record.getMessage() for record in log.records if record.exc_info]
    assert tracebacks == []
    loud = [record.getMessage() for record in log.records if record.levelno >= logging.WARNING]
    assert len(loud) <= warnings, loud


def submission(view: dict[str, Any], changes: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "gpu-team"},
        "user": {"id": ALICE, "username": "alice", "team_id": TEAM_ID},
        "api_app_id": "A0GPUBOT01",
        "trigger_id": "1.1234567890.submit1",
        "view": view,
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    payload.update(changes or {})
    return payload


def click(
    bot: BotHarness, action_id: str, value: Any = "12", *, reply: str = "act", **changes: Any
) -> dict[str, Any]:
    """A block_actions payload from an ephemeral message, answered on ``response_url`` ``reply``."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": ALICE, "username": "alice", "team_id": TEAM_ID},
        "api_app_id": "A0GPUBOT01",
        "trigger_id": "2.1234567890.click2",
        "team": {"id": TEAM_ID, "domain": "gpu-team"},
        "container": {
            "type": "message",
            "message_ts": "1732900000.000100",
            "channel_id": CHANNEL,
            "is_ephemeral": True,
        },
        "channel": {"id": CHANNEL, "name": "gpu-deploys"},
        "response_url": bot.slack.response_url(reply),
        "actions": [{"type": "button", "action_id": action_id, "block_id": "b1", "value": value}],
    }
    payload.update(changes)
    return payload


def replies(bot: BotHarness, name: str) -> list[str]:
    """Texts posted to ``response_url`` ``name``."""
    return [
        str(call.args.get("text"))
        for call in bot.slack.calls_to("response_url")
        if call.path == f"/response/{name}"
    ]


# -- view_submission ---------------------------------------------------------------------------


def _state_x(view: dict[str, Any]) -> None:
    view["state"] = "x"


def _values_list(view: dict[str, Any]) -> None:
    view["state"]["values"] = [["offer_block"]]


def _deep_metadata(view: dict[str, Any]) -> None:
    view["private_metadata"] = "[" * 100_000


def _metadata_not_text(view: dict[str, Any]) -> None:
    view["private_metadata"] = {"template": "jupyter-lab"}


@pytest.mark.parametrize(
    "breaks",
    [_state_x, _values_list, _deep_metadata, _metadata_not_text],
    ids=["state-is-a-string", "values-is-a-list", "metadata-100000-deep", "metadata-not-text"],
)
def test_a_malformed_picker_submission_says_nothing_was_done_and_rents_nothing(
    bot: BotHarness, log: pytest.LogCaptureFixture, breaks: Callable[[dict[str, Any]], None]
) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id)
    breaks(view)
    response = bot.interaction(submission(view))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "update"
    assert FORM_TEXT in json.dumps(answer["view"])
    time.sleep(0.2)  # a wrong rental would show up by now
    assert creates(bot) == []
    assert_quiet(log)


@pytest.mark.parametrize(
    "path",
    [
        ("offer_block",),
        ("offer_block", "gpu_offer"),
        ("offer_block", "gpu_offer", "selected_option"),
    ],
    ids=["block-is-a-string", "input-is-a-string", "selected-option-is-a-string"],
)
def test_a_malformed_input_gets_an_inline_error_on_its_block(
    bot: BotHarness, log: pytest.LogCaptureFixture, path: tuple[str, ...]
) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id)
    target = view["state"]["values"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "x"
    response = bot.interaction(submission(view))
    assert response.status_code == 200
    assert response.json() == {"response_action": "errors", "errors": {"offer_block": FIELD_TEXT}}
    assert creates(bot) == []
    assert_quiet(log)


@pytest.mark.parametrize(
    "changes",
    [{"user": "U0ALICE01"}, {"team": "T0GPU0001"}, {"view": "x"}, {"trigger_id": 7}],
    ids=["user-is-a-string", "team-is-a-string", "view-is-a-string", "trigger-id-a-number"],
)
def test_a_malformed_submission_envelope_is_answered_not_500(
    bot: BotHarness, log: pytest.LogCaptureFixture, changes: dict[str, Any]
) -> None:
    chosen = pick_offer(bot).offer
    response = bot.interaction(submission(submitted_view(chosen.id), changes))
    assert response.status_code == 200
    assert response.json()["response_action"] == "update"
    assert creates(bot) == []
    assert_quiet(log)


# -- block_actions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"actions": []},
        {"actions": "x"},
        {"actions": ["x"]},
        {"container": "x"},
        {"trigger_id": 5},
        {"message": "x"},
    ],
    ids=[
        "actions-empty",
        "actions-a-string",
        "action-a-string",
        "container-a-string",
        "trigger-id-a-number",
        "message-a-string",
    ],  # fmt: skip
)
def test_a_malformed_click_is_answered_ephemerally_and_does_nothing(
    bot: BotHarness, log: pytest.LogCaptureFixture, changes: dict[str, Any]
) -> None:
    response = bot.interaction(click(bot, "deployment_stop", "1", **changes))
    assert response.status_code == 200
    assert wait_until(lambda: replies(bot, "act")) == [ACTION_TEXT]
    assert [r for r in bot.vast.requests if r.method != "GET"] == []
    assert_quiet(log)


def test_a_click_whose_response_url_is_not_slacks_is_answered_by_dm_not_there(
    bot: BotHarness, log: pytest.LogCaptureFixture
) -> None:
    elsewhere = bot.slack.url + "/../response/elsewhere"
    for url in ("http://169.254.169.254/latest/meta-data/", 5, elsewhere.replace("http", "ftp")):
        response = bot.interaction(click(bot, "deployment_stop", "1", response_url=url))
        assert response.status_code == 200
    dms = wait_until(
        lambda: [
            c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("text") == ACTION_TEXT
        ]
    )
    assert dms and bot.slack.calls_to("response_url") == []
    assert_quiet(log, warnings=3)


@pytest.mark.parametrize(
    "action_id",
    ["deployment_stop", "deployment_start", "deployment_destroy", "deployment_credentials",
     "approval_approve", "approval_deny", "lifetime_extend", "idle_keep_running"],
)  # fmt: skip
def test_a_button_naming_nineteen_nines_is_answered_and_nothing_fails(
    bot: BotHarness, log: pytest.LogCaptureFixture, action_id: str
) -> None:
    value = {
        "lifetime_extend": f"{NINETEEN_NINES}:8:1732900000000000",
        "idle_keep_running": f"{NINETEEN_NINES}:1732900000000000",
    }.get(action_id, NINETEEN_NINES)
    response = bot.interaction(click(bot, action_id, value))
    assert response.status_code == 200
    assert wait_until(lambda: replies(bot, "act"))
    assert [r for r in bot.vast.requests if r.method != "GET"] == []
    assert_quiet(log, warnings=0)


# -- slash commands and events ------------------------------------------------------------------


@pytest.mark.parametrize("drop", ["user_id", "trigger_id", "response_url"])
def test_a_malformed_slash_command_gets_an_ephemeral_answer(
    bot: BotHarness, log: pytest.LogCaptureFixture, drop: str
) -> None:
    fields = {
        "team_id": TEAM_ID,
        "channel_id": CHANNEL,
        "user_id": ALICE,
        "command": "/templates",
        "text": "mine",
        "response_url": bot.slack.response_url("cmd"),
        "trigger_id": "3.1234567890.cmd3",
    }
    del fields[drop]
    response = bot.post(urlencode(fields), "application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral", "text": COMMAND_TEXT}
    assert_quiet(log)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "app_home_opened", "user": {"id": ALICE}, "tab": "home"},
        {"type": "app_home_opened", "tab": "home"},
        {"type": "app_home_opened", "user": ALICE, "tab": ["home"]},
    ],
    ids=["user-an-object", "no-user", "tab-a-list"],
)
def test_a_malformed_event_is_acknowledged_and_does_nothing(
    bot: BotHarness, log: pytest.LogCaptureFixture, event: dict[str, Any]
) -> None:
    response = bot.event(event)
    assert response.status_code == 200
    time.sleep(0.2)  # a wrong Home publish would show up by now
    assert bot.slack.calls_to("views.publish") == []
    assert_quiet(log)


# -- a listener that fails before its ack -------------------------------------------------------


def test_a_submission_whose_listener_fails_is_answered_with_a_reference_not_500(
    bot: BotHarness, log: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = pick_offer(bot).offer

    def broken(slug: str) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.services.catalog, "get", broken)
    response = bot.view_submission(submitted_view(chosen.id))
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "update"
    text = json.dumps(answer["view"])
    assert "Something went wrong on our side" in text and "reference" in text
    assert creates(bot) == []


def test_a_command_whose_listener_fails_is_answered_with_a_reference_not_500(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.slack.listeners import templates

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(templates, "list_payload", broken)
    response = bot.command("llama")
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    assert "Something went wrong on our side" in answer["text"]
