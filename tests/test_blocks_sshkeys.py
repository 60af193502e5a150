"""The SSH keys modal's Block Kit (bot.slack.blocks.sshkeys, pure): within Slack's limits at its
fullest, comments shown as typed (escaped, cut), the box's revision, and everything read back
from Slack bounded (forged metadata, state and button values)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.slack import limits as slack_limits
from bot.slack.blocks import sshkeys as blocks

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FP = "SHA256:gAdiiThqA9XVTfn6WI2H0DFFauq61mjEUbxgfKFu9p8"


@dataclass(frozen=True)
class Key:
    id: int
    key_type: str = "ssh-ed25519"
    fingerprint: str = FP
    comment: str | None = "alice@laptop"
    created_at: datetime = T0


def view_dict(**kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("max_keys", 20)
    return blocks.keys_view(**kwargs).to_dict()


def test_the_fullest_modal_is_within_slack_limits() -> None:
    keys = [Key(i, comment="ç" * 200 + "<&>") for i in range(1, 21)]
    for view in (
        view_dict(keys=keys, notice="x" * 5000, deployment_id=2**31 - 1, revision=999_999),
        view_dict(keys=keys[:19], notice="✅ Added", deployment_id=12),
        view_dict(keys=[]),
    ):
        assert slack_limits.check_api_call("views.open", {"view": view}) == []
        assert len(view["blocks"]) <= 27


def test_at_the_limit_there_is_no_box_and_no_submit() -> None:
    full = view_dict(keys=[Key(i) for i in range(1, 21)])
    assert not any(b["type"] == "input" for b in full["blocks"]) and "submit" not in full
    assert "Remove one to add another" in json.dumps(full)
    room = view_dict(keys=[Key(1)])
    assert room["submit"]["text"] == "Add key"
    (box,) = [b for b in room["blocks"] if b["type"] == "input"]
    assert box["block_id"] == "ssh_key_add-0"
    assert box["element"]["multiline"] is True and box["element"]["max_length"] == 3000
    assert view_dict(keys=[], revision=3)["blocks"][-1]["block_id"] == "ssh_key_add-3"


def test_each_row_escapes_the_comment_and_has_a_confirmed_remove() -> None:
    view = view_dict(keys=[Key(7, comment="<!here> me & <https://x|y>"), Key(8, comment=None)])
    rows = [b for b in view["blocks"] if b.get("block_id", "").startswith(blocks.KEY_BLOCK)]
    assert [r["block_id"] for r in rows] == ["ssh_key_row-7", "ssh_key_row-8"]
    first = rows[0]["text"]["text"]
    assert "&lt;!here&gt; me &amp; &lt;https://x|y&gt;" in first and "<!here>" not in first
    assert f"*ED25519*  `{FP}`" in first and "<!date^" in first
    assert "_no comment_" in rows[1]["text"]["text"]
    button = rows[0]["accessory"]
    assert (button["action_id"], button["value"], button["style"]) == (
        blocks.ACTION_REMOVE,
        "7",
        "danger",
    )
    assert FP in button["confirm"]["text"]["text"]


def test_the_notice_is_escaped() -> None:
    view = view_dict(keys=[], notice="⚠️ <!channel> bad")
    notice = next(b for b in view["blocks"] if b.get("block_id") == blocks.BLOCK_NOTICE)
    assert notice["text"]["text"] == "⚠️ &lt;!channel&gt; bad"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ('{"rev":2,"dep":12}', (2, 12)),
        ('{"rev":2,"dep":null}', (2, None)),
        ("", (0, None)),
        ("not json", (0, None)),
        ("[1,2]", (0, None)),
        ('{"rev":true,"dep":"12"}', (0, None)),
        ('{"rev":-1,"dep":0}', (0, None)),
        ('{"rev":10000000000,"dep":99999999999}', (0, None)),
        ('{"rev":1.5,"dep":1e3}', (0, None)),
        ("[" * 5000, (0, None)),
    ],
)
def test_metadata_read_back_is_bounded(metadata: str, expected: tuple[int, int | None]) -> None:
    assert blocks.read_metadata({"private_metadata": metadata}) == expected
    assert blocks.read_metadata({}) == (0, None)


def test_metadata_round_trip() -> None:
    view = view_dict(keys=[], revision=4, deployment_id=99)
    assert blocks.read_metadata(view) == (4, 99)


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (
            {"state": {"values": {"ssh_key_add-3": {"ssh_key_paste": {"value": "ssh-ed25519 A"}}}}},
            ("ssh_key_add-3", "ssh-ed25519 A"),
        ),
        (
            {"state": {"values": {"ssh_key_add-0": {"ssh_key_paste": {"value": None}}}}},
            ("ssh_key_add-0", None),
        ),
        ({"state": {"values": {"other": {"ssh_key_paste": {"value": "x"}}}}}, (None, None)),
        ({"state": {"values": {"ssh_key_add-1": {"other": {"value": "x"}}}}}, (None, None)),
        ({"state": {"values": {"ssh_key_add-1": "nope"}}}, (None, None)),
        (
            {"state": {"values": {"ssh_key_add-1": {"ssh_key_paste": {"value": 5}}}}},
            ("ssh_key_add-1", None),
        ),
        ({"state": None}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_reading_the_submission(view: dict[str, Any], expected: tuple[Any, Any]) -> None:
    assert blocks.read_submission(view) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7),
        ("2147483647", 2**31 - 1),
        ("2147483648", None),
        ("0", None),
        ("-1", None),
        ("07", None),
        ("", None),
        (None, None),
        ("1 OR 1=1", None),
        ("١٢", None),
        (7, None),
    ],
)
def test_key_ids_from_buttons(value: object, expected: int | None) -> None:
    assert blocks.parse_key_id(value) == expected
