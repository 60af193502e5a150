"""Start-up: the composition root. Builds every collaborator once, wires them through
constructors into one :class:`bot.services.context.Services`, then the Bolt app and the server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from wsgiref.types import WSGIApplication

from apscheduler.schedulers.background import BackgroundScheduler
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Engine

from bot.config import Settings
from bot.crypto import SecretBox
from bot.metrics import BotMetrics, Queues, StateCollector
from bot.rekey import passwords_box, seal_plaintext, vault_box
from bot.services import recovery
from bot.services.accounts import SIMULATOR, VastAccount, VastAccounts
from bot.services.actions import ManageService
from bot.services.admins import AdminDirectory
from bot.services.approvals import ApprovalService
from bot.services.budgets import BudgetPolicy, BudgetService
from bot.services.context import Services
from bot.services.cost_export import CostExportService
from bot.services.credit import CreditService
from bot.services.deploy import DeployService
from bot.services.heartbeat import ROWS_CLEAR_AFTER, WATCH_SECONDS, HeartbeatService
from bot.services.home import HomeService
from bot.services.housekeeping import Housekeeping
from bot.services.installs import InstallService
from bot.services.instance_keys import KeyReconciler
from bot.services.intents import IntentReconciler
from bot.services.lifetimes import LifetimePolicy, LifetimeService
from bot.services.listings import ListingService
from bot.services.membership import MembershipService
from bot.services.offers import OfferCache, RecentSearches
from bot.services.poller import StatusPoller, TickReport
from bot.services.reminders import CHECK_SECONDS, ReminderService
from bot.services.sharing import SharingService
from bot.services.sshkeys import SshKeyService
from bot.services.unmanaged import unmanaged_state
from bot.services.work import WorkPool
from bot.services.workspaces import (
    DIGEST_CHANNEL,
    WorkspaceService,
    instance_checker,
    key_checker,
)
from bot.slack.app import OAUTH_STATE_SECONDS, create_app, make_web_client
from bot.slack.clients import WorkspaceClients, WorkspaceNotifiers
from bot.slack.installation_cache import CachedInstallationStore
from bot.slack.listeners.setup import roles_by_workspace
from bot.slack.members import member_lookup
from bot.slack.messages import SlackMessages
from bot.slack.notifier import Notifier
from bot.slack.outbox import Outbox
from bot.slack.server import PING_INTERVAL, SocketModeWatch, make_health_app, make_wsgi_app, serve
from bot.slack.token_store import SealedInstallationStore
from bot.vast.client import VastClient
from catalog import load_catalog
from storage import (
    SessionFactory,
    bump_installations_version,
    get_workspace,
    installation_id,
    list_team_ids,
    list_workspaces,
    make_engine,
    make_session_factory,
    migrate,
    ping,
    read_installations_version,
    utcnow,
)

logger = logging.getLogger(__name__)

#: Seconds a shutdown waits for the work pool's accepted jobs before closing the clients.
WORK_SHUTDOWN_SECONDS = 15.0

#: The work pool (``Services.work``, :class:`bot.services.work.WorkPool`): threads for long
#: work handed over by listeners (offer searches, re-checks, rentals, stop/start/destroy,
#: slow answers), and how many more jobs may wait for a thread before a listener answers
#: "busy — try again in a minute". Its threads mostly wait for Vast.ai (paced per endpoint).
WORK_THREADS = 16
WORK_QUEUE = 48


@dataclass
class Runtime:
    """Everything ``python -m bot`` runs: services, the Bolt app and the WSGI app, plus what
    :meth:`close` releases (in reverse order of ``closers``)."""

    services: Services
    app: App
    engine: Engine
    wsgi_app: WSGIApplication
    metrics: BotMetrics = field(default_factory=BotMetrics)
    closers: list[Callable[[], object]] = field(default_factory=list)

    def health(self) -> dict[str, object]:
        """Checks behind ``GET /healthz``: ``{name: ok}`` plus the heartbeat's figures."""
        return health_checks(self.services, self.engine)

    def start_background(self) -> None:
        """Run start-up recovery, then start the scheduler (the status poller)."""
        services = self.services
        recovery.run_on_start(
            services.session_factory,
            services.accounts,
            services.deploy,
            services.scheduler,
            admins=services.workspaces,
        )
        if services.heartbeat is not None:
            services.heartbeat.begin()
        if not services.scheduler.running:
            services.scheduler.start()

    def close(self) -> None:
        """Stop background work (scheduler, poller, simulator, clients)."""
        scheduler = self.services.scheduler
        if scheduler.running:
            scheduler.shutdown(wait=True)
        for closer in reversed(self.closers):
            closer()


