"""Long work off the listener pool, and the picker's edges.

Through the real app over signed HTTP, against the fake Slack and the Vast.ai simulator:

* E: with Vast.ai slow, 16 Deploy clicks must not hold Bolt's listener threads, so the next
  ``/templates`` still acks at once; a full work pool answers "busy — try again" at once.
* C: **Deploy** inside a modal (no response_url) that cannot push the picker, or whose
  template is gone, tells the user in that modal.
* H: **Search again** on a picker whose template left the catalog says so.
* J: two offers chosen 0.3 s apart while the first one's render is slow: the modal ends up
  showing the second (``views.update`` sends the view's ``hash``; a conflict renders again).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot import runtime
from bot.playground.slack_api import FakeSlack
from bot.simulator import Fault
from bot.slack.blocks import picker
from bot.slack.blocks.status import ACTION_STOP
from tests.fixtures.slack import CHANNEL, BotFactory, BotHarness
from tests.test_deploy import wait_until


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _open_picker(bot: BotHarness, fake_slack: FakeSlack, slug: str) -> dict[str, Any]:
    """Open a picker; the view as Slack sends it back in later payloads (id and hash)."""
    assert bot.block_action("deploy_template", slug).status_code == 200
    update = fake_slack.wait_for("views.update")[0]
    assert update.answer is not None
    return {
        **update.args["view"],
        "id": update.args["view_id"],
        "hash": update.answer["view"]["hash"],
    }


def _modal(
    view_id: str, metadata: str = "", callback_id: str = "template_details"
) -> dict[str, Any]:
    """A modal of ours as a block_actions payload carries it (no response_url comes with it)."""
    return {
        "id": view_id,
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": metadata,
        "hash": "1732900000.abcdef",
        "state": {"values": {}},
        "blocks": [],
    }


# -- E: the listener pool stays free ---------------------------------------------------------


def test_sixteen_deploy_clicks_on_a_slow_vast_leave_templates_fast(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    bot.vast.inject(Fault.SLOW, endpoint="search", seconds=3, times=None)
    with ThreadPoolExecutor(16) as senders:
        clicks = [
            senders.submit(bot.block_action, "deploy_template", slug)
            for slug in ["vllm", "jupyter-lab", "comfy-ui", "stable-diffusion"] * 4
        ]
        assert [click.result().status_code for click in clicks] == [200] * 16
    fake_slack.wait_for("views.open", 16)
    time.sleep(0.2)  # the clicks are now waiting for Vast.ai
    started = time.monotonic()
    response = bot.command("")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 1.0
    assert "JupyterLab" in response.text


def test_a_full_work_pool_answers_busy_at_once(
    bot_factory: BotFactory, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "WORK_THREADS", 1)
    monkeypatch.setattr(runtime, "WORK_QUEUE", 0)
    bot = bot_factory()
    bot.vast.inject(Fault.SLOW, endpoint="search", seconds=1.5, times=None)
    bot.block_action("deploy_template", "vllm")  # takes the only thread for a while
    fake_slack.wait_for("views.open")
    wait_until(lambda: bot.services.work.in_flight == 1)

    started = time.monotonic()
    bot.block_action("deploy_template", "comfy-ui")
    (_, second) = fake_slack.wait_for("views.open", 2)
    busy = fake_slack.wait_for("views.update", view_id=second.answer["view"]["id"], timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert "busy" in _text(busy[0].args["view"]) and "try again in a minute" in _text(
        busy[0].args["view"]
    )

    response = bot.block_action(ACTION_STOP, "1", block_id="b1")  # stop: also long work
    assert response.status_code == 200
    answer = fake_slack.wait_for("response_url", timeout=1.0)[-1]
    assert "try again in a minute" in answer.args["text"]
    assert bot.services.work.refused == 2


# -- C: Deploy pressed inside a modal ---------------------------------------------------------


def test_deploy_in_a_modal_that_cannot_push_says_so_in_the_modal(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    fake_slack.fail("views.push", "push_limit_reached")
    response = bot.block_action("deploy_template", "vllm", view=_modal("V0DETAILS1"))
    assert response.status_code == 200
    (update,) = fake_slack.wait_for("views.update", view_id="V0DETAILS1")
    assert "Too many windows are open" in _text(update.args["view"])
    # no search for a picker that is not open
    assert bot.vast.request_count(path_prefix="/api/v0/bundles/") == 0


def test_deploy_in_a_modal_for_a_template_that_left_says_so_in_the_modal(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    metadata = json.dumps({"template": "gone-template", "channel": CHANNEL})
    started = time.monotonic()
    response = bot.block_action(
        "deploy_template", "gone-template", view=_modal("V0PROBLEM1", metadata, "deploy_modal")
    )
    assert response.status_code == 200 and time.monotonic() - started < 2.0
    (update,) = fake_slack.wait_for("views.update", view_id="V0PROBLEM1")
    assert "no longer in the catalog" in _text(update.args["view"])
    assert not fake_slack.calls_to("views.push")


# -- H: Search again on an old picker ---------------------------------------------------------


def test_search_again_on_a_picker_whose_template_left_says_so(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    metadata = json.dumps({"template": "gone-template", "channel": CHANNEL, "models": []})
    view = _modal("V0OLDPICK1", metadata, picker.CALLBACK_DEPLOY)
    assert bot.block_action(picker.ACTION_REFRESH, "refresh", view=view).status_code == 200
    (update,) = fake_slack.wait_for("views.update", view_id="V0OLDPICK1")
    shown = _text(update.args["view"])
    assert "`gone-template` is no longer in the catalog" in shown and "/templates" in shown
    assert bot.vast.request_count(path_prefix="/api/v0/bundles/") == 0


# -- J: the picker's race ---------------------------------------------------------------------


def _chosen(view: dict[str, Any], option: dict[str, Any]) -> dict[str, Any]:
    state = {
        "values": {
            picker.BLOCK_OFFER: {
                picker.ACTION_OFFER: {"type": "static_select", "selected_option": option}
            }
        }
    }
    return {**view, "state": state}


def test_the_last_offer_chosen_wins_over_a_slow_render(
    bot: BotHarness, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = _open_picker(bot, fake_slack, "jupyter-lab")
    block = next(b for b in view["blocks"] if b.get("block_id") == picker.BLOCK_OFFER)
    options = [o for g in block["element"]["option_groups"] for o in g["options"]]
    first, second = options[0], options[1]
    first_price = picker.parse_offer_value(first["value"]).price  # type: ignore[union-attr]
    assert first_price is not None

    budgets = bot.services.budgets
    check = budgets.check

    def slow_for_the_first(team: str, user: str, dph: float, hours: Any) -> Any:
        if abs(dph - first_price) < 1e-5:
            time.sleep(1.0)  # the first offer's render is slow
        return check(team, user, dph, hours)

    monkeypatch.setattr(budgets, "check", slow_for_the_first)
    for option in (first, second):
        bot.block_action(
            picker.ACTION_OFFER,
            view=_chosen(view, option),  # both clicks carry the view (and hash) they saw
            selected_option=option,
            block_id=picker.BLOCK_OFFER,
        )
        time.sleep(0.3)
    time.sleep(1.5)
    shown = fake_slack.views[view["id"]]
    offer_block = next(b for b in shown["blocks"] if b.get("block_id") == picker.BLOCK_OFFER)
    assert offer_block["element"]["initial_option"]["value"] == second["value"]


def test_a_hash_conflict_renders_again_on_the_newest_view(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    view = _open_picker(bot, fake_slack, "jupyter-lab")
    block = next(b for b in view["blocks"] if b.get("block_id") == picker.BLOCK_OFFER)
    option = block["element"]["option_groups"][0]["options"][0]
    stale = {**_chosen(view, option), "hash": "1732800000.stale"}  # the view changed since
    bot.block_action(
        picker.ACTION_OFFER, view=stale, selected_option=option, block_id=picker.BLOCK_OFFER
    )
    updates = fake_slack.wait_for("views.update", 3, view_id=view["id"])
    assert updates[1].args["hash"] == "1732800000.stale" and updates[1].answer is None
    assert updates[2].args["hash"] == view["hash"]  # the hash of the view the bot last showed
    shown = fake_slack.views[view["id"]]
    offer_block = next(b for b in shown["blocks"] if b.get("block_id") == picker.BLOCK_OFFER)
    assert offer_block["element"]["initial_option"]["value"] == option["value"]


def test_a_submission_when_the_pool_is_full_is_answered_busy_inline(
    bot_factory: BotFactory, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_deploy import creates, pick_offer, rows, submitted_view

    monkeypatch.setattr(runtime, "WORK_THREADS", 1)
    monkeypatch.setattr(runtime, "WORK_QUEUE", 0)
    bot = bot_factory()
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.SLOW, endpoint="search", seconds=1.5, times=None)
    bot.block_action("deploy_template", "vllm")  # holds the only thread
    wait_until(lambda: bot.services.work.in_flight == 1)
    started = time.monotonic()
    answer = bot.view_submission(submitted_view(chosen.id)).json()
    assert time.monotonic() - started < 1.0
    assert answer["response_action"] == "errors"
    assert "try again in a minute" in answer["errors"][picker.BLOCK_OFFER]
    assert creates(bot) == [] and rows(bot) == []


def test_a_shutdown_lets_accepted_jobs_finish_queued_ones_included() -> None:
    # A Stop or Destroy acked to a user must not vanish when the process stops.
    import time as _time

    from bot.services.work import WorkPool

    pool = WorkPool(1, 2)
    done: list[str] = []
    pool.spawn(lambda: (_time.sleep(0.2), done.append("running")))
    pool.spawn(lambda: done.append("queued"))
    pool.shutdown(wait_seconds=5)
    assert done == ["running", "queued"]


def test_a_modal_update_lost_on_the_network_does_not_crash_the_job(
    bot: BotHarness,
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Mechanism 1 for modals too: a views.update that fails on the network is an outcome,
    # not an exception escaping into the work pool (where nobody would hear of it).
    from urllib.error import URLError

    from slack_sdk import WebClient

    real = WebClient.views_update
    failures = [URLError("connection refused")]

    def flaky(self: WebClient, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(self, **kwargs)

    monkeypatch.setattr(WebClient, "views_update", flaky)
    assert bot.block_action("deploy_template", "jupyter-lab").status_code == 200
    fake_slack.wait_for("views.open")
    deadline = time.monotonic() + 5
    while failures and time.monotonic() < deadline:
        time.sleep(0.02)
    bot.services.work.shutdown(wait_seconds=5)
    assert not failures
    assert "background job failed" not in caplog.text
