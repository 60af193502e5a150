"""The Slack side of :class:`bot.services.membership.MemberLookup`: ``users.info`` asked with
the token of the workspace the person claims to act for.

Source: https://api.slack.com/methods/users.info (``user_not_found`` for a user the token's
workspace cannot see: a person of another workspace outside Enterprise Grid) and
https://api.slack.com/types/user (``team_id``, ``deleted``, ``enterprise_user.teams``,
``is_bot``, ``is_app_user``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.membership import LookupFailed, MemberLookup, SlackMember
from bot.slack.clients import TokenUnavailable
from bot.slack.notifier import copy_client

logger = logging.getLogger(__name__)

LOOKUP_TIMEOUT_SECONDS = 2
"""Seconds one ``users.info`` may take (no retries) before Slack counts as not answering."""
NOT_FOUND = frozenset({"user_not_found", "user_not_visible", "users_not_found"})
"""``users.info`` errors that mean "no such person in this workspace"."""


def member_lookup(
    client_for: Callable[[str], WebClient | None],
    *,
    timeout: int = LOOKUP_TIMEOUT_SECONDS,
) -> MemberLookup:
    """A :class:`bot.services.membership.MemberLookup` on each workspace's own client
    (``client_for(team_id)``: :meth:`bot.slack.clients.WorkspaceClients.client_for`; in
    single-workspace mode the one client). ``users.info`` within ``timeout`` seconds and
    without retries; ``user_not_found`` (and its kin, :data:`NOT_FOUND`) is None; any other
    refusal, a timeout, the network or a workspace without a token raises
    :class:`bot.services.membership.LookupFailed`."""

    def lookup(workspace: str, user_id: str) -> SlackMember | None:
        try:
            client = client_for(workspace)
        except TokenUnavailable as error:
            raise LookupFailed(f"no token just now: {error}") from error
        if client is None:
            raise LookupFailed(f"workspace {workspace} has no installation")
        quick = copy_client(client, retry_handlers=[])
        quick.timeout = timeout
        try:
            answer = quick.users_info(user=user_id)
        except SlackApiError as error:
            code = str(error.response.get("error") or "")
            if code in NOT_FOUND:
                return None
            raise LookupFailed(f"users.info refused: {code or 'unknown'}") from error
        except (URLError, OSError, SlackClientError) as error:
            raise LookupFailed(f"users.info unavailable: {type(error).__name__}") from error
        return member_of(answer.get("user"))

    return lookup


def member_of(user: Any) -> SlackMember | None:
    """The :class:`bot.services.membership.SlackMember` of a ``users.info`` ``user`` object
    (untrusted: anything but a dict is None)."""
    if not isinstance(user, dict):
        return None
    team = user.get("team_id")
    enterprise = user.get("enterprise_user")
    teams = enterprise.get("teams") if isinstance(enterprise, dict) else None
    return SlackMember(
        team_id=str(team) if isinstance(team, str) and team else None,
        teams=frozenset(t for t in teams if isinstance(t, str))
        if isinstance(teams, list)
        else frozenset(),
        deleted=user.get("deleted") is True,
        is_bot=user.get("is_bot") is True or user.get("is_app_user") is True,
    )
