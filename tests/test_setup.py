"""``/templates setup``, end to end: the real bot (signed requests, the fake Slack Web API, the
Vast.ai simulator with two accounts) in single-workspace mode with an ``ENCRYPTION_KEY``, so
that the workspace's Vast.ai key is entered in the modal (the environment has no
``VAST_API_KEY``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

import storage
from bot.crypto import SecretBox
from bot.playground.slack_api import TEAM_ID, Call
from bot.services.workspaces import KEY_UNREACHABLE, SettingsError, SlackRole
from bot.simulator import Fault, VastSimulator
from bot.slack.blocks import setup as blocks
from tests.fixtures.slack import ALICE, FAST_TIMELINE, BotFactory, BotHarness

ADMIN = "U0ADMIN01"
SLACK_ADMIN = "U0SLKADM1"
CAROL = "U0CAROL03"
KEY_A = "4f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3aa1b2"
KEY_A2 = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0fe5f6"  # also account 1001
KEY_B = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7c3d4"
ACCOUNTS = {KEY_A: 1001, KEY_A2: 1001, KEY_B: 1002}


@pytest.fixture
def simulator() -> Iterator[VastSimulator]:
    with VastSimulator(timeline=FAST_TIMELINE, frozen_clock=True, accounts=ACCOUNTS) as sim:
        yield sim


@pytest.fixture
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def bot(bot_factory: BotFactory, simulator: VastSimulator, encryption_key: str) -> BotHarness:
    harness = bot_factory(
        simulator=simulator,
        encryption_key=encryption_key,
        bot_admins=ADMIN,
        approvers="",
        approval_dph=None,
        digest_channel=None,
    )
    harness.slack.users_admin.add(SLACK_ADMIN)
    return harness


def open_modal(bot: BotHarness, user: str = ADMIN) -> dict[str, Any]:
    """Run ``/templates setup`` as ``user`` and return the modal it opened."""
    before = len(bot.slack.calls_to("views.open"))
    response = bot.command("setup", user=user)
    assert response.status_code == 200
    opened = bot.slack.wait_for("views.open", count=before + 1)
    return dict(opened[-1].args["view"])


def state(
    *,
    key: str | None = None,
    admins: list[str] | None = None,
    approvers: list[str] | None = None,
    digest: str | None = None,
    dph: str | None = None,
    default: str | None = "8",
    maximum: str | None = "72",
) -> dict[str, Any]:
    """The modal's ``state.values`` as Slack sends them."""
    return {
        "values": {
            blocks.BLOCK_KEY: {blocks.ACTION_KEY: {"type": "plain_text_input", "value": key}},
            blocks.BLOCK_ADMINS: {
                blocks.ACTION_ADMINS: {
                    "type": "multi_users_select",
                    "selected_users": admins or [],
                }
            },
            blocks.BLOCK_APPROVERS: {
                blocks.ACTION_APPROVERS: {
                    "type": "multi_users_select",
                    "selected_users": approvers or [],
                }
            },
            blocks.BLOCK_DIGEST: {
                blocks.ACTION_DIGEST: {
                    "type": "conversations_select",
                    "selected_conversation": digest,
                }
            },
            blocks.BLOCK_APPROVAL_DPH: {
                blocks.ACTION_APPROVAL_DPH: {"type": "number_input", "value": dph}
            },
            blocks.BLOCK_DEFAULT_LIFETIME: {
                blocks.ACTION_DEFAULT_LIFETIME: {"type": "number_input", "value": default}
            },
            blocks.BLOCK_MAX_LIFETIME: {
                blocks.ACTION_MAX_LIFETIME: {"type": "number_input", "value": maximum}
            },
        }
    }


_views = iter(range(1, 10_000))


def submit(
    bot: BotHarness, view: dict[str, Any], user: str = ADMIN, **values: Any
) -> dict[str, Any]:
    """Submit the setup modal with ``values`` (see :func:`state`); the ack's JSON."""
    sent = {**view, "id": f"V0SETUP{next(_views):03d}", "state": state(**values)}
    response = bot.view_submission(sent, user=user)
    assert response.status_code == 200
    return dict(response.json()) if response.content else {}


def workspace(bot: BotHarness) -> storage.WorkspaceRecord | None:
    return storage.get_workspace(bot.services.session_factory, TEAM_ID)


def team_events(bot: BotHarness) -> list[tuple[str, str | None]]:
    with storage.read_transaction(bot.services.session_factory) as session:
        rows = session.scalars(
            select(storage.TeamEvent).where(storage.TeamEvent.team_id == TEAM_ID)
        )
        return [(row.action, row.detail) for row in rows]


