"""Engine, sessions and migrations for ``DATABASE_URL`` (SQLite file or PostgreSQL).

SQLite connections get WAL mode, a busy timeout and ``foreign_keys=ON``; transactions that
write start with ``BEGIN IMMEDIATE`` so that two writers queue on the busy timeout instead of
failing with ``database is locked`` when a read lock cannot be upgraded. PostgreSQL gets a
pre-pinged connection pool. Migrations are Alembic scripts in ``storage/migrations``, applied
with :func:`migrate` (no ``alembic.ini`` needed at run time).
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

DEFAULT_DATABASE_URL = "sqlite:///gpu_bot.db"
#: SQLite busy timeout: how long a writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Execution option that makes the next SQLite transaction ``BEGIN IMMEDIATE``.
SQLITE_IMMEDIATE = "gpu_bot_sqlite_immediate"
#: Key of the PostgreSQL advisory lock held while migrating (crc32 of a fixed name).
MIGRATION_LOCK_KEY = zlib.crc32(b"gpu_template_bot.migrations")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SessionFactory = sessionmaker[Session]


def default_database_url() -> str:
    """Return the URL used when ``DATABASE_URL`` is unset: ``sqlite:///gpu_bot.db`` (cwd)."""
    return DEFAULT_DATABASE_URL


#: PostgreSQL's refusal of a connection to a database that does not exist (libpq's text; the
#: SQLSTATE, 3D000 invalid_catalog_name, is not given for a refused connection).
_NO_SUCH_DATABASE = re.compile(r'database "[^"]*" does not exist')


def describe_unusable(url: str, exc: BaseException) -> str:
    """One sentence saying which database ``url`` names and why it cannot be used, for a
    start-up that failed with ``exc`` (an SQLAlchemy error while connecting or migrating).

    Names the backend, host, port, database and user, never the password nor the error's own
    text (which may quote the URL). A PostgreSQL database that does not exist gets the command
    that creates it, e.g. ``database "gpubot" on db-host:5432 does not exist: create it with
    `createdb -h db-host -p 5432 -U bot gpubot` ...``.
    """
    kind = type(exc).__name__
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"DATABASE_URL is not a database URL SQLAlchemy can read ({kind})."
    backend, name = parsed.get_backend_name(), parsed.database or ""
    if backend == "sqlite":
        where = Path(name).resolve() if name and name != ":memory:" else "in memory"
        return (
            f"the SQLite database {where} (DATABASE_URL) is unusable ({kind}): check that its "
            "folder exists and that this user may write there."
        )
    host, port = parsed.host or "localhost", parsed.port or 5432
    user = f", user {parsed.username}" if parsed.username else ""
    cause = str(getattr(exc, "orig", None) or exc)
    if backend == "postgresql" and _NO_SUCH_DATABASE.search(cause):
        createdb = ["createdb", "-h", host, "-p", str(port)]
        createdb += ["-U", parsed.username] if parsed.username else []
        return (
            f'the PostgreSQL database "{name}" on {host}:{port} (DATABASE_URL) does not exist: '
            f"create it with `{shlex.join([*createdb, name])}` (or CREATE DATABASE as a user "
            "who may), then start again."
        )
    return (
        f'the {backend} database "{name}" on {host}:{port}{user} (DATABASE_URL) is unusable '
        f"({kind}): check the URL, that the server runs and that the user may create tables."
    )


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an :class:`~sqlalchemy.Engine` for ``url`` with this project's settings.

    Statement parameters are never logged nor put in error messages (``hide_parameters``,
    unless given): they may hold secrets (a value written before encryption at rest), and
    SQLAlchemy logs them once its ``sqlalchemy.engine`` logger is set to INFO or DEBUG.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///gpu_bot.db`` or
            ``postgresql+psycopg://user@host:5432/db``.
        **kwargs: extra keyword arguments for :func:`sqlalchemy.create_engine`.

    Raises:
        sqlalchemy.exc.ArgumentError: when the URL cannot be parsed.
    """
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, **kwargs.pop("connect_args", {})}
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        options: dict[str, Any] = {
            "pool_pre_ping": True,
            "pool_size": 5,
            "max_overflow": 10,
            "pool_recycle": 1800,
        }
        options.update(kwargs)
        return create_engine(parsed, **options)
    return create_engine(parsed, **kwargs)


def _is_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _set_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried for up to the busy timeout: the switch needs a write
    lock, and when another connection does the same at once SQLite answers "database is locked"
    without waiting (its busy handler does not apply), e.g. two processes migrating a new file.
    """
    for attempt in Retrying(
        retry=retry_if_exception(_is_locked),
        stop=stop_after_delay(SQLITE_BUSY_TIMEOUT_MS / 1000),
        wait=wait_random(0.005, 0.02),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")


def _configure_sqlite(engine: Engine) -> None:
    """Set the pragmas on each new connection and let SQLAlchemy emit ``BEGIN`` itself."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN comes only before DML and is always DEFERRED; turning it
        # off lets the "begin" hook below choose (SQLAlchemy docs, "pysqlite transactions").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            _set_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_session_factory(engine: Engine) -> SessionFactory:
    """Return a ``sessionmaker`` whose objects stay readable after commit.

    ``expire_on_commit=False`` so snapshots survive the transaction; ``autoflush=False`` so a
    read never turns into an early write (long write transactions block SQLite).
    """
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def write_transaction(session_factory: SessionFactory) -> Iterator[Session]:
    """Open a session in a write transaction (``BEGIN IMMEDIATE`` on SQLite), commit on exit.

    Rolls back and re-raises on any exception.
    """
    with session_factory() as session, session.begin():
        session.connection(execution_options={SQLITE_IMMEDIATE: True})
        yield session


@contextmanager
def read_transaction(session_factory: SessionFactory) -> Iterator[Session]:
    """Open a session in a plain (deferred on SQLite) transaction; commit on exit."""
    with session_factory() as session, session.begin():
        yield session


def alembic_config(connection: Connection | None = None) -> Config:
    """Build an Alembic :class:`~alembic.config.Config` pointing at ``storage/migrations``.

    With ``connection``, ``env.py`` migrates over that connection instead of opening its own.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine_or_url: Engine | str) -> None:
    """Apply every Alembic migration up to ``head``; a no-op when already there.

    Safe to call from several processes at once: on PostgreSQL the upgrade runs in one
    transaction holding an advisory lock (``pg_advisory_xact_lock``), on SQLite in a
    ``BEGIN IMMEDIATE`` transaction; the second caller waits, then finds the schema at head.

    Raises:
        sqlalchemy.exc.OperationalError: when the database cannot be reached or stays locked.
    """
    if isinstance(engine_or_url, str):
        engine = make_engine(engine_or_url)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        return
    engine = engine_or_url
    with engine.connect() as connection:
        connection = connection.execution_options(**{SQLITE_IMMEDIATE: True})
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            command.upgrade(alembic_config(connection), "head")


def current_revision(engine: Engine) -> str | None:
    """Return the database's Alembic revision, or ``None`` before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """Return the newest revision shipped in ``storage/migrations``."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def ping(engine: Engine) -> bool:
    """Return True when ``SELECT 1`` succeeds (for ``/healthz``); never raises."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "database down"
        return False
