"""Deploy timeout: a deployment not ready ``DEPLOY_TIMEOUT_MINUTES`` after renting began
fails, and its instance is destroyed so it stops billing (it never became ready, so no work
of the user's is on its disk).

Unlike the other rules it decides a state as well as an act, so the status poller's state
mapping applies it (:func:`bot.services.states.assess` and
:func:`~bot.services.states.after_probe` call :func:`due` and :func:`reason`);
``schedule="state"`` keeps the rule executor away from it. The time it keeps is the one the
status message shows while provisioning (its elapsed time against the timeout).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.formats import mrkdwn_escape
from bot.services.rules.base import DESTROY, Action, Rule, one_line
from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus

_BEFORE_READY = frozenset({DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING})


def rent_started(dep: DeploymentRecord) -> datetime:
    """When renting began: the start of its run (set when a request waiting for approval was
    approved, or at the submission), else the row's creation. A request that waited an hour
    for its approver is not timed out the moment it is rented."""
    return dep.lifetime_started_at or dep.created_at


def due(dep: DeploymentRecord, now: datetime, timeout: timedelta) -> bool:
    """True when ``dep`` is still creating or provisioning ``timeout`` after
    :func:`rent_started`."""
    return dep.status in _BEFORE_READY and now - rent_started(dep) >= timeout


def reason(dep: DeploymentRecord, instance: Instance | None, timeout: timedelta) -> str:
    """The failure reason shown to the user: how long, what Vast.ai last said (the
    instance's ``actual_status`` and ``status_msg``, else the stored ``status_msg``), and
    what to do next. Vast.ai's free text is escaped for mrkdwn (it is shown in Slack)."""
    minutes = timeout.total_seconds() / 60
    where = ""
    if instance is not None:
        where = f" Vast.ai still said `{instance.actual_status or 'provisioning'}`"
        if instance.status_msg:
            where += f" ({mrkdwn_escape(one_line(instance.status_msg))})"
        where += "."
    elif dep.status_msg:
        where = f" Last Vast.ai status: {mrkdwn_escape(one_line(dep.status_msg))}."
    return (
        f"Not ready after {minutes:g} minutes, so I destroyed the instance to stop billing."
        f"{where} Slow hosts can take long to pull a big image: deploy again, preferably on "
        "a GPU with a faster download."
    )


def check(
    dep: DeploymentRecord,
    instance: Instance | None,
    policy: LifetimePolicy,
    now: datetime,
    since: datetime | None = None,
) -> Action | None:
    """``destroy`` (with the failure :func:`reason`) once :func:`due` with
    ``policy.deploy_timeout``; None before."""
    if not due(dep, now, policy.deploy_timeout):
        return None
    return Action(
        kind=DESTROY,
        why="timeout",
        reason=reason(dep, instance, policy.deploy_timeout),
        promised=rent_started(dep) + policy.deploy_timeout,
    )


RULE = Rule(name="deploy_timeout", check=check, needs_instance=True, schedule="state")
