"""Listener for the App Home tab (``app_home_opened``): publish the user's Home view.

Slack sends the event every time the user opens the app (docs/SLACK_API.md §9); only the
``home`` tab is drawn (the Messages tab needs nothing). Bolt acks events itself.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.services.context import Services
from bot.slack.listeners.membership import LOOK

logger = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    """Attach the App Home listener to ``app``."""

    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab") != "home" or not event.get("user"):
            return
        team = str(body.get("team_id") or "") or None
        user = str(event["user"])
        # The Home shows the workspace's spend: only for a person who belongs to it (a person
        # of another workspace in a Slack Connect channel can open it too).
        if services.membership.refusal(team, user, None, LOOK) is not None:
            logger.info("App Home of %s not published to %s: not a member", team, user)
            return
        if team:
            services.home.remember_team(team)
        services.home.refresh(user, team_id=team)
