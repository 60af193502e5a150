"""Storage for budgets, approvals and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.engine import Engine

import storage
from bot import pricing
from bot.services.budgets import month_of
from storage import (
    APPROVED,
    BUDGET_WORKSPACE,
    DENIED,
    EXPIRED,
    DeploymentStatus,
    NewApproval,
    SessionFactory,
)
from tests.test_migrations import _downgrade

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TEAM = "T0TEAM0001"
EARLIER = T0 - timedelta(hours=1)


def pending(
    sf: SessionFactory, key: str = "V1", *, ttl_hours: float = 24
) -> storage.DeploymentRecord:
    dep, created = storage.create_deployment(
        sf,
        request_key=key,
        team_id=TEAM,
        user_id="U0ALICE01",
        channel_id="C0DEPLOYS1",
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=7,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=2.5,
        disk_gb=20,
        lifetime_hours=8,
        approval=NewApproval(
            frozenset({"U0APPROV1", "U0CAROL03"}),
            ("$2.50/h is above $1.00/h", "past the budget"),
            T0 + timedelta(hours=ttl_hours),
        ),
        now=T0,
    )
    assert created
    return dep


def test_a_pending_row_has_its_approval_and_no_end_time(session_factory: SessionFactory) -> None:
    dep = pending(session_factory)
    assert dep.status == DeploymentStatus.PENDING_APPROVAL
    assert (dep.ends_at, dep.lifetime_started_at) == (None, None)
    approval = storage.get_approval(session_factory, dep.id)
    assert approval is not None
    assert approval.approvers == {"U0APPROV1", "U0CAROL03"}
    assert approval.reasons == ("$2.50/h is above $1.00/h", "past the budget")
    storage.add_approval_messages(session_factory, dep.id, [("D0APPROV1", "1.1")])
    storage.add_approval_messages(session_factory, dep.id, [("D0APPROV1", "1.1"), ("C1", "2.2")])
    again = storage.get_approval(session_factory, dep.id)
    assert again is not None and again.messages == (("D0APPROV1", "1.1"), ("C1", "2.2"))
    actions = [e.action for e in storage.list_events(session_factory, dep.id)]
    assert actions == ["requested", "approval_requested"]


def test_a_decision_is_taken_once_and_approval_starts_the_run(
    session_factory: SessionFactory,
) -> None:
    dep = pending(session_factory)
    at = T0 + timedelta(hours=1)
    approved = storage.decide_approval(session_factory, dep.id, APPROVED, actor="U0APPROV1", now=at)
    assert approved is not None and approved.status == DeploymentStatus.CREATING
    assert approved.lifetime_started_at == at and approved.ends_at == at + timedelta(hours=8)
    assert (
        storage.decide_approval(session_factory, dep.id, DENIED, actor="U0CAROL03", now=at) is None
    )
    assert (
        storage.decide_approval(session_factory, dep.id, APPROVED, actor="U0CAROL03", now=at)
        is None
    )
    approval = storage.get_approval(session_factory, dep.id)
    assert approval is not None
    assert (approval.decision, approval.decided_by, approval.decided_at) == (
        APPROVED,
        "U0APPROV1",
        at,
    )


def test_expiry_needs_the_request_to_be_due_and_blocks_later_decisions(
    session_factory: SessionFactory,
) -> None:
    dep = pending(session_factory, ttl_hours=2)
    early = T0 + timedelta(hours=1)
    assert storage.list_due_approvals(session_factory, early) == []
    assert (
        storage.decide_approval(session_factory, dep.id, EXPIRED, actor="system", now=early) is None
    )
    late = T0 + timedelta(hours=2)
    assert storage.list_due_approvals(session_factory, late) == [dep.id]
    # too late to approve: only expiry is possible now
    assert (
        storage.decide_approval(session_factory, dep.id, APPROVED, actor="U0APPROV1", now=late)
        is None
    )
    expired = storage.decide_approval(
        session_factory, dep.id, EXPIRED, actor="system", now=late, reason="nobody answered"
    )
    assert expired is not None and expired.status == DeploymentStatus.EXPIRED
    assert expired.reason == "nobody answered"
    assert storage.list_due_approvals(session_factory, late) == []
    with pytest.raises(ValueError):
        storage.decide_approval(session_factory, dep.id, "maybe", actor="x", now=late)


def test_two_deciders_at_once_one_wins(database_url: str, session_factory: SessionFactory) -> None:
    dep = pending(session_factory)
    other_engine = storage.make_engine(database_url)
    try:
        other = storage.make_session_factory(other_engine)
        barrier = threading.Barrier(2)
        results: list[object] = []

        def decide(sf: SessionFactory, outcome: str, actor: str) -> None:
            barrier.wait()
            results.append(
                storage.decide_approval(
                    sf, dep.id, outcome, actor=actor, now=T0 + timedelta(minutes=5)
                )
            )

        threads = [
            threading.Thread(target=decide, args=(session_factory, APPROVED, "U0APPROV1")),
            threading.Thread(target=decide, args=(other, DENIED, "U0CAROL03")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        other_engine.dispose()
    assert sum(r is not None for r in results) == 1
    decided = [e.action for e in storage.list_events(session_factory, dep.id)]
    assert decided.count("approved") + decided.count("denied") == 1


def test_budgets_are_set_reset_and_audited(session_factory: SessionFactory) -> None:
    sf = session_factory
    storage.set_budget(
        sf, TEAM, BUDGET_WORKSPACE, 1000.0, actor="U0ADMIN01", detail="ws $1000", now=EARLIER
    )
    storage.set_budget(
        sf, TEAM, "U0BOB0002", None, actor="U0ADMIN01", detail="bob none", now=EARLIER
    )
    storage.set_budget(sf, "T0OTHER99", "U0BOB0002", 5.0, actor="U0X", detail="other", now=EARLIER)
    assert storage.get_budgets(sf, TEAM) == {BUDGET_WORKSPACE: 1000.0, "U0BOB0002": None}
    storage.set_budget(
        sf, TEAM, BUDGET_WORKSPACE, 750.0, actor="U0ADMIN01", detail="ws $750", now=EARLIER
    )
    assert storage.clear_budget(
        sf, TEAM, "U0BOB0002", actor="U0ADMIN01", detail="bob default", now=EARLIER
    )
    assert not storage.clear_budget(
        sf, TEAM, "U0BOB0002", actor="U0ADMIN01", detail="again", now=EARLIER
    )
    assert storage.get_budgets(sf, TEAM) == {BUDGET_WORKSPACE: 750.0}
    dep = pending(sf)
    storage.decide_approval(
        sf, dep.id, DENIED, actor="U0APPROV1", now=T0 + timedelta(hours=1), note="no"
    )
    log = storage.list_audit(sf, TEAM, limit=50)
    assert [(e.action, e.deployment_id) for e in log][:3] == [
        ("denied", dep.id),
        ("status", dep.id),
        ("approval_requested", dep.id),
    ]
    assert [e.action for e in log if e.deployment_id is None] == [
        "budget_default",
        "budget_set",
        "budget_set",
        "budget_set",
    ]
    assert all(e.at.tzinfo is not None for e in log)
    assert log[0].template_name == "JupyterLab" and log[0].detail == "no"
    assert "other" not in {e.detail for e in log}  # another workspace's events stay there
    page = storage.list_audit(sf, TEAM, offset=2, limit=2)
    assert page == log[2:4]
    assert storage.list_team_ids(sf) == [TEAM]


def test_0005_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = storage.make_engine(database_url)
    try:
        storage.migrate(engine)
        _downgrade(engine, "0004_lifetimes")
        assert "budgets" not in inspect(engine).get_table_names()
        storage.migrate(engine)
        assert {"budgets", "approvals", "team_events"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -- the ledger a budget decision reads under the workspace lock ------------------------------

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # the month began 6.5 days ago
S = DeploymentStatus
KEYS = itertools.count()


def history_row(
    sf: SessionFactory,
    born: datetime,
    *steps: tuple[DeploymentStatus, datetime],
    user: str = "U0ALICE01",
    approval: bool = False,
) -> int:
    """A deployment of ``TEAM`` created at ``born`` that then went through ``steps``."""
    dep, _ = storage.create_deployment(
        sf, request_key=f"history-{next(KEYS)}", team_id=TEAM,
        user_id=user, channel_id="C0DEPLOYS1", template_slug="x", template_name="X",
        offer_id=7, gpu_name="RTX 4090", num_gpus=1, gpu_ram_gb=24, dph_total=0.8,
        disk_gb=60, now=born,
        approval=NewApproval(frozenset({"U0APPROV1"}), ("over",), born + timedelta(days=1))
        if approval else None,
    )  # fmt: skip
    status = dep.status
    for new, at in steps:
        if new == S.CREATING:
            assert storage.decide_approval(sf, dep.id, APPROVED, actor="U0APPROV1", now=at)
        elif new in (S.DENIED, S.EXPIRED):
            assert storage.decide_approval(sf, dep.id, new.value, actor="U0APPROV1", now=at)
        else:
            assert storage.update_status(sf, dep.id, expected_status=status, new_status=new, now=at)
        status = new
    return dep.id


def mixed_history(sf: SessionFactory, copies: int = 1) -> None:
    """Rows from earlier months, rows spanning the month's start, stopped rows, pending and
    refused approvals, rows of this month, and two written by a clock ahead of ours."""
    day = timedelta(days=1)
    for n in range(copies):
        old = NOW - timedelta(days=90 + n)
        # ended in earlier months: cost nothing this month
        history_row(sf, old, (S.READY, old + day), (S.DESTROYED, old + 2 * day))
        history_row(sf, old, (S.FAILED, old + day), user="U0BOB0002")
        history_row(sf, old, (S.DENIED, old + day / 2), approval=True)
        history_row(sf, old - day, (S.EXPIRED, old), approval=True)
    spans = NOW - timedelta(days=20)
    history_row(sf, spans, (S.PROVISIONING, spans), (S.READY, spans + timedelta(hours=1)))
    history_row(sf, spans, (S.READY, spans), (S.STOPPED, NOW - 10 * day))  # stopped all month
    history_row(sf, spans, (S.READY, spans), (S.STOPPED, NOW - 3 * day), user="U0BOB0002")
    history_row(sf, spans, (S.READY, spans), (S.DESTROYED, NOW - 2 * day))
    history_row(
        sf, spans, (S.READY, spans), (S.STOPPED, NOW - 9 * day), (S.READY, NOW - 5 * day),
        (S.DESTROYED, NOW - 4 * day), user="U0BOB0002",
    )  # fmt: skip
    history_row(sf, spans, approval=True)  # still waiting for approval: costs nothing
    this = NOW - 3 * day
    history_row(sf, this, (S.READY, this), (S.DESTROYED, this + day))
    history_row(sf, this, (S.CREATING, this + timedelta(hours=2)), (S.READY, this + day),
                approval=True)  # fmt: skip
    history_row(sf, this, (S.READY, this), (S.FAILED, NOW + timedelta(hours=1)))  # clock ahead
    history_row(sf, NOW + timedelta(minutes=5), user="U0BOB0002")  # created "later" by a peer


def month_from_everything(sf: SessionFactory, now: datetime) -> tuple[dict[str, float], ...]:
    """The month's spent and committed $ per person as the decision computed them before it
    read only the month's window: every deployment of the workspace, the events of each."""
    with sf() as session:
        rows = session.scalars(
            select(storage.Deployment)
            .where(storage.Deployment.team_id == TEAM)
            .order_by(storage.Deployment.id)
        )
        deployments = [storage.DeploymentRecord.from_model(row) for row in rows]
    start, end = pricing.month_window(now)
    report = pricing.cost_report(
        deployments, start=start, end=end, now=now,
        periods_for=lambda d: pricing.periods_from_events(d, storage.list_events(sf, d.id), now),
    )  # fmt: skip
    committed: dict[str, float] = {}
    for dep in deployments:
        if dep.status in storage.LIVE_STATUSES:
            more = pricing.committed_in_window(dep, now, end)
            if more > 0:
                committed[dep.user_id] = committed.get(dep.user_id, 0.0) + more
    return {line.user_id: line.dollars for line in report.per_user}, committed


