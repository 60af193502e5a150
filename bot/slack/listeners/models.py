"""Typed models of the Slack payloads the bot reads, and the one function that parses them.

Every request Slack signs is still untrusted input: a field may be missing, of another type,
huge or deeply nested. :func:`parse_payload` reads the request body Bolt parsed into one of
the models below, strictly (no coercion: a number is not a string, a string is not an
object), with every string and list bounded by Slack's own limits, before any listener sees
it. A body that does not fit gives a :class:`Refusal` that says where the user can still be
told (:class:`ReplyTo`) and which input block is at fault, never an exception.

Shapes and limits are Slack's:

* block_actions: https://api.slack.com/reference/interaction-payloads/block-actions
* view_submission: https://api.slack.com/reference/interaction-payloads/views
* views (``private_metadata`` ≤ 3000 characters, ``callback_id`` ≤ 255):
  https://api.slack.com/reference/surfaces/views
* ``action_id`` / ``block_id`` ≤ 255, a button ``value`` ≤ 2000, an option ``value`` ≤ 150,
  a plain-text input ≤ 3000: https://api.slack.com/reference/block-kit/block-elements and
  https://api.slack.com/reference/block-kit/composition-objects#option
* slash commands: https://api.slack.com/interactivity/slash-commands#app_command_handling
* ``response_url`` (``https://hooks.slack.com/…``):
  https://api.slack.com/interactivity/handling#message_responses
* events: https://api.slack.com/apis/events-api#callback-field and
  https://api.slack.com/events/app_home_opened

Listeners still read Bolt's ``body`` dict (now known to have these shapes); the parsed model
is in the request's context as ``payload`` for those that want it typed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

#: Hosts a ``response_url`` may point at (Slack's commercial and GovSlack hooks).
SLACK_HOOK_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})

#: Longest ``response_url`` accepted (Slack's are about 100 characters).
MAX_URL = 1000
#: Most actions in one block_actions payload (an actions block holds at most 25 elements).
MAX_ACTIONS = 25
#: Most input blocks in a submitted view (a modal holds at most 100 blocks).
MAX_BLOCKS = 100
#: Most elements read in one block of ``state.values``.
MAX_ELEMENTS = 25
#: Most users or options one multi-select may hold (Slack's ``max_selected_items`` bound).
MAX_SELECTED = 100

SlackId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
"""A user, team, enterprise, channel or view id (``U0ALICE01``, ``T0GPU0001``, ``V0PICKER01``)."""
Name = Annotated[str, Field(max_length=255)]
"""An ``action_id``, ``block_id``, ``callback_id``, ``type`` or similar: at most 255 characters."""
TriggerId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")]
"""A ``trigger_id`` (``12345.98765.abcd1234``)."""
Timestamp = Annotated[str, Field(max_length=64)]
"""A message ``ts`` (``1732900000.000100``)."""


def _origins(info: ValidationInfo) -> Iterable[str]:
    context = info.context if isinstance(info.context, Mapping) else {}
    origins = context.get("origins") or ()
    return origins if isinstance(origins, Iterable) else ()


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased ("" when it has none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def _check_response_url(url: str, info: ValidationInfo) -> str:
    """A ``response_url`` Slack would send: ``https://hooks.slack.com/…`` (or GovSlack's
    hooks), without credentials or an odd port; or one on an extra origin the caller names in
    the validation context (``{"origins": [...]}``: a Slack-compatible test server)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError("not a URL") from error
    if origin_of(url) in {origin.lower() for origin in _origins(info)}:
        return url
    if (
        parts.scheme != "https"
        or parts.hostname not in SLACK_HOOK_HOSTS
        or parts.username is not None
        or parts.password is not None
        or port not in (None, 443)
        or any(ord(char) < 33 for char in url)
    ):
        raise ValueError("not a Slack response_url")
    return url


