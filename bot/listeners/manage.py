"""Listeners for managing deployments: stop, start, destroy, listings (issue: managing)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.context import Services


def register(app: App, services: Services) -> None:
    """Attach the management listeners to ``app``."""
