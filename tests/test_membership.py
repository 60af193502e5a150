"""The membership rule (:mod:`bot.services.membership`) with in-memory fakes, and its Slack
side (:mod:`bot.slack.members`) against the fake Slack."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from slack_sdk import WebClient

from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services.membership import (
    LookupFailed,
    MembershipService,
    SlackMember,
    Standing,
    refusal_text,
)
from bot.slack.members import member_lookup, member_of

A, B = "T0AAAAAA1", "T0BBBBBB2"
ALICE, BOB = "U0ALICE01", "U0BOB0002"


@dataclass
class FakeUsers:
    """``users.info`` per workspace in memory: ``people[(workspace, user)]`` is what Slack
    says (absent: not found); ``fail`` makes every call raise :class:`LookupFailed`."""

    people: dict[tuple[str, str], SlackMember] = field(default_factory=dict)
    fail: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, workspace: str, user_id: str) -> SlackMember | None:
        self.calls.append((workspace, user_id))
        if self.fail:
            raise LookupFailed("users.info unavailable: TimeoutError")
        return self.people.get((workspace, user_id))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service(
    users: FakeUsers,
    *,
    let_in: set[tuple[str, str]] | None = None,
    installed: str | None = None,
    clock: Clock | None = None,
    entries: int = 100,
) -> MembershipService:
    return MembershipService(
        lookup=users,
        let_in=(lambda w, u: (w, u) in (let_in or set())),
        installed_team=(lambda: installed) if installed is not None else None,
        cache_entries=entries,
        monotonic=clock or Clock(),
    )


def test_a_person_of_the_workspace_is_a_member_without_asking_slack() -> None:
    users = FakeUsers()
    verdict = service(users).check(A, ALICE, A)
    assert verdict.allowed and verdict.why == "same team"
    assert users.calls == []


def test_another_team_and_not_found_by_the_workspace_is_an_outsider() -> None:
    users = FakeUsers()
    members = service(users)
    verdict = members.check(A, BOB, B)
    assert verdict.standing == Standing.OUTSIDER and not verdict.allowed
    assert users.calls == [(A, BOB)]  # asked with A's users.info, not B's
    text = members.refusal(A, BOB, B, "deploy GPUs")
    assert text is not None and "You are not a member of this workspace" in text
    assert "deploy GPUs" in text and "Ask someone who belongs to this workspace" in text


def test_another_team_found_in_the_workspace_is_a_member() -> None:
    # Shared channels / Grid: the payload names another team, the workspace's own users.info
    # finds the person as its member.
    users = FakeUsers(people={(A, BOB): SlackMember(team_id=A)})
    assert service(users).check(A, BOB, B).allowed
    # Found, but as a person of another workspace (Slack Connect's external users).
    users = FakeUsers(people={(A, BOB): SlackMember(team_id=B)})
    assert service(users).check(A, BOB, B).standing == Standing.OUTSIDER


def test_an_absent_user_team_is_looked_up() -> None:
    users = FakeUsers(people={(A, ALICE): SlackMember(team_id=A)})
    members = service(users)
    assert members.check(A, ALICE, None).allowed
    assert members.check(A, BOB, None).standing == Standing.OUTSIDER
    assert users.calls == [(A, ALICE), (A, BOB)]


def test_enterprise_grid_workspaces_and_deactivated_accounts() -> None:
    users = FakeUsers(
        people={
            (A, ALICE): SlackMember(team_id=B, teams=frozenset({A, B})),
            (A, BOB): SlackMember(team_id=A, deleted=True),
        }
    )
    members = service(users)
    assert members.check(A, ALICE, B).allowed  # a Grid user of both workspaces
    assert not members.check(A, BOB, B).allowed  # deactivated


def test_the_answer_is_cached_for_its_time_then_asked_again() -> None:
    clock = Clock()
    users = FakeUsers()
    members = service(users, clock=clock)
    assert not members.check(A, BOB, B).allowed
    assert members.check(A, BOB, B).why == "cached"
    clock.now += 599
    assert not members.check(A, BOB, B).allowed
    assert users.calls == [(A, BOB)]
    users.people[(A, BOB)] = SlackMember(team_id=A)  # Bob joined A
    clock.now += 2
    assert members.check(A, BOB, B).allowed
    assert users.calls == [(A, BOB), (A, BOB)]


def test_the_cache_is_bounded() -> None:
    users = FakeUsers()
    members = service(users, entries=3)
    for n in range(5):
        members.check(A, f"U0PERSON{n}", B)
    assert len(members._cache) == 3
    members.check(A, "U0PERSON0", B)  # dropped: asked again
    assert users.calls.count((A, "U0PERSON0")) == 2


def test_slack_not_answering_refuses_safely_and_caches_nothing() -> None:
    users = FakeUsers(fail=True)
    members = service(users)
    verdict = members.check(A, BOB, B)
    assert verdict.standing == Standing.UNKNOWN and not verdict.allowed
    text = refusal_text(verdict, "stop, start, destroy or change deployments")
    assert text is not None and "try again in a moment" in text and "nothing changed" in text
    users.fail = False
    users.people[(A, BOB)] = SlackMember(team_id=A)
    assert members.check(A, BOB, B).allowed  # asked again: the failure was not remembered


def test_people_the_workspace_let_in_need_no_lookup() -> None:
    users = FakeUsers()
    members = service(users, let_in={(A, BOB)})
    assert members.check(A, BOB, B).why == "let in"
    assert not service(users, let_in={(B, BOB)}).check(A, BOB, B).allowed  # B's, not A's
    assert users.calls == [(A, BOB)]


def test_a_failing_let_in_falls_back_to_slack() -> None:
    users = FakeUsers(people={(A, BOB): SlackMember(team_id=A)})

    def broken(workspace: str, user: str) -> bool:
        raise RuntimeError("database down")

    members = MembershipService(lookup=users, let_in=broken)
    assert members.check(A, BOB, B).allowed


def test_no_user_or_no_workspace_is_never_a_member() -> None:
    users = FakeUsers()
    assert not service(users).check(A, "", A).allowed
    assert not service(users).check(None, ALICE, None).allowed
    assert not service(users).check("", ALICE, None).allowed
    assert users.calls == []


def test_single_mode_checks_against_the_installed_workspace_cheaply() -> None:
    users = FakeUsers(people={(A, ALICE): SlackMember(team_id=A)})
    members = service(users, installed=A)
    assert members.check(A, ALICE, A).allowed
    assert members.check(A, ALICE, None).allowed  # a command run in the installed workspace
    assert users.calls == []
    # A payload naming another workspace still spends A's account: checked against A.
    assert members.check(B, BOB, B).standing == Standing.OUTSIDER
    assert members.check(B, ALICE, B).allowed  # A's users.info knows Alice
    assert members.check(B, BOB, None).standing == Standing.OUTSIDER  # a command from B
    assert users.calls == [(A, BOB), (A, ALICE)]  # the third answer came from the cache


def test_single_mode_without_the_installed_workspace_decides_on_the_payload() -> None:
    users = FakeUsers()
    members = service(users, installed="")
    assert members.check(A, ALICE, None).allowed
    assert members.check(A, ALICE, A).allowed
    assert not members.check(A, BOB, B).allowed


# -- the Slack side ----------------------------------------------------------------------------


def test_member_of_reads_users_info_defensively() -> None:
    assert member_of(None) is None and member_of("x") is None
    assert member_of({"team_id": A}) == SlackMember(team_id=A)
    grid = member_of({"team_id": A, "deleted": True, "enterprise_user": {"teams": [A, B, 7]}})
    assert grid == SlackMember(team_id=A, teams=frozenset({A, B}), deleted=True)
    assert member_of({"team_id": 5, "enterprise_user": "x"}) == SlackMember(team_id=None)


def test_member_lookup_against_the_fake_slack(fake_slack: FakeSlack) -> None:
    fake_slack.users_team[BOB] = "T0ELSEWHERE"
    client = WebClient(token="xoxb-test", base_url=fake_slack.api_url)
    lookup = member_lookup(lambda team: client)
    found = lookup(TEAM_ID, ALICE)
    assert found is not None and found.belongs_to(TEAM_ID)
    assert lookup(TEAM_ID, BOB) is None  # user_not_found: Bob is of another workspace
    fake_slack.fail("users.info", "ratelimited", status=429, headers={"Retry-After": "30"})
    with pytest.raises(LookupFailed):
        lookup(TEAM_ID, ALICE)
    assert len(fake_slack.calls_to("users.info")) == 3  # no retry, no wait on Retry-After
    with pytest.raises(LookupFailed, match="no installation"):
        member_lookup(lambda team: None)(TEAM_ID, ALICE)


def test_a_bot_seen_by_check_is_still_no_teammate_from_the_cache() -> None:
    # One users.info answer serves both rules: check() admits the app's own bot user acting in
    # its workspace, teammate() must still refuse it when the answer comes from the cache.
    users = FakeUsers(people={(A, BOB): SlackMember(team_id=A, is_bot=True)})
    members = service(users)
    assert members.check(A, BOB, None).allowed
    verdict = members.teammate(A, BOB)
    assert verdict.standing == Standing.OUTSIDER and verdict.why == "cached"
    assert users.calls == [(A, BOB)]
