"""What every listener reads from Slack's payloads the same way."""

from __future__ import annotations

from typing import Any


def team_of(body: dict[str, Any]) -> str | None:
    """The workspace an interactivity payload (block_actions, view_submission) came from:
    ``team.id``, else ``user.team_id``; None when it names none (untrusted input)."""
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    return str(team) if team else None


def user_of(body: dict[str, Any]) -> str:
    """The member who clicked or submitted in an interactivity payload: ``user.id``; ``""`` when
    it names none (untrusted input: the membership check refuses an empty id)."""
    return str((body.get("user") or {}).get("id") or "")
