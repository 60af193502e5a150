"""Storage for budgets, approvals and the audit log, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

import storage
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
