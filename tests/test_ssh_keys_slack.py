"""``/templates ssh-key``, end to end: the real bot (signed requests, the fake Slack Web API)
opens a modal of the person's keys; a key pasted there is added and listed, the same key again
is "already there", a bad one is answered on the input, **Remove** takes it out; a button
``ssh_key_open`` (the ready DM's) opens the same modal. A private key pasted anywhere is
refused with the words to treat it as leaked and is found in no table, no database file and no
log line (DEBUG included), nor in anything sent to Slack."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy.engine import make_url

from bot.playground.slack_api import TEAM_ID
from bot.slack.blocks import sshkeys as blocks
from bot.slack.blocks.templates import help_message
from bot.sshkeys import PRIVATE_KEY_TEXT, PublicKey, parse_public_key
from tests.fixtures.slack import ALICE, BOB, BotHarness
from tests.test_deploy import wait_until
from tests.test_sshkey_service import every_value, public_line, secret_parts

NOT_A_MEMBER = "You are not a member of this workspace"


def open_modal(bot: BotHarness, text: str = "ssh-key", user: str = ALICE) -> dict[str, Any]:
    """Run ``/templates <text>`` as ``user``; the modal it opened, as Slack shows it."""
    before = len(bot.slack.calls_to("views.open"))
    response = bot.command(text, user=user)
    assert response.status_code == 200
    opened = bot.slack.wait_for("views.open", count=before + 1)[-1]
    assert opened.answer is not None
    return dict(opened.answer["view"])


def input_block(view: dict[str, Any]) -> str | None:
    ids = [b.get("block_id", "") for b in view["blocks"] if b.get("type") == "input"]
    assert len(ids) <= 1
    return ids[0] if ids else None


def submit(
    bot: BotHarness, view: dict[str, Any], pasted: str | None, user: str = ALICE
) -> dict[str, Any]:
    """Submit ``view`` with ``pasted`` in its key box; the ack's JSON."""
    block = input_block(view)
    assert block is not None
    sent = {
        **view,
        "state": {
            "values": {block: {blocks.ACTION_ADD: {"type": "plain_text_input", "value": pasted}}}
        },
    }
    response = bot.view_submission(sent, user=user)
    assert response.status_code == 200
    return dict(response.json()) if response.content else {}


def rows(view: dict[str, Any]) -> list[str]:
    """The text of each key's row in ``view``."""
    return [
        b["text"]["text"]
        for b in view["blocks"]
        if str(b.get("block_id", "")).startswith(blocks.KEY_BLOCK)
    ]


def remove_button(view: dict[str, Any], fingerprint: str) -> str:
    for block in view["blocks"]:
        row = str(block.get("block_id", "")).startswith(blocks.KEY_BLOCK)
        if row and fingerprint in str(block["text"]["text"]):
            return str(block["accessory"]["value"])
    raise AssertionError(f"no row for {fingerprint}")


def keys_of(bot: BotHarness, user: str = ALICE) -> list[str]:
    return [k.fingerprint for k in bot.services.ssh_keys.list_keys(TEAM_ID, user)]


def database_bytes(bot: BotHarness) -> bytes:
    """The SQLite database file and its write-ahead log, as bytes."""
    path = Path(str(make_url(bot.services.settings.database_url).database))
    return b"".join(
        Path(f"{path}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{path}{suffix}").exists()
    )


def slack_traffic(bot: BotHarness) -> str:
    return "\n".join(json.dumps(call.args, default=str) for call in bot.slack.calls)


