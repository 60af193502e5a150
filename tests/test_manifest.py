"""The Slack app manifest validates against Slack's own JSON Schema and has what the bot needs."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).resolve().parent / "specs" / "slack-manifest.schema.1.0.0.json"


def _schema() -> dict[str, object]:
    return json.loads(SCHEMA.read_text())


def test_manifest_is_valid() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    jsonschema.validate(manifest, _schema())


def test_manifest_has_command_interactivity_home_and_scopes() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    command = manifest["features"]["slash_commands"][0]
    assert command["command"] == "/templates" and command["usage_hint"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "chat:write.public", "im:write", "users:read"} <= scopes


def test_oauth_manifest_is_valid_and_installs_by_oauth_over_http() -> None:
    manifest = yaml.safe_load((ROOT / "manifest.oauth.yml").read_text())
    jsonschema.validate(manifest, _schema())
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
    events = set(settings["event_subscriptions"]["bot_events"])
    assert {"app_home_opened", "app_uninstalled", "tokens_revoked"} <= events
    assert settings["event_subscriptions"]["request_url"].endswith("/slack/events")
    assert settings["interactivity"]["request_url"].endswith("/slack/events")
    single = yaml.safe_load((ROOT / "manifest.yml").read_text())
    assert manifest["oauth_config"]["scopes"] == single["oauth_config"]["scopes"]
    assert (
        manifest["features"]["slash_commands"][0]["usage_hint"]
        == (single["features"]["slash_commands"][0]["usage_hint"])
    )
