"""Vast.ai's rate limits per endpoint, as a minimum interval between calls, and the
``VAST_MIN_INTERVALS`` setting that overrides them (``"search=10,list=1.5"``).

Vast.ai enforces its rate limits as a *minimum interval between calls* per endpoint and per
caller (docs/VAST_API.md §1, "Rate limits"); the defaults below are the ``x-rate-limit`` hints
of Vast.ai's OpenAPI files (vendored in ``tests/specs/``). This module imports nothing of the
bot: the settings (:mod:`bot.config`) validate ``VAST_MIN_INTERVALS`` with it and the client's
pacers (:mod:`bot.vast.pacing`) space calls by it, without the settings importing the client.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_MIN_INTERVALS", "ENDPOINTS", "NO_PACING", "parse_min_intervals"]

ENDPOINTS = ("search", "list", "get", "create", "manage", "destroy", "user", "ssh")
"""Endpoint names, each with its own pacer: ``search`` (``POST /api/v0/bundles/``), ``list``
(``GET /api/v1/instances/``), ``get`` (``GET /api/v0/instances/{id}/``), ``create`` (``PUT
/api/v0/asks/{id}/``), ``manage`` (start, stop, label: ``PUT /api/v0/instances/{id}/``),
``destroy`` (``DELETE /api/v0/instances/{id}/``), ``user`` (``GET /api/v0/users/current/``),
``ssh`` (one instance's SSH keys: ``GET`` and ``POST /api/v0/instances/{id}/ssh/``, ``DELETE
/api/v0/instances/{id}/ssh/{key_id}/``)."""

DEFAULT_MIN_INTERVALS: Mapping[str, float] = {
    "search": 6.0,  # search_offers.yaml: 10 requests per minute per IP
    "list": 1.0,  # show_instances.yaml: threshold 1.0
    "get": 2.0,  # show_instance.yaml: threshold 2.0
    "create": 4.5,  # create_instance.yaml: threshold 4.5 (penalty 12)
    "manage": 1.0,  # manage_instance.yaml, label_instance.yaml: threshold 1.0
    "destroy": 3.0,  # destroy_instance.yaml: threshold 3.0
    "user": 1.0,  # show_user.yaml gives none; one a second is what the others allow
    "ssh": 2.0,  # detach_ssh.yaml: threshold 2.0 (the same pacer serves list and attach)
}
"""Seconds between two calls of each endpoint (Vast.ai's OpenAPI ``x-rate-limit`` hints)."""

NO_PACING: Mapping[str, float] = {name: 0.0 for name in ENDPOINTS}
"""Every interval 0: no pacing (tests against the simulator with its limits off)."""


def parse_min_intervals(text: str) -> dict[str, float]:
    """``"search=10,list=1.5"`` -> ``{"search": 10.0, "list": 1.5}``: the endpoints named get
    these intervals (seconds, 0 = unpaced), the others keep :data:`DEFAULT_MIN_INTERVALS`.

    Raises ValueError naming the bad part (an unknown endpoint, a negative or non-numeric
    value, a part without ``=``).
    """
    intervals = dict(DEFAULT_MIN_INTERVALS)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in ENDPOINTS:
            raise ValueError(
                f"{part!r} is not endpoint=seconds with an endpoint among {', '.join(ENDPOINTS)}"
            )
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"{part!r}: {value.strip()!r} is not a number of seconds") from None
        if not 0 <= seconds <= 3600:
            raise ValueError(f"{part!r}: seconds must be between 0 and 3600")
        intervals[name] = seconds
    return intervals
