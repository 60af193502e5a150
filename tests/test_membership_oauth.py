"""Who acts for which workspace, end to end: a request that names workspace A but is made by a
person of workspace B (``user.team_id`` B, as Slack Connect and Enterprise Grid deliver
them) spends nothing of A's, posts nothing in A's channels, and learns nothing of A's
deployments; a deployment id of another workspace answers as a missing one.

OAuth mode runs the real bot over HTTP against the fake Slack (whose ``users.info`` answers
``user_not_found`` for a person of another workspace, as Slack does) and the two-account
Vast.ai simulator (:mod:`tests.fixtures.oauth`); single-workspace mode uses
:mod:`tests.fixtures.slack`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import storage
from bot.services.actions import NOT_FOUND_TEXT
from bot.slack.blocks.lifetimes import extend_action_id, extend_value
from bot.slack.blocks.status import ACTION_CREDENTIALS, ACTION_DESTROY, ACTION_START, ACTION_STOP
from bot.slack.blocks.templates import ACTION_DEPLOY
from tests.fixtures.oauth import (
    ALICE_A,
    BOB_B,
    CHANNELS,
    KEY_A,
    KEY_B,
    TEAM_A,
    TEAM_B,
    TOKEN_A,
    OAuthBot,
)
from tests.fixtures.slack import ALICE, BotHarness
from tests.test_deploy import submitted_view, wait_until
from tests.test_manage import click, make_deployment
from tests.test_oauth_workspaces import (
    JUPYTER,
    current,
    install_both,
    instance_writes,
    offer_option,
    set_key,
    two_rented,
)

NOT_A_MEMBER = "You are not a member of this workspace"
RENTS = ("/api/v0/asks/", "/api/v0/bundles/")


def open_picker(ob: OAuthBot, team: str, user: str) -> tuple[str, dict[str, Any]]:
    """``user`` of ``team`` presses **Deploy**: the picker's view id and its view once it
    shows offers."""
    opens = len(ob.slack.calls_to("views.open"))
    assert ob.team(team).block_action(ACTION_DEPLOY, JUPYTER, user=user).status_code == 200
    opened = ob.slack.wait_for("views.open", count=opens + 1)[-1]
    view_id = str(opened.answer["view"]["id"]) if opened.answer else ""
    shown = wait_until(
        lambda: (
            (view := ob.slack.views.get(view_id))
            and any(b.get("block_id") == "offer_block" for b in view.get("blocks") or [])
            and view
        )
    )
    return view_id, shown


def shown_in_modal(ob: OAuthBot, response: Any, view_id: str) -> str:
    """What a view_submission's answer shows: its ack's view, or (after a "checking…" ack)
    the modal as the bot updated it."""
    body = response.json() if response.content else {}
    if body.get("response_action") == "update" and "checking" not in json.dumps(body).lower():
        return json.dumps(body["view"])
    updated = ob.slack.wait_for("views.update", view_id=view_id)
    return json.dumps(updated[-1].args["view"])


def vast_reads_and_rents(ob: OAuthBot) -> list[str]:
    """Offer searches and rentals the simulator got."""
    return [r.path for r in ob.sim.requests if r.path.startswith(RENTS)]


def test_a_picker_submission_by_a_person_of_another_workspace_rents_nothing_there(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    assert set_key(ob, TEAM_B, KEY_B) == {"response_action": "clear"}
    view_id, picker = open_picker(ob, TEAM_A, ALICE_A)
    view = submitted_view(
        None,
        slug=JUPYTER,
        disk=str(ob.services.catalog.get(JUPYTER).disk_gb),
        channel=CHANNELS[TEAM_A],
        view_id=view_id,
        metadata=picker["private_metadata"],
    )
    view["state"]["values"]["offer_block"] = {
        "gpu_offer": {"type": "static_select", "selected_option": offer_option(picker)}
    }
    ob.sim.clear_requests()
    ob.slack.reset()

    # Signed, naming workspace A and A's channel, made by Bob of workspace B.
    response = ob.team(TEAM_A).view_submission(view, user=BOB_B, user_team=TEAM_B)

    assert response.status_code == 200
    assert response.json() != {"response_action": "clear"}, (
        "a submission naming A by a person of B was accepted: it rents on A's Vast.ai account"
    )
    shown = shown_in_modal(ob, response, view_id)
    assert NOT_A_MEMBER in shown and "deploy" in shown
    sf = ob.services.session_factory
    assert storage.list_for_team(sf, TEAM_A) == [] and storage.list_for_team(sf, TEAM_B) == []
    assert vast_reads_and_rents(ob) == [], "A's Vast.ai account was used"
    assert not ob.slack.calls_to("chat.postMessage"), "something was posted in A's channel"
    # Decided by A's own users.info, with A's token: Bob is not found there.
    (lookup,) = [c for c in ob.slack.calls_to("users.info") if c.args.get("user") == BOB_B]
    assert lookup.token == TOKEN_A

    # The same submission by a member of A goes through (the check is the person, not the form).
    again = {**view, "id": view_id}
    accepted = ob.team(TEAM_A).view_submission(again, user=ALICE_A)
    assert accepted.json() == {"response_action": "clear"}, accepted.json()
    wait_until(lambda: storage.list_for_team(sf, TEAM_A))


def test_a_person_of_another_workspace_gets_no_picker_there(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    ob.sim.clear_requests()
    opens = len(ob.slack.calls_to("views.open"))
    response = ob.team(TEAM_A).block_action(ACTION_DEPLOY, JUPYTER, user=BOB_B, user_team=TEAM_B)
    assert response.status_code == 200
    opened = ob.slack.wait_for("views.open", count=opens + 1)[-1]
    view_id = str(opened.answer["view"]["id"]) if opened.answer else ""
    shown = wait_until(
        lambda: (
            (view := ob.slack.views.get(view_id))
            and NOT_A_MEMBER in json.dumps(view)
            and json.dumps(view)
        )
    )
    assert "offer_block" not in shown
    assert vast_reads_and_rents(ob) == [], "offers were searched on A's account for B's person"


@pytest.mark.parametrize("action_id", [ACTION_STOP, ACTION_DESTROY, ACTION_CREDENTIALS])
def test_another_workspaces_deployment_buttons_change_nothing_and_name_nothing(
    oauth_bot: OAuthBot, action_id: str
) -> None:
    ob = oauth_bot
    a, _ = two_rented(ob)
    sf = ob.services.session_factory
    events_before = storage.list_events(sf, a.id)
    ob.sim.clear_requests()
    ob.slack.reset()

    # Bob (workspace B) presses a button on A's deployment inside A (a shared channel) ...
    inside = ob.team(TEAM_A).block_action(action_id, str(a.id), user=BOB_B, user_team=TEAM_B)
    assert inside.status_code == 200
    # ... and in his own workspace, with A's deployment id.
    assert ob.team(TEAM_B).block_action(action_id, str(a.id), user=BOB_B).status_code == 200
    answers = {c.team_id: str(c.args.get("text")) for c in ob.slack.wait_for("response_url", 2)}

    inside_a = answers[TEAM_A]
    assert NOT_A_MEMBER in inside_a, inside_a
    for secret in ("JupyterLab", ALICE_A, f"#{a.id}"):
        assert secret not in inside_a, f"the refusal told an outsider of A's deployment: {inside_a}"
    assert answers[TEAM_B] == NOT_FOUND_TEXT, "another workspace's deployment must be not found"
    assert instance_writes(ob, a.instance_id) == []
    assert current(ob, a).status == "ready"
    assert storage.list_events(sf, a.id) == events_before, "A's row recorded Bob's click"
    assert not ob.slack.calls_to("chat.postMessage"), "something was posted (a DM of a login?)"


def test_another_workspaces_person_cannot_extend_or_start_there(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    a, _ = two_rented(ob)
    before = current(ob, a)
    ob.slack.reset()
    ends = before.ends_at or ob.clock()
    client = ob.team(TEAM_A)
    client.block_action(
        extend_action_id(4),
        extend_value(a.id, 4, ends),
        user=BOB_B,
        user_team=TEAM_B,
        is_ephemeral=False,
    )
    client.block_action(ACTION_START, str(a.id), user=BOB_B, user_team=TEAM_B)
    answers = [str(c.args.get("text")) for c in ob.slack.wait_for("response_url", count=2)]
    assert all(NOT_A_MEMBER in text and "JupyterLab" not in text for text in answers), answers
    after = current(ob, a)
    assert (after.ends_at, after.lifetime_hours) == (before.ends_at, before.lifetime_hours)


def test_commands_of_a_person_of_another_workspace_are_refused_there(oauth_bot: OAuthBot) -> None:
    ob = oauth_bot
    a, _ = two_rented(ob)
    for sub in ("running", "mine", "costs", "credit", "budget", "audit"):
        answer = ob.team(TEAM_A).command(sub, user=BOB_B)
        text = json.dumps(answer.json() if answer.content else {})
        assert NOT_A_MEMBER in text and "JupyterLab" not in text and f"#{a.id}" not in text, (
            sub,
            text,
        )
    # A's own member still sees A's deployments (one users.info, then the cache).
    looked_up = len(ob.slack.calls_to("users.info"))
    for _ in range(3):
        assert "JupyterLab" in json.dumps(ob.team(TEAM_A).command("running", user=ALICE_A).json())
    alice = [c for c in ob.slack.calls_to("users.info")[looked_up:] if c.args["user"] == ALICE_A]
    assert len(alice) <= 1


# -- single-workspace mode ---------------------------------------------------------------------


def test_single_mode_a_person_of_another_team_cannot_stop_a_deployment(bot: BotHarness) -> None:
    dep = make_deployment(bot)
    carol = "U0CAROL09"
    bot.slack.users_team[carol] = "T0ELSEWHERE"  # Slack Connect: a person of another team
    bot.slack.reset()
    outsider = {"id": carol, "username": "carol", "name": "carol", "team_id": "T0ELSEWHERE"}
    click(bot, ACTION_STOP, dep, extra={"user": outsider})
    (answer,) = bot.slack.wait_for("response_url")
    assert NOT_A_MEMBER in str(answer.args.get("text")), answer.args
    assert storage.get_deployment(bot.services.session_factory, dep.id).status == "ready"
    # Users of the installed workspace are decided without any call to Slack.
    bot.slack.reset()
    click(bot, ACTION_STOP, dep, user=ALICE)
    wait_until(
        lambda: storage.get_deployment(bot.services.session_factory, dep.id).status == "stopped"
    )
    assert not bot.slack.calls_to("users.info") and not bot.slack.calls_to("auth.test")


def test_a_person_of_another_workspace_gets_no_home_tab_of_this_one(oauth_bot: OAuthBot) -> None:
    """The Home tab shows the workspace's spend this month: a person of another workspace
    who opens this workspace's App Home (a Slack Connect channel) is not shown it."""
    ob = oauth_bot
    install_both(ob)
    ob.slack.reset()
    assert ob.team(TEAM_A).event({"type": "app_home_opened", "user": BOB_B, "tab": "home"})
    assert ob.team(TEAM_A).event({"type": "app_home_opened", "user": ALICE_A, "tab": "home"})
    published = wait_until(lambda: ob.slack.calls_to("views.publish"))
    wait_until(lambda: ob.slack.calls_to("users.info"))
    assert [c.args.get("user_id") for c in published] == [ALICE_A]
    assert not [c for c in ob.slack.calls_to("views.publish") if c.args.get("user_id") == BOB_B], (
        "the Home of workspace A was published to a person of workspace B"
    )
