"""Workspaces in the database (storage.workspaces), on SQLite and PostgreSQL: installs and
uninstalls, the Vast.ai key (ciphertext only, audited as "key ending …"), per-workspace settings
and the live real deployments that guard a change of Vast.ai account."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

import storage
from storage import DeploymentStatus, SessionFactory
from tests.factories import new_deployment

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TEAM_A, TEAM_B = "T0AAAAAAA", "T0BBBBBBB"
ADMIN = "U0ADMIN01"


def _deploy(
    sf: SessionFactory, key: str, team_id: str, *, simulated: bool = False, status: str = ""
) -> int:
    dep = new_deployment(
        sf,
        key=key,
        team_id=team_id,
        offer_id=4242,
        dph_total=0.5,
        disk_gb=60.0,
        simulated=simulated,
        now=T0,
    )
    if status:
        assert storage.update_status(
            sf,
            dep.id,
            expected_status=DeploymentStatus.CREATING,
            new_status=DeploymentStatus(status),
            now=T0 + timedelta(minutes=1),
        )
    return dep.id


def _audit(sf: SessionFactory, team_id: str) -> list[tuple[str, str, str | None]]:
    return [(a.actor, a.action, a.detail) for a in reversed(storage.list_audit(sf, team_id))]


def test_install_uninstall_and_reinstall_keep_the_row(session_factory: SessionFactory) -> None:
    sf = session_factory
    assert storage.get_workspace(sf, TEAM_A) is None
    assert storage.record_uninstall(sf, TEAM_A, now=T0) is False  # unknown

    storage.record_install(sf, TEAM_A, enterprise_id="E0GRID001", team_name="Acme", now=T0)
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None
    assert (ws.team_id, ws.enterprise_id, ws.team_name) == (TEAM_A, "E0GRID001", "Acme")
    assert (ws.installed_at, ws.uninstalled_at, ws.updated_at) == (T0, None, T0)
    assert ws.settings == {} and not ws.has_vast_key and ws.is_installed

    later = T0 + timedelta(days=1)
    assert storage.record_uninstall(sf, TEAM_A, now=later) is True
    assert storage.record_uninstall(sf, TEAM_A, now=later) is False  # already
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None and ws.uninstalled_at == later and not ws.is_installed
    assert ws.installed_at == T0 and ws.team_name == "Acme"

    # A reinstall clears the uninstall; a None name keeps the one known.
    again = later + timedelta(hours=1)
    storage.record_install(sf, TEAM_A, enterprise_id=None, team_name=None, now=again)
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None
    assert (ws.installed_at, ws.uninstalled_at, ws.team_name, ws.enterprise_id) == (
        again,
        None,
        "Acme",
        None,
    )
    assert _audit(sf, TEAM_A) == [
        ("system", "installed", "Acme"),
        ("system", "uninstalled", None),
        ("system", "installed", None),
    ]


def test_list_workspaces_installed_only(session_factory: SessionFactory) -> None:
    sf = session_factory
    storage.record_install(sf, TEAM_B, enterprise_id=None, team_name="Beta", now=T0)
    storage.record_install(sf, TEAM_A, enterprise_id=None, team_name="Acme", now=T0)
    storage.save_workspace_settings(sf, "T0CCCCCCC", {}, actor=ADMIN, now=T0)  # never installed
    storage.record_uninstall(sf, TEAM_B, now=T0)
    assert [w.team_id for w in storage.list_workspaces(sf)] == [TEAM_A, TEAM_B, "T0CCCCCCC"]
    assert [w.team_id for w in storage.list_workspaces(sf, installed_only=True)] == [
        TEAM_A,
        "T0CCCCCCC",
    ]


def test_save_vast_key_stores_ciphertext_and_audits_only_the_last_characters(
    session_factory: SessionFactory,
) -> None:
    sf = session_factory
    storage.save_vast_key(
        sf,
        TEAM_A,
        ciphertext="gAAAA-cipher-1",
        last4="a1b2",
        vast_user_id="1001",
        actor=ADMIN,
        now=T0,
    )
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None and ws.has_vast_key
    assert (ws.vast_key_ciphertext, ws.vast_key_last4, ws.vast_user_id) == (
        "gAAAA-cipher-1",
        "a1b2",
        "1001",
    )
    assert (ws.vast_key_set_by, ws.vast_key_set_at, ws.installed_at) == (ADMIN, T0, None)
    assert "gAAAA-cipher-1" not in repr(ws)

    later = T0 + timedelta(hours=1)
    storage.save_vast_key(
        sf,
        TEAM_A,
        ciphertext="gAAAA-cipher-2",
        last4="c3d4",
        vast_user_id="1001",
        actor="U0B",
        now=later,
    )
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None
    assert (ws.vast_key_ciphertext, ws.vast_key_last4, ws.vast_key_set_by, ws.updated_at) == (
        "gAAAA-cipher-2",
        "c3d4",
        "U0B",
        later,
    )
    storage.save_vast_key(
        sf, TEAM_A, ciphertext=None, last4=None, vast_user_id=None, actor=ADMIN, now=later
    )
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None and not ws.has_vast_key
    assert (ws.vast_key_last4, ws.vast_user_id) == (None, None)
    assert _audit(sf, TEAM_A) == [
        (ADMIN, "vast_key_set", "key ending …a1b2"),
        ("U0B", "vast_key_set", "key ending …c3d4"),
        (ADMIN, "vast_key_removed", None),
    ]
    # Nothing of the ciphertexts in the audit trail.
    with sf() as session:
        details = session.scalars(sa.select(storage.TeamEvent.detail)).all()
    assert not any("cipher" in (d or "") for d in details)


def test_settings_round_trip_and_the_event_names_changed_fields(
    session_factory: SessionFactory,
) -> None:
    sf = session_factory
    storage.record_install(sf, TEAM_A, enterprise_id=None, team_name="Acme", now=T0)
    first = {"default_lifetime_hours": 4.0, "approvers": ["U0BOSS01"], "digest_channel": None}
    storage.save_workspace_settings(sf, TEAM_A, first, actor=ADMIN, now=T0)
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None and ws.settings == first
    assert (ws.team_name, ws.installed_at) == ("Acme", T0)  # the rest of the row is kept

    second = {"default_lifetime_hours": 4.0, "approvers": ["U0BOSS02"], "on_expiry": "destroy"}
    storage.save_workspace_settings(sf, TEAM_A, second, actor="U0B", now=T0)
    storage.save_workspace_settings(sf, TEAM_A, second, actor="U0B", now=T0)  # no change
    ws = storage.get_workspace(sf, TEAM_A)
    assert ws is not None and ws.settings == second
    assert _audit(sf, TEAM_A)[1:] == [
        (
            ADMIN,
            "settings_changed",
            "settings changed: approvers, default_lifetime_hours, digest_channel",
        ),
        ("U0B", "settings_changed", "settings changed: approvers, digest_channel, on_expiry"),
    ]
    # Stored as a JSON object; the record's dict is a copy.
    with sf() as session:
        raw = session.scalar(sa.select(storage.Workspace.settings_json))
    assert json.loads(raw or "") == second
    ws.settings["on_expiry"] = "stop"
    again = storage.get_workspace(sf, TEAM_A)
    assert again is not None and again.settings["on_expiry"] == "destroy"

    with pytest.raises(TypeError):
        storage.save_workspace_settings(sf, TEAM_A, {"x": object()}, actor=ADMIN, now=T0)


def test_count_live_real_deployments(session_factory: SessionFactory) -> None:
    sf = session_factory
    _deploy(sf, "k1", TEAM_A)  # creating
    _deploy(sf, "k2", TEAM_A, status="provisioning")
    _deploy(sf, "k3", TEAM_A, status="failed")
    _deploy(sf, "k4", TEAM_A, simulated=True)
    _deploy(sf, "k5", TEAM_B)
    assert storage.count_live_real_deployments(sf, TEAM_A) == 2
    assert storage.count_live_real_deployments(sf, TEAM_B) == 1
    assert storage.count_live_real_deployments(sf, "T0NOBODY1") == 0


def test_concurrent_first_writes_make_one_row(session_factory: SessionFactory) -> None:
    """Eight threads saving settings and installing a new workspace at once: one row, every
    write applied (the primary key decides; a loser runs its step again on the row)."""
    sf = session_factory
    barrier = threading.Barrier(8, timeout=30)

    def write(i: int) -> None:
        barrier.wait()
        if i % 2:
            storage.record_install(sf, TEAM_A, enterprise_id=None, team_name="Acme", now=T0)
        else:
            storage.save_workspace_settings(sf, TEAM_A, {"n": 1}, actor=ADMIN, now=T0)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(8)))
    [ws] = storage.list_workspaces(sf)
    assert (ws.team_name, ws.settings, ws.installed_at) == ("Acme", {"n": 1}, T0)
    actions = [action for _, action, _ in _audit(sf, TEAM_A)]
    assert actions.count("installed") == 4 and actions.count("settings_changed") == 1


def test_put_state_if_absent_writes_once(session_factory: SessionFactory) -> None:
    sf = session_factory
    assert storage.put_state_if_absent(sf, "encryption_canary", "first", T0)
    assert not storage.put_state_if_absent(sf, "encryption_canary", "second", T0)
    assert storage.get_state(sf, "encryption_canary") == ("first", T0)
