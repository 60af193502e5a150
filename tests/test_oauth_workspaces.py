"""OAuth mode end to end: two workspaces install the real bot through Slack's OAuth
redirect, each sets its own Vast.ai key and rents on its own account, nothing crosses between
them, and one can leave without touching the other.

The real bot runs over HTTP (Bolt + waitress on 127.0.0.1, :mod:`tests.fixtures.oauth`) against
the fake Slack (``oauth.v2.access``, ``auth.test`` per token, ``users.info`` with
``is_admin``) and one Vast.ai simulator with two accounts (:data:`KEY_A` → user 1001,
:data:`KEY_B` → user 1002; requests without a key land on its default account, "the
simulator"). Every test runs on SQLite and, with ``TEST_DATABASE_URL``, on PostgreSQL. The
status poller is ticked by hand on a moved clock.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

import storage
from bot.crypto import EncryptionKeyError, SecretBox
from bot.playground.slack_api import CLIENT_ID, CLIENT_SECRET, Call
from bot.runtime import build_runtime
from bot.services.installs import WELCOME_TEXT
from bot.simulator.server import DEFAULT_USER_ID
from bot.slack.blocks import setup as setup_blocks
from bot.slack.blocks.lifetimes import (
    ACTION_KEEP_RUNNING,
    extend_action_id,
    extend_value,
    keep_value,
)
from bot.slack.blocks.status import ACTION_CREDENTIALS, ACTION_DESTROY, ACTION_START, ACTION_STOP
from bot.slack.blocks.templates import ACTION_DEPLOY
from storage import DeploymentRecord
from tests.blockkit import texts
from tests.fixtures.oauth import (
    ADMIN_A,
    ADMIN_B,
    ALICE_A,
    BOB_B,
    CHANNELS,
    KEY_A,
    KEY_B,
    STATE_COOKIE,
    TEAM_A,
    TEAM_B,
    TOKEN_A,
    TOKEN_B,
    OAuthBot,
    OAuthBotFactory,
    TeamClient,
)
from tests.fixtures.slack import CHANNEL, SIGNING_SECRET, make_settings
from tests.test_deploy import submitted_view, wait_until

ROOT = Path(__file__).resolve().parent.parent
JUPYTER, COMFY = "jupyter-lab", "comfy-ui"
INSTANCE_WRITES = ("PUT", "DELETE")


# -- helpers ---------------------------------------------------------------------------------


def install_both(ob: OAuthBot) -> None:
    for team in (TEAM_A, TEAM_B):
        done = ob.install(team)
        assert done.callback.status_code == 200, done.callback.text
        assert "Thank you!" in done.callback.text


def uninstalled(ob: OAuthBot, team: str) -> None:
    """Wait until the bot recorded that ``team`` left (Bolt runs event listeners after the
    ack)."""
    wait_until(
        lambda: (
            (r := storage.get_workspace(ob.services.session_factory, team))
            and r.uninstalled_at is not None
        )
    )


def tokens_of(calls: list[Call]) -> set[str | None]:
    return {call.token for call in calls}


def setup_state(key: str | None, *, default: str = "8", maximum: str = "72") -> dict[str, Any]:
    """The setup modal's ``state`` as Slack sends it: a key and the lifetimes."""
    return {
        "values": {
            setup_blocks.BLOCK_KEY: {
                setup_blocks.ACTION_KEY: {"type": "plain_text_input", "value": key}
            },
            setup_blocks.BLOCK_ADMINS: {
                setup_blocks.ACTION_ADMINS: {"type": "multi_users_select", "selected_users": []}
            },
            setup_blocks.BLOCK_APPROVERS: {
                setup_blocks.ACTION_APPROVERS: {
                    "type": "multi_users_select",
                    "selected_users": [],
                }
            },
            setup_blocks.BLOCK_DIGEST: {
                setup_blocks.ACTION_DIGEST: {
                    "type": "conversations_select",
                    "selected_conversation": None,
                }
            },
            setup_blocks.BLOCK_APPROVAL_DPH: {
                setup_blocks.ACTION_APPROVAL_DPH: {"type": "number_input", "value": None}
            },
            setup_blocks.BLOCK_DEFAULT_LIFETIME: {
                setup_blocks.ACTION_DEFAULT_LIFETIME: {"type": "number_input", "value": default}
            },
            setup_blocks.BLOCK_MAX_LIFETIME: {
                setup_blocks.ACTION_MAX_LIFETIME: {"type": "number_input", "value": maximum}
            },
        }
    }


def open_setup(ob: OAuthBot, team: str, user: str) -> Call:
    """``/templates setup`` by ``user`` of ``team``: the ``views.open`` call it made."""
    before = len(ob.slack.calls_to("views.open"))
    assert ob.team(team).command("setup", user=user).status_code == 200
    return ob.slack.wait_for("views.open", count=before + 1)[-1]


def set_key(ob: OAuthBot, team: str, key: str | None, **lifetimes: str) -> dict[str, Any]:
    """A workspace admin of ``team`` enters ``key`` in the setup modal; the submission's ack."""
    admin = ADMIN_A if team == TEAM_A else ADMIN_B
    opened = open_setup(ob, team, admin)
    view = dict(opened.args["view"])
    sent = {**view, "id": f"V0SETUP{team}", "state": setup_state(key, **lifetimes)}
    response = ob.team(team).view_submission(sent, user=admin)
    assert response.status_code == 200
    return dict(response.json()) if response.content else {}


