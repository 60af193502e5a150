"""HTTP readiness probe for a deployed app.

Vast.ai's ``running`` does not mean the app is up (a model may still be loading), so the
poller GETs the template's health path on the mapped port before calling a deployment ready
(docs/VAST_API.md §4, last bullet: "probe the URL (accept 200/302/401)"). 401 counts as up because
apps behind a login (Caddy basic auth on Vast/AI-Dock images) answer 401 without credentials.

The app is on a host the bot does not control, so a probe is bounded in every way: the URL
comes from the instance's checked address and mapped port only (the poller builds it:
:func:`bot.services.states.probe_url`), redirects are never followed (a 302 counts as up
without going anywhere), each step (connect, each read) has :data:`PROBE_TIMEOUT_SECONDS`,
the whole request :data:`PROBE_DEADLINE_SECONDS` (a host that sends its answer a byte at a
time is cut off), and only the status line and headers are read, never the body (the
headers are bounded by httpcore's h11 limit, 100 KiB).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx

__all__ = ["PROBE_DEADLINE_SECONDS", "PROBE_TIMEOUT_SECONDS", "UP_STATUSES", "Prober"]

logger = logging.getLogger(__name__)

#: HTTP statuses that mean "the app answers" (docs/VAST_API.md §4, "Building the public URL").
UP_STATUSES = frozenset({200, 302, 401})
#: Seconds per probe (connect and read); a slow app is simply tried again on a later tick.
PROBE_TIMEOUT_SECONDS = 3.0
#: Seconds a whole probe may take by default, from connecting to the last header byte (twice
#: the step timeout: a probe may connect and then wait for the answer).
PROBE_DEADLINE_SECONDS = 2 * PROBE_TIMEOUT_SECONDS
_MAX_PARALLEL = 16
_MAX_WARNED = 1000
_SHOWN = 120


def _safe(url: str) -> str:
    """The URL for a log line: without its query and fragment (a token could sit there),
    printable, at most 120 characters."""
    text = url.split("?", 1)[0].split("#", 1)[0]
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class _Deadline:
    """Cuts one request off at a wall-clock deadline: httpx's timeouts bound each step, not
    the whole. httpcore reports the socket it connected (the ``trace`` request extension,
    ``connection.connect_tcp.complete``); when the deadline passes, that socket is shut down,
    which ends whatever read is waiting with a network error."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, object]) -> None:
        """The ``trace`` callback: remembers the connected socket."""
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._socket = sock
            expired = self._expired
        if expired:
            self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sock = self._socket
        if sock is not None:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


class Prober:
    """GETs app URLs without following redirects or checking certificates (Vast.ai's Jupyter
    uses a self-signed one, docs/VAST_API.md §4) and says whether each answered 200/302/401.

    Args:
        timeout: seconds per step of a request (connect, each read, each write).
        deadline: seconds per request, all steps together (default: twice ``timeout``).
        transport: an ``httpx.BaseTransport`` for tests.

    Never raises: a refused connection, a timeout, any other status, and any other error
    while probing one URL (an address httpx cannot use, ``httpx.InvalidURL``, ``UnicodeError``
    from a host name with a label over 63 characters, a bug) are "not up yet" for that URL
    alone. Thread-safe.
    """

    def __init__(
        self,
        *,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        deadline: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._deadline = max(deadline, timeout) if deadline is not None else 2 * timeout
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=False,  # probing a self-signed app port; no secret is sent
            transport=transport,
            headers={"User-Agent": "gpu-template-bot-probe"},
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def is_up(self, url: str) -> bool:
        """True when ``GET url`` answers 200, 302 or 401 within the timeouts (the status
        line and headers only: the body is never read); False for any other answer or error
        (never raises)."""
        try:
            with (
                _Deadline(self._deadline) as deadline,
                self._http.stream("GET", url, extensions={"trace": deadline.trace}) as response,
            ):
                status = response.status_code
        except httpx.HTTPError as exc:  # the app is not answering (yet), or too slowly
            logger.debug("probe %s: %s", _safe(url), type(exc).__name__)
            return False
        except Exception as exc:  # not a network error: the URL itself cannot be used
            self._unusable(url, exc)
            return False
        logger.debug("probe %s -> %s", _safe(url), status)
        return status in UP_STATUSES

    def _unusable(self, url: str, exc: Exception) -> None:
        """Log a URL that cannot be probed once per process (it fails the same way every
        tick); the exception's type only, since its text may echo the URL's query."""
        key = _safe(url)
        with self._lock:
            if key in self._warned:
                return
            if len(self._warned) >= _MAX_WARNED:
                self._warned.clear()
            self._warned.add(key)
        logger.warning(
            "probe %s: cannot be probed (%s); counted as not up", key, type(exc).__name__
        )

    def are_up(self, urls: Iterable[str]) -> dict[str, bool]:
        """Probe several URLs in parallel (at most 16 at once): ``{url: up}``."""
        unique = list(dict.fromkeys(urls))
        if len(unique) <= 1:
            return {url: self.is_up(url) for url in unique}
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(unique))) as pool:
            return dict(zip(unique, pool.map(self.is_up, unique), strict=True))
