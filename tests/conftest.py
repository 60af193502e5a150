"""Shared pytest set-up: each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

pytest_plugins = [
    "tests.fixtures.storage",
    "tests.fixtures.vast",
    "tests.fixtures.slack",
]


def pytest_report_header() -> str:
    """Say up front which databases the suite runs on (the PostgreSQL cases skip otherwise)."""
    import os

    if os.environ.get("TEST_DATABASE_URL"):
        return "databases: SQLite and PostgreSQL (TEST_DATABASE_URL)"
    return "databases: SQLite only; the PostgreSQL cases skip (set TEST_DATABASE_URL to run them)"
