"""Signed but malformed payloads, parsed as plain functions: the typed models of
:mod:`bot.slack.listeners.models` and the bounded readers of values and metadata in
:mod:`bot.slack.blocks`. End-to-end through the real app: ``tests/test_payloads_app.py``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import manage as manage_blocks
from bot.slack.blocks import templates as template_blocks
from bot.slack.blocks.common import MAX_PAGE, bounded_json
from bot.slack.blocks.picker import PickerState
from bot.slack.listeners.models import (
    AppHomeOpened,
    BlockActions,
    EventCallback,
    Refusal,
    SlashCommand,
    ViewSubmission,
    parse_payload,
)

HOOK = "https://hooks.slack.com/actions/T0GPU0001/5551112224/xYz123"
TEST_ORIGIN = "http://127.0.0.1:4321"

BLOCK_ACTIONS: dict[str, Any] = {
    "type": "block_actions",
    "user": {"id": "U0ALICE01", "username": "alice", "team_id": "T0GPU0001"},
    "api_app_id": "A0GPUBOT01",
    "token": "x",
    "container": {
        "type": "message",
        "message_ts": "1732900000.000100",
        "channel_id": "C0DEPLOYS1",
        "is_ephemeral": True,
    },
    "trigger_id": "5551112224.1234567890.9a8b7c6d5e",
    "team": {"id": "T0GPU0001", "domain": "gpu-team"},
    "enterprise": None,
    "is_enterprise_install": False,
    "channel": {"id": "C0DEPLOYS1", "name": "gpu-deploys"},
    "state": {"values": {}},
    "response_url": HOOK,
    "actions": [
        {
            "type": "button",
            "action_id": "deployment_stop",
            "block_id": "b1",
            "value": "12",
            "action_ts": "1732900001.000200",
        }
    ],
}

VIEW_SUBMISSION: dict[str, Any] = {
    "type": "view_submission",
    "team": {"id": "T0GPU0001", "domain": "gpu-team"},
    "user": {"id": "U0ALICE01", "username": "alice", "team_id": "T0GPU0001"},
    "api_app_id": "A0GPUBOT01",
    "token": "x",
    "trigger_id": "5551112225.1234567890.1a2b3c",
    "view": {
        "id": "V0PICKER01",
        "team_id": "T0GPU0001",
        "type": "modal",
        "callback_id": "deploy_modal",
        "private_metadata": '{"template":"jupyter-lab","channel":"C0DEPLOYS1"}',
        "hash": "1732900000.abcdef",
        "blocks": [],
        "state": {
            "values": {
                "offer_block": {
                    "gpu_offer": {
                        "type": "static_select",
                        "selected_option": {
                            "text": {"type": "plain_text", "text": "1x RTX 4090"},
                            "value": "123@0.400000@RTX 4090",
                        },
                    }
                },
                "disk_block": {"disk_gb": {"type": "number_input", "value": "20"}},
                "channel_block": {
                    "channel": {
                        "type": "conversations_select",
                        "selected_conversation": "C0DEPLOYS1",
                    }
                },
                "gpu_filter_block": {
                    "gpu_filter": {"type": "static_select", "selected_option": None}
                },
            }
        },
    },
    "response_urls": [],
    "is_enterprise_install": False,
    "enterprise": None,
}

COMMAND: dict[str, Any] = {
    "token": "x",
    "team_id": "T0GPU0001",
    "team_domain": "gpu-team",
    "channel_id": "C0DEPLOYS1",
    "channel_name": "gpu-deploys",
    "user_id": "U0ALICE01",
    "user_name": "alice",
    "command": "/templates",
    "text": "llama",
    "api_app_id": "A0GPUBOT01",
    "is_enterprise_install": "false",
    "response_url": "https://hooks.slack.com/commands/T0GPU0001/5551112223/aBcDeF",
    "trigger_id": "5551112223.1234567890.0f1e2d3c4b",
}

HOME_OPENED: dict[str, Any] = {
    "token": "x",
    "team_id": "T0GPU0001",
    "api_app_id": "A0GPUBOT01",
    "type": "event_callback",
    "event_id": "Ev00000001",
    "event_time": 1732900000,
    "event": {"type": "app_home_opened", "user": "U0ALICE01", "channel": "D0BOT", "tab": "home"},
}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the field at dotted ``path`` set to ``value`` (removed
    when ``value`` is :data:`GONE`)."""
    body = copy.deepcopy(base)
    *parents, last = path.split(".")
    target: Any = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is GONE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


