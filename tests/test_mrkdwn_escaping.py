"""Template texts reach Slack as typed: every Block Kit builder escapes them for mrkdwn
(``&``, ``<``, ``>``: api.slack.com/reference/surfaces/formatting#escaping), so a catalog file
cannot ping a channel or show a link under a false name. Pure builders first, then one
deployment end to end through the real app and the fake Slack."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.models.views import View

import storage
from bot.formats import deployment_ref, mrkdwn_escape
from bot.notices import (
    ApprovalDecision,
    ExpiryNotice,
    IdleNotice,
    IntentNotice,
    Reminder,
)
from bot.slack.blocks import budgets, deploy, lifetimes, notify, picker, templates
from bot.slack.blocks.common import truncate
from bot.slack.blocks.home import home_view
from bot.slack.blocks.intents import intent_message
from bot.slack.blocks.manage import LIST_MINE, deployment_list_message
from bot.slack.blocks.status import status_message
from catalog import Catalog, Template, filter_templates, load_catalog, parse_query
from storage import DeploymentStatus
from tests.fixtures.slack import ALICE, BotFactory, BotHarness
from tests.test_blocks_lifetimes import NOW, make_dep

#: A name that would ping the channel with a phishing link.
EVIL = "<!channel> <https://evil.example|Open JupyterLab>"
#: The raw markup that must never reach a mrkdwn text.
LIVE = ("<!channel>", "<https://evil.example", "<!here>", "<@U0EVIL")
SHOWN = "&lt;!channel&gt; &lt;https://evil.example|Open JupyterLab&gt;"


def evil_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "evil",
        "name": EVIL,
        "description": "Fast & friendly <!here> notebooks <@U0EVIL>",
        "category": "<!here>",
        "docker_image": "quay.io/jupyter/pytorch-notebook:cuda11-latest",
        "ports": [8888],
        "volumes": ["/home/<!here>"],
        "launch_command": (
            "start-notebook.py --ServerApp.ip=0.0.0.0 --ServerApp.port=8888 "
            '--IdentityProvider.token="${JUPYTER_TOKEN}" # <!channel>'
        ),
        "env": {"WEB_USER": "<!channel>"},
        "min_vram_gb": 4,
        "recommended_vram_gb": 8,
        "cuda_version": "11.8",
        "disk_gb": 20,
        "docs_url": "https://docs.example.com/a?b=1&c=2",
        "health_path": "/api",
        "password_env": "JUPYTER_TOKEN",
    }
    data.update(overrides)
    return data


EVIL_TEMPLATE = Template.model_validate(evil_data())


def mrkdwn_texts(payload: Any) -> list[str]:
    """Every text Slack reads as mrkdwn: ``mrkdwn`` text objects anywhere, and a message's
    top-level ``text`` (mrkdwn by default; the notification shows it)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    if isinstance(payload, View):
        payload = payload.to_dict()
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        found.append(payload["text"])
    elif isinstance(payload, str):
        found.append(payload)
    walk(payload)
    return found


def assert_inert(payload: Any, *, shown: str | None = SHOWN) -> None:
    """No live markup in any mrkdwn text of ``payload``; ``shown`` (the escaped name) is."""
    texts = mrkdwn_texts(payload)
    assert texts
    for text in texts:
        for live in LIVE:
            assert live not in text, text
    if shown is not None:
        assert any(shown in text for text in texts), texts


def evil_dep(**overrides: Any) -> storage.DeploymentRecord:
    return replace(make_dep(name=EVIL), template_slug="evil", **overrides)


# -- the function ------------------------------------------------------------------------


def test_escape_is_slacks_three_entities_and_truncate_never_cuts_one() -> None:
    assert mrkdwn_escape("a & b <!channel> <x|y> >") == (
        "a &amp; b &lt;!channel&gt; &lt;x|y&gt; &gt;"
    )
    assert mrkdwn_escape("&amp;") == "&amp;amp;"  # typed text stays typed text
    assert deployment_ref(evil_dep()) == f"*{SHOWN}* (#12)"
    escaped = mrkdwn_escape("<" * 10)  # "&lt;" × 10
    for limit in range(2, 40):
        cut = truncate(escaped, limit)
        assert len(cut) <= limit
        assert cut.rstrip("…").replace("&lt;", "") == ""  # only whole entities


