"""Cost arithmetic (bot/pricing.py) with fixed clocks: rows and events come from the
real storage layer, every time is explicit."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

import storage
from bot import pricing as costs
from storage import DeploymentRecord, DeploymentStatus, EventRecord, SessionFactory

_keys = itertools.count(1)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def make(
    sf: SessionFactory,
    created: datetime,
    steps: list[tuple[str, datetime]],
    *,
    user: str = "U0ALICE01",
    dph: float = 0.5,
    disk: float = 60,
) -> DeploymentRecord:
    """A deployment created at ``created`` that moves through ``steps`` [(status, at), ...]."""
    dep, _ = storage.create_deployment(
        sf,
        request_key=f"cost-{next(_keys)}",
        team_id="T0GPU0001",
        user_id=user,
        channel_id="C0DEPLOYS1",
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=dph,
        disk_gb=disk,
        now=created,
    )
    status = "creating"
    for new_status, at in steps:
        if new_status == "failed":
            assert storage.mark_failed(sf, dep.id, "boom", now=at)
        else:
            assert storage.update_status(
                sf, dep.id, expected_status=status, new_status=new_status, now=at
            )
        status = new_status
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


def periods(sf: SessionFactory, dep: DeploymentRecord, now: datetime) -> list[costs.Period]:
    return costs.periods_from_events(dep, storage.list_events(sf, dep.id), now)


def test_storage_estimate_uses_the_documented_price() -> None:
    # 60 GB × $0.15/GB/month ÷ 720 h = $0.0125/h
    assert costs.storage_dph(60) == pytest.approx(0.0125)
    assert costs.storage_dph(0) == 0.0
    assert costs.storage_dph(10_000, dph_total=0.05) == 0.05  # never above the full price


def test_cost_so_far_counts_ready_hours_and_storage_while_stopped(
    session_factory: SessionFactory,
) -> None:
    t0 = _t("2025-06-10 10:00")
    dep = make(
        session_factory,
        t0,
        [
            ("provisioning", t0 + timedelta(minutes=5)),
            ("ready", t0 + timedelta(minutes=10)),
            ("stopped", t0 + timedelta(hours=2, minutes=10)),  # 2 h ready
            ("ready", t0 + timedelta(hours=5, minutes=10)),  # 3 h stopped
        ],
        dph=0.5,
        disk=60,
    )
    now = t0 + timedelta(hours=6, minutes=10)  # 1 h ready in the open period
    expected = 3 * 0.5 + 3 * 0.0125
    assert costs.cost_so_far(dep, now) == pytest.approx(expected)
    # The event log gives the same figure when the window holds the whole life.
    window = costs.cost_in_window(dep, periods(session_factory, dep, now), t0, now)
    assert window == pytest.approx(expected)
    assert costs.current_rate(dep) == 0.5


def test_provisioning_costs_nothing_and_a_stopped_deployment_costs_storage_only(
    session_factory: SessionFactory,
) -> None:
    t0 = _t("2025-06-10 10:00")
    waiting = make(session_factory, t0, [("provisioning", t0)])
    assert costs.cost_so_far(waiting, t0 + timedelta(hours=5)) == 0.0
    stopped = make(
        session_factory,
        t0,
        [("provisioning", t0), ("ready", t0), ("stopped", t0 + timedelta(hours=1))],
        dph=2.0,
        disk=720,  # 720 GB → $0.15/h of storage
    )
    later = t0 + timedelta(hours=11)
    assert costs.cost_so_far(stopped, later) == pytest.approx(2.0 + 10 * 0.15)
    assert costs.current_rate(stopped) == pytest.approx(0.15)


def test_ended_deployments_stop_costing(session_factory: SessionFactory) -> None:
    t0 = _t("2025-06-10 10:00")
    failed = make(
        session_factory,
        t0,
        [("provisioning", t0), ("ready", t0), ("failed", t0 + timedelta(minutes=30))],
        dph=1.0,
    )
    assert costs.cost_so_far(failed, t0 + timedelta(days=3)) == pytest.approx(0.5)
    assert costs.ended_at(failed) == t0 + timedelta(minutes=30)
    assert costs.current_rate(failed) == 0.0
    spans = periods(session_factory, failed, t0 + timedelta(days=3))
    assert [(p.status, p.seconds) for p in spans] == [("ready", 1800.0)]


def _event(
    at: datetime,
    action: str,
    old: DeploymentStatus | None = None,
    new: DeploymentStatus | None = None,
    detail: str | None = None,
) -> EventRecord:
    """An event as :func:`storage.list_events` returns it, built by hand."""
    return EventRecord(
        id=0,
        deployment_id=1,
        at=at,
        actor="system",
        action=action,
        detail=detail,
        from_status=old,
        to_status=new,
    )


def test_periods_come_from_the_status_columns_not_the_detail_text(
    session_factory: SessionFactory,
) -> None:
    t0 = _t("2025-06-10 10:00")
    dep = make(session_factory, t0, [])
    s = DeploymentStatus
    events = [
        # Out of order on purpose: periods follow the events' times.
        _event(t0 + timedelta(hours=1), "status", s.PROVISIONING, s.READY, detail="nonsense"),
        _event(t0 + timedelta(minutes=30), "status", s.CREATING, s.PROVISIONING),
        # Looks like a status change in prose only: ignored.
        _event(t0 + timedelta(hours=2), "stop", detail="ready -> stopped"),
        _event(t0 + timedelta(hours=2), "status", detail="ready -> stopped"),
        _event(t0 + timedelta(hours=3), "status", s.READY, s.STOPPED),
    ]
    spans = costs.periods_from_events(dep, events, t0 + timedelta(hours=4))
    assert [(p.status, p.seconds) for p in spans] == [
        ("creating", 1800.0),
        ("provisioning", 1800.0),
        ("ready", 7200.0),
        ("stopped", 3600.0),
    ]
    # A deployment that started elsewhere (e.g. waiting for approval): the first event's
    # from_status names the first period.
    waited = [
        _event(t0 + timedelta(minutes=10), "status", s.PENDING_APPROVAL, s.CREATING),
        _event(t0 + timedelta(minutes=20), "status", s.CREATING, s.DENIED),
    ]
    spans = costs.periods_from_events(dep, waited, t0 + timedelta(hours=4))
    assert [(p.status, p.seconds) for p in spans] == [
        ("pending_approval", 600.0),
        ("creating", 600.0),
    ]  # denied is final: nothing after it


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        ("2025-06-15 12:34", "2025-06-01 00:00", "2025-07-01 00:00"),
        ("2025-12-31 23:59", "2025-12-01 00:00", "2026-01-01 00:00"),
        ("2025-03-01 00:00", "2025-03-01 00:00", "2025-04-01 00:00"),
    ],
)
def test_month_window(now: str, start: str, end: str) -> None:
    assert costs.month_window(_t(now)) == (_t(start), _t(end))


def test_month_report_prorates_across_the_month_boundary(session_factory: SessionFactory) -> None:
    sf = session_factory
    # Alice: ready 22:30 May 31 → stopped 01:30 June 1 (1.5 h in each month), then 2 h stopped
    # in June, then destroyed. $1/h, 72 GB → $0.015/h storage.
    straddler = make(
        sf,
        _t("2025-05-31 22:00"),
        [
            ("provisioning", _t("2025-05-31 22:10")),
            ("ready", _t("2025-05-31 22:30")),
            ("stopped", _t("2025-06-01 01:30")),
            ("destroyed", _t("2025-06-01 03:30")),
        ],
        dph=1.0,
        disk=72,
    )
    # Bob: all in June, still ready: 2 h × $0.30.
    make(
        sf,
        _t("2025-06-02 10:00"),
        [("provisioning", _t("2025-06-02 10:00")), ("ready", _t("2025-06-02 10:00"))],
        user="U0BOB0002",
        dph=0.3,
    )
    # Ended in May: not part of June at all.
    make(
        sf,
        _t("2025-05-10 10:00"),
        [
            ("provisioning", _t("2025-05-10 10:00")),
            ("ready", _t("2025-05-10 10:00")),
            ("destroyed", _t("2025-05-10 20:00")),
        ],
        dph=5.0,
    )
    now = _t("2025-06-02 12:00")
    asked: list[int] = []

    def periods_for(dep: DeploymentRecord) -> list[costs.Period]:
        asked.append(dep.id)
        return periods(sf, dep, now)

    start, end = costs.month_window(now)
    deps = storage.list_for_team(sf, "T0GPU0001")
    june = costs.cost_report(deps, start=start, end=end, now=now, periods_for=periods_for)
    assert june.deployments == 2
    assert june.for_user("U0ALICE01").dollars == pytest.approx(1.5 + 2 * 0.015)
    assert june.for_user("U0BOB0002").dollars == pytest.approx(0.6)
    assert june.total == pytest.approx(1.53 + 0.6)
    assert [line.user_id for line in june.per_user] == ["U0ALICE01", "U0BOB0002"]
    assert asked == [straddler.id]  # only the deployment that began in May needs its events

    may_start, may_end = costs.month_window(_t("2025-05-20 00:00"))
    may = costs.cost_report(deps, start=may_start, end=may_end, now=now, periods_for=periods_for)
    assert may.for_user("U0ALICE01").dollars == pytest.approx(1.5 + 10 * 5.0)
    assert may.for_user("U0BOB0002").dollars == 0.0
    # May + June of the straddler is its whole cost.
    assert costs.cost_so_far(straddler, now) == pytest.approx(1.5 + 1.53)


def test_hours_left() -> None:
    assert costs.hours_left(10.0, 2.5) == 4.0
    assert costs.hours_left(-3.0, 1.0) == 0.0
    assert costs.hours_left(10.0, 0.0) is None


def test_status_message_and_destroy_confirm_show_the_same_cost_as_listings(
    session_factory: SessionFactory,
) -> None:
    from bot.slack.blocks.status import status_message

    t0 = _t("2025-06-10 10:00")
    stopped = make(
        session_factory,
        t0,
        [("provisioning", t0), ("ready", t0), ("stopped", t0 + timedelta(hours=1))],
        dph=2.0,
        disk=720,
    )
    storage.set_instance(session_factory, stopped.id, 4242, now=t0)
    stopped = storage.get_deployment(session_factory, stopped.id)  # type: ignore[assignment]
    later = t0 + timedelta(hours=11)
    text = str(status_message(stopped, None, now=later))
    expected = f"${costs.cost_so_far(stopped, later):.2f}"  # $3.50: 1 h GPU + 10 h storage
    assert expected == "$3.50"
    assert f"cost so far {expected}" in text  # context line
    assert f"cost so far {expected}. This cannot be undone" in text  # destroy confirm
