"""Submitting the GPU picker through the real app: signed view_submission in; what the Vast.ai
simulator, the database and the fake Slack saw out. Every test runs on SQLite and, with
TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import storage
from bot.playground.slack_api import TEAM_ID
from bot.services.deploy import label_for
from bot.services.offers import find_offers
from bot.simulator import Fault
from bot.slack.blocks.picker import offer_label, offer_value
from bot.slack.listeners import submit
from catalog import RankedOffer
from tests.blockkit import texts
from tests.fixtures.slack import ALICE, CHANNEL, BotHarness

JUPYTER = "jupyter-lab"
#: Option text and value the picker showed for each offer id (Slack echoes both on submit).
OPTION_TEXT: dict[int, str] = {}
OPTION_VALUE: dict[int, str] = {}
CREATE = ("PUT", "/api/v0/asks/")


def pick_offer(bot: BotHarness, slug: str = JUPYTER, disk_gb: int = 20) -> RankedOffer:
    """The best live offer for ``slug``, searched as the picker does (request log cleared)."""
    template = bot.services.catalog.get(slug)
    ranked = find_offers(bot.services.vast, template, disk_gb=disk_gb)
    assert ranked
    bot.vast.clear_requests()
    for offer in ranked:
        OPTION_TEXT[offer.offer.id] = offer_label(offer)
        OPTION_VALUE[offer.offer.id] = offer_value(offer)
    return ranked[0]


def submitted_view(
    offer_id: int | str | None,
    *,
    slug: str = JUPYTER,
    disk: str | None = "20",
    channel: str | None = CHANNEL,
    view_id: str = "V0PICKER01",
    metadata: str | None = None,
    offer_text: str | None = None,
    shown_price: float | None = None,
) -> dict[str, Any]:
    """The ``view`` of a view_submission as Slack sends it for the picker (the option's text
    and value are the picker's for that offer when :func:`pick_offer` saw it; ``shown_price``
    forges the price in the value, an unknown id is sent bare)."""
    if offer_text is None:
        offer_text = OPTION_TEXT.get(int(str(offer_id)) if str(offer_id).isdigit() else -1, "?")
    values: dict[str, Any] = {
        "disk_block": {"disk_gb": {"type": "number_input", "value": disk}},
        "channel_block": {
            "channel": {"type": "conversations_select", "selected_conversation": channel}
        },
        "gpu_filter_block": {"gpu_filter": {"type": "static_select", "selected_option": None}},
        "max_price_block": {"max_price": {"type": "number_input", "value": None}},
    }
    if offer_id is not None:
        values["offer_block"] = {
            "gpu_offer": {
                "type": "static_select",
                "selected_option": {
                    "text": {"type": "plain_text", "text": offer_text, "emoji": True},
                    "value": (
                        f"{offer_id}@{shown_price:.6f}"
                        if shown_price is not None
                        else OPTION_VALUE.get(
                            int(str(offer_id)) if str(offer_id).isdigit() else -1, str(offer_id)
                        )
                    ),
                },
            }
        }
    else:
        values["offer_block"] = {"gpu_offer": {"type": "static_select", "selected_option": None}}
    return {
        "id": view_id,
        "team_id": TEAM_ID,
        "type": "modal",
        "callback_id": "deploy_modal",
        "private_metadata": metadata
        if metadata is not None
        else json.dumps({"template": slug, "channel": CHANNEL, "models": []}),
        "hash": "1732900000.abcdef",
        "title": {"type": "plain_text", "text": "Deploy JupyterLab"},
        "blocks": [],
        "state": {"values": values},
        "root_view_id": view_id,
        "app_id": "A0GPUBOT01",
        "bot_id": "B0GPUBOT1",
    }


def rows(bot: BotHarness) -> list[storage.DeploymentRecord]:
    return storage.list_for_team(bot.services.session_factory, TEAM_ID)


def wait_until(predicate: Callable[[], Any], timeout: float = 8.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def settled(bot: BotHarness, count: int = 1) -> list[storage.DeploymentRecord]:
    """Wait until ``count`` rows exist and none is still ``creating``."""
    return wait_until(
        lambda: (
            (found := rows(bot))
            and len(found) >= count
            and all(r.status != "creating" for r in found)
            and found
        )
    )


def creates(bot: BotHarness) -> list[Any]:
    return [r for r in bot.vast.requests if r.method == CREATE[0] and r.path.startswith(CREATE[1])]


def thread_replies(bot: BotHarness) -> list[Any]:
    return [c for c in bot.slack.calls_to("chat.postMessage") if c.args.get("thread_ts")]


def all_slack_text(bot: BotHarness) -> str:
    return json.dumps([c.args for c in bot.slack.calls])


# -- the happy path --------------------------------------------------------------------------


def test_submission_rents_one_instance_records_it_and_posts_the_status(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    started = time.monotonic()
    response = bot.view_submission(submitted_view(chosen.id))
    assert time.monotonic() - started < 3.0
    assert response.status_code == 200
    assert response.json() == {"response_action": "clear"}

    (dep,) = settled(bot)
    (search,) = [r for r in bot.vast.requests if r.path == "/api/v0/bundles/"]
    assert search.json["gpu_name"] == {"eq": chosen.gpu_name}  # re-check narrowed by the option
    (create,) = creates(bot)
    assert create.path == f"/api/v0/asks/{chosen.id}/"
    body = create.json
    assert body["image"] == "quay.io/jupyter/pytorch-notebook:cuda11-latest"
    assert body["env"]["-p 8888:8888"] == "1"
    assert body["disk"] == 20
    assert body["label"] == label_for(bot.services.deploy.installation_id, dep.id)
    assert body["cancel_unavail"] is True
    assert body["runtype"] == "ssh_direct"
    assert "start-notebook.py" in body["onstart"] and "${JUPYTER_TOKEN}" in body["onstart"]
    password = body["env"]["JUPYTER_TOKEN"]
    assert len(password) >= 32

    assert dep.status == "provisioning"
    assert dep.request_key == "V0PICKER01"
    assert dep.instance_id is not None and dep.instance_id in bot.vast.instances
    assert (dep.user_id, dep.channel_id, dep.team_id) == (ALICE, CHANNEL, TEAM_ID)
    assert (dep.offer_id, dep.gpu_name, dep.disk_gb) == (chosen.id, chosen.gpu_name, 20)
    assert dep.dph_total == pytest.approx(chosen.dph_total)
    # Stored encrypted: the row holds a Fernet token of the password, never the password.
    assert dep.web_password is not None and password not in dep.web_password
    assert bot.services.deploy.passwords.open(dep.web_password) == password
    assert dep.simulated is True
    assert dep.message_channel == CHANNEL and dep.message_ts

    (post,) = bot.slack.wait_for("chat.postMessage", channel=CHANNEL)
    assert post.args["text"] == f"JupyterLab on {chosen.num_gpus}× {chosen.gpu_name} " + (
        f"({chosen.gpu_ram_gb:.0f} GB): creating"
    )
    shown = texts(post.args["blocks"])
    assert f"requested by <@{ALICE}>" in shown and "simulated" in shown
    assert f"${chosen.dph_total:.3f}/h" in shown
    (update,) = bot.slack.wait_for("chat.update", ts=dep.message_ts)
    assert "Provisioning" in texts(update.args["blocks"])
    (home,) = bot.slack.wait_for("views.publish", user_id=ALICE)  # the Home tab lists it
    assert "JupyterLab" in json.dumps(home.args["view"])
    assert password not in all_slack_text(bot)  # the secret goes nowhere yet


def test_template_env_and_ports_reach_vast(bot: BotHarness) -> None:
    chosen = pick_offer(bot, "comfy-ui", 40).offer
    bot.view_submission(submitted_view(chosen.id, slug="comfy-ui", disk="50"))
    (dep,) = settled(bot)
    body = creates(bot)[0].json
    assert body["env"]["-p 8188:8188"] == "1"
    assert body["env"]["WEB_USER"] == "user" and body["env"]["COMFYUI_PORT_HOST"] == "8188"
    assert dep.web_password and body["env"]["WEB_PASSWORD"] not in dep.web_password
    assert body["env"]["WEB_PASSWORD"] == bot.services.deploy.passwords.open(dep.web_password)
    assert body["disk"] == 50 and body["onstart"] == "init.sh"


# -- inline validation and forged payloads --------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "disk", "channel", "block", "words"),
    [
        (None, "20", CHANNEL, "offer_block", "Choose a GPU offer"),
        ("12ab", "20", CHANNEL, "offer_block", "not an offer from the list"),
        ("-5", "20", CHANNEL, "offer_block", "not an offer from the list"),
        ("OFFER", "5", CHANNEL, "disk_block", "at least 20 GB for JupyterLab"),
        ("OFFER", "12", CHANNEL, "disk_block", "at least 20 GB for JupyterLab"),
        ("OFFER", "900", CHANNEL, "disk_block", "at most 500 GB"),
        ("OFFER", "2.5", CHANNEL, "disk_block", "whole number"),
        ("OFFER", "20", None, "channel_block", "Choose the channel"),
        ("OFFER", "20", "#general; drop", "channel_block", "Choose the channel"),
    ],
)
def test_invalid_input_is_answered_inline_and_rents_nothing(
    bot: BotHarness, offer: str | None, disk: str, channel: str | None, block: str, words: str
) -> None:
    chosen = pick_offer(bot).offer
    offer_id = chosen.id if offer == "OFFER" else offer
    response = bot.view_submission(submitted_view(offer_id, disk=disk, channel=channel))
    answer = response.json()
    assert answer["response_action"] == "errors"
    assert list(answer["errors"]) == [block]
    assert words in answer["errors"][block]
    assert bot.vast.requests == [] and rows(bot) == []


def test_unknown_template_gets_a_clear_view(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    answer = bot.view_submission(submitted_view(chosen.id, slug="bitcoin-miner")).json()
    assert answer["response_action"] == "update"
    assert "`bitcoin-miner` is no longer in the catalog" in texts(answer["view"]["blocks"])
    garbage = bot.view_submission(submitted_view(chosen.id, metadata="not json")).json()
    assert "out of date" in texts(garbage["view"]["blocks"])
    assert bot.vast.requests == [] and rows(bot) == []


def test_forged_offer_below_the_minimum_is_refused(bot: BotHarness) -> None:
    small = bot.vast.add_offer(gpu_name="RTX 4090", gpu_ram=2048, dph_base=0.01, num_gpus=1)
    vllm_ok = pick_offer(bot, "vllm", 60).offer
    weak = bot.vast.add_offer(gpu_name="RTX 4090", gpu_ram=12_000, num_gpus=1)
    for offer_id, slug, disk in ((small, JUPYTER, "20"), (weak, "vllm", "60")):
        answer = bot.view_submission(
            submitted_view(offer_id, slug=slug, disk=disk, view_id=f"V{offer_id}")
        ).json()
        assert answer["response_action"] == "errors"
        assert "no longer available" in answer["errors"]["offer_block"]
    assert creates(bot) == [] and rows(bot) == []
    assert vllm_ok.gpu_ram_gb >= 16 * 0.93  # the vLLM search itself was fine


def test_an_offer_taken_before_submit_is_refused_inline(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    bot.vast.take_offer(chosen.id)
    answer = bot.view_submission(submitted_view(chosen.id)).json()
    assert "no longer available" in answer["errors"]["offer_block"]
    assert creates(bot) == [] and rows(bot) == []


def test_vast_down_while_checking_the_offer_is_answered_inline(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.UNAVAILABLE, times=None, endpoint="search")
    answer = bot.view_submission(submitted_view(chosen.id)).json()
    assert "Could not check the offer with Vast.ai" in answer["errors"]["offer_block"]
    assert creates(bot) == [] and rows(bot) == []


def test_a_slow_check_acks_with_a_working_view_then_updates_it(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submit, "ACK_BUDGET_SECONDS", 0.2)
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.SLOW, endpoint="search", seconds=0.8)
    answer = bot.view_submission(submitted_view(chosen.id)).json()
    assert answer["response_action"] == "update"
    assert "Checking the GPU offer" in texts(answer["view"]["blocks"])
    (update,) = bot.slack.wait_for("views.update", view_id="V0PICKER01")
    assert "Renting the GPU for JupyterLab" in texts(update.args["view"]["blocks"])
    (dep,) = settled(bot)
    assert dep.status == "provisioning" and len(creates(bot)) == 1


# -- Vast.ai errors on create ---------------------------------------------------------------


def base_price(bot: BotHarness, offer_id: int) -> float:
    """GPU-only $/hour (``dph_base``) of a live simulator offer."""
    return float(next(o for o in bot.vast.offers if o["id"] == offer_id)["dph_base"])


def similar_to(bot: BotHarness, offer_id: int, **changes: Any) -> int:
    raw = next(o for o in bot.vast.offers if o["id"] == offer_id)
    fields = {k: raw[k] for k in ("gpu_name", "num_gpus", "gpu_ram", "dph_base", "storage_cost")}
    fields.update(
        cuda_max_good=raw["cuda_max_good"],
        compute_cap=raw["compute_cap"],
        disk_space=raw["disk_space"],
        direct_port_count=raw["direct_port_count"],
        verified=True,
        rentable=True,
    )
    fields.update(changes)
    return bot.vast.add_offer(**fields)


def only_offer_of_its_kind(bot: BotHarness, chosen: Any) -> None:
    for raw in bot.vast.offers:
        same = raw["gpu_name"] == chosen.gpu_name and raw["num_gpus"] == chosen.num_gpus
        if same and raw["id"] != chosen.id:
            bot.vast.take_offer(raw["id"])


def test_offer_taken_at_create_rents_a_similar_one_and_says_so(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    only_offer_of_its_kind(bot, chosen)
    stand_in = similar_to(bot, chosen.id, dph_base=round(base_price(bot, chosen.id) * 1.03, 4))
    bot.vast.inject(Fault.OFFER_TAKEN)
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert [c.path for c in creates(bot)] == [
        f"/api/v0/asks/{chosen.id}/",
        f"/api/v0/asks/{stand_in}/",
    ]
    assert dep.status == "provisioning" and dep.instance_id in bot.vast.instances
    # the row records the stand-in's price, not the taken offer's
    assert dep.offer_id == stand_in
    assert dep.dph_total == pytest.approx(
        bot.vast.instances[dep.instance_id]["dph_total"], rel=1e-4
    )
    assert dep.dph_total > chosen.dph_total
    (note,) = bot.slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)
    assert "was just rented by someone else" in note.args["text"]
    assert "Trying a similar one" in note.args["text"]
    events = [e.action for e in storage.list_events(bot.services.session_factory, dep.id)]
    assert "offer_retry" in events


def test_offer_taken_without_a_similar_one_fails_and_offers_a_new_pick(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    only_offer_of_its_kind(bot, chosen)
    similar_to(bot, chosen.id, dph_base=round(base_price(bot, chosen.id) * 1.5, 4))  # too dear
    bot.vast.inject(Fault.OFFER_TAKEN)
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "failed" and "rented by someone else" in (dep.reason or "")
    assert len(creates(bot)) == 1 and bot.vast.instances == {}
    (note,) = bot.slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)
    assert f"<@{ALICE}>" in note.args["text"] and "no similar offer" in note.args["text"]
    button = note.args["blocks"][-1]["elements"][0]
    assert (button["action_id"], button["value"]) == ("deploy_template", JUPYTER)
    (update,) = bot.slack.wait_for("chat.update", ts=dep.message_ts)
    assert "Failed" in texts(update.args["blocks"])


@pytest.mark.parametrize(
    ("fault", "words", "retry_button"),
    [
        ("credit", "does not have enough credit", False),
        (Fault.UNAVAILABLE, "Could not reach Vast.ai", True),
        (Fault.BAD_KEY, "refused the bot's API key", False),
    ],
)
def test_vast_errors_on_create_fail_the_row_and_tell_the_user(
    bot: BotHarness, fault: Any, words: str, retry_button: bool
) -> None:
    chosen = pick_offer(bot).offer
    if fault == "credit":
        bot.vast.credit = 0
    else:
        bot.vast.inject(fault, endpoint="create")
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "failed" and words in (dep.reason or "")
    assert dep.instance_id is None and bot.vast.instances == {}
    assert len(creates(bot)) == 1
    (note,) = bot.slack.wait_for("chat.postMessage", thread_ts=dep.message_ts)
    assert words in note.args["text"] and f"<@{ALICE}>" in note.args["text"]
    has_button = any(b["type"] == "actions" for b in note.args["blocks"])
    assert has_button is retry_button
    (update,) = bot.slack.wait_for("chat.update", ts=dep.message_ts)
    assert words in texts(update.args["blocks"])


def test_failed_create_that_left_an_instance_destroys_it(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.CREATE_FAILED_WITH_CONTRACT)
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "failed" and "could not be started" in (dep.reason or "")
    assert bot.vast.instances == {}
    assert bot.vast.request_count("DELETE", "/api/v0/instances/") == 1


def test_create_timeout_finds_the_instance_by_its_label(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    bot.vast.inject(Fault.SLOW, endpoint="create", seconds=2.4)  # client create_timeout is 2 s
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "provisioning" and len(creates(bot)) == 1
    (instance,) = bot.vast.instances.values()
    assert dep.instance_id == instance["id"] and instance["label"] == label_for(
        bot.services.deploy.installation_id, dep.id
    )
    # Looked up by label on Vast.ai's side: one page, not the whole account.
    lookups = [r.query for r in bot.vast.requests if r.path == "/api/v1/instances/"]
    assert lookups and json.loads(lookups[0]["select_filters"]) == {
        "label": {"eq": label_for(bot.services.deploy.installation_id, dep.id)}
    }


# -- exactly one instance per submission ----------------------------------------------------


def test_the_same_submission_twice_rents_once(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id)
    assert bot.view_submission(view).json() == {"response_action": "clear"}
    settled(bot)
    bot.view_submission(view)
    time.sleep(0.3)  # give a wrong second rental the chance to show up
    (dep,) = settled(bot)
    assert len(creates(bot)) == 1 and len(bot.vast.instances) == 1
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


def test_concurrent_deliveries_rent_once(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0CONCUR01")
    barrier = threading.Barrier(8)
    answers: list[int] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(bot.view_submission(view).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 8
    (dep,) = settled(bot)
    wait_until(lambda: bot.slack.calls_to("chat.update"))
    time.sleep(0.3)
    assert len(creates(bot)) == 1 and len(bot.vast.instances) == 1
    assert len(rows(bot)) == 1 and dep.status == "provisioning"
    assert len(bot.slack.calls_to("chat.postMessage")) == 1


def already_said(answer: dict[str, Any]) -> str:
    """The text of a modal answer (ack or views.update) that says the form was submitted."""
    view = answer.get("view") or {}
    text = texts(view.get("blocks"))
    return text if "already submitted" in text else ""


def test_a_repeated_submission_is_answered_with_what_the_first_started(bot: BotHarness) -> None:
    """Slack delivering one submission twice (or Submit pressed again) used to be answered
    "that offer is no longer available" although the first delivery had rented it."""
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0REPEAT01")
    assert bot.view_submission(view).json() == {"response_action": "clear"}
    (dep,) = settled(bot)
    again = bot.view_submission(view).json()
    assert again["response_action"] == "update"
    text = already_said(again)
    assert "already deploying" in text and f"#{dep.id}" in text and f"<#{CHANNEL}>" in text
    assert "Nothing new was rented" in text and "no longer available" not in json.dumps(again)
    assert len(creates(bot)) == 1 and len(rows(bot)) == 1


def test_a_repeat_checked_while_the_first_rents_still_hears_the_truth(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeat's first look finds no row (the twin has not written it yet); by the time
    its offer check fails, the twin has rented the offer: it looks again before refusing."""
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0REPEAT02")
    assert bot.view_submission(view).json() == {"response_action": "clear"}
    settled(bot)
    deploy = bot.services.deploy
    looks: list[str] = []
    real = deploy.submitted

    def late(request_key: str) -> Any:
        looks.append(request_key)
        return None if len(looks) == 1 else real(request_key)

    monkeypatch.setattr(deploy, "submitted", late)
    again = bot.view_submission(view).json()
    assert looks == ["V0REPEAT02", "V0REPEAT02"]
    assert "already deploying" in already_said(again)
    assert len(creates(bot)) == 1


