"""A Vast.ai simulator: a local HTTP server with Vast.ai's endpoints and JSON shapes.

Endpoints (docs/VAST_API.md §§2–5, vast-ai/docs OpenAPI files in tests/specs/):

* ``POST /api/v0/bundles/`` — offer search: filters ``{"field": {op: value}}`` with ops
  eq/neq/gt/gte/lt/lte/in/notin, values cast to the field's type (the official client sends
  ``{"num_gpus": {"eq": "1"}}``), ``order``, ``limit`` (64 when absent, like the real one),
  ``type``, ``allocated_storage`` (GB, default 8; ``dph_total = dph_base +
  allocated_storage * storage_cost / 720``). ``geolocation`` in/notin/eq compare country codes.
* ``PUT /api/v0/asks/{id}/`` — create; the offer is then rented and leaves the search.
* ``GET /api/v1/instances/`` — paginated list (``limit`` ≤ 25, ``next_token``/``after_token``,
  ``select_filters``, ``select_cols``, ``order_by``); ``GET /api/v0/instances/`` answers 410
  as Vast.ai now does.
* ``GET/PUT/DELETE /api/v0/instances/{id}/`` — show (``{"instances": null}`` once gone),
  stop/start/label, destroy.
* ``GET /api/v0/users/current/`` — the user with ``id`` and ``credit``.
* ``GET/POST /api/v0/instances/{id}/ssh/`` and ``DELETE /api/v0/instances/{id}/ssh/{key}/`` —
  SSH keys of one instance: list (``ssh_keys`` as a JSON-encoded string), attach (the key is
  checked as an OpenSSH public key line), detach by key id (docs.vast.ai API reference ›
  Instances: show ssh-keys, attach ssh-key, detach ssh-key). The account-wide ``/api/v0/ssh/``
  is deliberately not served (an HTML 404, like any unknown path): the bot must never use it.

Accounts (docs/VAST_API.md §1 "Authentication"): one default account (user id
:data:`DEFAULT_USER_ID`, key ``api_key=`` or none) and any number more (``accounts={key: user
id}``), each with its own instances and credit; the offer market is shared. A key sees and acts
on its own account's instances only: another account's instance answers as one that does not
exist. A refused key gets ``{"success": false, "error": "auth_error", "msg": "Invalid user
key"}`` with HTTP 401 or 404 (see ``auth_status``); the offer search answers 404
(search_offers.yaml) and, like the real one, also answers without any key.

Optional per-endpoint rate limits (``rate_limits=``, :mod:`bot.simulator.limits`) and injected
faults (:class:`bot.simulator.Fault`) answer with Vast.ai's 429 shapes.
Instances move along a :class:`Timeline` on a :class:`SimClock`; running instances map every
requested ``-p`` port to a real port on 127.0.0.1 served by :class:`AppPorts`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import json
import logging
import operator
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from bot.simulator.apps import AppPorts
from bot.simulator.clock import SimClock, Timeline
from bot.simulator.faults import (
    RATE_LIMIT_TEXT,
    Fault,
    FaultRule,
    SimResponse,
    html_page,
    json_response,
    text_response,
)
from bot.simulator.instances import (
    EXITED,
    STATUS_ERROR,
    STOPPED_BY_VAST,
    STUCK_LOADING,
    SimInstance,
    requested_ports,
)
from bot.simulator.limits import RateLimiter, endpoint_of
from bot.simulator.sshkeys import key_problem
from bot.simulator.stock import GPU_MODELS, generate_offers, make_offer

__all__ = ["DEFAULT_USER_ID", "RecordedRequest", "VastSimulator"]

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_LIMIT = 64
DEFAULT_USER_ID = 424242
"""Vast.ai user id of the default account (``api_key=``, or requests without a key)."""
_PAGE_MAX = 25
_OPS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "notin")
_SEARCH_RESERVED = {"order", "limit", "type", "allocated_storage", "select_cols", "q"}
_LIST_FILTERABLE = {
    "id",
    "actual_status",
    "intended_status",
    "cur_state",
    "next_state",
    "label",
    "gpu_name",
    "verification",
    "machine_id",
    "host_id",
    "image_uuid",
    "image_runtype",
    "geolocation",
    "template_id",
    "template_hash_id",
    "start_date",
    "end_date",
}
"""Columns ``select_filters`` and ``order_by`` accept on the v1 list: the spec's
``actual_status``, ``gpu_name``, ``verification``, ``id``, ``label`` and other columns stored
on the contract (tests/specs/vast-show_instances.yaml); computed ones (``dph_total``,
``num_gpus``, …) give 400."""
_FIELD_ALIASES = {"cuda_vers": "cuda_max_good", "ubuntu_version": "os_version"}
_RUNTYPES = {
    "args",
    "ssh",
    "ssh_proxy",
    "ssh_direct",
    "ssh_direc ssh_proxy",
    "jupyter",
    "jupyter_proxy",
    "jupyter_direct",
    "jupyter_direc ssh_direc ssh_proxy",
    "jupyter_proxy ssh_proxy",
}


@dataclass
class _Account:
    """One simulated Vast.ai user: its id and credit in $ (its instances are indexed by
    :attr:`SimInstance.owner`)."""

    user_id: int
    credit: float


class RecordedRequest(NamedTuple):
    """One request the simulator received: method, path (no query), query (first value per
    name), and the JSON body (None when absent or not JSON)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any


def _err(status: int, error: str, msg: str, **extra: Any) -> SimResponse:
    return json_response(status, {"success": False, "error": error, "msg": msg, **extra})


def _country(geolocation: Any) -> str | None:
    if not isinstance(geolocation, str) or not geolocation.strip():
        return None
    return geolocation.rsplit(",", 1)[-1].strip().upper() or None