def test_add_list_again_bad_and_remove(bot: BotHarness) -> None:
    view = open_modal(bot)
    assert view["callback_id"] == blocks.CALLBACK_SSH_KEYS
    assert view["title"]["text"] == "Your SSH keys"
    assert rows(view) == []
    assert any(b.get("block_id") == blocks.BLOCK_EMPTY for b in view["blocks"])
    first_box = input_block(view)

    line = public_line("alice@laptop <!channel>")
    parsed = parse_public_key(line)
    assert isinstance(parsed, PublicKey)
    fingerprint = parsed.fingerprint
    answer = submit(bot, view, line)
    assert answer["response_action"] == "update", answer
    shown = answer["view"]
    assert keys_of(bot) == [fingerprint]
    (row,) = rows(shown)
    assert "ED25519" in row and fingerprint in row
    assert "&lt;!channel&gt;" in row and "<!channel>" not in row  # the comment is escaped
    notice = next(b for b in shown["blocks"] if b.get("block_id") == blocks.BLOCK_NOTICE)
    assert f"Added your ED25519 key {fingerprint}" in notice["text"]["text"]
    assert input_block(shown) != first_box  # a new box: Slack empties it
    shown = {**shown, "id": view["id"]}

    again = submit(bot, shown, line)
    assert again["response_action"] == "update"
    assert "already there" in json.dumps(again["view"]) and keys_of(bot) == [fingerprint]

    short = rsa.generate_private_key(65537, 1024).public_key()
    short_line = short.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    box = input_block(shown)
    for bad, words in (
        (short_line, "1024 bits"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAOZM", "DSA"),
        ('from="10.0.0.1" ' + line, "from="),
        ("hello", "not an OpenSSH public key"),
    ):
        refused = submit(bot, shown, bad)
        assert refused["response_action"] == "errors", refused
        assert list(refused["errors"]) == [box] and words in refused["errors"][box]
    assert keys_of(bot) == [fingerprint]

    # Remove: the modal is updated in place (views.update of its id, with its hash).
    key_id = remove_button(shown, fingerprint)
    current = {**bot.slack.views.get(view["id"], shown), "id": view["id"]}
    updates = len(bot.slack.calls_to("views.update"))
    response = bot.block_action(blocks.ACTION_REMOVE, key_id, view=current)
    assert response.status_code == 200
    update = bot.slack.wait_for("views.update", count=updates + 1)[-1]
    assert update.args["view_id"] == view["id"]
    assert keys_of(bot) == []
    updated = update.args["view"]
    updated = json.loads(updated) if isinstance(updated, str) else updated
    assert rows(updated) == [] and f"Removed your ED25519 key {fingerprint}" in json.dumps(updated)


def test_someone_elses_key_id_is_not_found(bot: BotHarness) -> None:
    view = open_modal(bot)
    answer = submit(bot, view, public_line())
    key_id = remove_button(answer["view"], keys_of(bot)[0])
    bobs = {**open_modal(bot, user=BOB)}
    updates = len(bot.slack.calls_to("views.update"))
    bot.block_action(blocks.ACTION_REMOVE, key_id, user=BOB, view=bobs)
    update = bot.slack.wait_for("views.update", count=updates + 1)[-1]
    assert "not among yours" in json.dumps(update.args["view"])
    assert len(keys_of(bot)) == 1 and keys_of(bot, BOB) == []
    # A forged value is "not found" too, and changes nothing.
    for forged in ("0", "-1", "99999999999", "1 OR 1=1", ""):
        bot.block_action(blocks.ACTION_REMOVE, forged, view=bobs)
    assert len(keys_of(bot)) == 1


def test_a_key_in_the_command_is_added(bot: BotHarness) -> None:
    line = public_line()
    view = open_modal(bot, f"ssh-key {line}")
    assert len(rows(view)) == 1 and "Added your ED25519 key" in json.dumps(view)
    assert len(keys_of(bot)) == 1


def test_the_ready_dm_button_opens_the_modal(bot: BotHarness) -> None:
    before = len(bot.slack.calls_to("views.open"))
    assert bot.block_action(blocks.ACTION_OPEN, "12", is_ephemeral=False).status_code == 200
    opened = bot.slack.wait_for("views.open", count=before + 1)[-1]
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == blocks.CALLBACK_SSH_KEYS
    assert "deployment #12" in json.dumps(view)
    assert blocks.read_metadata(view) == (0, 12)
    # Empty or forged values open it without a deployment.
    assert bot.block_action(blocks.ACTION_OPEN, "", is_ephemeral=False).status_code == 200
    opened = bot.slack.wait_for("views.open", count=before + 2)[-1]
    assert "deployment #" not in json.dumps(opened.args["view"])


def test_the_command_is_in_help() -> None:
    assert "/templates ssh-key" in json.dumps(help_message(3))


def test_a_person_of_another_team_changes_no_keys(bot: BotHarness) -> None:
    view = open_modal(bot)
    carol = "U0CAROL09"
    bot.slack.users_team[carol] = "T0ELSEWHERE"  # Slack Connect: a person of another team
    outsider = {"id": carol, "username": "carol", "name": "carol", "team_id": "T0ELSEWHERE"}
    sent = {
        **view,
        "state": {
            "values": {
                input_block(view): {
                    blocks.ACTION_ADD: {"type": "plain_text_input", "value": public_line()}
                }
            }
        },
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "gpu-team"},
        "user": outsider,
        "api_app_id": "A0GPUBOT01",
        "trigger_id": "1.2.submit",
        "view": sent,
    }
    answer = bot.interaction(payload).json()
    assert answer["response_action"] == "errors"
    assert NOT_A_MEMBER in json.dumps(answer)
    assert keys_of(bot, carol) == []


@pytest.mark.parametrize("where", ["modal", "command", "filter"])
def test_a_private_key_is_refused_and_stored_nowhere(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger of the process, DEBUG included
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )
    if where == "modal":
        view = open_modal(bot)
        answer = submit(bot, view, pem)
        assert answer == {"response_action": "errors", "errors": {input_block(view): ANY}}
        assert answer["errors"][input_block(view)] == PRIVATE_KEY_TEXT
        shown = json.dumps(answer)
    elif where == "command":
        view = open_modal(bot, f"ssh-key {pem}")
        shown = json.dumps(view)
        assert PRIVATE_KEY_TEXT in shown and rows(view) == []
    else:
        response = bot.command(pem)
        shown = response.text
        assert PRIVATE_KEY_TEXT in json.loads(shown)["text"]
    assert "Treat it as leaked" in shown

    assert keys_of(bot) == []
    stored = every_value(bot.services.session_factory)
    on_disk = database_bytes(bot)
    wait_until(lambda: "private key" in caplog.text or where == "filter")
    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    sent = slack_traffic(bot) + shown
    for part in secret_parts(pem):
        assert part not in stored
        assert part.encode() not in on_disk
        assert part not in logged, part
        assert part not in sent


def test_a_modal_slack_does_not_open_is_said_privately(bot: BotHarness) -> None:
    bot.slack.fail("views.open", "expired_trigger_id")
    line = public_line()
    assert bot.command(f"ssh-key {line}").status_code == 200
    (answer,) = bot.slack.wait_for("response_url")
    text = str(answer.args.get("text"))
    assert "Added your ED25519 key" in text and "expired_trigger_id" in text
    assert answer.args.get("response_type") == "ephemeral"
    assert len(keys_of(bot)) == 1
