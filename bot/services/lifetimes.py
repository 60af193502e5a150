"""Lifetimes and idle GPUs: no deployment bills for ever unnoticed.

Every deployment gets an end time (``ends_at``) from the picker's **Run for**
(``DEFAULT_LIFETIME_HOURS``, a template's ``default_lifetime_hours``, at most
``MAX_LIFETIME_HOURS`` unless an admin chooses; "until I stop it" only with
``ALLOW_UNLIMITED_LIFETIME``). The status poller calls :meth:`LifetimeService.review` on each
tick with the deployments it follows and the instance list it already read, so the rules cost
no extra Vast.ai request:

* ``LIFETIME_WARNING_MINUTES`` before the end, the owner is warned once (DM and thread, with
  **Extend 2 h**, **Extend 8 h**, **Stop now**, **Destroy**). At the end the bot acts by
  ``ON_EXPIRY`` (``stop``: the disk is kept, so no work is lost; or ``destroy``). It never acts
  before the time its warning named, which is never less than :data:`MIN_NOTICE` after the
  warning (a warning that went out late, or a short ``LIFETIME_WARNING_MINUTES``, still leaves
  the owner time to answer); the status message shows that same time
  (:func:`bot.notices.effective_end`). With no warning at all (the bot was down across the
  whole warning window) it acts ``LIFETIME_WARNING_MINUTES`` after the end.
* A ready deployment whose ``gpu_util`` stays below ``IDLE_GPU_PERCENT`` for ``IDLE_MINUTES``
  is asked about once per idle stretch (**Keep running** pauses idle checks for
  ``IDLE_SNOOZE_HOURS``); without an answer within ``IDLE_GRACE_MINUTES`` the bot acts as at
  expiry. A missing or null ``gpu_util`` is unknown, never idle: it ends the stretch.

* A ready deployment whose container exited while Vast.ai still holds its GPU is announced
  (with Vast.ai's ``status_msg``) and stopped 10 minutes later (the disk is kept).

The rules themselves are pure functions, one module each, in :mod:`bot.services.rules`; the
executor there claims each warning and action in the database before it is sent or done
(conditional updates, :mod:`storage.lifetimes`), so it happens once across processes and
restarts, and never acts before the time it announced (:func:`bot.notices.effective_end`).
Automatic stops and destroys go through
:meth:`bot.services.manage.ManageService.act_automatically` (the same claim as a click).
This module keeps the buttons (**Extend**, **Keep running**) and the policy per workspace.
The unit of ``gpu_util`` is not settled: Vast.ai's OpenAPI (``show_instance.yaml``) says "GPU
utilization as a fraction", while the official CLI prints the raw value under "Util. %". The
docs win, with a guard on the safe side (:func:`gpu_percent`): a value above 1 can only be a
percentage and is read as one. So a busy GPU is never read as idle; at worst a GPU reported as
0.5 % is read as 50 % and not asked about (its lifetime still ends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Protocol

import storage
from bot import pricing
from bot.formats import (
    deployment_ref,
    format_duration,
    lifetime_label,
    mentions,
    micros,
    money,
    slack_date,
)
from bot.notices import MIN_NOTICE
from bot.services.budgets import BudgetService, deciders_of
from bot.services.manage import EXTEND, ManageService, Outcome
from bot.services.ports import (
    NO_HOMES,
    BudgetCheck,
    Delivery,
    HomeRefresher,
    StatusMessages,
    Templates,
)
from bot.services.rules import RULES
from bot.services.rules.executor import EXTEND_HOURS, RuleExecutor, RuleMessages
from bot.services.rules.policy import STANDARD_LIFETIMES, LifetimePolicy, gpu_percent
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus, SessionFactory

__all__ = [
    "EXTEND_HOURS",
    "MIN_NOTICE",
    "STANDARD_LIFETIMES",
    "LifetimePolicy",
    "LifetimeService",
    "gpu_percent",
]

logger = logging.getLogger(__name__)


class _NeedsApproval(Exception):
    """Raised inside the extension's transaction: nothing changes, ``check`` says why."""

    def __init__(self, check: BudgetCheck) -> None:
        super().__init__("the extension needs approval")
        self.check = check


def _ended_text(dep: DeploymentRecord) -> str:
    if dep.status == DeploymentStatus.STOPPED:
        return (
            f"{deployment_ref(dep)} is stopped, so it has no end time to change: "
            "*Start* begins a new run."
        )
    return f"{deployment_ref(dep)} has already ended ({dep.status}); nothing changed."


def _withdrawn_text(withdrawn: str | None) -> str:
    """The sentence about a rule's pending act that a click withdrew (``stopped`` or
    ``destroyed``; None: nothing was withdrawn, no sentence)."""
    if withdrawn is None:
        return ""
    act = "destroy" if withdrawn == storage.DESTROYED else "stop"
    return (
        f" The automatic {act} the bot was still retrying is called off (if a try was already "
        "on its way to Vast.ai, it may still go through: the thread will say so)."
    )


