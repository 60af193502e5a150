"""Configuration: clear one-line errors, no secret values, HTTP vs Socket Mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

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
    assert settings.slack_bot_token is not None
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
    from bot.playground.slack_api import FakeSlack
    from bot.runtime import build_runtime

    with FakeSlack() as fake:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            slack_bot_token=SecretStr("xoxb-1"),
            slack_app_token=SecretStr("xapp-1"),
            slack_api_url=fake.api_url,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        )
        runtime = build_runtime(settings)
        try:
            assert settings.socket_mode and settings.slack_signing_secret is None
            assert fake.calls_to("auth.test")  # Bolt checked the token once
        finally:
            runtime.close()


# --- OAuth mode (many workspaces) ---------------------------------------------------------

FERNET_KEY = "x8Hc0v3aVgTQ5bq2oYtLJ3Zr9m1dWcEwUuS4pN6kRfA="  # a valid key, for tests only
CLIENT_SECRET = "c1ient-secret-value-0123456789"


def _oauth_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    values = {
        "SLACK_CLIENT_ID": "1111.2222",
        "SLACK_CLIENT_SECRET": CLIENT_SECRET,
        "SLACK_SIGNING_SECRET": "s3cr3t-value",
        "ENCRYPTION_KEY": FERNET_KEY,
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def _one_line(info: pytest.ExceptionInfo[ConfigError], *secrets: str) -> str:
    text = str(info.value)
    assert "\n" not in text
    for secret in secrets:
        assert secret not in text
    return text


def test_oauth_mode_needs_no_bot_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _oauth_env(monkeypatch, tmp_path, SLACK_REDIRECT_URI="https://bot.example.com/slack/oauth")
    settings = load_settings()
    assert settings.oauth_mode and not settings.socket_mode
    assert settings.slack_bot_token is None
    assert settings.slack_client_id == "1111.2222"
    assert settings.slack_redirect_uri == "https://bot.example.com/slack/oauth"
    assert settings.slack_scopes == (
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "users:read",
        "files:write",
    )
    assert settings.encryption_key is not None
    assert settings.encryption_key.get_secret_value() == FERNET_KEY
    assert FERNET_KEY not in repr(settings) and CLIENT_SECRET not in repr(settings)


def test_the_default_scopes_are_the_manifests() -> None:
    import yaml

    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    scopes = Settings.model_fields["slack_scopes"].default
    assert list(scopes) == manifest["oauth_config"]["scopes"]["bot"]


@pytest.mark.parametrize(
    ("given", "missing"),
    [("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"), ("SLACK_CLIENT_SECRET", "SLACK_CLIENT_ID")],
)
def test_client_id_and_secret_go_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, given: str, missing: str
) -> None:
    _oauth_env(monkeypatch, tmp_path, SLACK_BOT_TOKEN="xoxb-1")
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, CLIENT_SECRET, "1111.2222")
    assert text.startswith(f"{missing} is missing:")
    assert "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET" in text


def test_single_workspace_mode_without_bot_token_points_at_both_modes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cr3t-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, "s3cr3t-value")
    assert text.startswith("SLACK_BOT_TOKEN is missing: set it to the app's Bot User OAuth Token")
    assert "or set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth mode" in text


def test_oauth_mode_needs_an_encryption_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _oauth_env(monkeypatch, tmp_path, ENCRYPTION_KEY="")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, CLIENT_SECRET)
    assert text.startswith("ENCRYPTION_KEY is missing:")
    assert "Fernet.generate_key().decode()" in text


@pytest.mark.parametrize("oauth", [True, False], ids=["oauth", "single-workspace"])
def test_an_encryption_key_that_is_not_a_fernet_key_is_refused_unechoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, oauth: bool
) -> None:
    bad = "not-a-fernet-key-but-a-secret-anyway"
    _oauth_env(monkeypatch, tmp_path, ENCRYPTION_KEY=bad, SLACK_BOT_TOKEN="xoxb-1")
    if not oauth:
        monkeypatch.delenv("SLACK_CLIENT_ID")
        monkeypatch.delenv("SLACK_CLIENT_SECRET")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, bad, CLIENT_SECRET)
    assert text.startswith("ENCRYPTION_KEY is invalid (must be a Fernet key")
    assert "Fernet.generate_key().decode()" in text


def test_encryption_key_takes_several_keys_separated_by_commas(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rotation: the new key first, the old one after it (each a Fernet key)."""
    new_key = "0IcmCW9ZyQ4rpSUnjJWp4IRvZVQLp-u_J6rNVdcI5qM="
    _oauth_env(monkeypatch, tmp_path, ENCRYPTION_KEY=f"{new_key}, {FERNET_KEY}")
    settings = load_settings()
    assert settings.encryption_key is not None
    assert FERNET_KEY not in repr(settings) and new_key not in repr(settings)
    # A bad key anywhere in the list is refused, unechoed.
    bad = "not-a-fernet-key-but-a-secret-anyway"
    _oauth_env(monkeypatch, tmp_path, ENCRYPTION_KEY=f"{new_key},{bad}")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, bad, new_key, CLIENT_SECRET)
    assert text.startswith("ENCRYPTION_KEY is invalid (must be a Fernet key")
    assert "several separated by commas" in text


