"""Data retention (storage/retention.py, bot/services/housekeeping.py): rows past
``RETENTION_DAYS`` are deleted in bounded batches, never a row whose instance may still exist,
and a workspace that uninstalled is purged after ``UNINSTALL_GRACE_DAYS`` once nothing of it
bills."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from storage import record_install, record_uninstall, retention
from storage.installations_version import read_installations_version
from storage.models import (
    Approval,
    Budget,
    Claim,
    Deployment,
    DeploymentCollaborator,
    DeploymentEvent,
    DeploymentStatus,
    InstanceKey,
    SshKey,
    TeamEvent,
    Workspace,
    slack_bots,
    slack_installations,
)
from storage.types import utcnow

S = DeploymentStatus
NOW = utcnow()
OLD = NOW - timedelta(days=500)
YOUNG = NOW - timedelta(days=100)
_ids = iter(range(1, 1_000_000))


def _dep(
    sf: Any,
    *,
    status: S,
    ended: datetime,
    team: str = "T1",
    pending_act: bool = False,
    extras: bool = True,
) -> int:
    """A deployment whose status was entered at ``ended``, with an event, an approval, a
    collaborator and an instance key (the rows that must go with it)."""
    n = next(_ids)
    with sf.begin() as session:
        dep = Deployment(
            team_id=team,
            user_id="U1",
            channel_id="C1",
            template_slug="jupyter",
            template_name="Jupyter",
            offer_id=n,
            instance_id=n,
            gpu_name="RTX 4090",
            num_gpus=1,
            gpu_ram_gb=24.0,
            dph_total=0.5,
            disk_gb=20.0,
            status=status,
            request_key=f"rk-{n}",
            created_at=ended - timedelta(days=1),
            updated_at=ended,
            last_state_change_at=ended,
            desired_state="destroyed" if pending_act else None,
            desired_next_try_at=ended if pending_act else None,
        )
        session.add(dep)
        session.flush()
        if extras:
            session.add(
                DeploymentEvent(deployment_id=dep.id, at=ended, actor="U1", action="requested")
            )
            session.add(
                Approval(
                    deployment_id=dep.id,
                    team_id=team,
                    approvers="U9",
                    reasons="price",
                    requested_at=ended,
                    expires_at=ended,
                    decision="approved" if status != S.PENDING_APPROVAL else None,
                    decided_at=ended if status != S.PENDING_APPROVAL else None,
                )
            )
            session.add(
                DeploymentCollaborator(
                    deployment_id=dep.id, user_id="U2", added_by="U1", added_at=ended
                )
            )
            session.add(
                InstanceKey(
                    deployment_id=dep.id,
                    user_id="U1",
                    fingerprint=f"SHA256:{n}",
                    public_key="ssh-ed25519 AAAA",
                    state="attached",
                    updated_at=ended,
                )
            )
        return int(dep.id)


def _count(sf: Any, model: Any, *where: Any) -> int:
    with sf.begin() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _ids_of(sf: Any) -> set[int]:
    with sf.begin() as session:
        return set(session.scalars(select(Deployment.id)))


def test_old_ended_deployments_go_in_bounded_batches_with_their_rows(session_factory: Any) -> None:
    sf = session_factory
    finals = [S.DESTROYED, S.FAILED, S.DENIED, S.EXPIRED]
    old = [_dep(sf, status=finals[n % 4], ended=OLD) for n in range(25)]
    young = [_dep(sf, status=S.DESTROYED, ended=YOUNG) for _ in range(3)]
    # However old, a row whose instance may exist or may still be rented is never deleted.
    live = [_dep(sf, status=status, ended=OLD) for status in (S.CREATING, S.PROVISIONING)]
    live += [_dep(sf, status=status, ended=OLD) for status in (S.READY, S.STOPPED)]
    live.append(_dep(sf, status=S.PENDING_APPROVAL, ended=OLD))
    live.append(_dep(sf, status=S.FAILED, ended=OLD, pending_act=True))  # destroy unconfirmed
    before = NOW - timedelta(days=400)

    assert retention.delete_old_deployments(sf, before=before, batch_rows=10, max_batches=2) == 20
    assert len(_ids_of(sf) & set(old)) == 5  # the bound: the rest waits for the next run
    assert retention.delete_old_deployments(sf, before=before, batch_rows=10, max_batches=2) == 5
    assert retention.delete_old_deployments(sf, before=before, batch_rows=10, max_batches=2) == 0

    assert _ids_of(sf) == set(young) | set(live)
    kept = len(young) + len(live)
    for model in (DeploymentEvent, DeploymentCollaborator, InstanceKey, Approval):
        assert _count(sf, model) == kept, model  # the cascade took the deleted rows' own


def test_old_approvals_team_events_and_claims_go(session_factory: Any) -> None:
    sf = session_factory
    running = _dep(sf, status=S.READY, ended=OLD)  # approved 500 days ago, still running
    waiting = _dep(sf, status=S.PENDING_APPROVAL, ended=OLD)  # never decided: kept
    recent = _dep(sf, status=S.READY, ended=YOUNG)
    with sf.begin() as session:
        for n, at in enumerate([OLD] * 7 + [YOUNG] * 2):
            session.add(TeamEvent(team_id="T1", at=at, actor="U1", action="budget_set"))
            session.add(Claim(key=f"digest:{n}", claimed_at=at))
    before = NOW - timedelta(days=400)

    assert retention.delete_old_approvals(sf, before=before, batch_rows=2, max_batches=9) == 1
    with sf.begin() as session:
        assert set(session.scalars(select(Approval.deployment_id))) == {waiting, recent}
    assert retention.delete_old_team_events(sf, before=before, batch_rows=3, max_batches=2) == 6
    assert retention.delete_old_team_events(sf, before=before, batch_rows=3, max_batches=2) == 1
    assert _count(sf, TeamEvent) == 2
    assert retention.delete_old_claims(sf, before=before, batch_rows=3, max_batches=9) == 7
    assert _count(sf, Claim) == 2
    assert running in _ids_of(sf)  # the deployment itself is live: kept


def _workspace(sf: Any, team: str, *, uninstalled: datetime | None) -> None:
    """An installed workspace with a budget, an SSH key, and its slack_sdk rows; uninstalled
    at ``uninstalled`` when given."""
    installed = (uninstalled or NOW) - timedelta(days=60)
    record_install(sf, team, enterprise_id=None, team_name=team, now=installed)
    with sf.begin() as session:
        session.add(Budget(team_id=team, subject="workspace", monthly_dollars=100, set_by="U1",
                           set_at=installed))  # fmt: skip
        session.add(SshKey(team_id=team, user_id="U1", key_type="ssh-ed25519",
                           public_key="ssh-ed25519 AAAA", fingerprint=f"SHA256:{team}",
                           created_at=installed))  # fmt: skip
        naive = installed.replace(tzinfo=None)
        row = {"client_id": "1.2", "app_id": "A1", "team_id": team, "bot_token": "enc",
               "is_enterprise_install": False, "installed_at": naive}  # fmt: skip
        session.execute(insert(slack_bots), [row])
        session.execute(insert(slack_installations), [row | {"user_id": "U1"}])
    if uninstalled is not None:
        record_uninstall(sf, team, now=uninstalled)


def _rows_of(sf: Any, team: str) -> dict[str, int]:
    return {
        "workspaces": _count(sf, Workspace, Workspace.team_id == team),
        "deployments": _count(sf, Deployment, Deployment.team_id == team),
        "budgets": _count(sf, Budget, Budget.team_id == team),
        "ssh_keys": _count(sf, SshKey, SshKey.team_id == team),
        "team_events": _count(sf, TeamEvent, TeamEvent.team_id == team),
        "slack_bots": _count(sf, slack_bots, slack_bots.c.team_id == team),
        "slack_installations": _count(
            sf, slack_installations, slack_installations.c.team_id == team
        ),
    }


def _keeper(sf: Any, clock: Any) -> Any:
    from bot.services.housekeeping import Housekeeping

    return Housekeeping(
        session_factory=sf,
        clock=clock,
        retention_days=400,
        uninstall_grace_days=30,
        retention_batch_rows=2,
        retention_max_batches=50,
    )


def test_uninstalled_workspace_is_purged_only_once_nothing_bills(session_factory: Any) -> None:
    from tests.fixtures.slack import MovableClock

    sf = session_factory
    clock = MovableClock(NOW)
    gone = NOW - timedelta(days=40)
    _workspace(sf, "TGONE", uninstalled=gone)
    running = _dep(sf, status=S.READY, ended=gone - timedelta(days=5), team="TGONE")
    for _ in range(3):
        _dep(sf, status=S.DESTROYED, ended=gone - timedelta(days=2), team="TGONE")
    _workspace(sf, "TRECENT", uninstalled=NOW - timedelta(days=10))  # within the grace
    _dep(sf, status=S.DESTROYED, ended=NOW - timedelta(days=50), team="TRECENT")
    _workspace(sf, "TSTAYS", uninstalled=None)  # installed: never purged
    _dep(sf, status=S.DESTROYED, ended=NOW - timedelta(days=50), team="TSTAYS")
    keeper = _keeper(sf, clock)
    whole = {
        "workspaces": 1,
        "deployments": 4,
        "budgets": 1,
        "ssh_keys": 1,
        "team_events": 2,  # installed, uninstalled
        "slack_bots": 1,
        "slack_installations": 1,
    }

    # Its instance is still running (and billing): nothing of the workspace goes.
    assert keeper.run_retention().purged == []
    assert _rows_of(sf, "TGONE") == whole

    # It ended within the grace: the grace runs from the last end too (strays are sought).
    with sf.begin() as session:
        row = session.get(Deployment, running)
        row.status, row.last_state_change_at = S.DESTROYED, NOW - timedelta(days=29)
    assert keeper.run_retention().purged == []
    assert _rows_of(sf, "TGONE") == whole

    clock.advance(days=2)
    engine = sf.kw["bind"]
    version_before = read_installations_version(engine)
    assert keeper.run_retention().purged == ["TGONE"]
    assert set(_rows_of(sf, "TGONE").values()) == {0}
    # Its Slack installation went: every process's installation cache must see it at once.
    assert read_installations_version(engine) != version_before
    for team, deployments in (("TRECENT", 1), ("TSTAYS", 1)):
        rows = _rows_of(sf, team)
        assert rows["workspaces"] == 1 and rows["deployments"] == deployments, team
        assert rows["slack_bots"] == 1 and rows["budgets"] == 1, team


def test_purge_keeps_a_reinstall_and_a_new_deployment(session_factory: Any) -> None:
    sf = session_factory
    gone = NOW - timedelta(days=40)
    grace = NOW - timedelta(days=30)
    _workspace(sf, "TBACK", uninstalled=gone)
    _dep(sf, status=S.DESTROYED, ended=gone - timedelta(days=1), team="TBACK")
    # A reinstall's new slack_sdk row, written before the bot records the install.
    with sf.begin() as session:
        session.execute(
            insert(slack_bots),
            [{"client_id": "1.2", "app_id": "A1", "team_id": "TBACK", "bot_token": "new",
              "is_enterprise_install": False, "installed_at": NOW.replace(tzinfo=None)}],
        )  # fmt: skip
    assert retention.purgeable_workspaces(sf, uninstalled_before=grace, ended_before=grace) == [
        "TBACK"
    ]
    # A deployment made meanwhile (it is live): the purge stops, nothing of it goes.
    fresh = _dep(sf, status=S.CREATING, ended=NOW, team="TBACK")
    report = retention.purge_workspace(sf, "TBACK", uninstalled_before=grace, ended_before=grace)
    assert not report.done and report.deployments == 0
    assert _rows_of(sf, "TBACK")["workspaces"] == 1 and fresh in _ids_of(sf)
    with sf.begin() as session:
        session.get(Deployment, fresh).status = S.FAILED
        session.get(Deployment, fresh).last_state_change_at = gone
    report = retention.purge_workspace(sf, "TBACK", uninstalled_before=grace, ended_before=grace)
    assert report.done and report.deployments == 2
    with sf.begin() as session:
        assert list(session.scalars(select(slack_bots.c.bot_token))) == ["new"]


def test_housekeeping_applies_retention_after_the_holders_pass(session_factory: Any) -> None:
    from bot.services.poller import TickReport
    from tests.fixtures.slack import MovableClock

    sf = session_factory
    clock = MovableClock(NOW)
    old = _dep(sf, status=S.DESTROYED, ended=OLD)
    keeper = _keeper(sf, clock)
    keeper.after_pass(TickReport(ran=False), True)  # a standby: the lease holder does it
    assert old in _ids_of(sf)
    keeper.after_pass(TickReport(), True)
    assert old not in _ids_of(sf)
    older = _dep(sf, status=S.DESTROYED, ended=OLD)
    clock.advance(minutes=2)
    keeper.after_pass(TickReport(), True)  # retention runs at most hourly
    assert older in _ids_of(sf)
    clock.advance(hours=1)
    keeper.after_pass(TickReport(), True)
    assert older not in _ids_of(sf)


def test_housekeeping_never_raises(session_factory: Any, caplog: Any) -> None:
    from bot.services.poller import TickReport
    from tests.fixtures.slack import MovableClock

    def broken() -> Any:
        raise RuntimeError("database gone")

    keeper = _keeper(broken, MovableClock(NOW))
    keeper.after_pass(TickReport(), True)
    assert "data retention failed" in caplog.text


@pytest.mark.parametrize("days", ["30", "0", "-1"])
def test_retention_days_below_a_month_are_refused(
    monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    from bot.config import ConfigError, load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("RETENTION_DAYS", days)
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        load_settings()


def test_retention_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    settings = load_settings()
    assert (settings.retention_days, settings.uninstall_grace_days) == (400, 30)


def test_the_running_bot_applies_retention_after_the_pollers_pass(bot: Any) -> None:
    """Wired in: RETENTION_DAYS' default (400) applies on the lease holder's pass."""
    sf = bot.services.session_factory
    old = _dep(sf, status=S.DESTROYED, ended=utcnow() - timedelta(days=401))
    kept = _dep(sf, status=S.DESTROYED, ended=utcnow() - timedelta(days=399))
    bot.services.poller.tick()
    assert old not in _ids_of(sf) and kept in _ids_of(sf)
