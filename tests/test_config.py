"""Configuration: clear one-line errors, no secret values, HTTP vs Socket Mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "VAST_", "BOT_", "CATALOG_", "DATABASE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here


def test_missing_bot_token_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch, tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SLACK_BOT_TOKEN is missing" in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_token_is_named_but_not_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-user-token-secret-value")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cr3t-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SLACK_BOT_TOKEN" in str(info.value)
    assert "xoxp-user-token-secret-value" not in str(info.value)


def test_http_mode_needs_signing_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is missing"):
        load_settings()
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    settings = load_settings()
    assert settings.socket_mode and settings.simulated


def test_values_from_env_file_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_env(monkeypatch, tmp_path)
    (tmp_path / ".env").write_text(
        "SLACK_BOT_TOKEN=xoxb-from-file\nSLACK_SIGNING_SECRET=abc\nBOT_ADMINS=U1, U2,\n"
        "STATUS_POLL_SECONDS=5\n"
    )
    settings = load_settings()
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-file"
    assert settings.bot_admins == frozenset({"U1", "U2"})
    assert settings.status_poll_seconds == 5
    assert settings.port == 3000
    assert settings.deploy_timeout_minutes == 30
    assert settings.vast_api_url == "https://console.vast.ai"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert "xoxb-from-file" not in repr(settings)


def test_malformed_number(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_env(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="PORT is invalid"):
        load_settings(slack_bot_token="xoxb-1", slack_signing_secret="x", port="eighty")


def test_settings_type_is_exported() -> None:
    assert Settings.model_fields["status_poll_seconds"].default == 15


def test_python_m_bot_without_tokens_exits_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "SLACK_BOT_TOKEN is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_socket_mode_builds_without_a_signing_secret(tmp_path: Path) -> None:
    from bot.runtime import build_runtime
    from tests.fakes.slack_api import FakeSlack

    with FakeSlack() as fake:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            slack_bot_token="xoxb-1",
            slack_app_token="xapp-1",
            slack_api_url=fake.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        runtime = build_runtime(settings)
        try:
            assert settings.socket_mode and settings.slack_signing_secret is None
            assert fake.calls_to("auth.test")  # Bolt checked the token once
        finally:
            runtime.close()