def _still_pending_text(dep: DeploymentRecord) -> str:
    """The sentence about a **Stop** or **Destroy** a person pressed that is still being
    carried out (an extension or **Keep running** does not call it off); "" when none is."""
    state = dep.desired_state if dep.desired_next_try_at is not None else None
    if state not in (storage.STOPPED, storage.DESTROYED) or dep.desired_actor in (
        None,
        storage.SYSTEM_ACTOR,
    ):
        return ""
    act = "Destroy" if state == storage.DESTROYED else "Stop"
    return (
        f" Note: the *{act}* <@{dep.desired_actor}> pressed is still being carried out; this "
        "does not call it off."
    )


class LifetimePolicies(Protocol):
    """Each workspace's lifetime rules (:class:`bot.services.workspaces.WorkspacePolicies`
    implements it: the configured rules with the default and maximum run length the
    workspace chose in ``/templates setup``)."""

    def lifetime_policy(self, team_id: str) -> LifetimePolicy:
        """The rules of workspace ``team_id``. May raise SQLAlchemy errors."""
        ...


class RuleMetrics(Protocol):
    """Counts the rules' actions (:class:`bot.metrics.BotMetrics` implements it)."""

    def rule_action(self, rule: str, action: str, outcome: str) -> None:
        """Rule ``rule`` took an action of kind ``action``, with ``outcome`` (``"done"``,
        ``"failed"``, ``"error"``...)."""
        ...


class LifetimeMessages(RuleMessages, StatusMessages, Protocol):
    """What the lifetime service sends: the rules' messages (:class:`RuleMessages`) and, after an
    Extend or a Keep running, the status message edit and a thread note."""


