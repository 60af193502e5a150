"""A reviewer's attempts to break the edge: each test is a defect found after the merge
(see the commit that adds it), reproduced through the smallest real path."""

from __future__ import annotations

from bot.blocks import deploy as deploy_blocks
from bot.vast.errors import classify
from tests.test_mrkdwn_escaping import LIVE, evil_dep, mrkdwn_texts

#: What a Vast.ai error answer may say in its ``msg`` (it is Vast.ai's text: untrusted).
EVIL_MSG = "<!channel> offer gone, see <https://evil.example|Vast.ai status>"


def test_vast_error_text_reaches_the_channel_escaped() -> None:
    """A create refused with a ``msg`` of Vast.ai's becomes the failure reason posted in the
    channel (thread reply and status message): its markup must not ping or disguise a link."""
    error = classify(
        400,
        '{"error": "invalid_args", "msg": "' + EVIL_MSG.replace('"', '\\"') + '"}',
        "application/json",
        operation="create",
    )
    assert error is not None
    assert "offer gone" in error.user_message
    note = deploy_blocks.failure_note(evil_dep(), error.user_message)
    for text in mrkdwn_texts(note):
        for live in LIVE:
            assert live not in text, text
