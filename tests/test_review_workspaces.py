"""Review of several workspaces: attempts to break isolation, money safety, secrets
and single-workspace mode. Each test names, in its assertion messages, a defect found in review
(now fixed; each failed before its fix) or an attack that held.

OAuth-mode tests run the real bot against the fake Slack and the two-account simulator
(:mod:`tests.fixtures.oauth`); single-mode tests use :mod:`tests.fixtures.slack`.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest

import storage
from bot.playground.slack_api import FakeSlack
from bot.services.deploy import label_for
from bot.slack.blocks.status import ACTION_DESTROY, ACTION_STOP
from storage import DeploymentRecord
from tests.fixtures.oauth import (
    ADMIN_A,
    ALICE_A,
    BOB_B,
    CHANNELS,
    KEY_A,
    KEY_B,
    TEAM_A,
    TEAM_B,
    OAuthBot,
    OAuthBotFactory,
)
from tests.fixtures.slack import ALICE, BOB, BotFactory
from tests.test_deploy import wait_until
from tests.test_manage import click, make_deployment
from tests.test_oauth_workspaces import (
    COMFY,
    JUPYTER,
    current,
    deploy,
    install_both,
    ready,
    set_key,
    tick,
)

# -- helpers ---------------------------------------------------------------------------------


def real_row_without_key(
    ob: OAuthBot, team: str, user: str, api_key: str, *, lifetime_hours: float | None = None
) -> DeploymentRecord:
    """A ``ready`` deployment of ``team`` rented on Vast.ai (``simulated`` False) whose
    instance lives on ``api_key``'s account, while the workspace has no stored key: the state
    migration 0007 leaves behind for a single-workspace install that ran with ``VAST_API_KEY``
    (its rows are real, its ``workspaces`` row has no key) once it runs in OAuth mode (which
    refuses ``VAST_API_KEY``), or with ``ENCRYPTION_KEY`` and no ``VAST_API_KEY``."""
    sf = ob.services.session_factory
    now = ob.clock()
    dep, _ = storage.create_deployment(
        sf,
        request_key=uuid.uuid4().hex,
        team_id=team,
        user_id=user,
        channel_id=CHANNELS[team],
        template_slug=JUPYTER,
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=0.4,
        disk_gb=16,
        simulated=False,
        lifetime_hours=lifetime_hours,
        now=now - timedelta(minutes=10),
    )
    instance_id = ob.sim.create_instance_directly(
        api_key=api_key,
        label=label_for(storage.installation_id(ob.services.session_factory), dep.id),
    )
    storage.set_instance(sf, dep.id, instance_id, now=now - timedelta(minutes=10))
    for step, was in (("provisioning", "creating"), ("ready", "provisioning")):
        assert storage.update_status(sf, dep.id, expected_status=was, new_status=step, now=now)
    storage.set_message(sf, dep.id, CHANNELS[team], f"1732900000.{900000 + dep.id}")
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


# -- money -----------------------------------------------------------------------------------


def test_live_rows_from_before_the_key_do_not_lock_out_that_accounts_key(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    dep = real_row_without_key(ob, TEAM_A, ALICE_A, KEY_A)
    assert ob.sim.account_of(dep.instance_id or 0) == 1001
    answer = set_key(ob, TEAM_A, KEY_A)
    assert answer == {"response_action": "clear"}, (
        "the admin entered the key of the very account the workspace's live instance runs on "
        f"and setup refused it: {json.dumps(answer)[:300]} — the instance can then never be "
        "followed, stopped by its lifetime or destroyed from Slack, and bills on"
    )


def test_destroy_of_a_real_row_without_a_key_never_claims_it_stopped_billing(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    dep = real_row_without_key(ob, TEAM_A, ALICE_A, KEY_A)
    ob.slack.reset()
    response = ob.team(TEAM_A).block_action(
        ACTION_DESTROY,
        str(dep.id),
        user=ALICE_A,
        message_ts=dep.message_ts or "",
        is_ephemeral=False,
        block_id=f"dep_actions_{dep.id}",
    )
    assert response.status_code == 200
    answer = ob.slack.wait_for("response_url")[-1]
    still_billing = dep.instance_id in ob.sim.instances_of(KEY_A)
    assert still_billing  # nothing reached account 1001
    row = current(ob, dep)
    assert row.status != "destroyed", (
        f"the row is now '{row.status}' and the owner was told "
        f"{str(answer.args.get('text'))[:160]!r}, while instance {dep.instance_id} still runs "
        "and bills on Vast.ai account 1001: it dropped out of every listing, poller pass and "
        "lifetime"
    )


def test_an_expired_real_row_without_a_key_is_not_marked_destroyed_while_it_bills(
    oauth_bot_factory: OAuthBotFactory,
) -> None:
    ob = oauth_bot_factory(on_expiry="stop")
    install_both(ob)
    dep = real_row_without_key(ob, TEAM_A, ALICE_A, KEY_A, lifetime_hours=1)
    ob.clock.advance(hours=2)
    for _ in range(3):
        tick(ob, seconds=400)  # past the warning's five minutes
    row = current(ob, dep)
    instance = ob.sim.instances_of(KEY_A).get(dep.instance_id or 0)
    assert instance is not None and instance.get("intended_status") != "stopped"
    assert row.status not in ("destroyed", "stopped"), (
        f"the row says '{row.status}' though its instance was never stopped on account 1001 "
        "and still bills"
    )
    failures = [
        e for e in storage.list_events(ob.services.session_factory, dep.id) if "failed" in e.action
    ]
    assert not failures, "an account out of reach is not asked again every tick"


# -- data loss: strays -----------------------------------------------------------------------


def test_an_instance_on_bs_account_is_not_destroyed_for_a_final_row_of_a(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A) == {"response_action": "clear"}
    assert set_key(ob, TEAM_B, KEY_B) == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A, JUPYTER)
    ready(ob, a)
    ob.team(TEAM_A).block_action(ACTION_DESTROY, str(a.id), user=ALICE_A)
    wait_until(lambda: current(ob, a).status == "destroyed")
    # On B's own account: an instance B's other tooling labelled with the same id.
    theirs = ob.sim.create_instance_directly(
        api_key=KEY_B, label=label_for(storage.installation_id(ob.services.session_factory), a.id)
    )
    b = deploy(ob, TEAM_B, BOB_B, COMFY)  # B's account is now followed
    for _ in range(4):
        tick(ob, seconds=200)
    assert current(ob, b).status == "ready"
    assert theirs in ob.sim.instances_of(KEY_B), (
        f"instance {theirs} on B's Vast.ai account (1002) was destroyed because its label names "
        f"deployment {a.id}, a finished row of workspace A on account 1001"
    )


# -- single-workspace mode -------------------------------------------------------------------


def test_single_mode_a_slack_admin_outside_bot_admins_cannot_stop_others_deployments(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    bot = bot_factory(bot_admins="U0ADMIN01")
    fake_slack.users_admin.add(BOB)  # a Slack workspace admin, not a bot admin
    dep = make_deployment(bot, user=ALICE)
    click(bot, ACTION_STOP, dep, user=BOB)
    said = str(fake_slack.wait_for("response_url")[-1].args.get("text"))
    time.sleep(0.2)
    status = storage.get_deployment(bot.services.session_factory, dep.id)
    assert status is not None
    assert status.status == "ready" and "Only" in said, (
        f"BOB (a Slack admin, not in BOT_ADMINS) stopped ALICE's deployment: {said[:120]!r}; "
        "before several workspaces only BOT_ADMINS could"
    )


def test_single_mode_the_digest_channel_chosen_in_setup_gets_the_digest(
    bot_factory: BotFactory, fake_slack: FakeSlack
) -> None:
    from datetime import UTC, datetime

    from bot.playground.slack_api import TEAM_ID

    bot = bot_factory(bot_admins="U0ADMIN01", digest_channel=None, digest_hour=9)
    make_deployment(bot, user=ALICE)
    chosen = "C0CHOSEN01"
    saved = bot.services.workspaces.save_settings(
        TEAM_ID, {"digest_channel": chosen}, actor="U0ADMIN01"
    )
    assert saved.digest_channel == chosen  # what setup's DM confirms as in force
    bot.services.reminders.run(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))  # a Monday, 10:00
    posted = [c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("channel") == chosen]
    assert posted, (
        "setup said the digest goes to the chosen channel, yet no digest was posted there "
        f"(posts: {[c.args.get('channel') for c in fake_slack.calls_to('chat.postMessage')]})"
    )


# -- secrets: the public catalog ------------------------------------------------------------

PLAIN_TOKEN = "wk-7f3a9c2e5b1d4f8a"


def test_public_catalog_never_shows_an_env_value_through_the_launch_command(
    bot_factory: BotFactory, tmp_path: object
) -> None:
    from pathlib import Path

    import yaml

    from tests.test_catalog_api import SECRET_TEMPLATE

    folder = Path(str(tmp_path)) / "team-catalog"
    folder.mkdir()
    template = {
        **SECRET_TEMPLATE,
        "env": {"WANDB_KEY": PLAIN_TOKEN},
        "secret_env": [],
        "launch_command": f"wandb login {PLAIN_TOKEN} && serve --port 8000",
    }
    (folder / "team-llm.yaml").write_text(yaml.safe_dump(template))
    bot = bot_factory(catalog_dir=folder)
    raw = bot.http.get("/api/templates/team-llm").text
    assert PLAIN_TOKEN not in raw, (
        f"the public catalog serves the value of WANDB_KEY in launch_command: {raw[:400]}"
    )


# -- one Vast.ai user, two keys --------------------------------------------------------------

KEY_A2 = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0fe5f6"


def test_a_revoked_key_of_one_workspace_does_not_blind_the_poller_to_anothers_rows(
    oauth_bot: OAuthBot,
) -> None:
    ob = oauth_bot
    ob.sim.add_account(KEY_A2, 1002)  # A's own key of the same Vast.ai user as B
    install_both(ob)
    assert set_key(ob, TEAM_A, KEY_A2) == {"response_action": "clear"}
    assert set_key(ob, TEAM_B, KEY_B) == {"response_action": "clear"}
    a = deploy(ob, TEAM_A, ALICE_A, JUPYTER)
    b = deploy(ob, TEAM_B, BOB_B, COMFY)
    assert a.id < b.id
    ob.sim.revoke_key(KEY_A2)  # A's admin deletes A's key at Vast.ai
    for _ in range(6):
        tick(ob, seconds=4)
    assert current(ob, b).status == "ready", (
        f"B's deployment is stuck '{current(ob, b).status}': the shared account's pass used A's "
        "revoked key and B's own valid key was never tried"
    )


def test_public_catalog_drops_credentials_in_the_docs_urls_query(
    bot_factory: BotFactory, tmp_path: object
) -> None:
    from pathlib import Path

    import yaml

    from tests.test_catalog_api import SECRET_TEMPLATE

    folder = Path(str(tmp_path)) / "team-catalog"
    folder.mkdir()
    template = {
        **SECRET_TEMPLATE,
        "docs_url": f"https://wiki.example.com/llm?access_token={PLAIN_TOKEN}",
    }
    (folder / "team-llm.yaml").write_text(yaml.safe_dump(template))
    bot = bot_factory(catalog_dir=folder)
    raw = bot.http.get("/api/templates/team-llm").text
    assert PLAIN_TOKEN not in raw, "the public catalog serves a docs_url's access_token"


# -- attacks that held -----------------------------------------------------------------------


def test_held_audit_and_logs_show_neither_the_other_workspace_nor_any_key(
    oauth_bot: OAuthBot, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from tests.test_oauth_workspaces import answer_text, two_rented

    caplog.set_level(logging.DEBUG)
    ob = oauth_bot
    a, b = two_rented(ob)
    audit_a = answer_text(ob.team(TEAM_A).command("audit", user=ADMIN_A))
    assert f"#{a.id}" in audit_a or "JupyterLab" in audit_a
    assert "ComfyUI" not in audit_a and BOB_B not in audit_a and f"#{b.id} " not in audit_a
    assert "…a1b2" in audit_a and "…c3d4" not in audit_a  # A's key event only, by its last 4
    everything = "\n".join(r.getMessage() for r in caplog.records) + audit_a
    everything += json.dumps([c.args for c in ob.slack.calls])
    for key in (KEY_A, KEY_B, ob.encryption_key):
        assert key not in everything
    for record in storage.list_workspaces(ob.services.session_factory):
        assert KEY_A not in repr(record) and KEY_B not in repr(record)
