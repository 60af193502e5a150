"""Running for long: a deployment ready for more than a day (``policy.long_run``) gets one
reminder a day (with **Stop** / **Destroy**), in its owner's working hours. The reminder job
(:mod:`bot.services.reminders`) runs it (``schedule="reminder"``)."""

from __future__ import annotations

from datetime import datetime

from bot.services.rules.base import REMIND, Action, Rule
from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus


def check(
    dep: DeploymentRecord,
    instance: Instance | None,
    policy: LifetimePolicy,
    now: datetime,
    since: datetime | None = None,
) -> Action | None:
    """``remind`` (``why="running"``, ``value`` = ready since) once ``dep`` has been ready
    for ``policy.long_run``; None otherwise."""
    if dep.status != DeploymentStatus.READY:
        return None
    ready = dep.last_state_change_at
    if now - ready < policy.long_run:
        return None
    return Action(kind=REMIND, why="running", reason="it has been running for long", value=ready)


RULE = Rule(name="long_running", check=check, schedule="reminder")