def confirmation(bot: BotHarness, text: str) -> Call:
    """The DM whose text contains ``text``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for call in bot.slack.calls_to("chat.postMessage"):
            if text in str(call.args.get("text")):
                return call
        time.sleep(0.02)
    raise AssertionError(f"no DM with {text!r}")


def live_real_deployment(bot: BotHarness) -> storage.DeploymentRecord:
    """A live deployment on real Vast.ai (not simulated) in the workspace."""
    dep, _ = storage.create_deployment(
        bot.services.session_factory,
        request_key="setup-test-live",
        team_id=TEAM_ID,
        user_id=ALICE,
        channel_id="C0DEPLOYS1",
        template_slug="jupyter",
        template_name="Jupyter",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=0.5,
        disk_gb=20,
        simulated=False,
    )
    return dep


# -- who may ------------------------------------------------------------------------------------


def test_a_non_admin_is_refused_and_no_modal_opens(bot: BotHarness) -> None:
    assert bot.command("setup", user=CAROL).status_code == 200
    (answer,) = bot.slack.wait_for("response_url")
    assert "Only workspace admins (or the bot's admins) can change setup" in answer.args["text"]
    assert answer.args["response_type"] == "ephemeral"
    assert bot.slack.calls_to("views.open") == []
    # A forged submission by a non-admin saves nothing either.
    view = open_modal(bot)
    forged = submit(bot, view, user=CAROL, key=KEY_A, default="2")
    assert forged["response_action"] == "errors"
    assert workspace(bot) is None


def test_single_workspace_mode_keeps_slack_admins_out_unless_listed(bot: BotHarness) -> None:
    # Before OAuth mode only BOT_ADMINS were bot admins; an upgrade must not hand Slack's
    # workspace admins power over everyone's GPUs (OAuth mode counts them: test_oauth_workspaces).
    assert bot.command("setup", user=SLACK_ADMIN).status_code == 200
    (answer,) = bot.slack.wait_for("response_url")
    assert "Only workspace admins (or the bot's admins) can change setup" in answer.args["text"]
    assert bot.slack.calls_to("views.open") == []
    assert not bot.services.workspaces.is_admin(TEAM_ID, SLACK_ADMIN)
    assert not [c for c in bot.slack.calls_to("users.info") if c.args.get("user") == SLACK_ADMIN]
    reader_calls: list[str] = []

    def owner(team_id: str, user_id: str) -> SlackRole | None:
        reader_calls.append(user_id)
        return SlackRole(is_admin=False, is_owner=True)

    service = bot.services.workspaces
    assert not service.is_admin(TEAM_ID, "U0OWNER01", roles=owner)
    assert service.is_admin(TEAM_ID, ADMIN, roles=owner)  # BOT_ADMINS
    assert reader_calls == []  # Slack is not asked in single-workspace mode


def test_the_modal_shows_the_key_state_and_the_current_settings(bot: BotHarness) -> None:
    view = open_modal(bot)
    text = json.dumps(view, ensure_ascii=False)
    assert view["callback_id"] == blocks.CALLBACK_SETUP
    assert blocks.NO_KEY_TEXT in text
    key_input = next(b for b in view["blocks"] if b.get("block_id") == blocks.BLOCK_KEY)
    assert "initial_value" not in key_input["element"]  # never pre-filled
    assert "stored encrypted and never shown again" in key_input["hint"]["text"]
    default = next(b for b in view["blocks"] if b.get("block_id") == blocks.BLOCK_DEFAULT_LIFETIME)
    assert default["element"]["initial_value"] == "8"


def test_a_good_key_is_saved_encrypted_and_the_confirmation_says_its_end(
    bot: BotHarness, encryption_key: str
) -> None:
    view = open_modal(bot)
    ack = submit(bot, view, key=f"  {KEY_A}\n")
    assert ack == {"response_action": "clear"}
    record = workspace(bot)
    assert record is not None and record.vast_key_ciphertext is not None
    assert KEY_A not in record.vast_key_ciphertext
    assert SecretBox(encryption_key).decrypt(record.vast_key_ciphertext) == KEY_A
    assert (record.vast_key_last4, record.vast_user_id, record.vast_key_set_by) == (
        "a1b2",
        "1001",
        ADMIN,
    )
    dm = confirmation(bot, "key ending …a1b2")
    assert "Saved. Vast.ai key ending …a1b2 (account #1001)" in dm.args["text"]
    assert KEY_A not in json.dumps([c.args for c in bot.slack.calls])
    stored = bot.services.workspaces.stored_key(TEAM_ID)
    assert stored is not None and (stored.api_key, stored.vast_user_id) == (KEY_A, "1001")
    assert KEY_A not in repr(stored)
    assert ("vast_key_set", "key ending …a1b2") in team_events(bot)
    settings = bot.services.workspaces.settings_for(TEAM_ID)
    assert settings.vast_key_hint == "key ending …a1b2" and not settings.simulated
    # Reopened, the modal says which key is set and still shows no key.
    reopened = json.dumps(open_modal(bot), ensure_ascii=False)
    assert "key ending …a1b2 (account #1001)" in reopened and KEY_A not in reopened


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("0" * 60 + "dead", "Vast.ai did not accept this key (Invalid user key). Copy it again"),
        ("not a key", "does not look like a Vast.ai API key"),
    ],
)
def test_a_bad_key_is_an_inline_error_and_nothing_is_saved(
    bot: BotHarness, key: str, expected: str
) -> None:
    view = open_modal(bot)
    ack = submit(bot, view, key=key, default="4", admins=[CAROL], digest="C0DIGEST01")
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {blocks.BLOCK_KEY}
    assert expected in ack["errors"][blocks.BLOCK_KEY]
    assert "https://cloud.vast.ai/manage-keys/" in ack["errors"][blocks.BLOCK_KEY]
    assert workspace(bot) is None  # neither the key nor the other fields
    assert team_events(bot) == []
    assert bot.slack.calls_to("chat.postMessage") == []


def test_vast_unreachable_saves_nothing(bot: BotHarness, simulator: VastSimulator) -> None:
    view = open_modal(bot)
    simulator.stop()
    ack = submit(bot, view, key=KEY_A, default="4")
    assert ack["errors"] == {blocks.BLOCK_KEY: KEY_UNREACHABLE}
    assert workspace(bot) is None


def test_a_slow_vast_is_answered_within_the_ack_budget_and_saves_nothing(
    bot: BotHarness, simulator: VastSimulator
) -> None:
    view = open_modal(bot)
    simulator.inject(Fault.SLOW, endpoint="user", seconds=4.0)
    started = time.monotonic()
    ack = submit(bot, view, key=KEY_A, default="4")
    assert time.monotonic() - started < 3.0
    assert ack["errors"] == {blocks.BLOCK_KEY: KEY_UNREACHABLE}
    time.sleep(4.5)  # the check answers late: what it found is dropped
    assert workspace(bot) is None and team_events(bot) == []


def test_a_key_of_another_account_is_refused_while_real_deployments_run(
    bot: BotHarness,
) -> None:
    view = open_modal(bot)
    assert submit(bot, view, key=KEY_A) == {"response_action": "clear"}
    dep = live_real_deployment(bot)
    refused = submit(bot, view, key=KEY_B, default="4")
    assert refused["errors"][blocks.BLOCK_KEY] == (
        "1 deployment still runs on the Vast.ai account of the current key; destroy them (or "
        "enter a key of that account) first"
    )
    record = workspace(bot)
    assert record is not None and record.vast_user_id == "1001"
    assert bot.services.workspaces.settings_for(TEAM_ID).default_lifetime_hours == 8
    # Another key of the same account is fine.
    assert submit(bot, view, key=KEY_A2) == {"response_action": "clear"}
    assert bot.services.workspaces.settings_for(TEAM_ID).vast_key_hint == "key ending …e5f6"
    # Once nothing runs there any more, the other account's key is taken.
    assert storage.update_status(
        bot.services.session_factory,
        dep.id,
        expected_status=None,
        new_status=storage.DeploymentStatus.DESTROYED,
    )
    assert submit(bot, view, key=KEY_B) == {"response_action": "clear"}
    stored = bot.services.workspaces.stored_key(TEAM_ID)
    assert stored is not None and stored.vast_user_id == "1002"


# -- the settings ------------------------------------------------------------------------------


def test_the_settings_are_saved_and_read_back(bot: BotHarness) -> None:
    view = open_modal(bot)
    ack = submit(
        bot,
        view,
        admins=[CAROL],
        approvers=[SLACK_ADMIN],
        digest="C0DIGEST01",
        dph="2.5",
        default="4",
        maximum="24",
    )
    assert ack == {"response_action": "clear"}
    settings = bot.services.workspaces.settings_for(TEAM_ID)
    assert settings.admins == {CAROL} and settings.approvers == {SLACK_ADMIN}
    assert settings.digest_channel == "C0DIGEST01" and settings.approval_dph == 2.5
    assert (settings.default_lifetime_hours, settings.max_lifetime_hours) == (4, 24)
    assert settings.simulated and settings.vast_key_hint is None
    assert bot.services.workspaces.is_admin(TEAM_ID, CAROL)  # the editable list
    confirmation(bot, "Saved the workspace setup")
    (event,) = [detail for action, detail in team_events(bot) if action == "settings_changed"]
    assert event is not None and "max_lifetime_hours" in event
    # The reopened modal starts from them; values equal to the defaults follow the defaults.
    reopened = json.dumps(open_modal(bot))
    assert '"initial_value": "4"' in reopened and "C0DIGEST01" in reopened
    assert submit(bot, view, default="8", maximum="72") == {"response_action": "clear"}
    settings = bot.services.workspaces.settings_for(TEAM_ID)
    assert settings.overridden == frozenset()
    assert (settings.default_lifetime_hours, settings.max_lifetime_hours) == (8, 72)
    assert settings.admins == frozenset() and settings.digest_channel is None


def test_settings_are_validated_inline(bot: BotHarness) -> None:
    view = open_modal(bot)
    ack = submit(bot, view, default="48", maximum="24", dph="-1")
    assert ack["response_action"] == "errors"
    assert set(ack["errors"]) == {blocks.BLOCK_DEFAULT_LIFETIME, blocks.BLOCK_APPROVAL_DPH}
    assert "longer than the maximum" in ack["errors"][blocks.BLOCK_DEFAULT_LIFETIME]
    assert submit(bot, view, maximum="0")["errors"].keys() == {blocks.BLOCK_MAX_LIFETIME}
    assert workspace(bot) is None
    service = bot.services.workspaces
    with pytest.raises(SettingsError) as raised:
        service.save_settings(TEAM_ID, {"digest_channel": "#general", "admins": ["bob"]}, ADMIN)
    assert set(raised.value.errors) == {"digest_channel", "admins"}
    with pytest.raises(SettingsError):
        service.save_settings(TEAM_ID, {"budget": 5}, ADMIN)
    assert workspace(bot) is None


def test_set_vast_key_reports_without_the_key(bot: BotHarness) -> None:
    service = bot.services.workspaces
    bad = service.set_vast_key(TEAM_ID, "f" * 64, ADMIN)
    assert not bad.saved and "Invalid user key" in bad.message and "f" * 64 not in bad.message
    good = service.set_vast_key(TEAM_ID, KEY_B, ADMIN)
    assert good.saved and good.message == "Saved. Vast.ai key ending …c3d4 (account #1002)"
    assert KEY_B not in repr(good)


def test_settings_fall_back_to_the_environment_and_ignore_bad_stored_values(
    bot_factory: BotFactory, simulator: VastSimulator
) -> None:
    bot = bot_factory(
        simulator=simulator,
        bot_admins=ADMIN,
        approvers="U0APPROV1",
        approval_dph=3,
        digest_channel="C0ENVDIG1",
        default_lifetime_hours=6,
        max_lifetime_hours=48,
    )
    service = bot.services.workspaces
    settings = service.settings_for(TEAM_ID)
    assert (settings.approvers, settings.approval_dph, settings.digest_channel) == (
        {"U0APPROV1"},
        3,
        "C0ENVDIG1",
    )
    assert (settings.default_lifetime_hours, settings.max_lifetime_hours) == (6, 48)
    assert settings.key_source == "none" and settings.simulated  # no ENCRYPTION_KEY
    assert settings.approver_ids == {"U0APPROV1"}
    view = json.dumps(open_modal(bot))
    assert blocks.BLOCK_KEY not in view and "VAST_API_KEY" in view
    storage.save_workspace_settings(
        bot.services.session_factory,
        TEAM_ID,
        {"default_lifetime_hours": "lots", "max_lifetime_hours": 4, "approvers": []},
        actor=ADMIN,
    )
    settings = service.settings_for(TEAM_ID)
    assert (settings.default_lifetime_hours, settings.max_lifetime_hours) == (4, 4)
    assert settings.approvers == frozenset() and settings.approver_ids == {ADMIN}
    assert service.set_vast_key(TEAM_ID, KEY_A, ADMIN).saved is False
    assert service.stored_key(TEAM_ID) is None