def test_a_repeat_whose_twin_wrote_the_row_first_is_answered_with_it(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries at once both pass the look-up and the offer check; the row's unique key
    lets one write it, and the other is answered with that row, not a second rental."""
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0REPEAT03")
    deploy = bot.services.deploy
    checks: list[Any] = []
    real_recheck = deploy.recheck

    def remembered(*args: Any, **kwargs: Any) -> Any:
        if not checks:
            checks.append(real_recheck(*args, **kwargs))
        return checks[0]  # the twin saw the offer free, too

    monkeypatch.setattr(deploy, "recheck", remembered)
    monkeypatch.setattr(deploy, "submitted", lambda request_key: None)
    assert bot.view_submission(view).json() == {"response_action": "clear"}
    (dep,) = settled(bot)
    again = bot.view_submission(view).json()
    assert "already deploying" in already_said(again) and f"#{dep.id}" in already_said(again)
    assert len(creates(bot)) == 1 and len(rows(bot)) == 1


def test_concurrent_deliveries_are_each_answered_with_the_truth(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0CONCUR02")
    count = 6
    barrier = threading.Barrier(count)
    answers: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait()
        answers.append(bot.view_submission(view).json())

    threads = [threading.Thread(target=deliver) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (dep,) = settled(bot)

    def told() -> list[str]:  # in the ack, or in the modal later when the check was slow
        updates = [{"view": call.args.get("view")} for call in bot.slack.calls_to("views.update")]
        return [text for text in map(already_said, answers + updates) if text]

    assert len(wait_until(lambda: len(told()) >= count - 1 and told())) == count - 1
    assert all(f"#{dep.id}" in text for text in told())
    everything = json.dumps(answers) + all_slack_text(bot)
    assert "no longer available" not in everything
    assert len(creates(bot)) == 1 and len(bot.vast.instances) == 1


@pytest.mark.parametrize(
    ("status", "message_channel", "words"),
    [
        ("creating", None, ["is already deploying", "will appear in <#C0DEPLOYS1>"]),
        ("ready", "C0DEPLOYS1", ["is running", "is in <#C0DEPLOYS1>"]),
        ("pending_approval", "C0DEPLOYS1", ["is waiting for approval"]),
        ("stopped", "C0DEPLOYS1", ["is stopped"]),
        ("failed", "D0ALICEDM", ["failed", "run `/templates`", "in your DMs with the bot"]),
        ("denied", "C0DEPLOYS1", ["was denied", "run `/templates`"]),
    ],
)
def test_the_answer_to_a_repeat_says_what_became_of_the_first(
    status: str, message_channel: str | None, words: list[str]
) -> None:
    import dataclasses

    from bot.slack.blocks.deploy import already_text
    from tests.test_blocks_lifetimes import make_dep

    dep = dataclasses.replace(
        make_dep(id=7),
        status=storage.DeploymentStatus(status),
        message_channel=message_channel,
        message_ts=None if message_channel is None else "1732900000.000100",
    )
    text = already_text(dataclasses.replace(dep, template_name="<!channel> *x*"))
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    text = already_text(dep)
    assert text.startswith(":") and "*JupyterLab* (#7)" in text and "Nothing new was rented" in text
    for word in words:
        assert word in text


def test_a_repeat_by_someone_else_names_nothing_of_the_first(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    view = submitted_view(chosen.id, view_id="V0REPEAT04")
    assert bot.view_submission(view).json() == {"response_action": "clear"}
    settled(bot)
    other = bot.view_submission(view, user="U0BOB0002").json()
    text = texts(other["view"]["blocks"])
    assert text == f":warning: {submit.FORM_USED}"
    assert len(creates(bot)) == 1


# -- where the status message goes ----------------------------------------------------------


def test_bot_not_in_channel_falls_back_to_a_dm_with_the_reason(bot: BotHarness) -> None:
    bot.slack.channels_without_bot.add(CHANNEL)
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "provisioning"
    assert dep.message_channel is not None and dep.message_channel.startswith("D")
    posts = bot.slack.wait_for("chat.postMessage", 3)
    dm_posts = [p for p in posts if p.args["channel"] == dep.message_channel]
    assert "I'm not a member of <#" + CHANNEL + ">" in dm_posts[0].args["text"]
    assert "JupyterLab" in dm_posts[1].args["text"]
    bot.slack.wait_for("chat.update", channel=dep.message_channel, ts=dep.message_ts)


def test_slack_refusing_the_status_message_rents_nothing(bot: BotHarness) -> None:
    bot.slack.fail("chat.postMessage", "invalid_blocks")
    chosen = pick_offer(bot).offer
    bot.view_submission(submitted_view(chosen.id))
    (dep,) = settled(bot)
    assert dep.status == "failed" and "nothing was rented" in (dep.reason or "")
    assert creates(bot) == []
    (dm,) = bot.slack.wait_for("chat.postMessage", channel="D" + ALICE[1:])
    assert "could not post the status message" in dm.args["text"]


def test_a_price_rise_after_the_pick_is_refused_inline(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    raw = next(o for o in bot.vast.offers if o["id"] == chosen.id)
    raw_dear = {**raw, "dph_base": round(float(raw["dph_base"]) * 3, 4)}
    bot.vast.take_offer(chosen.id)
    bot.vast.add_offer(**raw_dear)  # same id, three times the price
    answer = bot.view_submission(submitted_view(chosen.id, shown_price=chosen.dph_total)).json()
    message = answer["errors"]["offer_block"]
    assert f"rose from ${chosen.dph_total:.3f}/h" in message
    assert creates(bot) == [] and rows(bot) == []


def test_the_price_shown_is_the_price_rented(bot: BotHarness) -> None:
    chosen = pick_offer(bot).offer
    answer = bot.view_submission(submitted_view(chosen.id, shown_price=chosen.dph_total)).json()
    assert answer == {"response_action": "clear"}
    (dep,) = settled(bot)
    assert dep.dph_total == pytest.approx(chosen.dph_total)


def test_a_bigger_disk_than_the_picker_priced_is_not_a_price_rise(bot: BotHarness) -> None:
    chosen = pick_offer(bot, disk_gb=20).offer  # the picker priced 20 GB
    disk = int(min(chosen.disk_space_gb, 300))
    extra = (disk - 20) * (chosen.storage_cost or 0) / 720
    assert extra > chosen.dph_total * 0.02  # more than the tolerance: only the disk explains it
    answer = bot.view_submission(
        submitted_view(chosen.id, disk=str(disk), shown_price=chosen.dph_total)
    ).json()
    assert answer == {"response_action": "clear"}
    (dep,) = settled(bot)
    assert dep.status == "provisioning" and dep.disk_gb == disk
    assert dep.dph_total == pytest.approx(chosen.dph_total + extra, rel=1e-3)
