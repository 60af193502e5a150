"""What the lifetime, idle and reminder messages say, as plain data: the services fill these
in and :mod:`bot.slack.blocks.lifetimes` renders them (both import this module; it imports neither).
Money in US dollars, times aware UTC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from storage import DeploymentRecord

#: The bot never stops or destroys a deployment sooner than this after warning its owner.
MIN_NOTICE = timedelta(minutes=5)


def effective_end(dep: DeploymentRecord) -> datetime | None:
    """When the bot acts on ``dep``'s end (aware UTC), as its owner was last told: the stored
    ``ends_at``, or, once the expiry warning went out (``expiry_warned_at``), never less than
    :data:`MIN_NOTICE` after it (``max(ends_at, expiry_warned_at + MIN_NOTICE)``, the time the
    warning names). None without an end time. Derived, not stored: the warning's claim time
    is the only fact needed, so the DM, the status message and the rule read the same value.
    """
    if dep.ends_at is None:
        return None
    if dep.expiry_warned_at is None:
        return dep.ends_at
    return max(dep.ends_at, dep.expiry_warned_at + MIN_NOTICE)


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
    ``unmanaged`` instances, ``now`` (aware UTC), ``tz`` (``DIGEST_TIMEZONE``) and ``budgets``."""

    now: datetime
    tz: str
    running: Sequence[DigestLine]
    stopped: Sequence[DigestLine]
    spend: Sequence[tuple[str, float]]
    month_label: str
    unmanaged: Sequence[UnmanagedInstance] = ()
    budgets: Sequence[BudgetLine] = ()
    """The workspace's budget first, then each person's that has one."""


# --- budgets and approvals ----------------------------------------------------------------

WORKSPACE = "workspace"
"""The ``subject`` of the workspace's budget (every other subject is a Slack user id)."""


@dataclass(frozen=True)
class BudgetLine:
    """One monthly budget and the spend against it (US dollars, the current UTC month).

    ``subject``: :data:`WORKSPACE` or a Slack user id; ``budget``: $ per month, None = no
    budget; ``spent``: $ spent this month up to now; ``committed``: $ that the running
    deployments will still cost this month up to their end times (or the month's end when
    they have none). ``projected`` = ``spent`` + ``committed``.
    """

    subject: str
    budget: float | None
    spent: float
    committed: float = 0.0

    @property
    def projected(self) -> float:
        """Spent plus committed ($ this month)."""
        return self.spent + self.committed

    @property
    def left(self) -> float | None:
        """Budget minus projected ($; negative past the budget); None without a budget."""
        return None if self.budget is None else self.budget - self.projected

    @property
    def fraction(self) -> float | None:
        """Projected ÷ budget (1.0 = all of it); None without a budget; ``inf`` for a $0
        budget with any spend."""
        if self.budget is None:
            return None
        if self.budget <= 0:
            return float("inf") if self.projected > 0 else 0.0
        return self.projected / self.budget


@dataclass(frozen=True)
class BudgetCheck:
    """What one request would do to the budgets (the picker shows it; the submission decides
    on it).

    ``dph``: the offer's $/hour; ``lifetime_hours``: the run (None = until stopped);
    ``cost_to_end``: $ for the whole run (None when it has no end); ``in_month``: $ of the run
    that falls in this month (what counts against this month's budgets); ``user`` /
    ``workspace``: the budgets as they stand before it; ``approval_dph``: ``APPROVAL_DPH``
    (None = no price limit); ``reasons``: why it needs approval, in words (empty = it goes
    straight through).
    """

    dph: float
    lifetime_hours: float | None
    cost_to_end: float | None
    in_month: float
    user: BudgetLine
    workspace: BudgetLine
    approval_dph: float | None
    reasons: tuple[str, ...] = ()

    @property
    def needs_approval(self) -> bool:
        """True when an approver must say yes before anything is rented."""
        return bool(self.reasons)

    def passes(self, line: BudgetLine) -> bool:
        """True when this request would take ``line`` past its budget."""
        return line.budget is not None and line.projected + self.in_month > line.budget + 1e-9


@dataclass(frozen=True)
class ApprovalRequest:
    """What the approvers are asked: ``dep`` (the ``pending_approval`` row: template, GPU,
    $/hour, disk, lifetime, requester), ``check`` (costs and budgets at the time of the
    request), ``approvers`` (Slack user ids who may decide), ``expires_at`` (aware UTC; after
    it the request expires), ``self_only``: the requester is the only approver, so they may
    approve their own request (the message says so)."""

    dep: DeploymentRecord
    check: BudgetCheck
    approvers: frozenset[str]
    expires_at: datetime
    self_only: bool = False


@dataclass(frozen=True)
class ApprovalDecision:
    """How a request ended: ``outcome`` ``approved`` / ``denied`` / ``expired``; ``by``: the
    approver's user id (None when it expired); ``at``: aware UTC; ``note``: the reason given
    with a denial (may be empty)."""

    outcome: str
    by: str | None
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class BudgetAlert:
    """A threshold notice: ``line`` reached ``percent`` (80 or 100) of its budget in
    ``month_label`` (``"December 2026"``)."""

    line: BudgetLine
    percent: int
    month_label: str


@dataclass(frozen=True)
class AuditEntry:
    """One line of ``/templates audit``: ``at`` (aware UTC), ``actor`` (user id or
    ``system``), ``action`` (e.g. ``approved``, ``denied``, ``budget_set``, ``stop``),
    ``detail`` (text for people), and the deployment it concerns (None for budget changes)."""

    at: datetime
    actor: str
    action: str
    detail: str | None
    deployment_id: int | None = None
    template_name: str | None = None


@dataclass(frozen=True)
class IntentNotice:
    """An act the bot carries out from a recorded desired state (after a crash or a refusal).

    ``action``: ``stop``/``start``/``destroy``; ``actor``: who asked (Slack user id, or
    ``system`` for a lifetime or idle rule) and ``reason`` (text for people); ``tries``:
    requests sent so far; ``outcome``: ``done`` (Vast.ai confirmed it), ``gone`` (the instance
    no longer exists: nothing bills), ``withdrawn`` (a Start Vast.ai refused: it stays
    stopped), ``late`` (a rule's act Vast.ai carried out although an **Extend** or **Keep
    running** called it off while its request was on the wire) or ``failing`` (it keeps
    failing; the bot keeps trying); ``error``: Vast.ai's last refusal in words (None when it
    went through); ``next_try_at``: aware UTC, while ``failing``; ``console_url``: where to
    act by hand on Vast.ai.
    """

    action: str
    actor: str
    reason: str | None
    tries: int
    outcome: str
    error: str | None = None
    next_try_at: datetime | None = None
    console_url: str = "https://cloud.vast.ai/instances/"
