"""Start-up: build the services, the Bolt app and the server, and run them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt import App

from bot.app import create_app
from bot.config import Settings
from bot.server import make_wsgi_app, serve
from bot.services.context import Services
from catalog import load_catalog

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything ``python -m bot`` runs: services, the Bolt app and the WSGI app."""

    services: Services
    app: App
    wsgi_app: Any

    def health(self) -> dict[str, bool]:
        """Checks behind ``GET /healthz``: ``{name: ok}``."""
        return health_checks(self.services)

    def close(self) -> None:
        """Stop background work (scheduler, simulator, clients)."""
        for closer in self.services.extras.get("closers", []):
            closer()


def health_checks(services: Services) -> dict[str, bool]:
    """``{"catalog": ok, ...}`` for each part that is up; parts not built are left out."""
    checks = {"catalog": len(services.catalog) > 0}
    for name, check in services.extras.get("health_checks", {}).items():
        try:
            checks[name] = bool(check())
        except Exception:  # a health check must answer, not raise
            checks[name] = False
    return checks


def build_services(settings: Settings) -> Services:
    """Load the catalog and build the parts the listeners need.

    Raises ``catalog.CatalogError`` for a bad ``CATALOG_DIR``.
    """
    return Services(settings=settings, catalog=load_catalog(settings.catalog_dir))


def build_runtime(settings: Settings, services: Services | None = None) -> Runtime:
    """Build the app around ``services`` (built from ``settings`` when not given)."""
    services = services or build_services(settings)
    app = create_app(settings, services)
    runtime = Runtime(services=services, app=app, wsgi_app=None)
    runtime.wsgi_app = make_wsgi_app(app, runtime.health)
    return runtime


def run(settings: Settings) -> None:
    """Run until interrupted: Socket Mode when ``SLACK_APP_TOKEN`` is set, else HTTP on PORT."""
    runtime = build_runtime(settings)
    try:
        if settings.socket_mode and settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            logger.info("connecting to Slack over Socket Mode")
            SocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value()).start()
        else:
            logger.info("serving Slack requests on http://0.0.0.0:%d/slack/events", settings.port)
            serve(runtime.wsgi_app, port=settings.port)
    finally:
        runtime.close()
