"""Exited container: a ready deployment whose container exited while Vast.ai still holds its
GPU (``intended_status`` running, ``actual_status`` exited; docs/VAST_API.md §4) bills for a GPU
that runs nothing. So does a ``stopped`` one whose Start Vast.ai accepted but whose container
exited before its app answered (the row still says stopped). The owner and the thread hear
about it once per run of the deployment, with Vast.ai's ``status_msg`` and the time the bot
will act (for a ``stopped`` row only after :data:`START_GRACE`: a container just started may
still show ``exited`` for a moment); ``policy.exited_after`` (10 minutes) after it was first
seen exited, the bot stops it (at the first sight of it exited from then on): stopping keeps
the disk, so no work is lost (the owner may **Start** it again, or destroy it).

Since when it has been exited is kept as a claim (one per deployment and run, see
:class:`bot.services.rules.base.Rule` ``watch``), so a restart of the bot does not restart
the 10 minutes. A container that runs again is forgiven only after :data:`FORGET_AFTER` of
running without a break: a crash loop (exited, restarted, exited again) is stopped 10
minutes after its first exit, not timed again at every restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.formats import mrkdwn_escape, slack_date
from bot.services.rules.base import NOTIFY, STOP, Action, Rule
from bot.services.rules.policy import LifetimePolicy
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus

_MSG_LIMIT = 300

#: How long a container must run without a break before an earlier exit is forgotten.
FORGET_AFTER = timedelta(minutes=10)

#: How long a ``stopped`` row's instance, being started, may show ``exited`` before its owner
#: hears of it (the stop still comes ``policy.exited_after`` after the first sight).
START_GRACE = timedelta(minutes=2)


def exited(dep: DeploymentRecord, instance: Instance | None) -> bool:
    """True when ``dep`` is ready (or stopped: a Start Vast.ai accepted) and its instance is
    meant to run but its container exited."""
    return (
        dep.status in (DeploymentStatus.READY, DeploymentStatus.STOPPED)
        and instance is not None
        and instance.intended_status == "running"
        and instance.actual_status == "exited"
    )


def vast_says(status_msg: str | None) -> str:
    """Vast.ai's ``status_msg`` for a Slack sentence: one line, at most 300 characters, with
    ``&``, ``<`` and ``>`` escaped (it is free text from the host); ``exited`` when empty."""
    text = " ".join((status_msg or "").split()) or "exited"
    if len(text) > _MSG_LIMIT:
        text = text[: _MSG_LIMIT - 1] + "…"
    return mrkdwn_escape(text)


def check(
    dep: DeploymentRecord,
    instance: Instance | None,
    policy: LifetimePolicy,
    now: datetime,
    since: datetime | None = None,
) -> Action | None:
    """``stop`` once the container has been exited (since ``since``) for
    ``policy.exited_after``; before that a ``notify`` naming that time; None when it is not
    exited (or ``since`` is unknown)."""
    if since is None or not exited(dep, instance):
        return None
    assert instance is not None  # exited() checked it
    promised = since + policy.exited_after
    says = vast_says(instance.status_msg)
    if now >= promised:
        return Action(
            kind=STOP,
            why="exited",
            reason=f"its container exited (Vast.ai: {says}) while Vast.ai still held its GPU",
            promised=promised,
        )
    if dep.status == DeploymentStatus.STOPPED and now < since + START_GRACE:
        return None  # may still be starting: no alarm yet
    minutes = policy.exited_after.total_seconds() / 60
    return Action(
        kind=NOTIFY,
        why="exited",
        reason="its container exited",
        promised=promised,
        text=(
            f":warning: The app of *{mrkdwn_escape(dep.template_name)}* (#{dep.id}) exited "
            f"(Vast.ai: {says}), but Vast.ai still holds its GPU, *which bills*. Unless it "
            f"runs again and stays up, the bot stops it {slack_date(promised)} ({minutes:g} "
            "minutes after it exited); stopping keeps the disk, so no work is lost. Press "
            "*Stop* or *Destroy* to act now."
        ),
    )


RULE = Rule(
    name="exited_container",
    check=check,
    needs_instance=True,
    watch=exited,
    forget_after=FORGET_AFTER,
)