def test_budgets_has_no_escape_of_its_own() -> None:
    assert not hasattr(budgets, "_escape")


# -- the catalog: list, no match, details --------------------------------------------------


def test_catalog_list_no_match_and_details_show_template_texts_as_typed() -> None:
    catalog = Catalog([*load_catalog(), EVIL_TEMPLATE])
    matches = filter_templates(catalog, parse_query(""))
    listed = templates.template_list_message(matches)
    assert_inert(listed)
    section = next(b for b in listed["blocks"] if b.get("block_id") == "tpl_evil")
    assert "Fast &amp; friendly &lt;!here&gt; notebooks &lt;@U0EVIL&gt;" in section["text"]["text"]
    assert "_&lt;!here&gt;_" in section["text"]["text"]

    assert_inert(templates.no_match_message("tensorflow", catalog))

    details = templates.template_details_view(EVIL_TEMPLATE).to_dict()
    assert_inert(details, shown="&lt;!here&gt;")
    assert details["blocks"][0]["text"] == {"type": "plain_text", "text": EVIL, "emoji": True}
    shown = json.dumps(details)
    assert "`/home/&lt;!here&gt;`" in shown
    assert "# &lt;!channel&gt;" in shown  # the launch command
    assert "<https://docs.example.com/a?b=1&amp;c=2>" in shown  # the docs link still links


def test_header_title_and_option_plain_texts_stay_within_slacks_limits() -> None:
    long = Template.model_validate(evil_data(name="&" * 80, description="<" * 200))
    details = templates.template_details_view(long).to_dict()
    assert details["blocks"][0]["text"]["text"] == "&" * 80  # plain_text: as typed
    state = picker.PickerState(template="evil", channel="C1")
    view = picker.loading_view(long, state).to_dict()
    assert len(view["title"]["text"]) <= 24
    assert "&amp;" * 80 in json.dumps(view)


# -- the picker and the deploy notices -----------------------------------------------------


def test_picker_and_deploy_notices_show_the_name_as_typed() -> None:
    state = picker.PickerState(template="evil", channel="C1", gpu_name="<!channel>")
    assert_inert(picker.loading_view(EVIL_TEMPLATE, state))
    assert_inert(picker.picker_view(EVIL_TEMPLATE, state, [], simulated=True))
    assert_inert(deploy.working_view(EVIL_TEMPLATE, "C1"))
    assert_inert(deploy.done_view(EVIL_TEMPLATE, "C1"))
    assert_inert(deploy.failure_note(evil_dep(), "no GPU left", retry_slug="evil"))


# -- status messages, the ready reply and DM, listings, Home --------------------------------


@pytest.mark.parametrize("status", list(DeploymentStatus))
def test_status_message_in_every_state_shows_the_name_as_typed(
    status: DeploymentStatus,
) -> None:
    dep = evil_dep(status=status)
    assert_inert(status_message(dep, EVIL_TEMPLATE, now=NOW))
    assert_inert(status_message(dep, None, now=NOW))


def test_ready_reply_and_secrets_dm_show_the_name_as_typed() -> None:
    dep = evil_dep(web_password="pw-generated-1")
    assert_inert(notify.ready_text(dep, EVIL_TEMPLATE))
    dm = notify.secrets_dm(dep, EVIL_TEMPLATE, has_ssh_key=False)
    assert dm is not None
    assert_inert(dm)
    assert "• User: `&lt;!channel&gt;`" in "\n".join(mrkdwn_texts(dm))
    for text in (notify.failed_text(dep), notify.gone_text(dep), notify.stopped_outside_text(dep)):
        assert_inert(text)