def submit(sf: SessionFactory, key: str, admit: Callable[[storage.TeamLedger], None]) -> None:
    """A submission of ``TEAM`` at ``NOW`` decided by ``admit`` under the workspace lock."""
    storage.create_deployment(
        sf, request_key=key, team_id=TEAM, user_id="U0ALICE01", channel_id="C0DEPLOYS1",
        template_slug="x", template_name="X", offer_id=7, gpu_name="RTX 4090", num_gpus=1,
        gpu_ram_gb=24, dph_total=0.8, disk_gb=60, now=NOW, admit=admit,
    )  # fmt: skip


def test_the_month_read_from_its_window_is_the_month_read_from_the_whole_history(
    session_factory: SessionFactory,
) -> None:
    """The decision reads only the rows that can count this month and the history of those
    crossing its edges, yet finds the same spent and committed $ per person, to the cent and
    beyond, as reading every deployment and the events of each (the former way)."""
    sf = session_factory
    mixed_history(sf, copies=3)
    expected = month_from_everything(sf, NOW)
    assert expected[0]["U0ALICE01"] > 0 and expected[0]["U0BOB0002"] > 0  # the mix costs
    assert expected[1]["U0ALICE01"] > 0 and expected[1]["U0BOB0002"] > 0
    seen: list[storage.TeamLedger] = []

    def admit(ledger: storage.TeamLedger) -> None:
        month = month_of(ledger, NOW)
        assert (month.spent, month.committed) == expected
        seen.append(ledger)

    submit(sf, "window-check", admit)
    assert seen  # decided under the lock ...
    unlocked = month_of(storage.read_ledger(sf, TEAM), NOW)  # ... and shown without it
    assert (unlocked.spent, unlocked.committed) == month_from_everything(sf, NOW)
    # the rows that ended before the month are not even read
    window = storage.read_ledger(sf, TEAM).window(datetime(2026, 12, 1, tzinfo=UTC), NOW)
    ids = {d.id for d in window.deployments}
    everything = storage.list_for_team(sf, TEAM)
    assert ids == {
        d.id
        for d in everything
        if d.status not in storage.FINAL_STATUSES or d.last_state_change_at > window.start
    }
    assert len(ids) < len(everything)


@pytest.mark.parametrize("copies", [1, 20])
def test_a_budget_decision_runs_a_bounded_number_of_queries_under_the_lock(
    session_factory: SessionFactory, engine: Engine, copies: int
) -> None:
    """The workspace lock (SQLite: the whole file's write lock) is held for a number of
    statements that does not grow with the workspace's history: the rows that can count this
    month in one query, the status history of those that began earlier in one more. (Reading
    every row, then one event query per row begun before the month, took 12 SELECTs here with
    the history once, 50 with it twenty times; 2,003 with 2,000 live rows.)"""
    sf = session_factory
    mixed_history(sf, copies=copies)
    for i in range(copies * 2):  # live since two months ago: each crosses the month's start
        history_row(sf, NOW - timedelta(days=60, minutes=i), (S.READY, NOW - timedelta(days=59)))
    statements: list[str] = []

    def decide(ledger: storage.TeamLedger) -> None:
        month_of(ledger, NOW)

    def count(conn: object, cursor: object, sql: str, *args: object) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            statements.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        submit(sf, "bounded", decide)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # the duplicate check, (PostgreSQL: the lock,) the budgets, the rows, their history
    assert len(statements) <= 5, f"{len(statements)} SELECTs: {[s[-60:] for s in statements]}"
