"""Background jobs on the APScheduler ``BackgroundScheduler`` (registered, not started, here)."""

from __future__ import annotations

from bot.services.context import Services


def install(services: Services) -> None:
    """Register the bot's background jobs and start-up tasks on ``services.scheduler`` and
    ``services.extras["on_start"]``."""
    from bot.services import recovery

    services.extras.setdefault("on_start", []).append(lambda: recovery.run_on_start(services))

    from bot.services.poller import install_poller

    install_poller(services)
