"""Shared pytest set-up: each area keeps its fixtures in ``tests/fixtures/<area>.py``."""

pytest_plugins = [
    "tests.fixtures.storage",
    "tests.fixtures.vast",
    "tests.fixtures.slack",
]
