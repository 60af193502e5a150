"""The setup modal's Block Kit (pure): Slack's limits, the key never pre-filled, what each key
state says, reading the inputs back, the confirmation."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from bot.slack import limits as slack_limits
from bot.slack.blocks import setup as blocks

FORM = blocks.SetupForm(
    key_source="workspace",
    key_hint="key ending …a1b2",
    vast_user_id="1001",
    admins=["U0CAROL03"],
    bot_admins=["U0ADMIN01"],
    approvers=["U0APPROV1"],
    digest_channel="C0DIGEST01",
    approval_dph=2.5,
    default_lifetime_hours=8,
    max_lifetime_hours=72,
)


def view_of(form: blocks.SetupForm) -> dict[str, Any]:
    return dict(blocks.setup_view(form).to_dict())


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


@pytest.mark.parametrize("source", ["workspace", "env", "none"])
def test_the_modal_keeps_slacks_limits(source: blocks.KeySource) -> None:
    many = [f"U{n:08d}" for n in range(150)]
    form = replace(FORM, key_source=source, admins=many, approvers=many, bot_admins=many)
    view = view_of(form)
    assert slack_limits.check_view(view) == []
    assert len(block(view, blocks.BLOCK_ADMINS)["element"]["initial_users"]) == 100
    assert view["callback_id"] == blocks.CALLBACK_SETUP
    assert len(view["title"]["text"]) <= slack_limits.MAX_VIEW_TITLE


def test_the_key_input_is_only_there_for_workspace_keys_and_never_prefilled() -> None:
    view = view_of(FORM)
    key = block(view, blocks.BLOCK_KEY)
    assert key["optional"] is True and "initial_value" not in key["element"]
    assert "never shown again" in key["hint"]["text"]
    for source in ("env", "none"):
        other = view_of(replace(FORM, key_source=source))
        assert blocks.BLOCK_KEY not in [b.get("block_id") for b in other["blocks"]]


def test_the_key_state_says_where_the_key_comes_from() -> None:
    assert "key ending …a1b2 (account #1001)" in blocks.key_state_text(FORM)
    none_yet = replace(FORM, key_hint=None, vast_user_id=None)
    assert blocks.NO_KEY_TEXT in blocks.key_state_text(none_yet)
    env = blocks.key_state_text(replace(FORM, key_source="env", vast_user_id=None))
    assert "VAST_API_KEY" in env and "environment wins" in env
    assert "simulator" in blocks.key_state_text(replace(FORM, key_source="none"))


def test_the_inputs_start_from_the_current_settings() -> None:
    view = view_of(FORM)
    assert block(view, blocks.BLOCK_APPROVERS)["element"]["initial_users"] == ["U0APPROV1"]
    assert block(view, blocks.BLOCK_DIGEST)["element"]["initial_conversation"] == "C0DIGEST01"
    assert block(view, blocks.BLOCK_APPROVAL_DPH)["element"]["initial_value"] == "2.5"
    assert block(view, blocks.BLOCK_DEFAULT_LIFETIME)["element"]["initial_value"] == "8"
    assert block(view, blocks.BLOCK_MAX_LIFETIME)["element"]["initial_value"] == "72"
    assert "<@U0ADMIN01>" in json.dumps(block(view, blocks.BLOCK_ALWAYS_ADMINS))
    bare = view_of(replace(FORM, approval_dph=None, digest_channel=None, approvers=[]))
    assert "initial_value" not in block(bare, blocks.BLOCK_APPROVAL_DPH)["element"]
    assert "initial_conversation" not in block(bare, blocks.BLOCK_DIGEST)["element"]


def test_setup_values_reads_what_is_there_and_leaves_out_what_is_not() -> None:
    values = {
        blocks.BLOCK_KEY: {blocks.ACTION_KEY: {"value": " abc "}},
        blocks.BLOCK_ADMINS: {blocks.ACTION_ADMINS: {"selected_users": ["U1", "U2"]}},
        blocks.BLOCK_APPROVERS: {blocks.ACTION_APPROVERS: {"selected_users": None}},
        blocks.BLOCK_DIGEST: {blocks.ACTION_DIGEST: {"selected_conversation": None}},
        blocks.BLOCK_APPROVAL_DPH: {blocks.ACTION_APPROVAL_DPH: {"value": None}},
        blocks.BLOCK_DEFAULT_LIFETIME: {blocks.ACTION_DEFAULT_LIFETIME: {"value": "4.5"}},
    }
    assert blocks.setup_values({"state": {"values": values}}) == {
        "key": " abc ",
        "admins": ["U1", "U2"],
        "approvers": [],
        "digest_channel": None,
        "approval_dph": None,
        "default_lifetime_hours": "4.5",
    }
    assert blocks.setup_values({}) == {}
    assert blocks.setup_values({"state": {"values": "junk"}}) == {}


def test_the_confirmation_names_the_key_and_the_settings() -> None:
    text = blocks.saved_text(FORM, key_saved=True)
    assert "Saved. Vast.ai key ending …a1b2 (account #1001)." in text
    assert "<@U0CAROL03>" in text and "<#C0DIGEST01>" in text and "$2.50/h" in text
    assert "8 h by default, at most 72 h" in text
    plain = blocks.saved_text(replace(FORM, approvers=[], digest_channel=None), key_saved=False)
    assert "key ending" not in plain and "the bot admins" in plain and "Daily digest: none" in plain
