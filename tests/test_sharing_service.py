"""The sharing service with in-memory fakes (Slack messages, ``users.info``) on a real
database: who may share, who can be added, what is written and said, the collaborators'
permissions and their once-only ready DMs; and the Share modal's pure blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

import storage
from bot.services import manage as actions
from bot.services.accounts import VastAccounts
from bot.services.admins import StaticAdmins
from bot.services.manage import ManageMessages, ManageService
from bot.services.membership import LookupFailed, MembershipService, SlackMember
from bot.services.ports import NO_TEMPLATES, LoginMessages
from bot.services.sharing import (
    SharingMessages,
    SharingService,
    access_text,
    change_text,
    send_ready_dms,
)
from bot.slack import limits as slack_limits
from bot.slack.blocks import sharing as blocks
from bot.slack.blocks.home import home_view
from bot.slack.blocks.manage import deployment_list_message
from bot.slack.blocks.status import deployment_buttons, status_message
from catalog import Template
from storage import DeploymentRecord, SessionFactory, repo
from storage import collaborators as collab
from tests.blockkit import buttons, texts
from tests.factories import new_deployment
from tests.fakes.ports import RecordingMessages

TEAM, OTHER_TEAM = "T0GPU0001", "T0OTHER01"
OWNER, BOB, CAROL, DAVE, ADMIN = "U0OWNER01", "U0BOB0002", "U0CAROL03", "U0DAVE004", "U0ADMIN01"
OUTSIDER, APP_USER, GONE = "U0OUTSIDE", "U0APPUSER", "U0FLAKY01"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class ShareMessages(RecordingMessages):
    """The messages port, recording; the logins DMed as ``(deployment id, user_id)``, and a
    login DM to anyone in ``refuse_logins_to`` refused by Slack."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[int, str]] = []
        self.refuse_logins_to: set[str] = set()

    def secrets(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        *,
        user_id: str,
        has_ssh_key: bool,
        jupyter_token: str | None = None,
        keys_on_instance: bool = True,
    ) -> bool | None:
        sent = super().secrets(
            dep,
            template,
            user_id=user_id,
            has_ssh_key=has_ssh_key,
            jupyter_token=jupyter_token,
            keys_on_instance=keys_on_instance,
        )
        if user_id in self.refuse_logins_to:
            return False
        self.logins.append((dep.id, user_id))
        return sent


def lookup(workspace: str, user_id: str) -> SlackMember | None:
    """``users.info`` of workspace ``TEAM``: OUTSIDER is another workspace's (not found),
    APP_USER is an app's user, GONE cannot be looked up just now."""
    if user_id == GONE:
        raise LookupFailed("timeout")
    if user_id == OUTSIDER:
        return None
    return SlackMember(team_id=TEAM, is_bot=user_id == APP_USER)


@dataclass
class World:
    sf: SessionFactory
    messages: ShareMessages
    manage: ManageService
    sharing: SharingService
    homes: list[tuple[str, str]]


@dataclass
class RecordingHomes:
    """The Home refreshes sharing asks for, as ``(user_id, team_id)``."""

    refreshed: list[tuple[str, str]]

    def refresh(self, user_id: str, team_id: str | None = None) -> bool:
        self.refreshed.append((user_id, team_id or ""))
        return True


@pytest.fixture
def world(session_factory: SessionFactory) -> World:
    messages = ShareMessages()
    manage = ManageService(
        session_factory=session_factory,
        accounts=cast(VastAccounts, None),  # sharing sends nothing to Vast.ai
        messages=cast(ManageMessages, messages),
        templates=NO_TEMPLATES,
        admins=StaticAdmins(frozenset({ADMIN})),
        clock=lambda: T0,
    )
    homes: list[tuple[str, str]] = []
    sharing = SharingService(
        session_factory=session_factory,
        manage=manage,
        membership=MembershipService(lookup=lookup),
        messages=cast(SharingMessages, messages),
        templates=NO_TEMPLATES,
        homes=RecordingHomes(homes),
        clock=lambda: T0,
        max_people=3,
    )
    return World(session_factory, messages, manage, sharing, homes)


