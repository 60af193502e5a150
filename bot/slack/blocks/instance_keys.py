"""What the bot says about people's SSH keys on an instance (pure).

Today one note: a key the bot could not remove from the instance (Vast.ai refused, or gave
no id to remove it by), which stays there until the instance is destroyed.
"""

from __future__ import annotations

from bot.formats import mrkdwn_escape
from storage import DeploymentRecord

__all__ = ["key_kept_text"]


def key_kept_text(dep: DeploymentRecord, *, user_id: str, fingerprint: str, reason: str) -> str:
    """The thread note (mrkdwn) for a key that stays: whose (``user_id``, a Slack user id),
    which (``fingerprint``, ``SHA256:…``), why it could not be removed (``reason``, plain
    text, escaped here), and plainly that it stays until the instance is destroyed, with what
    to do when that is not acceptable.

    ``key_kept_text(dep, user_id="U1", fingerprint="SHA256:ab", reason="Vast.ai refused")``
    -> ``":key: The SSH key SHA256:ab of <@U1> could not be removed from *JupyterLab* (#3)
    (Vast.ai refused). Their key stays on the instance until it is destroyed. …"``
    """
    name = f"*{mrkdwn_escape(dep.template_name)}* (#{dep.id})"
    why = mrkdwn_escape(reason.strip().rstrip("."))
    return (
        f":key: The SSH key `{mrkdwn_escape(fingerprint)}` of <@{user_id}> could not be "
        f"removed from {name} ({why}). Their key stays on the instance until it is "
        "destroyed. If they must lose access now, destroy the deployment (the owner or an "
        "admin can)."
    )
