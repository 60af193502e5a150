"""Idle question: a ready deployment whose GPU stayed below ``IDLE_GPU_PERCENT`` for
``IDLE_MINUTES`` is asked about once per idle stretch (DM with **Keep running**, which pauses
idle checks for ``IDLE_SNOOZE_HOURS``); it names the time :mod:`.idle_stop` acts."""

from __future__ import annotations

from datetime import datetime

from bot.services.rules.base import ASK, Action, Rule
from bot.services.rules.idle_tracking import idle_percent
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
    """``ask`` when the idle stretch (``idle_since``) reached ``policy.idle_after`` and was
    not asked about; ``promised`` is ``now + IDLE_GRACE_MINUTES``, the idle question's claim
    time (``idle_warned_at``) plus the grace, which :mod:`.idle_stop` waits for."""
    if dep.status != DeploymentStatus.READY or dep.idle_since is None:
        return None
    util = idle_percent(dep, instance, policy, now)
    if dep.idle_warned_at is not None or util is None:
        return None
    if now - dep.idle_since < policy.idle_after:
        return None
    return Action(
        kind=ASK,
        why="idle",
        reason="its GPU is idle",
        promised=now + policy.idle_grace,
        percent=util,
    )


RULE = Rule(name="idle_question", check=check, needs_instance=True)
