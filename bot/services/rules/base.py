"""The shapes every rule shares: :class:`Action` (what a rule asks for) and :class:`Rule` (a
rule's pure check and what it needs). Plain data; no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus

#: Action kinds. ``warn``: the expiry warning (DM and thread, with Extend buttons). ``ask``:
#: the idle question (DM, with Keep running). ``stop`` / ``destroy``: the automatic act
#: (:meth:`bot.services.manage.ManageService.act_automatically`). ``notify``: a plain
#: announcement to the owner and the thread, once per rule and run of the deployment
#: (``lifetime_started_at``). ``remind``: a
#: non-urgent reminder (the reminder job, in the owner's working hours). ``track``:
#: bookkeeping the rule needs next tick (``idle_since``); nothing is sent.
WARN, ASK, STOP, DESTROY, NOTIFY, REMIND, TRACK = (
    "warn",
    "ask",
    "stop",
    "destroy",
    "notify",
    "remind",
    "track",
)
ACTS = frozenset({STOP, DESTROY})


@dataclass(frozen=True)
class Action:
    """What one rule wants done with one deployment now.

    Attributes:
        kind: one of the kinds above.
        why: short key of the rule's reason (``expiry``, ``idle``, ``exited``): the automatic
            act's ``why`` and the owner's message pick their wording by it.
        reason: plain words for the event log and messages ("its lifetime ended").
        promised: the time this action tells the user (aware UTC): when the bot acts (a
            warning, a question, a notice), or when it was announced to act (an act). None
            when the action names no time.
        unchanged: for ``stop``/``destroy``, the columns the rule read, so a click that
            changed them meanwhile (Extend, Keep running) wins.
        value: for ``track``, the new ``idle_since`` (None clears the idle stretch).
        text: for ``notify``, the mrkdwn told to the owner and the thread.
        percent: for ``ask``, the GPU use it is about, in percent (0–100).
    """

    kind: str
    why: str
    reason: str
    promised: datetime | None = None
    unchanged: Mapping[str, object] = field(default_factory=dict)
    value: datetime | None = None
    text: str | None = None
    percent: float | None = None


class Check(Protocol):
    """A rule's decision: pure, no I/O, no clock of its own."""

    def __call__(
        self,
        dep: DeploymentRecord,
        instance: Instance | None,
        policy: LifetimePolicy,
        now: datetime,
        since: datetime | None = None,
    ) -> Action | None: ...


@dataclass(frozen=True)
class Rule:
    """One automatic rule.

    Attributes:
        name: unique, short (claim keys and logs use it).
        check: the decision (see :class:`Check`). ``since`` is None unless ``watch`` is set.
        needs_instance: judge only rows whose instance this tick read (an unread instance is
            not "unknown"); without it the rule also sees rows handed over unread.
        watch: ``(dep, instance) -> bool``, a condition the rule times: the executor keeps,
            in the ``claims`` table (one per deployment and run), since when it has held and
            passes that as ``since``; it forgets it once the condition has been false for
            ``forget_after`` in a row (seen false on every read in between).
        forget_after: how long ``watch`` must stay false before its time is forgotten (zero:
            at the first false sight). A condition that comes back sooner keeps its first
            ``since``.
        schedule: ``tick`` (the status poller's rule executor, urgent), ``reminder`` (the
            reminder job, in the owner's working hours) or ``state`` (decides a state too:
            applied by the status poller's state mapping, :mod:`bot.services.states`).
    """

    name: str
    check: Check
    needs_instance: bool = False
    watch: Callable[[DeploymentRecord, Instance | None], bool] | None = None
    schedule: str = "tick"
    forget_after: timedelta = timedelta(0)


def holds_gpu(dep: DeploymentRecord, instance: Instance | None) -> bool:
    """True when ``dep``'s GPU bills: it is ``ready``, or ``stopped`` while Vast.ai still holds
    its GPU (a Start whose app never answered): the instance runs, or is meant to
    (``intended_status`` running, e.g. its container exited; docs/VAST_API.md §4)."""
    if dep.status == DeploymentStatus.READY:
        return True
    return (
        dep.status == DeploymentStatus.STOPPED
        and instance is not None
        and "running" in (instance.actual_status, instance.intended_status)
    )


def on_expiry(policy: LifetimePolicy) -> str:
    """What the bot does at an end or an unanswered idle question: ``destroy`` when
    ``ON_EXPIRY`` says so, else ``stop`` (the disk is kept)."""
    return DESTROY if policy.on_expiry == DESTROY else STOP


def one_line(msg: str | None, limit: int = 300) -> str:
    """Vast.ai's free text on one line, at most ``limit`` characters (``…`` when cut); ``""``
    for None."""
    text = " ".join((msg or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
