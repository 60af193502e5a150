"""Monthly budgets: what the workspace and each person may spend, what is spent and committed,
when a request needs approval, and the 80 % / 100 % notices.

The money model (US dollars, calendar months in UTC, the costs module's arithmetic):

* **Spent** this month: :meth:`bot.services.listings.ListingService.month_report` (hours in
  ``ready`` × ``dph_total``, plus the disk estimate while stopped).
* **Committed**: what the live deployments will still cost this month if nothing changes:
  running ones up to their end time (the month's end when they have none), stopped ones their
  disk to the month's end (:func:`bot.pricing.committed_in_window`).
* **Projected** = spent + committed: what a budget is compared with.
* A **request** counts with the part of its run that falls in this month
  (:func:`bot.pricing.run_in_window`); the rest counts against next month's budget once that
  month begins (as committed spend of a running deployment).

A request needs approval when its offer costs more than ``APPROVAL_DPH`` $/hour, or when it
would take the person's or the workspace's projected spend past the budget; once a budget is
reached, every new request needs approval. Running deployments are never touched.

Budgets set by admins in Slack live in the ``budgets`` table and override the configured
defaults (``WORKSPACE_MONTHLY_BUDGET``, ``USER_MONTHLY_BUDGET``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from bot import pricing
from bot.config import Settings
from bot.formats import money
from bot.services.listings import ListingService
from bot.services.ports import BudgetAlert, BudgetCheck, BudgetLine, BudgetNotices
from storage import (
    BUDGET_WORKSPACE,
    LIVE_STATUSES,
    SYSTEM_ACTOR,
    DeploymentRecord,
    SessionFactory,
    TeamLedger,
    add_team_event,
    claim,
    clear_budget,
    read_ledger,
    release_claim,
    set_budget,
    utcnow,
)

logger = logging.getLogger(__name__)

MAX_BUDGET = 1_000_000.0
"""The largest monthly budget accepted, in dollars (anything above is a typo)."""
THRESHOLDS = (80, 100)
"""Percentages of a budget at which its owner hears it, once a month each."""

_AMOUNT = re.compile(r"\$?\s*([0-9][0-9,]*(?:\.[0-9]{1,2})?|\.[0-9]{1,2})")
_NO_BUDGET = {"none", "off", "no", "unlimited", "no budget"}
_DEFAULT = {"", "default", "reset"}


class BudgetInputError(ValueError):
    """A budget amount a person typed cannot be used; ``str()`` says why and what to type."""


@dataclass(frozen=True)
class BudgetInput:
    """A parsed budget amount: ``set`` ``dollars`` a month, ``none`` (no budget, on purpose)
    or ``default`` (remove the admin's value: the configured default applies)."""

    kind: Literal["set", "none", "default"]
    dollars: float | None = None


def parse_budget_amount(text: str | None) -> BudgetInput:
    """Read a budget typed in Slack: ``200``, ``$1,500``, ``99.50`` → dollars per month;
    ``none``/``off`` → no budget; empty or ``default`` → the configured default.

    Raises :class:`BudgetInputError` for a negative, non-numeric or absurd amount (over
    :data:`MAX_BUDGET`)."""
    raw = (text or "").strip()
    word = raw.lower()
    if word in _DEFAULT:
        return BudgetInput("default")
    if word in _NO_BUDGET:
        return BudgetInput("none")
    if raw.startswith("-") or raw.startswith("$-"):
        raise BudgetInputError("A budget cannot be negative: enter dollars per month, e.g. 200.")
    match = _AMOUNT.fullmatch(raw)
    if match is None:
        raise BudgetInputError(
            "Enter dollars per month as a number (e.g. 200), `none` for no budget, or leave it "
            "empty for the default."
        )
    dollars = float(match.group(1).replace(",", ""))
    if not math.isfinite(dollars) or dollars > MAX_BUDGET:
        raise BudgetInputError(
            f"{money(dollars) if math.isfinite(dollars) else 'That'} a month is more than the "
            f"{money(MAX_BUDGET)} the bot accepts: check the number."
        )
    return BudgetInput("set", round(dollars, 2))


@dataclass(frozen=True)
class BudgetPolicy:
    """The configured rules: ``workspace_default`` / ``user_default`` ($ per month, None = no
    budget), ``approval_dph`` ($/hour above which a request needs approval, None = no price
    limit), ``approvers`` (``APPROVERS``, else ``BOT_ADMINS``), ``admins`` (``BOT_ADMINS``),
    ``approval_channel`` (None: approvers are asked by DM), ``ttl_hours`` (unanswered requests
    expire after it)."""

    workspace_default: float | None
    user_default: float | None
    approval_dph: float | None
    approvers: frozenset[str]
    admins: frozenset[str]
    approval_channel: str | None
    ttl_hours: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetPolicy:
        """The policy of ``settings`` (docs/USING.md › Budgets and approvals)."""
        return cls(
            workspace_default=settings.workspace_monthly_budget,
            user_default=settings.user_monthly_budget,
            approval_dph=settings.approval_dph,
            approvers=settings.approver_ids,
            admins=settings.bot_admins,
            approval_channel=settings.approval_channel,
            ttl_hours=settings.approval_ttl_hours,
        )


@dataclass(frozen=True)
class MonthSpend:
    """Spend of one workspace in the month of ``now``: ``spent``/``committed`` $ per user id
    and in total, and the budgets that apply (``stored``: what admins set)."""

    now: datetime
    spent: dict[str, float]
    committed: dict[str, float]
    stored: dict[str, float | None]

    def total(self, values: dict[str, float]) -> float:
        """The sum of ``values``."""
        return sum(values.values())


class BudgetPolicies(Protocol):
    """Each workspace's budget rules (:class:`bot.services.workspaces.WorkspacePolicies`
    implements it: the configured rules with the approval threshold, approvers and admins
    the workspace chose in ``/templates setup``)."""

    def budget_policy(self, team_id: str) -> BudgetPolicy:
        """The rules of workspace ``team_id``. May raise SQLAlchemy errors."""
        ...


class BudgetService:
    """Budgets for one or more workspaces (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. listings: this month's spend.
        messages: the messages port (the 80 % / 100 % notices).
        policy: the configured rules. policies: each workspace's rules (its approval
            threshold, approvers and admins: :class:`BudgetPolicies`); None: ``policy``
            everywhere. clock: aware UTC now.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        listings: ListingService,
        messages: BudgetNotices,
        policy: BudgetPolicy,
        policies: BudgetPolicies | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sf = session_factory
        self.listings = listings
        self.messages = messages
        self.policy = policy
        self._policies = policies
        self.clock = clock

    def policy_for(self, team_id: str | None) -> BudgetPolicy:
        """The rules of workspace ``team_id``: its approval threshold, approvers and admins
        (``/templates setup``), else the configured ones."""
        if self._policies is None or not team_id:
            return self.policy
        return self._policies.budget_policy(team_id)

    # -- reading -----------------------------------------------------------------------------

    def budget_of(self, subject: str, stored: dict[str, float | None]) -> float | None:
        """The monthly budget in $ of ``subject`` (:data:`storage.BUDGET_WORKSPACE` or a user
        id): what an admin set, else the configured default; None = no budget."""
        if subject in stored:
            return stored[subject]
        if subject == BUDGET_WORKSPACE:
            return self.policy.workspace_default
        return self.policy.user_default

    def month(self, team_id: str, now: datetime | None = None) -> MonthSpend:
        """Spent and committed $ this month per person in ``team_id``, and the stored budgets,
        as they stand now (read without a lock: for showing, not for deciding)."""
        return month_of(read_ledger(self.sf, team_id), now or self.clock())

    def line(self, month: MonthSpend, subject: str) -> BudgetLine:
        """The :class:`BudgetLine` of ``subject`` in ``month``."""
        if subject == BUDGET_WORKSPACE:
            spent, committed = month.total(month.spent), month.total(month.committed)
        else:
            spent, committed = month.spent.get(subject, 0.0), month.committed.get(subject, 0.0)
        return BudgetLine(subject, self.budget_of(subject, month.stored), spent, committed)

    def lines(self, team_id: str, user_id: str) -> tuple[BudgetLine, BudgetLine]:
        """``(user_id's line, the workspace's line)`` as they stand now."""
        month = self.month(team_id)
        return self.line(month, user_id), self.line(month, BUDGET_WORKSPACE)

    def all_lines(self, team_id: str, month: MonthSpend | None = None) -> list[BudgetLine]:
        """The workspace's line, then every person's who has a budget (their own or the
        default) and spent or committed something, or whose budget an admin set; largest
        projected spend first."""
        month = month or self.month(team_id)
        people = set(month.spent) | set(month.committed) | set(month.stored)
        people.discard(BUDGET_WORKSPACE)
        lines = [self.line(month, user) for user in people]
        lines = [line for line in lines if line.budget is not None]
        lines.sort(key=lambda line: (-line.projected, line.subject))
        return [self.line(month, BUDGET_WORKSPACE), *lines]

    def check(
        self, team_id: str, user_id: str, dph: float, lifetime_hours: float | None
    ) -> BudgetCheck:
        """What a request for ``dph`` $/hour running ``lifetime_hours`` hours (None: until
        stopped) would do to the budgets, and why it needs approval (``reasons``), as they
        stand now (the picker's preview; the submission decides with :meth:`check_in`)."""
        now = self.clock()
        policy = self.policy_for(team_id)
        return self._request(self.month(team_id, now), policy, user_id, dph, lifetime_hours)

    def check_in(
        self,
        ledger: TeamLedger,
        user_id: str,
        dph: float,
        lifetime_hours: float | None,
        now: datetime,
        policy: BudgetPolicy,
    ) -> BudgetCheck:
        """:meth:`check` against ``ledger``, the workspace read inside the transaction that
        will insert the request's row (so the decision and the insert are one step), with the
        workspace's ``policy`` (:meth:`policy_for`, read before the transaction: nothing here
        opens another connection while the workspace is locked)."""
        month = month_of(ledger, now)
        return self._request(month, policy, user_id, dph, lifetime_hours)

    def check_extension(
        self,
        ledger: TeamLedger,
        dep: DeploymentRecord,
        new_end: datetime,
        now: datetime,
        policy: BudgetPolicy,
    ) -> BudgetCheck:
        """What moving the end of ``dep`` (in ``ledger``, still at its old end) to ``new_end``
        would do to the budgets of its owner and workspace: the added run (from the old end,
        or now when that passed, to ``new_end``) at ``dep.dph_total`` is the request. ``policy``
        as in :meth:`check_in`."""
        month = month_of(ledger, now)
        _, month_end = pricing.month_window(now)
        start = max(dep.ends_at or now, now)
        hours = max(0.0, (new_end - start).total_seconds() / 3600.0)
        in_month = pricing.run_in_window(dep.dph_total, hours, start, month_end)
        return decide(
            dph=dep.dph_total,
            lifetime_hours=hours,
            in_month=in_month,
            user=self.line(month, dep.user_id),
            workspace=self.line(month, BUDGET_WORKSPACE),
            approval_dph=policy.approval_dph,
            what="this extension",
        )

    def _request(
        self,
        month: MonthSpend,
        policy: BudgetPolicy,
        user_id: str,
        dph: float,
        lifetime_hours: float | None,
    ) -> BudgetCheck:
        _, month_end = pricing.month_window(month.now)
        return decide(
            dph=dph,
            lifetime_hours=lifetime_hours,
            in_month=pricing.run_in_window(dph, lifetime_hours, month.now, month_end),
            user=self.line(month, user_id),
            workspace=self.line(month, BUDGET_WORKSPACE),
            approval_dph=policy.approval_dph,
        )

    # -- changing ----------------------------------------------------------------------------

    def set(self, team_id: str, subject: str, value: BudgetInput, actor: str) -> str:
        """Store ``value`` as the budget of ``subject`` (recorded as a workspace event by
        ``actor``) and return the confirmation (mrkdwn). The caller checks that ``actor`` is
        an admin."""
        who = "The workspace's" if subject == BUDGET_WORKSPACE else f"<@{subject}>'s"
        now = self.clock()
        if value.kind == "default":
            default = self.budget_of(subject, {})
            shown = f"{money(default)} a month" if default is not None else "no budget"
            detail = f"{_subject_text(subject)}: back to the default ({shown})"
            clear_budget(self.sf, team_id, subject, actor=actor, detail=detail, now=now)
            return f":white_check_mark: {who} budget is the default again: {shown}."
        dollars = value.dollars if value.kind == "set" else None
        shown = f"{money(dollars)} a month" if dollars is not None else "no budget"
        detail = f"{_subject_text(subject)}: {shown}"
        set_budget(self.sf, team_id, subject, dollars, actor=actor, detail=detail, now=now)
        return f":white_check_mark: {who} budget is now {shown}."

    # -- notices -----------------------------------------------------------------------------

    def notify_thresholds(self, team_id: str) -> int:
        """Tell people who reached 80 % or 100 % of their budget this month (the admins for
        the workspace's budget), once per threshold, budget and month (claimed in
        ``claims``); returns how many notices went out. A notice Slack refused is retried on
        the next call."""
        now = self.clock()
        month = self.month(team_id, now)
        label = now.strftime("%B %Y")
        sent = 0
        for line in self.all_lines(team_id, month):
            fraction = line.fraction
            if fraction is None:
                continue
            reached = [p for p in THRESHOLDS if fraction >= p / 100 - 1e-9]
            claimed = [p for p in reached if claim(self.sf, _claim_key(team_id, line, p, now))]
            if not claimed:
                continue
            percent = max(claimed)
            alert = BudgetAlert(line=line, percent=percent, month_label=label)
            if line.subject == BUDGET_WORKSPACE:
                policy = self.policy_for(team_id)
                recipients = policy.admins or policy.approvers
                delivered = [
                    self.messages.budget_alert(u, alert, you=False, team_id=team_id)
                    for u in recipients
                ]
            else:
                delivered = [
                    self.messages.budget_alert(line.subject, alert, you=True, team_id=team_id)
                ]
            if not any(delivered):
                for p in claimed:  # nobody heard it: ask again next time
                    release_claim(self.sf, _claim_key(team_id, line, p, now))
                continue
            sent += 1
            add_team_event(
                self.sf,
                team_id,
                SYSTEM_ACTOR,
                "budget_alert",
                f"{_subject_text(line.subject)} reached {percent} % of {money(line.budget or 0)}",
                now=now,
            )
        return sent


def deciders_of(approvers: frozenset[str], requester: str) -> tuple[frozenset[str], bool]:
    """``(who may approve a request by requester, self_only)``: the ``approvers`` other than
    the requester; only when nobody else can, the requester alone (``self_only`` True). Empty
    when there are no approvers."""
    others = approvers - {requester}
    if others:
        return others, False
    return approvers, bool(approvers)


def month_of(ledger: TeamLedger, now: datetime) -> MonthSpend:
    """Spent and committed $ in the month of ``now`` (UTC) per person of ``ledger``'s workspace:
    spent as :func:`bot.pricing.cost_report` (the status history read only for deployments that
    began before the month), committed as :func:`bot.pricing.committed_in_window` over the
    live deployments; with the budgets admins set. Reads only the month's window of the ledger
    (:meth:`storage.TeamLedger.window`: a bounded number of queries, whatever the history)."""
    start, month_end = pricing.month_window(now)
    window = ledger.window(start, min(month_end, now))

    def periods_for(dep: DeploymentRecord) -> list[pricing.Period]:
        return pricing.periods_from_events(dep, window.status_events(dep.id), now)

    report = pricing.cost_report(
        window.deployments, start=start, end=month_end, now=now, periods_for=periods_for
    )
    committed: dict[str, float] = {}
    for dep in window.deployments:
        if dep.status not in LIVE_STATUSES:
            continue
        more = pricing.committed_in_window(dep, now, month_end)
        if more > 0:
            committed[dep.user_id] = committed.get(dep.user_id, 0.0) + more
    spent = {line.user_id: line.dollars for line in report.per_user}
    return MonthSpend(now, spent, committed, dict(ledger.budgets))


def decide(
    *,
    dph: float,
    lifetime_hours: float | None,
    in_month: float,
    user: BudgetLine,
    workspace: BudgetLine,
    approval_dph: float | None,
    what: str = "it",
) -> BudgetCheck:
    """The budget decision, a pure function of numbers: may a request for ``dph`` $/hour
    running ``lifetime_hours`` hours (None: until stopped), of which ``in_month`` $ fall in this
    month, go ahead without approval, given the requester's and the workspace's lines
    (``user`` / ``workspace``: budget, spent and committed $ before it) and ``approval_dph``
    ($/hour above which any request needs approval; None = no price limit)?

    Returns the :class:`BudgetCheck` whose ``reasons`` say, in words, why it needs approval
    (empty: it goes straight through). A request needs approval when its price is above
    ``approval_dph``, when a budget is already used up (projected ≥ budget), or when
    ``in_month`` would take a projected spend past its budget. ``what`` names the request in
    the reasons ("it", "this extension")."""
    cost_to_end = None if lifetime_hours is None else dph * lifetime_hours
    draft = BudgetCheck(
        dph=dph,
        lifetime_hours=lifetime_hours,
        cost_to_end=cost_to_end,
        in_month=in_month,
        user=user,
        workspace=workspace,
        approval_dph=approval_dph,
    )
    reasons: list[str] = []
    if approval_dph is not None and dph > approval_dph + 1e-9:
        reasons.append(
            f"{money(dph)}/h is above the {money(approval_dph)}/h that needs no approval"
        )
    for line, whose in ((user, f"<@{user.subject}>'s"), (workspace, "the workspace's")):
        if line.budget is None:
            continue
        if line.projected >= line.budget - 1e-9:
            reasons.append(
                f"{whose} {money(line.budget)} budget for this month is used up "
                f"({money(line.projected)} spent and committed)"
            )
        elif draft.passes(line):
            reasons.append(
                f"{what} would take {whose} spend this month to "
                f"{money(line.projected + in_month)}, past the {money(line.budget)} budget"
            )
    return dataclasses.replace(draft, reasons=tuple(reasons))


def _subject_text(subject: str) -> str:
    return "workspace" if subject == BUDGET_WORKSPACE else f"<@{subject}>"


def _claim_key(team_id: str, line: BudgetLine, percent: int, now: datetime) -> str:
    """``budget:<team>:<subject>:<percent>:<YYYY-MM>`` (the budget's amount is part of it, so
    a raised budget is announced again when it is reached)."""
    amount = f"{line.budget:.2f}" if line.budget is not None else "none"
    return f"budget:{team_id}:{line.subject}:{amount}:{percent}:{now:%Y-%m}"
