"""``python -m bot demo [--data DIR] [--port N] [--screenshots DIR]``: the bot in a browser, with
no Slack workspace, no configuration and no network.

It starts three things on 127.0.0.1:

1. the Vast.ai simulator (:mod:`bot.simulator`), which the bot rents from;
2. the Slack stand-in: the test suite's fake Slack Web API (:class:`FakeSlack`, strict, with a
   :class:`WorkspaceState`) serving the playground page and its JSON API (:mod:`.page`) on
   ``--port``;
3. the bot in HTTP mode: SQLite in ``--data`` (default: a temporary folder, removed at the
   end), a signing secret made up for this run, ``SLACK_API_URL`` at the stand-in, three people
   (an owner, a teammate, and an admin listed in ``BOT_ADMINS``), and a simulated clock that the
   page's sim panel moves together with the simulator's.

It prints one URL, the page's. Ctrl-C or SIGTERM stops all three and logs one line.
With ``--screenshots DIR`` it writes the README's pictures there from the page instead
(:mod:`bot.playground.screenshots`), then stops.
"""

from __future__ import annotations

import errno
import logging
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.base import BaseScheduler
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

import storage
from bot import logs, logsafe
from bot.config import Settings
from bot.playground.clock import PlaygroundClock
from bot.playground.page import ACK_SECONDS, BUSY_GPU_UTIL, Playground
from bot.playground.slack_api import APP_ID, BOT_USER_ID, TEAM_ID, FakeSlack
from bot.playground.slack_requests import Team
from bot.playground.workspace import Channel, User, WorkspaceState
from bot.runtime import Runtime, build_runtime
from bot.services.heartbeat import JOB_ID as HEARTBEAT_JOB_ID
from bot.services.poller.tick import JOB_ID as POLLER_JOB_ID
from bot.simulator import Timeline, VastSimulator
from bot.slack.server import BackgroundServer
from bot.vast.client import VastClient
from bot.vast.pacing import NO_PACING
from storage.models import ACTIVE_STATUSES, DeploymentStatus

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8000
TEAM = Team(team_id=TEAM_ID, domain="gpulab", api_app_id=APP_ID, bot_user_id=BOT_USER_ID)
TEAM_NAME = "GPU Lab"
BOT_NAME = "GPU Templates"
OWNER = User("U0OWNER01", "ada", "Ada Lovelace", "Europe/London", "owner")
TEAMMATE = User("U0TEAM002", "grace", "Grace Hopper", "America/New_York", "teammate")
ADMIN = User("U0ADMIN03", "linus", "Linus Admin", "Europe/Berlin", "admin")
USERS = (OWNER, TEAMMATE, ADMIN)
CHANNEL = Channel("C0GPU0001", "gpu")
#: Seconds between the bot's status polls: short, so the page follows the instance closely.
POLL_SECONDS = 5.0
#: New instances' ids start at a random number from this to twice this (Vast.ai's are 8 digits).
FIRST_INSTANCE_IDS = 10_000_000


def demo_state(clock: Callable[[], float]) -> WorkspaceState:
    """The playground's workspace: #gpu and the three people (``clock``: epoch seconds)."""
    return WorkspaceState(
        team={"id": TEAM_ID, "name": TEAM_NAME, "domain": TEAM.domain},
        bot={"user_id": BOT_USER_ID, "name": BOT_NAME},
        users=list(USERS),
        channels=[CHANNEL],
        clock=clock,
    )


def run_jobs_now(scheduler: BaseScheduler, *, but: str | None = None) -> None:
    """Run every scheduled job (reminders, approvals…; not the one with id ``but``) at once,
    instead of at its next interval."""
    now = datetime.now(UTC)
    for job in scheduler.get_jobs():
        if job.id != but:
            job.modify(next_run_time=now)


