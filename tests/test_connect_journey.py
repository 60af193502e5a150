"""The whole "connect" journey end to end, through the real app with signed requests (the fake
Slack Web API and the Vast.ai simulator), every step by the buttons and modals a person uses:

Alice adds her SSH key in the ``/templates ssh-key`` modal and deploys with the picker; when it
is ready the instance holds exactly her key. She shares it with Bob in the Share modal; Bob
adds his key in the modal; the next pass puts it on the instance and Bob has his own ready DM
whose SSH command is the instance's mapped SSH port. Bob may Extend and Stop it (and Start it
again: same instance, the keys still on it) but not Destroy it. Alice unshares him in the Share
modal: his key leaves the instance and the thread says who has access. A private key pasted in
the modal is refused and stored nowhere. Alice removes her own key in the modal: it leaves her
running instance. The account-wide ``POST /api/v0/ssh/`` is never called."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.slack.blocks import lifetimes as lifetime_blocks
from bot.slack.blocks import sshkeys as key_blocks
from bot.slack.blocks.notify import ACTION_SSH_KEY_OPEN
from bot.sshkeys import PRIVATE_KEY_TEXT, PublicKey, parse_public_key
from storage import DeploymentRecord
from storage import collaborators as collab
from tests.fixtures.slack import ALICE, BOB, BotFactory, BotHarness
from tests.test_deploy import pick_offer, rows, submitted_view
from tests.test_deploy import wait_until as wait_for_value
from tests.test_manage import ADMIN, click, manage_requests, wait_until
from tests.test_poller import current, poller_of
from tests.test_sharing import last_reply, open_share, submit_share, thread_texts
from tests.test_ssh_keys_slack import database_bytes, open_modal, remove_button, submit
from tests.test_ssh_keys_slack import rows as key_rows
from tests.test_sshkey_service import every_value, public_line, secret_parts

ACCOUNT_KEYS = "/api/v0/ssh"
CODE = re.compile(r"```(.+?)```")


def parsed(line: str) -> PublicKey:
    key = parse_public_key(line)
    assert isinstance(key, PublicKey)
    return key


def add_key_in_modal(bot: BotHarness, user: str, line: str) -> None:
    """``/templates ssh-key`` as ``user``, paste ``line``, **Add key**: the modal lists it."""
    answer = submit(bot, open_modal(bot, user=user), line, user=user)
    assert answer["response_action"] == "update", answer
    assert any(parsed(line).fingerprint in row for row in key_rows(answer["view"]))


def remove_key_in_modal(bot: BotHarness, user: str, line: str) -> None:
    """``/templates ssh-key`` as ``user``, **Remove** on ``line``'s key; the modal redrawn."""
    fingerprint = parsed(line).fingerprint
    view = open_modal(bot, user=user)
    updates = len(bot.slack.calls_to("views.update"))
    value = remove_button(view, fingerprint)
    response = bot.block_action(key_blocks.ACTION_REMOVE, value, user=user, view=view)
    assert response.status_code == 200
    update = bot.slack.wait_for("views.update", count=updates + 1)[-1]
    assert f"Removed your ED25519 key {fingerprint}" in json.dumps(update.args["view"])


def on_instance(bot: BotHarness, dep: DeploymentRecord) -> list[str]:
    """The key lines the simulator's instance holds (``<type> <base64>``), sorted."""
    assert dep.instance_id is not None
    return sorted(bot.vast.instance_ssh_keys(dep.instance_id))


def mapped_ssh(bot: BotHarness, dep: DeploymentRecord) -> str:
    """``ssh -p <host port of 22/tcp> root@<public ip>`` from the simulator's own listing."""
    assert dep.instance_id is not None
    listed = bot.vast.instance(dep.instance_id)
    assert listed is not None
    port = listed["ports"]["22/tcp"][0]["HostPort"]
    return f"ssh -p {port} root@{str(listed['public_ipaddr']).strip()}"


