"""Stopped but still paying: a deployment stopped for more than ``STOPPED_REMINDER_DAYS``
pays for its disk; its owner hears about it once a day (with **Start** / **Destroy**), in
their working hours. The reminder job (:mod:`bot.services.reminders`) runs it
(``schedule="reminder"``) and claims one per deployment and owner's local day."""

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
    """``remind`` (``why="stopped"``, ``value`` = stopped since) once ``dep`` has been
    stopped for ``policy.stopped_after``; None otherwise."""
    if dep.status != DeploymentStatus.STOPPED:
        return None
    stopped = dep.stopped_at or dep.last_state_change_at
    if now - stopped < policy.stopped_after:
        return None
    return Action(
        kind=REMIND, why="stopped", reason="it is stopped and its disk still bills", value=stopped
    )


RULE = Rule(name="stopped_reminder", check=check, schedule="reminder")
