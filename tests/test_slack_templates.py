"""``/templates`` through the real app: signed HTTP requests in, what the bot sent out."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import yaml

from bot.playground.slack_api import FakeSlack
from tests.blockkit import buttons, texts
from tests.fixtures.slack import ALICE, BotFactory, BotHarness, sign


def write_templates(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        data = {
            "slug": f"team-model-{index:02d}",
            "name": f"Team model {index:02d}",
            "description": f"Our fine-tuned model number {index}",
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
        (folder / f"model-{index:02d}.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_templates_lists_the_four_builtins_withbuttons(bot: BotHarness) -> None:
    started = time.monotonic()
    response = bot.command("")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 3.0  # Slack's ack window
    payload = response.json()
    assert payload["response_type"] == "ephemeral"
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header"
    text = texts(blocks)
    for name, figures in [
        ("JupyterLab", "VRAM 4 GB min · 8 GB recommended · CUDA ≥ 11.8"),
        ("Stable Diffusion WebUI", "VRAM 8 GB min · 12 GB recommended · CUDA ≥ 11.8"),
        ("ComfyUI", "VRAM 6 GB min · 10 GB recommended · CUDA ≥ 11.8"),
        ("vLLM", "VRAM 16 GB min · 24 GB recommended · CUDA ≥ 12.1"),
    ]:
        assert name in text
        assert figures in text
    deploy = [b for b in buttons(blocks) if b["action_id"] == "deploy_template"]
    details = [b for b in buttons(blocks) if b["action_id"] == "template_details"]
    assert [b["value"] for b in deploy] == ["jupyter-lab", "stable-diffusion", "comfy-ui", "vllm"]
    assert [b["value"] for b in details] == [b["value"] for b in deploy]
    assert "/templates 12gb" in texts(blocks[-1:])  # footer on how to filter


def test_word_filter_matches_name_slug_and_category(bot: BotHarness) -> None:
    by_name = bot.command("comfy").json()
    assert [
        b["value"] for b in buttons(by_name["blocks"]) if b["action_id"] == "deploy_template"
    ] == ["comfy-ui"]
    by_category = bot.command("llm-serving").json()
    values = [
        b["value"] for b in buttons(by_category["blocks"]) if b["action_id"] == "deploy_template"
    ]
    assert values == ["vllm"]


@pytest.mark.parametrize("text", ["12gb", "12 GB", "vram:12"])
def test_vram_filter_shows_what_runs_and_marks_recommended(bot: BotHarness, text: str) -> None:
    blocks = bot.command(text).json()["blocks"]
    deploy = [b["value"] for b in buttons(blocks) if b["action_id"] == "deploy_template"]
    assert deploy == ["jupyter-lab", "stable-diffusion", "comfy-ui"]  # vLLM needs 16 GB
    sections = {b["block_id"]: b["text"]["text"] for b in blocks if b["type"] == "section"}
    assert "12 GB meets the recommendation" in sections["tpl_stable-diffusion"]
    assert "12 GB meets the recommendation" in sections["tpl_jupyter-lab"]
    assert "12 GB meets the recommendation" in sections["tpl_comfy-ui"]
    eight = bot.command("8gb").json()["blocks"]
    sections = {b["block_id"]: b["text"]["text"] for b in eight if b["type"] == "section"}
    assert "below the recommended 12 GB" in sections["tpl_stable-diffusion"]
    assert "8 GB meets the recommendation" in sections["tpl_jupyter-lab"]


def test_help_explains_usage(bot: BotHarness) -> None:
    text = texts(bot.command("help").json()["blocks"])
    assert "/templates 12gb" in text and "vram:12" in text and "/templates mine" in text


def test_no_match_lists_what_exists(bot: BotHarness) -> None:
    payload = bot.command("tensorflow-serving").json()
    text = texts(payload["blocks"])
    assert "No template matches “tensorflow-serving”" in text
    for slug in ("jupyter-lab", "stable-diffusion", "comfy-ui", "vllm"):
        assert slug in text
    assert not buttons(payload["blocks"])
    tiny = texts(bot.command("2gb").json()["blocks"])
    assert "No template runs on a 2 GB GPU; the smallest needs 4 GB" in tiny


def test_details_opens_a_modal_with_image_ports_env_names(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    response = bot.block_action("template_details", "jupyter-lab")
    assert response.status_code == 200
    call = fake_slack.wait_for("views.open")[0]
    assert call.args["trigger_id"].endswith("trigger1")
    view = call.args["view"]
    text = texts(view["blocks"])
    template = bot.runtime.services.catalog.get("jupyter-lab")
    assert template is not None
    assert template.docker_image in text
    assert "8888" in text
    assert "4 GB minimum · 8 GB recommended" in text
    assert template.docs_url in text
    if template.password_env:
        assert f"`{template.password_env}` (secret)" in text


def test_details_of_unknown_template_says_so(bot: BotHarness, fake_slack: FakeSlack) -> None:
    bot.block_action("template_details", "no-such-template")
    call = fake_slack.wait_for("response_url")[0]
    assert "no longer in the catalog" in call.args["text"]
    assert not fake_slack.calls_to("views.open")


def test_deploy_button_is_acknowledged(bot: BotHarness) -> None:
    response = bot.block_action("deploy_template", "vllm")
    assert response.status_code == 200


def test_sixty_templates_page_within_block_kit_limits(
    bot_factory: BotFactory, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = bot_factory(catalog_dir=write_templates(tmp_path / "catalog", 56))
    first = bot.command("").json()
    assert len(first["blocks"]) <= 50
    assert "page 1 of 6" in texts(first["blocks"])
    next_button = [b for b in buttons(first["blocks"]) if b["action_id"] == "templates_page_next"]
    assert len(next_button) == 1
    assert not [b for b in buttons(first["blocks"]) if b["action_id"] == "templates_page_prev"]

    bot.block_action("templates_page_next", next_button[0]["value"])
    second = fake_slack.wait_for("response_url")[0].args
    assert second["replace_original"] is True
    assert "page 2 of 6" in texts(second["blocks"])
    assert len(second["blocks"]) <= 50
    seen = {
        b["value"]
        for b in buttons(first["blocks"] + second["blocks"])
        if b["action_id"] == "deploy_template"
    }
    assert len(seen) == 20
    prev = [b for b in buttons(second["blocks"]) if b["action_id"] == "templates_page_prev"]
    assert json.loads(prev[0]["value"]) == {"q": "", "p": 0}


def test_filter_survives_paging(
    bot_factory: BotFactory, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = bot_factory(catalog_dir=write_templates(tmp_path / "catalog", 30))
    first = bot.command("team").json()
    assert "page 1 of 3" in texts(first["blocks"])
    button = [b for b in buttons(first["blocks"]) if b["action_id"] == "templates_page_next"][0]
    bot.block_action("templates_page_next", button["value"])
    second = fake_slack.wait_for("response_url")[0].args
    assert "matching “team”" in texts(second["blocks"])
    assert "page 2 of 3" in texts(second["blocks"])


class TestSignature:
    """Bad, missing or stale signatures get 401 and no listener runs."""

    def _details_body(self) -> str:
        from urllib.parse import urlencode

        payload = {
            "type": "block_actions",
            "user": {"id": ALICE},
            "team": {"id": "T0GPU0001"},
            "trigger_id": "1.2.x",
            "container": {"type": "message", "channel_id": "C1", "is_ephemeral": True},
            "actions": [{"type": "button", "action_id": "template_details", "value": "vllm"}],
        }
        return urlencode({"payload": json.dumps(payload)})

    @pytest.mark.parametrize(
        "headers",
        [
            pytest.param({}, id="missing"),
            pytest.param({"X-Slack-Request-Timestamp": str(int(time.time()))}, id="no-signature"),
            pytest.param(sign("other body"), id="wrong-body"),
        ],
    )
    def test_bad_signature_is_refused(
        self, bot: BotHarness, fake_slack: FakeSlack, headers: dict[str, str]
    ) -> None:
        body = self._details_body()
        response = bot.post(body, "application/x-www-form-urlencoded", headers=headers)
        assert response.status_code == 401
        time.sleep(0.2)
        assert not fake_slack.calls_to("views.open")

    def test_wrong_secret_is_refused(self, bot: BotHarness, fake_slack: FakeSlack) -> None:
        body = self._details_body()
        response = bot.post(
            body, "application/x-www-form-urlencoded", headers=sign(body, secret="not-the-secret")
        )
        assert response.status_code == 401
        time.sleep(0.2)
        assert not fake_slack.calls_to("views.open")

    def test_a_refused_request_is_logged_without_its_body(
        self, bot: BotHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A setup form carries a Vast.ai key; Bolt logs a refused request with its body, so
        # the edge refuses it first and logs one line without it.
        body = self._details_body().replace("vllm", "secret-vast-key-0123456789")
        caplog.set_level(logging.DEBUG)
        stale = sign(body, timestamp=int(time.time()) - 6 * 60)
        assert bot.post(body, "application/x-www-form-urlencoded", headers=stale).status_code == 401
        assert "refused POST /slack/events from 127.0.0.1: 401 timestamp" in caplog.text
        assert "secret-vast-key" not in caplog.text

    def test_stale_timestamp_is_refused(self, bot: BotHarness, fake_slack: FakeSlack) -> None:
        body = self._details_body()
        stale = sign(body, timestamp=int(time.time()) - 6 * 60)
        response = bot.post(body, "application/x-www-form-urlencoded", headers=stale)
        assert response.status_code == 401
        time.sleep(0.2)
        assert not fake_slack.calls_to("views.open")

    def test_correct_signature_runs_the_listener(
        self, bot: BotHarness, fake_slack: FakeSlack
    ) -> None:
        body = self._details_body()
        response = bot.post(body, "application/x-www-form-urlencoded", headers=sign(body))
        assert response.status_code == 200
        fake_slack.wait_for("views.open")

    def test_stale_command_gets_no_list(self, bot: BotHarness) -> None:
        from urllib.parse import urlencode

        body = urlencode(
            {"command": "/templates", "text": "", "user_id": ALICE, "team_id": "T0GPU0001"}
        )
        response = bot.post(
            body,
            "application/x-www-form-urlencoded",
            headers=sign(body, timestamp=int(time.time()) - 301),
        )
        assert response.status_code == 401
        assert "JupyterLab" not in response.text


def test_healthz(bot: BotHarness) -> None:
    response = bot.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["ok"] is True
