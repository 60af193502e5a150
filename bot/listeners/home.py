"""Listener for the App Home tab (``app_home_opened``)."""

from __future__ import annotations

from slack_bolt import App

from bot.services.context import Services


def register(app: App, services: Services) -> None:
    """Attach the App Home listener to ``app``."""
