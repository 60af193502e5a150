"""Sharing a deployment end to end, through the real app with signed requests (fake Slack and
the Vast.ai simulator): the owner shares with a teammate, who gets their own login DM when it
is ready, sees it in ``/templates mine`` and on their Home, may Extend, Stop and Start it but
not Destroy it; nobody else may open Share; unsharing deletes the row and tells the thread;
a person of another workspace cannot be added."""

from __future__ import annotations

import json
from typing import Any

import storage
from bot.playground.slack_api import FakeSlack
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import sharing as share_blocks
from bot.slack.blocks.notify import ACTION_SSH_KEY_OPEN
from storage import DeploymentRecord
from storage import collaborators as collab
from tests.blockkit import buttons, texts
from tests.fixtures.slack import ALICE, BOB, BotFactory, BotHarness
from tests.test_manage import ADMIN, MANAGE_PATH, click, manage_requests, wait_until
from tests.test_poller import PASSWORD, current, deploy, poller_of, to_ready

CAROL = "U0CAROL03"
OUTSIDER = "U0OUTSIDE"
OTHER_TEAM = "T0OTHER01"


def open_share(bot: BotHarness, dep: DeploymentRecord, *, user: str = ALICE) -> dict[str, Any]:
    """Press **Share** on the status message as ``user``; the modal Slack was asked to open."""
    before = len(bot.slack.calls_to("views.open"))
    click(bot, share_blocks.ACTION_SHARE, dep, user=user)
    opened = bot.slack.wait_for("views.open", before + 1)[-1]
    view = dict(opened.args["view"])
    assert view["callback_id"] == share_blocks.CALLBACK_SHARE
    return view


def submit_share(
    bot: BotHarness, view: dict[str, Any], users: list[str], *, user: str = ALICE
) -> dict[str, Any]:
    """Save the Share modal ``view`` with ``users`` chosen; Slack's answer to the submission."""
    submitted = dict(view)
    submitted["id"] = "V0SHARE001"
    submitted["state"] = {
        "values": {
            share_blocks.BLOCK_SHARE_USERS: {
                share_blocks.ACTION_SHARE_USERS: {
                    "type": "multi_users_select",
                    "selected_users": users,
                }
            }
        }
    }
    response = bot.view_submission(submitted, user=user)
    assert response.status_code == 200
    return dict(response.json())


def dms_to(fake: FakeSlack, user: str) -> list[str]:
    """Everything DMed to ``user`` (text and blocks, as JSON)."""
    return [
        json.dumps(call.args)
        for call in fake.calls_to("chat.postMessage")
        if call.args.get("channel") == "D" + user[1:]
    ]


def thread_texts(fake: FakeSlack, dep: DeploymentRecord) -> list[str]:
    return [
        str(call.args.get("text"))
        for call in fake.calls_to("chat.postMessage")
        if call.args.get("thread_ts") == dep.message_ts
    ]


def last_reply(fake: FakeSlack, count: int) -> str:
    return str(fake.wait_for("response_url", count)[-1].args.get("text"))


