"""Idle tracking: remembers since when a ready deployment's GPU has been idle
(``idle_since``), which :mod:`.idle_question` and :mod:`.idle_stop` read. A busy GPU, an
unknown reading (``gpu_util`` missing or null: never idle) or paused idle checks end the
stretch (and forget its question). Sends nothing."""

from __future__ import annotations

from datetime import datetime

from bot.services.rules.base import TRACK, Action, Rule
from bot.services.rules.policy import LifetimePolicy, idle_reading
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus


def idle_percent(
    dep: DeploymentRecord, instance: Instance | None, policy: LifetimePolicy, now: datetime
) -> float | None:
    """``dep``'s GPU use in percent when it counts as idle at ``now``, else None (see
    :func:`bot.services.rules.policy.idle_reading`; idle checks paused until
    ``idle_snoozed_until``)."""
    snoozed = dep.idle_snoozed_until is not None and now < dep.idle_snoozed_until
    return idle_reading(
        instance.gpu_util if instance is not None else None, policy, snoozed=snoozed
    )


def check(
    dep: DeploymentRecord,
    instance: Instance | None,
    policy: LifetimePolicy,
    now: datetime,
    since: datetime | None = None,
) -> Action | None:
    """``track`` with ``value=now`` when a ready GPU turns idle, ``value=None`` when an idle
    stretch (or its question) ends; None when nothing changes."""
    if dep.status != DeploymentStatus.READY:
        return None
    if idle_percent(dep, instance, policy, now) is None:
        if dep.idle_since is None and dep.idle_warned_at is None:
            return None
        return Action(kind=TRACK, why="idle", reason="the GPU is in use again", value=None)
    if dep.idle_since is None:
        return Action(kind=TRACK, why="idle", reason="the GPU turned idle", value=now)
    return None


RULE = Rule(name="idle_tracking", check=check, needs_instance=True)
