"""Block Kit builders for the catalog, called directly (no Slack)."""

from __future__ import annotations

import json

import pytest
from slack_sdk.models.blocks import SectionBlock

from bot.slack.blocks import templates as blocks
from bot.slack.blocks.common import BlockLimitError, message_payload
from catalog import Template, TemplateMatch


def make_template(index: int, **overrides: object) -> Template:
    data: dict[str, object] = {
        "slug": f"t-{index:03d}",
        "name": f"Template {index:03d} " + "x" * 60,
        "description": "A long description " * 10,
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
    data.update(overrides)
    return Template.model_validate(data)


@pytest.mark.parametrize("count", [1, 10, 11, 60, 500])
def test_every_page_fits_slack_limits(count: int) -> None:
    matches = [TemplateMatch(make_template(i), None) for i in range(count)]
    pages = -(-count // blocks.PAGE_SIZE)
    seen: list[str] = []
    for page in range(pages):
        payload = blocks.template_list_message(matches, query_text="q" * 2000, page=page)
        assert len(payload["blocks"]) <= 50
        assert len(json.dumps(payload["blocks"])) < 50_000
        for block in payload["blocks"]:
            for element in block.get("elements") or []:
                if element.get("type") == "button":
                    assert len(element["value"]) <= 2000
                    assert len(element["text"]["text"]) <= 75
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= 3000
        seen += [
            e["value"]
            for b in payload["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == blocks.ACTION_DEPLOY
        ]
    assert seen == [f"t-{i:03d}" for i in range(count)]


def test_page_is_clamped_and_paging_value_round_trips() -> None:
    matches = [TemplateMatch(make_template(i), None) for i in range(25)]
    last = blocks.template_list_message(matches, page=99)
    assert "page 3 of 3" in json.dumps(last)
    assert blocks.parse_page_value(blocks.page_value("gpu 12gb", 2)) == ("gpu 12gb", 2)
    assert blocks.parse_page_value("not json") == ("", 0)
    assert blocks.parse_page_value('{"p": -4}') == ("", 0)


def test_message_payload_refuses_more_than_fifty_blocks() -> None:
    too_many = [SectionBlock(text="x") for _ in range(51)]
    with pytest.raises(BlockLimitError):
        message_payload(too_many, "x")


def test_no_match_with_sixty_templates_stays_under_section_limit() -> None:
    from catalog import Catalog

    catalog = Catalog([make_template(i) for i in range(60)])
    payload = blocks.no_match_message("zzz", catalog)
    body = payload["blocks"][1]["text"]["text"]
    assert len(body) <= 3000
    assert "more: `/templates` shows them all" in body


def test_details_never_shows_secret_values() -> None:
    template = make_template(
        1,
        env={"HF_TOKEN": "hf_real_secret", "MODEL": "Qwen/Qwen2.5-1.5B-Instruct"},
        secret_env=["HF_TOKEN"],
        password_env="WEB_PASSWORD",
    )
    view = blocks.template_details_view(template).to_dict()
    text = json.dumps(view)
    assert "hf_real_secret" not in text
    assert "`HF_TOKEN` (secret)" in text
    assert "`WEB_PASSWORD` (secret)" in text
    assert "`MODEL`" in text
    assert view["title"]["text"] == "Template details"
