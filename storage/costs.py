"""Pure time accounting for costs: how long a deployment has been ``ready`` or ``stopped``.

Closed periods are accumulated in ``ready_seconds``/``stopped_seconds`` by
:func:`storage.repo.update_status`; the open period (the current status since
``last_state_change_at``) is added here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.models import DeploymentStatus


class TimedDeployment(Protocol):
    """The fields the accounting reads (a :class:`~storage.records.DeploymentRecord` fits)."""

    @property
    def status(self) -> str: ...
    @property
    def ready_seconds(self) -> float: ...
    @property
    def stopped_seconds(self) -> float: ...
    @property
    def last_state_change_at(self) -> datetime: ...


def _open_seconds(dep: TimedDeployment, status: str, now: datetime) -> float:
    if dep.status != status:
        return 0.0
    return max(0.0, (now - dep.last_state_change_at).total_seconds())


def seconds_in_ready(dep: TimedDeployment, now: datetime) -> float:
    """Total seconds the deployment has spent in ``ready`` up to ``now`` (aware UTC)."""
    return dep.ready_seconds + _open_seconds(dep, DeploymentStatus.READY, now)


def seconds_in_stopped(dep: TimedDeployment, now: datetime) -> float:
    """Total seconds the deployment has spent in ``stopped`` up to ``now`` (aware UTC)."""
    return dep.stopped_seconds + _open_seconds(dep, DeploymentStatus.STOPPED, now)


def deployment_hours_in_ready(dep: TimedDeployment, now: datetime) -> float:
    """Hours in ``ready`` up to ``now``; multiply by ``dph_total`` ($/hour) for the GPU cost."""
    return seconds_in_ready(dep, now) / 3600.0