def health_checks(services: Services, engine: Engine) -> dict[str, object]:
    """``{"catalog": ok, "database": ok, "scheduler": ok}`` for ``GET /healthz``, with the
    heartbeat's checks and figures (:meth:`HeartbeatService.health`: ``"database"`` also needs
    a write to succeed and the SQLite file to be the one opened; ``"poller"``,
    ``"poller_role"``, ``"last_pass_age_seconds"``, ``"row_errors"``, ``"rows_failing_since"``,
    ``"rows_failing_seconds"``, ``"rows"``, ``"reason"``)."""
    checks: dict[str, Callable[[], bool]] = {
        "catalog": lambda: len(services.catalog) > 0,
        "database": lambda: ping(engine),
        "scheduler": lambda: bool(services.scheduler.running),
    }
    results: dict[str, object] = {}
    for name, check in checks.items():
        try:
            results[name] = bool(check())
        except Exception:  # a health check must answer, not raise
            results[name] = False
    reasons = [
        text
        for name, text in (
            ("catalog", "the catalog is empty"),
            ("scheduler", "the scheduler is not running"),
        )
        if not results[name]
    ]
    if services.heartbeat is not None:
        beat = services.heartbeat.health()
        results.update(beat, database=bool(results["database"] and beat["database"]))
        reasons += [str(beat["reason"])] if "reason" in beat else []
    if not results["database"] and "reason" not in results:
        reasons.append("the database cannot be reached")
    if reasons:
        results["reason"] = "; ".join(reasons)
    return results


def enterprise_of(sf: SessionFactory, team_id: str) -> str | None:
    """The Enterprise Grid organisation of workspace ``team_id`` as recorded (None: none, or
    not known)."""
    record = get_workspace(sf, team_id)
    return record.enterprise_id if record is not None else None


def admin_recipients(
    sf: SessionFactory, admins: AdminDirectory, *, oauth: bool
) -> list[tuple[str | None, frozenset[str]]]:
    """Who hears about the status poller (:data:`bot.services.heartbeat.Recipients`):
    ``BOT_ADMINS`` in single-workspace mode; in OAuth mode each installed workspace's listed
    admins (``BOT_ADMINS`` and its own list) in that workspace."""
    if not oauth:
        return [(None, admins.admins(None))]
    return [
        (record.team_id, admins.admins(record.team_id))
        for record in list_workspaces(sf, installed_only=True)
    ]


def workspace_digests(sf: SessionFactory, workspaces: WorkspaceService) -> list[tuple[str, str]]:
    """OAuth mode: ``[(team_id, channel)]`` of each installed workspace that chose a digest
    channel in ``/templates setup`` (``DIGEST_CHANNEL`` names a channel of one workspace only,
    so it is no default here)."""
    targets = []
    for record in list_workspaces(sf, installed_only=True):
        own = workspaces.settings_for(record.team_id)
        if own.digest_channel and DIGEST_CHANNEL in own.overridden:
            targets.append((record.team_id, own.digest_channel))
    return targets


