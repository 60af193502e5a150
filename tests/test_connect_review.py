"""Attempts to break sharing and per-instance keys, through the real app (signed requests, the
fake Slack, the Vast.ai simulator): a teammate's key goes only to the deployment shared with
them and only from its workspace; an unshare while their key is on the wire still ends with it
off the instance; a collaborator can neither Share nor Destroy from any of the buttons that
carry Destroy; what the thread and the status message say about who got the login is true."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.slack.blocks import sharing as share_blocks
from bot.vast.client import VastClient
from storage import collaborators as collab
from storage import instance_keys as keys
from tests.fixtures.slack import ALICE, BOB, BotFactory, BotHarness
from tests.test_instance_keys_e2e import key_line
from tests.test_instance_keys_storage import add_key
from tests.test_manage import ADMIN, manage_requests, wait_until
from tests.test_poller import PASSWORD, current, deploy, poller_of, to_ready
from tests.test_sharing import last_reply, open_share, submit_share, thread_texts


def held(bot: BotHarness, instance_id: int | None) -> list[str]:
    assert instance_id is not None
    return sorted(bot.vast.instance_ssh_keys(instance_id))


def test_a_teammates_key_goes_only_to_the_deployment_shared_with_them(
    bot: BotHarness,
) -> None:
    sf = bot.services.session_factory
    alices = add_key(sf, ALICE, team_id=TEAM_ID)
    bobs = add_key(sf, BOB, team_id=TEAM_ID)
    add_key(sf, BOB, team_id="T0ELSEWHERE")  # the same user id's key in another workspace
    shared, other = deploy(bot), deploy(bot)
    to_ready(bot, shared)
    to_ready(bot, other)
    submit_share(bot, open_share(bot, shared), [BOB])
    poller_of(bot).tick()
    shared, other = current(bot, shared), current(bot, other)
    assert held(bot, shared.instance_id) == sorted([key_line(sf, alices), key_line(sf, bobs)])
    assert held(bot, other.instance_id) == [key_line(sf, alices)]


def test_unshared_while_his_key_is_on_the_wire_it_still_leaves_the_instance(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    sf = bot.services.session_factory
    alices = add_key(sf, ALICE, team_id=TEAM_ID)
    bobs = add_key(sf, BOB, team_id=TEAM_ID)
    dep = deploy(bot)
    to_ready(bot, dep)
    submit_share(bot, open_share(bot, dep), [BOB])
    bob_line = key_line(sf, bobs)
    attach = VastClient.attach_ssh_key
    unshared: list[bool] = []

    def unshare_first(self: VastClient, instance_id: int, public_key: str) -> Any:
        if public_key == bob_line and not unshared:  # Alice saves Share while it is sent
            submit_share(bot, open_share(bot, dep), [])
            unshared.append(True)
        return attach(self, instance_id, public_key)

    monkeypatch.setattr(VastClient, "attach_ssh_key", unshare_first)
    for _ in range(3):
        poller_of(bot).tick()
    assert unshared and collab.collaborator_ids(sf, dep.id) == []
    assert held(bot, dep.instance_id) == [key_line(sf, alices)]
    states = {k.fingerprint: k.state for k in keys.list_for_deployment(sf, dep.id)}
    assert states == {alices: "attached", bobs: "detached"}


def test_a_collaborator_can_neither_share_nor_destroy_from_any_button(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    dep = deploy(bot, lifetime_hours=2)
    to_ready(bot, dep)
    submit_share(bot, open_share(bot, dep), [BOB])
    opened = len(fake_slack.calls_to("views.open"))
    replies = len(fake_slack.calls_to("response_url"))
    # Share, from the status message.
    bot.block_action(
        share_blocks.ACTION_SHARE, str(dep.id), user=BOB, message_ts=str(dep.message_ts),
        is_ephemeral=False, block_id=f"dep_actions_{dep.id}",
    )  # fmt: skip
    assert "can share it" in last_reply(fake_slack, replies + 1)
    assert len(fake_slack.calls_to("views.open")) == opened
    # A forged Share submission with himself as the previous state.
    view = {
        "callback_id": share_blocks.CALLBACK_SHARE,
        "private_metadata": share_blocks.share_metadata(dep.id, [BOB]),
        "type": "modal",
    }
    answer = submit_share(bot, view, [BOB, "U0CAROL03"], user=BOB)
    assert answer["response_action"] == "update" and "Only" in json.dumps(answer["view"])
    assert collab.collaborator_ids(bot.services.session_factory, dep.id) == [BOB]
    # Destroy from the lifetime warning, the idle question and the stopped reminder: each is
    # a message of its own (in a DM or the thread), the same action id.
    for n, (block, ts) in enumerate(
        [
            (f"lt_warn_actions_{dep.id}", "1732900000.000201"),
            (f"lt_idle_actions_{dep.id}", "1732900000.000202"),
            (f"reminder_actions_{dep.id}", "1732900000.000203"),
        ],
        start=2,
    ):
        response = bot.block_action(
            "deployment_destroy", str(dep.id), user=BOB, message_ts=ts,
            is_ephemeral=False, block_id=block,
        )  # fmt: skip
        assert response.status_code == 200
        assert f"Only <@{ALICE}>, who deployed" in last_reply(fake_slack, replies + n)
    assert manage_requests(bot, "DELETE") == []
    assert current(bot, dep).status == "ready"


# -- what is said about the login ---------------------------------------------------------------


def test_unsharing_says_the_login_they_got_still_opens_the_app(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    """Bob got the web password by DM; unsharing does not change it (the app still takes it on
    its published port), so "they no longer have access" alone is not true: the thread and
    Bob are told that the login keeps working until it is destroyed."""
    dep = deploy(bot)
    to_ready(bot, dep)
    submit_share(bot, open_share(bot, dep), [BOB])
    wait_until(lambda: any(PASSWORD in str(c.args) for c in fake_slack.calls_to("chat.postMessage")
                           if c.args.get("channel") == "D" + BOB[1:]))  # fmt: skip
    answer = submit_share(bot, open_share(bot, dep), [])
    assert "login" in json.dumps(answer["view"]) and "still" in json.dumps(answer["view"])
    wait_until(lambda: any(f"Removed <@{BOB}>" in t for t in thread_texts(fake_slack, dep)))
    note = next(t for t in thread_texts(fake_slack, dep) if f"Removed <@{BOB}>" in t)
    assert "still opens" in note and "Destroy" in note
    wait_until(
        lambda: any(
            "took away your access" in str(c.args.get("text"))
            for c in fake_slack.calls_to("chat.postMessage")
        )
    )
    dm = next(
        str(c.args.get("text"))
        for c in fake_slack.calls_to("chat.postMessage")
        if "took away your access" in str(c.args.get("text"))
    )
    assert "still opens" in dm


def test_the_status_message_does_not_say_only_the_requester_got_the_password(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot)
    to_ready(bot, dep)
    shown = json.dumps(
        [c.args for c in fake_slack.calls_to("chat.update") if c.args.get("ts") == dep.message_ts]
    )
    assert "sent to the requester by DM" not in shown
    assert "by DM" in shown


def test_an_admins_login_dm_does_not_promise_ssh_their_key_cannot_open(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    sf = bot.services.session_factory
    admins = add_key(sf, ADMIN, team_id=TEAM_ID)
    dep = deploy(bot)
    to_ready(bot, dep)
    poller_of(bot).tick()
    replies = len(fake_slack.calls_to("response_url"))
    bot.block_action(
        "deployment_credentials", str(dep.id), user=ADMIN, message_ts=str(dep.message_ts),
        is_ephemeral=False, block_id=f"dep_actions_{dep.id}",
    )  # fmt: skip
    assert "I sent you the login" in last_reply(fake_slack, replies + 1)
    dm = json.dumps(
        [
            c.args
            for c in fake_slack.calls_to("chat.postMessage")
            if c.args.get("channel") == "D" + ADMIN[1:]
        ]
    )
    assert "ssh -p" in dm
    attached = key_line(sf, admins) in held(bot, current(bot, dep).instance_id)
    assert attached or "not on this instance" in dm
