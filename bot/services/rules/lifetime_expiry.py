"""Lifetime expiry: at its end the deployment is stopped (or destroyed, ``ON_EXPIRY``).

Never before the time its owner was last told: once the expiry warning went out, that is
:func:`bot.notices.effective_end` (the end, or five minutes after a late warning), the same
time the DM and the status message show. Without a warning (none could be claimed: the bot
was down across the whole warning window) the bot acts ``LIFETIME_WARNING_MINUTES`` after
the stored end, which the status message showed all along.
"""

from __future__ import annotations

from datetime import datetime

from bot.notices import effective_end
from bot.services.rules.base import Action, Rule, holds_gpu, on_expiry
from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord


def check(
    dep: DeploymentRecord,
    instance: Instance | None,
    policy: LifetimePolicy,
    now: datetime,
    since: datetime | None = None,
) -> Action | None:
    """``stop``/``destroy`` when ``dep`` (ready, or stopped with a running instance) is past
    the time it was announced to end; None otherwise."""
    if dep.ends_at is None or not holds_gpu(dep, instance):
        return None
    if dep.expiry_warned_at is not None:
        announced = effective_end(dep)
        assert announced is not None  # ends_at is set
        due = announced
    else:
        announced = dep.ends_at
        due = dep.ends_at + policy.warning
    if now < due:
        return None
    return Action(
        kind=on_expiry(policy),
        why="expiry",
        reason="its lifetime ended",
        promised=announced,
        unchanged={"ends_at": dep.ends_at},
    )


RULE = Rule(name="lifetime_expiry", check=check)
