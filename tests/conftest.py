"""Shared pytest set-up: each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

from __future__ import annotations

import os

import pytest
from pydantic import AliasChoices, AliasPath

from bot.config import Settings

pytest_plugins = [
    "tests.fixtures.storage",
    "tests.fixtures.vast",
    "tests.fixtures.slack",
    "tests.fixtures.oauth",
]

# Read with ``os.environ`` by code under test besides the Settings fields (storage's Alembic
# env.py reads DATABASE_URL, which is also a field). Slack Bolt and slack_sdk read further
# ``SLACK_*`` variables (SLACK_CLIENT_ID + SLACK_CLIENT_SECRET switch Bolt to OAuth), so every
# ``SLACK_*`` name is cleared as well. TEST_DATABASE_URL is the fixtures' own and stays.
_OTHER_NAMES = frozenset({"DATABASE_URL"})
_OTHER_PREFIXES = ("SLACK_",)
_KEEP = frozenset({"TEST_DATABASE_URL"})


def _alias_names(alias: object) -> list[str]:
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [name for choice in alias.choices for name in _alias_names(choice)]
    if isinstance(alias, AliasPath):
        return [str(alias.path[0])]
    return []


def settings_env_names() -> frozenset[str]:
    """Upper-cased names of every environment variable that :class:`Settings` reads."""
    prefix = Settings.model_config.get("env_prefix", "") or ""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        aliases = _alias_names(field.validation_alias) or _alias_names(field.alias)
        # pydantic-settings takes a (validation) alias as the full name, without the prefix.
        names.update(aliases or [prefix + field_name])
    return frozenset(name.upper() for name in names)


_CLEARED = settings_env_names() | _OTHER_NAMES


@pytest.fixture(autouse=True)
def sealed_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep the machine out of every test: no settings from the shell, no ``.env`` file.

    pydantic-settings matches names case-insensitively by default, so ``slack_app_token`` is
    cleared as well as ``SLACK_APP_TOKEN``. Each test runs in an empty working directory, so a
    relative ``.env`` (Settings and ``python -m bot catalog``) is never found unless the test
    writes one there itself, and a default ``sqlite:///gpu_bot.db`` lands outside the checkout.
    """
    case_sensitive = bool(Settings.model_config.get("case_sensitive", False))
    for name in list(os.environ):
        key = name if case_sensitive else name.upper()
        if key in _KEEP:
            continue
        if key in _CLEARED or key.startswith(_OTHER_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def strict_event_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with ``storage.events.STRICT``: an event kind that is not a member of
    ``storage.EventKind`` raises (in production it is logged and stored, so a bookkeeping slip
    never stops a stop or a destroy halfway)."""
    from storage import events

    monkeypatch.setattr(events, "STRICT", True)


def pytest_report_header() -> str:
    """Say up front which databases the suite runs on (the PostgreSQL cases skip otherwise)."""
    if os.environ.get("TEST_DATABASE_URL"):
        return "databases: SQLite and PostgreSQL (TEST_DATABASE_URL)"
    return "databases: SQLite only; the PostgreSQL cases skip (set TEST_DATABASE_URL to run them)"