def test_a_teammate_shared_in_gets_their_own_login_and_may_extend_stop_start_not_destroy(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    dep = deploy(bot, lifetime_hours=2)
    sf = bot.services.session_factory

    # The owner shares it with Bob before it is ready.
    view = open_share(bot, dep)
    assert "initial_users" not in json.dumps(view["blocks"])
    answer = submit_share(bot, view, [BOB])
    assert answer["response_action"] == "update"
    assert f"with <@{BOB}>" in json.dumps(answer["view"])
    assert collab.collaborator_ids(sf, dep.id) == [BOB]
    wait_until(lambda: any("Who has access now" in t for t in thread_texts(fake_slack, dep)))
    note = next(t for t in thread_texts(fake_slack, dep) if "Who has access now" in t)
    assert f"<@{ALICE}> (owner), <@{BOB}>" in note
    wait_until(lambda: any("shared *JupyterLab*" in d for d in dms_to(fake_slack, BOB)))
    assert not any(PASSWORD in d for d in dms_to(fake_slack, BOB))  # not ready: no login yet

    # Ready: Bob gets his own login DM, once; so does Alice.
    to_ready(bot, dep)
    assert sum(PASSWORD in d for d in dms_to(fake_slack, BOB)) == 1
    assert sum(PASSWORD in d for d in dms_to(fake_slack, ALICE)) == 1
    bobs_login = next(d for d in dms_to(fake_slack, BOB) if PASSWORD in d)
    assert ACTION_SSH_KEY_OPEN in bobs_login  # his own DM: he has no SSH key on file yet
    poller_of(bot).tick()
    assert sum(PASSWORD in d for d in dms_to(fake_slack, BOB)) == 1
    assert all(PASSWORD not in t for t in thread_texts(fake_slack, dep))
    sent = [e for e in storage.list_events(sf, dep.id) if e.action == "secrets_sent"]
    assert [e.detail for e in sent].count(f"to <@{BOB}>") == 1

    # Bob sees it in /templates mine, marked as shared, with Stop but without Destroy...
    mine = bot.command("mine", user=BOB).json()["blocks"]
    assert f"shared by <@{ALICE}>" in texts(mine)
    actions = [b["action_id"] for b in buttons(mine)]
    assert "deployment_stop" in actions and "deployment_destroy" not in actions
    # ...and on his Home tab.
    wait_until(
        lambda: any(
            f"shared by <@{ALICE}>" in json.dumps(c.args.get("view"))
            for c in fake_slack.calls_to("views.publish")
            if c.args.get("user_id") == BOB
        )
    )

    # Bob may Extend it...
    ready = current(bot, dep)
    assert ready.ends_at is not None
    replies = len(fake_slack.calls_to("response_url"))
    response = bot.block_action(
        lifetime_blocks.extend_action_id(2),
        lifetime_blocks.extend_value(dep.id, 2, ready.ends_at),
        user=BOB,
        message_ts=str(dep.message_ts),
        is_ephemeral=False,
    )
    assert response.status_code == 200
    assert "Extended" in last_reply(fake_slack, replies + 1)
    extended = current(bot, dep)
    assert extended.ends_at is not None and extended.ends_at > ready.ends_at
    assert any(e.action == "extend" and e.actor == BOB for e in storage.list_events(sf, dep.id))

    # ...but not Destroy it: the refusal says who can.
    click(bot, "deployment_destroy", dep, user=BOB)
    refusal = last_reply(fake_slack, replies + 2)
    assert f"Only <@{ALICE}>, who deployed" in refusal and f"<@{ADMIN}>" in refusal
    assert "It is shared with you" in refusal
    assert manage_requests(bot, "DELETE") == []
    assert current(bot, dep).status == "ready"

    # Bob may Stop it and Start it again.
    click(bot, "deployment_stop", dep, user=BOB)
    assert "Stopped" in last_reply(fake_slack, replies + 3)
    assert current(bot, dep).status == "stopped"
    click(bot, "deployment_start", dep, user=BOB)
    assert "Starting" in last_reply(fake_slack, replies + 4)
    puts = [r.json for r in manage_requests(bot, "PUT")]
    assert puts == [{"state": "stopped"}, {"state": "running"}]
    acts = [(e.action, e.actor) for e in storage.list_events(sf, dep.id)]
    assert ("stop", BOB) in acts and ("start", BOB) in acts
    assert all(r.path.startswith(MANAGE_PATH) for r in manage_requests(bot, "PUT"))

    # Back to ready: Bob may ask for the login again (the status message's button).
    to_ready(bot, dep)
    click(bot, "deployment_credentials", dep, user=BOB)
    assert "I sent you the login" in last_reply(fake_slack, replies + 5)
    assert sum(PASSWORD in d for d in dms_to(fake_slack, BOB)) == 2


def test_shared_into_a_ready_deployment_the_login_comes_at_once(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    to_ready(bot, dep)
    submit_share(bot, open_share(bot, dep), [BOB])
    wait_until(lambda: any(PASSWORD in d for d in dms_to(fake_slack, BOB)))
    poller_of(bot).tick()
    assert sum(PASSWORD in d for d in dms_to(fake_slack, BOB)) == 1


def test_only_the_owner_or_an_admin_can_open_share(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    dep = deploy(bot)
    click(bot, share_blocks.ACTION_SHARE, dep, user=CAROL)
    text = last_reply(fake_slack, 1)
    assert f"Only <@{ALICE}>, who deployed" in text and "can share it" in text
    assert fake_slack.calls_to("views.open") == []
    events = storage.list_events(bot.services.session_factory, dep.id)
    assert any(e.action == "share_refused" and e.actor == CAROL for e in events)
    # A submission forged from another modal is refused too, and nothing changes.
    view = {
        "callback_id": share_blocks.CALLBACK_SHARE,
        "private_metadata": share_blocks.share_metadata(dep.id, []),
        "type": "modal",
    }
    answer = submit_share(bot, view, [CAROL], user=CAROL)
    assert answer["response_action"] == "update" and "Only" in json.dumps(answer["view"])
    assert collab.collaborator_ids(bot.services.session_factory, dep.id) == []
    # The admin may.
    assert open_share(bot, dep, user=ADMIN)["private_metadata"]


def test_unsharing_deletes_the_row_tells_the_thread_and_ends_their_rights(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    to_ready(bot, dep)
    sf = bot.services.session_factory
    submit_share(bot, open_share(bot, dep), [BOB])
    view = open_share(bot, dep)
    assert f'"initial_users": ["{BOB}"]' in json.dumps(view["blocks"])
    answer = submit_share(bot, view, [])
    assert "it is shared with nobody" in json.dumps(answer["view"])
    assert collab.collaborator_ids(sf, dep.id) == []
    events = storage.list_events(sf, dep.id)
    assert [(e.actor, e.detail) for e in events if e.action == "unshared"] == [
        (ALICE, f"from <@{BOB}>")
    ]
    wait_until(lambda: any(f"Removed <@{BOB}>" in t for t in thread_texts(fake_slack, dep)))
    note = next(t for t in thread_texts(fake_slack, dep) if f"Removed <@{BOB}>" in t)
    assert "SSH keys will be removed from the instance" in note
    assert f"Who has access now: <@{ALICE}> (owner) and the bot admins" in note
    wait_until(lambda: any("took away your access" in d for d in dms_to(fake_slack, BOB)))

    replies = len(fake_slack.calls_to("response_url"))
    click(bot, "deployment_stop", dep, user=BOB)
    assert "Only <@" in last_reply(fake_slack, replies + 1)
    assert current(bot, dep).status == "ready"
    assert "shared by" not in texts(bot.command("mine", user=BOB).json()["blocks"])


def test_a_person_of_another_workspace_cannot_be_added(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    fake_slack.users_team[OUTSIDER] = OTHER_TEAM
    dep = deploy(bot)
    answer = submit_share(bot, open_share(bot, dep), [BOB, OUTSIDER])
    assert answer["response_action"] == "errors"
    error = answer["errors"][share_blocks.BLOCK_SHARE_USERS]
    assert "not an active member of this workspace" in error
    assert collab.collaborator_ids(bot.services.session_factory, dep.id) == []
    # The bot's own user is no person either.
    bot_user = "U0BOT0001"
    answer = submit_share(bot, open_share(bot, dep), [bot_user])
    assert answer["response_action"] == "errors"
