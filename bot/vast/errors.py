"""Errors raised by :class:`bot.vast.client.VastClient`, and the rules that pick them.

Hierarchy::

    VastError                      any failure; .user_message, .status_code, .instance_id
    ├── OfferUnavailable           the offer was rented by someone else / vanished (create)
    ├── InsufficientCredit         not enough credit on the Vast.ai account (create)
    ├── AuthError                  bad, revoked or under-scoped API key (any status, even 404)
    ├── RateLimited                HTTP 429 (often a plain-text body, no Retry-After)
    ├── SearchQuotaExceeded        HTTP 429 ``search_quota_exceeded``: the daily offer-search
    │                              quota is used up until ``resets_at`` (never retried)
    ├── Unreachable                connect error, timeout, or 502/503/504 from a gateway
    ├── UnexpectedResponse         HTML/plain text/unparseable body, wrong JSON shape,
    │                              or 200 ``success: false`` with an unknown ``error``
    ├── NotFound                   ``no_such_instance`` / ``not_found`` for an instance id
    └── KeyRefused                 Vast.ai refused an SSH public key sent to an instance
                                   (a 4xx that is neither auth, rate limit nor not found)

``str(error)`` is technical (method, path, status, Vast.ai's error code and message) and
``user_message`` is a sentence fit for Slack that says what went wrong and what to do.
Neither ever contains the API key.

Rules come from docs/VAST_API.md §1 (error envelope, auth quirks, 429 shape) and §3 (create
errors; "classify offer-unavailable by ``no_such_ask`` or 3603/3907 in ``error`` or ``msg``").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.formats import mrkdwn_escape

__all__ = [
    "AuthError",
    "InsufficientCredit",
    "KeyRefused",
    "NotFound",
    "OfferUnavailable",
    "RateLimited",
    "SearchQuotaExceeded",
    "Unreachable",
    "UnexpectedResponse",
    "VastError",
    "classify",
    "parse_body",
]

_MAX_DETAIL = 300
_MIN_REDACTED_PREFIX = 8  # a cut-off secret is redacted down to this many characters

NOT_JSON: Any = object()
"""Sentinel returned by :func:`parse_body` when the body is not JSON."""


class VastError(Exception):
    """Base of every Vast.ai failure.

    Attributes:
        user_message: what went wrong and what to do, fit for Slack.
        status_code: HTTP status, or None when no answer came back.
        instance_id: set when a failed create still left an instance (``new_contract`` in the
            error body); the caller must destroy it, since it bills storage.
        error_code: Vast.ai's ``error`` field (e.g. ``"no_such_ask"``), when there was one.
        outcome_unknown: True when a create may have succeeded although no answer arrived
            (read timeout after the request was sent); look the instance up by label.
    """

    default_user_message = (
        "Vast.ai returned an error. Try again; if it keeps failing, tell an admin."
    )

    def __init__(
        self,
        message: str,
        *,
        user_message: str | None = None,
        status_code: int | None = None,
        instance_id: int | None = None,
        error_code: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.user_message = user_message or self.default_user_message
        self.status_code = status_code
        self.instance_id = instance_id
        self.error_code = error_code
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        return self.message

    def redact(self, secrets: list[str]) -> None:
        """Replace each secret (≥ 4 chars) in the messages by ``[redacted]``.

        Vast.ai sometimes echoes the request in ``msg`` ("invalid json: {...}"), which could
        carry env values sent on create.
        """
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) < 4:
                continue
            self.message = _redact(self.message, secret)
            self.user_message = _redact(self.user_message, secret)
        self.args = (self.message,)


def _redact(text: str, secret: str) -> str:
    """``text`` without ``secret``, nor a cut-off start of it (details are truncated to
    300 characters before redaction, which can split a secret at the cut)."""
    text = text.replace(secret, "[redacted]")
    for length in range(len(secret) - 1, _MIN_REDACTED_PREFIX - 1, -1):
        if secret[:length] in text:
            text = text.replace(secret[:length], "[redacted]")
    return text


class OfferUnavailable(VastError):
    """The offer is gone (``no_such_ask``, codes 3603/3907, or 404/410 on create).

    Pick the next offer or search again (docs/VAST_API.md §7 pitfall 1)."""

    default_user_message = (
        "That GPU offer is no longer available (someone else rented it). "
        "Pick another offer or search again."
    )


class InsufficientCredit(VastError):
    """The Vast.ai account has too little credit for the rental."""

    default_user_message = (
        "The Vast.ai account does not have enough credit for this rental. "
        "Ask an admin to add credit on Vast.ai, then try again."
    )


class AuthError(VastError):
    """The API key was refused (``error == "auth_error"`` or msg "Invalid user key", any status)."""

    default_user_message = (
        "Vast.ai refused the bot's API key (invalid, revoked or missing a permission). "
        "Ask an admin to check VAST_API_KEY."
    )


class RateLimited(VastError):
    """HTTP 429. Vast.ai usually sends no Retry-After; the client waits ``retry_after`` when
    it was given, else backs off, and retries (not create).

    Attributes:
        retry_after: seconds from the ``Retry-After`` header, None when absent or not a number.
    """

    default_user_message = (
        "Vast.ai is rate-limiting the bot right now. Wait a minute and try again."
    )

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SearchQuotaExceeded(VastError):
    """HTTP 429 with ``error: "search_quota_exceeded"``: the account's daily offer-search
    quota is used up. It resets at UTC midnight, told by ``X-RateLimit-Reset`` (Unix seconds),
    so retrying only burns requests (the official client: vastai/api/client.py
    ``is_search_quota_exceeded``, vastai/cli/main.py ``with_quota_reset``). Never retried.

    Attributes:
        resets_at: aware UTC time the quota resets, None when Vast.ai did not say.
    """

    def __init__(self, message: str, *, resets_at: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.resets_at = resets_at
        if resets_at is not None:
            # Slack shows <!date^…> in each reader's own time zone; the fallback is UTC.
            fallback = f"{resets_at:%H:%M} UTC on {resets_at:%b %d}"
            when = (
                f"It resets at <!date^{int(resets_at.timestamp())}^{{time}} {{date_short}}"
                f"|{fallback}>"
            )
        else:
            when = "It resets at midnight UTC"
        self.user_message = (
            "Vast.ai's daily offer-search quota for the bot's account is used up, so no new "
            f"GPU offers can be shown. {when}; deploy again after that. Running deployments "
            "and their buttons are not affected."
        )


class Unreachable(VastError):
    """No usable answer: connect error, timeout, or a 502/503/504 gateway error."""

    default_user_message = (
        "Could not reach Vast.ai (timeout or gateway error). Try again in a few minutes."
    )


class UnexpectedResponse(VastError):
    """Vast.ai answered something the bot cannot read (HTML, plain text, wrong JSON shape)."""

    default_user_message = (
        "Vast.ai sent an answer the bot could not understand. "
        "Try again later; if it keeps happening, tell an admin."
    )


class NotFound(VastError):
    """The instance does not exist (any more): ``no_such_instance`` / ``not_found``."""

    default_user_message = "That instance no longer exists on Vast.ai (it may have been destroyed)."


class KeyRefused(VastError):
    """Vast.ai refused the SSH public key sent to ``POST /api/v0/instances/{id}/ssh/`` (a
    malformed key: the API reference documents a 400 with ``{"success": false, "error",
    "msg"}``, docs.vast.ai API reference › Instances › attach ssh-key). Sending the same key
    again will not help; a person has to replace it."""

    default_user_message = (
        "Vast.ai refused this SSH public key. Check that it is one OpenSSH public key line "
        "(ssh-ed25519, ecdsa-sha2-nistp256 or ssh-rsa), and add it again."
    )


def parse_body(body_text: str, content_type: str) -> Any:
    """Parse a response body as JSON when it looks like JSON; return :data:`NOT_JSON` otherwise.

    A JSON content type, or a body starting with ``{``/``[``, is tried; HTML and plain text
    (e.g. the 429 ``API requests too frequent``) give :data:`NOT_JSON`.
    """
    text = body_text.strip()
    if "json" not in content_type.lower() and not text.startswith(("{", "[")):
        return NOT_JSON
    try:
        return json.loads(text)
    except ValueError:
        return NOT_JSON


def _detail(data: Any, body_text: str) -> tuple[str | None, str]:
    """(error code, human message) from a parsed body; plain text becomes the message."""
    if isinstance(data, dict):
        code = data.get("error")
        msg = data.get("msg") or data.get("message") or data.get("detail") or ""
        return (str(code) if code is not None else None), str(msg)[:_MAX_DETAIL]
    if data is NOT_JSON:
        return None, " ".join(body_text.split())[:_MAX_DETAIL]
    return None, ""


def _new_contract(data: Any) -> int | None:
    if isinstance(data, dict):
        value = data.get("new_contract")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds), else None."""
    raw = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    try:
        seconds = float(raw) if raw is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86_400 else None


def _reset_time(headers: Mapping[str, str] | None) -> datetime | None:
    """``X-RateLimit-Reset`` (Unix seconds) as an aware UTC time, else None."""
    raw = (headers or {}).get("x-ratelimit-reset") or (headers or {}).get("X-RateLimit-Reset")
    try:
        return datetime.fromtimestamp(int(str(raw)), UTC) if raw is not None else None
    except (ValueError, OverflowError, OSError):
        return None


def classify(
    status: int,
    body_text: str,
    content_type: str,
    *,
    operation: str = "",
    data: Any = None,
    headers: Mapping[str, str] | None = None,
) -> VastError | None:
    """Turn one HTTP answer into the error it means, or None when it is a usable success.

    Args:
        status: HTTP status code.
        body_text: the raw body.
        content_type: the ``Content-Type`` header (may be empty).
        operation: a label for the call; ``"create"`` makes 404/410 mean
            :class:`OfferUnavailable`, ``"PUT /api/..."`` prefixes the message.
        data: the already-parsed body (from :func:`parse_body`); parsed here when None.
        headers: the response headers (``Retry-After``, ``X-RateLimit-Reset`` on a 429).

    Success = 2xx, a JSON body, and not ``success: false``. Shape checks (``offers`` is a list,
    ...) are the caller's job. The returned error carries ``instance_id`` whenever the body
    has ``new_contract``.
    """
    if data is None:
        data = parse_body(body_text, content_type)
    code, msg = _detail(data, body_text)
    success_false = isinstance(data, dict) and data.get("success") is False
    if 200 <= status < 300 and data is not NOT_JSON and not success_false:
        return None

    is_create = operation.split(" ")[0] == "create" or "/asks/" in operation
    where = f"{operation}: " if operation else ""
    text = f"{where}HTTP {status}" + (f" {code}" if code else "") + (f": {msg}" if msg else "")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "instance_id": _new_contract(data),
        "error_code": code,
    }
    lowered = f"{code or ''} {msg}".lower()

    if code == "auth_error" or "invalid user key" in lowered or status == 401:
        return AuthError(text, **kwargs)
    if code == "search_quota_exceeded":
        return SearchQuotaExceeded(text, resets_at=_reset_time(headers), **kwargs)
    if status == 429 or code == "rate_limit_exceeded" or "too frequent" in lowered:
        return RateLimited(text, retry_after=_retry_after(headers), **kwargs)
    if "no_such_ask" in lowered or "3603" in msg or "3907" in msg:
        return OfferUnavailable(text, **kwargs)
    if status == 402 or ("insufficient" in lowered and ("credit" in lowered or "fund" in lowered)):
        return InsufficientCredit(text, **kwargs)
    if status in (502, 503, 504):
        return Unreachable(text, **kwargs)
    if is_create and status in (404, 410):
        return OfferUnavailable(text, **kwargs)
    if code in ("no_such_instance", "not_found") or (
        status == 404 and not is_create and "instance" in msg.lower()
    ):
        # Only a JSON answer about the instance: a bare 404 (wrong VAST_API_URL, HTML page)
        # must not let destroy report "already gone" while the instance keeps billing.
        return NotFound(text, **kwargs)
    if data is NOT_JSON or not isinstance(data, dict):
        return UnexpectedResponse(text + " (body is not a JSON object)", **kwargs)
    if 200 <= status < 300:
        # 200 with success:false and an error we do not know.
        return UnexpectedResponse(text, **kwargs)
    if status == 403 and code != "invalid_args":
        return AuthError(text, **kwargs)
    # user_message is mrkdwn (Slack shows it in the channel): Vast.ai's words as plain text.
    user = "Vast.ai rejected the request" + (
        f": {mrkdwn_escape(msg)}" if msg else f" (HTTP {status})."
    )
    return VastError(text, user_message=user, **kwargs)
