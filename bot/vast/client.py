"""Synchronous Vast.ai REST client on one ``httpx.Client``.

Endpoints and shapes: docs/VAST_API.md (sections named per method). The key is sent only as
``Authorization: Bearer <key>`` (docs/VAST_API.md §1, "Use the header"), never in a URL, log line,
exception or ``repr``.

Pacing (:mod:`bot.vast.pacing`): every call first waits for its endpoint's slot, a minimum
interval after the previous call of that endpoint from any thread of the process, so the bot
does not send faster than Vast.ai allows (docs/VAST_API.md §1, the OpenAPI ``x-rate-limit`` hints).

Retries (tenacity, exponential backoff with jitter) cover HTTP 429, 502, 503, 504, connect
errors and timeouts, for every call **except create**: a retried ``PUT /asks/`` can rent two
GPUs (docs/VAST_API.md "Summary of suggested client behaviour"). The official CLI retries the same
statuses (docs/VAST_API.md §1, [cli] ``vastai/api/client.py``). A 429 with ``Retry-After`` waits
that long (a wait over :data:`MAX_RETRY_AFTER` seconds is not retried, as the official client
does), and holds back every thread calling that endpoint; the daily offer-search quota
(``search_quota_exceeded``) is never retried (:class:`SearchQuotaExceeded`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from bot.vast.errors import (
    NOT_JSON,
    AuthError,
    KeyRefused,
    NotFound,
    RateLimited,
    SearchQuotaExceeded,
    UnexpectedResponse,
    Unreachable,
    VastError,
    classify,
    parse_body,
)
from bot.vast.models import CreateResult, Instance, InstanceSshKey, Offer, User
from bot.vast.pacing import Pacers, PaceTooLong

__all__ = [
    "DEFAULT_BASE_URL",
    "LIST_PAGE_SIZE",
    "MAX_RETRY_AFTER",
    "InstancePage",
    "VastClient",
    "port_env",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://console.vast.ai"
LIST_PAGE_SIZE = 25
"""Most instances per ``GET /api/v1/instances/`` page (docs/VAST_API.md §4)."""
_MAX_PAGES = 1000
QUOTA_UNKNOWN_RESET = 600.0
"""Seconds searches are held after ``search_quota_exceeded`` without ``X-RateLimit-Reset``."""
MAX_RETRY_AFTER = 60.0
"""Longest ``Retry-After`` (seconds) waited out inline; a longer one is raised to the caller
(the official client's ``_MAX_RETRY_AFTER_SECONDS``, vastai/api/client.py)."""
_CREATE_UNKNOWN = (
    "Vast.ai did not answer the create request properly, so the instance may or may not "
    "exist. Check your deployments before trying again."
)
_MIN_DISK_GB = 8
_MAX_LABEL = 256


def port_env(ports: Iterable[int | str]) -> dict[str, str]:
    """Env entries that ask Vast.ai to publish container ports (docs/VAST_API.md §3 "Ports").

    ``port_env([8188, "8082/udp"])`` -> ``{"-p 8188:8188": "1", "-p 8082:8082/udp": "1"}``.
    Merge the result into the ``env`` dict given to :meth:`VastClient.create_instance`.
    Raises ValueError for a port outside 1–65535 (or 70000+ identity ports, which are allowed).
    """
    env: dict[str, str] = {}
    for item in ports:
        text = str(item).strip()
        number, _, proto = text.partition("/")
        port = int(number)
        if port < 1 or 65535 < port < 70000:
            raise ValueError(f"invalid port: {text}")
        suffix = f"/{proto.lower()}" if proto and proto.lower() != "tcp" else ""
        env[f"-p {port}:{port}{suffix}"] = "1"
    return env


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, RateLimited):
        return exc.retry_after is None or exc.retry_after <= MAX_RETRY_AFTER
    return isinstance(exc, Unreachable)


def _is_rate_limit(exc: BaseException) -> bool:
    """Only a 429 (Vast.ai did nothing): the retry rule of a request that is not idempotent."""
    return isinstance(exc, RateLimited) and _is_transient(exc)


