"""The fake Slack Web API itself (bot/playground/slack_api.py), called over HTTP with slack_sdk:
users.info, and several workspaces (OAuth code exchange, token rotation, revoked and
uninstalled tokens, calls recorded per workspace)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from slack_bolt.oauth.oauth_flow import OAuthFlow
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store import FileInstallationStore, Installation
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.oauth.token_rotation import TokenRotator
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot.playground.slack_api import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlack

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


# -- workspaces, OAuth, tokens -------------------------------------------------------------------

TEAM_A, TEAM_B = "T0ALPHA01", "T0BRAVO02"
TOKEN_A, TOKEN_B = "xoxb-alpha-token", "xoxb-bravo-token"


def _oauth(fake: FakeSlack, **kwargs: Any) -> dict[str, Any]:
    """``oauth.v2.access`` as slack_sdk sends it (credentials by HTTP Basic auth); Slack's
    answer, ok or not."""
    client = WebClient(base_url=fake.api_url)  # no token: Bolt's OAuth flow client
    options = {"client_id": fake.client_id, "client_secret": fake.client_secret, **kwargs}
    try:
        return _data(client.oauth_v2_access(**options))
    except SlackApiError as error:
        return _data(error.response)


def _data(response: SlackResponse) -> dict[str, Any]:
    assert isinstance(response.data, dict)
    return dict(response.data)


def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return str(caught.value.response["error"])


def test_oauth_code_exchange_gives_each_workspace_its_token(fake_slack: FakeSlack) -> None:
    code_a = fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A, installer=ALICE)
    code_b = fake_slack.add_workspace(
        TEAM_B, name="Bravo", bot_token=TOKEN_B, enterprise_id="E0GRID001", code="fixed-code"
    )
    assert code_b == "fixed-code" and code_a != code_b
    answer = _oauth(fake_slack, code=code_a)
    assert answer == {
        "ok": True,
        "app_id": APP_ID,
        "authed_user": {"id": ALICE},
        "scope": "commands,chat:write,chat:write.public,im:write,users:read,files:write",
        "token_type": "bot",
        "access_token": TOKEN_A,
        "bot_user_id": fake_slack.workspaces[TEAM_A].bot_user_id,
        "team": {"id": TEAM_A, "name": "Alpha"},
        "enterprise": None,
        "is_enterprise_install": False,
    }
    (call,) = fake_slack.calls_to("oauth.v2.access")
    assert call.headers["authorization"].startswith("Basic ")  # slack_sdk's way
    assert (call.token, call.team_id) == (None, TEAM_A)
    assert _oauth(fake_slack, code=code_a) == {"ok": False, "error": "invalid_code"}  # once
    grid = _oauth(fake_slack, code=code_b)
    assert grid["access_token"] == TOKEN_B and grid["team"] == {"id": TEAM_B, "name": "Bravo"}
    assert grid["enterprise"] == {"id": "E0GRID001", "name": "Bravo org"}
    assert "refresh_token" not in grid and "expires_in" not in grid

    tested = {}
    for token in (TOKEN_A, TOKEN_B, "xoxb-test-token"):
        tested[token] = _data(WebClient(token=token, base_url=fake_slack.api_url).auth_test())
    assert tested[TOKEN_A] == {
        "ok": True,
        "url": f"https://{TEAM_A.lower()}.slack.com/",
        "team": "Alpha",
        "user": "gpu-bot",
        "team_id": TEAM_A,
        "user_id": fake_slack.workspaces[TEAM_A].bot_user_id,
        "bot_id": fake_slack.workspaces[TEAM_A].bot_id,
        "is_enterprise_install": False,
    }
    assert tested[TOKEN_B]["team_id"] == TEAM_B and tested[TOKEN_B]["enterprise_id"] == "E0GRID001"
    assert tested[TOKEN_A]["bot_id"] != tested[TOKEN_B]["bot_id"] != BOT_ID
    assert tested["xoxb-test-token"]["team_id"] == TEAM_ID  # unregistered: the default one
    assert tested["xoxb-test-token"]["bot_id"] == BOT_ID
    teams = [(c.token, c.team_id, c.enterprise_id) for c in fake_slack.calls_to("auth.test")]
    assert teams == [
        (TOKEN_A, TEAM_A, None),
        (TOKEN_B, TEAM_B, "E0GRID001"),
        ("xoxb-test-token", TEAM_ID, None),
    ]


def test_oauth_refuses_what_slack_refuses(fake_slack: FakeSlack) -> None:
    code = fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A)
    assert _oauth(fake_slack, code=code, client_id="9.9")["error"] == "invalid_client_id"
    assert _oauth(fake_slack, code=code, client_secret="nope")["error"] == "bad_client_secret"
    assert _oauth(fake_slack, code="never-issued")["error"] == "invalid_code"
    assert _oauth(fake_slack, code=code, grant_type="password")["error"] == "invalid_grant_type"
    fake_slack.redirect_uri = "https://bot.example.com/slack/oauth_redirect"
    wrong = _oauth(fake_slack, code=code, redirect_uri="https://evil.example.com/")
    assert wrong == {"ok": False, "error": "bad_redirect_uri"}
    # the refusals did not use the code up; credentials as form fields work too
    client = WebClient(base_url=fake_slack.api_url)
    answer = client.api_call(
        "oauth.v2.access",
        data={
            "client_id": fake_slack.client_id,
            "client_secret": fake_slack.client_secret,
            "code": code,
            "redirect_uri": fake_slack.redirect_uri,
        },
    )
    assert answer["access_token"] == TOKEN_A
    with FakeSlack(client_id="42.43", client_secret="s3") as other:
        code = other.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A)
        assert _oauth(other, code=code)["access_token"] == TOKEN_A
        assert _oauth(fake_slack, code="x", client_id="42.43")["error"] == "invalid_client_id"


def test_token_rotation(fake_slack: FakeSlack) -> None:
    fake_slack.token_expires_in = 60  # TokenRotator refreshes within 2 hours of expiry
    code = fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A, refresh=True)
    first = _oauth(fake_slack, code=code)
    assert first["access_token"] == TOKEN_A and first["expires_in"] == 60
    assert first["refresh_token"].startswith("xoxe-1-")
    assert WebClient(token=TOKEN_A, base_url=fake_slack.api_url).auth_test()["expires_in"] <= 60

    # slack_sdk's own TokenRotator against the fake
    rotator = TokenRotator(
        client_id=fake_slack.client_id,
        client_secret=fake_slack.client_secret,
        client=WebClient(base_url=fake_slack.api_url),
    )
    installation = Installation(
        app_id=APP_ID,
        team_id=TEAM_A,
        user_id=ALICE,
        bot_token=TOKEN_A,
        bot_id=fake_slack.workspaces[TEAM_A].bot_id,
        bot_user_id=fake_slack.workspaces[TEAM_A].bot_user_id,
        bot_refresh_token=first["refresh_token"],
        bot_token_expires_in=60,
    )
    rotated = rotator.perform_token_rotation(installation=installation)
    assert rotated is not None and rotated.bot_token not in (None, TOKEN_A)
    assert rotated.bot_refresh_token not in (None, first["refresh_token"])
    assert fake_slack.current_token(TEAM_A) == rotated.bot_token
    fresh = WebClient(token=rotated.bot_token, base_url=fake_slack.api_url)
    assert fresh.auth_test()["team_id"] == TEAM_A
    # a refresh token works once
    again = _oauth(fake_slack, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again == {"ok": False, "error": "invalid_refresh_token"}
    # an access token past its expiry is refused, the new one still works
    fake_slack.expire(TOKEN_A)
    old = WebClient(token=TOKEN_A, base_url=fake_slack.api_url)
    assert _error(lambda: old.chat_postMessage(channel="C1", text="hi")) == "token_expired"
    assert fresh.chat_postMessage(channel="C1", text="hi")["ok"] is True


def test_revoke_and_uninstall(fake_slack: FakeSlack) -> None:
    fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A, refresh=True)
    code_a = fake_slack.new_code(TEAM_A)
    refresh_a = _oauth(fake_slack, code=code_a)["refresh_token"]
    fake_slack.add_workspace(TEAM_B, name="Bravo", bot_token=TOKEN_B)
    unused_b = fake_slack.new_code(TEAM_B)
    a = WebClient(token=TOKEN_A, base_url=fake_slack.api_url)
    b = WebClient(token=TOKEN_B, base_url=fake_slack.api_url)
    default = WebClient(token="xoxb-test-token", base_url=fake_slack.api_url)

    fake_slack.revoke(TOKEN_B)
    assert _error(lambda: b.chat_postMessage(channel="C1", text="x")) == "token_revoked"
    assert _error(b.auth_test) == "token_revoked"
    assert a.chat_postMessage(channel="C1", text="x")["ok"] is True
    refused = fake_slack.calls_for(TEAM_B, "chat.postMessage")
    assert len(refused) == 1 and refused[0].answer is None

    fake_slack.uninstall(TEAM_A)
    for call in (lambda: a.chat_postMessage(channel="C1", text="x"), a.auth_test):
        assert _error(call) == "account_inactive"
    assert _oauth(fake_slack, grant_type="refresh_token", refresh_token=refresh_a)["error"] == (
        "invalid_refresh_token"
    )
    assert fake_slack.workspaces[TEAM_A].uninstalled
    assert default.chat_postMessage(channel="C1", text="x")["ok"] is True  # others untouched
    assert _oauth(fake_slack, code=unused_b)["access_token"] == TOKEN_B  # B's code still works

    # re-install A through OAuth: a new token that works, the old one stays refused
    again = _oauth(fake_slack, code=fake_slack.new_code(TEAM_A))
    assert again["access_token"] != TOKEN_A and not fake_slack.workspaces[TEAM_A].uninstalled
    new_a = WebClient(token=again["access_token"], base_url=fake_slack.api_url)
    assert new_a.auth_test()["team_id"] == TEAM_A
    assert _error(a.auth_test) == "account_inactive"

    # auth.revoke revokes the token it is called with; uninstalling the default workspace
    # refuses every unregistered token
    assert default.api_call("auth.revoke")["revoked"] is True
    assert _error(default.auth_test) == "token_revoked"
    fake_slack.uninstall(TEAM_ID)
    other = WebClient(token="xoxb-other-default", base_url=fake_slack.api_url)
    assert _error(other.auth_test) == "account_inactive"


def test_calls_record_their_workspace(fake_slack: FakeSlack) -> None:
    fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A)
    fake_slack.add_workspace(
        "T0ORGWIDE", name="Org", bot_token="xoxb-org", enterprise_id="E0ORG0001", org_install=True
    )
    for token in (TOKEN_A, "xoxb-test-token", "xoxb-org"):
        WebClient(token=token, base_url=fake_slack.api_url).chat_postMessage(
            channel="C1", text=token
        )
    posted = [
        (c.args["text"], c.team_id, c.enterprise_id)
        for c in fake_slack.calls_to("chat.postMessage")
    ]
    assert posted == [
        (TOKEN_A, TEAM_A, None),
        ("xoxb-test-token", TEAM_ID, None),
        ("xoxb-org", None, "E0ORG0001"),  # an org-wide token names no single workspace
    ]
    assert [c.args["text"] for c in fake_slack.calls_for(TEAM_A)] == [TOKEN_A]
    org = _data(WebClient(token="xoxb-org", base_url=fake_slack.api_url).auth_test())
    assert org["is_enterprise_install"] is True and org["enterprise_id"] == "E0ORG0001"
    assert org["team_id"] is None
    code = fake_slack.new_code("T0ORGWIDE")
    installed = _oauth(fake_slack, code=code)
    assert installed["team"] is None and installed["is_enterprise_install"] is True
    assert installed["enterprise"] == {"id": "E0ORG0001", "name": "Org org"}

    url = fake_slack.response_url("ra", team_id=TEAM_A)
    WebhookClient(url).send(text="done")
    WebhookClient(fake_slack.response_url("rd")).send(text="done")
    assert [c.team_id for c in fake_slack.calls_to("response_url")] == [TEAM_A, TEAM_ID]


def test_users_info_per_workspace(fake_slack: FakeSlack) -> None:
    fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A)
    fake_slack.add_workspace(TEAM_B, name="Bravo", bot_token=TOKEN_B)
    bob, carol = "U0BOB0002", "U0CAROL03"
    fake_slack.users_team.update({ALICE: TEAM_A, bob: TEAM_A, carol: TEAM_B})
    fake_slack.users_owner.add(ALICE)
    fake_slack.users_admin.add(bob)
    a = WebClient(token=TOKEN_A, base_url=fake_slack.api_url)
    b = WebClient(token=TOKEN_B, base_url=fake_slack.api_url)
    alice = a.users_info(user=ALICE)["user"]
    assert (alice["team_id"], alice["is_owner"], alice["is_admin"]) == (TEAM_A, True, False)
    bob_seen = a.users_info(user=bob)["user"]
    assert (bob_seen["is_owner"], bob_seen["is_admin"]) == (False, True)
    assert b.users_info(user=carol)["user"]["team_id"] == TEAM_B
    # a user of another workspace is not found from this one
    assert _error(lambda: b.users_info(user=ALICE)) == "user_not_found"
    assert _error(lambda: a.users_info(user=carol)) == "user_not_found"
    # a user with no team set belongs to the caller's workspace; each bot user is a bot
    assert b.users_info(user="U0NOBODY9")["user"]["team_id"] == TEAM_B
    bot_b = fake_slack.workspaces[TEAM_B].bot_user_id
    assert b.users_info(user=bot_b)["user"]["is_bot"] is True


def test_users_info_across_one_enterprise(fake_slack: FakeSlack) -> None:
    fake_slack.add_workspace(TEAM_A, name="Alpha", bot_token=TOKEN_A, enterprise_id="E0GRID001")
    fake_slack.add_workspace(TEAM_B, name="Bravo", bot_token=TOKEN_B, enterprise_id="E0GRID001")
    fake_slack.users_team[ALICE] = TEAM_A
    b = WebClient(token=TOKEN_B, base_url=fake_slack.api_url)
    assert b.users_info(user=ALICE)["user"]["team_id"] == TEAM_A  # Grid: one org, shared users


def test_bolt_oauth_flow_installs_from_the_fake(fake_slack: FakeSlack, tmp_path: Path) -> None:
    """Bolt's OAuthFlow.run_installation reads the code exchange and auth.test answers."""
    code = fake_slack.add_workspace(
        TEAM_A, name="Alpha", bot_token=TOKEN_A, enterprise_id="E0GRID001", refresh=True
    )
    flow = OAuthFlow(
        client=WebClient(base_url=fake_slack.api_url),
        settings=OAuthSettings(
            client_id=fake_slack.client_id,
            client_secret=fake_slack.client_secret,
            scopes=fake_slack.scopes.split(","),
            installation_store=FileInstallationStore(base_dir=str(tmp_path / "installs")),
            state_store=FileOAuthStateStore(
                expiration_seconds=600, base_dir=str(tmp_path / "states")
            ),
        ),
    )
    installation = flow.run_installation(code)
    assert installation is not None
    workspace = fake_slack.workspaces[TEAM_A]
    assert (installation.team_id, installation.team_name) == (TEAM_A, "Alpha")
    assert (installation.enterprise_id, installation.is_enterprise_install) == ("E0GRID001", False)
    assert (installation.bot_token, installation.bot_id) == (TOKEN_A, workspace.bot_id)
    assert installation.bot_user_id == workspace.bot_user_id
    assert installation.bot_refresh_token is not None and installation.bot_token_expires_at
    assert installation.user_id == "U0INSTALL1" and installation.app_id == APP_ID
    assert flow.run_installation(code) is None  # the code is used up: invalid_code
