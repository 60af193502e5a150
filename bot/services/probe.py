"""HTTP readiness probe for a deployed app.

Vast.ai's ``running`` does not mean the app is up (a model may still be loading), so the
poller GETs the template's health path on the mapped port before calling a deployment ready
(vast-api.md §4, last bullet: "probe the URL (accept 200/302/401)"). 401 counts as up because
apps behind a login (Caddy basic auth on Vast/AI-Dock images) answer 401 without credentials.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx

__all__ = ["PROBE_TIMEOUT_SECONDS", "UP_STATUSES", "Prober"]

logger = logging.getLogger(__name__)

#: HTTP statuses that mean "the app answers" (DESIGN.md, data flow step 6).
UP_STATUSES = frozenset({200, 302, 401})
#: Seconds per probe (connect and read); a slow app is simply tried again on a later tick.
PROBE_TIMEOUT_SECONDS = 3.0
_MAX_PARALLEL = 16
_MAX_WARNED = 1000
_SHOWN = 120


def _safe(url: str) -> str:
    """The URL for a log line: without its query and fragment (a token could sit there),
    printable, at most 120 characters."""
    text = url.split("?", 1)[0].split("#", 1)[0]
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class Prober:
    """GETs app URLs without following redirects or checking certificates (Vast.ai's Jupyter
    uses a self-signed one, vast-api.md §4) and says whether each answered 200/302/401.

    Args:
        timeout: seconds per request (connect capped at the same value).
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
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
        """True when ``GET url`` answers 200, 302 or 401 within the timeout; False for any
        other answer or error (never raises)."""
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:  # the app is not answering (yet)
            logger.debug("probe %s: %s", _safe(url), type(exc).__name__)
            return False
        except Exception as exc:  # not a network error: the URL itself cannot be used
            self._unusable(url, exc)
            return False
        logger.debug("probe %s -> %s", _safe(url), response.status_code)
        return response.status_code in UP_STATUSES

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
