"""Slack's payload limits: the checker, the app's client that refuses locally, the fake Slack that
refuses what real Slack refuses, and the defects they found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.playground.slack_api import FakeSlack
from bot.slack import limits as slack_limits
from bot.slack.app import CheckedWebClient, error_text
from bot.slack.blocks import picker
from bot.slack.blocks.templates import page_value, parse_page_value, template_details_view
from catalog import Template, validate_dir
from catalog.models import DOCS_URL_MAX
from tests.blockkit import buttons
from tests.fixtures.slack import BotFactory, BotHarness

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
INPUT = {
    "type": "input",
    "block_id": "in",
    "label": {"type": "plain_text", "text": "Name"},
    "element": {"type": "plain_text_input", "action_id": "name"},
}


def _modal(**extra: Any) -> dict[str, Any]:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Deploy"}, "blocks": []}
    view.update(extra)
    return view


def _button(value: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": "b",
                "value": value,
                "text": {"type": "plain_text", "text": "Go"},
            }
        ],
    }


def _rules(violations: list[slack_limits.Violation]) -> set[str]:
    return {v.rule for v in violations}


# --- the checker ----------------------------------------------------------------------------


def test_valid_payloads_pass() -> None:
    assert slack_limits.check_message_blocks([SECTION, _button("x" * 2000)]) == []
    submit = {"type": "plain_text", "text": "Deploy"}
    assert slack_limits.check_view(_modal(blocks=[INPUT], submit=submit)) == []
    assert slack_limits.check_view({"type": "home", "blocks": [SECTION] * 100}) == []


@pytest.mark.parametrize(
    ("view", "rule"),
    [
        (_modal(blocks=[INPUT]), "modal_submit_required"),
        (_modal(blocks=[SECTION] * 101), "block_count"),
        (_modal(title={"type": "plain_text", "text": "x" * 25}), "view_title"),
        (_modal(close={"type": "plain_text", "text": "x" * 25}), "view_close"),
        (_modal(private_metadata="x" * 3001), "private_metadata"),
        (
            _modal(blocks=[{**SECTION, "block_id": "a"}, {**SECTION, "block_id": "a"}]),
            "block_id_unique",
        ),
        (_modal(blocks=[_button("x" * 2001)]), "button_value"),
    ],
)
def test_view_rules(view: dict[str, Any], rule: str) -> None:
    assert rule in _rules(slack_limits.check_view(view))


def test_message_rules() -> None:
    assert "block_count" in _rules(slack_limits.check_message_blocks([SECTION] * 51))
    long_text = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert _rules(slack_limits.check_message_blocks([long_text])) == {"section_text"}
    option = {"text": {"type": "plain_text", "text": "x" * 76}, "value": "v" * 151}
    select = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "pick"},
        "accessory": {"type": "static_select", "action_id": "s", "options": [option]},
    }
    found = slack_limits.check_message_blocks([select])
    assert _rules(found) == {"option_text", "option_value"}
    assert found[0].slack_message() == (
        "[ERROR] must be less than 76 characters "
        "[json-pointer:/blocks/0/accessory/options/0/text/text]"
    )


def test_refusal_has_slacks_shape() -> None:
    view_refusal = slack_limits.refusal(
        "views.open", slack_limits.check_view(_modal(blocks=[INPUT]))
    )
    assert view_refusal == {
        "ok": False,
        "error": "invalid_arguments",
        "response_metadata": {
            "messages": [
                "[ERROR] submit is required when an input block is within the blocks array "
                "[json-pointer:/view/submit]"
            ]
        },
    }
    blocks = slack_limits.check_message_blocks([SECTION] * 51)
    message_refusal = slack_limits.refusal("chat.postMessage", blocks)
    assert message_refusal["error"] == "invalid_blocks"
    assert message_refusal["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]


# --- the app's client and the fake ----------------------------------------------------------


def test_fake_slack_refuses_even_when_the_checker_is_bypassed(fake_slack: FakeSlack) -> None:
    plain = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as raised:
        plain.views_open(trigger_id="1.2.3", view=_modal(blocks=[INPUT]))
    assert raised.value.response["error"] == "invalid_arguments"
    assert "submit is required" in raised.value.response["response_metadata"]["messages"][0]
    with pytest.raises(SlackApiError) as raised:
        plain.chat_postMessage(channel="C1", text="x", blocks=[SECTION] * 51)
    assert raised.value.response["error"] == "invalid_blocks"
    assert [method for method, _ in fake_slack.refusals] == ["views.open", "chat.postMessage"]
    plain.chat_postMessage(channel="C1", text="x", blocks=[SECTION])  # a valid one goes through


def test_checked_client_refuses_locally_with_slacks_answer(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    client = CheckedWebClient(token="xoxb-test", base_url=fake_slack.api_url)
    with pytest.raises(SlackApiError) as raised:
        client.views_update(view_id="V1", view=_modal(blocks=[INPUT]))
    assert raised.value.response["ok"] is False
    assert raised.value.response["error"] == "invalid_arguments"
    assert not fake_slack.calls_to("views.update")  # never sent
    assert "modal_submit_required" in caplog.text
    client.chat_postMessage(channel="C1", text="x", blocks=[SECTION])
    assert fake_slack.calls_to("chat.postMessage")


def test_listener_clients_check_too(bot: BotHarness) -> None:
    """Bolt builds a plain WebClient per request; the app swaps in the checked one."""
    from bot.slack.app import checked_copy

    copy = checked_copy(WebClient(token="xoxb-t", base_url="http://127.0.0.1:1/api/"))
    assert isinstance(copy, CheckedWebClient) and copy.token == "xoxb-t"


# --- defects ---------------------------------------------------------------------------------


def _template_yaml(slug: str, name: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": slug,
        "name": name,
        "description": "A test template",
        "category": "llm-serving",
        "docker_image": "vllm/vllm-openai:v0.6.3",
        "ports": [8000],
        "launch_command": "",
        "min_vram_gb": 16,
        "recommended_vram_gb": 24,
        "cuda_version": "12.1",
        "disk_gb": 60,
        "docs_url": "https://docs.vllm.ai/",
        "health_path": "/v1/models",
    }
    data.update(extra)
    return data


def test_f_emoji_query_paging_button_fits(
    bot_factory: BotFactory, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """Defect F: 😀 × 170 in the filter made a paging value of 6000+ characters (HTTP 500)."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for index in range(12):
        data = _template_yaml(f"smile-{index:02d}", f"😀 model {index:02d}")
        (folder / f"t{index}.yaml").write_text(yaml.safe_dump(data))
    bot = bot_factory(catalog_dir=folder)
    response = bot.command("😀 " * 170)
    assert response.status_code == 200
    blocks = response.json()["blocks"]
    assert slack_limits.check_message_blocks(blocks) == []
    paging = [b for b in buttons(blocks) if b["action_id"] == "templates_page_next"]
    assert len(paging) == 1 and len(paging[0]["value"]) <= 2000
    query, page = parse_page_value(paging[0]["value"])
    assert page == 1 and query and set(query.split()) == {"😀"}