def offer_option(view: dict[str, Any]) -> dict[str, Any]:
    """The first offer the picker shows (its option, as Slack echoes it on submit)."""
    for block in view.get("blocks") or []:
        if block.get("block_id") == "offer_block":
            element = block["element"]
            if element.get("initial_option"):
                return dict(element["initial_option"])
            groups = element.get("option_groups") or [{"options": element.get("options")}]
            return dict(groups[0]["options"][0])
    raise AssertionError(f"the picker shows no offer: {json.dumps(view)[:400]}")


def deploy(
    ob: OAuthBot, team: str, user: str, slug: str = JUPYTER, *, enterprise_id: str | None = None
) -> DeploymentRecord:
    """Deploy ``slug`` in ``team`` as a user does: **Deploy** → the picker (``views.open``,
    then ``views.update`` with live offers) → submit the first offer. Returns the row once
    Vast.ai answered."""
    client = ob.team(team, enterprise_id=enterprise_id)
    opens = len(ob.slack.calls_to("views.open"))
    assert client.block_action(ACTION_DEPLOY, slug, user=user).status_code == 200
    opened = ob.slack.wait_for("views.open", count=opens + 1)[-1]
    assert opened.token == ob.slack.current_token(team)
    view_id = opened.answer["view"]["id"] if opened.answer else None
    assert view_id
    picker = wait_until(
        lambda: (
            (shown := ob.slack.views.get(view_id))
            and any(b.get("block_id") == "offer_block" for b in shown.get("blocks") or [])
            and shown
        )
    )
    option = offer_option(picker)
    view = submitted_view(
        None,
        slug=slug,
        disk=str(ob.services.catalog.get(slug).disk_gb),
        channel=CHANNELS.get(team, CHANNEL),
        view_id=view_id,
        metadata=picker["private_metadata"],
    )
    view["state"]["values"]["offer_block"] = {
        "gpu_offer": {"type": "static_select", "selected_option": option}
    }
    before = {d.id for d in storage.list_for_team(ob.services.session_factory, team)}
    response = client.view_submission(view, user=user)
    assert response.status_code == 200, response.text
    answer = response.json()
    # On a loaded machine the answer may miss the ack budget: the modal then says "checking…"
    # (deploy_working) and the deployment goes on; both are the accepted path.
    working = answer.get("response_action") == "update" and any(
        b.get("block_id") == "deploy_working" for b in answer["view"]["blocks"]
    )
    assert answer == {"response_action": "clear"} or working, answer

    def created() -> DeploymentRecord | None:
        for dep in storage.list_for_team(ob.services.session_factory, team):
            if dep.id not in before and dep.status != "creating" and dep.instance_id:
                return dep
        return None

    dep = wait_until(created)
    assert isinstance(dep, DeploymentRecord)
    return dep


def current(ob: OAuthBot, dep: DeploymentRecord) -> DeploymentRecord:
    record = storage.get_deployment(ob.services.session_factory, dep.id)
    assert record is not None
    return record


def tick(ob: OAuthBot, *, seconds: float = 30) -> None:
    """Move Vast.ai and the bot's clock on, then one poller tick."""
    ob.sim.advance(seconds)
    ob.clock.advance(seconds=seconds)
    ob.services.poller.tick()


def ready(ob: OAuthBot, *deps: DeploymentRecord) -> None:
    for _ in range(4):
        tick(ob, seconds=4)
        if all(current(ob, dep).status == "ready" for dep in deps):
            return
    raise AssertionError([current(ob, dep).status for dep in deps])


def status_posts(ob: OAuthBot, dep: DeploymentRecord) -> list[Call]:
    """The status message of ``dep`` and its edits."""
    return [
        call
        for call in ob.slack.calls
        if call.method in ("chat.postMessage", "chat.update")
        and call.args.get("channel") == dep.message_channel
        and (call.method == "chat.postMessage" or call.args.get("ts") == dep.message_ts)
        and not call.args.get("thread_ts")
    ]


def instance_writes(ob: OAuthBot, instance_id: int | None) -> list[Any]:
    """Stop/start/label (PUT) and destroy (DELETE) requests the simulator got for
    ``instance_id``."""
    return [
        r
        for r in ob.sim.requests
        if r.method in INSTANCE_WRITES and r.path == f"/api/v0/instances/{instance_id}/"
    ]


def answer_text(response: Any) -> str:
    """An ephemeral ack's whole text (text and blocks)."""
    body = response.json() if response.content else {}
    return json.dumps(body, ensure_ascii=False)


def two_rented(ob: OAuthBot) -> tuple[DeploymentRecord, DeploymentRecord]:
    """Both workspaces installed with their own keys; A rents JupyterLab, B ComfyUI; both
    ready."""
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    assert set_key(ob, TEAM_B, KEY_B) == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A, JUPYTER)
    b = deploy(ob, TEAM_B, BOB_B, COMFY)
    ready(ob, a, b)
    return current(ob, a), current(ob, b)


# -- 1. installing through the OAuth redirect ------------------------------------------------


