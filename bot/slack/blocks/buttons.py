"""The buttons that act on one deployment wherever it is shown (pure): **Stop**, **Start** and
**Destroy** with their action ids, and the GPU summary their confirmation names.

The status message (:mod:`bot.slack.blocks.status`) and the lifetime notices
(:mod:`bot.slack.blocks.lifetimes`) both carry them, so one listener handles a click wherever
it happens; they live here so that neither of those modules imports the other's buttons.
"""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import ButtonElement, ConfirmObject

from bot.formats import mrkdwn_escape
from bot.pricing import cost_so_far
from bot.slack.blocks.common import truncate
from storage import DeploymentRecord, DeploymentStatus

ACTION_STOP = "deployment_stop"
ACTION_START = "deployment_start"
ACTION_DESTROY = "deployment_destroy"


def gpu_summary(dep: DeploymentRecord) -> str:
    """``1× RTX 4090 (24 GB)``, the GPU's name (Vast.ai's text) escaped for mrkdwn."""
    return f"{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 100))} ({dep.gpu_ram_gb:.0f} GB)"


def destroy_button(dep: DeploymentRecord, now: datetime) -> ButtonElement | None:
    """**Destroy** (value ``str(dep.id)``) with a confirmation naming the template, the GPU and
    the cost so far at ``now``; None when there is no instance to destroy (no instance id yet,
    or already stopped costing: failed or destroyed)."""
    if dep.instance_id is None or dep.status not in (
        DeploymentStatus.PROVISIONING,
        DeploymentStatus.READY,
        DeploymentStatus.STOPPED,
    ):
        return None
    cost = cost_so_far(dep, now)
    return ButtonElement(
        text="Destroy",
        action_id=ACTION_DESTROY,
        value=str(dep.id),
        style="danger",
        confirm=ConfirmObject(
            title="Destroy this instance?",
            text=truncate(
                f"{mrkdwn_escape(dep.template_name)} on {gpu_summary(dep)} will be deleted "
                f"with its disk; cost so far ${cost:.2f}. This cannot be undone.",
                300,
            ),
            confirm="Destroy",
            deny="Keep it",
            style="danger",
        ),
    )
