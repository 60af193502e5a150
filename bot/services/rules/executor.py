"""The one place automatic rules turn into acts: :class:`RuleExecutor`.

For each deployment and each rule of :data:`bot.services.rules.RULES` (in that order) it asks
the rule's pure check for an :class:`~bot.services.rules.base.Action`, then:

* claims it once in the database before anything is sent or done (``expiry_warned_at`` for
  a warning, ``idle_warned_at`` for an idle question, a ``claims`` row for a notice, the
  manage service's own claim for a stop or destroy), so it happens once across processes
  and restarts; a message Slack refused gives its claim back (within the rule's limits);
* acts through :meth:`bot.services.manage.ManageService.act_automatically`, which tells the
  owner (DM) and the thread what happened and why; a Vast.ai refusal is told once a day;
* never acts before the time the action says was announced (``promised``): an act whose
  ``promised`` lies ahead is refused and logged, whatever the rule computed;
* leaves a row alone while its desired state is pending (``desired_next_try_at`` set: a
  Start in flight, a Stop or Destroy not yet confirmed): no stop, destroy, warning, question
  or notice until the reconciler settled it. A pending Start is a new run about to begin (the
  old run's end must not stop it), and a pending Stop or Destroy makes every warning untrue
  (and the expiry rule would only be refused as "pending" on every tick).

After a stop or destroy the row's remaining rules wait for the next tick. Each row, and each
rule on a row, stands alone: an exception is logged with the deployment's id and the rule's
name, and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Protocol

import storage
from bot import pricing
from bot.formats import deployment_ref, micros
from bot.services.manage import ManageService, OutcomeKind
from bot.services.ports import (
    DirectMessages,
    ExpiryNotice,
    IdleNotice,
    LifetimeNotices,
    ThreadNotes,
)
from bot.services.rules.base import (
    ACTS,
    ASK,
    DESTROY,
    NOTIFY,
    STOP,
    TRACK,
    WARN,
    Action,
    Rule,
)
from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus, SessionFactory

logger = logging.getLogger(__name__)

#: The **Extend** buttons of the expiry warning, in hours.
EXTEND_HOURS: tuple[int, ...] = (2, 8)
_REVIEWED = frozenset({DeploymentStatus.READY, DeploymentStatus.STOPPED})


def watch_key(rule: Rule, dep: DeploymentRecord) -> str:
    """The ``claims`` key holding since when ``rule``'s watched condition has held for
    ``dep``'s current run: ``watch:<rule>:<deployment id>:<run start in µs>``."""
    run = dep.lifetime_started_at or dep.created_at
    return f"watch:{rule.name}:{dep.id}:{micros(run)}"


class RuleMessages(LifetimeNotices, ThreadNotes, DirectMessages, Protocol):
    """What the automatic rules send: warnings (DM and thread), and plain notes in the thread
    and to the owner."""


