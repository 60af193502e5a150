"""Block Kit for a deployment's status message in the channel (pure).

The message is a function of the deployment row (and its template): the deploy service posts
it, the status poller re-renders it on every change, and the stop/start/destroy buttons on it
act on the deployment whose id the button carries. Secrets never appear here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.addresses import host_or_none, http_url, ip_or_none, port_or_none
from bot.formats import format_duration, format_elapsed, mrkdwn_escape
from bot.notices import effective_end
from bot.pricing import cost_so_far
from bot.slack.blocks.common import MAX_SECTION_TEXT, message_payload, truncate
from bot.slack.blocks.intents import pending_line
from catalog import Template
from storage import LIVE_STATUSES, DeploymentRecord, DeploymentStatus

ACTION_STOP = "deployment_stop"
ACTION_START = "deployment_start"
ACTION_DESTROY = "deployment_destroy"
ACTION_CREDENTIALS = "deployment_credentials"
ACTION_SHARE = "deployment_share"

STATUS_ICONS = {
    DeploymentStatus.CREATING: ":hourglass_flowing_sand:",
    DeploymentStatus.PROVISIONING: ":gear:",
    DeploymentStatus.READY: ":white_check_mark:",
    DeploymentStatus.STOPPED: ":double_vertical_bar:",
    DeploymentStatus.FAILED: ":x:",
    DeploymentStatus.DESTROYED: ":wastebasket:",
    DeploymentStatus.PENDING_APPROVAL: ":raised_hand:",
    DeploymentStatus.DENIED: ":no_entry_sign:",
    DeploymentStatus.EXPIRED: ":hourglass:",
}


def gpu_summary(dep: DeploymentRecord) -> str:
    """``1× RTX 4090 (24 GB)``, the GPU's name (Vast.ai's text) escaped for mrkdwn."""
    return f"{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 100))} ({dep.gpu_ram_gb:.0f} GB)"


def app_urls(dep: DeploymentRecord, template: Template | None) -> list[tuple[int, str]]:
    """``[(container_port, "http://IP:HOSTPORT/"), ...]`` for each template port that is mapped
    (``http://[IPv6]:HOSTPORT/`` for an IPv6 address; ``https://`` for a template that declares
    TLS, :attr:`catalog.Template.https`); a stored address that is not an IP address, or a port
    that is not usable, gives no URL (:func:`bot.addresses.http_url`). The status poller stores
    only addresses the bot may connect to (:func:`bot.services.states.reachable`)."""
    address = ip_or_none(dep.public_ip)
    if address is None or template is None:
        return []
    ports = _port_map(dep)
    scheme = "https" if template.https else "http"
    urls = [
        (port, http_url(address, ports[port], scheme=scheme))
        for port in template.ports
        if port in ports
    ]
    return [(port, url) for port, url in urls if url is not None]


def ssh_command(dep: DeploymentRecord) -> str | None:
    """Direct SSH when port 22 is mapped, else Vast.ai's SSH proxy, else None (also when the
    stored address, host or port is not usable)."""
    ports = _port_map(dep)
    ip, direct = ip_or_none(dep.public_ip), port_or_none(ports.get(22))
    if ip is not None and direct is not None:
        return f"ssh -p {direct} root@{ip}"
    host, port = host_or_none(dep.ssh_host), port_or_none(dep.ssh_port)
    if host is not None and port is not None:
        return f"ssh -p {port} root@{host}"
    return None


def _port_map(dep: DeploymentRecord) -> dict[int, int]:
    """The stored port map; ``{}`` when the stored JSON is damaged (nothing to link to)."""
    try:
        return dep.port_map
    except (ValueError, TypeError):
        return {}


def _status_line(dep: DeploymentRecord, template: Template | None, now: datetime) -> str:
    line = _state_line(dep, template, now)
    pending = pending_line(dep, now) if not dep.is_final else None
    return f"{pending}\n{line}" if pending else line


def _state_line(dep: DeploymentRecord, template: Template | None, now: datetime) -> str:
    icon = STATUS_ICONS.get(dep.status, ":grey_question:")
    age = format_elapsed((now - dep.created_at).total_seconds())
    if dep.status == DeploymentStatus.CREATING:
        return f"{icon} *Renting the GPU on Vast.ai…* ({age})"
    if dep.status == DeploymentStatus.PROVISIONING:
        line = f"{icon} *Provisioning* ({age} so far): pulling the image and starting the app."
        if dep.status_msg:
            line += f"\n> Vast.ai: {mrkdwn_escape(truncate(dep.status_msg, 300))}"
        return line
    if dep.status == DeploymentStatus.READY:
        lines = [f"{icon} *Ready* (took {_time_to_ready(dep)})"]
        names = mrkdwn_escape(template.name if template else dep.template_name)
        for port, url in app_urls(dep, template):
            lines.append(f"• {names} (port {port}): <{url}|{url}>")
        ssh = ssh_command(dep)
        if ssh:
            lines.append(f"• SSH: `{ssh}`")
        if template is not None and template.password_env:
            lines.append(
                "• The password goes by DM only, to each person with access (*Send me the login*)."
            )
        trouble = _vast_trouble(dep)
        if trouble:
            lines.append(f":warning: Vast.ai: {trouble}")
        return "\n".join(lines)
    if dep.status == DeploymentStatus.STOPPED:
        return (
            f"{icon} *Stopped*: the GPU is released, disk storage still bills. "
            "Start it again or destroy it."
        )
    if dep.status == DeploymentStatus.FAILED:
        reason = dep.reason or "unknown reason"
        return f"{icon} *Failed*: {truncate(reason, 1500)}"
    if dep.status == DeploymentStatus.DESTROYED:
        return f"{icon} *Destroyed*: the instance is gone and billing has stopped."
    if dep.status == DeploymentStatus.PENDING_APPROVAL:
        line = f"{icon} *Waiting for approval*: nothing is rented until an approver says yes."
        if dep.reason:  # "Needs approval by <@A> or <@B>: …"
            line += f"\n{truncate(dep.reason, 1500)}"
        return line
    if dep.status in (DeploymentStatus.DENIED, DeploymentStatus.EXPIRED):
        word = "Denied" if dep.status == DeploymentStatus.DENIED else "Expired"
        reason = truncate(dep.reason, 1500) if dep.reason else "no reason given"
        return f"{icon} *{word}*: {reason.rstrip('.')}. Nothing was rented."
    return f"{icon} {dep.status}"


def _vast_trouble(dep: DeploymentRecord) -> str | None:
    """Vast.ai's ``status_msg`` of a ready deployment when it is not the healthy
    ``success, running …`` (e.g. its container exited), escaped for mrkdwn; else None."""
    if dep.status != DeploymentStatus.READY or not dep.status_msg:
        return None
    text = " ".join(dep.status_msg.split())
    if not text or text.lower().startswith("success"):
        return None
    return mrkdwn_escape(truncate(text, 300))


def _time_to_ready(dep: DeploymentRecord) -> str:
    if dep.ready_at is None:
        return "a moment"
    return format_duration((dep.ready_at - dep.created_at).total_seconds())


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


def deployment_buttons(
    dep: DeploymentRecord, now: datetime, *, share: bool = False, destroy: bool = True
) -> list[ButtonElement]:
    """Stop/Start/Destroy for the deployment's state (Destroy asks for confirmation); none while
    a destroy is pending, no Stop while a stop is, no Start while a start is. ``share``: a
    **Share** button (:data:`ACTION_SHARE`) before Destroy while the deployment is live
    (creating, provisioning, ready or stopped: :func:`share_button`); ``destroy=False``
    leaves Destroy out (someone it is shared with may not destroy it)."""
    value = str(dep.id)
    buttons: list[ButtonElement] = []
    pending = dep.desired_state if dep.desired_next_try_at is not None else None
    if pending == "destroyed":  # being destroyed: nothing else to press
        return buttons
    if dep.status == DeploymentStatus.READY and pending != "stopped":
        buttons.append(ButtonElement(text="Stop", action_id=ACTION_STOP, value=value))
    if dep.status == DeploymentStatus.STOPPED and pending != "running":
        buttons.append(
            ButtonElement(text="Start", action_id=ACTION_START, value=value, style="primary")
        )
    if dep.status == DeploymentStatus.READY and dep.web_password:
        buttons.append(
            ButtonElement(text="Send me the login", action_id=ACTION_CREDENTIALS, value=value)
        )
    if share and dep.status in LIVE_STATUSES:
        buttons.append(share_button(dep))
    ending = destroy_button(dep, now) if destroy else None
    if ending is not None:
        buttons.append(ending)
    return buttons


def share_button(dep: DeploymentRecord) -> ButtonElement:
    """**Share** (value ``str(dep.id)``): opens the modal that chooses who else may use the
    deployment (its owner and the bot admins only; anyone else is told who can)."""
    return ButtonElement(text="Share", action_id=ACTION_SHARE, value=str(dep.id))


def visible_key(dep: DeploymentRecord, *, now: datetime) -> tuple[object, ...]:
    """What the status message shows that can change over time, as a comparable tuple.

    Two calls give equal keys exactly when :func:`status_message` would show the same state,
    reason, Vast.ai status message (while provisioning), coarse elapsed time (while creating or
    provisioning, :func:`format_elapsed`), connection details, Vast.ai's message on a ready
    deployment in trouble and end time (:func:`bot.notices.effective_end`, so an extension,
    or a warning that moved the end, redraws the message) and the act being carried out (a
    pending desired state and its tries). The running cost and the cost
    estimate to the end are left out on purpose: they change every second and are refreshed
    with the next real change. The status poller edits the message (``chat.update``) only
    when this key changes.
    """
    waiting = dep.status in (DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING)
    return (
        dep.status,
        dep.reason,
        dep.status_msg if dep.status == DeploymentStatus.PROVISIONING else None,
        format_elapsed((now - dep.created_at).total_seconds()) if waiting else None,
        dep.instance_id,
        dep.public_ip,
        dep.ports_json,
        dep.ssh_host,
        dep.ssh_port,
        dep.simulated,
        effective_end(dep),
        _vast_trouble(dep),
        dep.desired_state if dep.desired_next_try_at is not None else None,
        dep.desired_tries if dep.desired_next_try_at is not None else 0,
    )


def status_message(
    dep: DeploymentRecord,
    template: Template | None,
    *,
    now: datetime,
    note: str | None = None,
    expiry_action: str = "stop",
) -> dict[str, Any]:
    """The channel status message for ``dep`` at ``now``: ``{"text", "blocks"}``; ``note``
    (mrkdwn, e.g. "starting again") is an extra context line at the end.

    Shows template, GPU, $/hour, requester, status (with Vast.ai's status message while
    provisioning, how to connect when ready, the reason when failed), while active its end
    time and the cost by then (:func:`bot.slack.blocks.lifetimes.ends_line`; ``expiry_action``
    ``stop``/``destroy`` is what the bot does at the end), "simulated" when the instance came
    from the simulator, and the buttons the state allows (with **Share** while it is live).
    """
    # Imported here: bot.slack.blocks.lifetimes builds on this module (buttons, action ids).
    from bot.slack.blocks.lifetimes import ends_line

    simulated = " · :test_tube: *simulated*" if dep.simulated else ""
    head = (
        f"*{mrkdwn_escape(dep.template_name)}* on {gpu_summary(dep)} · ${dep.dph_total:.3f}/h · "
        f"requested by <@{dep.user_id}>{simulated}"
    )
    blocks: list[Block] = [
        SectionBlock(block_id=f"dep_head_{dep.id}", text=MarkdownTextObject(text=head)),
        SectionBlock(
            block_id=f"dep_status_{dep.id}",
            text=MarkdownTextObject(
                text=truncate(_status_line(dep, template, now), MAX_SECTION_TEXT)
            ),
        ),
    ]
    ends = ends_line(dep, now, action=expiry_action)
    if ends:
        blocks.append(
            ContextBlock(block_id=f"dep_ends_{dep.id}", elements=[MarkdownTextObject(text=ends)])
        )
    context = [f"Deployment #{dep.id}"]
    if dep.instance_id is not None:
        context.append(f"Vast.ai instance {dep.instance_id}")
    if (
        dep.status
        in (
            DeploymentStatus.READY,
            DeploymentStatus.STOPPED,
            DeploymentStatus.DESTROYED,
            DeploymentStatus.FAILED,
        )
        and dep.ready_at is not None
    ):
        context.append(f"cost so far ${cost_so_far(dep, now):.2f}")
    blocks.append(
        ContextBlock(
            block_id=f"dep_ctx_{dep.id}",
            elements=[MarkdownTextObject(text=" · ".join(context))],
        )
    )
    # The message is public: Share is always shown; the click checks who pressed it.
    buttons = deployment_buttons(dep, now, share=True)
    if buttons:
        blocks.append(ActionsBlock(block_id=f"dep_actions_{dep.id}", elements=buttons))
    if note:
        blocks.append(
            ContextBlock(
                block_id=f"dep_note_{dep.id}",
                elements=[MarkdownTextObject(text=truncate(note, MAX_SECTION_TEXT))],
            )
        )
    text = f"{mrkdwn_escape(dep.template_name)} on {gpu_summary(dep)}: {dep.status}"
    return message_payload(blocks, text)
