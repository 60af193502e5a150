"""Start-up: build the services, the Bolt app and the server, and run them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App

from bot.app import create_app, make_web_client
from bot.blocks.deploy import SlackDeployMessages
from bot.config import Settings
from bot.notifier import Notifier
from bot.server import make_wsgi_app, serve
from bot.services import scheduling
from bot.services.context import Services
from bot.services.deploy import DeployService
from bot.vast.client import VastClient
from catalog import load_catalog
from storage import make_engine, make_session_factory, migrate, ping

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

    def start_background(self) -> None:
        """Start the scheduler and the start-up jobs registered in ``extras["on_start"]``."""
        for job in self.services.extras.get("on_start", []):
            job()
        if self.services.scheduler is not None and not self.services.scheduler.running:
            self.services.scheduler.start()

    def close(self) -> None:
        """Stop background work (scheduler, simulator, clients)."""
        scheduler = self.services.scheduler
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=True)
        for closer in reversed(self.services.extras.get("closers", [])):
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


def build_services(settings: Settings, *, vast: VastClient | None = None) -> Services:
    """Load the catalog, create or migrate the database, and build the Vast.ai client (or start
    the built-in simulator when ``VAST_API_KEY`` is unset), the notifier and the scheduler
    (not started: :meth:`Runtime.start_background` does that).

    Raises ``catalog.CatalogError`` for a bad ``CATALOG_DIR`` and SQLAlchemy errors for an
    unreachable database.
    """
    catalog = load_catalog(settings.catalog_dir)
    closers: list[Any] = []
    engine = make_engine(settings.database_url)
    migrate(engine)
    closers.append(engine.dispose)
    if vast is None:
        if settings.vast_api_key is None:
            from bot.simulator import VastSimulator

            simulator = VastSimulator()
            url = simulator.start()
            closers.append(simulator.stop)
            logger.info("VAST_API_KEY is unset: renting from the built-in Vast.ai simulator")
            vast = VastClient(url, None)
        else:
            vast = VastClient(settings.vast_api_url, settings.vast_api_key.get_secret_value())
    closers.append(vast.close)
    scheduler = BackgroundScheduler(timezone="UTC")
    services = Services(
        settings=settings,
        catalog=catalog,
        vast=vast,
        session_factory=make_session_factory(engine),
        scheduler=scheduler,
    )
    services.extras["engine"] = engine
    services.extras["closers"] = closers
    services.extras["health_checks"] = {
        "database": lambda: ping(engine),
        "scheduler": lambda: scheduler.running,
    }
    return services


def build_runtime(
    settings: Settings, services: Services | None = None, *, vast: VastClient | None = None
) -> Runtime:
    """Build the app around ``services`` (built from ``settings`` when not given)."""
    services = services or build_services(settings, vast=vast)
    client = make_web_client(settings)
    services.notifier = Notifier(client)
    services.extras["deploy_service"] = DeployService(
        vast=services.vast,
        session_factory=services.session_factory,
        notifier=services.notifier,
        messages=SlackDeployMessages(),
        catalog_get=services.catalog.get,
        simulated=settings.simulated,
    )
    scheduling.install(services)
    app = create_app(settings, services, client=client)
    runtime = Runtime(services=services, app=app, wsgi_app=None)
    runtime.wsgi_app = make_wsgi_app(app, runtime.health)
    return runtime


def run(settings: Settings) -> None:
    """Run until interrupted: Socket Mode when ``SLACK_APP_TOKEN`` is set, else HTTP on PORT."""
    runtime = build_runtime(settings)
    runtime.start_background()
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
