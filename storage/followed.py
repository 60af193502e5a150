"""The status poller's and start-up recovery's reads when workspaces have Vast.ai accounts of
their own: each followed row with what names its account (``team_id`` and
``simulated``), in the same single query as :func:`storage.repo.followed_instances`.

One short read transaction each, no network call inside. Imports nothing from ``bot``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select

from storage.db import SessionFactory, read_transaction
from storage.models import Deployment, DeploymentStatus
from storage.records import DeploymentRecord

__all__ = [
    "Followed",
    "deployment_workspaces",
    "ended_since_workspaces",
    "followed_with_workspace",
    "list_by_ids",
]

#: Ids per ``IN (...)`` of :func:`list_by_ids` (well under SQLite's and PostgreSQL's limits).
IDS_PER_QUERY = 500


class Followed(NamedTuple):
    """A followed row: its instance id, and what names its Vast.ai account."""

    instance_id: int
    team_id: str
    simulated: bool


def followed_with_workspace(
    sf: SessionFactory, statuses: Iterable[DeploymentStatus]
) -> dict[int, Followed]:
    """``{deployment id: Followed}`` of the deployments in ``statuses`` holding an instance:
    four small columns, so a poller tick over 10,000 rows stays cheap."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(
                Deployment.id, Deployment.instance_id, Deployment.team_id, Deployment.simulated
            ).where(
                Deployment.status.in_([DeploymentStatus(s) for s in statuses]),
                Deployment.instance_id.is_not(None),
            )
        )
        return {
            int(dep_id): Followed(int(instance_id), str(team_id), bool(simulated))
            for dep_id, instance_id, team_id, simulated in rows
            if instance_id is not None
        }


def ended_since_workspaces(sf: SessionFactory, since: datetime) -> set[tuple[str, bool]]:
    """``{(team_id, simulated)}`` of the deployments that became ``failed`` or ``destroyed``
    at or after ``since`` (aware UTC): the accounts where a stray instance may still bill."""
    with read_transaction(sf) as session:
        rows = session.execute(
            select(Deployment.team_id, Deployment.simulated)
            .where(
                Deployment.status.in_([DeploymentStatus.FAILED, DeploymentStatus.DESTROYED]),
                Deployment.last_state_change_at >= since,
            )
            .distinct()
        )
        return {(str(team_id), bool(simulated)) for team_id, simulated in rows}


def deployment_workspaces(sf: SessionFactory) -> set[tuple[str, bool]]:
    """``{(team_id, simulated)}`` over every deployment on record (start-up recovery reads
    the instance list of each account that has any)."""
    with read_transaction(sf) as session:
        rows = session.execute(select(Deployment.team_id, Deployment.simulated).distinct())
        return {(str(team_id), bool(simulated)) for team_id, simulated in rows}


def list_by_ids(
    sf: SessionFactory, ids: Iterable[int], statuses: Iterable[DeploymentStatus]
) -> list[DeploymentRecord]:
    """The deployments among ``ids`` whose status is in ``statuses``, by id (one query per
    :data:`IDS_PER_QUERY` ids)."""
    wanted = sorted(set(ids))
    values = [DeploymentStatus(s) for s in statuses]
    found: list[DeploymentRecord] = []
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start : start + IDS_PER_QUERY]
        with read_transaction(sf) as session:
            rows = session.execute(
                select(*Deployment.__table__.columns)
                .where(Deployment.id.in_(chunk), Deployment.status.in_(values))
                .order_by(Deployment.id)
            )
            found += [DeploymentRecord.from_mapping(row._mapping) for row in rows]
    return found
