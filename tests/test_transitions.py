"""The deployment state machine: the table of :mod:`storage.transitions` as pure tests, and the
repository refusing what the table refuses (nothing stored, a warning logged) on SQLite and
PostgreSQL."""

from __future__ import annotations

import ast
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import (
    FINAL_STATUSES,
    DeploymentEvent,
    DeploymentStatus,
    IllegalTransition,
    NewApproval,
    repo,
)
from storage.transitions import (
    INITIAL_STATUSES,
    TRANSITIONS,
    allowed_next,
    check_initial,
    check_transition,
    is_allowed,
)

S = DeploymentStatus
SF = sessionmaker[Session]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]

#: The intended graph, written out once more: a change to the table must change this too.
INTENDED = {
    (S.CREATING, S.PROVISIONING),
    (S.CREATING, S.READY),  # the poller's first read finds the app up already
    (S.PROVISIONING, S.READY),
    (S.READY, S.STOPPED),
    (S.STOPPED, S.READY),
    *((s, S.DESTROYED) for s in (S.CREATING, S.PROVISIONING, S.READY, S.STOPPED)),
    *((s, S.FAILED) for s in set(S) - FINAL_STATUSES),
    (S.PENDING_APPROVAL, S.CREATING),
    (S.PENDING_APPROVAL, S.DENIED),
    (S.PENDING_APPROVAL, S.EXPIRED),
}

#: Changes that must stay refused, each a mistake someone could make.
ILLEGAL = [
    (S.DESTROYED, S.READY),  # putting a destroyed row back after a refused destroy
    (S.DESTROYED, S.STOPPED),
    (S.DESTROYED, S.PROVISIONING),
    (S.FAILED, S.READY),
    (S.FAILED, S.DESTROYED),
    (S.DENIED, S.CREATING),
    (S.EXPIRED, S.CREATING),
    (S.CREATING, S.STOPPED),
    (S.PROVISIONING, S.STOPPED),
    (S.PROVISIONING, S.CREATING),
    (S.READY, S.PROVISIONING),
    (S.READY, S.CREATING),
    (S.STOPPED, S.PROVISIONING),
    (S.PENDING_APPROVAL, S.READY),
    (S.PENDING_APPROVAL, S.DESTROYED),
    (S.CREATING, S.PENDING_APPROVAL),
    (S.CREATING, S.DENIED),
]


# --- the table ---------------------------------------------------------------------------------


def test_the_table_is_the_intended_graph() -> None:
    assert TRANSITIONS == INTENDED


@pytest.mark.parametrize(("old", "new"), sorted(TRANSITIONS))
def test_every_legal_pair_is_accepted(old: S, new: S) -> None:
    assert is_allowed(old, new) and is_allowed(old.value, new.value)
    check_transition(1, old, new)
    assert new in allowed_next(old)


@pytest.mark.parametrize(("old", "new"), ILLEGAL)
def test_illegal_pairs_are_refused(old: S, new: S, caplog: pytest.LogCaptureFixture) -> None:
    assert not is_allowed(old, new)
    with (
        caplog.at_level(logging.WARNING, logger="storage.transitions"),
        pytest.raises(IllegalTransition) as raised,
    ):
        check_transition(42, old, new)
    assert (raised.value.deployment_id, raised.value.from_status, raised.value.to_status) == (
        42,
        old.value,
        new.value,
    )
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert all(part in record.getMessage() for part in ("42", old.value, new.value))


def test_every_pair_outside_the_table_is_refused() -> None:
    for old in S:
        for new in S:
            assert is_allowed(old, new) == (old == new or (old, new) in TRANSITIONS)


def test_keeping_a_status_is_always_allowed() -> None:
    for status in S:
        assert is_allowed(status, status)
        check_transition(1, status, status)


def test_final_statuses_have_no_way_out_and_are_the_only_ones() -> None:
    for status in S:
        assert (allowed_next(status) == frozenset()) == (status in FINAL_STATUSES)
    assert not any(old in FINAL_STATUSES for old, _ in TRANSITIONS)


def _reachable(start: S) -> set[S]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in allowed_next(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_reachability_from_the_initial_statuses() -> None:
    assert {S.CREATING, S.PENDING_APPROVAL} == INITIAL_STATUSES
    assert _reachable(S.CREATING) == {
        S.CREATING,
        S.PROVISIONING,
        S.READY,
        S.STOPPED,
        S.DESTROYED,
        S.FAILED,
    }
    assert _reachable(S.PENDING_APPROVAL) == set(S)
    # No status that is not final is a dead end: every one can still end.
    for status in set(S) - FINAL_STATUSES:
        assert _reachable(status) & FINAL_STATUSES


def test_a_new_row_starts_creating_or_pending() -> None:
    check_initial(S.CREATING)
    check_initial("pending_approval")
    for status in set(S) - INITIAL_STATUSES:
        with pytest.raises(IllegalTransition):
            check_initial(status)


def test_unknown_statuses_raise_value_error() -> None:
    with pytest.raises(ValueError):
        is_allowed("creating", "runnning")
    with pytest.raises(ValueError):
        check_transition(1, "gone", "ready")


# --- every status write in storage goes through the check ----------------------------------------


def _status_writes() -> set[tuple[str, str]]:
    """``(module:function, how)`` of every place in storage/ that writes a status: an
    assignment to ``<x>.status``, a ``status=`` keyword, or ``Deployment.status`` as a key of
    ``.values({...})``."""
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "storage").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            where = f"{path.stem}:{function.name}"
            for node in ast.walk(function):
                if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        for t in ast.walk(target):
                            if isinstance(t, ast.Attribute) and t.attr == "status":
                                found.add((where, "assign"))
                if isinstance(node, ast.keyword) and node.arg == "status":
                    found.add((where, "keyword"))
                if isinstance(node, ast.Dict):
                    for key in node.keys:
                        if key is not None and ast.unparse(key) == "Deployment.status":
                            found.add((where, "values"))
    return found