class _OwnSettings(Settings):
    """:class:`Settings` from its arguments alone: no environment variable, no ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(
    *,
    bot_token: str,
    slack_api_url: str,
    signing_secret: str,
    vast_api_url: str,
    database_url: str,
    poll_seconds: float = POLL_SECONDS,
) -> Settings:
    """The playground bot's settings: the stand-in, the simulator, its own database, the
    defaults for the rest. It reads no environment variable and no ``.env``: the folder it runs
    in may hold a real ``VAST_API_KEY``, ``DATABASE_URL`` or ``ENCRYPTION_KEY``, which a
    playground must neither use nor fail on."""
    return _OwnSettings(
        slack_bot_token=SecretStr(bot_token),
        slack_signing_secret=SecretStr(signing_secret),
        slack_api_url=slack_api_url,
        vast_api_url=vast_api_url,
        database_url=database_url,
        bot_admins=frozenset({ADMIN.id}),
        status_poll_seconds=poll_seconds,
        # The simulator's instances listen on 127.0.0.1.
        allow_private_instance_addresses=True,
    )


@dataclass
class Demo:
    """The three running parts; :meth:`stop` stops them."""

    url: str
    slack: FakeSlack
    simulator: VastSimulator
    runtime: Runtime
    server: BackgroundServer
    playground: Playground
    clock: PlaygroundClock
    data_dir: Path
    earlier: int = 0
    """Deployments a kept database (``--data``) holds from an earlier run, not yet ended: the
    simulator starts empty, so the bot reports each gone a couple of minutes after start."""
    _cleanup: list[Callable[[], object]] = field(default_factory=list)
    _kick_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def advance(self, seconds: float) -> None:
        """Move the bot's and the simulator's clocks forward together."""
        self.clock.advance(seconds)
        self.simulator.advance(seconds)

    def kick(self) -> None:
        """Have the bot look at its instances now, not at the next interval: one status pass
        (after the one running, if any), then reminders and the other jobs are due at once.
        Returns when the pass is done, so the sim panel's answer comes after what it caused
        and the next change is seen after this one."""
        services = self.runtime.services
        with self._kick_lock:
            if self._stopping.is_set():
                return
            try:
                services.poller.tick()
                run_jobs_now(services.scheduler, but=POLLER_JOB_ID)
            except Exception:  # the demo goes on; the scheduled passes retry
                logger.exception("demo: the status pass after a sim panel change failed")

    def stop(self) -> None:
        """Stop the bot, the stand-in and the simulator (the temporary folder goes too)."""
        self._stopping.set()
        with self._kick_lock:  # a status pass a sim panel change started ends first
            pass
        self.server.stop()
        self.runtime.close()
        self.playground.close()
        self.slack.stop()
        self.simulator.stop()
        for cleanup in reversed(self._cleanup):
            cleanup()


def start(
    *,
    data_dir: Path | None = None,
    port: int = DEFAULT_PORT,
    timeline: Timeline | None = None,
    poll_seconds: float = POLL_SECONDS,
    ack_seconds: float = ACK_SECONDS,
) -> Demo:
    """Start the simulator, the stand-in on ``port`` (0: a free one) and the bot; returns them
    running. ``timeline``: how the simulator's instances boot (default: ready in seconds);
    ``poll_seconds``: the bot's status poll interval (each sim panel change also runs a pass);
    ``ack_seconds``: how long the bot has to acknowledge (Slack's 3 s; tests on a busy machine
    give more). OSError when ``port`` is taken."""
    cleanup: list[Callable[[], object]] = []  # what to undo, in reverse, if start-up fails
    try:
        return _start(cleanup, data_dir, port, timeline, poll_seconds, ack_seconds)
    except BaseException:
        for undo in reversed(cleanup):
            undo()
        raise


def _start(
    cleanup: list[Callable[[], object]],
    data_dir: Path | None,
    port: int,
    timeline: Timeline | None,
    poll_seconds: float,
    ack_seconds: float,
) -> Demo:
    removal: list[Callable[[], object]] = []  # the temporary folder's, at the end
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="gpu-bot-demo-"))
        temporary = data_dir
        removal.append(lambda: shutil.rmtree(temporary, ignore_errors=True))
        cleanup.extend(removal)
    data_dir.mkdir(parents=True, exist_ok=True)
    clock = PlaygroundClock()
    # A new instance's GPU is busy: the sim panel's "idle" is what makes it idle.
    # Instance ids this run has not used before: a kept database (--data) still names the
    # last run's instances, which this new simulator does not have.
    simulator = VastSimulator(
        timeline=timeline,
        gpu_util=BUSY_GPU_UTIL,
        first_instance_id=FIRST_INSTANCE_IDS + secrets.randbelow(FIRST_INSTANCE_IDS),
    )
    sim_url = simulator.start()
    cleanup.append(simulator.stop)
    state = demo_state(clock.timestamp)
    bot_token = "xoxb-playground-" + secrets.token_hex(8)
    slack = FakeSlack(
        port=port, state=state, strict=True, ts_clock=clock.timestamp, bot_token=bot_token
    )
    for user in USERS:
        slack.users_tz[user.id] = user.tz
        slack.users_names[user.id] = {"name": user.name, "real_name": user.real_name}
    slack.start()
    cleanup.append(slack.stop)
    signing_secret = secrets.token_hex(16)
    settings = demo_settings(
        bot_token=bot_token,
        slack_api_url=slack.api_url,
        signing_secret=signing_secret,
        vast_api_url=sim_url,
        database_url=f"sqlite:///{data_dir / 'bot.db'}",
        poll_seconds=poll_seconds,
    )
    runtime = build_runtime(
        settings, vast=VastClient(sim_url, None, min_intervals=NO_PACING), clock=clock
    )
    cleanup.append(runtime.close)
    # A jump of the simulated clock looks like hours without a status pass to the heartbeat's
    # alert: the playground has no use for it (GET /healthz still reports the passes).
    runtime.services.scheduler.remove_job(HEARTBEAT_JOB_ID)
    # Counted before the bot's first status pass can end any of them.
    earlier = len(
        storage.list_by_status(
            runtime.services.session_factory, {*ACTIVE_STATUSES, DeploymentStatus.STOPPED}
        )
    )
    runtime.start_background()
    server = BackgroundServer(runtime.wsgi_app).start()
    cleanup.append(server.stop)
    playground = Playground(
        slack,
        events_url=server.url + "/slack/events",
        signing_secret=signing_secret,
        team=TEAM,
        simulator=simulator,
        clock=clock,
        ack_seconds=ack_seconds,
    )
    demo = Demo(
        url=slack.url + "/",
        slack=slack,
        simulator=simulator,
        runtime=runtime,
        server=server,
        playground=playground,
        clock=clock,
        data_dir=data_dir,
        earlier=earlier,
        _cleanup=removal,
    )
    playground.advance = demo.advance
    playground.after_sim = demo.kick
    slack.mount(playground.route)
    return demo


def configure_logging() -> None:
    """The process's logging for ``python -m bot demo``: INFO lines through :mod:`bot.logs` with
    the secret filters, without httpx's line per request to the simulator and without the
    warning about instance addresses on 127.0.0.1 (where the simulator's instances are).
    Process-wide: only :func:`main` calls it."""
    logs.configure("INFO")
    logsafe.install()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("bot.runtime").addFilter(
        lambda record: not record.getMessage().startswith("ALLOW_PRIVATE_INSTANCE_ADDRESSES")
    )


def main(
    *, data_dir: Path | None = None, port: int = DEFAULT_PORT, screenshots: Path | None = None
) -> int:
    """Run the playground until Ctrl-C or SIGTERM; returns the exit status (2: could not
    start)."""
    configure_logging()
    try:
        demo = start(data_dir=data_dir, port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = (
                f"the playground's port {port} is already in use ({exc.strerror or exc}). "
                "Stop the other process or choose another with --port N."
            )
        else:  # e.g. --data DIR that cannot be made or written
            problem = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        print(f"Cannot start: {problem}", file=sys.stderr, flush=True)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if screenshots is not None:
            from bot.playground.screenshots import ScreenshotError, take_screenshots

            try:
                written = take_screenshots(demo.url, screenshots)
            except ScreenshotError as exc:
                print(f"Cannot take the screenshots: {exc}", file=sys.stderr, flush=True)
                return 2
            for path in written:
                print(path, flush=True)
            return 0
        if demo.earlier:
            print(
                f"{demo.earlier} deployment(s) from an earlier run in {demo.data_dir}: the "
                "Vast.ai simulator starts empty, so the bot reports them gone within minutes.",
                flush=True,
            )
        print(f"Playground: {demo.url}  (Ctrl-C stops it)", flush=True)
        while not stopping.wait(0.5):
            pass
        return 0
    finally:
        demo.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logger.info("playground stopped: the bot, the Slack stand-in and the Vast.ai simulator")
