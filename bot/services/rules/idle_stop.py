"""Idle stop: an idle question left unanswered for ``IDLE_GRACE_MINUTES`` (and the GPU still
idle) stops the deployment (or destroys it, ``ON_EXPIRY``), at the time the question named."""

from __future__ import annotations

from datetime import datetime

from bot.services.rules.base import Action, Rule, on_expiry
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
    """``stop``/``destroy`` at ``idle_warned_at + idle_grace`` when the GPU is still idle; a
    **Keep running** pressed meanwhile wins (``unchanged``)."""
    if dep.status != DeploymentStatus.READY or dep.idle_since is None:
        return None
    warned = dep.idle_warned_at
    if warned is None or idle_percent(dep, instance, policy, now) is None:
        return None
    promised = warned + policy.idle_grace
    if now < promised:
        return None
    return Action(
        kind=on_expiry(policy),
        why="idle",
        reason="its GPU stayed idle and nobody answered",
        promised=promised,
        unchanged={"idle_warned_at": warned, "idle_snoozed_until": None},
    )


RULE = Rule(name="idle_stop", check=check, needs_instance=True)