def _as_bool(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    return None


def _coerce(value: Any, target: Any) -> Any:
    """``target`` cast to the type of the stored ``value``, as a SQL server casts a query
    literal to its column's type. The official client sends most numbers as strings
    (``{"num_gpus": {"eq": "1"}}``, ``{"dph_total": {"lt": "1.5"}}``: [cli]
    ``vastai/api/query.py::parse_query`` only converts fields with a multiplier, and
    ``true``/``false``); a list (``in``/``notin``) is cast element by element. A string
    that does not parse stays a string, so it simply never matches a number."""
    if isinstance(target, list):
        return [_coerce(value, t) for t in target]
    if isinstance(value, bool):
        if isinstance(target, str):
            parsed = _as_bool(target)
            return target if parsed is None else parsed
        return target
    if isinstance(value, int | float) and isinstance(target, str):
        try:
            return float(target)
        except ValueError:
            return target
    return target


def _version_number(version: Any) -> int | None:
    """``"535.183.01"`` -> ``535183001`` (each part zero-padded to 3 digits), the number the
    official client sends for ``driver_version`` ([cli] ``query.py::numeric_version``);
    a number or a numeric string is taken as already converted."""
    if isinstance(version, bool):
        return None
    if isinstance(version, int | float):
        return int(version)
    if not isinstance(version, str):
        return None
    parts = version.strip().split(".")
    if len(parts) == 1:
        try:
            return int(float(parts[0]))
        except ValueError:
            return None
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int("".join(p.zfill(3) for p in parts))


def _compare(value: Any, op: str, target: Any) -> bool:
    """Apply one filter operator, ``target`` first cast to ``value``'s type (see
    :func:`_coerce`); a null field value never matches."""
    if value is None:
        return False
    target = _coerce(value, target)
    try:
        if op == "eq":
            return bool(value == target)
        if op == "neq":
            return bool(value != target)
        if op == "in":
            return isinstance(target, list) and value in target
        if op == "notin":
            return isinstance(target, list) and value not in target
        if op == "gt":
            return bool(value > target)
        if op == "gte":
            return bool(value >= target)
        if op == "lt":
            return bool(value < target)
        if op == "lte":
            return bool(value <= target)
    except TypeError:
        return False
    raise ValueError(op)


def _matches(record: Mapping[str, Any], field: str, cond: Any) -> bool:
    """Whether ``record`` passes ``{"op": value, ...}`` on ``field``.

    Special cases, as the real server answers the official client's queries: ``verified``
    reads ``verification == "verified"``; ``geolocation`` compares country codes;
    ``driver_version`` compares version numbers (``"535.183.01"`` = ``535183001``);
    ``cuda_vers`` / ``ubuntu_version`` are aliases of ``cuda_max_good`` / ``os_version``;
    numbers and booleans sent as strings compare as numbers and booleans."""
    if not isinstance(cond, dict):
        cond = {"eq": cond}
    field = _FIELD_ALIASES.get(field, field)
    if field == "verified":
        value: Any = record.get("verification") == "verified"
    elif field == "geolocation":
        value = _country(record.get("geolocation"))
        cond = {
            op: ([str(t).upper() for t in tgt] if isinstance(tgt, list) else str(tgt).upper())
            for op, tgt in cond.items()
        }
    elif field == "driver_version":
        value = _version_number(record.get("driver_version"))
        cond = {
            op: (
                [_version_number(t) for t in tgt] if isinstance(tgt, list) else _version_number(tgt)
            )
            for op, tgt in cond.items()
        }
    else:
        value = record.get(field)
    for op, target in cond.items():
        if op not in _OPS:
            raise ValueError(op)
        if not _compare(value, op, target):
            return False
    return True


def _sort(rows: list[dict[str, Any]], order: Any) -> None:
    """Sort in place by ``[[field, "asc"|"desc"], ...]``; nulls last either way."""
    for name, direction in reversed([tuple(o) for o in order]):
        desc = str(direction).lower() == "desc"
        present = [r for r in rows if r.get(name) is not None]
        missing = [r for r in rows if r.get(name) is None]
        present.sort(key=operator.itemgetter(name), reverse=desc)
        rows[:] = present + missing


def _parse_order_by(order_by: Any) -> list[tuple[str, bool]] | str:
    """``[{"col": "label", "dir": "desc"}, …]`` -> ``[("label", True), …, ("id", False)]``
    (column, descending), or an error message. Any ``dir`` but ``desc`` is ascending and
    ``id`` is appended as tie-breaker (tests/specs/vast-show_instances.yaml ``order_by``)."""
    if not isinstance(order_by, list):
        return "order_by must be a JSON list of {col, dir}"
    order: list[tuple[str, bool]] = []
    for item in order_by:
        if not isinstance(item, dict) or not isinstance(item.get("col"), str):
            return "order_by must be a JSON list of {col, dir}"
        col = item["col"]
        if col not in _LIST_FILTERABLE:
            return f"Error in query parameters: {col} is not a valid order column"
        order.append((col, str(item.get("dir", "asc")).lower() == "desc"))
    if all(col != "id" for col, _ in order):
        order.append(("id", False))
    return order


def _cmp_values(a: Any, b: Any) -> int:
    """-1/0/1; null after every value (PostgreSQL's order); mixed types compare as text."""
    if a is None or b is None:
        return (a is None) - (b is None)
    try:
        return int(a > b) - int(a < b)
    except TypeError:
        return int(str(a) > str(b)) - int(str(a) < str(b))


def _cmp_rows(a: Mapping[str, Any], b: Mapping[str, Any], order: list[tuple[str, bool]]) -> int:
    """Compare two rows (or a row and a token's values) under ``order``."""
    for col, desc in order:
        result = _cmp_values(a.get(col), b.get(col))
        if result:
            return -result if desc else result
    return 0


def _id_candidates(cond: Any, live: Mapping[int, Any]) -> list[int] | None:
    """The sorted live ids an ``id`` filter can match when it names them (``eq`` / ``in``),
    found by look-up (O(ids named), not O(instances)); None when it names none."""
    if not isinstance(cond, dict):
        cond = {"eq": cond} if cond is not None else {}
    named: set[int] | None = None
    for op in ("eq", "in"):
        if op not in cond:
            continue
        values = cond[op] if op == "in" else [cond[op]]
        ints: set[int] = set()
        for value in values if isinstance(values, list) else []:
            try:
                ints.add(int(float(value)))
            except (TypeError, ValueError):
                continue
        named = ints if named is None else named & ints
    if named is None:
        return None
    return sorted(i for i in named if i in live)


def _https(inst: SimInstance, container_port: int) -> bool:
    """True when ``container_port`` of ``inst`` answers TLS only: the instance's env asks for
    ``ENABLE_HTTPS=true`` (Vast.ai's base image then serves its web ports over HTTPS:
    github.com/vast-ai/base-image README, "Enabling HTTPS"); never SSH's port 22."""
    wanted = str(inst.env.get("ENABLE_HTTPS", "")).strip().lower() == "true"
    return wanted and container_port != 22


class VastSimulator:
    """In-process Vast.ai: HTTP server, offer stock, instances, faults, request log.

    Args:
        api_key: the default account's key (user id :data:`DEFAULT_USER_ID`). When set, a
            request with neither this key nor an ``accounts`` key gets the auth error
            ``{"success": false, "error": "auth_error", "msg": "Invalid user key"}`` (HTTP
            ``auth_status``; 404 on the offer search, which stays open to requests without
            any key). When None,
            requests without ``Authorization`` act as the default account; so does every
            request, whatever key it sends, when ``accounts`` is empty too (fully open).
        accounts: more accounts, ``{api_key: vast_user_id}`` (e.g. ``{"key-a": 1001,
            "key-b": 1002}``); two keys with one user id share one account. Each account has
            its own instances (list, show, stop/start/label, destroy see only its own; another
            account's id answers as a missing instance: ``{"instances": null}``, 404
            ``no_such_instance`` on manage, 404 ``not_found`` on destroy) and its own credit
            (``credit`` to start); ``users/current`` answers its ``id``.
        auth_status: HTTP status of the auth error outside the offer search. The OpenAPI files
            document 401 (show_instance.yaml, show_user.yaml); a wrong key was seen answering
            404 in practice (docs/VAST_API.md §1). None (default): 401 when ``accounts`` is given,
            else 404 (this simulator's answer before it had accounts).
        seed: seeds the offer stock, ids, tokens and ports numbers shown.
        first_instance_id: new instances' ids count up from here (default: from ``seed``, the
            same every run); a simulator restarted next to a kept database passes a fresh one,
            so no new instance takes the id of an instance the database still names.
        timeline: boot timeline of new instances (default: 2 s loading, 8 s running,
            12 s app ready, the realistic-but-short one used by ``python -m bot``).
        frozen_clock: when True, time moves only through :meth:`advance` (exact tests).
        credit: starting credit in $ of each account. Create fails with
            ``insufficient_credit`` when the caller's account is at ≤ 0.
        rate_limits: Vast.ai's minimum interval between calls of one endpoint by one caller
            (the ``Authorization`` header, so each key has its own budget, or the client
            address without one). ``True`` =
            :data:`bot.simulator.limits.DEFAULT_RATE_LIMITS` (seconds: list 1.0, get 2.0,
            create 4.5, manage 1.0, destroy 3.0, search 6.0, user 1.0); a mapping such as
            ``{"search": 6.0}`` overrides those defaults (0/None turns one off);
            False/None = off. A call sooner than the interval after the last *accepted* one
            gets HTTP 429 ``text/plain`` ``API requests too frequent endpoint
            threshold=<interval>`` without Retry-After (docs/VAST_API.md §1), counted in
            :attr:`rate_limited_count`.
        rate_clock: monotonic seconds for the rate limiter (default :func:`time.monotonic`).
        gpu_util: the ``gpu_util`` a new instance reports while running (a fraction; the
            default 0.02 reads as an idle GPU; :meth:`set_utilisation` changes one instance).

    Use as a context manager or call :meth:`start` / :meth:`stop`. Thread-safe.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        accounts: Mapping[str, int] | None = None,
        auth_status: int | None = None,
        seed: int = 7,
        timeline: Timeline | None = None,
        frozen_clock: bool = False,
        credit: float = 25.0,
        rate_limits: bool | Mapping[str, float | None] | None = None,
        rate_clock: Callable[[], float] | None = None,
        gpu_util: float | None = 0.02,
        first_instance_id: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.auth_status = auth_status or (401 if accounts else 404)
        self._keys: dict[str, int] = {str(k): int(v) for k, v in (accounts or {}).items()}
        self._accounts: dict[int, _Account] = {
            uid: _Account(uid, float(credit)) for uid in {DEFAULT_USER_ID, *self._keys.values()}
        }
        self._by_owner: dict[int, dict[int, SimInstance]] = {}
        self._limiter = RateLimiter.from_setting(rate_limits, rate_clock)
        self.timeline = timeline or Timeline()
        self.gpu_util = gpu_util
        self.clock = SimClock(frozen=frozen_clock)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._offers: dict[int, dict[str, Any]] = {
            o["id"]: o for o in generate_offers(seed, now=self.clock.wall())
        }
        self._rented: set[int] = set()
        self._instances: dict[int, SimInstance] = {}
        self._gone: set[int] = set()
        self._faults: list[FaultRule] = []
        self._requests: list[RecordedRequest] = []
        self._next_instance_id = 31_400_000 + self._rng.randint(0, 99_999)
        if first_instance_id is not None:
            self._next_instance_id = int(first_instance_id)
        self._next_key_id = 5_000 + self._rng.randint(0, 999)
        self._apps = AppPorts()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Start serving on 127.0.0.1 at ``port`` (0 = a free one); return the base URL
        (``http://127.0.0.1:<port>``, without ``/api``). OSError when the port is taken."""
        if self._server is not None:
            assert self.base_url is not None
            return self.base_url
        server = _Server(("127.0.0.1", port), _Handler)
        server.sim = self
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.name = "vast-simulator"
        thread.start()
        self._server, self._thread = server, thread
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.base_url

    def stop(self) -> None:
        """Stop the server and every app port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self._apps.close_all()

    def __enter__(self) -> VastSimulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the simulator clock forward by ``seconds``."""
        self.clock.advance(seconds)

    @property
    def credit(self) -> float:
        """The default account's credit in $ (``GET /api/v0/users/current/`` ``credit``).
        Settable; :meth:`set_credit` sets another account's."""
        with self._lock:
            return self._accounts[DEFAULT_USER_ID].credit

    @credit.setter
    def credit(self, value: float) -> None:
        with self._lock:
            self._accounts[DEFAULT_USER_ID].credit = float(value)

    # accounts

    @property
    def accounts(self) -> dict[str, int]:
        """``{api_key: vast_user_id}`` of the accounts added by ``accounts=`` or
        :meth:`add_account` (the default account's ``api_key`` not included)."""
        with self._lock:
            return dict(self._keys)

    def add_account(self, api_key: str, user_id: int, *, credit: float | None = None) -> None:
        """Accept ``api_key`` from now on as Vast.ai user ``user_id`` (an existing user id
        shares that account); ``credit`` ($) sets its credit (a new account starts at 25.0
        when None)."""
        with self._lock:
            self._keys[str(api_key)] = int(user_id)
            account = self._accounts.setdefault(int(user_id), _Account(int(user_id), 25.0))
            if credit is not None:
                account.credit = float(credit)

    def revoke_key(self, api_key: str) -> None:
        """Refuse ``api_key`` from now on (auth error), as Vast.ai does for a deleted key; its
        account and instances stay (another key of the same user still reaches them).
        KeyError for a key that is not an ``accounts`` key."""
        with self._lock:
            del self._keys[api_key]

    def _account_id(self, api_key: str | None) -> int:
        """The user id of ``api_key`` (None or the default key: the default account).
        KeyError for an unknown key. Lock held."""
        if api_key is None or api_key == self.api_key:
            return DEFAULT_USER_ID
        return self._keys[api_key]

    def user_id_of(self, api_key: str | None) -> int:
        """The Vast.ai user id ``api_key`` acts as (None: the default account's,
        :data:`DEFAULT_USER_ID`). KeyError for an unknown key."""
        with self._lock:
            return self._account_id(api_key)

    def credit_of(self, api_key: str | None) -> float:
        """Credit in $ of ``api_key``'s account (None: the default account). KeyError for an
        unknown key."""
        with self._lock:
            return self._accounts[self._account_id(api_key)].credit

    def set_credit(self, api_key: str | None, dollars: float) -> None:
        """Set the credit in $ of ``api_key``'s account (None: the default account); at ≤ 0
        its creates fail with ``insufficient_credit``. KeyError for an unknown key."""
        with self._lock:
            self._accounts[self._account_id(api_key)].credit = float(dollars)

    def instances_of(self, api_key: str | None) -> dict[int, dict[str, Any]]:
        """Current JSON of the live instances of ``api_key``'s account (None: the default
        account), by id. KeyError for an unknown key."""
        with self._lock:
            owned = self._by_owner.get(self._account_id(api_key), {})
            return {i: self._render(inst) for i, inst in sorted(owned.items())}

    def account_of(self, instance_id: int) -> int | None:
        """The Vast.ai user id of the account that rented live instance ``instance_id``
        (:data:`DEFAULT_USER_ID` for the default account); None when it is gone or never
        existed."""
        with self._lock:
            inst = self._instances.get(instance_id)
            return inst.owner if inst is not None else None

    @property
    def rate_limited_count(self) -> int:
        """How many HTTP 429s the rate limiter sent (injected faults not counted); 0 when
        ``rate_limits`` is off."""
        return self._limiter.rejected if self._limiter is not None else 0

    @property
    def rate_limits(self) -> dict[str, float]:
        """The enforced minimum intervals in seconds by endpoint name ({} when off)."""
        return dict(self._limiter.intervals) if self._limiter is not None else {}

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None, path_prefix: str = "") -> int:
        """How many requests matched ``method`` (None = any) and started with ``path_prefix``."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            )

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def inject(
        self,
        fault: Fault | str,
        *,
        times: int | None = 1,
        endpoint: str | None = None,
        seconds: float = 2.0,
        status: int | None = None,
    ) -> None:
        """Make the next ``times`` matching requests fail with ``fault`` (None = until
        :meth:`clear_faults`). ``endpoint``: ``"search"``, ``"create"``, ``"list"``, ``"get"``,
        ``"manage"``, ``"destroy"``, ``"user"``, ``"METHOD /path/prefix"`` or ``"/prefix"``;
        None = every endpoint (create-only faults default to ``"create"``,
        :attr:`Fault.SEARCH_QUOTA_EXCEEDED` to ``"search"``). ``seconds`` is the delay of
        :attr:`Fault.SLOW` and the ``Retry-After`` of :attr:`Fault.RATE_LIMIT_RETRY_AFTER`;
        ``status`` overrides the HTTP status where it applies.
        """
        rule = FaultRule.build(
            fault, times=times, endpoint=endpoint, seconds=seconds, status=status
        )
        with self._lock:
            self._faults.append(rule)

    def clear_faults(self) -> None:
        """Drop every pending global fault."""
        with self._lock:
            self._faults.clear()

    def add_offer(self, **fields: Any) -> int:
        """Add an offer (an RTX 4090 with realistic values, overridden by ``fields`` given
        with Vast.ai field names; ``verified=bool`` sets ``verification``). Returns its id."""
        with self._lock:
            offer_id = int(fields.pop("id", max(self._offers, default=23_800_000) + 1))
            model = next(m for m in GPU_MODELS if m.name == "RTX 4090")
            offer = make_offer(self._rng, offer_id, model, now=self.clock.wall(), **fields)
            if "num_gpus" in fields and "gpu_total_ram" not in fields:
                offer["gpu_total_ram"] = offer["gpu_ram"] * offer["num_gpus"]
            if "dph_base" in fields and "dph_total" not in fields:
                offer["dph_total"] = round(offer["dph_base"] + 8 * offer["storage_cost"] / 720, 6)
            self._offers[offer_id] = offer
            self._rented.discard(offer_id)
            return offer_id

    def take_offer(self, offer_id: int) -> None:
        """Someone else rents ``offer_id``: it leaves the search and create gets no_such_ask."""
        with self._lock:
            self._rented.add(offer_id)

    @property
    def offers(self) -> list[dict[str, Any]]:
        """Copies of the offers still available (not rented), as raw offer dicts."""
        with self._lock:
            return [dict(o) for i, o in self._offers.items() if i not in self._rented]

    @property
    def instances(self) -> dict[int, dict[str, Any]]:
        """Current JSON of every live instance, by id (refreshed to the clock)."""
        with self._lock:
            return {i: self._render(inst) for i, inst in self._instances.items()}

    def instance(self, instance_id: int) -> dict[str, Any] | None:
        """Current JSON of one live instance, or None when it is gone or never existed."""
        with self._lock:
            inst = self._instances.get(instance_id)
            return self._render(inst) if inst else None

    def create_instance_directly(
        self,
        offer_id: int | None = None,
        *,
        image: str = "vastai/base-image:latest",
        env: Mapping[str, str] | None = None,
        disk_gb: float = 16,
        label: str | None = None,
        runtype: str = "args",
        api_key: str | None = None,
    ) -> int:
        """Create an instance without HTTP (for tests needing many instances fast) in
        ``api_key``'s account (None: the default account; KeyError for an unknown key).
        ``offer_id`` None picks the first available rentable offer. Returns its id."""
        with self._lock:
            owner = self._account_id(api_key)
            if offer_id is None:
                offer_id = next(
                    i for i, o in self._offers.items() if i not in self._rented and o["rentable"]
                )
            return self._new_instance(
                self._offers[offer_id],
                image,
                dict(env or {}),
                disk_gb,
                label,
                runtype,
                None,
                [],
                owner=owner,
            ).id

    def instance_ssh_keys(self, instance_id: int) -> list[str]:
        """The public key lines attached to live instance ``instance_id`` (oldest first, a
        copy per attach); KeyError when it is gone or never existed."""
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                raise KeyError(f"no live instance {instance_id}")
            return [key for _, key in inst.ssh_keys]

    # per-instance faults

    def _with(self, instance_id: int, change: Callable[[SimInstance], None]) -> None:
        with self._lock:
            inst = self._instances.get(instance_id)
            if inst is None:
                raise KeyError(f"no live instance {instance_id}")
            change(inst)
            self._render(inst)

    def make_ready(self, instance_id: int) -> None:
        """Skip the rest of the boot: the instance is ``running`` and its app answers 200 now
        (a stuck, exited or failing instance recovers; one stopped on purpose stays stopped).
        KeyError when there is no such live instance."""

        def change(inst: SimInstance) -> None:
            inst.override, inst.override_msg, inst.never_ready = None, None, False
            inst.phase_start = min(
                inst.phase_start, self.clock.now() - inst.timeline.app_ready_after
            )

        self._with(instance_id, change)

    def stuck_loading(self, instance_id: int) -> None:
        """The instance never leaves ``loading``."""
        self._with(instance_id, lambda i: setattr(i, "override", STUCK_LOADING))

    def exit_instance(self, instance_id: int, msg: str = "container exited with code 1") -> None:
        """The container exits: ``actual_status`` ``exited``, ``status_msg`` = ``msg``."""

        def change(inst: SimInstance) -> None:
            inst.override, inst.override_msg = EXITED, msg

        self._with(instance_id, change)

    def status_msg_error(
        self,
        instance_id: int,
        msg: str = "Error response from daemon: OCI runtime create failed: runc create failed",
    ) -> None:
        """Stuck in ``created`` with an error ``status_msg`` (image/start failure)."""

        def change(inst: SimInstance) -> None:
            inst.override, inst.override_msg = STATUS_ERROR, msg

        self._with(instance_id, change)

    def vanish(self, instance_id: int) -> None:
        """The instance disappears (host gone): not in the list, ``{"instances": null}``."""
        with self._lock:
            if instance_id not in self._instances:
                raise KeyError(f"no live instance {instance_id}")
            self._remove(instance_id)

    def app_never_ready(self, instance_id: int) -> None:
        """The app behind the ports keeps answering 503."""
        self._with(instance_id, lambda i: setattr(i, "never_ready", True))

    def stop_by_vast(self, instance_id: int, msg: str | None = None) -> None:
        """Vast.ai stops it (outbid / out of credit): cur_state = intended_status =
        next_state = ``stopped`` (dstack's check, docs/VAST_API.md §4)."""

        def change(inst: SimInstance) -> None:
            inst.override, inst.override_msg = STOPPED_BY_VAST, msg

        self._with(instance_id, change)

    def set_public_ipaddr(self, instance_id: int, value: Any) -> None:
        """What the instance lists as ``public_ipaddr`` from now on, sent as given (any JSON
        value: an IPv6 address, a host name, garbage), to test how the bot copes."""
        self._with(instance_id, lambda i: setattr(i, "public_ipaddr", value))

    def set_listed(self, instance_id: int, **fields: Any) -> None:
        """Raw fields the instance lists from now on, sent as given over what it computes
        (any JSON value: ``ports``, ``ssh_host``, ``gpu_name``, ``status_msg``...; not
        ``id``), to test how the bot copes with hostile data."""
        self._with(instance_id, lambda i: i.listed.update(fields))

    def set_utilisation(
        self, instance_id: int, *, gpu_util: float | None, cpu_util: float | None = None
    ) -> None:
        """What the instance reports as ``gpu_util`` / ``cpu_util`` while running (None =
        null, i.e. unknown; ``cpu_util`` defaults to None, so naming only ``gpu_util`` makes
        ``cpu_util`` null). When not running, ``gpu_util`` is null and ``cpu_util`` 0.0."""

        def change(inst: SimInstance) -> None:
            inst.gpu_util, inst.cpu_util = gpu_util, cpu_util

        self._with(instance_id, change)

    # -- internals --------------------------------------------------------------------------

    def _render(self, inst: SimInstance) -> dict[str, Any]:
        """Sync app ports with the instance's state, then return its JSON. Lock held."""
        now = self.clock.now()
        running = inst.is_running(now)
        direct = int(inst.offer.get("direct_port_count") or 0) > 0
        if running and direct and not inst.host_ports:
            for cport, proto in requested_ports(inst.env, inst.runtype):
                if proto == "tcp":
                    port = self._apps.open(
                        self._readiness(inst), f"{inst.image} :{cport}", tls=_https(inst, cport)
                    )
                    inst.app_ports.append(port)
                else:
                    port = 40000 + self._rng.randint(0, 999)
                inst.host_ports[(cport, proto)] = port
        elif not running and inst.host_ports:
            self._close_ports(inst)
        return inst.to_json(now, self.clock.wall())

    def _readiness(self, inst: SimInstance) -> Callable[[], bool]:
        clock = self.clock
        return lambda: inst.app_ready(clock.now())

    def _close_ports(self, inst: SimInstance) -> None:
        for port in inst.app_ports:
            self._apps.close(port)
        inst.app_ports.clear()
        inst.host_ports.clear()

    def _remove(self, instance_id: int) -> None:
        inst = self._instances.pop(instance_id)
        self._by_owner.get(inst.owner, {}).pop(instance_id, None)
        self._close_ports(inst)
        self._rented.discard(int(inst.offer["id"]))
        self._gone.add(instance_id)

    def _new_instance(
        self,
        offer: dict[str, Any],
        image: str,
        env: dict[str, str],
        disk_gb: float,
        label: str | None,
        runtype: str,
        onstart: str | None,
        args: list[str],
        *,
        owner: int = DEFAULT_USER_ID,
    ) -> SimInstance:
        self._next_instance_id += self._rng.randint(1, 37)
        ssh_idx = self._rng.randint(1, 9)
        inst = SimInstance(
            id=self._next_instance_id,
            offer=dict(offer),
            image=image,
            env=env,
            disk_gb=float(min(disk_gb, float(offer.get("disk_space") or disk_gb))),
            label=label,
            runtype=runtype,
            onstart=onstart,
            args=args,
            created_wall=round(self.clock.wall(), 3),
            phase_start=self.clock.now(),
            timeline=self.timeline,
            gpu_util=self.gpu_util,
            jupyter_token=f"{self._rng.getrandbits(256):064x}",
            ssh_host=f"ssh{ssh_idx}.vast.ai",
            ssh_port=self._rng.randint(10_000, 39_999),
            owner=owner,
        )
        self._instances[inst.id] = inst
        self._by_owner.setdefault(owner, {})[inst.id] = inst
        self._rented.add(int(offer["id"]))
        return inst

    # -- request handling -------------------------------------------------------------------

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, str],
        body: bytes,
        client: str = "",
    ) -> SimResponse:
        """Answer one HTTP request (the HTTP layer calls this from its threads); ``client``
        is the caller's address, its rate-limit identity when it sends no Authorization."""
        parts = urlsplit(raw_path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        payload: Any = None
        bad_json = False
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                bad_json = True
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, payload))
            rule = self._take_fault(method, path)
        delay = 0.0
        if rule is not None:
            fixed = rule.fixed_response(now=self._wall_now())
            if fixed is not None:
                return fixed
            if rule.fault is Fault.SLOW:
                delay = rule.seconds
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if self._limiter is not None:
            interval = self._limiter.check(endpoint_of(method, path), auth or f"ip:{client}")
            if interval is not None:
                return text_response(429, f"{RATE_LIMIT_TEXT} endpoint threshold={interval}")
        with self._lock:
            caller = self._caller(auth)
        search = method == "POST" and path.rstrip("/") == "/api/v0/bundles"
        if caller is None and not (search and not auth):
            return _err(404 if search else self.auth_status, "auth_error", "Invalid user key")
        if bad_json:
            response = _err(400, "invalid_request", "Invalid json body")
        else:
            with self._lock:
                owner = DEFAULT_USER_ID if caller is None else caller
                response = self._route(method, path, query, payload, rule, owner)
        response.delay = delay
        return response

    def _caller(self, auth: str) -> int | None:
        """The user id an ``Authorization`` header acts as, or None when refused: an
        ``accounts`` key or ``api_key`` is its account; no header is the default account
        unless ``api_key`` is set; any header is the default account when no key is
        configured at all (the open simulator of ``python -m bot``). Lock held."""
        key = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        if key is not None and key in self._keys:
            return self._keys[key]
        if self.api_key is not None:
            return DEFAULT_USER_ID if key == self.api_key else None
        if not auth or not self._keys:
            return DEFAULT_USER_ID
        return None

    def _wall_now(self) -> float:
        """Epoch seconds now: the simulator's clock when it runs in real time, else the
        machine's (a frozen clock's wall time does not move)."""
        return time.time() if self.clock.frozen else self.clock.wall()

    def _take_fault(self, method: str, path: str) -> FaultRule | None:
        for rule in self._faults:
            if rule.matches(method, path):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._faults.remove(rule)
                return rule
        return None

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        payload: Any,
        rule: FaultRule | None,
        owner: int,
    ) -> SimResponse:
        """Answer one authorised request as account ``owner`` (a user id). Lock held."""
        if path.rstrip("/") == "/api/v0/bundles" and method == "POST":
            return self._search(payload if payload is not None else {})
        match = re.fullmatch(r"/api/v0/asks/(\d+)/?", path)
        if match and method == "PUT":
            return self._create(int(match.group(1)), payload, rule, owner)
        if path.rstrip("/") == "/api/v1/instances" and method == "GET":
            return self._list(query, self._by_owner.get(owner, {}))
        if path.rstrip("/") == "/api/v0/instances" and method == "GET":
            return _err(
                410,
                "deprecated_endpoint",
                "/api/v0/instances/ is deprecated. Use /api/v1/instances/ instead.",
            )
        match = re.fullmatch(r"/api/v0/instances/(\d+)/ssh(?:/(\d+))?/?", path)
        if match:
            instance_id = int(match.group(1))
            inst = self._by_owner.get(owner, {}).get(instance_id)
            if match.group(2) is not None and method == "DELETE":
                return self._ssh_detach(inst, instance_id, match.group(2))
            if match.group(2) is None and method == "GET":
                return self._ssh_list(inst, instance_id)
            if match.group(2) is None and method == "POST":
                return self._ssh_attach(inst, instance_id, payload)
            return html_page(405, "Method Not Allowed")
        match = re.fullmatch(r"/api/v0/instances/(\d+)/?", path)
        if match:
            instance_id = int(match.group(1))
            mine = self._by_owner.get(owner, {})
            if method == "GET":
                inst = mine.get(instance_id)
                return json_response(200, {"instances": self._render(inst) if inst else None})
            if method == "PUT":
                return self._manage(mine.get(instance_id), instance_id, payload)
            if method == "DELETE":
                return self._destroy(instance_id if instance_id in mine else None, instance_id)
        if path.rstrip("/") == "/api/v0/users/current" and method == "GET":
            return json_response(200, self._user(self._accounts[owner]))
        return html_page(404, "Not Found")  # unknown path: a framework page, not JSON

    def _search(self, query: Any) -> SimResponse:
        if not isinstance(query, dict):
            return _err(400, "invalid_request", "Invalid json body")
        try:
            limit = int(query.get("limit", DEFAULT_SEARCH_LIMIT))
            storage = float(query.get("allocated_storage", 8.0))
        except (TypeError, ValueError):
            return _err(400, "invalid_args", "limit and allocated_storage must be numbers")
        kind = str(query.get("type", "on-demand"))
        results: list[dict[str, Any]] = []
        for offer_id, raw in self._offers.items():
            if offer_id in self._rented:
                continue
            offer = dict(raw)
            base = offer["min_bid"] if kind in ("bid", "interruptible") else offer["dph_base"]
            storage_hour = storage * float(offer["storage_cost"]) / 720.0
            offer["dph_total"] = round(float(base) + storage_hour, 6)
            offer["storage_total_cost"] = round(storage_hour, 6)
            offer["is_bid"] = kind == "bid"
            offer["search"] = {
                "gpuCostPerHour": base,
                "diskHour": offer["storage_total_cost"],
                "totalHour": offer["dph_total"],
                "discountTotalHour": 0,
                "discountedTotalPerHour": offer["dph_total"],
            }
            try:
                keep = all(
                    _matches(offer, name, cond)
                    for name, cond in query.items()
                    if name not in _SEARCH_RESERVED
                )
            except ValueError as exc:
                return _err(400, "invalid_args", f"Unknown operator: {exc}")
            if keep:
                results.append(offer)
        try:
            _sort(results, query.get("order") or [["score", "desc"]])
        except (TypeError, ValueError):
            return _err(400, "invalid_args", "order must be a list of [field, 'asc'|'desc']")
        return json_response(200, {"offers": results[: max(limit, 0)]})

    def _create(self, offer_id: int, body: Any, rule: FaultRule | None, owner: int) -> SimResponse:
        offer = self._offers.get(offer_id)
        taken = rule is not None and rule.fault is Fault.OFFER_TAKEN
        if taken:
            self._rented.add(offer_id)
        if taken or offer is None or offer_id in self._rented or not offer.get("rentable"):
            if rule is not None and rule.status == 410:
                return _err(
                    410,
                    "no_such_ask",
                    f"error 410/3907: no_such_ask Instance type {offer_id} is no longer available.",
                    ask_id=offer_id,
                )
            return _err(
                404,
                "invalid_args",
                f"error 404/3603: no_such_ask Instance type by id {offer_id} is not available.",
                ask_id=offer_id,
            )
        assert offer is not None
        if not isinstance(body, dict):
            return _err(400, "invalid_args", "error 400/3467: Invalid args: body required")
        image, env, disk = body.get("image"), body.get("env", {}), body.get("disk", 8)
        label, runtype = body.get("label"), body.get("runtype", "ssh")
        problem = None
        if not isinstance(image, str) or not image or len(image) > 1024:
            problem = "'image' is required (at most 1024 characters)"
        elif not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problem = "'env' must be a JSON object of string values"
        elif any(len(v) > 256 for v in env.values()):
            problem = "each env value must be at most 256 characters"
        elif not isinstance(disk, int | float) or disk < 8:
            problem = "'disk' must be a number >= 8 (GB)"
        elif label is not None and (not isinstance(label, str) or len(label) > 256):
            problem = "'label' must be a string of at most 256 characters"
        elif runtype not in _RUNTYPES:
            problem = f"unknown runtype {runtype!r}"
        if problem:
            return _err(
                400, "invalid_args", f"error 400/3467: Invalid args: {problem}", ask_id=offer_id
            )
        if self._accounts[owner].credit <= 0:
            return FaultRule.build(
                Fault.NO_CREDIT, times=1, endpoint=None, seconds=0, status=None
            ).fixed_response() or _err(400, "insufficient_credit", "Insufficient credit")
        args = body.get("args") or []
        inst = self._new_instance(
            offer,
            str(image),
            dict(env),
            float(disk),
            label,
            runtype,
            body.get("onstart"),
            [str(a) for a in args] if isinstance(args, list) else [],
            owner=owner,
        )
        if rule is not None and rule.fault is Fault.CREATE_FAILED_WITH_CONTRACT:
            inst.intended = "stopped"
            return json_response(
                rule.status or 400,
                {
                    "success": False,
                    "error": "unschedulable",
                    "msg": "Instance created but could not be started; it was left stopped.",
                    "new_contract": inst.id,
                },
            )
        return json_response(
            200,
            {
                "success": True,
                "new_contract": inst.id,
                "instance_api_key": f"{self._rng.getrandbits(128):032x}",
            },
        )

    def _list(self, query: dict[str, str], live: Mapping[int, SimInstance]) -> SimResponse:
        """``GET /api/v1/instances/`` as tests/specs/vast-show_instances.yaml documents it,
        over ``live`` (the caller's own instances by id).

        ``limit`` (≤ 25; ≤ 0 means 5), ``select_filters`` (stored columns only, ops
        eq/neq/gt/gte/lt/lte/in/notin; a computed column such as ``dph_total`` → 400
        ``invalid_request``), ``order_by`` (``[{"col": …, "dir": "asc"|"desc"}]``, any other
        ``dir`` is asc, ``id`` appended as tie-breaker, an unknown column → 400),
        ``select_cols`` (unknown names come back null) and keyset paging: ``next_token`` is
        base64 JSON ``{"values": {<order cols>: <last row's values>, "id": …}}`` and
        ``after_token`` resumes strictly after that position (bad token → 400
        ``invalid_token``). Nulls sort last ascending and first descending (PostgreSQL's
        default). Unfiltered id order renders only the page; an ``id`` ``eq``/``in`` filter
        renders only those ids, so a poller asking for 25 ids out of 10,000 stays cheap.
        """
        try:
            limit = int(query.get("limit", _PAGE_MAX))
        except ValueError:
            return _err(400, "invalid_request", "limit must be an integer")
        limit = 5 if limit <= 0 else min(limit, _PAGE_MAX)
        try:
            filters = json.loads(query.get("select_filters") or "{}")
            cols = json.loads(query.get("select_cols") or '["*"]')
            order_by = json.loads(query.get("order_by") or "[]")
        except ValueError:
            return _err(400, "invalid_request", "select_filters/select_cols/order_by must be JSON")
        if not isinstance(filters, dict) or not isinstance(cols, list):
            return _err(
                400, "invalid_request", "select_filters must be an object, select_cols a list"
            )
        bad = [f for f in filters if f not in _LIST_FILTERABLE]
        if bad:
            return _err(
                400,
                "invalid_request",
                f"Error in query parameters: {bad[0]} is not a valid search key",
            )
        for cond in filters.values():
            unknown = [op for op in cond if op not in _OPS] if isinstance(cond, dict) else []
            if unknown:
                return _err(400, "invalid_request", f"Unknown operator: {unknown[0]}")
        order = _parse_order_by(order_by)
        if isinstance(order, str):
            return _err(400, "invalid_request", order)
        after: dict[str, Any] | None = None
        token = query.get("after_token")
        if token:
            try:
                after = json.loads(base64.b64decode(token, validate=True))["values"]
                if not isinstance(after, dict) or any(col not in after for col, _ in order):
                    raise KeyError("values")
                int(after["id"])
            except (ValueError, KeyError, TypeError, binascii.Error):
                return _err(400, "invalid_token", "Invalid after_token")

        candidates = _id_candidates(filters.get("id"), live)
        if not filters and order == [("id", False)]:
            # Without filters, render only the page: a tick over 10,000 instances stays linear.
            ids = sorted(live)
            labels = [live[i].label or "" for i in ids]
            start = bisect.bisect_right(ids, int(after["id"])) if after else 0
            page = [self._render(live[i]) for i in ids[start : start + limit]]
            more = start + limit < len(ids)
            total = len(ids)
        else:
            ids = sorted(live) if candidates is None else candidates
            rows = [self._render(live[i]) for i in ids]
            rows = [r for r in rows if all(_matches(r, f, c) for f, c in filters.items())]
            labels = [r.get("label") or "" for r in rows]
            if order != [("id", False)]:
                rows.sort(key=functools.cmp_to_key(lambda a, b: _cmp_rows(a, b, order)))
            start = 0
            if after is not None:
                start = next(
                    (n for n, r in enumerate(rows) if _cmp_rows(r, after, order) > 0), len(rows)
                )
            page = rows[start : start + limit]
            more = start + limit < len(rows)
            total = len(rows)
        label_counts: dict[str, int] = {}
        for label in labels:
            label_counts[label] = label_counts.get(label, 0) + 1
        next_token = None
        if more and page:
            values = {col: page[-1].get(col) for col, _ in order}
            next_token = base64.b64encode(json.dumps({"values": values}).encode()).decode()
        if cols != ["*"]:
            page = [{c: r.get(c) for c in cols} for r in page]
        return json_response(
            200,
            {
                "success": True,
                "instances_found": len(page),
                "total_instances": total,
                "label_counts": label_counts,
                "next_token": next_token,
                "instances": page,
            },
        )

    def _manage(self, inst: SimInstance | None, instance_id: int, body: Any) -> SimResponse:
        """Stop/start/label ``inst`` (None: missing, or another account's)."""
        if inst is None:
            return _err(404, "no_such_instance", f"Instance {instance_id} not found.")
        if not isinstance(body, dict) or not ({"state", "label"} & body.keys()):
            return _err(400, "invalid_args", "Expected 'state' or 'label'")
        if "label" in body:
            label = body["label"]
            if not isinstance(label, str):
                return _err(400, "invalid_args", "label must be a string")
            if len(label) > 1024:
                return _err(
                    400,
                    "label_too_long",
                    "Please limit label length to 1024 characters, ideally less than 128.",
                )
            inst.label = label
            if "state" not in body:
                return json_response(
                    200, {"success": True, "msg": f"label for {instance_id} set to '{label}'"}
                )
        state = body.get("state")
        if state == "stopped":
            inst.intended = "stopped"
            self._render(inst)
            return json_response(200, {"success": True})
        if state == "running":
            now = self.clock.now()
            if inst.intended == "stopped" or inst.override == STOPPED_BY_VAST:
                inst.intended = "running"
                inst.override = None if inst.override == STOPPED_BY_VAST else inst.override
                inst.phase_start = now
            self._render(inst)
            return json_response(200, {"success": True, "msg": "starting instance"})
        return _err(400, "invalid_args", f"Unknown state {state!r}")

    def _destroy(self, owned_id: int | None, instance_id: int) -> SimResponse:
        """Destroy ``owned_id`` (None: ``instance_id`` is missing, or another account's)."""
        if owned_id is None:
            return _err(404, "not_found", "Instance not found")
        self._remove(owned_id)
        return json_response(200, {"success": True})

    # SSH keys of one instance (docs.vast.ai API reference › Instances: show ssh-keys,
    # attach ssh-key, detach ssh-key). An unknown instance, or another account's, answers
    # 404 ``no_such_instance`` as the other instance endpoints do (the documented Error
    # schema ``{"success": false, "error", "msg"}``).

    def _ssh_list(self, inst: SimInstance | None, instance_id: int) -> SimResponse:
        if inst is None:
            return _err(404, "no_such_instance", f"Instance {instance_id} not found.")
        keys = [
            {"id": int(key_id), "name": _key_name(key), "public_key": key}
            for key_id, key in inst.ssh_keys
        ]
        return json_response(200, {"success": True, "ssh_keys": json.dumps(keys)})

    def _ssh_attach(self, inst: SimInstance | None, instance_id: int, body: Any) -> SimResponse:
        """Attach (any state of the instance: the key is there when it runs). A key that is
        not one OpenSSH public key line gets a 400: the status and envelope are documented
        (attach_ssh.yaml ``400`` Error), the ``error``/``msg`` words are this simulator's own
        (Vast.ai does not document them)."""
        if inst is None:
            return _err(404, "no_such_instance", f"Instance {instance_id} not found.")
        key = body.get("ssh_key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key.strip():
            return _err(400, "invalid_args", "ssh_key is required")
        problem = key_problem(key)
        if problem is not None:
            return _err(400, "invalid_args", f"Invalid SSH key: {problem}")
        self._next_key_id += self._rng.randint(1, 9)
        inst.ssh_keys.append((str(self._next_key_id), key.strip()))
        return json_response(200, {"success": True, "msg": "SSH key attached successfully"})

    def _ssh_detach(self, inst: SimInstance | None, instance_id: int, key_id: str) -> SimResponse:
        if inst is None:
            return _err(404, "no_such_instance", f"Instance {instance_id} not found.")
        kept = [(i, k) for i, k in inst.ssh_keys if i != str(int(key_id))]
        if len(kept) == len(inst.ssh_keys):
            return _err(404, "no_such_ssh_key", "SSH key not found.")
        inst.ssh_keys[:] = kept
        return json_response(200, {"success": True, "msg": "SSH key removed from instance."})

    def _user(self, account: _Account) -> dict[str, Any]:
        """``users/current`` of ``account`` (show_user.yaml fields; never a key)."""
        uid = account.user_id
        default = uid == DEFAULT_USER_ID
        return {
            "id": uid,
            "key_id": 1717 if default else 1700 + uid % 1000,
            "username": "simulated" if default else f"simulated-{uid}",
            "email": "simulated@example.invalid" if default else f"user-{uid}@example.invalid",
            "fullname": "Simulated Account" if default else f"Simulated Account {uid}",
            "credit": round(account.credit, 4),
            "balance": 0.0,
            "balance_threshold": 0.0,
            "balance_threshold_enabled": False,
            "billing_creditonly": True,
            "can_pay": True,
            "has_billing": True,
            "ssh_key": "",
            "sid": "simulated" if default else f"simulated-{uid}",
        }


def _key_name(key: str) -> str:
    """The listed ``name`` of an attached key: its comment, else its type."""
    parts = key.split(maxsplit=2)
    return parts[2] if len(parts) > 2 else parts[0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    sim: VastSimulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    server_version = "vast-sim"

    def do_GET(self) -> None:  # http.server names its handlers do_<METHOD>
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            response = self.server.sim.handle(
                method, self.path, dict(self.headers.items()), body, self.client_address[0]
            )
        except Exception:  # a simulator bug must still answer, and loudly
            logger.exception("simulator failed on %s %s", method, self.path)
            response = _err(500, "internal_error", "simulator error")
        if response.delay:
            time.sleep(response.delay)
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
        logger.debug("vast-sim %s", format % args)