def test_listing_and_home_show_the_name_as_typed() -> None:
    dep = evil_dep()
    assert_inert(deployment_list_message(LIST_MINE, [dep], now=NOW, can_manage=lambda _d: True))
    home = home_view(
        deployments=[dep],
        now=NOW,
        user_month=1.0,
        workspace_month=2.0,
        month_label="December 2026",
    )
    assert_inert(home)


def test_lifetime_intent_and_approval_messages_show_the_name_as_typed() -> None:
    dep = evil_dep()
    expiry = ExpiryNotice(
        NOW + timedelta(minutes=30), "stop", 3.0, (1, 4), frozenset(), frozenset()
    )
    assert_inert(lifetimes.expiry_warning_message(dep, expiry, now=NOW))
    idle = IdleNotice(
        NOW - timedelta(hours=1), NOW, 1.0, 2.0, NOW + timedelta(minutes=30), "stop", 2
    )
    assert_inert(lifetimes.idle_warning_message(dep, idle, now=NOW))
    assert_inert(lifetimes.reminder_message(dep, Reminder("running", NOW, 3.0, None), now=NOW))
    assert_inert(intent_message(dep, IntentNotice("stop", "system", None, 1, "done")))
    denied = ApprovalDecision("denied", "U0BOB", NOW, note="<!channel> no")
    assert_inert(budgets.requester_decision_text(dep, denied))
    assert_inert(budgets.deny_view(12, EVIL, ALICE, channel=None, ts=None))


# -- end to end ------------------------------------------------------------------------------


def test_a_hostile_template_name_never_pings_through_the_real_app(
    bot_factory: BotFactory, tmp_path: Path
) -> None:
    """``/templates``, Details, the picker, the status message, the ready reply, the DM and
    Home, through signed requests and the fake Slack: the name shows, escaped, everywhere."""
    from tests.test_deploy import pick_offer, settled, submitted_view, wait_until
    from tests.test_poller import to_ready

    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "evil.yaml").write_text(yaml.safe_dump(evil_data()))
    bot: BotHarness = bot_factory(catalog_dir=folder)

    listed = bot.command("").json()
    assert_inert(listed)
    bot.block_action("template_details", "evil")
    (details,) = bot.slack.wait_for("views.open")
    assert_inert(details.args["view"], shown="&lt;!here&gt;")
    bot.block_action("deploy_template", "evil")
    bot.slack.wait_for("views.update")

    chosen = pick_offer(bot, "evil", 20).offer
    assert bot.view_submission(submitted_view(chosen.id, slug="evil")).status_code == 200
    (dep,) = settled(bot)
    to_ready(bot, dep)
    (dm,) = bot.slack.wait_for("chat.postMessage", channel="D" + ALICE[1:])
    assert SHOWN in json.dumps(dm.args)

    # A service's answer names the deployment too (Stop → "Stopping *<name>* (#N)…").
    before = len(bot.slack.calls)
    assert bot.block_action("deployment_stop", str(dep.id), is_ephemeral=False).status_code == 200
    wait_until(lambda: any(SHOWN in json.dumps(c.args) for c in bot.slack.calls[before:]))

    sent = [c for c in bot.slack.calls if c.method in ("chat.postMessage", "chat.update")]
    methods = {c.method for c in bot.slack.calls}
    assert {"views.open", "views.update", "chat.postMessage", "chat.update", "views.publish"} <= (
        methods
    )
    for call in bot.slack.calls:
        if isinstance(call.args.get("view"), dict):
            assert_inert(call.args["view"], shown=None)
        elif "text" in call.args or "blocks" in call.args:
            assert_inert(call.args, shown=None)
    everything = json.dumps([c.args for c in bot.slack.calls])
    assert SHOWN in everything
    assert any(SHOWN in json.dumps(c.args) for c in sent if c.args.get("thread_ts"))
    home = bot.slack.calls_to("views.publish")[-1]
    assert SHOWN in json.dumps(home.args["view"])
