"""The poller's heartbeat: what ``/healthz`` says about the reconciler and the database
(:mod:`bot.services.heartbeat`, :mod:`storage.health`), and the admins' one DM when the
reconciler fails for five minutes and one when it recovers.

Service tests run on a movable clock against the real database (SQLite and, when configured,
PostgreSQL); the HTTP tests run the real bot (tests/fixtures/slack.py)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

import storage
from bot.services import states
from bot.services.heartbeat import HeartbeatService
from bot.services.poller import TickReport
from bot.slack.blocks.health import poller_alert_message
from bot.slack.messages import SlackMessages
from storage import DeploymentRecord, make_engine, make_session_factory
from storage.health import read_heartbeat, sqlite_path
from tests.fixtures.slack import BotFactory, MovableClock
from tests.test_poller import deploy as new_deployment

INTERVAL = 10.0  # seconds: stale after 30 s
ADMINS = frozenset({"U0ADMIN01", "U0ADMIN02"})


class DmRecorder:
    """Stand-in for bot.slack.notifier.Notifier that records DMs (user, text, blocks)."""

    def __init__(self) -> None:
        self.dms: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()

    def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None:
        with self._lock:
            self.dms.append((user_id, text, blocks))
        return "1.0"


def make_heartbeat(
    sf: sessionmaker[Session],
    engine: Engine,
    clock: MovableClock,
    recorder: DmRecorder | None = None,
    *,
    holder: str = "proc-a",
) -> HeartbeatService:
    return HeartbeatService(
        session_factory=sf,
        engine=engine,
        messages=SlackMessages(recorder or DmRecorder()),
        recipients=lambda: [(None, ADMINS)],
        interval_seconds=INTERVAL,
        clock=clock,
        holder=holder,
        probe_seconds=0.0,
        probe_timeout_seconds=0.3,
    )


CLEAN = TickReport()
STANDBY = TickReport(ran=False)


# -- /healthz from the service -----------------------------------------------------------------


def test_fresh_pass_is_healthy_with_its_age_and_stale_after_three_intervals(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    clock = MovableClock()
    beat = make_heartbeat(session_factory, engine, clock)
    starting = beat.health()
    assert starting["poller"] is True and starting["poller_role"] == "starting"
    assert starting["last_pass_age_seconds"] is None and "reason" not in starting

    beat.on_pass(CLEAN, True)
    clock.advance(seconds=12)
    fresh = beat.health()
    assert fresh["poller"] is True and fresh["database"] is True
    assert fresh["poller_role"] == "active" and fresh["last_pass_age_seconds"] == 12.0
    row = read_heartbeat(session_factory)
    assert row is not None and row.last_pass == clock.now - timedelta(seconds=12)

    clock.advance(seconds=19)  # 31 s > 3 intervals without a pass
    stale = beat.health()
    assert stale["poller"] is False and stale["last_pass_age_seconds"] == 31.0
    assert "no clean poller pass for 31 s (limit 30 s)" in str(stale["reason"])


def test_ticks_that_raise_or_end_in_errors_are_no_pass(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """The defect: every tick failed and /healthz still said 200. A tick that raised, or whose
    account pass failed, does not renew the heartbeat; the row says since when it fails."""
    clock = MovableClock()
    beat = make_heartbeat(session_factory, engine, clock)
    beat.on_pass(CLEAN, True)
    first_failure = clock.advance(seconds=INTERVAL)
    for _ in range(3):
        beat.on_pass(TickReport(error="tick raised"), False)
        clock.advance(seconds=INTERVAL)
        beat.on_pass(TickReport(error="account pass failed"), True)
        clock.advance(seconds=INTERVAL)
    answer = beat.health()
    assert answer["poller"] is False and answer["poller_role"] == "active"
    row = read_heartbeat(session_factory)
    assert row is not None and row.failing_since == first_failure


def test_start_up_grace_then_stale_without_any_pass(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    clock = MovableClock()
    beat = make_heartbeat(session_factory, engine, clock)
    clock.advance(seconds=29)
    assert beat.health()["poller"] is True
    clock.advance(seconds=2)
    late = beat.health()
    assert late["poller"] is False
    assert "no poller pass completed for 31 s" in str(late["reason"])


def test_a_standby_reports_the_holders_age_and_is_never_stale(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    clock = MovableClock()
    holder = make_heartbeat(session_factory, engine, clock, holder="proc-a")
    standby = make_heartbeat(session_factory, engine, clock, holder="proc-b")
    holder.on_pass(CLEAN, True)
    for _ in range(6):  # a minute: the standby's ticks find the lease taken
        clock.advance(seconds=INTERVAL)
        standby.on_pass(STANDBY, True)
    answer = standby.health()
    assert answer["poller"] is True and answer["poller_role"] == "standby"
    assert answer["last_pass_age_seconds"] == 60.0
    # …but a standby whose own poller stopped ticking is not healthy either.
    clock.advance(seconds=31)
    assert standby.health()["poller"] is False


def test_a_standby_whose_tick_raises_leaves_the_holders_row_alone(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    clock = MovableClock()
    holder = make_heartbeat(session_factory, engine, clock, holder="proc-a")
    standby = make_heartbeat(session_factory, engine, clock, holder="proc-b")
    holder.on_pass(CLEAN, True)
    standby.on_pass(STANDBY, True)
    clock.advance(seconds=INTERVAL)
    standby.on_pass(TickReport(error="tick raised"), False)
    row = read_heartbeat(session_factory)
    assert row is not None and row.failing_since is None and row.holder == "proc-a"
    assert standby.health()["poller_role"] == "standby"


@contextmanager
def locked(database_url: str) -> Iterator[None]:
    """Another connection holds the write lock: SQLite ``BEGIN EXCLUSIVE``; PostgreSQL an
    ACCESS EXCLUSIVE lock on ``bot_state``."""
    other = make_engine(database_url)
    try:
        with other.connect() as connection:
            raw: Any = connection.connection.driver_connection
            if other.dialect.name == "sqlite":
                raw.execute("BEGIN EXCLUSIVE")
                try:
                    yield
                finally:
                    raw.execute("ROLLBACK")
            else:
                with connection.begin():
                    connection.execute(text("LOCK TABLE bot_state IN ACCESS EXCLUSIVE MODE"))
                    yield
    finally:
        other.dispose()


def test_a_locked_database_is_unhealthy_and_says_why(
    session_factory: sessionmaker[Session], engine: Engine, database_url: str
) -> None:
    clock = MovableClock()
    beat = make_heartbeat(session_factory, engine, clock)
    beat.on_pass(CLEAN, True)
    assert beat.health()["database"] is True
    with locked(database_url):
        answer = beat.health()
    assert answer["database"] is False and answer["poller"] is True
    reason = str(answer["reason"])
    assert reason.startswith("the database refuses writes:") and "\n" not in reason
    assert "Traceback" not in reason and "postgres" not in reason.lower()
    assert beat.health()["database"] is True  # the lock is gone


def test_a_deleted_or_replaced_sqlite_file_is_unhealthy(tmp_path: Any) -> None:
    """The defect: with the file deleted the bot went on writing to it and said
    ``"database": true``; every row was gone after a restart."""
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = make_engine(url)
    storage.migrate(engine)
    sf = make_session_factory(engine)
    try:
        clock = MovableClock()
        beat = make_heartbeat(sf, engine, clock)
        beat.on_pass(CLEAN, True)
        assert beat.health()["database"] is True
        path = sqlite_path(engine)
        assert path == str(tmp_path / "bot.db")

        shutil.copy(path, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", path)  # a restore over the running bot's file
        replaced = beat.health()
        assert replaced["database"] is False
        assert "bot.db was replaced" in str(replaced["reason"])

        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        beat.on_pass(CLEAN, True)  # the write "succeeds": into the deleted file
        gone = beat.health()
        assert gone["database"] is False
        assert "bot.db was deleted while the bot runs" in str(gone["reason"])
        assert str(tmp_path) not in str(gone["reason"])  # the file's name, not its path
    finally:
        engine.dispose()


# -- the admins' DMs ---------------------------------------------------------------------------


def second_process(database_url: str) -> tuple[Engine, sessionmaker[Session]]:
    other = make_engine(database_url)
    return other, make_session_factory(other)


def test_admins_hear_once_after_five_minutes_of_failing_and_once_on_recovery(
    session_factory: sessionmaker[Session], engine: Engine, database_url: str
) -> None:
    clock = MovableClock()
    recorder = DmRecorder()
    a = make_heartbeat(session_factory, engine, clock, recorder, holder="proc-a")
    other, other_sf = second_process(database_url)
    try:
        b = make_heartbeat(other_sf, other, clock, recorder, holder="proc-b")
        a.on_pass(CLEAN, True)
        b.on_pass(STANDBY, True)
        clock.advance(seconds=INTERVAL)
        failing_since = clock.now
        a.on_pass(TickReport(error="tick raised"), False)

        clock.advance(minutes=4)
        assert (a.watch(), b.watch()) == (None, None)
        assert recorder.dms == []

        clock.advance(minutes=1)
        assert sorted([str(a.watch()), str(b.watch())]) == ["None", "down"]
        assert sorted(user for user, _, _ in recorder.dms) == sorted(ADMINS)
        text = recorder.dms[0][1]
        assert "status poller is failing" in text and "5m 00s" in text
        blocks = str(recorder.dms[0][2])
        assert f"<!date^{int(failing_since.timestamp())}^" in blocks and "errors" in blocks

        for _ in range(3):  # still failing: nothing more
            clock.advance(minutes=1)
            a.on_pass(TickReport(error="tick raised"), False)
            assert (a.watch(), b.watch()) == (None, None)
        assert len(recorder.dms) == 2

        clock.advance(seconds=INTERVAL)
        a.on_pass(CLEAN, True)
        assert sorted([str(b.watch()), str(a.watch())]) == ["None", "up"]
        assert len(recorder.dms) == 4
        assert all("recovered" in text for _, text, _ in recorder.dms[2:])
        clock.advance(minutes=10)
        a.on_pass(CLEAN, True)
        assert (a.watch(), b.watch()) == (None, None)
        assert len(recorder.dms) == 4
    finally:
        other.dispose()


def test_admins_hear_when_no_pass_completes_at_all(
    session_factory: sessionmaker[Session], engine: Engine, database_url: str
) -> None:
    """A poller stuck inside a tick writes nothing: every process judges from the row."""
    clock = MovableClock()
    recorder = DmRecorder()
    a = make_heartbeat(session_factory, engine, clock, recorder, holder="proc-a")
    other, other_sf = second_process(database_url)
    try:
        b = make_heartbeat(other_sf, other, clock, recorder, holder="proc-b")
        a.on_pass(CLEAN, True)
        clock.advance(minutes=4)
        assert (a.watch(), b.watch()) == (None, None)
        clock.advance(minutes=1)
        assert sorted([str(b.watch()), str(a.watch())]) == ["None", "down"]
        assert len(recorder.dms) == 2 and "completed no pass" in str(recorder.dms[0][2])
        clock.advance(minutes=5)
        assert (a.watch(), b.watch()) == (None, None)
    finally:
        other.dispose()


def test_an_alert_nobody_received_is_sent_again(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    class Refusing(DmRecorder):
        refuse = True

        def dm(self, user_id: str, text: str, blocks: Any = None) -> str | None:
            return None if self.refuse else super().dm(user_id, text, blocks)

    clock = MovableClock()
    recorder = Refusing()
    beat = make_heartbeat(session_factory, engine, clock, recorder)
    beat.on_pass(CLEAN, True)
    clock.advance(minutes=6)
    assert beat.watch() is None and recorder.dms == []
    recorder.refuse = False
    assert beat.watch() == "down" and len(recorder.dms) == 2


def test_alert_message_texts() -> None:
    clock = MovableClock()
    since = clock.now
    down = poller_alert_message(
        down=True, since=since, errors=False, now=since + timedelta(minutes=7)
    )
    assert "completed no pass since <!date^" in down["blocks"][0]["text"]["text"]
    assert "(7m 00s)" in down["text"]
    up = poller_alert_message(down=False, since=since, errors=False, now=since)
    assert up["text"] == "The status poller recovered"


# -- deployments failing inside passes (row errors) ---------------------------------------------


def failing_rows(count: int = 1) -> TickReport:
    """A pass that ran to its end with ``count`` deployment steps failing."""
    return TickReport(row_errors=count)


def test_a_row_failing_every_pass_for_an_hour_is_degraded_and_alerted_once(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """The defect: a pass whose deployment step failed counted as clean, so a row failing for
    an hour (its deploy timeout and idle stop never applied) left /healthz green without a
    word and sent no DM. Now /healthz says degraded (still 200: the poller itself works) and
    the admins hear once."""
    clock = MovableClock()
    recorder = DmRecorder()
    beat = make_heartbeat(session_factory, engine, clock, recorder)
    clock.advance(seconds=15)
    first = clock.now
    for _ in range(240):  # an hour of passes, one deployment failing in each
        beat.on_pass(failing_rows(), True)
        beat.run_scheduled()
        clock.advance(seconds=15)
    health = beat.health()
    assert health["poller"] is True and health["database"] is True
    assert health["rows"] == "degraded" and health["row_errors"] == 1
    assert health["rows_failing_since"] == first.isoformat()
    assert health["rows_failing_seconds"] == 3600.0
    reason = str(health["reason"])
    assert "deployment steps have been failing in poller passes for 3600 s" in reason
    assert '"deployment <id>"' in reason and "\n" not in reason
    assert sorted(user for user, _, _ in recorder.dms) == sorted(ADMINS)
    text, blocks = recorder.dms[0][1], str(recorder.dms[0][2])
    assert text == "Deployment steps keep failing (5m 00s)"
    assert "may not apply" in blocks and "deployment <id>" in blocks
    assert f"<!date^{int(first.timestamp())}^" in blocks


def test_rows_alert_after_five_minutes_once_across_processes_and_once_when_cleared(
    session_factory: sessionmaker[Session], engine: Engine, database_url: str
) -> None:
    clock = MovableClock()
    recorder = DmRecorder()
    a = make_heartbeat(session_factory, engine, clock, recorder, holder="proc-a")
    other, other_sf = second_process(database_url)
    try:
        b = make_heartbeat(other_sf, other, clock, recorder, holder="proc-b")
        a.on_pass(CLEAN, True)
        b.on_pass(STANDBY, True)
        clock.advance(seconds=INTERVAL)
        since = clock.now

        def passes(minutes: float, report: TickReport) -> None:
            for _ in range(int(minutes * 60 / INTERVAL)):
                a.on_pass(report, True)
                b.on_pass(STANDBY, True)
                clock.advance(seconds=INTERVAL)

        passes(4, failing_rows(2))
        assert (a.watch_rows(), b.watch_rows()) == (None, None)
        assert recorder.dms == []
        # The standby's /healthz reads the holder's row.
        standby = b.health()
        assert standby["rows"] == "degraded" and standby["row_errors"] == 2
        assert standby["rows_failing_since"] == since.isoformat()

        passes(1, failing_rows(2))
        assert sorted([str(b.watch_rows()), str(a.watch_rows())]) == ["None", "down"]
        assert sorted(user for user, _, _ in recorder.dms) == sorted(ADMINS)
        assert (a.watch(), b.watch()) == (None, None)  # the poller itself is fine

        passes(10, failing_rows(1))  # still failing: nothing more
        assert (a.watch_rows(), b.watch_rows()) == (None, None)
        assert len(recorder.dms) == 2

        # Free of row errors: degraded until ROWS_CLEAR_AFTER passed, then one "cleared" DM.
        passes(4.5, CLEAN)
        assert a.health()["rows"] == "degraded" and a.health()["row_errors"] == 0
        assert (a.watch_rows(), b.watch_rows()) == (None, None)
        passes(1, CLEAN)
        cleared = a.health()
        assert cleared["rows"] == "ok" and cleared["rows_failing_since"] is None
        assert cleared["rows_failing_seconds"] is None and "reason" not in cleared
        assert sorted([str(b.watch_rows()), str(a.watch_rows())]) == ["None", "up"]
        assert len(recorder.dms) == 4
        assert all(text == "Deployment steps pass again" for _, text, _ in recorder.dms[2:])
        passes(10, CLEAN)
        assert (a.watch_rows(), b.watch_rows()) == (None, None)
        assert len(recorder.dms) == 4
    finally:
        other.dispose()


def test_a_row_failing_on_each_sweep_read_stays_one_stretch(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    """A deployment at rest is read once per rolling sweep (every 8th pass here): the passes
    in between have no row error, and must not end the stretch (the alert would never come)."""
    clock = MovableClock()
    recorder = DmRecorder()
    beat = make_heartbeat(session_factory, engine, clock, recorder)
    for number in range(60):  # 10 minutes of passes
        beat.on_pass(failing_rows() if number % 8 == 0 else CLEAN, True)
        clock.advance(seconds=INTERVAL)
    assert beat.health()["rows"] == "degraded"
    assert beat.watch_rows() == "down" and len(recorder.dms) == 2


def test_ticks_that_raise_keep_the_rows_stretch_and_a_restart_reads_it(
    session_factory: sessionmaker[Session], engine: Engine
) -> None:
    clock = MovableClock()
    recorder = DmRecorder()
    beat = make_heartbeat(session_factory, engine, clock, recorder)
    beat.on_pass(CLEAN, True)
    since = clock.advance(seconds=INTERVAL)
    beat.on_pass(failing_rows(3), True)
    for _ in range(40):  # the ticks raise for a while: the rows are not known to be fixed
        clock.advance(seconds=INTERVAL)
        beat.on_pass(TickReport(error="tick raised"), False)
    row = read_heartbeat(session_factory)
    assert row is not None and row.rows_failing_since == since and row.row_errors == 3

    # A new process (a restart) takes over: the stretch and the alert's claim are shared.
    assert beat.watch_rows() == "down"
    clock.advance(seconds=INTERVAL)
    restarted = make_heartbeat(session_factory, engine, clock, recorder, holder="proc-new")
    restarted.on_pass(failing_rows(1), True)
    assert restarted.health()["rows_failing_since"] == since.isoformat()
    clock.advance(minutes=1)
    assert restarted.watch_rows() is None and len(recorder.dms) == 2


def test_malformed_row_fields_read_as_no_row_errors(
    session_factory: sessionmaker[Session],
) -> None:
    clock = MovableClock()
    value = '{"since": "2026-01-01T00:00:00+00:00", "row_errors": "7", "rows_failing_since": 5}'
    storage.put_state(session_factory, "poller_heartbeat", value, clock.now)
    row = read_heartbeat(session_factory)
    assert row is not None and row.row_errors == 0 and row.rows_failing_since is None


def test_rows_alert_message_texts() -> None:
    since = MovableClock().now
    down = poller_alert_message(
        down=True, since=since, errors=True, now=since + timedelta(minutes=6), kind="rows"
    )
    assert down["text"] == "Deployment steps keep failing (6m 00s)"
    section = down["blocks"][0]["text"]["text"]
    assert "automatic guards (deploy timeout, idle stop) may not apply" in section
    assert '"deployment <id>"' in down["blocks"][1]["elements"][0]["text"]
    up = poller_alert_message(down=False, since=since, errors=False, now=since, kind="rows")
    assert up["text"] == "Deployment steps pass again"


# -- /healthz over HTTP ------------------------------------------------------------------------


def test_healthz_turns_503_when_every_tick_fails_and_200_when_they_pass(
    bot_factory: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = MovableClock()
    bot = bot_factory(clock=clock, status_poll_seconds=60)
    http: httpx.Client = bot.http
    poller = bot.services.poller

    first = http.get("/healthz")
    assert first.status_code == 200 and first.json()["poller_role"] == "starting"
    poller.tick()
    clock.advance(seconds=100)
    fresh = http.get("/healthz")
    assert fresh.status_code == 200
    assert fresh.json()["last_pass_age_seconds"] == 100.0
    assert fresh.json()["poller_role"] == "active"

    def bad_instance(*args: object, **kwargs: object) -> dict[int, int]:
        raise ValueError("an instance the poller cannot read")

    monkeypatch.setattr(storage, "followed_instances", bad_instance)
    for _ in range(2):
        with pytest.raises(ValueError):
            poller.tick()
        clock.advance(seconds=60)
    down = http.get("/healthz")
    assert down.status_code == 503
    body = down.json()
    assert body["ok"] is False and body["poller"] is False and body["database"] is True
    assert "no clean poller pass for 220 s (limit 180 s)" in body["reason"]
    assert "Traceback" not in down.text and "cannot read" not in down.text

    monkeypatch.undo()
    poller.tick()
    again = http.get("/healthz")
    assert again.status_code == 200 and again.json()["last_pass_age_seconds"] == 0.0


def test_healthz_turns_503_when_the_sqlite_file_is_deleted(
    bot_factory: BotFactory, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("a file on disk: SQLite only")
    bot = bot_factory()
    assert bot.http.get("/healthz").status_code == 200
    path = sqlite_path(bot.runtime.engine)
    assert path is not None
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    answer = bot.http.get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["database"] is False
    assert "was deleted while the bot runs" in answer.json()["reason"]


def test_healthz_stays_200_but_says_degraded_while_a_row_fails(
    bot_factory: BotFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: one deployment's assessment raises in every pass (the poller logs it and
    goes on); ``/healthz`` stays 200 and says ``rows: degraded`` with the count and age."""
    clock = MovableClock()
    bot = bot_factory(clock=clock, status_poll_seconds=60)
    broken = new_deployment(bot, web_password=None, now=clock())
    bot.vast.advance(4)
    real = states.assess

    def assess(dep: DeploymentRecord, *args: Any, **kwargs: Any) -> states.Verdict:
        if dep.id == broken.id:
            raise RuntimeError("a row the poller cannot judge")
        return real(dep, *args, **kwargs)

    monkeypatch.setattr(states, "assess", assess)
    first = clock.now
    assert bot.services.poller.tick().row_errors == 1
    clock.advance(seconds=90)
    assert bot.services.poller.tick().row_errors == 1
    answer = bot.http.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["ok"] is True and body["poller"] is True
    assert body["rows"] == "degraded" and body["row_errors"] == 1
    assert body["rows_failing_since"] == first.isoformat()
    assert body["rows_failing_seconds"] == 90.0
    assert "deployment steps have been failing in poller passes for 90 s" in body["reason"]
    assert "cannot judge" not in answer.text and "Traceback" not in answer.text

    monkeypatch.undo()
    clock.advance(minutes=6)
    assert bot.services.poller.tick().row_errors == 0
    healed = bot.http.get("/healthz").json()
    assert healed["rows"] == "ok" and healed["row_errors"] == 0 and "reason" not in healed
