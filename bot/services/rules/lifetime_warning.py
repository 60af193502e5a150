"""Lifetime warning: ``LIFETIME_WARNING_MINUTES`` before the end, the owner is warned once (DM
and thread, with **Extend** and **Stop now** / **Destroy**). The time it names is never less
than :data:`bot.notices.MIN_NOTICE` away, so a warning that goes out late (the bot was down,
or the warning period is short) still leaves time to answer; :mod:`.lifetime_expiry` keeps
that promise (the claim time ``expiry_warned_at`` is what both read)."""

from __future__ import annotations

from datetime import datetime

from bot.notices import MIN_NOTICE
from bot.services.rules.base import WARN, Action, Rule, holds_gpu
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
    """``warn`` once the end is within ``policy.warning`` and no warning went out for this
    end; ``promised`` is ``max(ends_at, now + MIN_NOTICE)``, which is what
    :func:`bot.notices.effective_end` derives once the warning is claimed at ``now``. None
    past the hard limit (``ends_at + warning``: the expiry acts instead)."""
    if dep.ends_at is None or dep.expiry_warned_at is not None or not holds_gpu(dep, instance):
        return None
    if not dep.ends_at - policy.warning <= now < dep.ends_at + policy.warning:
        return None
    return Action(
        kind=WARN,
        why="expiry",
        reason="its lifetime ends",
        promised=max(dep.ends_at, now + MIN_NOTICE),
    )


RULE = Rule(name="lifetime_warning", check=check)