def oauth_installation_store(
    engine: Engine,
    client_id: str,
    box: SecretBox,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> CachedInstallationStore:
    """OAuth mode's installation store: slack_sdk's SQLAlchemy store on ``engine`` for the app
    ``client_id``, its secrets encrypted with ``box`` (:class:`bot.slack.token_store.
    SealedInstallationStore`), its answers kept briefly in this process's memory under the
    store version every process bumps on each change (:class:`bot.slack.installation_cache.
    CachedInstallationStore`, :mod:`storage.installations_version`; ``clock``: aware UTC now,
    the version row's ``updated_at``)."""
    return CachedInstallationStore(
        SealedInstallationStore(
            SQLAlchemyInstallationStore(client_id=client_id, engine=engine, logger=logger), box
        ),
        read_version=lambda: read_installations_version(engine),
        bump_version=lambda: bump_installations_version(engine, clock()),
    )


def build_services(
    settings: Settings,
    *,
    vast: VastClient | None = None,
    client: WebClient | None = None,
    closers: list[Callable[[], object]] | None = None,
    clock: Callable[[], datetime] = utcnow,
    metrics: BotMetrics | None = None,
) -> tuple[Services, Engine, InstallationStore | None]:
    """Load the catalog, create or migrate the database, build the Vast.ai client (or start the
    built-in simulator when ``VAST_API_KEY`` is unset), the messages port on ``client`` (a
    WebClient on ``SLACK_API_URL`` when not given), every service and the scheduler with the
    poller's and the reminders' jobs (not started: :meth:`Runtime.start_background` does
    that). What must be released at shutdown is appended to ``closers``. ``clock`` (aware UTC
    now) is shared by every service that reads the time, so tests can move it. ``metrics``
    (default: a new :class:`bot.metrics.BotMetrics`) counts Vast.ai requests, rule actions and
    reconciler passes, and reads the deployments and queues at scrape time.

    OAuth mode (``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET``): slack_sdk's installation
    store on the bot's database with its tokens encrypted (:class:`bot.slack.token_store.
    SealedInstallationStore`) and its answers kept briefly in memory (:class:`bot.
    installation_cache.CachedInstallationStore`: every lookup first reads the store version,
    which every install, rotation and uninstall bumps; returned third, for Bolt's OAuth flow;
    None in single-workspace mode), messages sent with each workspace's bot token, and each
    workspace renting on its own Vast.ai key (the built-in simulator's account until it has one).

    Secrets at rest (:mod:`bot.rekey`): after the canary check, what an earlier version
    stored in plain text (web passwords, Slack tokens) is encrypted, in batches.

    Raises ``catalog.CatalogError`` for a bad ``CATALOG_DIR``, SQLAlchemy errors for an
    unreachable database and :class:`bot.crypto.EncryptionKeyError` when ``ENCRYPTION_KEY``
    does not decrypt the secrets already stored.
    """
    closers = closers if closers is not None else []
    metrics = metrics if metrics is not None else BotMetrics()
    catalog = load_catalog(settings.catalog_dir)
    engine = make_engine(settings.database_url)
    migrate(engine)
    closers.append(engine.dispose)
    if vast is None:
        if settings.vast_api_key is None:
            from bot.simulator import VastSimulator

            simulator = VastSimulator()
            url = simulator.start()
            closers.append(simulator.stop)
            if settings.oauth_mode:
                logger.info(
                    "OAuth mode: workspaces without a Vast.ai key (/templates setup) rent from "
                    "the built-in Vast.ai simulator"
                )
            else:
                logger.info("VAST_API_KEY is unset: renting from the built-in Vast.ai simulator")
            vast = VastClient(
                url,
                None,
                min_intervals=settings.vast_min_intervals,
                on_request=metrics.vast_request,
            )
        else:
            vast = VastClient(
                settings.vast_api_url,
                settings.vast_api_key.get_secret_value(),
                min_intervals=settings.vast_min_intervals,
                on_request=metrics.vast_request,
            )
    elif vast.on_request is None:  # a client the caller built (tests, benchmarks)
        vast.on_request = metrics.vast_request
    closers.append(vast.close)
    sf = make_session_factory(engine)
    # Written once per database (the first process to start wins), in every instance label.
    install_id = installation_id(sf)
    logger.info("installation id %s", install_id)
    box = vault_box(settings)
    # Keys none of which the stored secrets were saved with: stop here, in one line.
    if box is not None and not box.verify(sf):
        logger.warning(
            "ENCRYPTION_KEY: the stored secrets are not all encrypted with its first key yet: "
            "run `python -m bot rotate-key`, then remove the old key (README › Security)"
        )
    passwords = passwords_box(settings)
    seal_plaintext(sf, box, passwords)  # what an earlier version left in plain text
    installation_store: CachedInstallationStore | None = None
    if settings.oauth_mode:
        assert settings.slack_client_id is not None and settings.slack_client_secret is not None
        assert box is not None  # ENCRYPTION_KEY is required in OAuth mode (bot.config)
        installation_store = oauth_installation_store(
            engine, settings.slack_client_id, box, clock=clock
        )
    web = client or make_web_client(settings, metrics=metrics)
    # Status edits and Home tabs go through the paced, coalescing outbox (its own threads; it
    # pauses on Retry-After itself, so its client does not sleep on 429s).
    # Each message goes out with its workspace's bot token (single-workspace mode: ``web``'s).
    slack_clients = WorkspaceClients(
        web,
        installation_store=installation_store,
        client_id=settings.slack_client_id,
        client_secret=(
            settings.slack_client_secret.get_secret_value()
            if settings.slack_client_secret is not None
            else None
        ),
        enterprise_of=lambda team_id: enterprise_of(sf, team_id),
        store_version=installation_store.version if installation_store is not None else None,
    )
    outbox = Outbox(WorkspaceNotifiers(slack_clients, rate_limit_retries=False).send)
    closers.append(outbox.close)
    messages = SlackMessages(
        Notifier(web),
        notifier_for=WorkspaceNotifiers(slack_clients),
        clock=clock,
        expiry_action=settings.on_expiry,
        outbox=outbox,
        passwords=passwords,
    )
    workspaces = WorkspaceService(
        session_factory=sf,
        box=box,
        check_key=key_checker(settings.vast_api_url, min_intervals=settings.vast_min_intervals),
        sees_instances=instance_checker(
            settings.vast_api_url, min_intervals=settings.vast_min_intervals
        ),
        settings=settings,
        roles=roles_by_workspace(slack_clients.client_for),
        clock=clock,
    )
    if settings.oauth_mode or (box is not None and settings.vast_api_key is None):
        # Each workspace rents on the key entered in /templates setup; without one, on the
        # simulator (``vast``). Single-workspace mode gets this only with ENCRYPTION_KEY set
        # and no VAST_API_KEY (the environment's key wins otherwise).
        accounts = VastAccounts(
            VastAccount(SIMULATOR, vast, simulated=True),
            stored_key=workspaces.stored_key,
            make_client=lambda api_key: VastClient(
                settings.vast_api_url,
                api_key,
                min_intervals=settings.vast_min_intervals,
                on_request=metrics.vast_request,
            ),
        )
    else:
        accounts = VastAccounts.single(vast, simulated=settings.simulated)
    # BOT_ADMINS, each workspace's own list (setup) and its Slack owners and admins.
    admins: AdminDirectory = workspaces
    closers.append(accounts.close)
    listings = ListingService(
        sf,
        unmanaged_state=lambda team_id: unmanaged_state(
            accounts.for_team(team_id).name if accounts.multi else None
        ),
    )
    budget_policy = BudgetPolicy.from_settings(settings)
    lifetime_policy = LifetimePolicy.from_settings(settings)

    def lifetime_policy_for(team_id: str) -> LifetimePolicy:
        own = workspaces.settings_for(team_id)
        return replace(
            lifetime_policy,
            default_hours=own.default_lifetime_hours,
            max_hours=own.max_lifetime_hours,
        )

    def budget_policy_for(team_id: str) -> BudgetPolicy:
        own = workspaces.settings_for(team_id)
        return replace(
            budget_policy,
            approval_dph=own.approval_dph,
            approvers=own.approver_ids,
            admins=own.listed_admins,
            # A channel id names a channel of one workspace only.
            approval_channel=None if settings.oauth_mode else budget_policy.approval_channel,
        )

    budgets = BudgetService(
        session_factory=sf,
        listings=listings,
        messages=messages,
        policy=budget_policy,
        policy_for=budget_policy_for,
        clock=clock,
    )
    home = HomeService(
        listings,
        messages,
        admins=admins,
        budget_lines=budgets.lines,
        one_workspace=not settings.oauth_mode,
    )
    manage = ManageService(
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        catalog_get=catalog.get,
        admins=admins,
        on_change=home.deployment_changed,
        clock=clock,
        retry_seconds=settings.status_poll_seconds,
    )
    lifetimes = LifetimeService(
        session_factory=sf,
        messages=messages,
        manage=manage,
        catalog_get=catalog.get,
        policy=lifetime_policy,
        policy_for=lifetime_policy_for,
        on_change=home.deployment_changed,
        budgets=budgets,
        clock=clock,
        on_rule_action=metrics.rule_action,
    )
    # The heartbeat reads the SQLite file's identity now, once the database exists.
    heartbeat = HeartbeatService(
        session_factory=sf,
        engine=engine,
        messages=messages,
        recipients=lambda: admin_recipients(sf, admins, oauth=settings.oauth_mode),
        interval_seconds=settings.status_poll_seconds,
        clock=clock,
        # A row at rest fails once per sweep pass: the stretch must outlast two of them.
        rows_clear_after=max(
            ROWS_CLEAR_AFTER, timedelta(seconds=2 * settings.steady_sweep_seconds)
        ),
    )
    # Expired OAuth states (one per anonymous GET /slack/install) and rows past RETENTION_DAYS
    # go after the holder's pass.
    housekeeping = Housekeeping(
        session_factory=sf,
        clock=clock,
        oauth_states=settings.oauth_mode,
        retention_days=settings.retention_days,
        uninstall_grace_days=settings.uninstall_grace_days,
    )

    # People's SSH keys on their instances (attach, detach), after each pass of the holder.
    instance_keys = KeyReconciler(
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        interval_seconds=settings.status_poll_seconds,
        clock=clock,
    )

    def on_pass(report: TickReport, ok: bool) -> None:
        if ok and report.ran:
            metrics.reconciler_passed(report.seconds)
        heartbeat.on_pass(report, ok)
        instance_keys.after_pass(report, ok)
        housekeeping.after_pass(report, ok)

    if settings.allow_private_instance_addresses:
        logger.warning(
            "ALLOW_PRIVATE_INSTANCE_ADDRESSES is on: the bot connects to instance addresses "
            "that are not public (loopback, private networks). Use it only with a simulator; "
            "unset it for real Vast.ai"
        )
    poller = StatusPoller(
        installation_id=install_id,
        session_factory=sf,
        accounts=accounts,
        messages=messages,
        catalog_get=catalog.get,
        interval_seconds=settings.status_poll_seconds,
        lease_seconds=settings.poller_lease_seconds,
        timeout_minutes=settings.deploy_timeout_minutes,
        on_change=home.deployment_changed,
        clock=clock,
        lifetimes=lifetimes,
        sweep_seconds=settings.steady_sweep_seconds,
        on_pass=on_pass,
        allow_private_addresses=settings.allow_private_instance_addresses,
        intents=IntentReconciler(
            session_factory=sf,
            accounts=accounts,
            messages=messages,
            catalog_get=catalog.get,
            interval_seconds=settings.status_poll_seconds,
            on_change=home.deployment_changed,
            clock=clock,
        ),
    )
    closers.append(poller.close)
    reminders = ReminderService(
        session_factory=sf,
        messages=messages,
        listings=listings,
        stopped_after=timedelta(days=settings.stopped_reminder_days),
        digest_channel=settings.digest_channel,
        digest_hour=settings.digest_hour,
        digest_timezone=settings.digest_timezone,
        team_id=home.team_id,
        digests=(lambda: workspace_digests(sf, workspaces)) if settings.oauth_mode else None,
        digest_channel_of=lambda team_id: workspaces.settings_for(team_id).digest_channel,
        unmanaged_for=listings.unmanaged,
        budget_lines=budgets.all_lines,
        clock=clock,
    )
    deploy = DeployService(
        installation_id=install_id,
        accounts=accounts,
        session_factory=sf,
        messages=messages,
        passwords=passwords,
        catalog_get=catalog.get,
        clock=clock,
    )
    approvals = ApprovalService(
        session_factory=sf,
        deploy=deploy,
        budgets=budgets,
        messages=messages,
        catalog_get=catalog.get,
        policy=budget_policy,
        on_change=home.deployment_changed,
        clock=clock,
    )
    scheduler = BackgroundScheduler(timezone="UTC")
    poller.install(scheduler)
    heartbeat.install(scheduler, seconds=max(WATCH_SECONDS, settings.status_poll_seconds))
    # Never more often than the poller: a test bot that polls hourly checks reminders hourly.
    reminders.install(scheduler, seconds=max(CHECK_SECONDS, settings.status_poll_seconds))
    approvals.install(scheduler, seconds=max(CHECK_SECONDS, settings.status_poll_seconds))
    work = WorkPool(WORK_THREADS, WORK_QUEUE)
    # First to close (closers run in reverse): jobs users were answered for (a Stop, a
    # Destroy, a rental) finish before the Vast.ai client, the outbox and the database close.
    closers.append(lambda: work.shutdown(wait_seconds=WORK_SHUTDOWN_SECONDS))
    metrics.registry.register(
        StateCollector(
            sf,
            Queues(
                outbox=outbox.pending,
                work_in_flight=lambda: work.in_flight,
                work_threads=work.threads,
                work_refused=lambda: work.refused,
            ),
            clock=clock,
            per_workspace=settings.metrics_per_workspace,
            month_spend=lambda now: sum(
                listings.month_report(team, now).total for team in list_team_ids(sf)
            ),
        )
    )
    membership = MembershipService(
        lookup=member_lookup(slack_clients.client_for),
        let_in=workspaces.lets_in,
        # Single-workspace mode: the one workspace whose account every request spends.
        installed_team=None if settings.oauth_mode else home.team_id,
    )
    services = Services(
        settings=settings,
        catalog=catalog,
        vast=vast,
        accounts=accounts,
        session_factory=sf,
        scheduler=scheduler,
        messages=messages,
        deploy=deploy,
        manage=manage,
        listings=listings,
        credit=CreditService(accounts, sf),
        cost_export=CostExportService(
            listings=listings,
            files=messages,
            retention_days=settings.retention_days,
            clock=clock,
        ),
        home=home,
        poller=poller,
        lifetimes=lifetimes,
        reminders=reminders,
        budgets=budgets,
        approvals=approvals,
        offers=OfferCache(vast, ttl=settings.offer_cache_seconds),
        recent_searches=RecentSearches(),
        work=work,
        workspaces=workspaces,
        membership=membership,
        sharing=SharingService(
            session_factory=sf,
            manage=manage,
            membership=membership,
            messages=messages,
            catalog_get=catalog.get,
            refresh_home=lambda user_id, team_id: home.refresh(user_id, team_id),
            clock=clock,
        ),
        ssh_keys=SshKeyService(session_factory=sf, clock=clock),
        installs=(
            InstallService(
                session_factory=sf, messages=messages, forget=slack_clients.forget, clock=clock
            )
            if settings.oauth_mode
            else None
        ),
        heartbeat=heartbeat,
    )
    return services, engine, installation_store


def build_runtime(
    settings: Settings,
    *,
    vast: VastClient | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Runtime:
    """Build the services (:func:`build_services`), the Bolt app and the WSGI app."""
    metrics = BotMetrics()
    client = make_web_client(settings, metrics=metrics)
    closers: list[Callable[[], object]] = []
    services, engine, installation_store = build_services(
        settings, vast=vast, client=client, closers=closers, clock=clock, metrics=metrics
    )
    state_store = (
        SQLAlchemyOAuthStateStore(
            expiration_seconds=OAUTH_STATE_SECONDS, engine=engine, logger=logger
        )
        if installation_store is not None
        else None
    )
    app = create_app(
        settings,
        services,
        client=client,
        installation_store=installation_store,
        state_store=state_store,
    )
    signing_secret = settings.slack_signing_secret
    wsgi_app = (
        make_wsgi_app(
            app,
            lambda: health_checks(services, engine),
            signing_secret=signing_secret.get_secret_value(),
            catalog=services.catalog,
            metrics=metrics.exposition,
        )
        if signing_secret is not None
        # Socket Mode without a signing secret: Slack's requests come over the WebSocket, and
        # nothing unsigned may reach Bolt over HTTP (its verification is off in that mode).
        else make_health_app(
            lambda: health_checks(services, engine),
            catalog=services.catalog,
            metrics=metrics.exposition,
        )
    )
    return Runtime(
        services=services,
        app=app,
        engine=engine,
        wsgi_app=wsgi_app,
        metrics=metrics,
        closers=closers,
    )


def socket_mode(
    runtime: Runtime,
    app_token: str,
    *,
    web_client: WebClient | None = None,
    ping_interval: float = PING_INTERVAL,
) -> tuple[SocketModeWatch, WSGIApplication]:
    """Socket Mode for ``runtime``: the watched connection (not yet connected; the options go
    to :class:`bot.slack.server.SocketModeWatch`) and the WSGI app serving ``GET /healthz`` with the
    runtime's checks plus ``"socket"`` (connected or not)."""
    watch = SocketModeWatch(
        runtime.app, app_token, web_client=web_client, ping_interval=ping_interval
    )
    health_app = make_health_app(
        lambda: {**runtime.health(), "socket": watch.check()},
        catalog=runtime.services.catalog,
        metrics=runtime.metrics.exposition,
    )
    return watch, health_app


def run(settings: Settings) -> None:
    """Run until interrupted: Socket Mode when ``SLACK_APP_TOKEN`` is set (with ``GET /healthz``
    on PORT), else HTTP on PORT."""
    runtime = build_runtime(settings)
    runtime.start_background()
    try:
        if settings.socket_mode and settings.slack_app_token is not None:
            watch, health_app = socket_mode(runtime, settings.slack_app_token.get_secret_value())
            runtime.closers.append(watch.close)
            logger.info("connecting to Slack over Socket Mode")
            watch.start()
            logger.info("serving GET /healthz on http://0.0.0.0:%d/healthz", settings.port)
            serve(health_app, port=settings.port)
        else:
            logger.info("serving Slack requests on http://0.0.0.0:%d/slack/events", settings.port)
            if settings.oauth_mode:
                logger.info(
                    "OAuth mode: workspaces install at https://<your host>/slack/install "
                    "(served here on port %d)",
                    settings.port,
                )
            serve(runtime.wsgi_app, port=settings.port)
    finally:
        runtime.close()
