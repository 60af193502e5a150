"""The local Slack playground: the client state model (plain unit tests), a journey through its
JSON API over HTTP against the real bot and the Vast.ai simulator, and ``python -m bot demo``
in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from bot.playground import demo as demo_module
from bot.playground.page import Playground
from bot.playground.slack_api import FakeSlack
from bot.playground.workspace import (
    DELETED_TEXT,
    Channel,
    ResponseTarget,
    User,
    WorkspaceState,
    dm_channel_id,
)
from bot.simulator import Timeline

ADA = User("U0ADA0001", "ada", "Ada", "Europe/London", "owner")
BEN = User("U0BEN0002", "ben", "Ben", "UTC", "teammate")
GPU = Channel("C0GPU0001", "gpu")
T = TypeVar("T")


def _state() -> WorkspaceState:
    return WorkspaceState(
        team={"id": "T1", "name": "Lab", "domain": "lab"},
        bot={"user_id": "U0BOT0001", "name": "GPU Templates"},
        users=[ADA, BEN],
        channels=[GPU],
        clock=lambda: 1_800_000_000.0,
    )


def _post(state: WorkspaceState, ts: str, text: str, **args: Any) -> None:
    channel = args.pop("channel", GPU.id)
    state.apply(
        "chat.postMessage",
        {"channel": channel, "text": text, **args},
        {"ok": True, "channel": channel, "ts": ts},
    )


def _texts(state: WorkspaceState, user: str, channel: str = GPU.id) -> list[str]:
    return [m["text"] for m in state.snapshot(user)["messages"][channel]]


# -- the state model --------------------------------------------------------------------------


def test_messages_updates_threads_and_deletes_as_a_client_shows_them() -> None:
    state = _state()
    _post(state, "1.000001", "Deploying", blocks=[{"type": "section"}])
    _post(state, "1.000002", "another")
    _post(state, "1.000003", "in the thread", thread_ts="1.000001")
    state.apply("chat.update", {"channel": GPU.id, "ts": "1.000001", "text": "Ready"}, {"ok": True})
    shown = state.snapshot(ADA.id)["messages"][GPU.id]
    assert [m["text"] for m in shown] == ["Ready", "another"]  # replies stay in their thread
    assert shown[0]["edited"] and shown[0]["blocks"] == [{"type": "section"}]  # kept
    assert [r["text"] for r in shown[0]["replies"]] == ["in the thread"]
    assert shown[0]["replies"][0]["thread_ts"] == "1.000001"
    before = state.version
    state.apply("chat.delete", {"channel": GPU.id, "ts": "1.000002"}, {"ok": True})
    state.apply("chat.delete", {"channel": GPU.id, "ts": "1.000001"}, {"ok": True})
    assert state.version > before
    shown = state.snapshot(ADA.id)["messages"][GPU.id]
    # a deleted message with replies stays as Slack shows it; one without is gone
    assert [(m["text"], m["deleted"]) for m in shown] == [(DELETED_TEXT, True)]


def test_ephemeral_messages_are_seen_only_by_their_person() -> None:
    state = _state()
    state.apply(
        "chat.postEphemeral",
        {"channel": GPU.id, "user": ADA.id, "text": "only Ada"},
        {"ok": True, "message_ts": "1.000001"},
    )
    assert _texts(state, ADA.id) == ["only Ada"]
    assert state.snapshot(ADA.id)["messages"][GPU.id][0]["ephemeral"] is True
    assert _texts(state, BEN.id) == []


def test_dms_are_each_persons_own() -> None:
    state = _state()
    state.apply("conversations.open", {"users": ADA.id}, {"ok": True})
    _post(state, "1.000001", "your key", channel=dm_channel_id(ADA.id))
    ada, ben = state.snapshot(ADA.id), state.snapshot(BEN.id)
    assert {"id": dm_channel_id(ADA.id), "name": "GPU Templates", "is_im": True} in ada["channels"]
    assert [m["text"] for m in ada["messages"][dm_channel_id(ADA.id)]] == ["your key"]
    assert dm_channel_id(ADA.id) not in ben["messages"]
    assert [c["id"] for c in ben["channels"]] == [GPU.id, dm_channel_id(BEN.id)]


def test_response_url_replaces_deletes_or_posts_as_slack_does() -> None:
    state = _state()
    state.apply(
        "chat.postEphemeral",
        {"channel": GPU.id, "user": ADA.id, "text": "catalog"},
        {"ok": True, "message_ts": "1.000001"},
    )
    state.expect_response("r1", ResponseTarget(ADA.id, GPU.id, "1.000001", ephemeral=True))
    state.respond("r1", {"replace_original": True, "text": "page 2"})
    assert _texts(state, ADA.id) == ["page 2"]
    state.respond("r1", {"text": "a new one", "replace_original": False})
    assert _texts(state, ADA.id) == ["page 2", "a new one"]
    assert _texts(state, BEN.id) == []  # ephemeral by default
    state.respond("r1", {"text": "for all", "response_type": "in_channel"})
    assert _texts(state, BEN.id) == ["for all"]
    state.respond("r1", {"delete_original": "true"})
    assert _texts(state, ADA.id) == ["a new one", "for all"]
    # a slash command has no original: replace_original posts anew
    state.expect_response("cmd", ResponseTarget(BEN.id, GPU.id))
    state.respond("cmd", {"replace_original": True, "text": "answer"})
    assert _texts(state, BEN.id) == ["for all", "answer"]
    state.respond("unknown", {"text": "ignored"})
    assert _texts(state, ADA.id) == ["a new one", "for all"]


def test_command_ack_is_ephemeral_unless_in_channel() -> None:
    state = _state()
    assert not state.command_ack(ADA.id, GPU.id, {})  # an empty ack shows nothing
    assert state.command_ack(ADA.id, GPU.id, {"text": "hi"})
    assert state.command_ack(ADA.id, GPU.id, {"text": "all", "response_type": "in_channel"})
    assert _texts(state, ADA.id) == ["hi", "all"] and _texts(state, BEN.id) == ["all"]


def _view(view_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": view_id, "hash": "h", "type": "modal", "blocks": [], **fields}


def test_modal_stack_open_push_update_errors_and_close() -> None:
    state = _state()
    state.apply("views.open", {}, {"ok": True, "view": _view("V1")}, user_id=None)
    assert state.views(ADA.id) == []  # a trigger of nobody's: shown to nobody
    state.apply("views.open", {}, {"ok": True, "view": _view("V1")}, user_id=ADA.id)
    state.apply("views.push", {}, {"ok": True, "view": _view("V2")}, user_id=ADA.id)
    assert state.stack_depth(ADA.id) == 2 and state.views(BEN.id) == []
    state.apply("views.update", {}, {"ok": True, "view": _view("V1", title="new")})
    assert [v.get("title") for v in state.views(ADA.id)] == ["new", None]
    state.submission_ack(ADA.id, "V2", {"response_action": "errors", "errors": {"b": "no"}}, None)
    assert state.views(ADA.id)[1]["errors"] == {"b": "no"}
    state.submission_ack(ADA.id, "V2", {"response_action": "update"}, _view("V2", title="t2"))
    assert state.views(ADA.id)[1]["title"] == "t2" and state.views(ADA.id)[1]["errors"] == {}
    state.submission_ack(ADA.id, "V2", {"response_action": "push"}, _view("V3"))
    assert [v["id"] for v in state.views(ADA.id)] == ["V1", "V2", "V3"]
    state.submission_ack(ADA.id, "V2", {}, None)  # closes it and what was pushed over it
    assert [v["id"] for v in state.views(ADA.id)] == ["V1"]
    assert state.close_view(ADA.id, "V9") is None
    closed = state.close_view(ADA.id, "V1")
    assert closed is not None and closed["id"] == "V1" and state.views(ADA.id) == []
    state.apply("views.open", {}, {"ok": True, "view": _view("V4")}, user_id=ADA.id)
    state.apply("views.push", {}, {"ok": True, "view": _view("V5")}, user_id=ADA.id)
    state.submission_ack(ADA.id, "V5", {"response_action": "clear"}, None)
    assert state.views(ADA.id) == []


def test_home_tab_is_per_person_and_updatable() -> None:
    state = _state()
    home = {"id": "VH", "hash": "h", "type": "home", "blocks": []}
    state.apply("views.publish", {"user_id": ADA.id}, {"ok": True, "view": home})
    assert state.home(ADA.id) is not None and state.home(BEN.id) is None
    state.apply("views.update", {}, {"ok": True, "view": {**home, "blocks": [{"type": "divider"}]}})
    assert state.snapshot(ADA.id)["home"]["blocks"] == [{"type": "divider"}]


def test_refusals_are_listed_with_slacks_detail() -> None:
    state = _state()
    state.refused(
        "chat.update",
        {"ok": False, "error": "invalid_blocks", "response_metadata": {"messages": ["[ERROR] x"]}},
    )
    assert state.snapshot(ADA.id)["refusals"] == [
        {"method": "chat.update", "error": "invalid_blocks", "detail": "[ERROR] x", "at": 1.8e9}
    ]


# -- triggers in the stand-in ---------------------------------------------------------------


def test_a_trigger_id_opens_one_view_within_three_seconds() -> None:
    state = _state()
    with FakeSlack(state=state, strict=True) as fake:
        client = httpx.Client(base_url=fake.api_url)
        view = json.dumps(
            {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": []}
        )
        trigger = fake.issue_trigger(ADA.id)
        assert client.post("views.open", data={"trigger_id": trigger, "view": view}).json()["ok"]
        assert [v["type"] for v in state.views(ADA.id)] == ["modal"]
        again = client.post("views.open", data={"trigger_id": trigger, "view": view}).json()
        assert again["error"] == "exchanged_trigger_id"
        made_up = client.post("views.open", data={"trigger_id": "1.2.abc", "view": view}).json()
        assert made_up["error"] == "invalid_trigger_id"  # strict: only issued ones
        fake.trigger_seconds = 0.0  # as if 3 s had passed since it was issued
        late = fake.issue_trigger(ADA.id)
        expired = client.post("views.open", data={"trigger_id": late, "view": view}).json()
        assert expired["error"] == "expired_trigger_id"
        assert [r["error"] for r in state.snapshot(ADA.id)["refusals"]] == [
            "exchanged_trigger_id",
            "invalid_trigger_id",
            "expired_trigger_id",
        ]
    with FakeSlack() as lenient:  # the test suite's made-up trigger ids still work
        answer = httpx.post(
            lenient.api_url + "views.open", data={"trigger_id": "1.2.abc", "view": view}
        )
        assert answer.json()["ok"]


def test_strict_stand_in_refuses_unknown_messages_views_and_a_fourth_modal() -> None:
    state = _state()
    with FakeSlack(state=state, strict=True) as fake:
        api = httpx.Client(base_url=fake.api_url)
        gone = {"channel": GPU.id, "ts": "1.000001", "text": "x"}
        assert api.post("chat.update", data=gone).json()["error"] == "message_not_found"
        assert api.post("chat.delete", data=gone).json()["error"] == "message_not_found"
        posted = api.post("chat.postMessage", data={"channel": GPU.id, "text": "hi"}).json()
        mine = {"channel": GPU.id, "ts": posted["ts"]}
        assert api.post("chat.delete", data=mine).json()["ok"]
        assert api.post("chat.delete", data=mine).json()["error"] == "message_not_found"
        assert _texts(state, ADA.id) == []
        modal = json.dumps(_modal())
        update = api.post("views.update", data={"view_id": "V0NOPE", "view": modal}).json()
        assert update["error"] == "not_found"
        for _ in range(3):
            trigger = fake.issue_trigger(ADA.id)
            assert api.post("views.push", data={"trigger_id": trigger, "view": modal}).json()["ok"]
        trigger = fake.issue_trigger(ADA.id)
        fourth = api.post("views.push", data={"trigger_id": trigger, "view": modal}).json()
        assert fourth["error"] == "push_limit_reached" and state.stack_depth(ADA.id) == 3


# -- the JSON API against a recording bot ---------------------------------------------------

SECRET = "playground-test-secret"


class RecordingBot:
    """A bot that checks Slack's signature and answers each request with ``answer(form)``
    (None: an empty 200), recording the decoded bodies."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: Callable[[dict[str, Any]], dict[str, Any] | None] = lambda _: None
        self.release = threading.Event()
        self.release.set()
        verifier = SignatureVerifier(SECRET)
        bot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                signed = verifier.is_valid_request(body, dict(self.headers))
                if "json" in self.headers["Content-Type"]:
                    form: dict[str, Any] = json.loads(body)
                else:
                    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                    if "payload" in form:
                        form = json.loads(form["payload"])
                bot.received.append({**form, "_signed": signed})
                bot.release.wait(10)
                answer = bot.answer(form)
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(200 if signed else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorded() -> Iterator[tuple[Playground, RecordingBot, FakeSlack]]:
    bot = RecordingBot()
    with FakeSlack(state=demo_module.demo_state(time.time), strict=True) as fake:
        playground = Playground(
            fake,
            events_url=bot.url,
            signing_secret=SECRET,
            team=demo_module.TEAM,
            ack_seconds=0.5,
        )
        fake.mount(playground.route)
        try:
            yield playground, bot, fake
        finally:
            playground.close()
            bot.stop()


def _modal(**fields: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Pick"},
        "blocks": [],
        **fields,
    }


def _open_modal(fake: FakeSlack, trigger_id: str, **view: Any) -> dict[str, Any]:
    modal = _modal(**view)
    answer = httpx.post(
        fake.api_url + "views.open", data={"trigger_id": trigger_id, "view": json.dumps(modal)}
    ).json()
    assert answer["ok"], answer
    return dict(answer["view"])


def test_requests_reach_the_bot_signed_and_shaped_as_slack_sends_them(
    recorded: tuple[Playground, RecordingBot, FakeSlack],
) -> None:
    playground, bot, fake = recorded
    ada = Client(fake.url, demo_module.OWNER.id)
    bot.answer = lambda form: {"text": "pick one", "response_type": "in_channel"}
    ada.call("command", channel=demo_module.CHANNEL.id, text="/templates  12gb ")
    command = bot.received[-1]
    assert command["_signed"] and command["command"] == "/templates"
    assert command["text"] == "12gb" and command["user_id"] == demo_module.OWNER.id
    assert command["channel_id"] == demo_module.CHANNEL.id and command["channel_name"] == "gpu"
    assert command["team_id"] == demo_module.TEAM.team_id
    assert command["response_url"].startswith(fake.url + "/response/")
    message = ada.messages()[-1]
    assert (message["text"], message["ephemeral"]) == ("pick one", False)  # the ack, in_channel

    bot.answer = lambda form: None
    ada.call(
        "action",
        channel=demo_module.CHANNEL.id,
        message_ts=message["ts"],
        action={"action_id": "go", "block_id": "b", "type": "button", "value": "1"},
    )
    click = bot.received[-1]
    assert click["_signed"] and click["type"] == "block_actions"
    assert click["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": demo_module.CHANNEL.id,
        "is_ephemeral": False,
    }
    assert click["message"]["text"] == "pick one" and click["actions"][0]["value"] == "1"
    # its response_url replaces the message clicked; its trigger_id opens one modal, once
    httpx.post(click["response_url"], json={"replace_original": True, "text": "picked"})
    assert [m["text"] for m in ada.messages()] == ["picked"]
    view = _open_modal(fake, click["trigger_id"], callback_id="pick", notify_on_close=True)
    with pytest.raises(AssertionError, match="exchanged_trigger_id"):
        _open_modal(fake, click["trigger_id"])

    values = {"b": {"a": {"type": "plain_text_input", "value": "x"}}}
    ada.call("action", view_id=view["id"], action={"action_id": "a", "type": "button"})
    in_modal = bot.received[-1]
    assert in_modal["container"] == {"type": "view", "view_id": view["id"]}
    assert "response_url" not in in_modal and in_modal["view"]["callback_id"] == "pick"
    assert (in_modal["view"]["root_view_id"], in_modal["view"]["previous_view_id"]) == (
        view["id"],
        None,
    )

    bot.answer = lambda form: {"response_action": "errors", "errors": {"b": "Too short"}}
    ada.call("submit", view_id=view["id"], state={"values": values})
    submitted = bot.received[-1]
    assert submitted["_signed"] and submitted["type"] == "view_submission"
    assert submitted["view"]["state"] == {"values": values}
    assert submitted["view"]["hash"] == view["hash"]
    assert ada.state()["views"][-1]["errors"] == {"b": "Too short"}

    bot.answer = lambda form: {
        "response_action": "update",
        "view": {**view, "title": {"type": "plain_text", "text": "Sure?"}},
    }
    ada.call("submit", view_id=view["id"], state={"values": values})
    shown = ada.state()["views"]
    assert [v["title"]["text"] for v in shown] == ["Sure?"] and shown[0]["id"] == view["id"]
    assert shown[0]["hash"] != view["hash"]
    # the bot may edit the view Slack showed with its new hash; the old one is a conflict
    modal = {**_modal(), "notify_on_close": True}
    update = {"view_id": view["id"], "view": json.dumps(modal)}
    stale = httpx.post(fake.api_url + "views.update", data={**update, "hash": view["hash"]})
    assert stale.json()["error"] == "hash_conflict"
    assert httpx.post(
        fake.api_url + "views.update", data={**update, "hash": shown[0]["hash"]}
    ).json()["ok"]

    bot.answer = lambda form: {"response_action": "push", "view": _modal(callback_id="more")}
    ada.call("submit", view_id=view["id"], state={"values": values})
    pushed = ada.state()["views"][-1]
    assert [v["id"] for v in ada.state()["views"]] == [view["id"], pushed["id"]]
    assert pushed["callback_id"] == "more" and pushed["id"] != view["id"]
    bot.answer = lambda form: None
    ada.call("action", view_id=pushed["id"], action={"action_id": "a", "type": "button"})
    assert bot.received[-1]["view"]["previous_view_id"] == view["id"]
    assert bot.received[-1]["view"]["root_view_id"] == view["id"]

    ada.call("close", view_id=view["id"])
    closed = bot.received[-1]
    assert closed["type"] == "view_closed" and closed["view"]["id"] == view["id"]
    assert ada.state()["views"] == []

    ada.call("home_opened")
    event = bot.received[-1]
    assert event["_signed"] and event["type"] == "event_callback"
    assert event["event"]["type"] == "app_home_opened" and event["event"]["tab"] == "home"
    assert event["event"]["user"] == demo_module.OWNER.id


def test_a_bot_slower_than_slack_allows_gets_operation_timeout(
    recorded: tuple[Playground, RecordingBot, FakeSlack],
) -> None:
    playground, bot, fake = recorded
    bot.release.clear()  # the bot does not answer until released
    answer = httpx.post(
        fake.url + "/playground/api/command",
        json={"user": demo_module.OWNER.id, "channel": "C0GPU0001", "text": "/templates"},
    ).json()
    bot.release.set()
    assert answer == {"ok": False, "error": "operation_timeout"}
    playground.signing_secret = "not-the-bots"
    refused = httpx.post(
        fake.url + "/playground/api/home_opened", json={"user": demo_module.OWNER.id}
    ).json()
    assert refused == {"ok": False, "error": "http_service_error"}


# -- the JSON API against the real bot --------------------------------------------------------


def wait_for(what: Callable[[], T | None], timeout: float = 20.0, message: str = "") -> T:
    """Poll ``what`` until it returns something truthy (its value), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or what}")
        time.sleep(0.05)


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[demo_module.Demo]:
    # Instances boot only when told (the sim panel's "ready") and the bot looks at them only
    # after a sim panel change, so the tests show that both work.
    slow = Timeline(created_after=0, loading_after=1, running_after=3600, app_ready_after=3600)
    # Slack's 3 s for an acknowledgement is tested on its own (a slow bot's operation_timeout);
    # here a busy test machine may take longer.
    running = demo_module.start(
        data_dir=tmp_path, port=0, timeline=slow, poll_seconds=3600, ack_seconds=15
    )
    try:
        yield running
    finally:
        running.stop()


class Client:
    """A person using the playground page, through its JSON API."""

    def __init__(self, url: str, user: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.user = user

    def state(self) -> dict[str, Any]:
        answer = self.http.get("/playground/api/state", params={"user": self.user})
        assert answer.status_code == 200
        return dict(answer.json())

    def call(self, name: str, **body: Any) -> dict[str, Any]:
        answer = self.http.post(f"/playground/api/{name}", json={"user": self.user, **body})
        assert answer.status_code == 200, answer.text
        result = dict(answer.json())
        assert result["ok"], result
        return result

    def messages(self, channel: str = demo_module.CHANNEL.id) -> list[dict[str, Any]]:
        return list(self.state()["messages"][channel])


def elements(blocks: list[dict[str, Any]] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(block_id, element) of every interactive element."""
    for block in blocks or []:
        for element in [*block.get("elements", []), block.get("accessory"), block.get("element")]:
            if isinstance(element, dict) and element.get("action_id"):
                yield str(block.get("block_id", "")), element


def button(message: dict[str, Any], action_id: str, value: str | None = None) -> dict[str, Any]:
    for block_id, element in elements(message["blocks"]):
        if element["action_id"] == action_id and value in (None, element.get("value")):
            return {
                "action_id": action_id,
                "block_id": block_id,
                "type": element["type"],
                "value": element.get("value"),
            }
    raise AssertionError(f"no {action_id} in {message['text']!r}")


def has_action(message: dict[str, Any], action_id: str) -> bool:
    return any(e["action_id"] == action_id for _, e in elements(message["blocks"]))


def input_state(view: dict[str, Any]) -> dict[str, Any]:
    """The ``state.values`` a client sends for a modal as first shown (initial values)."""
    values: dict[str, Any] = {}
    for block_id, element in elements(view["blocks"]):
        kind, value = element["type"], None
        if kind in ("static_select", "external_select"):
            value = {"selected_option": element.get("initial_option")}
        elif kind in ("number_input", "plain_text_input"):
            value = {"value": element.get("initial_value")}
        elif kind == "conversations_select":
            value = {"selected_conversation": element.get("initial_conversation")}
        if value is not None:
            values.setdefault(block_id, {})[element["action_id"]] = {"type": kind, **value}
    return {"values": values}


def test_journey_from_the_catalog_to_a_stopped_gpu(playground: demo_module.Demo) -> None:
    ada = Client(playground.url, demo_module.OWNER.id)
    grace = Client(playground.url, demo_module.TEAMMATE.id)
    ada.call("command", channel=demo_module.CHANNEL.id, text="/templates 12gb")
    catalog = wait_for(
        lambda: next((m for m in ada.messages() if has_action(m, "deploy_template")), None),
        message="the catalog",
    )
    assert catalog["ephemeral"] and "12 GB" in catalog["text"]
    assert grace.messages() == []  # the catalog is Ada's alone

    ada.call(
        "action",
        channel=demo_module.CHANNEL.id,
        message_ts=catalog["ts"],
        action=button(catalog, "deploy_template", "jupyter-lab"),
    )
    picker = wait_for(
        lambda: next((v for v in ada.state()["views"] if has_action(v, "gpu_offer")), None),
        message="the offers in the picker",
    )
    assert picker["callback_id"] == "deploy_modal" and grace.state()["views"] == []
    offer_block, offer = next(
        (b, e) for b, e in elements(picker["blocks"]) if e["action_id"] == "gpu_offer"
    )
    option = offer["option_groups"][0]["options"][0]
    state = input_state(picker)
    state["values"][offer_block]["gpu_offer"]["selected_option"] = option
    ada.call(
        "action",
        view_id=picker["id"],
        action={
            "action_id": "gpu_offer",
            "block_id": offer_block,
            "type": "static_select",
            "selected_option": option,
        },
        state=state,
    )
    wait_for(
        lambda: "per hour" in json.dumps(ada.state()["views"][-1]["blocks"]),
        message="the offer's cost",
    )
    ada.call("submit", view_id=picker["id"], state=state)
    status = wait_for(
        lambda: next((m for m in grace.messages() if not m["ephemeral"]), None),
        message="the status message everyone sees",
    )
    assert ada.state()["views"] == []  # the modal closed on submit
    instance = wait_for(lambda: ada.state()["instances"], message="an instance")[0]

    ada.call("sim", op="ready", instance_id=instance["id"])
    ready = wait_for(
        lambda: next(
            (
                m
                for m in ada.messages()
                if m["ts"] == status["ts"] and has_action(m, "deployment_stop")
            ),
            None,
        ),
        message="the message turning ready with a Stop button",
    )
    assert "ready" in ready["text"].lower()
    # 7 h 40 min later (the default lifetime is 8 hours): the lifetime warning, in the thread
    ada.call("sim", op="advance", seconds=7 * 3600 + 40 * 60)
    warning = wait_for(
        lambda: next(
            (
                r
                for m in ada.messages()
                if m["ts"] == status["ts"]
                for r in m["replies"]
                if has_action(r, "lifetime_extend:2")
            ),
            None,
        ),
        message="the lifetime warning",
    )
    assert "stops at" in warning["text"]
    ada.call(
        "action",
        channel=demo_module.CHANNEL.id,
        message_ts=ready["ts"],
        action=button(ready, "deployment_stop"),
    )
    wait_for(
        lambda: any(i["actual_status"] == "exited" for i in ada.state()["instances"]),
        message="the instance stopped",
    )
    stopped = wait_for(
        lambda: next(
            (
                m
                for m in ada.messages()
                if m["ts"] == status["ts"] and has_action(m, "deployment_start")
            ),
            None,
        ),
        message="the message offering Start",
    )
    assert "stopped" in stopped["text"].lower()
    assert ada.state()["refusals"] == []


def test_home_tab_is_published_when_opened_for_that_person_only(
    playground: demo_module.Demo,
) -> None:
    ada = Client(playground.url, demo_module.OWNER.id)
    grace = Client(playground.url, demo_module.TEAMMATE.id)
    assert ada.state()["home"] is None
    ada.call("home_opened")
    home = wait_for(lambda: ada.state()["home"], message="Ada's Home tab")
    assert home["type"] == "home" and "Your GPU deployments" in json.dumps(home["blocks"])
    assert grace.state()["home"] is None
    sent = playground.slack.calls_to("views.publish")
    assert [call.args["user_id"] for call in sent] == [demo_module.OWNER.id]


def test_the_api_refuses_unknown_people_and_malformed_requests(
    playground: demo_module.Demo,
) -> None:
    http = httpx.Client(base_url=playground.url, timeout=10)
    bad = http.post("/playground/api/command", json={"user": "U0NOBODY1", "text": "/templates"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_arguments"
    assert http.post("/playground/api/nothing", json={}).status_code == 404
    sim = http.post("/playground/api/sim", json={"op": "gone"}).json()
    assert sim == {"ok": False, "error": "no_instance"}
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert http.get("/static/../demo.py").status_code == 404


def test_advance_moves_the_bots_clock_and_the_simulators_together(
    playground: demo_module.Demo,
) -> None:
    ada = Client(playground.url, demo_module.OWNER.id)
    before_bot, before_sim = playground.clock(), playground.simulator.clock.now()
    ada.call("sim", op="advance", seconds=3600)
    assert ada.state()["clock"]["offset_seconds"] == 3600
    assert (playground.clock() - before_bot).total_seconds() >= 3600
    assert playground.simulator.clock.now() - before_sim >= 3600


# -- python -m bot demo ------------------------------------------------------------------------


def test_a_taken_port_is_named_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() sets the process's logging: in a test worker it would outlive the test.
    monkeypatch.setattr(demo_module, "configure_logging", lambda: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        assert demo_module.main(port=port) == 2
    assert list(tmp_path.iterdir()) == []  # the temporary folder made for it is gone
    err = capsys.readouterr().err
    assert f"Cannot start: the playground's port {port} is already in use" in err
    assert "--port N" in err


def test_a_data_folder_that_cannot_be_made_is_named_not_blamed_on_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() sets the process's logging: in a test worker it would outlive the test.
    monkeypatch.setattr(demo_module, "configure_logging", lambda: None)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert demo_module.main(data_dir=blocker / "data", port=0) == 2
    err = capsys.readouterr().err
    assert "Cannot start:" in err and str(blocker / "data") in err
    assert "port" not in err


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_python_m_bot_demo_prints_its_url_serves_and_stops_cleanly(
    tmp_path: Path, stop: signal.Signals
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", "0", "--data", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert found.wait(60), f"no URL within 60 s: {lines}"
        url = re.search(r"http://127\.0\.0\.1:\d+/", "".join(lines))
        assert url is not None
        page = httpx.get(url.group(0), timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        state = httpx.get(url.group(0) + "playground/api/state", timeout=10).json()
        assert [u["role"] for u in state["users"]] == ["owner", "teammate", "admin"]
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    log = process.stderr.read()
    assert "Traceback" not in log
    assert log.count("playground stopped") == 1
    assert sum("http://" in line for line in lines) == 1  # one URL


def deploy_ready(person: Client) -> dict[str, Any]:
    """Deploy JupyterLab on the cheapest offer and let it turn ready; its status message."""
    person.call("command", channel=demo_module.CHANNEL.id, text="/templates 12gb")
    catalog = wait_for(
        lambda: next((m for m in person.messages() if has_action(m, "deploy_template")), None)
    )
    person.call(
        "action",
        channel=demo_module.CHANNEL.id,
        message_ts=catalog["ts"],
        action=button(catalog, "deploy_template", "jupyter-lab"),
    )
    picker = wait_for(
        lambda: next((v for v in person.state()["views"] if has_action(v, "gpu_offer")), None)
    )
    block, offer = next(
        (b, e) for b, e in elements(picker["blocks"]) if e["action_id"] == "gpu_offer"
    )
    state = input_state(picker)
    state["values"][block]["gpu_offer"]["selected_option"] = offer["option_groups"][0]["options"][0]
    person.call("submit", view_id=picker["id"], state=state)
    wait_for(lambda: person.state()["instances"], message="an instance")
    person.call("sim", op="ready")
    return wait_for(
        lambda: next((m for m in person.messages() if has_action(m, "deployment_stop")), None),
        message="the ready message",
    )


def test_an_idle_gpu_gets_its_question_an_hour_later(playground: demo_module.Demo) -> None:
    ada = Client(playground.url, demo_module.OWNER.id)
    deploy_ready(ada)
    dm = dm_channel_id(demo_module.OWNER.id)

    def asked() -> dict[str, Any] | None:
        return next((m for m in ada.messages(dm) if has_action(m, "idle_keep_running")), None)

    for _ in range(3):  # each answer comes after the status pass it caused
        ada.call("sim", op="advance", seconds=3600)
    assert asked() is None  # a new instance's GPU is busy
    ada.call("sim", op="idle")
    ada.call("sim", op="advance", seconds=3600)
    question = wait_for(asked, message="the idle question")
    assert "idle for 1 h" in question["text"]


def test_a_restart_on_the_same_data_deploys_anew(tmp_path: Path) -> None:
    """``--data DIR`` twice: the second run's first deploy is a new deployment on a new
    instance, not taken for the first run's (Slack's view ids and Vast.ai's instance ids are
    never handed out twice; the stand-in and the simulator start afresh each run)."""
    slow = Timeline(created_after=0, loading_after=1, running_after=3600, app_ready_after=3600)

    def run() -> tuple[str, int]:
        running = demo_module.start(
            data_dir=tmp_path, port=0, timeline=slow, poll_seconds=3600, ack_seconds=15
        )
        try:
            ada = Client(running.url, demo_module.OWNER.id)
            ready = deploy_ready(ada)
            return ready["text"], ada.state()["instances"][0]["id"]
        finally:
            running.stop()

    _, first_instance = run()
    again = demo_module.start(data_dir=tmp_path, port=0, poll_seconds=3600)
    try:
        assert again.earlier == 1  # the first run's deployment, which main() mentions
    finally:
        again.stop()
    text, second_instance = run()
    assert "ready" in text.lower()
    assert second_instance != first_instance
    with sqlite3.connect(tmp_path / "bot.db") as db:
        rows = db.execute("SELECT id, instance_id FROM deployments ORDER BY id").fetchall()
    assert rows == [(1, first_instance), (2, second_instance)]


def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    """Send ``request`` as is (no client normalising the path or the headers); the status and
    the body of the answer."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_only_the_page_itself_may_use_the_api(
    recorded: tuple[Playground, RecordingBot, FakeSlack],
) -> None:
    """Another site the person visits cannot drive the playground: not by a form or a simple
    fetch (no JSON content type, or its own Origin), nor by a name of its own resolving to
    127.0.0.1 (DNS rebinding: a foreign Host)."""
    _, bot, fake = recorded
    port = urlsplit(fake.url).port
    http = httpx.Client(base_url=fake.url, timeout=10)
    sim = "/playground/api/sim"
    body = json.dumps({"op": "advance", "seconds": 60})
    form = http.post(sim, content=body, headers={"Content-Type": "text/plain"})
    assert form.status_code == 403 and form.json()["error"] == "forbidden"
    assert "application/json" in form.json()["detail"]
    foreign = {"Content-Type": "application/json", "Origin": "https://evil.example"}
    assert http.post(sim, content=body, headers=foreign).status_code == 403
    rebound = {"Host": f"evil.example:{port}"}
    assert http.get("/playground/api/state", headers=rebound).status_code == 403
    assert http.get("/", headers=rebound).status_code == 403
    command = {"user": demo_module.OWNER.id, "channel": demo_module.CHANNEL.id, "text": "/x"}
    assert http.post("/playground/api/command", json=command, headers=rebound).status_code == 403
    assert bot.received == []  # none of them reached the bot
    # the page's own requests: same origin (or none), JSON, by either local name
    own = {"Origin": fake.url, "Content-Type": "application/json"}
    assert http.post("/playground/api/close", json={}, headers=own).status_code == 400
    local = {"Host": f"localhost:{port}"}
    assert http.get("/playground/api/state", headers=local).status_code == 200


def test_hostile_requests_get_a_clear_4xx(
    recorded: tuple[Playground, RecordingBot, FakeSlack],
) -> None:
    _, _, fake = recorded
    host = urlsplit(fake.url).netloc
    api = "/playground/api/command"
    huge = (
        f"POST {api} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10**10}\r\n\r\n{{}}"
    ).encode()
    status, answer = _raw(fake.url, huge)
    assert status == 413 and json.loads(answer)["error"] == "request_too_large"
    bad_length = f"POST {api} HTTP/1.1\r\nHost: {host}\r\nContent-Length: abc\r\n\r\n".encode()
    status, answer = _raw(fake.url, bad_length)
    assert status == 400 and json.loads(answer)["error"] == "invalid_content_length"
    for path in ("/static/../demo.py", "/static/%2e%2e/demo.py", "/static//etc/passwd"):
        status, _ = _raw(fake.url, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status == 404, path
    http = httpx.Client(base_url=fake.url, timeout=10)
    nobody = http.get("/playground/api/state", params={"user": "U0NOBODY1"})
    assert nobody.status_code == 400 and "unknown user" in nobody.json()["detail"]
    for name, wrong in [
        ("command", {"user": demo_module.OWNER.id, "channel": ["C"], "text": "/templates"}),
        ("command", {"user": 5, "text": "/templates"}),
        ("action", {"user": demo_module.OWNER.id, "view_id": {"V": 1}, "action": "x"}),
        ("submit", {"user": demo_module.OWNER.id, "view_id": "V0NOPE", "state": 5}),
        ("sim", {"op": "advance", "seconds": "soon"}),
    ]:
        answer = http.post(f"/playground/api/{name}", json=wrong)
        assert 400 <= answer.status_code < 500 or answer.json()["ok"] is False, (name, wrong)
        assert answer.json()["error"], (name, wrong)
    as_json = {"Content-Type": "application/json"}
    for body in (b"[1]", b"[" * 100_000 + b"]" * 100_000):  # not an object; nested too deep
        answer = http.post("/playground/api/command", content=body, headers=as_json)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_arguments"
    # the Web API itself: Slack's answer to a body that is not JSON
    for body in (b"{", b"\xff", b"[" * 100_000 + b"]" * 100_000):
        answer = http.post("/api/chat.postMessage", content=body, headers=as_json)
        assert answer.status_code == 200 and answer.json() == {"ok": False, "error": "invalid_json"}


def test_the_demo_reads_no_environment_and_no_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real .env or environment (a Vast.ai key, a production database, a malformed value)
    changes nothing in the playground's settings: it rents from the simulator only, writes
    its own database and starts anyway."""
    real = {
        "VAST_API_KEY": "3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8",
        "VAST_API_URL": "https://console.vast.ai",
        "DATABASE_URL": "postgresql+psycopg://prod:pw@db.example.com/prod",
        "SLACK_API_URL": "https://slack.com/api/",
        "SLACK_BOT_TOKEN": "xoxb-1234567890-abcdefghijk",
        "SLACK_APP_TOKEN": "xapp-1-A0-1-abc",
        "SLACK_CLIENT_ID": "1234.5678",
        "SLACK_CLIENT_SECRET": "0123456789abcdef",
        "SLACK_REDIRECT_URI": "https://bot.example.com/slack/oauth_redirect",
        "ENCRYPTION_KEY": "not-a-fernet-key",
        "DIGEST_CHANNEL": "C0PROD001",
        "APPROVAL_DPH": "0",
        "BOT_ADMINS": "U0REALADM",
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in real.items()))
    monkeypatch.chdir(tmp_path)
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    settings = demo_module.demo_settings(
        bot_token="xoxb-playground-0",
        slack_api_url="http://127.0.0.1:1/api/",
        signing_secret="s" * 32,
        vast_api_url="http://127.0.0.1:2",
        database_url="sqlite:///demo.db",
    )
    assert settings.vast_api_key is None and settings.vast_api_url == "http://127.0.0.1:2"
    assert settings.database_url == "sqlite:///demo.db"
    assert settings.slack_api_url == "http://127.0.0.1:1/api/"
    assert not settings.oauth_mode and settings.slack_app_token is None
    assert settings.encryption_key is None and settings.slack_redirect_uri is None
    assert settings.bot_admins == {demo_module.ADMIN.id}
    assert settings.digest_channel is None and settings.approval_dph is None


def test_a_response_url_cannot_be_guessed(
    recorded: tuple[Playground, RecordingBot, FakeSlack],
) -> None:
    """Another site could post a form to a ``response_url`` (a simple request: no preflight)
    and put its own message in the playground, if it could name one; Slack's end in a secret."""
    _, bot, fake = recorded
    ada = Client(fake.url, demo_module.OWNER.id)
    for _ in range(2):
        ada.call("command", channel=demo_module.CHANNEL.id, text="/templates")
    first, second = (urlsplit(r["response_url"]).path for r in bot.received)
    for guess in ("/response/pg-cmd-1", "/response/pg-cmd-2"):  # what a counter alone gives
        httpx.post(fake.url + guess, data={"text": "<https://evil.example|Click me>"})
    assert not any("evil.example" in m["text"] for m in ada.messages())
    # /response/pg-cmd-<n>-<secret>; the secret may hold "-" itself (URL-safe base64)
    secrets_ = [path.split("-", 3)[3] for path in (first, second)]
    assert secrets_[0] != secrets_[1] and min(map(len, secrets_)) >= 16


def test_the_playgrounds_web_api_wants_the_bots_token(playground: demo_module.Demo) -> None:
    """Another site cannot post as the bot (a form POST needs no preflight): Slack's answers
    to a call without the token or with another."""
    api = playground.slack.api_url
    message = {"channel": demo_module.CHANNEL.id, "text": "<https://evil.example|Click me>"}
    assert httpx.post(api + "chat.postMessage", data=message).json() == {
        "ok": False,
        "error": "not_authed",
    }
    forged = httpx.post(api + "chat.postMessage", data={**message, "token": "xoxb-guess"})
    assert forged.json() == {"ok": False, "error": "invalid_auth"}
    ada = Client(playground.url, demo_module.OWNER.id)
    assert ada.messages() == []
    ada.call("command", channel=demo_module.CHANNEL.id, text="/templates 12gb")
    wait_for(ada.messages, message="the bot's own answer, with its token")