def test_oauth_mode_refuses_socket_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _oauth_env(monkeypatch, tmp_path, SLACK_APP_TOKEN="xapp-1-secret-app-token")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, "xapp-1-secret-app-token", CLIENT_SECRET)
    assert text.startswith("SLACK_APP_TOKEN is set in OAuth mode")


def test_oauth_mode_names_the_signing_secret_without_suggesting_socket_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _oauth_env(monkeypatch, tmp_path, SLACK_SIGNING_SECRET="")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, CLIENT_SECRET)
    assert text.startswith("SLACK_SIGNING_SECRET is missing: OAuth mode serves Slack over HTTP")
    assert "SLACK_APP_TOKEN" not in text  # OAuth mode refuses Socket Mode


def test_oauth_mode_refuses_one_vast_key_for_every_workspace(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _oauth_env(monkeypatch, tmp_path, VAST_API_KEY="operator-vast-key-0123")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = _one_line(info, "operator-vast-key-0123", CLIENT_SECRET)
    assert text.startswith("VAST_API_KEY is set in OAuth mode")
    assert "/templates setup" in text


def test_scopes_and_redirect_uri(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _oauth_env(monkeypatch, tmp_path, SLACK_SCOPES=" commands, chat:write,,commands ")
    assert load_settings().slack_scopes == ("commands", "chat:write")
    monkeypatch.setenv("SLACK_SCOPES", "")
    assert load_settings().slack_scopes == Settings.model_fields["slack_scopes"].default
    monkeypatch.setenv("SLACK_SCOPES", "commands,chat write")
    with pytest.raises(ConfigError, match="SLACK_SCOPES is invalid"):
        load_settings()
    monkeypatch.delenv("SLACK_SCOPES")
    monkeypatch.setenv("SLACK_REDIRECT_URI", "bot.example.com/slack/oauth_redirect")
    with pytest.raises(ConfigError, match="SLACK_REDIRECT_URI is invalid"):
        load_settings()


def test_env_example_values_keep_single_workspace_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Empty OAuth variables, as ``.env.example`` has them, are unset: the single-workspace
    configuration validates as before."""
    _clean_env(monkeypatch, tmp_path)
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    example = (ROOT / ".env.example").read_text().replace("SLACK_SIGNING_SECRET=", "S=")
    (tmp_path / ".env").write_text(example + "\nSLACK_SIGNING_SECRET=abc\n")
    settings = load_settings()
    assert not settings.oauth_mode and settings.simulated and not settings.socket_mode
    assert settings.slack_bot_token is not None
    assert (settings.slack_client_id, settings.slack_client_secret) == (None, None)
    assert (settings.encryption_key, settings.slack_redirect_uri) == (None, None)
