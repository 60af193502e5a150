"""Figures for the bot's Prometheus metrics, read in one query at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from storage.db import SessionFactory
from storage.models import Deployment, DeploymentStatus


@dataclass(frozen=True)
class DeploymentFigures:
    """``by_status``: ``{status value: number of deployments}`` (every status, 0 included);
    ``gpus_billing``: GPUs of ``ready`` deployments; ``dph_billing``: their summed Vast.ai
    ``dph_total``, US dollars per hour."""

    by_status: dict[str, int] = field(default_factory=dict)
    gpus_billing: int = 0
    dph_billing: float = 0.0


def workspace_figures(sf: SessionFactory) -> dict[str, DeploymentFigures]:
    """:func:`deployment_figures` per Slack team id (``{team_id: figures}``; only the statuses
    a workspace has rows in), in one ``GROUP BY team_id, status`` query. Raises SQLAlchemy
    errors when the database cannot be read."""
    query = select(
        Deployment.team_id,
        Deployment.status,
        func.count(),
        func.coalesce(func.sum(Deployment.num_gpus), 0),
        func.coalesce(func.sum(Deployment.dph_total), 0.0),
    ).group_by(Deployment.team_id, Deployment.status)
    found: dict[str, DeploymentFigures] = {}
    with sf() as session:
        for team_id, status, count, row_gpus, row_dph in session.execute(query):
            figures = found.setdefault(str(team_id), DeploymentFigures())
            value = status.value if isinstance(status, DeploymentStatus) else str(status)
            figures.by_status[value] = int(count)
            if value == DeploymentStatus.READY.value:
                found[str(team_id)] = DeploymentFigures(
                    by_status=figures.by_status,
                    gpus_billing=int(row_gpus),
                    dph_billing=float(row_dph),
                )
    return found


def deployment_figures(sf: SessionFactory) -> DeploymentFigures:
    """Count deployments per status, and sum the GPUs and $/hour of the ``ready`` ones, in one
    ``GROUP BY status`` query (``ix_deployments_status`` serves it). Raises SQLAlchemy errors
    when the database cannot be read."""
    by_status = {status.value: 0 for status in DeploymentStatus}
    gpus = 0
    dph = 0.0
    query = select(
        Deployment.status,
        func.count(),
        func.coalesce(func.sum(Deployment.num_gpus), 0),
        func.coalesce(func.sum(Deployment.dph_total), 0.0),
    ).group_by(Deployment.status)
    with sf() as session:
        for status, count, row_gpus, row_dph in session.execute(query):
            value = status.value if isinstance(status, DeploymentStatus) else str(status)
            by_status[value] = int(count)
            if value == DeploymentStatus.READY.value:
                gpus, dph = int(row_gpus), float(row_dph)
    return DeploymentFigures(by_status=by_status, gpus_billing=gpus, dph_billing=dph)