def test_status_is_written_only_where_the_table_is_checked() -> None:
    assert _status_writes() == {
        ("repo:_change_status", "assign"),  # check_transition first
        ("repo:create_deployment", "keyword"),  # check_initial first
    }


# --- the repository ----------------------------------------------------------------------------


def _new(sf: SF, key: str = "view-1", **overrides: Any) -> storage.DeploymentRecord:
    fields: dict[str, Any] = {
        "request_key": key,
        "team_id": "T1",
        "user_id": "U1",
        "channel_id": "C1",
        "template_slug": "jupyter-lab",
        "template_name": "JupyterLab",
        "offer_id": 4242,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "gpu_ram_gb": 24.0,
        "dph_total": 0.4,
        "disk_gb": 32.0,
        "now": T0,
    }
    fields.update(overrides)
    record, created = repo.create_deployment(sf, **fields)
    assert created
    return record


def _walk(sf: SF, dep_id: int, *steps: S) -> storage.DeploymentRecord:
    at = T0
    for step in steps:
        at += timedelta(minutes=5)
        assert repo.update_status(sf, dep_id, expected_status=None, new_status=step, now=at)
    record = repo.get_deployment(sf, dep_id)
    assert record is not None
    return record


def _event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DeploymentEvent)).scalar_one())


def test_a_destroyed_row_is_never_put_back(
    session_factory: SF, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    sf = session_factory
    dep = _new(sf)
    destroyed = _walk(sf, dep.id, S.PROVISIONING, S.READY, S.DESTROYED)
    events_before = _event_count(engine)
    with (
        caplog.at_level(logging.WARNING, logger="storage.transitions"),
        pytest.raises(IllegalTransition),
    ):
        repo.update_status(
            sf,
            dep.id,
            expected_status=S.DESTROYED,
            new_status=S.READY,
            now=T0 + timedelta(hours=1),
            reason=None,
            status_msg="put back",
        )
    assert repo.get_deployment(sf, dep.id) == destroyed  # nothing stored, not even the fields
    assert _event_count(engine) == events_before
    [warning] = [r for r in caplog.records if r.name == "storage.transitions"]
    assert warning.levelno == logging.WARNING
    assert f"deployment {dep.id}" in warning.getMessage()
    assert "destroyed -> ready" in warning.getMessage()


def test_any_status_expected_is_checked_too(session_factory: SF, engine: Engine) -> None:
    sf = session_factory
    failed_id = _new(sf).id
    assert repo.mark_failed(sf, failed_id, "boom", now=T0)
    before = repo.get_deployment(sf, failed_id)
    events_before = _event_count(engine)
    for target in (S.READY, S.STOPPED, S.DESTROYED, S.CREATING):
        with pytest.raises(IllegalTransition):
            repo.update_status(sf, failed_id, expected_status=None, new_status=target)
    assert repo.get_deployment(sf, failed_id) == before
    assert _event_count(engine) == events_before
    creating = _new(sf, "view-2")
    with pytest.raises(IllegalTransition):  # a stop of a row that never ran
        repo.update_status(sf, creating.id, expected_status=S.CREATING, new_status=S.STOPPED)
    assert repo.get_deployment(sf, creating.id) == creating


def test_legal_changes_and_same_status_updates_still_pass(session_factory: SF) -> None:
    sf = session_factory
    dep = _new(sf)
    _walk(sf, dep.id, S.PROVISIONING, S.READY, S.STOPPED)
    # The undo of a stop Vast.ai refused stays legal.
    assert repo.update_status(sf, dep.id, expected_status=S.STOPPED, new_status=S.READY)
    _walk(sf, dep.id, S.DESTROYED)
    # A final row keeps its status while other columns change.
    assert repo.update_status(
        sf, dep.id, expected_status=S.DESTROYED, new_status=S.DESTROYED, status_msg="gone"
    )
    after = repo.get_deployment(sf, dep.id)
    assert after is not None and (after.status, after.status_msg) == (S.DESTROYED, "gone")
    # A stale expected status is still just False, before any check.
    assert not repo.update_status(sf, dep.id, expected_status=S.READY, new_status=S.STOPPED)
    # mark_failed on a final row is still a quiet False.
    assert not repo.mark_failed(sf, dep.id, "late")


def test_approval_outcomes_follow_the_table(session_factory: SF) -> None:
    sf = session_factory
    approval = NewApproval(
        approvers=frozenset({"UADMIN"}), reasons=("over budget",), expires_at=T0 + timedelta(1)
    )
    approved = _new(sf, "a", approval=approval)
    denied = _new(sf, "d", approval=approval)
    assert approved.status == denied.status == S.PENDING_APPROVAL
    now = T0 + timedelta(minutes=1)
    record = storage.decide_approval(sf, approved.id, storage.APPROVED, actor="UADMIN", now=now)
    assert record is not None and record.status == S.CREATING
    record = storage.decide_approval(sf, denied.id, storage.DENIED, actor="UADMIN", now=now)
    assert record is not None and record.status == S.DENIED
    with pytest.raises(IllegalTransition):
        repo.update_status(sf, denied.id, expected_status=S.DENIED, new_status=S.CREATING)