def make(sf: SessionFactory, status: str = "ready", *, key: str = "k1") -> DeploymentRecord:
    return new_deployment(
        sf,
        status=status,
        key=key,
        team_id=TEAM,
        user_id=OWNER,
        channel_id="C1",
        web_password="s3cret",
        now=T0,
        instance_id=4242,
        message="1.000100",
    )


def events(sf: SessionFactory, dep: DeploymentRecord, action: str) -> list[tuple[str, str | None]]:
    return [(e.actor, e.detail) for e in storage.list_events(sf, dep.id) if e.action == action]


# --- who may share, who can be added ----------------------------------------------------------


def test_the_owner_shares_and_everyone_concerned_is_told(world: World) -> None:
    dep = make(world.sf)
    form = world.sharing.form(dep.id, OWNER, team_id=TEAM)
    assert not isinstance(form, actions.Outcome) and form.collaborators == ()

    result = world.sharing.submit(dep.id, OWNER, [BOB, OWNER, BOB], [], team_id=TEAM)
    assert result.refusal is None and result.field_error is None
    assert result.added == (BOB,) and result.removed == () and result.collaborators == (BOB,)
    assert f"Shared *JupyterLab* (#{dep.id}) with <@{BOB}>" in result.message
    assert "their own login by DM now" in result.message
    assert collab.collaborator_ids(world.sf, dep.id) == [BOB]
    assert events(world.sf, dep, "shared") == [(OWNER, f"with <@{BOB}>")]

    world.sharing.announce(result)
    [(note_dep, note)] = world.messages.notes
    assert note_dep == dep.id and f"<@{OWNER}> changed who has access" in note
    assert f"Who has access now: <@{OWNER}> (owner), <@{BOB}>, and the bot admins." in note
    [(to, intro)] = world.messages.dms
    assert to == BOB and f"<@{OWNER}> shared *JupyterLab*" in intro and "Destroy" in intro
    assert world.messages.logins == [(dep.id, BOB)]  # their own login, at once: it is ready
    assert world.homes == [(OWNER, TEAM), (BOB, TEAM)]

    # Once: neither another announcement nor the poller sends the login again.
    assert (
        send_ready_dms(
            world.sf, cast(LoginMessages, world.messages), dep, None, jupyter_token=None, now=T0
        )
        == 0
    )
    assert world.messages.logins == [(dep.id, BOB)]


def test_a_teammate_who_is_neither_owner_nor_admin_cannot_share(world: World) -> None:
    dep = make(world.sf)
    collab.add_collaborator(world.sf, dep.id, BOB, added_by=OWNER)
    for who in (BOB, CAROL):
        form = world.sharing.form(dep.id, who, team_id=TEAM)
        assert isinstance(form, actions.Outcome) and form.kind == actions.OutcomeKind.REFUSED
        assert f"Only <@{OWNER}>, who deployed" in form.message and f"<@{ADMIN}>" in form.message
        result = world.sharing.submit(dep.id, who, [DAVE], [BOB], team_id=TEAM)
        assert result.refusal is not None and not result.changed
    shared_note = world.sharing.form(dep.id, BOB, team_id=TEAM)
    assert isinstance(shared_note, actions.Outcome)
    assert "It is shared with you" in shared_note.message
    assert collab.collaborator_ids(world.sf, dep.id) == [BOB]
    assert len(events(world.sf, dep, "share_refused")) == 5  # each refusal recorded


def test_an_admin_may_share_anyones_deployment(world: World) -> None:
    dep = make(world.sf)
    result = world.sharing.submit(dep.id, ADMIN, [CAROL], [], team_id=TEAM)
    assert result.added == (CAROL,)
    assert events(world.sf, dep, "shared") == [(ADMIN, f"with <@{CAROL}>")]


def test_another_workspaces_deployment_is_not_found(world: World) -> None:
    dep = make(world.sf)
    form = world.sharing.form(dep.id, OWNER, team_id=OTHER_TEAM)
    assert isinstance(form, actions.Outcome) and form.kind == actions.OutcomeKind.NOT_FOUND
    assert world.sharing.submit(dep.id, OWNER, [BOB], [], team_id=OTHER_TEAM).refusal
    assert events(world.sf, dep, "share_refused") == []