def test_two_workspaces_install_through_the_oauth_redirect(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    store = ob.harness.runtime.app.installation_store
    for team, token, admin in ((TEAM_A, TOKEN_A, ADMIN_A), (TEAM_B, TOKEN_B, ADMIN_B)):
        done = ob.install(team)
        assert done.page.status_code == 200
        assert "Add to Slack" in done.page.text
        assert done.state and done.cookie == done.state  # the link's state, in Bolt's cookie
        assert f"client_id={CLIENT_ID}" in done.page.text
        assert "chat:write" in done.page.text and "users:read" in done.page.text
        assert done.callback.status_code == 200
        assert "Thank you!" in done.callback.text and f"team={team}" in done.callback.text
        assert CLIENT_SECRET not in done.callback.text and token not in done.callback.text

        installation = store.find_installation(enterprise_id=None, team_id=team)
        assert installation is not None and installation.bot_token == token
        record = storage.get_workspace(ob.services.session_factory, team)
        assert record is not None
        assert record.installed_at is not None and record.uninstalled_at is None
        assert record.team_name == {TEAM_A: "Team A", TEAM_B: "Team B"}[team]
        assert record.vast_key_ciphertext is None  # the simulator until an admin adds a key
        welcome = ob.slack.wait_for("chat.postMessage", channel="D" + admin[1:])[-1]
        assert welcome.args["text"] == WELCOME_TEXT
        assert (welcome.token, welcome.team_id) == (token, team)
    # The exchange went to the fake with the app's credentials, one per workspace.
    exchanges = ob.slack.calls_to("oauth.v2.access")
    assert [call.team_id for call in exchanges] == [TEAM_A, TEAM_B]
    assert all(call.answer for call in exchanges)
    # Nothing was ever sent with a token of one workspace to the other.
    for call in ob.slack.calls:
        if call.token in (TOKEN_A, TOKEN_B):
            assert call.team_id == (TEAM_A if call.token == TOKEN_A else TEAM_B)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no state", "invalid_browser"),
        ("no cookie", "invalid_browser"),
        ("another state", "invalid_browser"),
        ("unknown state", "invalid_state"),
        ("state used twice", "invalid_state"),
    ],
)
def test_a_bad_or_missing_state_installs_nothing(
    oauth_bot: OAuthBot, case: str, reason: str
) -> None:
    ob = oauth_bot
    code = ob.slack.add_workspace(TEAM_A, name="Team A", bot_token=TOKEN_A, installer=ADMIN_A)
    _, state, cookie = ob.install_page()
    assert state and cookie
    if case == "no state":
        response = ob.callback(code=code, state=None, cookie=cookie)
    elif case == "no cookie":
        response = ob.callback(code=code, state=state, cookie=None)
    elif case == "another state":  # another browser's install page
        _, other, _ = ob.install_page()
        response = ob.callback(code=code, state=other, cookie=cookie)
    elif case == "unknown state":  # a cookie and state Bolt never issued
        response = ob.callback(code=code, state="forged-state", cookie="forged-state")
    else:  # replayed: the first use installed workspace B, the second must not install A
        first = ob.slack.add_workspace(TEAM_B, name="Team B", bot_token=TOKEN_B)
        assert ob.callback(code=first, state=state, cookie=cookie).status_code == 200
        response = ob.callback(code=code, state=state, cookie=cookie)
    assert response.status_code >= 400
    assert "Oops, Something Went Wrong!" in response.text and reason in response.text
    assert f"{STATE_COOKIE}=deleted" in response.headers.get("set-cookie", "")
    store = ob.harness.runtime.app.installation_store
    assert store.find_installation(enterprise_id=None, team_id=TEAM_A) is None
    assert storage.get_workspace(ob.services.session_factory, TEAM_A) is None
    assert [c.team_id for c in ob.slack.calls_to("oauth.v2.access")] == (
        [TEAM_B] if case == "state used twice" else []
    )  # the code was never exchanged
    assert TOKEN_A not in tokens_of(ob.slack.calls)