ResponseUrl = Annotated[
    str, Field(min_length=1, max_length=MAX_URL), AfterValidator(_check_response_url)
]
"""A ``response_url``, checked by :func:`_check_response_url`."""


class _Model(BaseModel):
    """Strict (no type coercion), frozen; fields the bot does not read are ignored."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class User(_Model):
    """``user`` of an interaction: who clicked or submitted."""

    id: SlackId
    team_id: SlackId | None = None


class Team(_Model):
    """``team`` of an interaction: the workspace (``null`` for some org-wide installs)."""

    id: SlackId | None = None
    domain: Name | None = None
    enterprise_id: SlackId | None = None


class Enterprise(_Model):
    """``enterprise`` of an interaction (Enterprise Grid)."""

    id: SlackId | None = None


class Channel(_Model):
    """``channel`` of an interaction from a message."""

    id: SlackId | None = None


class Container(_Model):
    """``container``: the message or view the action came from."""

    type: Name | None = None
    channel_id: SlackId | None = None
    message_ts: Timestamp | None = None
    view_id: SlackId | None = None
    is_ephemeral: bool | None = None


class Message(_Model):
    """``message``: the (non-ephemeral) message the action came from."""

    ts: Timestamp | None = None
    is_ephemeral: bool | None = None


class Option(_Model):
    """A selected option: its ``value`` (the bot's own options keep under Slack's 150)."""

    value: Annotated[str, Field(max_length=2000)]


class Action(_Model):
    """One element of ``actions``: a button (``value``) or a select (``selected_option``)."""

    action_id: Annotated[str, Field(min_length=1, max_length=255)]
    block_id: Name | None = None
    type: Name | None = None
    value: Annotated[str, Field(max_length=2000)] | None = None
    selected_option: Option | None = None


class InputValue(_Model):
    """One element of ``view.state.values[block_id]``: what an input holds. Only types and
    sizes are checked here; what a value means (a channel id, a number) each form checks
    itself, so that its error names the field in words."""

    type: Name | None = None
    value: Annotated[str, Field(max_length=3000)] | None = None
    selected_option: Option | None = None
    selected_options: Annotated[list[Option], Field(max_length=MAX_SELECTED)] | None = None
    selected_conversation: Name | None = None
    selected_channel: Name | None = None
    selected_user: Name | None = None
    selected_users: Annotated[list[Name], Field(max_length=MAX_SELECTED)] | None = None


class ViewState(_Model):
    """``view.state``: ``values[block_id][action_id]`` → :class:`InputValue`."""

    values: Annotated[
        dict[Name, Annotated[dict[Name, InputValue], Field(max_length=MAX_ELEMENTS)]],
        Field(max_length=MAX_BLOCKS),
    ] = Field(default_factory=dict)


class View(_Model):
    """A modal as Slack sends it back: its id, ``callback_id``, ``private_metadata`` (at most
    3000 characters, read by each surface with :func:`bot.slack.blocks.common.bounded_json`),
    ``hash`` and ``state``."""

    id: SlackId
    callback_id: Name = ""
    private_metadata: Annotated[str, Field(max_length=3000)] = ""
    hash: Name | None = None
    state: ViewState = Field(default_factory=ViewState)
    team_id: SlackId | None = None
    app_installed_team_id: SlackId | None = None


class ResponseUrlEntry(_Model):
    """One element of a view_submission's ``response_urls``."""

    response_url: ResponseUrl
    channel_id: SlackId | None = None


class _Interaction(_Model):
    user: User
    team: Team | None = None
    enterprise: Enterprise | None = None
    is_enterprise_install: bool | None = None


class BlockActions(_Interaction):
    """A ``block_actions`` payload: a button pressed or a select changed."""

    type: Literal["block_actions"]
    trigger_id: TriggerId
    actions: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]
    response_url: ResponseUrl | None = None
    container: Container | None = None
    channel: Channel | None = None
    message: Message | None = None
    view: View | None = None