@pytest.mark.parametrize(
    ("person", "words"),
    [
        (OUTSIDER, "not an active member of this workspace"),
        (APP_USER, "not an active member of this workspace"),
        (GONE, "could not check with Slack"),
    ],
    ids=["other-workspace", "app-user", "slack-silent"],
)
def test_only_people_of_the_workspace_can_be_added(world: World, person: str, words: str) -> None:
    dep = make(world.sf)
    result = world.sharing.submit(dep.id, OWNER, [BOB, person], [], team_id=TEAM)
    assert result.field_error is not None and words in result.field_error
    assert not result.changed
    assert collab.collaborator_ids(world.sf, dep.id) == []  # nothing changed, not even Bob
    assert events(world.sf, dep, "shared") == []


def test_slackbot_cannot_be_added(world: World) -> None:
    dep = make(world.sf)
    result = world.sharing.submit(dep.id, OWNER, ["USLACKBOT"], [], team_id=TEAM)
    assert result.field_error is not None


def test_teammate_asks_slack_even_in_single_workspace_mode() -> None:
    asked: list[tuple[str, str]] = []

    def counting(workspace: str, user_id: str) -> SlackMember | None:
        asked.append((workspace, user_id))
        return lookup(workspace, user_id)

    service = MembershipService(
        lookup=counting, let_in=lambda team, user: user == ADMIN, installed_team=lambda: TEAM
    )
    assert service.teammate("", BOB).allowed  # the installed workspace is asked
    assert service.teammate(TEAM, BOB).allowed  # cached
    assert not service.teammate(TEAM, OUTSIDER).allowed
    assert not service.teammate(TEAM, APP_USER).allowed
    assert service.teammate(TEAM, GONE).standing == "unknown"
    assert service.teammate(TEAM, ADMIN).allowed  # let in: no call
    assert asked == [(TEAM, BOB), (TEAM, OUTSIDER), (TEAM, APP_USER), (TEAM, GONE)]
    # A command from the installed workspace is trusted without a call; a teammate is not.
    assert service.check(TEAM, DAVE, None).allowed and (TEAM, DAVE) not in asked


def test_users_info_bots_and_app_users_are_no_people() -> None:
    from bot.slack.members import member_of

    assert member_of({"team_id": TEAM, "is_bot": True}) == SlackMember(TEAM, is_bot=True)
    assert member_of({"team_id": TEAM, "is_app_user": True}) == SlackMember(TEAM, is_bot=True)
    assert member_of({"team_id": TEAM}) == SlackMember(TEAM)


def test_at_most_max_people(world: World) -> None:
    dep = make(world.sf)
    result = world.sharing.submit(dep.id, OWNER, [BOB, CAROL, DAVE, ADMIN], [], team_id=TEAM)
    assert result.field_error is not None and "at most 3 people" in result.field_error


def test_an_ended_deployment_cannot_be_shared(world: World) -> None:
    dep = make(world.sf, "destroyed")
    form = world.sharing.form(dep.id, OWNER, team_id=TEAM)
    assert isinstance(form, actions.Outcome) and form.kind == actions.OutcomeKind.INVALID
    assert "already ended" in form.message


# --- removing, and two people editing at once ------------------------------------------------


def test_removing_someone_deletes_their_row_and_says_their_keys_go(world: World) -> None:
    dep = make(world.sf)
    world.sharing.submit(dep.id, OWNER, [BOB, CAROL], [], team_id=TEAM)
    world.messages.sent.clear()
    world.homes.clear()

    result = world.sharing.submit(dep.id, OWNER, [CAROL], [BOB, CAROL], team_id=TEAM)
    assert result.removed == (BOB,) and result.added == ()
    assert collab.collaborator_ids(world.sf, dep.id) == [CAROL]
    assert events(world.sf, dep, "unshared") == [(OWNER, f"from <@{BOB}>")]
    world.sharing.announce(result)
    [(_, note)] = world.messages.notes
    assert f"Removed <@{BOB}>: they no longer have access." in note
    assert "Their SSH keys will be removed from the instance." in note
    assert f"Who has access now: <@{OWNER}> (owner), <@{CAROL}>, and the bot admins." in note
    assert [to for to, _ in world.messages.dms] == [BOB]
    assert "took away your access" in world.messages.dms[0][1]
    assert world.homes == [(OWNER, TEAM), (BOB, TEAM)]

    everyone_out = world.sharing.submit(dep.id, OWNER, [], [CAROL], team_id=TEAM)
    assert everyone_out.removed == (CAROL,)
    assert "it is shared with nobody" in everyone_out.message


