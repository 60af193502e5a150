"""The App Home tab through the real app: published on ``app_home_opened`` with the user's
deployments, buttons and this month's spend; refreshed after an action."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import time_machine

from bot.playground.slack_api import FakeSlack
from tests.blockkit import buttons, texts
from tests.fixtures.slack import ALICE, BOB, BotHarness
from tests.test_manage import make_deployment, manage_requests, status_of


def home_opened(bot: BotHarness, user: str = ALICE, tab: str = "home") -> None:
    response = bot.event(
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0ALICEDM1",
            "tab": tab,
            "event_ts": "1732900000.000001",
        }
    )
    assert response.status_code == 200


def published(fake_slack: FakeSlack, user: str = ALICE, count: int = 1) -> dict[str, Any]:
    call = fake_slack.wait_for("views.publish", count, user_id=user)[count - 1]
    view = call.args["view"]
    assert view["type"] == "home"
    assert len(view["blocks"]) <= 100
    return dict(view)


def latest_home(fake_slack: FakeSlack) -> dict[str, Any]:
    """The last Home published so far (an empty view when none)."""
    calls = fake_slack.calls_to("views.publish")
    return dict(calls[-1].args["view"]) if calls else {"blocks": []}


def test_home_shows_my_live_deployments_with_buttons_and_spend(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    ready = make_deployment(bot, ready_hours=2, dph=0.5)
    stopped = make_deployment(bot, status="stopped", template=("comfy-ui", "ComfyUI"))
    make_deployment(bot, status="destroyed", template=("stable-diffusion", "Stable Diffusion"))
    make_deployment(bot, user=BOB, ready_hours=1, dph=1.0, template=("vllm", "vLLM"))

    home_opened(bot)
    view = published(fake_slack)
    text = texts(view["blocks"])
    assert "JupyterLab" in text and "ComfyUI" in text
    assert "vLLM" not in text and "Stable Diffusion" not in text
    assert "$1.00 so far" in text  # 2 h × $0.50
    assert "You spent in" in text and "$1.00" in text
    assert "Workspace spent in" in text and "$2.00" in text  # + Bob's 1 h × $1.00
    assert "/templates" in text  # the how-to
    actions = {(b["action_id"], b["value"]) for b in buttons(view["blocks"])}
    assert ("deployment_stop", str(ready.id)) in actions
    assert ("deployment_start", str(stopped.id)) in actions


def test_home_only_for_the_home_tab(bot: BotHarness, fake_slack: FakeSlack) -> None:
    home_opened(bot, tab="messages")
    home_opened(bot, user=BOB)
    published(fake_slack, user=BOB)
    assert [c.args["user_id"] for c in fake_slack.calls_to("views.publish")] == [BOB]


def test_home_with_nothing_running(bot: BotHarness, fake_slack: FakeSlack) -> None:
    home_opened(bot)
    assert "Nothing running for you" in texts(published(fake_slack)["blocks"])


def test_stop_from_home_refreshes_it_with_the_outcome(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = make_deployment(bot)
    home_opened(bot)
    view = published(fake_slack)
    stop = next(b for b in buttons(view["blocks"]) if b["action_id"] == "deployment_stop")
    block_id = next(
        b["block_id"] for b in view["blocks"] if b["type"] == "actions" and stop in b["elements"]
    )
    bot.block_action(
        "deployment_stop",
        stop["value"],
        block_id=block_id,
        view={"id": "VHOME0001", "type": "home", "blocks": view["blocks"]},
    )
    # The owner's Home is refreshed after the change, then again with the outcome on top
    # (the outbox may coalesce the two into one: the latest Home wins).
    deadline = time.monotonic() + 5
    while "Stopped *JupyterLab*" not in texts(latest_home(fake_slack)["blocks"]):
        assert time.monotonic() < deadline, "the Home never showed the outcome"
        time.sleep(0.02)
    after = latest_home(fake_slack)
    assert "Stopped *JupyterLab*" in texts(after["blocks"])
    assert [b["action_id"] for b in buttons(after["blocks"])] == [
        "deployment_start",
        "deployment_share",
        "deployment_destroy",
    ]
    assert status_of(bot, dep.id) == "stopped"
    assert len(manage_requests(bot, "PUT")) == 1


def test_home_refresh_for_the_poller(bot: BotHarness, fake_slack: FakeSlack) -> None:
    make_deployment(bot)
    assert bot.services.home.refresh(ALICE) is True  # team looked up via auth.test
    assert "JupyterLab" in texts(published(fake_slack)["blocks"])


def test_home_spend_starts_at_the_first_of_the_month(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    with time_machine.travel(datetime(2025, 3, 1, 0, 30, tzinfo=UTC), tick=True):
        # Ready since Feb 28 23:00 at $2/h: $3 so far, of which 30 minutes ($1) in March.
        make_deployment(bot, ready_hours=1.5, dph=2.0)
        home_opened(bot)
        text = texts(published(fake_slack)["blocks"])
    assert "$3.00 so far" in text
    assert "*You spent in March 2025*\n$1.00" in text
    assert "*Workspace spent in March 2025*\n$1.00" in text
