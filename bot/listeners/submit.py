"""Listener for the picker's submission (view_submission of ``deploy_modal``)."""

from __future__ import annotations

from slack_bolt import Ack, App

from bot.blocks.picker import CALLBACK_DEPLOY
from bot.services.context import Services


def register(app: App, services: Services) -> None:
    """Attach the submission listener to ``app``."""

    @app.view(CALLBACK_DEPLOY)
    def deploy_submitted(ack: Ack) -> None:
        ack()