def test_a_submission_changes_only_what_its_author_changed(world: World) -> None:
    dep = make(world.sf)
    world.sharing.submit(dep.id, OWNER, [BOB], [], team_id=TEAM)
    # An admin adds Carol while the owner's modal (opened with Bob) is still open...
    world.sharing.submit(dep.id, ADMIN, [BOB, CAROL], [BOB], team_id=TEAM)
    # ...the owner adds Dave: Carol stays.
    result = world.sharing.submit(dep.id, OWNER, [BOB, DAVE], [BOB], team_id=TEAM)
    assert result.added == (DAVE,) and result.removed == ()
    assert set(collab.collaborator_ids(world.sf, dep.id)) == {BOB, CAROL, DAVE}
    # Saving the same again changes nothing and says so.
    again = world.sharing.submit(dep.id, OWNER, [BOB, DAVE], [BOB, DAVE], team_id=TEAM)
    assert not again.changed and again.message.startswith("Nothing changed.")


# --- the collaborators' ready DMs -----------------------------------------------------------


def test_shared_before_ready_the_login_comes_when_it_is_ready(world: World) -> None:
    dep = make(world.sf, "provisioning")
    result = world.sharing.submit(dep.id, OWNER, [BOB], [], team_id=TEAM)
    assert "when it is ready" in result.message
    world.sharing.announce(result)
    assert world.messages.logins == []
    assert "when it is ready" in world.messages.dms[0][1]
    assert collab.pending_ready_dms(world.sf) == {dep.id}

    assert repo.update_status(
        world.sf, dep.id, expected_status="provisioning", new_status="ready", now=T0
    )
    ready = repo.get_deployment(world.sf, dep.id)
    assert ready is not None
    messages = cast(LoginMessages, world.messages)
    assert send_ready_dms(world.sf, messages, ready, None, jupyter_token=None, now=T0) == 1
    assert send_ready_dms(world.sf, messages, ready, None, jupyter_token=None, now=T0) == 0
    assert world.messages.logins == [(dep.id, BOB)]


def test_a_refused_login_dm_is_given_back_for_a_later_pass(world: World) -> None:
    dep = make(world.sf)
    world.messages.refuse_logins_to.add(BOB)
    result = world.sharing.submit(dep.id, OWNER, [BOB], [], team_id=TEAM)
    world.sharing.announce(result)
    assert world.messages.logins == []
    assert collab.pending_ready_dms(world.sf) == {dep.id}  # still owed
    world.messages.refuse_logins_to.clear()
    later = T0 + timedelta(minutes=1)
    messages = cast(LoginMessages, world.messages)
    assert send_ready_dms(world.sf, messages, dep, None, jupyter_token=None, now=later) == 1
    assert collab.pending_ready_dms(world.sf) == frozenset()


def test_no_login_dm_without_a_login_as_for_the_owner(world: World) -> None:
    dep = make(world.sf)
    world.messages.outcomes["has_secrets"] = False
    world.sharing.announce(world.sharing.submit(dep.id, OWNER, [BOB], [], team_id=TEAM))
    assert world.messages.logins == []


# --- what a collaborator may do --------------------------------------------------------------


