"""Texts the status poller posts besides the status message (pure).

* In the status message's thread, mentioning the requester: ready, failed, gone, stopped
  outside the bot. These never carry a secret.
* By DM to the requester only: the secrets needed to log in (the password/token the deploy
  service generated for the template's ``password_env``, or Vast.ai's ``jupyter_token`` for an
  image that uses Vast's own Jupyter). DESIGN.md, data flow step 6.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.blocks.common import message_payload, truncate
from bot.blocks.status import app_urls, ssh_command
from bot.formats import mrkdwn_escape
from catalog import Template
from storage import DeploymentRecord

__all__ = [
    "failed_text",
    "has_secret",
    "gone_text",
    "ready_text",
    "secrets_dm",
    "short_gpu",
    "stopped_outside_text",
]


def short_gpu(dep: DeploymentRecord) -> str:
    """``1× RTX 4090``, the GPU's name (Vast.ai's text) escaped for mrkdwn."""
    return f"{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 100))}"


def _what(dep: DeploymentRecord) -> str:
    return f"your {mrkdwn_escape(dep.template_name)} on {short_gpu(dep)}"


def has_secret(dep: DeploymentRecord, template: Template | None, jupyter_token: str | None) -> bool:
    """True when :func:`secrets_dm` has a login to send for ``dep`` (a stored web password,
    even one that cannot be decrypted: the DM then says so)."""
    if dep.web_password:
        return True
    return bool(jupyter_token) and (template is None or template.password_env is None)


def ready_text(
    dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None = None
) -> str:
    """Thread reply: ``<@U…> your JupyterLab on 1× RTX 4090 is ready: <url>`` plus a pointer to
    the DM when there are login secrets. No secret is included."""
    urls = [url for _, url in app_urls(dep, template)]
    text = f"<@{dep.user_id}> {_what(dep)} is ready"
    text += f": {' · '.join(f'<{url}|{url}>' for url in urls)}" if urls else "."
    if has_secret(dep, template, jupyter_token):
        text += "\nI sent you the login details by DM."
    return text


def _secret_label(env_name: str) -> str:
    upper = env_name.upper()
    if "TOKEN" in upper:
        return "Token"
    if "KEY" in upper:
        return "API key"
    return "Password"


def secrets_dm(
    dep: DeploymentRecord,
    template: Template | None,
    *,
    jupyter_token: str | None = None,
    unreadable: str | None = None,
) -> dict[str, Any] | None:
    """DM payload (``{"text", "blocks"}``) with the login secrets for the requester, or None
    when the deployment has none. ``dep.web_password`` must be the password in plain text (the
    caller decrypts it); ``unreadable`` instead is the sentence shown when it could not be
    decrypted (``dep.web_password`` is then ignored, never shown). ``jupyter_token`` (the
    instance's, from Vast.ai's instance data) is shown only when the template brings no
    password of its own."""
    if not has_secret(dep, template, jupyter_token) and unreadable is None:
        return None
    urls = [url for _, url in app_urls(dep, template)]
    name = mrkdwn_escape(dep.template_name)
    lines = [f"*{name}* on {short_gpu(dep)} (deployment #{dep.id}) is ready."]
    if unreadable is not None:
        env_name = (template.password_env if template else None) or "WEB_PASSWORD"
        lines.append(f"• {_secret_label(env_name)} (`{env_name}`): {unreadable}")
    elif dep.web_password:
        env_name = (template.password_env if template else None) or "WEB_PASSWORD"
        label = _secret_label(env_name)
        lines.append(f"• {label} (`{env_name}`): `{dep.web_password}`")
        if template is not None and "WEB_USER" in template.env:
            lines.append(f"• User: `{mrkdwn_escape(template.env['WEB_USER'])}`")
        if urls and env_name.upper() == "JUPYTER_TOKEN":
            login = f"{urls[0]}lab?token={dep.web_password}"
            lines.append(f"• Log in directly: <{login}|{urls[0]}lab>")
        elif urls and label == "API key":
            lines.append(f"• Send it as `Authorization: Bearer …` to {urls[0]}")
    elif jupyter_token:
        lines.append(f"• Vast.ai Jupyter token: `{jupyter_token}`")
    ssh = ssh_command(dep)
    if ssh:
        lines.append(f"• SSH: `{ssh}` (with the SSH key of your Vast.ai account)")
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=truncate("\n".join(lines), 3000))),
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Only you got this message. Share the secret only with people you trust."
                )
            ]
        ),
    ]
    text = f"Login details for your {name} (deployment #{dep.id})"
    return message_payload(blocks, text)


def failed_text(dep: DeploymentRecord) -> str:
    """Thread reply when a deployment failed: the reason (what happened, what to do)."""
    reason = dep.reason or "Something went wrong on Vast.ai."
    return truncate(f"<@{dep.user_id}> {_what(dep)} failed. {reason}", 3000)


def gone_text(dep: DeploymentRecord) -> str:
    """Thread reply when the instance disappeared from Vast.ai."""
    reason = dep.reason or "The instance is gone from Vast.ai."
    return truncate(f"<@{dep.user_id}> {_what(dep)} is gone. {reason}", 3000)


def stopped_outside_text(dep: DeploymentRecord) -> str:
    """Thread reply when Vast.ai reports a ready instance stopped without the bot asking
    (out of credit, outbid, or stopped in the Vast.ai console)."""
    return (
        f"<@{dep.user_id}> {_what(dep)} was stopped on Vast.ai (out of credit, outbid, or "
        "stopped in the Vast.ai console). Disk storage still bills: start it again or destroy "
        "it with the buttons above."
    )


#: At most this many instance ids are named in :func:`labelled_on_empty_database_text`.
LISTED_INSTANCES = 20


def labelled_on_empty_database_text(instance_ids: Sequence[int]) -> str:
    """DM to each bot admin when the bot started on a database without deployments and found
    instances its label names on the Vast.ai account (``instance_ids``, ascending; at most
    :data:`LISTED_INSTANCES` are named): what it means and what to do. No secret."""
    shown = ", ".join(str(i) for i in instance_ids[:LISTED_INSTANCES])
    more = len(instance_ids) - LISTED_INSTANCES
    if more > 0:
        shown += f" and {more} more"
    return (
        f":warning: The bot started with an empty database, but the Vast.ai account holds "
        f"{len(instance_ids)} instance(s) labelled by this bot: {shown}. They belong to another "
        "installation of the bot sharing this account, or to this one before its database was "
        "lost. The bot leaves them alone (it never destroys them) and lists them as unmanaged; "
        "they may still be billing. Check them in the Vast.ai console and destroy the ones "
        "nobody uses."
    )


def labelled_without_row_text(instance_ids: Sequence[int]) -> str:
    """DM to each bot admin when the bot found instances labelled by this installation for
    deployments its database does not hold (``instance_ids``, ascending; at most
    :data:`LISTED_INSTANCES` are named), e.g. after the database was restored from a backup
    older than them: what it means and what to do. No secret."""
    shown = ", ".join(str(i) for i in instance_ids[:LISTED_INSTANCES])
    more = len(instance_ids) - LISTED_INSTANCES
    if more > 0:
        shown += f" and {more} more"
    return (
        f":warning: The Vast.ai account holds {len(instance_ids)} instance(s) labelled by this "
        f"bot for deployments its database does not know: {shown}. This happens when the "
        "database was restored from a backup taken before they were rented. The bot leaves "
        "them alone (it never destroys them: they may hold someone's work) and lists them as "
        "unmanaged; they may still be billing. Check them in the Vast.ai console, tell their "
        "owners, and destroy the ones nobody uses."
    )