def test_f_page_value_always_fits() -> None:
    for text in ("😀" * 500, "a" * 5000, "é" * 2000, ""):
        value = page_value(text, 3)
        assert len(value) <= 2000
        assert parse_page_value(value)[1] == 3


def test_g_catalog_refuses_a_docs_url_that_cannot_be_shown(tmp_path: Path) -> None:
    """Defect G: a docs_url over 3000 characters validated, then Details failed."""
    long_url = "https://docs.example.com/" + "a" * 3000
    (tmp_path / "a.yaml").write_text(
        yaml.safe_dump(_template_yaml("long", "Long", docs_url=long_url))
    )
    problems = validate_dir(tmp_path)
    assert len(problems) == 1
    assert "docs_url" in problems[0] and "3000" in problems[0] and str(DOCS_URL_MAX) in problems[0]


def test_g_the_longest_docs_url_allowed_is_shown() -> None:
    url = "https://docs.example.com/" + "a" * (DOCS_URL_MAX - 25)
    assert len(url) == DOCS_URL_MAX
    template = Template.model_validate(_template_yaml("long", "Long", docs_url=url))
    assert slack_limits.check_view(template_details_view(template).to_dict()) == []


def test_d_an_error_on_details_does_not_say_a_deployment_may_have_started(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect D: any listener error said "a deployment may have started"."""

    def broken(slug: str) -> None:
        raise RuntimeError("catalog exploded")

    monkeypatch.setattr(bot.services.catalog, "get", broken)
    bot.block_action("template_details", "vllm")
    text = fake_slack.wait_for("response_url")[0].args["text"]
    assert "Something went wrong" in text and "try again" in text
    assert "deployment may have started" not in text
    assert "reference" in text


def test_d_a_failed_deploy_submission_says_to_check_first() -> None:
    body = {"type": "view_submission", "view": {"callback_id": picker.CALLBACK_DEPLOY}}
    assert "a deployment may have started" in error_text(body, "abc123")
    assert "`abc123`" in error_text({"type": "block_actions"}, "abc123")


def test_i_a_dm_is_never_preselected(bot: BotHarness, fake_slack: FakeSlack) -> None:
    """Defect I: /templates in a DM preselected ``D…`` in a select of channels only."""
    bot.block_action("deploy_template", "jupyter-lab", channel="D0ALICEDM1")
    view = fake_slack.wait_for("views.update")[0].args["view"]
    channel = next(b for b in view["blocks"] if b.get("block_id") == picker.BLOCK_CHANNEL)
    assert "initial_conversation" not in channel["element"]
    assert json.loads(view["private_metadata"])["channel"] == "D0ALICEDM1"


def test_i_selectable_channel() -> None:
    assert picker.selectable_channel("C0DEPLOYS1") and picker.selectable_channel("G0PRIVATE1")
    for channel in ("D0ALICEDM1", "U0ALICE01", "", None):
        assert not picker.selectable_channel(channel)