def test_a_collaborator_may_stop_start_extend_and_get_the_login_but_not_destroy(
    world: World,
) -> None:
    dep = make(world.sf)
    collab.add_collaborator(world.sf, dep.id, BOB, added_by=OWNER)
    for act in (actions.STOP, actions.START, actions.EXTEND, actions.CREDENTIALS):
        assert world.manage.may(dep, BOB, act), act
        assert not world.manage.may(dep, CAROL, act), act
    assert not world.manage.may(dep, BOB, actions.DESTROY)
    assert world.manage.may(dep, OWNER, actions.DESTROY) and world.manage.may(dep, ADMIN, "destroy")

    _, refusal = world.manage.load_for(dep.id, BOB, actions.DESTROY, team_id=TEAM)
    assert refusal is not None and refusal.kind == actions.OutcomeKind.REFUSED
    assert f"Only <@{OWNER}>, who deployed" in refusal.message
    assert f"a bot admin (<@{ADMIN}>) can destroy it" in refusal.message
    assert "It is shared with you: you may *Stop*, *Start* and *Extend* it" in refusal.message
    assert events(world.sf, dep, "destroy_refused") == [(BOB, "not allowed")]
    loaded, none = world.manage.load_for(dep.id, BOB, actions.STOP, team_id=TEAM)
    assert none is None and loaded is not None

    # Once removed, nothing.
    collab.remove_collaborator(world.sf, dep.id, BOB, actor=OWNER)
    assert not world.manage.may(dep, BOB, actions.STOP)


@dataclass
class WorkspaceAdmins:
    """Bot admins listed per workspace (``team_id`` → user ids), as the workspace setup keeps
    them; no one is an admin everywhere."""

    by_team: dict[str, frozenset[str]]

    def is_admin(self, team_id: str | None, user_id: str) -> bool:
        return user_id in self.by_team.get(team_id or "", frozenset())

    def admins(self, team_id: str | None) -> frozenset[str]:
        return self.by_team.get(team_id or "", frozenset())


def test_a_workspace_admin_may_destroy_its_deployments_and_another_workspaces_admin_nothing(
    session_factory: SessionFactory,
) -> None:
    manage = ManageService(
        session_factory=session_factory,
        accounts=cast(VastAccounts, None),  # may() sends nothing to Vast.ai
        messages=RecordingMessages(),
        templates=NO_TEMPLATES,
        admins=WorkspaceAdmins({TEAM: frozenset({CAROL}), OTHER_TEAM: frozenset({DAVE})}),
        clock=lambda: T0,
    )
    dep = make(session_factory)  # in TEAM, deployed by OWNER
    for act in (actions.DESTROY, actions.STOP, actions.CREDENTIALS, "share"):
        assert manage.may(dep, CAROL, act), act
        assert not manage.may(dep, DAVE, act), act


# --- texts and blocks (pure) -----------------------------------------------------------------


def test_access_texts() -> None:
    dep = replace_status(make_record(), "ready")
    assert access_text(dep, []) == (
        f"Who has access now: <@{OWNER}> (owner) and the bot admins; it is shared with nobody."
    )
    assert access_text(dep, [BOB, CAROL]).endswith(
        f"<@{OWNER}> (owner), <@{BOB}> and <@{CAROL}>, and the bot admins."
    )
    text = change_text(dep, ADMIN, [BOB], [CAROL], [BOB])
    assert text.startswith(f":busts_in_silhouette: <@{ADMIN}> changed who has access")
    assert "s3cret" not in text


def make_record() -> DeploymentRecord:
    return DeploymentRecord(
        id=12,
        team_id=TEAM,
        user_id=OWNER,
        channel_id="C1",
        message_channel="C1",
        message_ts="1.000100",
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        instance_id=4242,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24.0,
        dph_total=0.4,
        disk_gb=16.0,
        status=storage.DeploymentStatus.READY,
        reason=None,
        status_msg=None,
        request_key="k",
        simulated=True,
        web_password="s3cret",
        public_ip=None,
        ports_json=None,
        ssh_host=None,
        ssh_port=None,
        created_at=T0,
        updated_at=T0,
        provisioning_at=T0,
        ready_at=T0,
        ready_notified_at=None,
        secrets_sent_at=None,
        stopped_at=None,
        destroyed_at=None,
        failed_at=None,
        ready_seconds=0.0,
        stopped_seconds=0.0,
        last_state_change_at=T0,
        version=1,
    )


