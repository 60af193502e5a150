"""A reviewer's attempts to break the edge: each test is a defect found after the merge
(see the commit that adds it), reproduced through the smallest real path."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from bot.slack.blocks import deploy as deploy_blocks
from bot.vast.errors import classify
from tests.fixtures.slack import BotHarness
from tests.test_deploy import pick_offer, submitted_view
from tests.test_mrkdwn_escaping import LIVE, evil_dep, mrkdwn_texts
from tests.test_payloads_app import submission

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


# -- private_metadata: an integer too large for a float -----------------------------------------

#: A picker's metadata whose ``max_dph`` is an integer of 400 digits (valid JSON, 3000 characters
#: at most: it passes the gate and bounded_json, and ``float()`` of it overflows).
HUGE_MAX_DPH = '{"template": "jupyter-lab", "max_dph": 1' + "0" * 400 + "}"


def test_picker_metadata_with_a_huge_integer_is_refused_as_not_ours() -> None:
    """``from_metadata`` promises ValueError for anything not ours; its callers catch only that."""
    from bot.slack.blocks.picker import PickerState

    state = PickerState.from_metadata(HUGE_MAX_DPH)
    assert state.template == "jupyter-lab" and state.max_dph is None


def test_a_submission_with_a_huge_integer_in_its_metadata_is_answered_quietly(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the real app: no traceback in the log, an answer that is not "something went
    wrong on our side", nothing rented."""
    caplog.set_level(logging.INFO)
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, metadata=HUGE_MAX_DPH)
    response = bot.interaction(submission(view))
    assert response.status_code == 200
    assert "Something went wrong" not in response.text
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


# -- team_domain: a URL built from a payload's field -------------------------------------------


@pytest.mark.parametrize(
    "domain", ["evil.example/x?a=", "gpu-team|click here", "a>b", "x.evil.example#", "GPU team"]
)
def test_status_link_is_built_only_from_a_slack_domain_label(domain: str) -> None:
    """``team_domain`` (a slash command's field, ``team.domain`` of a click) is Slack's
    workspace subdomain; anything else must not become the host of the listing's link (nor
    break out of ``<url|status message>``): the link falls back to ``slack.com/app_redirect``."""
    from urllib.parse import urlsplit

    from bot.slack.blocks.manage import status_link

    dep = replace(evil_dep(), message_channel="C0GPU0001", message_ts="1732900000.000100")
    link = status_link(dep, team_domain=domain)
    assert link is not None
    host = urlsplit(link).hostname or ""
    assert host == "slack.com" or host.endswith(".slack.com") and host.count(".") == 2, link
    assert not any(ch in link for ch in "|<> "), link
