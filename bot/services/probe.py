"""HTTP readiness probe for a deployed app.

Vast.ai's ``running`` does not mean the app is up (a model may still be loading), so the
poller GETs the template's health path on the mapped port before calling a deployment ready
(vast-api.md §4, last bullet: "probe the URL (accept 200/302/401)"). 401 counts as up because
apps behind a login (Caddy basic auth on Vast/AI-Dock images) answer 401 without credentials.
"""

from __future__ import annotations

import logging
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


class Prober:
    """GETs app URLs without following redirects or checking certificates (Vast.ai's Jupyter
    uses a self-signed one, vast-api.md §4) and says whether each answered 200/302/401.

    Args:
        timeout: seconds per request (connect capped at the same value).
        transport: an ``httpx.BaseTransport`` for tests.

    Never raises for network errors: a refused connection, a timeout or any other status is
    "not up yet". Thread-safe.
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

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def is_up(self, url: str) -> bool:
        """True when ``GET url`` answers 200, 302 or 401 within the timeout."""
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            logger.debug("probe %s: %s", url, type(exc).__name__)
            return False
        logger.debug("probe %s -> %s", url, response.status_code)
        return response.status_code in UP_STATUSES

    def are_up(self, urls: Iterable[str]) -> dict[str, bool]:
        """Probe several URLs in parallel (at most 16 at once): ``{url: up}``."""
        unique = list(dict.fromkeys(urls))
        if len(unique) <= 1:
            return {url: self.is_up(url) for url in unique}
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(unique))) as pool:
            return dict(zip(unique, pool.map(self.is_up, unique), strict=True))
