"""What the lifetime, idle and reminder messages say, as plain data: the services fill these
in and :mod:`bot.blocks.lifetimes` renders them (both import this module; it imports neither).
Money in US dollars, times aware UTC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from storage import DeploymentRecord


@dataclass(frozen=True)
class ExpiryNotice:
    """The warning before a deployment's end.

    ``ends_at``: when the bot acts (aware UTC); ``action``: what it does then (``stop`` or
    ``destroy``, from ``ON_EXPIRY``); ``cost_by_end``: $ from creation to ``ends_at`` at the
    current rate; ``extend_hours``: the **Extend** buttons offered (hours); ``needs_admin``:
    those of them that pass ``MAX_LIFETIME_HOURS`` (only an admin may press them);
    ``admins``: ``BOT_ADMINS``; ``issued_for``: the stored end time the warning answers
    (``deployments.ends_at``), which the **Extend** buttons carry — it differs from
    ``ends_at`` when the warning went out late and the bot waits a little longer.
    """

    ends_at: datetime
    action: str
    cost_by_end: float
    extend_hours: tuple[int, ...]
    needs_admin: frozenset[int]
    admins: frozenset[str]
    issued_for: datetime | None = None


@dataclass(frozen=True)
class IdleNotice:
    """The question about an idle GPU.

    ``idle_since``: first poll below ``IDLE_GPU_PERCENT``; ``warned_at``: when this question
    was claimed (the **Keep running** button carries it, so an old button is recognised);
    ``gpu_util``: the last reading in percent; ``cost_so_far``: $ since creation; ``acts_at``:
    when the bot stops (or destroys) it without an answer; ``action``: ``stop``/``destroy``;
    ``snooze_hours``: how long **Keep running** pauses idle checks.
    """

    idle_since: datetime
    warned_at: datetime
    gpu_util: float
    cost_so_far: float
    acts_at: datetime
    action: str
    snooze_hours: float


@dataclass(frozen=True)
class AutoAction:
    """What the bot did on its own: ``action`` (``stop``/``destroy``) because of ``reason``
    (``expiry``: the end time passed; ``idle``: the GPU stayed idle and nobody answered).
    ``disk_per_day``: $/day the kept disk still costs (after a stop); ``total``: $ so far."""

    action: str
    reason: str
    disk_per_day: float | None
    total: float


@dataclass(frozen=True)
class Reminder:
    """A non-urgent reminder to the owner. ``kind``: ``stopped`` (stopped since ``since`` and
    paying for its disk: ``cost_so_far`` is the storage cost of the stop, ``per_month`` the
    disk's $/month) or ``running`` (ready since ``since``: ``cost_so_far`` is the total $,
    ``per_month`` None)."""

    kind: str
    since: datetime
    cost_so_far: float
    per_month: float | None


@dataclass(frozen=True)
class UnmanagedInstance:
    """An instance on the Vast.ai account that no deployment owns and the bot did not label
    (rented by hand). The bot never destroys one; admins see them. ``dph_total`` in $/hour."""

    id: int
    gpu_name: str
    num_gpus: int
    dph_total: float
    status: str


@dataclass(frozen=True)
class DigestLine:
    """One deployment in the digest: its row and its cost so far ($)."""

    dep: DeploymentRecord
    cost_so_far: float


@dataclass(frozen=True)
class DigestData:
    """The daily digest: ``running`` (active) and ``stopped`` deployments, ``spend`` this
    month per Slack user id ($, largest first), ``month_label`` (``"December 2026"``),
    ``unmanaged`` instances, ``now`` (aware UTC) and ``tz`` (``DIGEST_TIMEZONE``)."""

    now: datetime
    tz: str
    running: Sequence[DigestLine]
    stopped: Sequence[DigestLine]
    spend: Sequence[tuple[str, float]]
    month_label: str
    unmanaged: Sequence[UnmanagedInstance] = ()
