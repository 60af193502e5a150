"""Approvals in chat: a request that costs too much waits for an approver's click.

Flow (docs/USING.md "Budgets and approvals"; the money rules in docs/OPERATIONS.md "When
something fails"):

1. The picker's submission is checked against the budgets inside the transaction that
   writes its row, with the workspace locked (:meth:`ApprovalService.admit`), so concurrent
   submissions never pass a budget together. When it needs approval nothing is rented: the
   row is ``pending_approval`` with its ``approvals`` row; :meth:`ApprovalService.ask` posts
   its status message ("waiting for approval", and by whom) and asks the approvers — in
   ``APPROVAL_CHANNEL`` when set, else by DM — with **Approve** / **Deny**.
2. **Approve** → :meth:`ApprovalService.approve`: the decision is claimed on the row
   (``pending_approval`` → ``creating`` in one locked transaction, so two approvers at once,
   a double click or an approve after a deny give one outcome), the approval messages show who
   decided, the requester is told, and the deploy service rents it like a normal submission
   (the offer checked again; a similar one at most 10 % dearer, else a **Pick another GPU**
   button).
3. **Deny** → a modal for an optional reason → :meth:`ApprovalService.deny`: claimed the same
   way; the requester hears the reason.
4. Requests unanswered for ``APPROVAL_TTL_HOURS`` expire (:meth:`ApprovalService.run`, a
   scheduler job), with a message to both sides.

Requesters cannot approve their own request unless they are the only approver. Every decision
and refusal is an event with its actor (``/templates audit``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.exc import SQLAlchemyError

from bot.formats import deployment_ref, mentions
from bot.services.budgets import BudgetPolicy, BudgetService, deciders_of
from bot.services.deploy import DeployRequest, DeployService
from bot.services.manage import Outcome
from bot.services.ports import (
    NO_HOMES,
    ApprovalDecision,
    ApprovalMessages,
    ApprovalRequest,
    BudgetCheck,
    HomeRefresher,
    Templates,
)
from storage import (
    APPROVED,
    DENIED,
    EXPIRED,
    SYSTEM_ACTOR,
    ApprovalRecord,
    DeploymentRecord,
    DeploymentStatus,
    NewApproval,
    SessionFactory,
    TeamLedger,
    add_approval_messages,
    add_event,
    decide_approval,
    get_approval,
    get_deployment,
    list_due_approvals,
    list_team_ids,
    utcnow,
)

logger = logging.getLogger(__name__)

CHECK_SECONDS = 60.0
"""How often unanswered requests are expired and budget thresholds checked."""
MAX_NOTE = 500
"""Longest denial reason kept, in characters."""
UNSAVED_TEXT = (
    "I could not save your deployment (the bot's database is busy or unavailable), so nothing "
    "was rented. Try again in a minute."
)
"""The answer to a submission whose row could not be written."""


class _NoApprovers(Exception):
    """Raised inside the admission transaction: approval needed, nobody to give it."""


@dataclass(frozen=True)
class Admission:
    """What became of a submission (:meth:`ApprovalService.admit`), decided with its row:

    * ``deploy``: the row is written in ``creating`` (rent it: ``DeployService.start``);
    * ``approval``: the row is written in ``pending_approval`` with its approval (ask the
      ``deciders``: :meth:`ApprovalService.ask`);
    * ``refused``: it needs approval and nobody can give it; nothing written or rented;
    * ``unsaved``: the database could not be written; nothing written or rented.

    ``text`` says why for the last two (mrkdwn, for the user). ``created`` is False for a
    duplicate delivery of a submission already written (do nothing more). ``check`` is the
    budget decision (None for a duplicate or an unsaved one)."""

    kind: Literal["deploy", "approval", "refused", "unsaved"]
    deployment: DeploymentRecord | None = None
    created: bool = False
    check: BudgetCheck | None = None
    deciders: frozenset[str] = frozenset()
    self_only: bool = False
    expires_at: datetime | None = None
    text: str | None = None


@dataclass(frozen=True)
class Requested:
    """The outcome of :meth:`ApprovalService.request`: the row (``pending_approval``, or
    ``denied`` when no approver could be reached), the approvers asked, and ``created`` False
    for a duplicate delivery of the same submission."""

    deployment: DeploymentRecord
    approvers: frozenset[str]
    created: bool


class ApprovalService:
    """Asks for, decides and expires approvals (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. deploy: rents approved requests.
        budgets: the budgets (spend lines for the approval message, thresholds).
        messages: the messages port. templates: the catalog (:class:`bot.services.ports.Templates`).
        policy: who approves, where, and for how long a request waits.
        homes: told of the row after every decision (the requester's Home tab:
            :class:`bot.services.ports.HomeRefresher`).
        clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        deploy: DeployService,
        budgets: BudgetService,
        messages: ApprovalMessages,
        templates: Templates,
        policy: BudgetPolicy,
        homes: HomeRefresher = NO_HOMES,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sf = session_factory
        self.deploy = deploy
        self.budgets = budgets
        self.messages = messages
        self.templates = templates
        self.policy = policy
        self.homes = homes
        self.clock = clock

    # -- who decides -------------------------------------------------------------------------

    def deciders(self, requester: str, team_id: str | None) -> tuple[frozenset[str], bool]:
        """``(who may decide on a request by requester in workspace team_id, self_only)``: the
        workspace's approvers other than the requester; only when nobody else can, the
        requester alone (``self_only`` True). Empty when no approvers are configured."""
        return deciders_of(self.budgets.policy_for(team_id).approvers, requester)

    def no_approvers_text(self, check: BudgetCheck) -> str:
        """The refusal when a request needs approval but nobody is configured to give it."""
        return (
            f"This deployment needs approval ({'; '.join(check.reasons)}), but no approvers are "
            "configured, so nothing was rented. Ask an operator to set `APPROVERS` or "
            "`BOT_ADMINS`, or pick a cheaper offer or a shorter run."
        )

    # -- asking ------------------------------------------------------------------------------

    def admit(self, request: DeployRequest) -> Admission:
        """Decide ``request`` against the budgets and write its row in one transaction, with
        the workspace locked (``DeployService.admit``): concurrent submissions are decided
        one after the other, so together they never pass a budget nor skip an approval.

        Within the budgets (and the approval price) the row is ``creating``; otherwise it is
        ``pending_approval`` with its approval row, or refused when no approvers are
        configured. Nothing is rented and no message is sent here, so the caller answers the
        user only once the row exists. A database that cannot be written (locked, full,
        unreachable) gives ``unsaved``: nothing is written or rented."""
        # Everything read from elsewhere is read before the workspace is locked.
        policy = self.budgets.policy_for(request.team_id)
        deciders, self_only = deciders_of(policy.approvers, request.user_id)
        now = self.clock()
        expires_at = now + timedelta(hours=self.policy.ttl_hours)
        checks: list[BudgetCheck] = []

        def decide(ledger: TeamLedger) -> NewApproval | None:
            check = self.budgets.check_in(
                ledger,
                request.user_id,
                request.offer.dph_total,
                request.lifetime_hours,
                now,
                policy,
            )
            checks.append(check)
            if not check.needs_approval:
                return None
            if not deciders:
                raise _NoApprovers
            return NewApproval(deciders, check.reasons, expires_at)

        try:
            dep, created = self.deploy.admit(request, decide)
        except _NoApprovers:
            return Admission("refused", check=checks[-1], text=self.no_approvers_text(checks[-1]))
        except SQLAlchemyError as error:
            logger.error(
                "submission %s not saved, nothing rented: %s",
                request.request_key,
                type(error).__name__,
            )
            return Admission("unsaved", text=UNSAVED_TEXT)
        kind: Literal["deploy", "approval"] = (
            "approval" if dep.status == DeploymentStatus.PENDING_APPROVAL else "deploy"
        )
        return Admission(
            kind,
            deployment=dep,
            created=created,
            check=checks[-1] if checks else None,
            deciders=deciders,
            self_only=self_only,
            expires_at=expires_at,
        )

    def ask(self, admission: Admission, request: DeployRequest) -> Requested:
        """Post the status message of the new ``pending_approval`` row of ``admission`` and
        ask its deciders (in ``APPROVAL_CHANNEL`` when set, else by DM). When the request
        reaches no approver it is denied at once, plainly, and the requester told.

        Raises ValueError for an admission that is not a new request for approval."""
        dep, check, expires_at = admission.deployment, admission.check, admission.expires_at
        if admission.kind != "approval" or dep is None or check is None or expires_at is None:
            raise ValueError("not a new request for approval")
        deciders = admission.deciders
        now = self.clock()
        waiting = (
            f"Needs approval by {mentions(deciders)}: {'; '.join(check.reasons)}. "
            f"The request expires {_utc(expires_at)} if nobody answers."
        )
        dep = self.deploy.show_held(dep, request.template, waiting[:1500]).deployment
        ask = ApprovalRequest(dep, check, deciders, expires_at, self_only=admission.self_only)
        landed = self.messages.approval_request(
            ask,
            recipients=deciders,
            channel=self.budgets.policy_for(request.team_id).approval_channel,
        )
        if landed:
            add_approval_messages(self.sf, dep.id, landed)
            self.homes.deployment_changed(dep)
            return Requested(dep, deciders, created=True)
        # Nobody can answer a request that never arrived: end it now, plainly.
        reason = (
            "I could not deliver the approval request to any approver, so nothing was rented. "
            f"Ask {mentions(deciders)} directly, or try again later."
        )
        ended = decide_approval(
            self.sf, dep.id, DENIED, actor=SYSTEM_ACTOR, now=now, reason=reason, note=reason
        )
        final = ended or get_deployment(self.sf, dep.id) or dep
        self.deploy.refresh_message(final)
        self.messages.requester_decision(
            final, ApprovalDecision(DENIED, None, now, note="the approvers could not be reached")
        )
        self.homes.deployment_changed(final)
        return Requested(final, deciders, created=True)

    # -- deciding ----------------------------------------------------------------------------

    def _load(
        self, deployment_id: int, actor: str, team_id: str | None, action: str
    ) -> tuple[DeploymentRecord, ApprovalRecord] | Outcome:
        """The pending request ``actor`` may decide on, or the answer why not (forged ids,
        another workspace, already decided or expired, not an approver)."""
        dep = get_deployment(self.sf, deployment_id)
        approval = get_approval(self.sf, deployment_id) if dep is not None else None
        if dep is None or approval is None or team_id is None or dep.team_id != team_id:
            return Outcome("not_found", "That approval request does not exist in this workspace.")
        if dep.status != DeploymentStatus.PENDING_APPROVAL:
            return Outcome("already", _decided_text(dep, approval), dep)
        if action == "approve" and actor == dep.user_id and approval.approvers != {actor}:
            add_event(self.sf, dep.id, actor, "approve_refused", "own request")
            others = approval.approvers - {actor}
            return Outcome(
                "refused",
                f":no_entry: You cannot approve your own request: {mentions(others)} can.",
                dep,
            )
        if actor not in approval.approvers:
            add_event(self.sf, dep.id, actor, f"{action}_refused", "not an approver")
            return Outcome(
                "refused",
                f":no_entry: Only {mentions(approval.approvers)} can decide on this request.",
                dep,
            )
        if approval.expires_at <= self.clock():
            self._expire(dep.id)
            current = get_deployment(self.sf, dep.id) or dep
            return Outcome(
                "already",
                f"This request expired {_utc(approval.expires_at)} unanswered: nothing was "
                "rented. The requester can deploy again.",
                current,
            )
        return dep, approval

    def may_deny(
        self, deployment_id: int, actor: str, team_id: str | None
    ) -> tuple[DeploymentRecord | None, Outcome | None]:
        """``(the pending request, None)`` when ``actor`` may deny it now (the listener then
        opens the reason modal), else ``(None, the answer to show instead)``."""
        loaded = self._load(deployment_id, actor, team_id, "deny")
        if isinstance(loaded, Outcome):
            return None, loaded
        return loaded[0], None

    def approve(self, deployment_id: int, actor: str, team_id: str | None) -> Outcome:
        """Approve and rent (see the module docstring). Never raises for Slack or Vast.ai
        errors; a forged, foreign, decided or expired request rents nothing."""
        loaded = self._load(deployment_id, actor, team_id, "approve")
        if isinstance(loaded, Outcome):
            return loaded
        dep, approval = loaded
        now = self.clock()
        check = self._check(dep)
        decided = decide_approval(self.sf, dep.id, APPROVED, actor=actor, now=now)
        if decided is None:  # someone else decided between our read and our claim
            current = get_deployment(self.sf, dep.id) or dep
            return Outcome("already", _decided_text(current, get_approval(self.sf, dep.id)), dep)
        decision = ApprovalDecision(APPROVED, actor, now)
        self._announce(decided, approval, decision, check)
        result = self.deploy.deploy_approved(decided)
        self.homes.deployment_changed(result.deployment)
        self.budgets.notify_thresholds(dep.team_id)
        what = f"{deployment_ref(dep)} for <@{dep.user_id}>"
        if result.deployment.status == DeploymentStatus.FAILED:
            return Outcome(
                "done",
                f"Approved {what}, but it could not be rented: {result.deployment.reason}",
                result.deployment,
            )
        return Outcome("done", f":white_check_mark: Approved {what}: renting it now.", decided)

    def deny(self, deployment_id: int, actor: str, team_id: str | None, note: str) -> Outcome:
        """Deny with ``note`` (may be empty): nothing is rented and the requester is told."""
        loaded = self._load(deployment_id, actor, team_id, "deny")
        if isinstance(loaded, Outcome):
            return loaded
        dep, approval = loaded
        now = self.clock()
        note = note.strip()[:MAX_NOTE]
        reason = f"Denied by <@{actor}>" + (f": {note}" if note else " (no reason given)")
        check = self._check(dep)
        decided = decide_approval(
            self.sf, dep.id, DENIED, actor=actor, now=now, reason=reason, note=note or None
        )
        if decided is None:
            current = get_deployment(self.sf, dep.id) or dep
            return Outcome("already", _decided_text(current, get_approval(self.sf, dep.id)), dep)
        self._announce(decided, approval, ApprovalDecision(DENIED, actor, now, note or None), check)
        return Outcome(
            "done",
            f":no_entry_sign: Denied {deployment_ref(dep)} for <@{dep.user_id}>; they were told.",
            decided,
        )

    # -- expiring ----------------------------------------------------------------------------

    def _expire(self, deployment_id: int) -> bool:
        approval = get_approval(self.sf, deployment_id)
        if approval is None:
            return False
        now = self.clock()
        reason = f"No approver answered within {self.policy.ttl_hours:g} h"
        pending = get_deployment(self.sf, deployment_id)
        if pending is None:
            return False
        check = self._check(pending)
        decided = decide_approval(
            self.sf, deployment_id, EXPIRED, actor=SYSTEM_ACTOR, now=now, reason=reason
        )
        if decided is None:
            return False
        self._announce(decided, approval, ApprovalDecision(EXPIRED, None, now), check)
        self.messages.approval_reply(
            approval.messages,
            f":hourglass: This request by <@{decided.user_id}> expired unanswered; nothing was "
            "rented.",
            team_id=decided.team_id,
        )
        return True

    def run(self, now: datetime | None = None) -> int:
        """Expire every request past its time (each claimed once across processes) and send
        due budget notices; returns how many requests expired."""
        now = now or self.clock()
        expired = 0
        for deployment_id in list_due_approvals(self.sf, now):
            try:
                if self._expire(deployment_id):
                    expired += 1
            except Exception:  # one bad row must not stop the others
                logger.exception("expiring approval of deployment %s failed", deployment_id)
        for team_id in list_team_ids(self.sf):
            try:
                self.budgets.notify_thresholds(team_id)
            except Exception:
                logger.exception("budget notices for %s failed", team_id)
        return expired

    def install(self, scheduler: BaseScheduler, *, seconds: float = CHECK_SECONDS) -> None:
        """Add :meth:`run` to ``scheduler`` every ``seconds`` (one at a time)."""
        scheduler.add_job(
            self.run,
            "interval",
            seconds=seconds,
            id="approvals",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )

    # -- telling -----------------------------------------------------------------------------

    def _check(self, dep: DeploymentRecord) -> BudgetCheck:
        """The budgets as a pending request sees them (read before it is decided, so that an
        approved request is not counted twice in its own message)."""
        return self.budgets.check(dep.team_id, dep.user_id, dep.dph_total, dep.lifetime_hours)

    def _announce(
        self,
        dep: DeploymentRecord,
        approval: ApprovalRecord,
        decision: ApprovalDecision,
        check: BudgetCheck,
    ) -> None:
        """After a decision: the approval messages show it, the status message shows the new
        state, the requester is told, and the Home tab refreshed."""
        request = ApprovalRequest(
            dep,
            check,
            approval.approvers,
            approval.expires_at,
            self_only=approval.approvers == {dep.user_id},
        )
        self.messages.approval_decided(request, decision, approval.messages)
        self.deploy.refresh_message(dep)
        self.messages.requester_decision(dep, decision)
        self.homes.deployment_changed(dep)


def _utc(when: datetime) -> str:
    return f"{when:%a %d %b %H:%M} UTC"


def _decided_text(dep: DeploymentRecord, approval: ApprovalRecord | None) -> str:
    """What to tell someone who clicks on a request that is no longer pending."""
    what = deployment_ref(dep)
    if approval is None or approval.decision is None:
        return f"{what} is {dep.status} now: there is nothing to decide."
    if approval.decision == EXPIRED:
        return f"The request for {what} expired unanswered: nothing was rented."
    verb = "approved" if approval.decision == APPROVED else "denied"
    return (
        f"The request for {what} was already {verb} by <@{approval.decided_by}>; nothing changed."
    )