def ready_dms(fake: FakeSlack, user: str, dep: DeploymentRecord) -> list[dict[str, Any]]:
    """The ready DMs (``How to get into …``) sent to ``user`` for ``dep``."""
    return [
        dict(call.args)
        for call in fake.calls_to("chat.postMessage")
        if call.args.get("channel") == "D" + user[1:]
        and f"(deployment #{dep.id})" in str(call.args.get("text"))
        and str(call.args.get("text")).startswith("How to get into")
    ]


def dm_text(dm: dict[str, Any]) -> str:
    """Every mrkdwn text of a DM's blocks, one per line."""
    blocks = dm["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    out = []
    for block in blocks:
        if "text" in block:
            out.append(str(block["text"]["text"]))
        for element in block.get("elements", []):
            if "text" in element:
                out.append(str(element["text"]))
    return "\n".join(out)


def passes_until(bot: BotHarness, predicate: Any, most: int = 5) -> None:
    """Run poller passes (each ends with the key reconciler) until ``predicate()``."""
    for _ in range(most):
        if predicate():
            return
        poller_of(bot).tick()
    assert predicate(), "not reached after the passes"


def test_alice_deploys_shares_with_bob_and_everyone_gets_in_with_their_own_key(
    bot_factory: BotFactory, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bot = bot_factory(bot_admins=ADMIN)
    sf = bot.services.session_factory
    alices, bobs = public_line("alice@laptop"), public_line("bob@desk")

    # 1. Alice adds her key in the modal, then deploys with the picker.
    add_key_in_modal(bot, ALICE, alices)
    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = wait_for_value(
        lambda: [d for d in rows(bot) if d.message_ts and d.instance_id] or None
    )
    assert on_instance(bot, dep) == []  # nothing before it runs

    # 2. Ready: the instance holds exactly Alice's key (attached by the pass that saw it).
    poller_of(bot).tick()
    bot.vast.advance(4)
    poller_of(bot).tick()
    dep = current(bot, dep)
    assert dep.status == "ready"
    assert on_instance(bot, dep) == [parsed(alices).public_key]
    (alices_dm,) = ready_dms(fake_slack, ALICE, dep)
    assert CODE.findall(dm_text(alices_dm))[0] == mapped_ssh(bot, dep)
    assert ACTION_SSH_KEY_OPEN not in json.dumps(alices_dm)  # she has a key on file

    # 3. Alice shares it with Bob in the Share modal.
    answer = submit_share(bot, open_share(bot, dep), [BOB])
    assert answer["response_action"] == "update"
    assert collab.collaborator_ids(sf, dep.id) == [BOB]
    wait_until(lambda: bool(ready_dms(fake_slack, BOB, dep)))
    (first,) = ready_dms(fake_slack, BOB, dep)
    assert ACTION_SSH_KEY_OPEN in json.dumps(first)  # no key on file yet: the button
    poller_of(bot).tick()
    assert on_instance(bot, dep) == [parsed(alices).public_key]  # Bob has no key: nothing new

    # 4. Bob adds his key in the modal (as the DM's button would open it); the next pass
    # attaches it to this instance.
    add_key_in_modal(bot, BOB, bobs)
    passes_until(bot, lambda: len(on_instance(bot, dep)) == 2)
    assert on_instance(bot, dep) == sorted([parsed(alices).public_key, parsed(bobs).public_key])

    # Bob's own ready DM: the SSH command is the instance's mapped SSH port, the forward too.
    bobs_dm = dm_text(first)
    commands = CODE.findall(bobs_dm)
    assert commands[0] == mapped_ssh(bot, dep)
    assert commands[1] == f"{mapped_ssh(bot, dep)} -L 8888:localhost:8888"
    assert "http://localhost:8888/" in bobs_dm
    assert f"<@{ALICE}>" not in bobs_dm  # his DM names nobody else
    assert parsed(alices).fingerprint not in json.dumps(first)
    # "Send me the login" again: now without the Add-a-key offer.
    replies = len(fake_slack.calls_to("response_url"))
    click(bot, "deployment_credentials", dep, user=BOB)
    assert "I sent you the login" in last_reply(fake_slack, replies + 1)
    again = ready_dms(fake_slack, BOB, dep)[-1]
    assert ACTION_SSH_KEY_OPEN not in json.dumps(again)
    assert CODE.findall(dm_text(again))[0] == mapped_ssh(bot, dep)

    # 5. Bob may Extend...
    ready = current(bot, dep)
    assert ready.ends_at is not None
    response = bot.block_action(
        lifetime_blocks.extend_action_id(2),
        lifetime_blocks.extend_value(dep.id, 2, ready.ends_at),
        user=BOB,
        message_ts=str(dep.message_ts),
        is_ephemeral=False,
    )
    assert response.status_code == 200
    assert "Extended" in last_reply(fake_slack, replies + 2)
    extended = current(bot, dep).ends_at
    assert extended is not None and extended > ready.ends_at
    # ...not Destroy...
    click(bot, "deployment_destroy", dep, user=BOB)
    assert f"Only <@{ALICE}>, who deployed" in last_reply(fake_slack, replies + 3)
    assert manage_requests(bot, "DELETE") == []
    # ...and Stop, then Start: the same instance, the keys still on it, none sent again.
    click(bot, "deployment_stop", dep, user=BOB)
    assert "Stopped" in last_reply(fake_slack, replies + 4)
    assert current(bot, dep).status == "stopped"
    click(bot, "deployment_start", dep, user=BOB)
    assert "Starting" in last_reply(fake_slack, replies + 5)
    bot.vast.advance(4)
    passes_until(bot, lambda: current(bot, dep).status == "ready")
    assert current(bot, dep).instance_id == dep.instance_id
    poller_of(bot).tick()
    assert on_instance(bot, dep) == sorted([parsed(alices).public_key, parsed(bobs).public_key])
    events = [e.action for e in storage.list_events(sf, dep.id)]
    assert events.count("ssh_key_attached") == 2

    # 6. Alice unshares Bob in the Share modal: his key leaves the instance.
    view = open_share(bot, dep)
    answer = submit_share(bot, view, [])
    assert "it is shared with nobody" in json.dumps(answer["view"])
    passes_until(bot, lambda: on_instance(bot, dep) == [parsed(alices).public_key])
    wait_until(lambda: any(f"Removed <@{BOB}>" in t for t in thread_texts(fake_slack, dep)))
    note = next(t for t in thread_texts(fake_slack, dep) if f"Removed <@{BOB}>" in t)
    assert f"Who has access now: <@{ALICE}> (owner) and the bot admins" in note
    acts = [(e.action, e.actor) for e in storage.list_events(sf, dep.id)]
    assert ("unshared", ALICE) in acts and ("ssh_key_detached", "system") in acts

    # 7. A private key pasted in the modal is refused and stored nowhere.
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    view = open_modal(bot, user=BOB)
    refused = submit(bot, view, pem, user=BOB)
    assert refused["response_action"] == "errors"
    assert list(refused["errors"].values()) == [PRIVATE_KEY_TEXT]
    assert "Treat it as leaked" in PRIVATE_KEY_TEXT
    wait_until(lambda: "private key" in caplog.text)
    stored, on_disk = every_value(sf), database_bytes(bot)
    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    sent = "\n".join(json.dumps(c.args, default=str) for c in fake_slack.calls)
    for part in secret_parts(pem):
        assert part not in stored and part.encode() not in on_disk
        assert part not in logged and part not in sent
    assert [k.fingerprint for k in bot.services.ssh_keys.list_keys(TEAM_ID, BOB)] == [
        parsed(bobs).fingerprint
    ]

    # 8. Alice removes her own key in the modal: it leaves her running instance.
    remove_key_in_modal(bot, ALICE, alices)
    passes_until(bot, lambda: on_instance(bot, dep) == [])
    assert current(bot, dep).status == "ready"

    assert bot.vast.request_count(path_prefix=ACCOUNT_KEYS) == 0
    assert "ssh_key_failed" not in [e.action for e in storage.list_events(sf, dep.id)]