class RuleExecutor:
    """Runs the tick rules (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. messages: the messages port.
        manage: performs the automatic stops and destroys; its admin directory names the
            admins in a warning. rules: the rules, in order (``schedule == "tick"`` ones run).
        policy: ``() -> LifetimePolicy``, the configured rules (read on every tick).
        max_hours_for: ``team_id -> MAX_LIFETIME_HOURS`` of that workspace (which Extend
            buttons need an admin). clock: aware UTC now (the failure notice's day).
        on_action: ``(rule name, action kind, outcome) -> None`` after each action (outcome
            ``"done"``, an automatic act's :class:`bot.services.manage.OutcomeKind` value, or
            ``"error"`` when it raised), for the metrics; must not raise.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: RuleMessages,
        manage: ManageService,
        rules: Sequence[Rule],
        policy: Callable[[], LifetimePolicy],
        max_hours_for: Callable[[str | None], float],
        clock: Callable[[], datetime] = storage.utcnow,
        on_action: Callable[[str, str, str], object] | None = None,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.manage = manage
        self.on_action = on_action
        self.rules = tuple(rule for rule in rules if rule.schedule == "tick")
        self.policy = policy
        self.max_hours_for = max_hours_for
        self.clock = clock
        # Watch keys this process knows the state of (True: claimed), so a condition that
        # stays false costs no query; the first sight after a start reads the table once.
        self._watched: dict[str, bool] = {}
        # Claimed watch keys whose condition is false, and since when (this process's sight:
        # after a restart the count begins again, which only keeps the watch longer).
        self._clear_since: dict[str, datetime] = {}

    def review(
        self,
        deps: Sequence[DeploymentRecord],
        instances: Mapping[int, Instance],
        now: datetime,
        *,
        seen: Set[int] | None = None,
    ) -> int:
        """Apply the rules to ``deps`` (rows as the tick read them; ``ready`` and ``stopped``
        ones are judged) with this tick's ``instance id -> Instance``. ``seen``: the ids whose
        instance this tick read (None: all); rules with ``needs_instance`` skip the others.
        Returns how many Slack messages or acts it sent. Never raises."""
        sent = 0
        policy = self.policy()
        for dep in deps:
            if dep.status not in _REVIEWED:
                continue
            read = seen is None or dep.id in seen
            instance = instances.get(dep.instance_id or 0) if read else None
            pending = dep.desired_next_try_at is not None
            for rule in self.rules:
                if rule.needs_instance and not read:
                    continue
                action = None
                try:
                    since = self._since(rule, dep, instance, now) if rule.watch else None
                    action = rule.check(dep, instance, policy, now, since)
                    if action is None:
                        continue
                    if pending and action.kind != TRACK:
                        continue  # the pending act settles first (module docstring)
                    sent += self._do(rule, dep, action, policy, now)
                except Exception:  # one row's or one rule's trouble must not stop the others
                    logger.exception("rules: %s on deployment %d failed", rule.name, dep.id)
                    self._count(rule, action.kind if action is not None else "check", "error")
                    continue
                if action.kind not in ACTS:  # _act counts its own, with the act's outcome
                    self._count(rule, action.kind, "done")
                if action.kind in ACTS:
                    break  # the row is stopping: the rest waits for the next tick
        return sent

    # -- a watched condition ----------------------------------------------------------------

    def _since(
        self, rule: Rule, dep: DeploymentRecord, instance: Instance | None, now: datetime
    ) -> datetime | None:
        assert rule.watch is not None
        key = watch_key(rule, dep)
        if not rule.watch(dep, instance):
            held = self._watched.get(key)
            if held is None:  # first sight in this process: a claim may be left from before
                held = storage.claimed_at(self.sf, key) is not None
            if held:
                # Forgotten only once false for ``forget_after`` without a break: a container
                # that crash-loops (running for one poll now and then) keeps its first exit.
                cleared = self._clear_since.setdefault(key, now)
                if now - cleared < rule.forget_after:
                    self._watched[key] = True
                    return None
                storage.release_claim(self.sf, key)
            self._clear_since.pop(key, None)
            self._watched[key] = False
            return None
        self._clear_since.pop(key, None)
        self._watched[key] = True
        if storage.claim(self.sf, key, now):
            return now
        return storage.claimed_at(self.sf, key) or now  # released meanwhile: from now

    # -- one action -------------------------------------------------------------------------

    def _do(
        self,
        rule: Rule,
        dep: DeploymentRecord,
        action: Action,
        policy: LifetimePolicy,
        now: datetime,
    ) -> int:
        if action.kind in ACTS:
            return self._act(rule, dep, action, now)
        if action.kind == WARN:
            return self._warn_expiry(dep, action, policy, now)
        if action.kind == ASK:
            return self._ask_idle(dep, action, policy, now)
        if action.kind == NOTIFY:
            return self._notify(rule, dep, action, now)
        if action.kind == TRACK:
            storage.set_idle_since(self.sf, dep.id, expected=dep.idle_since, value=action.value)
            return 0
        raise ValueError(f"rule {rule.name} asked for {action.kind!r}, not a tick action")

    def _warn_expiry(
        self, dep: DeploymentRecord, action: Action, policy: LifetimePolicy, now: datetime
    ) -> int:
        assert dep.ends_at is not None and action.promised is not None
        # The claim stores ``now`` as expiry_warned_at: bot.notices.effective_end derives the
        # promised time from it, for the expiry rule and the status message alike.
        if not storage.claim_expiry_warning(self.sf, dep.id, now):
            return 0
        acts_at = action.promised
        started = dep.lifetime_started_at or dep.created_at
        limit = timedelta(hours=self.max_hours_for(dep.team_id))
        notice = ExpiryNotice(
            ends_at=acts_at,
            action=policy.on_expiry,
            cost_by_end=pricing.cost_until(dep, now, acts_at),
            extend_hours=EXTEND_HOURS,
            needs_admin=frozenset(
                h for h in EXTEND_HOURS if acts_at + timedelta(hours=h) - started > limit
            ),
            admins=self.manage.admins.admins(dep.team_id),
            issued_for=dep.ends_at,
        )
        if not self.messages.expiry_warning(dep, notice) and now < dep.ends_at:
            # Slack refused: try again next tick, but only until the end (then the claim
            # stands, the status message shows the same time, and the bot acts at it).
            storage.release_expiry_warning(self.sf, dep.id, now)
        return 1

    def _ask_idle(
        self, dep: DeploymentRecord, action: Action, policy: LifetimePolicy, now: datetime
    ) -> int:
        assert dep.idle_since is not None and action.promised is not None
        if not storage.claim_idle_warning(self.sf, dep.id, now):
            return 0
        notice = IdleNotice(
            idle_since=dep.idle_since,
            warned_at=now,
            gpu_util=action.percent if action.percent is not None else 0.0,
            cost_so_far=pricing.cost_so_far(dep, now),
            acts_at=action.promised,
            action=policy.on_expiry,
            snooze_hours=policy.idle_snooze.total_seconds() / 3600,
        )
        deadline = dep.idle_since + policy.idle_after + policy.idle_grace
        if not self.messages.idle_warning(dep, notice) and now < deadline:
            # Slack refused: ask again next tick, for at most one grace period; after that the
            # claim stands and the idle GPU is stopped (its disk kept) as if nobody answered.
            storage.release_idle_warning(self.sf, dep.id, now)
        return 1

    def _notify(self, rule: Rule, dep: DeploymentRecord, action: Action, now: datetime) -> int:
        assert action.text is not None
        # Once per run of the deployment, whatever time the notice names: a condition that
        # comes and goes (a crash loop) must not send a message each time it comes back.
        run = dep.lifetime_started_at or dep.created_at
        key = f"notify:{rule.name}:{dep.id}:{micros(run)}"
        if not storage.claim(self.sf, key, now):
            return 0
        storage.add_event(
            self.sf,
            dep.id,
            storage.SYSTEM_ACTOR,
            storage.EventKind.RULE_NOTICE,
            f"{rule.name}: {action.reason}",
            now=now,
        )
        delivered = self.messages.note(dep, action.text)
        delivered = self.messages.dm(dep.user_id, action.text, team_id=dep.team_id) or delivered
        if not delivered:
            storage.release_claim(self.sf, key)  # Slack refused: the next tick tries again
        return 1

    def _act(self, rule: Rule, dep: DeploymentRecord, action: Action, now: datetime) -> int:
        if action.promised is None or now < action.promised:
            logger.error(
                "rules: %s wanted to %s deployment %d before the announced time %s; refused",
                rule.name,
                action.kind,
                dep.id,
                action.promised,
            )
            return 0
        act = STOP if action.kind == STOP else DESTROY  # ACTS: nothing else reaches here
        outcome = self.manage.act_automatically(
            act,
            dep.id,
            why=action.why,
            reason_text=f"Automatic {action.kind}: {action.reason}.",
            unchanged=dict(action.unchanged),
            seen_status=dep.status,
        )
        self._count(rule, action.kind, str(outcome.kind))
        if (
            outcome.kind in (OutcomeKind.FAILED, OutcomeKind.PENDING)
            and outcome.deployment is not None
        ):
            self._tell_failure(outcome.deployment, act)
        elif outcome.kind != "done":
            logger.info("rules: automatic %s of %d: %s", action.kind, dep.id, outcome.kind)
        return 1

    def _count(self, rule: Rule, kind: str, outcome: str) -> None:
        if self.on_action is not None:
            self.on_action(rule.name, kind, outcome)

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
            f":warning: The bot could not {action} {deployment_ref(dep)} on its own: "
            "Vast.ai refused. *It is still running and billing.* The bot keeps trying (less often "
            "as it keeps failing); to end it now, press *Destroy* or stop it in the Vast.ai "
            "console."
        )
        kind = (
            storage.EventKind.AUTO_STOP_FAILED
            if action == STOP
            else storage.EventKind.AUTO_DESTROY_FAILED
        )
        storage.add_event(self.sf, dep.id, storage.SYSTEM_ACTOR, kind, None)
        delivered = self.messages.note(dep, text)
        delivered = self.messages.dm(dep.user_id, text, team_id=dep.team_id) or delivered
        if not delivered:
            storage.release_claim(self.sf, key)