class ViewSubmission(_Interaction):
    """A ``view_submission`` payload: a modal submitted."""

    type: Literal["view_submission"]
    view: View
    trigger_id: TriggerId | None = None
    response_urls: Annotated[list[ResponseUrlEntry], Field(max_length=10)] = Field(
        default_factory=list
    )


class SlashCommand(_Model):
    """A slash command (form fields, all strings)."""

    command: Annotated[str, Field(min_length=1, max_length=32)]
    text: Annotated[str, Field(max_length=4000)] = ""
    team_id: SlackId
    user_id: SlackId
    channel_id: SlackId
    trigger_id: TriggerId
    response_url: ResponseUrl
    team_domain: Name | None = None
    enterprise_id: Annotated[str, Field(max_length=64)] | None = None


class Event(_Model):
    """``event`` of an Events API callback: only its ``type`` is read for every event."""

    type: Annotated[str, Field(min_length=1, max_length=255)]


class AppHomeOpened(Event):
    """``app_home_opened``: who opened which tab of the App Home."""

    type: Literal["app_home_opened"]
    user: SlackId
    tab: Name | None = None


class RevokedTokens(_Model):
    """``tokens_revoked``'s ``tokens``: user ids by token type."""

    oauth: Annotated[list[SlackId], Field(max_length=1000)] | None = None
    bot: Annotated[list[SlackId], Field(max_length=1000)] | None = None


class TokensRevoked(Event):
    """``tokens_revoked``."""

    type: Literal["tokens_revoked"]
    tokens: RevokedTokens = Field(default_factory=RevokedTokens)


class EventCallback(_Model):
    """An Events API ``event_callback``."""

    type: Literal["event_callback"]
    team_id: SlackId | None = None
    event: Event


class _HomeOpenedCallback(_Model):
    event: AppHomeOpened


class _TokensRevokedCallback(_Model):
    event: TokensRevoked


#: The events the bot reads beyond their type: a model of ``{"event": …}`` by event type (so
#: that errors name ``event.…``).
EVENT_MODELS: dict[str, type[_HomeOpenedCallback] | type[_TokensRevokedCallback]] = {
    "app_home_opened": _HomeOpenedCallback,
    "tokens_revoked": _TokensRevokedCallback,
}

Payload = BlockActions | ViewSubmission | SlashCommand | EventCallback
"""Any payload :func:`parse_payload` accepts."""

#: Surfaces by payload ``type``.
SURFACES: dict[str, type[BlockActions] | type[ViewSubmission] | type[EventCallback]] = {
    "block_actions": BlockActions,
    "view_submission": ViewSubmission,
    "event_callback": EventCallback,
}
#: Types Bolt's own middleware answers before any listener (URL verification, SSL check).
PASSED_TYPES = frozenset({"url_verification", "ssl_check"})