GONE = object()


# -- well-formed payloads parse into their models ---------------------------------------------


def test_slack_shaped_payloads_parse_into_their_models() -> None:
    actions = parse_payload(BLOCK_ACTIONS)
    assert isinstance(actions, BlockActions)
    assert actions.actions[0].value == "12" and actions.user.id == "U0ALICE01"
    assert actions.response_url == HOOK
    submission = parse_payload(VIEW_SUBMISSION)
    assert isinstance(submission, ViewSubmission)
    offer = submission.view.state.values["offer_block"]["gpu_offer"].selected_option
    assert offer is not None and offer.value.startswith("123@")
    command = parse_payload(COMMAND)
    assert isinstance(command, SlashCommand) and command.text == "llama"
    home = parse_payload(HOME_OPENED)
    assert isinstance(home, EventCallback) and isinstance(home.event, AppHomeOpened)
    assert home.event.user == "U0ALICE01"
    assert parse_payload({"type": "url_verification", "challenge": "x"}) is None


def test_a_response_url_on_the_configured_slack_origin_is_accepted() -> None:
    body = changed(BLOCK_ACTIONS, "response_url", f"{TEST_ORIGIN}/response/r1")
    assert isinstance(parse_payload(body), Refusal)
    assert isinstance(parse_payload(body, origins=[TEST_ORIGIN]), BlockActions)


# -- each malformed shape is a refusal, never an exception ------------------------------------


VIEW_SHAPES = {
    "state is a string": ("view.state", "x", None),
    "values is a list": ("view.state.values", [], None),
    "offer_block is a string": ("view.state.values.offer_block", "x", "offer_block"),
    "an input is a string": ("view.state.values.offer_block.gpu_offer", "x", "offer_block"),
    "selected_option is a list": (
        "view.state.values.offer_block.gpu_offer.selected_option",
        [1],
        "offer_block",
    ),
    "an option value is a number": (
        "view.state.values.offer_block.gpu_offer.selected_option.value",
        123,
        "offer_block",
    ),
    "a typed value is huge": (
        "view.state.values.disk_block.disk_gb.value",
        "9" * 5000,
        "disk_block",
    ),
    "private_metadata 100,000 deep": ("view.private_metadata", "[" * 100_000, None),
    "private_metadata is an object": ("view.private_metadata", {"template": "x"}, None),
    "view is a string": ("view", "x", None),
    "view without id": ("view.id", GONE, None),
    "no user": ("user", GONE, None),
    "user is a string": ("user", "U0ALICE01", None),
    "user id is a number": ("user.id", 7, None),
    "team is a string": ("team", "T0GPU0001", None),
    "trigger_id is a number": ("trigger_id", 12, None),
    "response_urls of strings": ("response_urls", ["x"], None),
    "a response_url elsewhere": (
        "response_urls",
        [{"response_url": "http://169.254.169.254/latest", "channel_id": "C0DEPLOYS1"}],
        None,
    ),
}


@pytest.mark.parametrize("path, value, block", VIEW_SHAPES.values(), ids=list(VIEW_SHAPES))
def test_malformed_view_submissions_are_refused_naming_the_block_when_one_is_at_fault(
    path: str, value: Any, block: str | None
) -> None:
    refusal = parse_payload(changed(VIEW_SUBMISSION, path, value))
    assert isinstance(refusal, Refusal) and refusal.surface == "view_submission"
    assert refusal.block_id == block
    assert refusal.problems and all(":" in problem for problem in refusal.problems)


