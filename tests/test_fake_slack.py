"""The fake Slack Web API itself (tests/fakes/slack_api.py), called over HTTP with slack_sdk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import BOT_USER_ID, TEAM_ID, FakeSlack

ALICE = "U0ALICE01"


@pytest.fixture
def client(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token="xoxb-test", base_url=fake_slack.api_url)


def test_users_info_defaults_to_utc(fake_slack: FakeSlack, client: WebClient) -> None:
    response = client.users_info(user=ALICE)
    assert response["ok"] is True
    assert response["user"] == {
        "id": ALICE,
        "team_id": TEAM_ID,
        "name": ALICE.lower(),
        "tz": "UTC",
        "tz_label": "Coordinated Universal Time",
        "tz_offset": 0,
        "is_admin": False,
        "is_owner": False,
        "is_bot": False,
        "deleted": False,
    }
    (call,) = fake_slack.calls_to("users.info")
    assert call.args["user"] == ALICE


@pytest.mark.parametrize(
    ("when", "offset", "label"),
    [
        (datetime(2026, 1, 15, 12, tzinfo=UTC), -18000, "Eastern Standard Time"),
        (datetime(2026, 7, 15, 12, tzinfo=UTC), -14400, "Eastern Daylight Time"),
    ],
)
def test_users_info_time_zone_at_the_current_time(
    fake_slack: FakeSlack, client: WebClient, when: datetime, offset: int, label: str
) -> None:
    fake_slack.users_tz[ALICE] = "America/New_York"
    with time_machine.travel(when, tick=True):
        user = client.users_info(user=ALICE)["user"]
    assert (user["tz"], user["tz_offset"], user["tz_label"]) == ("America/New_York", offset, label)


def test_users_info_zone_without_a_long_label(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.users_tz["W0ENTERPR1"] = "Asia/Kolkata"
    user = client.users_info(user="W0ENTERPR1")["user"]
    assert (user["tz"], user["tz_offset"], user["tz_label"]) == ("Asia/Kolkata", 19800, "IST")


def test_users_info_admin_and_bot(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.users_admin.add(ALICE)
    assert client.users_info(user=ALICE)["user"]["is_admin"] is True
    bot = client.users_info(user=BOT_USER_ID)["user"]
    assert bot["is_admin"] is False and bot["is_bot"] is True


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({}, "invalid_arguments"),
        ({"user": ""}, "invalid_arguments"),
        ({"user": "C0DEPLOYS1"}, "user_not_found"),
        ({"user": "B0GPUBOT1"}, "user_not_found"),
    ],
)
def test_users_info_errors(client: WebClient, params: dict[str, str], error: str) -> None:
    with pytest.raises(SlackApiError) as caught:
        client.api_call("users.info", http_verb="GET", params=params)
    assert caught.value.response["error"] == error


def test_users_info_injected_failure(fake_slack: FakeSlack, client: WebClient) -> None:
    fake_slack.fail("users.info", "ratelimited", status=429, headers={"Retry-After": "3"})
    with pytest.raises(SlackApiError) as caught:
        client.users_info(user=ALICE)
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] == "3"
    assert client.users_info(user=ALICE)["ok"] is True  # only the next call failed
