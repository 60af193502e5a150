"""Faults the simulator can inject, with the bodies Vast.ai sends for them.

Shapes: docs/VAST_API.md §1 (429 plain text without Retry-After; auth_error as HTTP 404; the
daily search quota's 429 as the official client reads it) and §3
(create errors from vast-ai/docs ``create_instance.yaml``). The body for "not enough credit"
is *not documented* by Vast.ai (docs/VAST_API.md §3); the one here is a plausible stand-in.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ENDPOINTS",
    "RATE_LIMIT_TEXT",
    "Fault",
    "FaultRule",
    "SSH_PATH",
    "SimResponse",
    "html_page",
    "json_response",
    "next_utc_midnight",
    "text_response",
]


class Fault(StrEnum):
    """Global faults for :meth:`bot.simulator.VastSimulator.inject`."""

    OFFER_TAKEN = "offer_taken"
    """Create: the offer was rented between search and create. 404 ``no_such_ask`` (3603), or
    410 (3907) with ``status=410``; the offer also disappears from search."""
    RATE_LIMIT = "rate_limit"
    """HTTP 429, ``text/plain`` body ``API requests too frequent``, no Retry-After."""
    BAD_GATEWAY = "bad_gateway"
    """HTTP 502 with an nginx HTML page."""
    UNAVAILABLE = "unavailable"
    """HTTP 503 with an HTML page."""
    GATEWAY_TIMEOUT = "gateway_timeout"
    """HTTP 504 with an HTML page."""
    SLOW = "slow"
    """Sleep ``seconds`` (default 2.0) after handling the request, before answering."""
    BAD_KEY = "bad_key"
    """HTTP 404 ``{"success": false, "error": "auth_error", "msg": "Invalid user key"}``."""
    NO_CREDIT = "no_credit"
    """Create: HTTP 400 ``insufficient_credit`` (shape not documented by Vast.ai)."""
    CREATE_FAILED_WITH_CONTRACT = "create_failed_with_contract"
    """Create: the instance is created **stopped** and the error body still has
    ``new_contract`` (dstack's finding, docs/VAST_API.md §3). HTTP 400 unless ``status`` given."""
    HTML_ERROR = "html_error"
    """An HTML error page, HTTP 500 unless ``status`` is given (e.g. 200 or 502)."""
    SEARCH_QUOTA_EXCEEDED = "search_quota_exceeded"
    """Search (the default endpoint): HTTP 429 JSON ``{"success": false, "error":
    "search_quota_exceeded", "msg": "Daily search quota exceeded"}`` with header
    ``X-RateLimit-Reset: <epoch seconds of the next UTC midnight>``, as the official client
    reads it ([cli] ``vastai/api/client.py::is_search_quota_exceeded``,
    ``vastai/cli/main.py::with_quota_reset``; it does not retry this one)."""
    RATE_LIMIT_RETRY_AFTER = "rate_limit_retry_after"
    """HTTP 429, ``text/plain`` body ``API requests too frequent`` **with** ``Retry-After:
    <seconds>`` (``inject(seconds=…)``, default 2), which the official client waits out
    when ≤ 60 s ([cli] ``vastai/api/client.py::retry_delay``)."""


ENDPOINTS: dict[str, tuple[str, str]] = {
    "search": ("POST", "/api/v0/bundles/"),
    "create": ("PUT", "/api/v0/asks/"),
    "list": ("GET", "/api/v1/instances/"),
    "get": ("GET", "/api/v0/instances/"),
    "manage": ("PUT", "/api/v0/instances/"),
    "destroy": ("DELETE", "/api/v0/instances/"),
    "user": ("GET", "/api/v0/users/"),
    "ssh": ("*", "/api/v0/instances/"),
}
"""Endpoint names accepted by ``inject(endpoint=...)``: (method, path prefix; ``*`` any
method). ``ssh`` is one instance's SSH keys (``/api/v0/instances/{id}/ssh/`` and
``…/ssh/{key_id}/``, any method), which the other instance endpoints do not match."""

SSH_PATH = re.compile(r"/api/v0/instances/\d+/ssh(?:/\d+)?/?")
"""Paths of one instance's SSH keys: list and attach, and detach by key id."""

_CREATE_ONLY = {Fault.OFFER_TAKEN, Fault.NO_CREDIT, Fault.CREATE_FAILED_WITH_CONTRACT}
_SEARCH_ONLY = {Fault.SEARCH_QUOTA_EXCEEDED}

RATE_LIMIT_TEXT = "API requests too frequent"
"""Plain-text body of Vast.ai's 429 (docs/VAST_API.md §1)."""


def next_utc_midnight(now: float) -> int:
    """Epoch seconds of the first UTC midnight after ``now`` (epoch seconds)."""
    return (int(now) // 86_400 + 1) * 86_400


def _seconds_text(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


@dataclass
class SimResponse:
    """What the HTTP layer writes: status, body bytes, content type, and an optional delay."""

    status: int
    body: bytes
    content_type: str = "application/json"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any) -> SimResponse:
    """A JSON answer."""
    return SimResponse(status, json.dumps(payload).encode(), "application/json")


def text_response(status: int, text: str, content_type: str = "text/plain") -> SimResponse:
    """A non-JSON answer (plain text or HTML)."""
    return SimResponse(status, text.encode(), f"{content_type}; charset=utf-8")


def html_page(status: int, reason: str) -> SimResponse:
    """An nginx-style HTML error page."""
    page = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return text_response(status, page, "text/html")


@dataclass
class FaultRule:
    """An injected fault: what, where, how many more times (None = until cleared)."""

    fault: Fault
    method: str | None
    path_prefix: str | None
    remaining: int | None
    seconds: float = 2.0
    status: int | None = None
    name: str | None = None
    """The endpoint name it was given as (None: a method and prefix, or every endpoint)."""

    @classmethod
    def build(
        cls,
        fault: Fault | str,
        *,
        times: int | None,
        endpoint: str | None,
        seconds: float,
        status: int | None,
    ) -> FaultRule:
        """Parse ``endpoint``: a name from :data:`ENDPOINTS`, ``"METHOD /path/prefix"``,
        ``"/path/prefix"``, or None (create-only faults default to ``"create"``, the search
        quota to ``"search"``, others to every endpoint)."""
        kind = Fault(fault)
        if endpoint is None and kind in _CREATE_ONLY:
            endpoint = "create"
        if endpoint is None and kind in _SEARCH_ONLY:
            endpoint = "search"
        method: str | None = None
        prefix: str | None = None
        name: str | None = None
        if endpoint is not None:
            if endpoint in ENDPOINTS:
                name = endpoint
                method, prefix = ENDPOINTS[endpoint]
                method = None if method == "*" else method
            else:
                match = re.fullmatch(r"(?:([A-Z]+)\s+)?(/\S*)", endpoint.strip())
                if not match:
                    raise ValueError(f"unknown endpoint {endpoint!r}")
                method, prefix = match.group(1), match.group(2)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        return cls(kind, method, prefix, times, seconds, status, name)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to a request (an endpoint name matches its own paths
        only: ``get`` or ``destroy`` never an instance's SSH keys, ``ssh`` only those)."""
        if self.method is not None and self.method != method:
            return False
        if self.name is not None and (self.name == "ssh") != bool(SSH_PATH.fullmatch(path)):
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def fixed_response(self, now: float | None = None) -> SimResponse | None:
        """The canned answer for faults that do not depend on simulator state; ``now`` is
        the wall time in epoch seconds (default :func:`time.time`) for reset headers."""
        if self.fault is Fault.RATE_LIMIT:
            return text_response(429, RATE_LIMIT_TEXT)
        if self.fault is Fault.RATE_LIMIT_RETRY_AFTER:
            response = text_response(429, RATE_LIMIT_TEXT)
            response.headers["Retry-After"] = _seconds_text(self.seconds)
            return response
        if self.fault is Fault.SEARCH_QUOTA_EXCEEDED:
            response = json_response(
                429,
                {
                    "success": False,
                    "error": "search_quota_exceeded",
                    "msg": "Daily search quota exceeded",
                },
            )
            reset = next_utc_midnight(time.time() if now is None else now)
            response.headers["X-RateLimit-Reset"] = str(reset)
            return response
        if self.fault is Fault.BAD_GATEWAY:
            return html_page(502, "Bad Gateway")
        if self.fault is Fault.UNAVAILABLE:
            return html_page(503, "Service Temporarily Unavailable")
        if self.fault is Fault.GATEWAY_TIMEOUT:
            return html_page(504, "Gateway Time-out")
        if self.fault is Fault.BAD_KEY:
            return json_response(
                404, {"success": False, "error": "auth_error", "msg": "Invalid user key"}
            )
        if self.fault is Fault.HTML_ERROR:
            status = self.status or 500
            reason = {200: "OK", 502: "Bad Gateway"}.get(status, "Internal Server Error")
            return html_page(status, reason)
        if self.fault is Fault.NO_CREDIT:
            return json_response(
                self.status or 400,
                {
                    "success": False,
                    "error": "insufficient_credit",
                    "msg": "Insufficient credit: account balance too low to create this instance.",
                },
            )
        return None
