"""Listener classes on their own: built with fakes, their methods called as Bolt would (by
keyword), with no app, server, database or Slack."""

from __future__ import annotations

from typing import Any, cast

from slack_sdk import WebClient

from bot.services.approvals import ApprovalService
from bot.services.home import HomeService
from bot.services.membership import MembershipService
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import templates as template_blocks
from bot.slack.listeners.actions.approvals import ApprovalActions
from bot.slack.listeners.actions.templates import TemplateActions
from bot.slack.listeners.commands.templates import TemplateLists
from bot.slack.listeners.events import HomeEvents
from bot.slack.listeners.middleware import InstalledTeam
from catalog import load_catalog
from tests.fakes.ports import RecordingMessages


class Calls:
    """A callable that records its calls (an ``ack``, a ``respond``, a ``next``)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.calls.append({"args": args, **kwargs})


class FakeHome:
    def __init__(self) -> None:
        self.teams: list[str] = []
        self.refreshed: list[tuple[str, str | None]] = []

    def remember_team(self, team_id: str) -> None:
        self.teams.append(team_id)

    def refresh(self, user_id: str, team_id: str | None = None, **_: Any) -> None:
        self.refreshed.append((user_id, team_id))


class FakeMembership:
    """Everyone belongs to T1 and nobody else does."""

    def refusal(self, team: str | None, user: str, user_team: str | None, act: str) -> str | None:
        return None if team == "T1" else f"not a member: {act}"


def home_events() -> tuple[HomeEvents, FakeHome]:
    home = FakeHome()
    events = HomeEvents(cast(HomeService, home), cast(MembershipService, FakeMembership()))
    return events, home


def test_the_home_tab_is_published_to_a_member_only() -> None:
    events, home = home_events()
    events.on_app_home_opened(event={"tab": "home", "user": "U1"}, body={"team_id": "T1"})
    assert home.refreshed == [("U1", "T1")] and home.teams == ["T1"]
    events.on_app_home_opened(event={"tab": "home", "user": "U2"}, body={"team_id": "T9"})
    events.on_app_home_opened(event={"tab": "messages", "user": "U1"}, body={"team_id": "T1"})
    assert home.refreshed == [("U1", "T1")]  # no outsider, no Messages tab


def test_a_listing_page_is_redrawn_in_place() -> None:
    catalog = load_catalog()
    actions = TemplateActions(catalog, TemplateLists(catalog))
    ack, respond = Calls(), Calls()
    actions.on_page(ack=ack, action={"value": template_blocks.page_value("", 1)}, respond=respond)
    assert len(ack.calls) == 1
    (answer,) = respond.calls
    assert answer["replace_original"] is True and answer["response_type"] == "ephemeral"
    assert answer["blocks"] == TemplateLists(catalog).get("", 1)["blocks"]


def test_the_installed_workspace_is_remembered_before_every_listener() -> None:
    home = FakeHome()
    middleware = InstalledTeam(cast(HomeService, home))
    context = cast(Any, type("Context", (), {"authorize_result": type("R", (), {"team_id": "T1"})}))
    proceed = Calls()
    middleware.remember_installed_team(context=context, next=proceed)
    assert home.teams == ["T1"] and len(proceed.calls) == 1


class FullPool:
    def spawn(self, *args: Any, **kwargs: Any) -> None:
        raise Busy()


def test_an_approval_clicked_while_the_pool_is_full_is_answered_busy_by_dm() -> None:
    """No response_url (a click in the App Home): the clicker is told by DM, nothing decided."""
    messages = RecordingMessages()
    actions = ApprovalActions(
        cast(ApprovalService, object()),
        cast(MembershipService, FakeMembership()),
        messages,
        cast(WorkPool, FullPool()),
    )
    ack = Calls()
    body = {"user": {"id": "U1", "team_id": "T1"}, "team": {"id": "T1"}}
    actions.on_approve(ack=ack, body=body, action={"value": "42"}, client=cast(WebClient, None))
    assert len(ack.calls) == 1
    assert [(c["user_id"], c["text"], c["team_id"]) for c in messages.calls("dm")] == [
        ("U1", BUSY_TEXT, "T1")
    ]