class _WaitRetryAfter(wait_base):
    """Wait what a 429's ``Retry-After`` asks, else fall back to ``fallback`` (backoff)."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after
        return float(self.fallback(retry_state))


@dataclass(frozen=True)
class InstancePage:
    """One page of ``GET /api/v1/instances/`` (docs/VAST_API.md §4, show_instances.yaml).

    Attributes:
        instances: the parsed instances of the page (≤ 25; ones that do not parse skipped).
        next_token: the cursor of the next page (``after_token``), None on the last page.
        total: ``total_instances``, how many instances match the filters on all pages (None
            when Vast.ai did not say).
    """

    instances: list[Instance]
    next_token: str | None
    total: int | None


def _refused(error: VastError) -> bool:
    """Whether ``error`` is Vast.ai saying no to what was sent (an HTTP 4xx, or a 2xx
    ``success: false``, that names no instance, key or rate problem)."""
    if isinstance(error, AuthError | RateLimited | NotFound | Unreachable):
        return False
    if isinstance(error, UnexpectedResponse) and error.error_code is None:
        return False  # an HTML page or garbage: not Vast.ai's word on the key
    status = error.status_code
    if status is None:
        return False
    if 400 <= status < 500:
        return True
    return 200 <= status < 300 and error.error_code is not None


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    logger.debug("retrying after attempt %d: %s", state.attempt_number, type(error).__name__)


class VastClient:
    """Vast.ai REST client (sync).

    Args:
        base_url: server root; ``/api/v0/...`` and ``/api/v1/...`` are added here.
        api_key: Vast.ai API key, sent as a Bearer header. None sends no header (the
            simulator and offer search accept that).
        timeout: seconds per request (connect capped at 10 s), every call but create.
        create_timeout: seconds for ``PUT /api/v0/asks/{id}/`` (create can be slow).
        max_attempts: attempts per retried call, first one included.
        backoff_initial: first backoff in seconds; doubles each retry, plus up to the same
            amount of random jitter.
        backoff_max: cap of one backoff, seconds.
        transport: an ``httpx.BaseTransport`` for tests (e.g. ``httpx.MockTransport``).
        min_intervals: seconds between two calls per endpoint name of
            :data:`bot.vast.pacing.ENDPOINTS` (missing names: Vast.ai's hints,
            :data:`bot.vast.pacing.DEFAULT_MIN_INTERVALS`; None = all hints;
            :data:`bot.vast.pacing.NO_PACING` = none).
        pacers: the pacers to share (e.g. with another client for the same API key); wins
            over ``min_intervals``.
        on_request: called after each HTTP request with its pacing endpoint name and the
            answer's status code (None: no answer), e.g. :meth:`bot.metrics.BotMetrics.
            vast_request`; it must not raise.

    Every method raises a :class:`bot.vast.errors.VastError` subclass on failure.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        create_timeout: float = 60.0,
        max_attempts: int = 4,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        transport: httpx.BaseTransport | None = None,
        min_intervals: Mapping[str, float] | None = None,
        pacers: Pacers | None = None,
        on_request: Callable[[str, int | None], object] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.create_timeout = create_timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.has_api_key = bool(api_key)
        headers = {"Accept": "application/json", "User-Agent": "gpu-template-bot"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self.pacers = pacers if pacers is not None else Pacers.build(min_intervals)
        # A used-up daily search quota: (monotonic seconds it holds until, the error to raise).
        self._quota: tuple[float, SearchQuotaExceeded] | None = None
        self._requests_sent = 0
        self._rate_limited = 0
        self._count_lock = threading.Lock()
        self.on_request = on_request

    # -- plumbing ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        key = "set" if self.has_api_key else "unset"
        return f"VastClient(base_url={self.base_url!r}, api_key={key})"

    def __enter__(self) -> VastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HTTP connections."""
        self._http.close()

    @property
    def request_count(self) -> int:
        """HTTP requests sent by this client so far (each retry counts), for benchmarks."""
        return self._requests_sent

    @property
    def rate_limited_count(self) -> int:
        """HTTP 429 answers received so far (retried or not), for benchmarks and tests."""
        return self._rate_limited

    @staticmethod
    def _timeout(seconds: float) -> httpx.Timeout:
        return httpx.Timeout(seconds, connect=min(seconds, 10.0))

    def _retrying(self, transient: Callable[[BaseException], bool] = _is_transient) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_WaitRetryAfter(
                wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)
                + wait_random(0, self.backoff_initial)
            ),
            retry=retry_if_exception(transient),
            reraise=True,
            before_sleep=_log_retry,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        retry: bool = True,
        timeout: float | None = None,
        operation: str = "",
        json_content_type: bool = False,
        endpoint: str,
        transient: Callable[[BaseException], bool] = _is_transient,
    ) -> Any:
        """Send one request (with retries when ``retry``, of the errors ``transient`` accepts),
        each attempt paced by the pacer of ``endpoint``, and return the parsed JSON body.
        ``json_content_type`` also rejects a 2xx whose Content-Type is not JSON."""
        args = (method, path, json, params, timeout, operation, json_content_type, endpoint)
        if not retry:
            return self._once(*args)
        for attempt in self._retrying(transient):
            with attempt:
                return self._once(*args)
        raise AssertionError("unreachable")  # pragma: no cover - Retrying reraises

    def _once(
        self,
        method: str,
        path: str,
        json: Any,
        params: Mapping[str, Any] | None,
        timeout: float | None,
        operation: str,
        json_content_type: bool,
        endpoint: str,
    ) -> Any:
        label = operation or f"{method} {path}"
        is_create = operation.startswith("create")
        pacer = self.pacers[endpoint]
        try:
            pacer.wait(max_wait=MAX_RETRY_AFTER)
        except PaceTooLong as too_long:
            # Vast.ai asked for a long pause (a 429's Retry-After): fail now, do not hang.
            minutes = max(1, math.ceil(too_long.seconds / 60))
            raise RateLimited(
                f"{label}: not sent, Vast.ai asked to wait {too_long.seconds:.0f} s",
                retry_after=too_long.seconds,
                user_message=(
                    "Vast.ai asked the bot to pause its requests, so nothing was sent. Try "
                    f"again in {minutes} minute{'s' if minutes > 1 else ''}."
                ),
            ) from None
        with self._count_lock:
            self._requests_sent += 1
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=dict(params) if params else None,
                timeout=self._timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            self._counted(endpoint, None)
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            logger.debug("%s %s -> timeout (%s)", method, path, type(exc).__name__)
            what = f"timed out ({type(exc).__name__})"
            raise self._unreachable(label, what, is_create, sent) from exc
        except httpx.HTTPError as exc:
            self._counted(endpoint, None)
            sent = not isinstance(exc, httpx.ConnectError)
            logger.debug("%s %s -> %s", method, path, type(exc).__name__)
            raise self._unreachable(label, type(exc).__name__, is_create, sent) from exc
        logger.debug("%s %s -> %s", method, path, response.status_code)
        self._counted(endpoint, response.status_code)
        content_type = response.headers.get("content-type", "")
        data = parse_body(response.text, content_type)
        error = classify(
            response.status_code,
            response.text,
            content_type,
            operation=label,
            data=data,
            headers=response.headers,
        )
        if response.status_code == 429:
            with self._count_lock:
                self._rate_limited += 1
            # Hold back every thread on this endpoint: Retry-After when given, else one
            # interval more than the pacer thought enough.
            asked = getattr(error, "retry_after", None)
            pacer.defer(asked if asked is not None else max(pacer.interval, self.backoff_initial))
        if error is None and json_content_type and "json" not in content_type.lower():
            error = UnexpectedResponse(f"{label}: Content-Type {content_type!r} is not JSON")
        if is_create and response.status_code in (502, 504) and isinstance(error, Unreachable):
            # A gateway error may hide a create the backend did carry out.
            error.outcome_unknown = True
            error.user_message = _CREATE_UNKNOWN
        if error is not None:
            error.redact([self._http.headers.get("authorization", "").removeprefix("Bearer ")])
            raise error
        return data

    def _counted(self, endpoint: str, status: int | None) -> None:
        if self.on_request is not None:
            self.on_request(endpoint, status)

    @staticmethod
    def _unreachable(label: str, what: str, is_create: bool, sent: bool) -> Unreachable:
        if is_create and sent:
            return Unreachable(
                f"{label}: {what}; the instance may have been created",
                user_message=_CREATE_UNKNOWN,
                outcome_unknown=True,
            )
        return Unreachable(f"{label}: {what}")

    @staticmethod
    def _expect_dict(data: Any, label: str, key: str | None = None) -> dict[str, Any]:
        if not isinstance(data, dict) or (key is not None and key not in data):
            shape = type(data).__name__ if data is not NOT_JSON else "non-JSON"
            want = f"an object with {key!r}" if key else "an object"
            raise UnexpectedResponse(f"{label}: expected {want}, got {shape}")
        return data

    # -- offers -----------------------------------------------------------------------------

    def search_offers(self, query: Mapping[str, Any]) -> list[Offer]:
        """``POST /api/v0/bundles/`` with ``query`` as the JSON body (docs/VAST_API.md §2).

        ``query`` holds filters ``{"field": {"op": value}}`` and top-level ``limit`` (required
        here: without it Vast.ai silently returns ~64 offers), ``order``, ``type``,
        ``allocated_storage`` (GB; priced into ``dph_total``). Offers that cannot be parsed are
        skipped. Raises ValueError without ``limit``; UnexpectedResponse for a non-JSON
        answer or one without an ``offers`` list.
        """
        if "limit" not in query:
            raise ValueError("search_offers query must include 'limit' (Vast.ai caps at ~64)")
        label = "POST /api/v0/bundles/"
        quota = self._quota
        if quota is not None and time.monotonic() < quota[0]:
            raise quota[1]  # known used up: asking again only burns requests
        try:
            reply = self._call(
                "POST",
                "/api/v0/bundles/",
                json=dict(query),
                operation=label,
                json_content_type=True,
                endpoint="search",
            )
        except SearchQuotaExceeded as error:
            self._remember_quota(error)
            raise
        data = self._expect_dict(reply, label, "offers")
        raw_offers = data["offers"]
        if not isinstance(raw_offers, list):
            raise UnexpectedResponse(f"{label}: 'offers' is {type(raw_offers).__name__}")
        offers: list[Offer] = []
        for raw in raw_offers:
            try:
                offers.append(Offer.from_api(raw))
            except ValidationError:
                logger.debug("skipping an offer that does not parse")
        return offers

    def _remember_quota(self, error: SearchQuotaExceeded) -> None:
        """Hold searches until the quota resets (``resets_at``; 10 minutes when not told)."""
        seconds = QUOTA_UNKNOWN_RESET
        if error.resets_at is not None:
            seconds = (error.resets_at - datetime.now(UTC)).total_seconds()
        if seconds > 0:
            self._quota = (time.monotonic() + seconds, error)

    # -- create -----------------------------------------------------------------------------

    def create_instance(
        self,
        offer_id: int,
        *,
        image: str,
        env: Mapping[str, str],
        disk_gb: int,
        label: str,
        onstart: str | None = None,
        args: list[str] | None = None,
        runtype: str = "args",
    ) -> int:
        """Rent ``offer_id``: ``PUT /api/v0/asks/{offer_id}/`` (docs/VAST_API.md §3). Returns the
        instance id (``new_contract``).

        Sends ``client_id: "me"``, ``cancel_unavail: true``, ``env`` as a JSON object (ports
        as ``"-p N:N": "1"`` keys: see :func:`port_env`), ``disk`` in GB, ``label``,
        ``runtype`` and, when given, ``onstart`` and ``args``.

        Never retried, not even on 429 or a timeout. Raises OfferUnavailable (pick another
        offer), InsufficientCredit, AuthError, RateLimited, Unreachable (``outcome_unknown``
        set when the request went out but no usable answer came back — a read timeout or a
        502/504 — so look the instance up by label), UnexpectedResponse, or VastError.
        Whenever the error body still carried ``new_contract``, ``error.instance_id`` is set:
        that instance exists and bills, so destroy it. Raises ValueError for ``disk_gb`` < 8
        or a label over 256 characters.
        """
        if disk_gb < _MIN_DISK_GB:
            raise ValueError(f"disk_gb must be at least {_MIN_DISK_GB} (Vast.ai minimum)")
        if len(label) > _MAX_LABEL:
            raise ValueError(f"label must be at most {_MAX_LABEL} characters")
        body: dict[str, Any] = {
            "client_id": "me",
            "image": image,
            "env": {str(k): str(v) for k, v in env.items()},
            "disk": disk_gb,
            "label": label,
            "runtype": runtype,
            "cancel_unavail": True,
        }
        if onstart is not None:
            body["onstart"] = onstart
        if args is not None:
            body["args"] = list(args)
        path = f"/api/v0/asks/{int(offer_id)}/"
        try:
            data = self._call(
                "PUT",
                path,
                json=body,
                retry=False,
                timeout=self.create_timeout,
                operation=f"create PUT {path}",
                endpoint="create",
            )
            payload = self._expect_dict(data, f"create PUT {path}", "new_contract")
            try:
                return CreateResult.model_validate(payload).instance_id
            except ValidationError:
                raise UnexpectedResponse(f"create PUT {path}: bad 'new_contract'") from None
        except VastError as error:
            error.redact([str(v) for v in env.values()])
            raise

    # -- instances --------------------------------------------------------------------------

    def list_instances_page(
        self,
        *,
        after_token: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
        order_by: Sequence[Mapping[str, str]] | None = None,
    ) -> InstancePage:
        """One page of ``GET /api/v1/instances/?limit=25`` (docs/VAST_API.md §4,
        show_instances.yaml).

        Args:
            after_token: the previous page's ``next_token`` (None: the first page).
            select_filters: column filters, e.g. ``{"id": {"in": [1, 2]}}`` (operators
                ``eq neq gt gte lt lte in notin``; stored columns only: computed ones such as
                ``dph_total`` answer 400), sent JSON-encoded.
            select_cols: the columns to return (``id`` is always added); None = all.
            order_by: e.g. ``[{"col": "id", "dir": "asc"}]`` (Vast.ai appends ``id``).

        One paced request (plus retries). An instance whose JSON does not parse is skipped
        (logged); one without an id raises UnexpectedResponse, as does a non-list
        ``instances`` (never read as "no instances"; skypilot#10517). A rejected token or
        filter raises VastError (HTTP 400 ``invalid_token`` / ``invalid_request``).
        """
        label = "GET /api/v1/instances/"
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        if after_token:
            params["after_token"] = after_token
        if select_filters:
            params["select_filters"] = json.dumps(select_filters, separators=(",", ":"))
        if select_cols:
            cols = list(dict.fromkeys(["id", *select_cols]))
            params["select_cols"] = json.dumps(cols, separators=(",", ":"))
        if order_by:
            params["order_by"] = json.dumps(list(order_by), separators=(",", ":"))
        data = self._expect_dict(
            self._call(
                "GET", "/api/v1/instances/", params=params, operation=label, endpoint="list"
            ),
            label,
            "instances",
        )
        raw = data["instances"]
        if not isinstance(raw, list):
            raise UnexpectedResponse(f"{label}: 'instances' is {type(raw).__name__}")
        page = []
        for item in raw:
            try:
                page.append(Instance.from_api(item))
            except ValidationError:
                # One odd instance (another tool's, a field Vast.ai changed) must not hide
                # all the others; callers treat it as absent and look it up by id.
                ident = item.get("id") if isinstance(item, dict) else None
                if not isinstance(ident, int):
                    raise UnexpectedResponse(f"{label}: an instance has no id") from None
                logger.warning("skipping instance %d: its JSON does not parse", ident)
        next_token = data.get("next_token") or None
        if next_token is not None and not isinstance(next_token, str):
            raise UnexpectedResponse(f"{label}: bad next_token")
        total = data.get("total_instances")
        return InstancePage(
            page,
            next_token,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
        )

    def list_instances_pages(
        self,
        *,
        label_prefix: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
    ) -> Iterator[list[Instance]]:
        """Yield each page of ``GET /api/v1/instances/?limit=25`` (docs/VAST_API.md §4), following
        ``next_token`` via ``after_token`` until it is null: one paced request per page (plus
        retries). ``label_prefix`` filters on the client side; ``select_filters`` and
        ``select_cols`` as in :meth:`list_instances_page`.

        Raises what :meth:`list_instances_page` raises, and UnexpectedResponse for a looping
        token.
        """
        token: str | None = None
        seen: set[str] = set()
        for _ in range(_MAX_PAGES):
            result = self.list_instances_page(
                after_token=token, select_filters=select_filters, select_cols=select_cols
            )
            page = result.instances
            if label_prefix is not None:
                page = [i for i in page if i.label is not None and i.label.startswith(label_prefix)]
            yield page
            if result.next_token is None:
                return
            if result.next_token in seen:
                raise UnexpectedResponse("GET /api/v1/instances/: bad or repeated next_token")
            seen.add(result.next_token)
            token = result.next_token
        raise UnexpectedResponse(f"GET /api/v1/instances/: more than {_MAX_PAGES} pages")

    def list_instances(
        self,
        *,
        label_prefix: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
    ) -> list[Instance]:
        """Every instance of the account (all pages), optionally only labels starting with
        ``label_prefix`` or matching ``select_filters``. See :meth:`list_instances_pages` for
        requests and errors."""
        return [
            i
            for page in self.list_instances_pages(
                label_prefix=label_prefix, select_filters=select_filters, select_cols=select_cols
            )
            for i in page
        ]

    def get_instance(self, instance_id: int) -> Instance | None:
        """``GET /api/v0/instances/{id}/`` -> the instance, or None when Vast.ai answers
        ``{"instances": null}`` (destroyed or unknown id) or 404 ``no_such_instance``.

        Raises UnexpectedResponse when the body has no ``instances`` key or a wrong shape.
        """
        path = f"/api/v0/instances/{int(instance_id)}/"
        label = f"GET {path}"
        try:
            data = self._call("GET", path, operation=label, endpoint="get")
        except NotFound:
            return None
        raw = self._expect_dict(data, label, "instances")["instances"]
        if raw is None:
            return None
        if isinstance(raw, list):  # tolerate a one-element list
            if not raw:
                return None
            if len(raw) != 1:
                raise UnexpectedResponse(f"{label}: 'instances' holds {len(raw)} entries")
            raw = raw[0]
        if not isinstance(raw, dict):
            raise UnexpectedResponse(f"{label}: 'instances' is {type(raw).__name__}")
        try:
            return Instance.from_api(raw)
        except ValidationError:
            raise UnexpectedResponse(f"{label}: the instance could not be parsed") from None

    def _manage(self, instance_id: int, body: dict[str, Any]) -> None:
        path = f"/api/v0/instances/{int(instance_id)}/"
        label = f"PUT {path}"
        self._expect_dict(
            self._call("PUT", path, json=body, operation=label, endpoint="manage"), label
        )

    def stop_instance(self, instance_id: int) -> None:
        """``PUT /api/v0/instances/{id}/`` ``{"state": "stopped"}`` (docs/VAST_API.md §5): GPU
        billing stops, storage keeps billing. Retried (idempotent). Raises NotFound for an unknown
        id."""
        self._manage(instance_id, {"state": "stopped"})

    def start_instance(self, instance_id: int) -> None:
        """``PUT /api/v0/instances/{id}/`` ``{"state": "running"}``. Needs the same GPU to be
        free (it may wait in "scheduling"). Retried. Raises NotFound for an unknown id."""
        self._manage(instance_id, {"state": "running"})

    def label_instance(self, instance_id: int, label: str) -> None:
        """``PUT /api/v0/instances/{id}/`` ``{"label": label}`` (≤ 1024 characters). Retried."""
        self._manage(instance_id, {"label": label})

    def destroy_instance(self, instance_id: int) -> bool:
        """``DELETE /api/v0/instances/{id}/`` (irreversible; docs/VAST_API.md §5).

        Returns True when destroyed now, False when it was already gone (404
        ``no_such_instance``/``not_found`` counts as success). Retried on 429/5xx/timeouts,
        because a destroy that silently fails keeps billing.
        """
        path = f"/api/v0/instances/{int(instance_id)}/"
        label = f"DELETE {path}"
        try:
            self._expect_dict(
                self._call("DELETE", path, operation=label, endpoint="destroy"), label
            )
        except NotFound:
            return False
        return True

    # -- SSH keys of one instance -----------------------------------------------------------
    #
    # Per instance only (docs.vast.ai API reference › Instances: "attach ssh-key", "show
    # ssh-keys", "detach ssh-key"; the CLI's ``vastai attach ssh`` / ``vastai detach ssh``).
    # There is deliberately no method for ``POST /api/v0/ssh/``: that one adds the key to the
    # *account*, and Vast.ai then puts it on every instance of the account (create_ssh_key.yaml:
    # "The key will be automatically added to all your current instances").

    def list_instance_ssh_keys(self, instance_id: int) -> list[InstanceSshKey]:
        """``GET /api/v0/instances/{id}/ssh/``: the SSH keys on one instance, each with the id
        :meth:`detach_ssh_key` takes. Vast.ai sends ``ssh_keys`` as a JSON-encoded string
        (``{"success": true, "ssh_keys": "[{\"id\": 1, \"name\": …, \"public_key\": …}]"}``,
        docs.vast.ai API reference › Instances › show ssh-keys); a plain list is read too. An
        entry without a numeric id or a public key is skipped. Paced as ``ssh``, retried.

        Raises:
            NotFound: no such instance (``no_such_instance``, as a 404 or a 200 ``success:
                false``).
            UnexpectedResponse: no ``ssh_keys``, or not a list once decoded.
            VastError: any other failure (auth, rate limit after retries, unreachable).
        """
        path = f"/api/v0/instances/{int(instance_id)}/ssh/"
        label = f"GET {path}"
        data = self._expect_dict(
            self._call("GET", path, operation=label, endpoint="ssh"), label, "ssh_keys"
        )
        raw = data["ssh_keys"]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw) if raw.strip() else []
            except ValueError:
                raise UnexpectedResponse(f"{label}: 'ssh_keys' is not JSON") from None
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise UnexpectedResponse(f"{label}: 'ssh_keys' is {type(raw).__name__}")
        keys: list[InstanceSshKey] = []
        for item in raw:
            try:
                keys.append(InstanceSshKey.model_validate(item))
            except ValidationError:
                logger.debug("skipping an instance SSH key entry that does not parse")
        return keys

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """``POST /api/v0/instances/{id}/ssh/`` ``{"ssh_key": public_key}``: put one OpenSSH
        public key (``"<type> <base64> [comment]"``) on this instance only (docs.vast.ai API
        reference › Instances › attach ssh-key; answer ``{"success": true, "msg": "SSH key
        attached successfully"}``, without the key's id: read it back with
        :meth:`list_instance_ssh_keys`). Paced as ``ssh``.

        Retried only after a 429 (nothing was done): a timeout or a 5xx may hide an attach
        Vast.ai carried out, and sending it again blindly could put a second copy on the
        instance, so those are raised for the caller to check the instance's keys first.

        Raises:
            NotFound: no such instance, or not this account's.
            KeyRefused: Vast.ai refused the key (a malformed key: HTTP 400).
            AuthError, RateLimited, Unreachable, UnexpectedResponse, VastError: as elsewhere.
            ValueError: an empty key.
        """
        if not public_key.strip():
            raise ValueError("public_key is empty")
        path = f"/api/v0/instances/{int(instance_id)}/ssh/"
        label = f"POST {path}"
        try:
            self._expect_dict(
                self._call(
                    "POST",
                    path,
                    json={"ssh_key": public_key.strip()},
                    operation=label,
                    endpoint="ssh",
                    transient=_is_rate_limit,
                ),
                label,
            )
        except VastError as error:
            if _refused(error):
                raise KeyRefused(
                    str(error), status_code=error.status_code, error_code=error.error_code
                ) from error
            raise

    def detach_ssh_key(self, instance_id: int, key_id: str | int) -> bool:
        """``DELETE /api/v0/instances/{id}/ssh/{key_id}/``: remove one key from this instance
        (docs.vast.ai API reference › Instances › detach ssh-key; ``key_id`` from
        :meth:`list_instance_ssh_keys`). Returns True when removed now, False when the
        instance did not hold that key (``no_such_ssh_key``: already removed). Paced as
        ``ssh``; retried (a second DELETE of a removed key answers ``no_such_ssh_key``).

        Raises:
            NotFound: no such instance.
            VastError: any other failure (its ``status_code`` says whether Vast.ai refused,
                4xx, or could not be reached).
            ValueError: ``key_id`` is not a number.
        """
        text = str(key_id).strip()
        if not text.isdigit():
            raise ValueError("key_id must be a number")
        path = f"/api/v0/instances/{int(instance_id)}/ssh/{text}/"
        label = f"DELETE {path}"
        try:
            self._expect_dict(self._call("DELETE", path, operation=label, endpoint="ssh"), label)
        except VastError as error:
            if error.error_code == "no_such_ssh_key":
                return False
            raise
        return True

    # -- account ----------------------------------------------------------------------------

    def get_user(self) -> User:
        """``GET /api/v0/users/current/`` -> :class:`User` (``credit`` in $; docs/VAST_API.md
        §5)."""
        label = "GET /api/v0/users/current/"
        data = self._expect_dict(
            self._call("GET", "/api/v0/users/current/", operation=label, endpoint="user"),
            label,
            "credit",
        )
        try:
            return User.model_validate(data)
        except ValidationError:
            raise UnexpectedResponse(f"{label}: 'credit' is not a number") from None

    def get_credit(self) -> float:
        """Available credit of the account in US dollars (field ``credit``)."""
        return self.get_user().credit