class LifetimeService:
    """Applies the lifetime and idle rules (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. messages: the messages port.
        manage: performs the automatic stops and destroys, and decides who may act.
        templates: the catalog (:class:`bot.services.ports.Templates`). policy: the rules.
        policies: each workspace's rules (its own default and maximum run length;
            ``/templates setup``: :class:`LifetimePolicies`); None: ``policy`` everywhere.
        homes: told (``deployment_changed``) of the row after an extension (the owner's Home tab).
        budgets: when given, an extension is decided against the owner's and the workspace's
            budgets and the approval price (:meth:`extend`); None: extensions are not checked.
        clock: aware UTC now.
        metrics: counts each action of a rule (:class:`RuleMetrics`); must not raise.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: LifetimeMessages,
        manage: ManageService,
        templates: Templates,
        policy: LifetimePolicy,
        policies: LifetimePolicies | None = None,
        homes: HomeRefresher = NO_HOMES,
        budgets: BudgetService | None = None,
        clock: Callable[[], datetime] = storage.utcnow,
        metrics: RuleMetrics | None = None,
    ) -> None:
        self.sf = session_factory
        self.budgets = budgets
        self.messages = messages
        self.manage = manage
        self.templates = templates
        self.policy = policy
        self._policies = policies
        self.homes = homes
        self.clock = clock
        self.executor = RuleExecutor(
            session_factory=session_factory,
            messages=messages,
            manage=manage,
            rules=RULES,
            policy=lambda: self.policy,
            max_hours_for=lambda team: self.policy_for(team).max_hours,
            clock=lambda: self.clock(),
            on_action=metrics.rule_action if metrics is not None else None,
        )

    # -- the poller's tick ------------------------------------------------------------------

    def policy_for(self, team_id: str | None) -> LifetimePolicy:
        """The rules of workspace ``team_id`` (the configured ones when it set none; a
        workspace whose settings cannot be read gets the configured ones too)."""
        if self._policies is None or not team_id:
            return self.policy
        return self._policies.lifetime_policy(team_id)

    def expiry_horizon(self, now: datetime) -> datetime:
        """Rows ending after this time have nothing due at ``now`` (no warning, no action), so
        a caller may hand :meth:`review` only the others when it did not read their instance."""
        return now + self.policy.warning

    def review(
        self,
        deps: Sequence[DeploymentRecord],
        instances: Mapping[int, Instance],
        now: datetime,
        *,
        seen: Set[int] | None = None,
    ) -> int:
        """Apply the automatic rules (:data:`bot.services.rules.RULES`) to ``deps`` (rows as
        the tick read them) with this tick's instance list (``instance id -> Instance``),
        through :class:`bot.services.rules.executor.RuleExecutor`. ``ready`` rows get every
        rule; a ``stopped`` row whose instance runs on Vast.ai (a Start whose app never
        answered) gets the expiry rules, since its GPU bills. ``seen``: the ids of the
        deployments whose instance this tick read (None: all); the others get only the rules
        that need no instance (the expiry rules), since an unread ``gpu_util`` is not
        "unknown". Returns how many Slack messages or actions it sent; a tick where nothing is
        due writes nothing and sends nothing. Never raises for one deployment's trouble."""
        return self.executor.review(deps, instances, now, seen=seen)

    # -- buttons ----------------------------------------------------------------------------

    def extend(
        self,
        deployment_id: int,
        hours: int,
        issued_ends_micros: int,
        actor: str,
        *,
        team_id: str | None = None,
    ) -> Outcome:
        """**Extend N h** pressed by Slack user ``actor`` on a warning issued for the end time
        ``issued_ends_micros`` (microseconds since the epoch).

        The owner, an admin or a collaborator (:meth:`ManageService.may`) may extend; past
        ``MAX_LIFETIME_HOURS`` (counted from the start of the current run) only an admin. A
        button for an end that already moved, or a deployment that ended, changes nothing and
        says so. Never raises for Slack errors.
        """
        now = self.clock()
        dep, refusal = self.manage.load_for(deployment_id, actor, EXTEND, team_id=team_id)
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        if dep.status not in storage.ACTIVE_STATUSES:
            return Outcome("invalid", _ended_text(dep), dep)
        if hours not in EXTEND_HOURS or dep.ends_at is None:
            return Outcome("invalid", f"{deployment_ref(dep)} has no end time to extend.", dep)
        if micros(dep.ends_at) != issued_ends_micros:
            return Outcome(
                "already",
                f"{deployment_ref(dep)} was already extended: it now stops "
                f"{slack_date(dep.ends_at)}. Nothing changed.",
                dep,
            )
        new_end = max(dep.ends_at, now) + timedelta(hours=hours)
        started = dep.lifetime_started_at or dep.created_at
        limit = self.policy_for(dep.team_id).max_hours
        if new_end - started > timedelta(hours=limit) and not self.manage.is_admin(
            dep.team_id, actor
        ):
            storage.add_event(self.sf, dep.id, actor, "extend_refused", "past the maximum")
            admins = self.manage.admins.admins(dep.team_id)
            who = (
                f"a bot admin: {mentions(admins)}. Ask one of them to press *Extend*."
                if admins
                else "a bot admin, and none is configured (`BOT_ADMINS`)."
            )
            return Outcome(
                "refused",
                f":no_entry: Extending {deployment_ref(dep)} by {hours} h would run it "
                f"past the maximum of {lifetime_label(limit)}, which needs {who} "
                "Nothing changed.",
                dep,
            )
        checks: list[BudgetCheck] = []
        try:
            extended = storage.extend_lifetime(
                self.sf,
                dep.id,
                expected_ends_at=dep.ends_at,
                new_ends_at=new_end,
                actor=actor,
                now=now,
                admit=self._budget_admit(dep, actor, new_end, now, checks),
            )
        except _NeedsApproval as needed:
            return self._needs_approval(dep, actor, hours, needed.check)
        if extended.done and checks and checks[-1].needs_approval:  # the approver's own click
            storage.add_event(
                self.sf, dep.id, actor, "extend_approved", "; ".join(checks[-1].reasons)[:500]
            )
        if not extended.done:
            fresh = storage.get_deployment(self.sf, dep.id) or dep
            return Outcome(
                "already",
                f"{deployment_ref(dep)} changed meanwhile (it is {fresh.status}"
                + (
                    f", stopping {slack_date(fresh.ends_at)}"
                    if fresh.ends_at and fresh.status in storage.ACTIVE_STATUSES
                    else ""
                )
                + "). Nothing changed.",
                fresh,
            )
        after = storage.get_deployment(self.sf, dep.id) or dep
        if (
            self.messages.show_status(after, self.templates.get(after.template_slug))
            is Delivery.UNAVAILABLE
        ):  # the poller's reconciler sends the new end time until Slack takes it
            storage.mark_message_stale(self.sf, dep.id, self.clock())
        withdrawn = _withdrawn_text(extended.withdrawn)
        self.messages.note(
            after,
            f":hourglass: <@{actor}> extended it by {hours} h: it now stops {slack_date(new_end)}."
            + withdrawn,
        )
        self.homes.deployment_changed(after)
        committed = money(pricing.cost_until(after, now, new_end))
        return Outcome(
            "done",
            f":white_check_mark: Extended {deployment_ref(dep)} by {hours} h: it "
            f"now stops {slack_date(new_end)} (≈ {committed} by then)."
            + withdrawn
            + _still_pending_text(after),
            after,
        )

    def _budget_admit(
        self,
        dep: DeploymentRecord,
        actor: str,
        new_end: datetime,
        now: datetime,
        checks: list[BudgetCheck],
    ) -> Callable[[storage.TeamLedger], None] | None:
        """The check :func:`storage.extend_lifetime` runs with the workspace locked: the added
        run against the budgets (appended to ``checks``); raises :class:`_NeedsApproval` when
        it needs approval and ``actor`` is not one who may give it."""
        budgets = self.budgets
        if budgets is None:
            return None
        policy = budgets.policy_for(dep.team_id)  # read before the workspace is locked
        deciders, _ = deciders_of(policy.approvers, dep.user_id)

        def admit(ledger: storage.TeamLedger) -> None:
            row = ledger.deployment(dep.id)
            if row is None:  # gone: the conditional update will not match either
                return
            check = budgets.check_extension(ledger, row, new_end, now, policy)
            checks.append(check)
            if check.needs_approval and actor not in deciders:
                raise _NeedsApproval(check)

        return admit

    def _needs_approval(
        self, dep: DeploymentRecord, actor: str, hours: int, check: BudgetCheck
    ) -> Outcome:
        """The refusal of an extension that needs approval, saying why and who can help."""
        reasons = "; ".join(check.reasons)
        storage.add_event(self.sf, dep.id, actor, "extend_refused", f"needs approval: {reasons}")
        policy = self.budgets.policy_for(dep.team_id) if self.budgets is not None else None
        deciders, _ = deciders_of(policy.approvers if policy else frozenset(), dep.user_id)
        able = sorted(d for d in deciders if self.manage.may(dep, d, EXTEND))
        admins = self.manage.admins.admins(dep.team_id)
        if able:
            who = f"Ask {mentions(able)} to press *Extend* (an approver's click approves it)"
        else:
            who = "No approver who may extend it is configured (`APPROVERS`, `BOT_ADMINS`)"
        raise_it = (
            f"; an admin ({mentions(admins)}) can raise the budget with `/templates budget`"
            if admins
            else ""
        )
        return Outcome(
            "refused",
            f":no_entry: Extending {deployment_ref(dep)} by {hours} h needs "
            f"approval: {reasons}. Nothing changed"
            + (f": it still stops {slack_date(dep.ends_at)}. " if dep.ends_at else ". ")
            + f"{who}{raise_it}.",
            dep,
        )

    def keep_running(
        self,
        deployment_id: int,
        issued_warned_micros: int,
        actor: str,
        *,
        team_id: str | None = None,
    ) -> Outcome:
        """**Keep running** pressed by ``actor`` on the idle question issued at
        ``issued_warned_micros``: no idle checks for ``IDLE_SNOOZE_HOURS``. The owner or an
        admin may answer; an old question (already answered, GPU busy again, deployment
        stopped) changes nothing and says so."""
        now = self.clock()
        dep, refusal = self.manage.load_for(deployment_id, actor, "keep_running", team_id=team_id)
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        if dep.status != DeploymentStatus.READY:
            return Outcome(
                "invalid",
                f"{deployment_ref(dep)} is {dep.status} now; nothing to keep running.",
                dep,
            )
        if dep.idle_warned_at is None or micros(dep.idle_warned_at) != issued_warned_micros:
            paused = (
                f" Idle checks are paused until {slack_date(dep.idle_snoozed_until)}."
                if dep.idle_snoozed_until is not None and dep.idle_snoozed_until > now
                else ""
            )
            return Outcome(
                "already",
                f"That question about {deployment_ref(dep)} was already answered, "
                f"or its GPU got busy again. Nothing changed.{paused}",
                dep,
            )
        until = now + self.policy.idle_snooze
        snoozed = storage.snooze_idle(
            self.sf,
            dep.id,
            expected_warned_at=dep.idle_warned_at,
            until=until,
            actor=actor,
            now=now,
        )
        if not snoozed.done:
            return Outcome(
                "already", "Someone answered that question meanwhile. Nothing changed.", dep
            )
        after = storage.get_deployment(self.sf, dep.id) or dep
        if snoozed.withdrawn is not None and (
            self.messages.show_status(after, self.templates.get(after.template_slug))
            is Delivery.UNAVAILABLE
        ):  # the status message said "stopping…": the poller's reconciler redraws it
            storage.mark_message_stale(self.sf, dep.id, self.clock())
        hours = format_duration(self.policy.idle_snooze.total_seconds())
        withdrawn = _withdrawn_text(snoozed.withdrawn)
        self.messages.note(
            after,
            f":zzz: <@{actor}> keeps it running: no idle checks for the next {hours}." + withdrawn,
        )
        return Outcome(
            "done",
            f":white_check_mark: {deployment_ref(dep)} keeps running: no idle checks "
            f"for the next {hours}. It still stops at its end time."
            + withdrawn
            + _still_pending_text(after),
            after,
        )