@dataclass(frozen=True)
class ReplyTo:
    """Where a refused payload's sender can still be told (each field checked on its own,
    None when missing or malformed): its ``response_url``, user, workspace, and for a view
    submission the view's ``callback_id``."""

    response_url: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    callback_id: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A payload the bot will not act on.

    ``surface``: ``block_actions``, ``view_submission``, ``slash_command``, ``event_callback``
    or ``other`` (a type the bot has no listener for). ``problems``: where it broke, as
    ``path: reason`` (no payload values, so safe to log). ``block_id``: for a view
    submission, the input block at fault when one can be named. ``reply``: where to tell
    the sender."""

    surface: str
    problems: tuple[str, ...]
    reply: ReplyTo
    block_id: str | None = None


_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.:-]")
_SLACK_ID = TypeAdapter(SlackId)
_NAME = TypeAdapter(Name)
_RESPONSE_URL = TypeAdapter(ResponseUrl)


def loggable(text: object, limit: int = 40) -> str:
    """``text`` fit for one log line: characters other than letters, digits and ``_.:-``
    become ``?`` (no line breaks or control characters from a payload), at most ``limit``."""
    return _SAFE_KEY.sub("?", str(text))[:limit]


def _path(loc: Iterable[int | str]) -> str:
    return ".".join(loggable(part) for part in loc)


def _problems(error: ValidationError) -> tuple[str, ...]:
    """``path: type`` for each of the first few errors (no input values: they may hold a key
    typed into a form)."""
    return tuple(f"{_path(item['loc']) or '(body)'}: {item['type']}" for item in error.errors()[:5])


def _valid(adapter: TypeAdapter[Any], value: object, context: Mapping[str, Any]) -> Any:
    try:
        return adapter.validate_python(value, strict=True, context=context)
    except ValidationError:
        return None


def _get(data: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def reply_to(body: Mapping[str, Any], context: Mapping[str, Any]) -> ReplyTo:
    """The ways to tell the sender of ``body`` that are intact, whatever else is broken."""
    url: object = body.get("response_url")
    urls = body.get("response_urls")
    if url is None and isinstance(urls, list) and urls:
        url = _get(urls[0], "response_url")
    user = _get(body, "user", "id") or body.get("user_id")
    team = _get(body, "team", "id") or _get(body, "user", "team_id") or body.get("team_id")
    return ReplyTo(
        response_url=_valid(_RESPONSE_URL, url, context),
        user_id=_valid(_SLACK_ID, user, context),
        team_id=_valid(_SLACK_ID, team, context),
        callback_id=_valid(_NAME, _get(body, "view", "callback_id"), context),
    )


def _faulty_block(error: ValidationError) -> str | None:
    """The input block of ``view.state.values`` every error of ``error`` lies in (when they
    all lie in one)."""
    blocks = set()
    for item in error.errors():
        loc = item["loc"]
        if len(loc) < 4 or tuple(loc[:3]) != ("view", "state", "values"):
            return None
        blocks.add(loc[3])
    block = blocks.pop() if len(blocks) == 1 else None
    return block if isinstance(block, str) and _valid(_NAME, block, {}) is not None else None


def parse_payload(
    body: Mapping[str, Any], *, origins: Iterable[str] = ()
) -> Payload | Refusal | None:
    """``body`` (a request Bolt parsed: an interactivity payload, a slash command's fields or
    an Events API callback) as its typed model, or a :class:`Refusal` when it does not fit.

    None for what Bolt's own middleware answers (``url_verification``, ``ssl_check``).
    ``origins``: extra ``scheme://host[:port]`` origins a ``response_url`` may have besides
    Slack's hooks (e.g. a test server's). Never raises."""
    context = {"origins": tuple(origins)}
    if not isinstance(body, Mapping):
        return Refusal("other", ("(body): not an object",), ReplyTo())
    kind = body.get("type")
    model: type[_Model]
    if kind in PASSED_TYPES:
        return None
    if isinstance(kind, str) and kind in SURFACES:
        surface, model = kind, SURFACES[kind]
    elif "command" in body:
        surface, model = "slash_command", SlashCommand
    else:
        return Refusal("other", ("type: not one the bot handles",), reply_to(body, context))
    try:
        parsed = model.model_validate(body, strict=True, context=context)
        if isinstance(parsed, EventCallback) and parsed.event.type in EVENT_MODELS:
            wrapped = {"event": body.get("event")}
            typed = EVENT_MODELS[parsed.event.type].model_validate(
                wrapped, strict=True, context=context
            )
            parsed = parsed.model_copy(update={"event": typed.event})
    except ValidationError as error:
        block = _faulty_block(error) if surface == "view_submission" else None
        return Refusal(surface, _problems(error), reply_to(body, context), block_id=block)
    except (RecursionError, ValueError, TypeError) as error:  # never expected: a guard
        return Refusal(surface, (f"(body): {type(error).__name__}",), reply_to(body, context))
    assert isinstance(parsed, BlockActions | ViewSubmission | SlashCommand | EventCallback)
    return parsed