ACTION_SHAPES = {
    "actions is empty": ("actions", []),
    "actions is a string": ("actions", "x"),
    "an action is a string": ("actions.0", "x"),
    "an action without action_id": ("actions.0.action_id", GONE),
    "a value that is an object": ("actions.0.value", {"id": 1}),
    "a value over Slack's 2000": ("actions.0.value", "1" * 2001),
    "selected_option is a string": ("actions.0.selected_option", "x"),
    "no user": ("user", GONE),
    "user without id": ("user.id", GONE),
    "trigger_id missing": ("trigger_id", GONE),
    "trigger_id is a number": ("trigger_id", 5),
    "response_url is a number": ("response_url", 5),
    "response_url not Slack's": ("response_url", "http://169.254.169.254/latest/meta-data"),
    "response_url with credentials": ("response_url", "https://u:p@hooks.slack.com/actions/x"),
    "response_url on another port": ("response_url", "https://hooks.slack.com:8443/actions/x"),
    "response_url plain http": ("response_url", "http://hooks.slack.com/actions/x"),
    "container is a string": ("container", "x"),
    "is_ephemeral is a string": ("container.is_ephemeral", "true"),
    "channel is a list": ("channel", ["C0DEPLOYS1"]),
    "enterprise is a string": ("enterprise", "E0GRID"),
    "view is a string": ("view", "x"),
}


@pytest.mark.parametrize("path, value", ACTION_SHAPES.values(), ids=list(ACTION_SHAPES))
def test_malformed_block_actions_are_refused(path: str, value: Any) -> None:
    refusal = parse_payload(changed(BLOCK_ACTIONS, path, value))
    assert isinstance(refusal, Refusal) and refusal.surface == "block_actions"


def test_a_refused_click_keeps_the_ways_to_tell_its_sender_that_are_intact() -> None:
    refusal = parse_payload(changed(BLOCK_ACTIONS, "actions", []))
    assert isinstance(refusal, Refusal)
    assert refusal.reply.response_url == HOOK
    assert (refusal.reply.user_id, refusal.reply.team_id) == ("U0ALICE01", "T0GPU0001")
    forged = parse_payload(changed(BLOCK_ACTIONS, "response_url", "http://10.0.0.1/x"))
    assert isinstance(forged, Refusal) and forged.reply.response_url is None
    assert forged.reply.user_id == "U0ALICE01"  # told by DM instead


def test_problems_name_fields_but_never_their_values() -> None:
    secret = "vast-key-0123456789abcdef"
    body = changed(VIEW_SUBMISSION, "view.state.values.key_block", {"key": {"value": [secret]}})
    refusal = parse_payload(body)
    assert isinstance(refusal, Refusal)
    assert "key_block" in " ".join(refusal.problems)
    assert secret not in repr(refusal)


@pytest.mark.parametrize(
    "path, value",
    [
        ("user_id", GONE),
        ("trigger_id", GONE),
        ("response_url", "https://evil.example/commands/x"),
        ("text", "x" * 4001),
        ("channel_id", ""),
    ],
)
def test_malformed_slash_commands_are_refused(path: str, value: Any) -> None:
    refusal = parse_payload(changed(COMMAND, path, value))
    assert isinstance(refusal, Refusal) and refusal.surface == "slash_command"


@pytest.mark.parametrize(
    "path, value",
    [("event", "x"), ("event.type", GONE), ("event.user", {"id": "U1"}), ("event.tab", 3)],
)
def test_malformed_events_are_refused(path: str, value: Any) -> None:
    refusal = parse_payload(changed(HOME_OPENED, path, value))
    assert isinstance(refusal, Refusal) and refusal.surface == "event_callback"
    assert all(problem.startswith("event") for problem in refusal.problems)


@pytest.mark.parametrize("body", [[1], "x", {"type": 5}, {"type": "interactive_message"}])
def test_other_bodies_are_refused_as_other(body: Any) -> None:
    refusal = parse_payload(body)
    assert isinstance(refusal, Refusal) and refusal.surface == "other"


# -- values and metadata that come back from Slack --------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,  # json.loads: RecursionError
        "[" * 2000,  # within a button value's 2000 characters: still RecursionError
        '{"a":' * 9 + "1" + "}" * 9,
        "x" * 3001,
        '{"p": Infinity}',
        '{"p": NaN}',
        "not json",
        None,
        12,
    ],
    ids=lambda text: repr(text)[:24],
)
def test_bounded_json_refuses_with_a_value_error_only(text: Any) -> None:
    with pytest.raises(ValueError):
        bounded_json(text)


def test_bounded_json_reads_the_bots_own_values() -> None:
    assert bounded_json('{"q":"gpu [12gb] {x}","p":2}') == {"q": "gpu [12gb] {x}", "p": 2}
    assert bounded_json('{"s":"\\"[[[[[[[[[[[["}') == {"s": '"[[[[[[[[[[[['}  # in a string
    nested = '{"a":' * 8 + "1" + "}" * 8
    assert bounded_json(nested) is not None


