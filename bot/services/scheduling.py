"""Background jobs on the APScheduler ``BackgroundScheduler`` (registered, not started, here)."""

from __future__ import annotations

from bot.services import recovery
from bot.services.context import Services
from bot.services.poller import install_poller


def install(services: Services) -> None:
    """Register the bot's background jobs and start-up tasks on ``services.scheduler`` and
    ``services.extras["on_start"]``: start-up recovery, then the status poller."""
    services.extras.setdefault("on_start", []).append(lambda: recovery.run_on_start(services))
    install_poller(services)
