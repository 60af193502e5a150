"""Listeners for the Deploy button (the GPU offer picker comes with the Vast.ai issue)."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot.blocks.templates import ACTION_DEPLOY
from bot.services.context import Services


def register(app: App, services: Services) -> None:
    """Attach the deploy listeners to ``app``."""

    @app.action(ACTION_DEPLOY)
    def deploy_clicked(ack: Ack) -> None:
        ack()