@pytest.mark.parametrize(
    "metadata", ["[" * 100_000, "[" * 2999, '{"template": "x", "max_dph": Infinity}', "x" * 3001]
)
def test_picker_metadata_that_is_deep_huge_or_not_json_is_not_ours(metadata: str) -> None:
    with pytest.raises(ValueError):
        PickerState.from_metadata(metadata)


def test_picker_metadata_fields_out_of_range_are_dropped() -> None:
    state = PickerState.from_metadata(
        json.dumps({"template": "t" * 500, "disk_gb": 10**30, "models": ["A"] * 80})
    )
    assert state.template == "t" * 200 and state.disk_gb is None and len(state.models) == 50
    assert PickerState.from_metadata('{"template": "x", "disk_gb": true}').disk_gb is None


@pytest.mark.parametrize("text", ["[" * 2999, '{"dep": 9999999999999999999}', '{"dep": 1e400}'])
def test_deny_metadata_deep_or_out_of_range_is_refused(text: str) -> None:
    assert budget_blocks.parse_deny_metadata(text) is None


@pytest.mark.parametrize(
    "value",
    [
        '{"q": "x", "p": Infinity}',  # int(inf): OverflowError
        '{"q": "x", "p": 1e400}',
        '{"q": "x", "p": "9999999999999999999"}',
        '{"q": "x", "p": true}',
        "[" * 2000,
        '{"q": "x", "p": ' + "9" * 5000 + "}",  # int(): too many digits
    ],
    ids=lambda value: value[:24],
)
def test_paging_values_that_are_forged_give_the_first_page(value: str) -> None:
    assert template_blocks.parse_page_value(value)[1] == 0
    assert manage_blocks.parse_list_page_value(value)[1] == 0


def test_a_paging_value_with_a_query_that_is_not_text_is_the_first_page_unfiltered() -> None:
    assert template_blocks.parse_page_value('{"q": ["x"], "p": 1}') == ("", 0)
    assert manage_blocks.parse_list_page_value('{"k": ["mine"], "p": 1}')[0] == "mine"


def test_paging_values_within_range_are_kept() -> None:
    assert template_blocks.parse_page_value(template_blocks.page_value("gpu", 3)) == ("gpu", 3)
    kind = manage_blocks.LIST_RUNNING
    assert manage_blocks.parse_list_page_value(manage_blocks.list_page_value(kind, 4)) == (kind, 4)
    assert template_blocks.parse_page_value(f'{{"q":"","p":{MAX_PAGE + 1}}}')[1] == 0


@pytest.mark.parametrize("page", ["9" * 200, "١٢", " 1", "-1"])
def test_listing_block_ids_with_forged_pages_are_not_listings(page: str) -> None:
    block_id = f"mgl|{manage_blocks.LIST_MINE}|{page}|12"
    assert manage_blocks.parse_listing_block_id(block_id) is None


@pytest.mark.parametrize(
    "view",
    [
        {"state": "x"},
        {"state": {"values": [["offer_block"]]}},
        {"state": {"values": {"offer_block": "x", "disk_block": ["x"]}}},
        {"state": {"values": {"offer_block": {"gpu_offer": "x"}}}},
        {"state": {"values": {"offer_block": {"gpu_offer": {"selected_option": "x"}}}}},
        "x",
    ],
    ids=["state", "values", "block", "input", "option", "view"],
)
def test_form_readers_read_any_other_shape_as_absent(view: Any) -> None:
    from bot.slack.blocks import picker, setup

    assert set(picker.selected_values(view).values()) == {None}
    assert setup.setup_values(view) == {}


def test_a_refusal_logs_one_line_whatever_the_payload_holds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.slack.listeners.gate import PayloadGate

    body = changed(VIEW_SUBMISSION, "view.callback_id", "deploy_modal\nFAKE: line")
    body = changed(body, "view.state.values", {"a\nb": "x"})
    refusal = parse_payload(body)
    assert isinstance(refusal, Refusal)
    gate = PayloadGate(services=None, tell=lambda refusal: None)  # type: ignore[arg-type]
    with caplog.at_level("INFO"):
        gate.refuse(refusal)
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "a?b" in record.getMessage()
