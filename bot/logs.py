"""The process's log output: level, format (plain text or one JSON object per line) and the
context each line carries (the deployment, the workspace and the Slack request it is about).

:func:`configure` is called once by ``python -m bot`` with ``LOG_LEVEL`` and ``LOG_FORMAT``;
it puts one handler on the root logger that writes to standard error, with
:class:`bot.logsafe.SecretScrubber` and :class:`ContextFilter` on it (so both formats get
the same scrubbing, exception text included).

Context is three :mod:`contextvars` (:data:`REQUEST_ID`, :data:`TEAM_ID`,
:data:`DEPLOYMENT_ID`) set with :func:`bound` where the bot learns them: the HTTP edge
(:class:`bot.slack.ingress.SlackIngress`: a request id per Slack request and the payload's team id),
the poller's per-deployment processing and the reconcilers. A context variable belongs to the
thread (and copy) that set it; :class:`ContextExecutor` runs each job submitted to a pool in a
copy of the submitter's context (:func:`contextvars.copy_context`), so a listener on Bolt's
pool or a job on the work pool keeps the request's ids, and nothing a job sets outlives it.

A JSON line (python-json-logger, https://nhairs.github.io/python-json-logger/) looks like::

    {"level": "INFO", "logger": "bot.services.deploy", "message": "…",
     "time": "2026-12-07T08:30:00.123456+00:00", "deployment_id": 12, "team_id": "T0123",
     "request_id": "5f0c…"}

``deployment_id``, ``team_id`` and ``request_id`` appear only when known; ``exc_info`` (the
traceback as one string) and ``stack_info`` only when the record has them. The plain text
format is ``<time> <LEVEL> <logger>: <message>`` with `` [deployment=12 team=T0123
request=5f0c…]`` after the message when any of them is known.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any, Literal, ParamSpec, TypeVar

from pythonjsonlogger.json import JsonFormatter

from bot.logsafe import SecretScrubber

P = ParamSpec("P")
T = TypeVar("T")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
"""The Slack request being handled (an id the edge makes, one per HTTP request)."""
TEAM_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("team_id", default=None)
"""The workspace (Slack team id, ``T…``) the work is for."""
DEPLOYMENT_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "deployment_id", default=None
)
"""The deployment (its row id) the work is about."""

#: (record attribute, text label, variable) for each context field.
FIELDS: tuple[tuple[str, str, contextvars.ContextVar[Any]], ...] = (
    ("deployment_id", "deployment", DEPLOYMENT_ID),
    ("team_id", "team", TEAM_ID),
    ("request_id", "request", REQUEST_ID),
)

#: Loggers kept at WARNING at least whatever ``LOG_LEVEL`` says (a line per scheduler tick,
#: a line per migration step at each start).
NOISY_LOGGERS = ("alembic", "apscheduler")


@contextmanager
def bound(
    *,
    request_id: str | None = None,
    team_id: str | None = None,
    deployment_id: int | None = None,
) -> Iterator[None]:
    """Within the ``with`` block, log records carry the given ids (those left None keep what
    the surrounding context had); each is reset with its token on the way out, so nothing
    outlives the block."""
    tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []
    dep_token = None
    if request_id is not None:
        tokens.append((REQUEST_ID, REQUEST_ID.set(request_id)))
    if team_id is not None:
        tokens.append((TEAM_ID, TEAM_ID.set(team_id)))
    if deployment_id is not None:
        dep_token = DEPLOYMENT_ID.set(deployment_id)
    try:
        yield
    finally:
        if dep_token is not None:
            DEPLOYMENT_ID.reset(dep_token)
        for var, token in reversed(tokens):
            var.reset(token)


def current() -> dict[str, str | int]:
    """The context fields known here: ``{"deployment_id": 12, "team_id": "T…", …}``."""
    values: dict[str, str | int] = {}
    for attribute, _label, var in FIELDS:
        value = var.get()
        if value is not None:
            values[attribute] = value
    return values


class ContextFilter(logging.Filter):
    """For a handler: set ``deployment_id``, ``team_id`` and ``request_id`` on each record from
    the context of the thread that logged it (only those known; a value the caller passed in
    ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute, value in current().items():
            if not hasattr(record, attribute):
                setattr(record, attribute, value)
        return True


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, with `` [deployment=12 team=T… request=…]`` after the message when
    the record carries any of them."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        known = [
            f"{label}={getattr(record, attribute)}"
            for attribute, label, _var in FIELDS
            if getattr(record, attribute, None) is not None
        ]
        return f"{line} [{' '.join(known)}]" if known else line


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's formatter with the fields named ``time`` (ISO 8601, UTC),
    ``level``, ``logger`` and ``message``, plus the record's extras (the context fields).

    The exception text is the record's ``exc_text`` when a handler filter already made it
    (:class:`~bot.logsafe.SecretScrubber` formats and scrubs it), instead of formatting the
    exception again from ``exc_info``, which would undo the scrubbing."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and record.exc_text):
            return super().format(record)
        exc_info, record.exc_info = record.exc_info, None
        try:
            return super().format(record)  # takes exc_text as "exc_info"
        finally:
            record.exc_info = exc_info


class _Handler(logging.StreamHandler[IO[str]]):
    """The handler :func:`configure` puts on the root logger (found again by its type)."""


def configure(
    level: LogLevel = "INFO",
    fmt: LogFormat = "text",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the process's log records at ``level`` and above to ``stream`` (standard error by
    default) in ``fmt``, each scrubbed of ``secrets`` (:class:`~bot.logsafe.SecretScrubber`)
    and with its context fields (:class:`ContextFilter`). Returns the handler.

    The level applies twice: to the root logger and to the handler, so a library logger set
    lower on its own (``httpcore`` kept at INFO by :func:`bot.logsafe.install`, say) writes
    nothing below ``level`` either. Calling it again replaces the handler it put before
    (other handlers on the root logger, such as a test runner's, are left alone)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    numeric = logging.getLevelName(level)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setLevel(numeric)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    # Context first, then the scrubber (which formats the exception text it scrubs).
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretScrubber(secrets))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
    return handler


class ContextExecutor(ThreadPoolExecutor):
    """A :class:`ThreadPoolExecutor` that runs each job in a copy of the context of the
    thread that submitted it (the request's and deployment's log fields follow the job; what
    the job sets stays in its copy)."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)  # type: ignore[arg-type]
