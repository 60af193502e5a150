"""Vast.ai's per-endpoint rate limits for the simulator: a minimum interval between calls.

Source: docs/VAST_API.md §1 "Rate limits" (vast-ai/docs ``rate-limits-and-errors.mdx`` and the
``x-rate-limit`` values of the OpenAPI files in tests/specs/): limits apply per endpoint and
per caller identity, as a minimum interval between calls; a call that comes too soon gets
HTTP 429 with a **plain-text** body ``API requests too frequent endpoint threshold=<s>`` and
**no** ``Retry-After`` header.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["DEFAULT_RATE_LIMITS", "RateLimiter", "endpoint_of"]

DEFAULT_RATE_LIMITS: Mapping[str, float] = {
    "list": 1.0,  # GET /api/v1/instances/ (vast-show_instances.yaml x-rate-limit 1.0)
    "get": 2.0,  # GET /api/v0/instances/{id}/ (vast-show_instance.yaml 2.0)
    "create": 4.5,  # PUT /api/v0/asks/{id}/ (vast-create_instance.yaml 4.5)
    "manage": 1.0,  # PUT /api/v0/instances/{id}/: start, stop, label (1.0)
    "destroy": 3.0,  # DELETE /api/v0/instances/{id}/ (vast-destroy_instance.yaml 3.0)
    "search": 6.0,  # POST /api/v0/bundles/: "10 requests per minute per IP"
    "user": 1.0,  # GET /api/v0/users/current/
    "ssh": 2.0,  # /api/v0/instances/{id}/ssh/: list, attach, detach (detach_ssh.yaml 2.0)
}
"""Minimum seconds between two accepted calls of one endpoint by one caller, by the endpoint
names of :data:`bot.simulator.ENDPOINTS`."""

_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("ssh", "GET", re.compile(r"/api/v0/instances/\d+/ssh/?")),
    ("ssh", "POST", re.compile(r"/api/v0/instances/\d+/ssh/?")),
    ("ssh", "DELETE", re.compile(r"/api/v0/instances/\d+/ssh/\d+/?")),
    ("search", "POST", re.compile(r"/api/v0/bundles/?")),
    ("create", "PUT", re.compile(r"/api/v0/asks/\d+/?")),
    ("list", "GET", re.compile(r"/api/v1/instances/?")),
    ("get", "GET", re.compile(r"/api/v0/instances/\d+/?")),
    ("manage", "PUT", re.compile(r"/api/v0/instances/\d+/?")),
    ("destroy", "DELETE", re.compile(r"/api/v0/instances/\d+/?")),
    ("user", "GET", re.compile(r"/api/v0/users/current/?")),
)


def endpoint_of(method: str, path: str) -> str | None:
    """The endpoint name (``"search"``, ``"create"``, ``"list"``, ``"get"``, ``"manage"``,
    ``"destroy"``, ``"user"``, ``"ssh"``) of a request, or None for any other path."""
    for name, verb, pattern in _PATTERNS:
        if verb == method and pattern.fullmatch(path):
            return name
    return None


class RateLimiter:
    """Minimum interval per (endpoint, caller) between *accepted* calls; thread-safe.

    Args:
        intervals: seconds by endpoint name; an endpoint missing or at ≤ 0 is not limited.
        clock: monotonic seconds (default :func:`time.monotonic`; tests inject their own).
    """

    def __init__(
        self, intervals: Mapping[str, float], clock: Callable[[], float] | None = None
    ) -> None:
        self.intervals = {k: float(v) for k, v in intervals.items() if v and v > 0}
        self._clock = clock or time.monotonic
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.rejected = 0

    @classmethod
    def from_setting(
        cls,
        setting: bool | Mapping[str, float | None] | None,
        clock: Callable[[], float] | None = None,
    ) -> RateLimiter | None:
        """``True`` → :data:`DEFAULT_RATE_LIMITS`; a mapping → the defaults with those
        overrides (``0`` or ``None`` turns one endpoint off); ``False``/``None`` → None (off).
        Unknown endpoint names raise ValueError."""
        if not setting:
            return None
        intervals: dict[str, float] = dict(DEFAULT_RATE_LIMITS)
        if not isinstance(setting, bool):
            unknown = set(setting) - set(DEFAULT_RATE_LIMITS)
            if unknown:
                raise ValueError(f"unknown rate-limited endpoint(s): {sorted(unknown)}")
            for name, seconds in setting.items():
                intervals[name] = float(seconds or 0.0)
        return cls(intervals, clock)

    def check(self, endpoint: str | None, caller: str) -> float | None:
        """Accept the call (None) and remember when, or return the interval it broke."""
        if endpoint is None:
            return None
        interval = self.intervals.get(endpoint)
        if interval is None:
            return None
        key = (endpoint, caller)
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is not None and now - last < interval:
                self.rejected += 1
                return interval
            self._last[key] = now
            return None
