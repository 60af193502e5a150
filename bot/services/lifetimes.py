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
  less than :data:`MIN_NOTICE` after its warning, so a warning that went out late (the bot was
  down) still leaves the owner time to answer.
* A ready deployment whose ``gpu_util`` stays below ``IDLE_GPU_PERCENT`` for ``IDLE_MINUTES``
  is asked about once per idle stretch (**Keep running** pauses idle checks for
  ``IDLE_SNOOZE_HOURS``); without an answer within ``IDLE_GRACE_MINUTES`` the bot acts as at
  expiry. A missing or null ``gpu_util`` is unknown, never idle: it ends the stretch.

Each warning and action is claimed in the database before it is sent or done (conditional
updates, :mod:`storage.lifetimes`), so it happens once across processes and restarts; nothing
is held only in memory. Automatic stops and destroys go through
:meth:`bot.services.actions.ManageService.act_automatically` (the same claim as a click).
The unit of ``gpu_util`` is not settled: Vast.ai's OpenAPI (``show_instance.yaml``) says "GPU
utilization as a fraction", while the official CLI prints the raw value under "Util. %". The
docs win, with a guard on the safe side (:func:`gpu_percent`): a value above 1 can only be a
percentage and is read as one. So a busy GPU is never read as idle; at worst a GPU reported as
0.5 % is read as 50 % and not asked about (its lifetime still ends it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

import storage
from bot import pricing
from bot.config import Settings
from bot.formats import format_duration, lifetime_label, mentions, micros, money, slack_date
from bot.services.actions import DESTROY, STOP, ManageService, Outcome, OutcomeKind
from bot.services.ports import Delivery, ExpiryNotice, IdleNotice, Messages
from bot.vast.models import Instance
from catalog import Template
from storage import DeploymentRecord, DeploymentStatus, SessionFactory

logger = logging.getLogger(__name__)

#: The bot never stops or destroys a deployment sooner than this after warning its owner.
MIN_NOTICE = timedelta(minutes=5)
#: The **Extend** buttons of the expiry warning, in hours.
EXTEND_HOURS: tuple[int, ...] = (2, 8)
#: The **Run for** choices in hours (the default and the maximum are added when missing).
STANDARD_LIFETIMES: tuple[float, ...] = (2, 4, 8, 24, 72, 168)


def gpu_percent(gpu_util: float | None) -> float | None:
    """Vast.ai's ``gpu_util`` as a percentage (0–100): a fraction (≤ 1, as the OpenAPI says) is
    multiplied by 100, a larger value is already a percentage. None (unknown) stays None."""
    if gpu_util is None or gpu_util < 0:
        return None
    return gpu_util * 100 if gpu_util <= 1 else gpu_util


@dataclass(frozen=True)
class LifetimePolicy:
    """The lifetime and idle rules from configuration (README › Lifetimes and reminders).

    Hours and minutes as in the variable names; ``on_expiry`` is ``stop`` or ``destroy``.
    """

    default_hours: float = 8.0
    max_hours: float = 72.0
    allow_unlimited: bool = False
    warning: timedelta = timedelta(minutes=30)
    on_expiry: str = STOP
    idle_percent: float = 5.0
    idle_after: timedelta = timedelta(minutes=60)
    idle_snooze: timedelta = timedelta(hours=4)
    idle_grace: timedelta = timedelta(minutes=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> LifetimePolicy:
        """The policy of ``DEFAULT_LIFETIME_HOURS``, ``MAX_LIFETIME_HOURS``,
        ``ALLOW_UNLIMITED_LIFETIME``, ``LIFETIME_WARNING_MINUTES``, ``ON_EXPIRY`` and the
        ``IDLE_*`` variables."""
        return cls(
            default_hours=settings.default_lifetime_hours,
            max_hours=settings.max_lifetime_hours,
            allow_unlimited=settings.allow_unlimited_lifetime,
            warning=timedelta(minutes=settings.lifetime_warning_minutes),
            on_expiry=settings.on_expiry,
            idle_percent=settings.idle_gpu_percent,
            idle_after=timedelta(minutes=settings.idle_minutes),
            idle_snooze=timedelta(hours=settings.idle_snooze_hours),
            idle_grace=timedelta(minutes=settings.idle_grace_minutes),
        )

    def default_for(self, template: Template | None) -> float:
        """The preselected lifetime in hours: the template's own default, else
        ``DEFAULT_LIFETIME_HOURS``, never above ``MAX_LIFETIME_HOURS``."""
        hours = (template.default_lifetime_hours if template else None) or self.default_hours
        return min(float(hours), self.max_hours)

    def choices(self, template: Template | None, *, admin: bool) -> list[float | None]:
        """The **Run for** choices in hours, shortest first; None ("until I stop it") last when
        allowed. Choices past ``MAX_LIFETIME_HOURS`` only for admins."""
        hours = set(STANDARD_LIFETIMES) | {self.default_for(template), self.max_hours}
        if not admin:
            hours = {h for h in hours if h <= self.max_hours}
        result: list[float | None] = [float(h) for h in sorted(hours)]
        if self.allow_unlimited:
            result.append(None)
        return result

    def refusal(self, hours: float | None, *, admin: bool, admins: frozenset[str]) -> str | None:
        """Why ``hours`` may not be chosen (text for the picker's inline error), or None."""
        if hours is None:
            if self.allow_unlimited:
                return None
            return "Choose how long it runs: running until stopped is not enabled here."
        if hours <= 0:
            return "Choose how long it runs."
        if hours > self.max_hours and not admin:
            return f"Runs longer than {lifetime_label(self.max_hours)} need a bot admin" + (
                f" ({mentions(admins)})." if admins else " (none is configured: BOT_ADMINS)."
            )
        return None


def _ended_text(dep: DeploymentRecord) -> str:
    if dep.status == DeploymentStatus.STOPPED:
        return (
            f"*{dep.template_name}* (#{dep.id}) is stopped, so it has no end time to change: "
            "*Start* begins a new run."
        )
    return f"*{dep.template_name}* (#{dep.id}) has already ended ({dep.status}); nothing changed."


class LifetimeService:
    """Applies the lifetime and idle rules (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. messages: the messages port.
        manage: performs the automatic stops and destroys, and decides who may act.
        catalog_get: ``slug -> Template | None``. policy: the rules.
        policy_for: ``team_id -> LifetimePolicy``, a workspace's rules (its own default and
            maximum run length; ``/templates setup``); default: ``policy`` everywhere.
        on_change: called with the row after an extension (the owner's Home tab).
        clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: Messages,
        manage: ManageService,
        catalog_get: Callable[[str], Template | None],
        policy: LifetimePolicy,
        policy_for: Callable[[str], LifetimePolicy] | None = None,
        on_change: Callable[[DeploymentRecord], object] = lambda dep: None,
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.manage = manage
        self.catalog_get = catalog_get
        self.policy = policy
        self._policy_for = policy_for
        self.on_change = on_change
        self.clock = clock

    # -- the poller's tick ------------------------------------------------------------------

    def policy_for(self, team_id: str | None) -> LifetimePolicy:
        """The rules of workspace ``team_id`` (the configured ones when it set none; a
        workspace whose settings cannot be read gets the configured ones too)."""
        if self._policy_for is None or not team_id:
            return self.policy
        return self._policy_for(team_id)

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
        """Apply the rules to ``deps`` (rows as the tick read them) with this tick's instance
        list (``instance id -> Instance``). ``ready`` rows get the expiry and idle rules; a
        ``stopped`` row whose instance runs on Vast.ai (a Start whose app never answered)
        gets the expiry rule, since its GPU bills. ``seen``: the ids of the deployments whose
        instance this tick read (None: all); the others get the expiry rule only (a ready
        one), or nothing (a stopped one), since an unread ``gpu_util`` is not "unknown".
        Returns how many Slack messages or actions it sent; a tick where nothing is due
        writes nothing and sends nothing. Never raises for one deployment's trouble."""
        sent = 0
        for dep in deps:
            read = seen is None or dep.id in seen
            instance = instances.get(dep.instance_id or 0) if read else None
            if dep.status == DeploymentStatus.STOPPED:
                if instance is None or instance.actual_status != "running":
                    continue
            elif dep.status != DeploymentStatus.READY:
                continue
            try:
                sent += self._review_one(dep, instance, now, judge_idle=read)
            except Exception:  # one deployment's trouble must not stop the others
                logger.exception("lifetimes: deployment %d not reviewed", dep.id)
        return sent

    def _review_one(
        self,
        dep: DeploymentRecord,
        instance: Instance | None,
        now: datetime,
        *,
        judge_idle: bool = True,
    ) -> int:
        policy = self.policy
        if dep.ends_at is not None:
            warned = dep.expiry_warned_at
            # Never sooner than MIN_NOTICE after the warning; never later than the end plus
            # LIFETIME_WARNING_MINUTES, even when no warning could be delivered.
            due = now >= dep.ends_at + policy.warning or (
                warned is not None and now >= max(dep.ends_at, warned + MIN_NOTICE)
            )
            if due:
                return self._act(
                    dep, "expiry", "its lifetime ended", unchanged={"ends_at": dep.ends_at}
                )
            if warned is None and now >= dep.ends_at - policy.warning:
                return self._warn_expiry(dep, now)
        if dep.status != DeploymentStatus.READY or not judge_idle:
            return 0
        return self._review_idle(dep, instance, now)

    def _review_idle(self, dep: DeploymentRecord, instance: Instance | None, now: datetime) -> int:
        policy = self.policy
        util = gpu_percent(instance.gpu_util if instance is not None else None)
        snoozed = dep.idle_snoozed_until is not None and now < dep.idle_snoozed_until
        if snoozed or util is None or util >= policy.idle_percent:
            if dep.idle_since is not None or dep.idle_warned_at is not None:
                storage.set_idle_since(self.sf, dep.id, expected=dep.idle_since, value=None)
            return 0
        if dep.idle_since is None:
            storage.set_idle_since(self.sf, dep.id, expected=None, value=now)
            return 0
        if dep.idle_warned_at is None:
            if now - dep.idle_since >= policy.idle_after:
                return self._warn_idle(dep, util, now)
            return 0
        if now >= dep.idle_warned_at + policy.idle_grace:
            return self._act(
                dep,
                "idle",
                "its GPU stayed idle and nobody answered",
                unchanged={"idle_warned_at": dep.idle_warned_at, "idle_snoozed_until": None},
            )
        return 0

    def _warn_expiry(self, dep: DeploymentRecord, now: datetime) -> int:
        assert dep.ends_at is not None
        if not storage.claim_expiry_warning(self.sf, dep.id, now):
            return 0
        acts_at = max(dep.ends_at, now + MIN_NOTICE)
        started = dep.lifetime_started_at or dep.created_at
        limit = timedelta(hours=self.policy_for(dep.team_id).max_hours)
        notice = ExpiryNotice(
            ends_at=acts_at,
            action=self.policy.on_expiry,
            cost_by_end=pricing.cost_until(dep, now, acts_at),
            extend_hours=EXTEND_HOURS,
            needs_admin=frozenset(
                h for h in EXTEND_HOURS if acts_at + timedelta(hours=h) - started > limit
            ),
            admins=self.manage.admins.admins(dep.team_id),
            issued_for=dep.ends_at,
        )
        if not self.messages.expiry_warning(dep, notice) and now < dep.ends_at:
            # Slack refused: try again next tick, but only until the end (the action then
            # comes by the hard limit, warned or not; no claim churn for ever).
            storage.release_expiry_warning(self.sf, dep.id, now)
        return 1

    def _warn_idle(self, dep: DeploymentRecord, util: float, now: datetime) -> int:
        assert dep.idle_since is not None
        if not storage.claim_idle_warning(self.sf, dep.id, now):
            return 0
        notice = IdleNotice(
            idle_since=dep.idle_since,
            warned_at=now,
            gpu_util=util,
            cost_so_far=pricing.cost_so_far(dep, now),
            acts_at=now + self.policy.idle_grace,
            action=self.policy.on_expiry,
            snooze_hours=self.policy.idle_snooze.total_seconds() / 3600,
        )
        deadline = dep.idle_since + self.policy.idle_after + self.policy.idle_grace
        if not self.messages.idle_warning(dep, notice) and now < deadline:
            # Slack refused: ask again next tick, for at most one grace period; after that the
            # claim stands and the idle GPU is stopped (its disk kept) as if nobody answered.
            storage.release_idle_warning(self.sf, dep.id, now)
        return 1

    def _act(
        self, dep: DeploymentRecord, why: str, reason_text: str, *, unchanged: dict[str, object]
    ) -> int:
        action = DESTROY if self.policy.on_expiry == DESTROY else STOP
        outcome = self.manage.act_automatically(
            action,
            dep.id,
            why=why,
            reason_text=f"Automatic {action}: {reason_text}.",
            unchanged=unchanged,
            seen_status=dep.status,
        )
        if (
            outcome.kind in (OutcomeKind.FAILED, OutcomeKind.PENDING)
            and outcome.deployment is not None
        ):
            self._tell_failure(outcome.deployment, action)
        elif outcome.kind != "done":
            logger.info("lifetimes: automatic %s of %d: %s", action, dep.id, outcome.kind)
        return 1

    def _tell_failure(self, dep: DeploymentRecord, action: str) -> None:
        """Vast.ai refused the automatic stop/destroy (the next tick tries again): tell the
        owner and the thread, once a day, that it still bills and what they can do."""
        if dep.is_final or (dep.status == DeploymentStatus.STOPPED and action == STOP):
            return  # e.g. the instance was gone: nothing bills any more
        now = self.clock()
        key = f"auto-failed:{action}:{dep.id}:{now.date().isoformat()}"
        if not storage.claim(self.sf, key, now):
            return
        text = (
            f":warning: The bot could not {action} *{dep.template_name}* (#{dep.id}) on its own: "
            "Vast.ai refused. *It is still running and billing.* The bot keeps trying (less often "
            "as it keeps failing); to end it now, press *Destroy* or stop it in the Vast.ai "
            "console."
        )
        storage.add_event(self.sf, dep.id, storage.SYSTEM_ACTOR, f"auto_{action}_failed", None)
        delivered = self.messages.note(dep, text)
        delivered = self.messages.dm(dep.user_id, text, team_id=dep.team_id) or delivered
        if not delivered:
            storage.release_claim(self.sf, key)

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

        The owner or an admin may extend; past ``MAX_LIFETIME_HOURS`` (counted from the start of
        the current run) only an admin. A button for an end that already moved, or a
        deployment that ended, changes nothing and says so. Never raises for Slack errors.
        """
        now = self.clock()
        dep, refusal = self.manage.load_for(deployment_id, actor, "extend", team_id=team_id)
        if refusal is not None:
            return refusal
        assert dep is not None  # load_for returns one or the other
        if dep.status not in storage.ACTIVE_STATUSES:
            return Outcome("invalid", _ended_text(dep), dep)
        if hours not in EXTEND_HOURS or dep.ends_at is None:
            return Outcome(
                "invalid", f"*{dep.template_name}* (#{dep.id}) has no end time to extend.", dep
            )
        if micros(dep.ends_at) != issued_ends_micros:
            return Outcome(
                "already",
                f"*{dep.template_name}* (#{dep.id}) was already extended: it now stops "
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
                f":no_entry: Extending *{dep.template_name}* (#{dep.id}) by {hours} h would run it "
                f"past the maximum of {lifetime_label(limit)}, which needs {who} "
                "Nothing changed.",
                dep,
            )
        if not storage.extend_lifetime(
            self.sf, dep.id, expected_ends_at=dep.ends_at, new_ends_at=new_end, actor=actor, now=now
        ):
            fresh = storage.get_deployment(self.sf, dep.id) or dep
            return Outcome(
                "already",
                f"*{dep.template_name}* (#{dep.id}) changed meanwhile (it is {fresh.status}"
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
            self.messages.show_status(after, self.catalog_get(after.template_slug))
            is Delivery.UNAVAILABLE
        ):  # the poller's reconciler sends the new end time until Slack takes it
            storage.mark_message_stale(self.sf, dep.id, self.clock())
        self.messages.note(
            after,
            f":hourglass: <@{actor}> extended it by {hours} h: it now stops {slack_date(new_end)}.",
        )
        self.on_change(after)
        committed = money(pricing.cost_until(after, now, new_end))
        return Outcome(
            "done",
            f":white_check_mark: Extended *{dep.template_name}* (#{dep.id}) by {hours} h: it "
            f"now stops {slack_date(new_end)} (≈ {committed} by then).",
            after,
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
                f"*{dep.template_name}* (#{dep.id}) is {dep.status} now; nothing to keep running.",
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
                f"That question about *{dep.template_name}* (#{dep.id}) was already answered, "
                f"or its GPU got busy again. Nothing changed.{paused}",
                dep,
            )
        until = now + self.policy.idle_snooze
        if not storage.snooze_idle(
            self.sf,
            dep.id,
            expected_warned_at=dep.idle_warned_at,
            until=until,
            actor=actor,
            now=now,
        ):
            return Outcome(
                "already", "Someone answered that question meanwhile. Nothing changed.", dep
            )
        after = storage.get_deployment(self.sf, dep.id) or dep
        hours = format_duration(self.policy.idle_snooze.total_seconds())
        self.messages.note(
            after, f":zzz: <@{actor}> keeps it running: no idle checks for the next {hours}."
        )
        return Outcome(
            "done",
            f":white_check_mark: *{dep.template_name}* (#{dep.id}) keeps running: no idle checks "
            f"for the next {hours}. It still stops at its end time.",
            after,
        )