def replace_status(dep: DeploymentRecord, status: str) -> DeploymentRecord:
    from dataclasses import replace

    return replace(dep, status=storage.DeploymentStatus(status))


def test_share_modal_is_within_slacks_limits_and_round_trips() -> None:
    dep = make_record()
    view = blocks.share_modal(dep, [BOB, CAROL], max_people=20).to_dict()
    assert slack_limits.check_view(view) == []
    assert view["callback_id"] == blocks.CALLBACK_SHARE
    element = next(b for b in view["blocks"] if b["block_id"] == blocks.BLOCK_SHARE_USERS)
    assert element["optional"] is True
    assert element["element"]["type"] == "multi_users_select"
    assert element["element"]["initial_users"] == [BOB, CAROL]
    assert element["element"]["max_selected_items"] == 20
    meta = blocks.parse_share_metadata(view["private_metadata"])
    assert meta == blocks.ShareMetadata(12, (BOB, CAROL))
    empty = blocks.share_modal(dep, []).to_dict()
    field_ = next(b for b in empty["blocks"] if b["block_id"] == blocks.BLOCK_SHARE_USERS)
    assert "initial_users" not in field_["element"]


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "[]",
        '{"d": "12", "was": []}',
        '{"d": 0, "was": []}',
        '{"d": 12}',
        '{"d": 12, "was": ["not a user"]}',
        '{"d": 12, "was": [1]}',
        "x" * 4000,
    ],
)
def test_forged_metadata_is_not_read(text: Any) -> None:
    assert blocks.parse_share_metadata(text) is None


def test_selected_users_reads_the_field() -> None:
    def view(value: Any) -> dict[str, Any]:
        return {"state": {"values": {blocks.BLOCK_SHARE_USERS: {blocks.ACTION_SHARE_USERS: value}}}}

    assert blocks.selected_users(view({"selected_users": [BOB, CAROL]})) == [BOB, CAROL]
    assert blocks.selected_users(view({"selected_users": []})) == []
    assert blocks.selected_users(view({"type": "multi_users_select"})) == []
    assert blocks.selected_users(view({"selected_users": ["<@U1>"]})) is None
    assert blocks.selected_users({"state": {"values": {}}}) is None


def test_share_is_on_the_status_message_and_the_owners_home_not_the_collaborators() -> None:
    dep = make_record()
    on_message = [b["action_id"] for b in buttons(status_message(dep, None, now=T0)["blocks"])]
    assert on_message == [
        "deployment_stop",
        "deployment_credentials",
        "deployment_share",
        "deployment_destroy",
    ]
    kwargs: dict[str, Any] = {
        "deployments": [dep],
        "now": T0,
        "user_month": 0.0,
        "workspace_month": 0.0,
        "month_label": "May 2026",
    }
    owners = home_view(**kwargs, viewer=OWNER)
    assert "deployment_share" in [b["action_id"] for b in buttons(owners["blocks"])]
    assert "shared by" not in texts(owners["blocks"])
    bobs = home_view(**kwargs, viewer=BOB)
    assert [b["action_id"] for b in buttons(bobs["blocks"])] == [
        "deployment_stop",
        "deployment_credentials",
    ]
    assert f"shared by <@{OWNER}>" in texts(bobs["blocks"])
    admins = home_view(**kwargs, viewer=ADMIN, viewer_admin=True)
    assert "deployment_destroy" in [b["action_id"] for b in buttons(admins["blocks"])]
    ended = replace_status(dep, "destroyed")
    assert "deployment_share" not in [
        b["action_id"] for b in deployment_buttons(ended, T0, share=True) if b.action_id
    ]


def test_mine_marks_what_is_shared_with_the_viewer() -> None:
    dep = make_record()
    mine = deployment_list_message(
        "mine",
        [dep],
        now=T0,
        can_manage=lambda d: True,
        can_destroy=lambda d: False,
        viewer=BOB,
    )
    assert f"shared by <@{OWNER}>" in texts(mine["blocks"])
    assert "deployment_destroy" not in [b["action_id"] for b in buttons(mine["blocks"])]