def test_a_request_from_a_workspace_that_never_installed_is_not_served(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    ob.install(TEAM_A)
    ob.slack.reset()
    response = ob.team("TC0OTHER3").command("setup", user="U0CAROL03")
    assert response.status_code == 200  # Bolt: no installation, said on the response_url
    (said,) = ob.slack.wait_for("response_url")
    assert "reinstall this app" in said.args["text"] and said.team_id == "TC0OTHER3"
    ob.harness.settle()
    assert [c.method for c in ob.slack.calls] == ["response_url"]


# -- 2. each workspace's requests, each workspace's token ------------------------------------


def test_each_workspaces_requests_are_answered_with_its_own_token(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    install_both(ob)
    ob.slack.reset()
    for team, token, admin in ((TEAM_A, TOKEN_A, ADMIN_A), (TEAM_B, TOKEN_B, ADMIN_B)):
        opened = open_setup(ob, team, admin)  # slash command → modal
        assert (opened.token, opened.team_id) == (token, team)
        assert opened.args["view"]["callback_id"] == setup_blocks.CALLBACK_SETUP
        # Slack roles (and membership) are read in the workspace asked about, with its token.
        reads = [c for c in ob.slack.calls_to("users.info") if c.args.get("user") == admin]
        assert reads and {(c.token, c.team_id) for c in reads} == {(token, team)}
        before = len(ob.slack.calls_to("views.open"))
        assert ob.team(team).block_action(ACTION_DEPLOY, JUPYTER, user=admin).status_code == 200
        picker = ob.slack.wait_for("views.open", count=before + 1)[-1]  # button → picker
        assert (picker.token, picker.team_id) == (token, team)
        updated = ob.slack.wait_for("views.update", view_id=picker.answer["view"]["id"])
        assert tokens_of(updated) == {token}
    # A member of A is not an admin of A, and an admin of B is nobody in A.
    for user, said in ((ALICE_A, "Only workspace admins"), (ADMIN_B, "not a member")):
        before = len(ob.slack.calls_to("views.open"))
        assert ob.team(TEAM_A).command("setup", user=user).status_code == 200
        refusal = ob.slack.wait_for("response_url", count=1, timeout=5)[-1]
        assert said in refusal.args["text"]
        assert len(ob.slack.calls_to("views.open")) == before
        ob.slack.reset()
    assert {c.token for c in ob.slack.calls if c.team_id == TEAM_A and c.token} <= {TOKEN_A}


# -- 3. a Vast.ai account per workspace ------------------------------------------------------


def test_each_workspace_rents_on_its_own_vast_account(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    a, b = two_rented(ob)
    assert ob.sim.account_of(a.instance_id or 0) == 1001
    assert ob.sim.account_of(b.instance_id or 0) == 1002
    assert not a.simulated and not b.simulated
    assert (a.team_id, b.team_id) == (TEAM_A, TEAM_B)
    for dep, token, team in ((a, TOKEN_A, TEAM_A), (b, TOKEN_B, TEAM_B)):
        posts = status_posts(ob, dep)
        methods = [call.method for call in posts]
        assert methods[0] == "chat.postMessage" and "chat.update" in methods
        assert {(call.token, call.team_id) for call in posts} == {(token, team)}
        assert all("simulated" not in texts(call.args.get("blocks") or []) for call in posts)
        assert "Ready" in texts(posts[-1].args["blocks"])
        assert dep.message_channel == CHANNELS[team]
    # Each confirmation DM went to its admin, in its workspace.
    for admin, token in ((ADMIN_A, TOKEN_A), (ADMIN_B, TOKEN_B)):
        (saved,) = [
            c
            for c in ob.slack.calls_to("chat.postMessage")
            if "Saved. Vast.ai key ending" in str(c.args.get("text"))
            and c.args.get("channel") == "D" + admin[1:]
        ]
        assert saved.token == token
    assert KEY_A not in json.dumps([c.args for c in ob.slack.calls])
    assert KEY_B not in json.dumps([c.args for c in ob.slack.calls])


def test_a_workspace_without_a_key_deploys_on_the_simulator_and_says_so(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    assert set_key(ob, TEAM_B, KEY_B) == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A)
    b = deploy(ob, TEAM_B, BOB_B)
    assert a.simulated and ob.sim.account_of(a.instance_id or 0) == DEFAULT_USER_ID
    assert not b.simulated and ob.sim.account_of(b.instance_id or 0) == 1002
    (post_a,) = [c for c in status_posts(ob, a) if c.method == "chat.postMessage"]
    assert "simulated" in texts(post_a.args["blocks"]) and post_a.token == TOKEN_A
    (post_b,) = [c for c in status_posts(ob, b) if c.method == "chat.postMessage"]
    assert "simulated" not in texts(post_b.args["blocks"]) and post_b.token == TOKEN_B


# -- 4. nothing crosses ----------------------------------------------------------------------


def test_commands_of_one_workspace_show_nothing_of_the_other(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    a, b = two_rented(ob)
    ob.sim.set_credit(KEY_A, 11.25)
    ob.sim.set_credit(KEY_B, 97.5)
    for user in (ADMIN_A, ALICE_A):
        for sub in ("running", "mine"):
            shown = answer_text(ob.team(TEAM_A).command(sub, user=user))
            assert "ComfyUI" not in shown and f"#{b.id}" not in shown, (sub, user)
            assert BOB_B not in shown
    own = answer_text(ob.team(TEAM_A).command("running", user=ADMIN_A))
    assert "JupyterLab" in own and f"#{a.id}" in own
    assert "ComfyUI" in answer_text(ob.team(TEAM_B).command("running", user=ADMIN_B))

    ob.clock.advance(hours=2)  # both bill for a while
    costs_a = answer_text(ob.team(TEAM_A).command("costs", user=ADMIN_A))
    costs_b = answer_text(ob.team(TEAM_B).command("costs", user=ADMIN_B))
    assert ALICE_A in costs_a and BOB_B not in costs_a and "ComfyUI" not in costs_a
    assert BOB_B in costs_b and ALICE_A not in costs_b and "JupyterLab" not in costs_b

    credit_a = answer_text(ob.team(TEAM_A).command("credit", user=ADMIN_A))
    credit_b = answer_text(ob.team(TEAM_B).command("credit", user=ADMIN_B))
    assert "$11.25" in credit_a and "$97.50" not in credit_a
    assert "$97.50" in credit_b and "$11.25" not in credit_b
    # B's admin is nobody in A: A's balance is not theirs to see.
    refused = answer_text(ob.team(TEAM_A).command("credit", user=ADMIN_B))
    assert "$11.25" not in refused


@pytest.mark.parametrize(
    "action_id", [ACTION_STOP, ACTION_START, ACTION_DESTROY, ACTION_CREDENTIALS]
)
def test_a_forged_button_naming_the_other_workspaces_deployment_is_not_found(
    oauth_bot: OAuthBot, action_id: str
) -> None:
    ob = oauth_bot
    a, b = two_rented(ob)
    # What the rentals still have in flight (Home refreshes, status edits) is sent before the
    # record is cleared, so every call after it is the forged click's.
    ob.harness.settle()
    assert ob.services.messages.outbox.drain(5)
    events_before = storage.list_events(ob.services.session_factory, b.id)
    ob.sim.clear_requests()
    ob.slack.reset()
    # A's admin (a bot admin in A) clicks a button naming B's deployment, in a message and
    # in the Home tab.
    response = ob.team(TEAM_A).block_action(action_id, str(b.id), user=ADMIN_A)
    assert response.status_code == 200
    answer = ob.slack.wait_for("response_url")[-1]
    assert answer.args["text"] == "That deployment no longer exists in the bot.", (
        "a block_actions naming another workspace's deployment must be refused as not found"
    )
    home_view = {"id": "V0HOMEA01", "type": "home", "blocks": []}
    ob.team(TEAM_A).block_action(
        action_id, str(b.id), user=ADMIN_A, view=home_view, block_id="home_dep"
    )
    home = ob.slack.wait_for("views.publish", user_id=ADMIN_A)[-1]
    assert (home.token, home.args["user_id"]) == (TOKEN_A, ADMIN_A)
    assert "no longer exists" in json.dumps(home.args["view"])
    ob.harness.settle()
    assert instance_writes(ob, b.instance_id) == [], "a forged button reached Vast.ai"
    assert [r.path for r in ob.sim.requests if "/instances/" in r.path] == []
    assert current(ob, b).status == "ready"
    assert storage.list_events(ob.services.session_factory, b.id) == events_before
    assert not [c for c in ob.slack.calls if c.token == TOKEN_B], "B was told of A's click"
    if b.web_password:  # B's login went to nobody
        assert b.web_password not in json.dumps([c.args for c in ob.slack.calls])
    # A's own deployment answers the same click (the check is the workspace, not the button).
    ob.team(TEAM_A).block_action(ACTION_STOP, str(a.id), user=ADMIN_A)
    wait_until(lambda: current(ob, a).status == "stopped")


def test_forged_extend_and_keep_running_of_the_other_workspace_change_nothing(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    _, b = two_rented(ob)
    before = current(ob, b)
    ob.slack.reset()
    ends = before.ends_at or ob.clock()
    client: TeamClient = ob.team(TEAM_A)
    client.block_action(
        extend_action_id(4), extend_value(b.id, 4, ends), user=ADMIN_A, is_ephemeral=False
    )
    client.block_action(
        ACTION_KEEP_RUNNING, keep_value(b.id, ob.clock()), user=ADMIN_A, is_ephemeral=False
    )
    answers = ob.slack.wait_for("response_url", count=2)
    assert all("no longer exists" in str(c.args.get("text")) for c in answers), [
        c.args for c in answers
    ]
    after = current(ob, b)
    assert (after.ends_at, after.lifetime_hours) == (before.ends_at, before.lifetime_hours)


def test_app_home_shows_only_the_workspaces_own(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    a, b = two_rented(ob)
    ob.clock.advance(hours=1)
    # B rents by hand on its own account: only B's admins may hear of it.
    by_hand = ob.sim.create_instance_directly(api_key=KEY_B, label="bob's own box")
    tick(ob, seconds=200)
    ob.slack.reset()
    for user in (ADMIN_A, ALICE_A):
        response = ob.team(TEAM_A).event({"type": "app_home_opened", "user": user, "tab": "home"})
        assert response.status_code == 200
        home = ob.slack.wait_for("views.publish", user_id=user)[-1]
        assert (home.token, home.team_id) == (TOKEN_A, TEAM_A)
        shown = json.dumps(home.args["view"], ensure_ascii=False)
        assert "ComfyUI" not in shown and f"#{b.id}" not in shown
        assert str(by_hand) not in shown and "bob's own box" not in shown, (
            "A's Home lists an instance rented by hand on B's Vast.ai account"
        )
    shown_b = ob.team(TEAM_B).event({"type": "app_home_opened", "user": ADMIN_B, "tab": "home"})
    assert shown_b.status_code == 200
    home_b = ob.slack.wait_for("views.publish", user_id=ADMIN_B)[-1]
    assert home_b.token == TOKEN_B
    running_a = answer_text(ob.team(TEAM_A).command("running", user=ADMIN_A))
    assert str(by_hand) not in running_a, "A's /templates running lists B's unmanaged instance"
    running_b = answer_text(ob.team(TEAM_B).command("running", user=ADMIN_B))
    assert str(by_hand) in running_b
    assert a.id  # A's own is listed for A's user
    assert "JupyterLab" in json.dumps(
        ob.slack.wait_for("views.publish", user_id=ALICE_A)[-1].args["view"]
    )


# -- 5. leaving ------------------------------------------------------------------------------


def test_uninstalling_a_stops_posting_there_and_leaves_b_untouched(
    oauth_bot_factory: OAuthBotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ob = oauth_bot_factory(on_expiry="stop")
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    # B's lifetimes are longer than A's: A expires while B keeps running.
    assert set_key(ob, TEAM_B, KEY_B, default="48") == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A, JUPYTER)
    b = deploy(ob, TEAM_B, BOB_B, COMFY)
    ready(ob, a, b)
    a, b = current(ob, a), current(ob, b)
    assert a.lifetime_hours == 8 and b.lifetime_hours == 48

    response = ob.uninstall(TEAM_A)
    assert response.status_code == 200
    uninstalled(ob, TEAM_A)
    store = ob.harness.runtime.app.installation_store
    assert store.find_installation(enterprise_id=None, team_id=TEAM_A) is None
    assert store.find_bot(enterprise_id=None, team_id=TEAM_A) is None
    assert store.find_installation(enterprise_id=None, team_id=TEAM_B) is not None
    record = storage.get_workspace(ob.services.session_factory, TEAM_A)
    assert record is not None and record.uninstalled_at is not None
    assert record.vast_key_ciphertext is not None  # kept: its lifetimes still need it
    other = storage.get_workspace(ob.services.session_factory, TEAM_B)
    assert other is not None and other.uninstalled_at is None
    assert [d.id for d in storage.list_for_team(ob.services.session_factory, TEAM_A)] == [a.id]

    mark = len(ob.slack.calls)
    caplog.clear()
    caplog.set_level(logging.INFO)
    # A's instance is stopped by Vast.ai and B's exits: both rows change (B stays ready, its
    # disk kept, with Vast.ai's message shown until the exited-container rule stops it).
    ob.sim.stop_by_vast(a.instance_id or 0)
    ob.sim.exit_instance(b.instance_id or 0)
    for _ in range(3):
        tick(ob, seconds=30)
    assert current(ob, a).status != "ready" and current(ob, b).status_msg != b.status_msg
    assert ob.services.messages.outbox.drain(5)  # it sends edits on its own threads
    after = ob.slack.calls[mark:]
    assert not [c for c in after if c.token == TOKEN_A or c.team_id == TEAM_A], (
        "something was sent to the uninstalled workspace: "
        f"{[(c.method, c.token) for c in after if c.team_id == TEAM_A]}"
    )
    b_updates = [c for c in after if c.method == "chat.update" and c.args.get("ts") == b.message_ts]
    assert b_updates and tokens_of(b_updates) == {TOKEN_B}
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, [r.getMessage() for r in errors]

    # Each message for A was tried once and dropped, not retried tick after tick.
    def not_sent_to_a() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "not sent" in r.getMessage() and TEAM_A in r.getMessage()
        ]

    dropped = not_sent_to_a()
    assert dropped and all("has no installation" in line for line in dropped)
    for _ in range(3):
        tick(ob, seconds=30)
    assert ob.services.messages.outbox.drain(5)
    assert not_sent_to_a() == dropped
    assert [d.id for d in storage.list_for_team(ob.services.session_factory, TEAM_A)] == [a.id]


@pytest.mark.parametrize("on_expiry", ["stop", "destroy"])
def test_an_uninstalled_workspaces_ready_deployment_expires_on_its_own_account(
    oauth_bot_factory: OAuthBotFactory, on_expiry: str
) -> None:
    ob = oauth_bot_factory(on_expiry=on_expiry)
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A, default="1") == {"response_action": "clear"}
    assert set_key(ob, TEAM_B, KEY_B, default="48") == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A, JUPYTER)
    b = deploy(ob, TEAM_B, BOB_B, COMFY)
    ready(ob, a, b)
    assert ob.uninstall(TEAM_A).status_code == 200
    uninstalled(ob, TEAM_A)
    mark = len(ob.slack.calls)
    ob.clock.advance(hours=2)  # A's 1 h is long over; B has 46 h left
    for _ in range(3):
        tick(ob, seconds=30)
    path = f"/api/v0/instances/{a.instance_id}/"
    if on_expiry == "destroy":
        wait_until(lambda: current(ob, a).status == "destroyed")
        assert a.instance_id not in ob.sim.instances_of(KEY_A)  # destroyed on account 1001
        deletes = [r.path for r in ob.sim.requests if r.method == "DELETE"]
        assert deletes == [path]
    else:
        wait_until(lambda: current(ob, a).status == "stopped")
        stopped = ob.sim.instances_of(KEY_A)[a.instance_id or 0]  # on account 1001
        assert stopped["intended_status"] == "stopped"
        puts = [r.path for r in ob.sim.requests if r.method == "PUT" and "/instances/" in r.path]
        assert puts == [path]
    assert current(ob, b).status == "ready"
    assert b.instance_id in ob.sim.instances_of(KEY_B)
    assert not [c for c in ob.slack.calls[mark:] if c.token == TOKEN_A or c.team_id == TEAM_A]


def test_tokens_revoked_for_the_bot_uninstalls_and_a_user_token_does_not(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    store = ob.harness.runtime.app.installation_store
    # Only a user token revoked: the bot stays.
    response = ob.team(TEAM_B).event(
        {"type": "tokens_revoked", "tokens": {"oauth": ["U0BOBBBB2"], "bot": []}}
    )
    assert response.status_code == 200
    ob.harness.settle()  # Bolt runs event listeners after the ack
    assert store.find_bot(enterprise_id=None, team_id=TEAM_B) is not None
    record = storage.get_workspace(ob.services.session_factory, TEAM_B)
    assert record is not None and record.uninstalled_at is None
    # The bot token revoked: B is uninstalled, A untouched.
    bot_user = ob.slack.workspaces[TEAM_B].bot_user_id
    ob.slack.revoke(TOKEN_B)
    response = ob.team(TEAM_B).event(
        {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [bot_user]}}, bot_user=bot_user
    )
    assert response.status_code == 200
    uninstalled(ob, TEAM_B)
    assert store.find_bot(enterprise_id=None, team_id=TEAM_B) is None
    assert store.find_installation(enterprise_id=None, team_id=TEAM_B) is None, (
        "the revoked bot token is still in B's installation: Bolt's authorize and the bot's "
        "own messages would keep using it"
    )
    assert store.find_bot(enterprise_id=None, team_id=TEAM_A) is not None
    ob.slack.reset()
    opened = open_setup(ob, TEAM_A, ADMIN_A)
    assert opened.token == TOKEN_A
    # B's requests are no longer served (no installation), nothing goes out with its token,
    # neither an answer nor a message the bot sends on its own.
    assert ob.team(TEAM_B).command("setup", user=ADMIN_B).status_code == 200
    (said,) = ob.slack.wait_for("response_url")
    assert "reinstall this app" in said.args["text"]
    ob.services.messages.dm(ADMIN_B, "anything", team_id=TEAM_B)
    ob.services.messages.dm(ADMIN_A, "still here", team_id=TEAM_A)
    assert ob.slack.wait_for("chat.postMessage", text="still here")[-1].token == TOKEN_A
    assert TOKEN_B not in tokens_of(ob.slack.calls), [
        (c.method, c.args) for c in ob.slack.calls if c.token == TOKEN_B
    ]


def test_a_workspace_installs_again_after_leaving(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    install_both(ob)
    assert ob.uninstall(TEAM_A).status_code == 200
    wait_until(
        lambda: (
            (r := storage.get_workspace(ob.services.session_factory, TEAM_A))
            and r.uninstalled_at is not None
        )
    )
    code = ob.slack.new_code(TEAM_A)
    new_token = ob.slack.current_token(TEAM_A)
    assert new_token != TOKEN_A
    _, state, cookie = ob.install_page()
    assert ob.callback(code=code, state=state, cookie=cookie).status_code == 200
    record = storage.get_workspace(ob.services.session_factory, TEAM_A)
    assert record is not None and record.uninstalled_at is None
    ob.slack.reset()
    assert open_setup(ob, TEAM_A, ADMIN_A).token == new_token
    a = deploy(ob, TEAM_A, ALICE_A)
    (post,) = [c for c in status_posts(ob, a) if c.method == "chat.postMessage"]
    assert post.token == new_token


# -- 6. the key at rest ----------------------------------------------------------------------


def test_the_key_is_stored_encrypted_and_another_encryption_key_stops_the_start(
    oauth_bot: OAuthBot, database_url: str, tmp_path: Path
) -> None:
    ob = oauth_bot
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    record = storage.get_workspace(ob.services.session_factory, TEAM_A)
    assert record is not None and record.vast_key_ciphertext
    assert KEY_A not in record.vast_key_ciphertext and record.vast_key_last4 == "a1b2"
    assert SecretBox(ob.encryption_key).decrypt(record.vast_key_ciphertext) == KEY_A
    with ob.harness.runtime.engine.connect() as connection:
        for table in ("workspaces", "team_events", "bot_state"):
            dumped = json.dumps(
                [list(map(str, row)) for row in connection.execute(text(f"SELECT * FROM {table}"))]
            )
            assert KEY_A not in dumped, table

    other = Fernet.generate_key().decode()
    settings = make_settings(
        ob.slack,
        slack_bot_token=None,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        encryption_key=other,
        database_url=database_url,
        vast_api_url=ob.sim.base_url,
    )
    with pytest.raises(EncryptionKeyError) as refused:
        build_runtime(settings)
    message = str(refused.value)
    assert "\n" not in message and "ENCRYPTION_KEY does not decrypt" in message
    assert other not in message and ob.encryption_key not in message

    if not database_url.startswith("sqlite"):
        return  # the process is the same on PostgreSQL; once is enough
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "SLACK_CLIENT_ID": CLIENT_ID,
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": ob.slack.api_url,
        "ENCRYPTION_KEY": other,
        "DATABASE_URL": database_url,
        "VAST_API_URL": str(ob.sim.base_url),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "Cannot start: ENCRYPTION_KEY does not decrypt the secrets stored in the database: set "
        "the key they were saved with (1 workspace Vast.ai key, 2 Slack bot tokens; "
        "docs/SLACK_APP.md › A lost or changed ENCRYPTION_KEY)"
    )
    assert "Traceback" not in result.stderr
    assert other not in result.stderr and ob.encryption_key not in result.stderr


# -- 7. a bad key ----------------------------------------------------------------------------


def test_a_bad_vast_key_in_setup_is_an_inline_error_and_saves_nothing(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    ack = set_key(ob, TEAM_A, "0" * 60 + "dead", default="4")
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {setup_blocks.BLOCK_KEY}
    assert "Vast.ai did not accept this key" in ack["errors"][setup_blocks.BLOCK_KEY]
    record = storage.get_workspace(ob.services.session_factory, TEAM_A)
    assert record is not None  # the install's row
    assert record.vast_key_ciphertext is None and record.settings == {}
    assert ob.services.workspaces.stored_key(TEAM_A) is None
    assert ob.services.workspaces.settings_for(TEAM_A).simulated
    # B's key is B's: A's failure saved nothing there either.
    assert ob.services.workspaces.stored_key(TEAM_B) is None


# -- Enterprise Grid -------------------------------------------------------------------------

ORG, TEAM_ORG, TOKEN_ORG, ADMIN_ORG = "E0ORG0001", "TD0ORG001", "xoxb-org-0003-secret", "U0ORGADM1"


def test_an_org_wide_install_serves_its_workspaces_requests_and_the_bots_own_messages(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    code = ob.slack.add_workspace(
        TEAM_ORG,
        name="Org workspace",
        bot_token=TOKEN_ORG,
        enterprise_id=ORG,
        org_install=True,
        installer=ADMIN_ORG,
    )
    _, state, cookie = ob.install_page()
    done = ob.callback(code=code, state=state, cookie=cookie)
    assert done.status_code == 200 and "Thank you!" in done.text
    store = ob.harness.runtime.app.installation_store
    org_wide = store.find_installation(enterprise_id=ORG, team_id=None, is_enterprise_install=True)
    assert org_wide is not None and org_wide.bot_token == TOKEN_ORG
    member = ob.team(TEAM_ORG, enterprise_id=ORG)
    dep = deploy(ob, TEAM_ORG, ADMIN_ORG, enterprise_id=ORG)
    assert (dep.team_id, dep.enterprise_id) == (TEAM_ORG, ORG)
    ready(ob, dep)
    assert ob.services.messages.outbox.drain(5)
    posts = status_posts(ob, current(ob, dep))
    assert tokens_of(posts) == {TOKEN_ORG}
    assert "chat.update" in [c.method for c in posts], (
        "the status message of a workspace served by an org-wide install is never edited"
    )
    assert member.event({"type": "app_home_opened", "user": ADMIN_ORG, "tab": "home"})
    home = ob.slack.wait_for("views.publish", user_id=ADMIN_ORG)[-1]
    assert home.token == TOKEN_ORG
    ob.services.messages.dm(ADMIN_ORG, "hello org", team_id=TEAM_ORG)
    assert ob.slack.wait_for("chat.postMessage", text="hello org")[-1].token == TOKEN_ORG
    record = storage.get_workspace(ob.services.session_factory, TEAM_ORG)
    assert record is not None and record.enterprise_id == ORG  # recorded on its first request
    # The org removes the app: its workspaces are recorded as left, nothing more is sent.
    ob.slack.uninstall(TEAM_ORG)
    assert member.event({"type": "app_uninstalled"}).status_code == 200
    uninstalled(ob, TEAM_ORG)
    assert (
        store.find_installation(enterprise_id=ORG, team_id=None, is_enterprise_install=True) is None
    )
    mark = len(ob.slack.calls)
    ob.services.messages.dm(ADMIN_ORG, "gone", team_id=TEAM_ORG)
    ob.services.home.refresh(ADMIN_ORG, TEAM_ORG)
    assert ob.services.messages.outbox.drain(5)
    assert not [c for c in ob.slack.calls[mark:] if c.token == TOKEN_ORG]


# -- token rotation --------------------------------------------------------------------------


def test_rotating_tokens_are_refreshed_on_slack_api_url_by_requests_and_the_bots_messages(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    ob.slack.token_expires_in = 60  # within the 2 h before expiry: every use rotates first
    done = ob.install(TEAM_A, refresh=True)
    assert done.callback.status_code == 200
    store = ob.harness.runtime.app.installation_store
    first = store.find_installation(enterprise_id=None, team_id=TEAM_A)
    assert first is not None and first.bot_refresh_token
    # The welcome DM already rotated it (through SLACK_API_URL) and saved the new token.
    assert first.bot_token == ob.slack.current_token(TEAM_A) != TOKEN_A
    ob.slack.reset()
    opened = open_setup(ob, TEAM_A, ADMIN_A)  # Bolt's authorize rotates, then answers
    assert opened.token not in (TOKEN_A, first.bot_token) and opened.answer is not None
    refreshes = ob.slack.calls_to("oauth.v2.access")
    assert refreshes and all(c.args.get("grant_type") == "refresh_token" for c in refreshes)
    assert all(c.answer for c in refreshes), [c.args for c in refreshes]
    ob.services.messages.dm(ADMIN_A, "rotated too", team_id=TEAM_A)
    sent = ob.slack.wait_for("chat.postMessage", text="rotated too")[-1]
    assert sent.token == ob.slack.current_token(TEAM_A) and sent.answer is not None
    saved = store.find_installation(enterprise_id=None, team_id=TEAM_A)
    assert saved is not None and saved.bot_token == ob.slack.current_token(TEAM_A)
    assert not [c for c in ob.slack.calls if c.answer is None and c.method != "response_url"]
