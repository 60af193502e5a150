"""What a Slack client would show, kept up to date from the Web API calls the stand-in accepts.

:class:`WorkspaceState` holds a workspace as its people see it: the channels, each with its
messages (oldest first) and their thread replies, ephemeral messages (each seen only by the
person it was sent to), each person's DM with the bot, each person's stack of modals (at most
three, https://api.slack.com/surfaces/modals#lifecycle) and each person's App Home tab.

It changes only through:

* :meth:`WorkspaceState.apply`: a Web API call the stand-in answered ``ok``
  (``chat.postMessage``, ``chat.update``, ``chat.delete``, ``chat.postEphemeral``,
  ``conversations.open``, ``views.open`` / ``push`` / ``update`` / ``publish``);
* :meth:`WorkspaceState.respond`: a post to a ``response_url``
  (https://api.slack.com/interactivity/handling#message_responses): ``delete_original``
  deletes the message the click came from, ``replace_original`` replaces it (ephemeral or not),
  anything else is a new message, ephemeral to the person unless ``response_type`` is
  ``in_channel``. A slash command has no original: its ``response_url`` always posts anew;
* what Slack does with the bot's acknowledgements: :meth:`WorkspaceState.command_ack` (a slash
  command's answer body) and :meth:`WorkspaceState.submission_ack` (a ``view_submission``'s
  ``response_action``, https://api.slack.com/surfaces/modals#responses);
* what the person does: :meth:`WorkspaceState.close_view`.

:meth:`WorkspaceState.snapshot` is one person's view of it, the JSON the playground page polls
(``version`` bumps on every change). No HTTP here: the tests drive it directly.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Views a person can have stacked (Slack: "Currently the limit is 3").
MAX_STACK = 3
#: Refusals kept for the page (newest last).
MAX_REFUSALS = 50
DELETED_TEXT = "This message was deleted."


@dataclass(frozen=True)
class User:
    """A person of the playground's workspace; ``role`` is ``owner``, ``teammate`` or
    ``admin`` (the playground's names for whom to act as)."""

    id: str
    name: str
    real_name: str
    tz: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "real_name": self.real_name,
            "tz": self.tz,
            "role": self.role,
        }


@dataclass(frozen=True)
class Channel:
    """A conversation: a channel everyone sees, or the DM (``is_im``) of ``user_id`` with the
    bot."""

    id: str
    name: str
    is_im: bool = False
    user_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "is_im": self.is_im}


@dataclass(frozen=True)
class ResponseTarget:
    """Where a ``response_url`` answers: ``user_id`` in ``channel_id``, about the message
    ``message_ts`` that was clicked (``ephemeral``: it was ephemeral), or None for a slash
    command (no original to replace or delete)."""

    user_id: str
    channel_id: str
    message_ts: str | None = None
    ephemeral: bool = False


def dm_channel_id(user_id: str) -> str:
    """The id of ``user_id``'s DM with the bot, as the stand-in's ``conversations.open``
    answers it (``U0ADA…`` → ``D0ADA…``)."""
    return "D" + user_id[1:]


class WorkspaceState:
    """A workspace as its people's Slack clients show it. Thread-safe.

    Args:
        team: ``{"id", "name", "domain"}``.
        bot: ``{"user_id", "name"}``: the app's bot user.
        users: the people.
        channels: the public channels (each person's DM with the bot is added by itself).
        clock: epoch seconds, for the ``at`` of refusals.
    """

    def __init__(
        self,
        *,
        team: dict[str, str],
        bot: dict[str, str],
        users: list[User],
        channels: list[Channel],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.team = dict(team)
        self.bot = dict(bot)
        self.users = list(users)
        self._clock = clock
        self._lock = threading.RLock()
        self.version = 0
        self._channels: dict[str, Channel] = {c.id: c for c in channels}
        for user in users:
            dm = dm_channel_id(user.id)
            self._channels[dm] = Channel(dm, self.bot["name"], is_im=True, user_id=user.id)
        self._messages: dict[str, list[dict[str, Any]]] = {c: [] for c in self._channels}
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        self._stacks: dict[str, list[dict[str, Any]]] = {}
        self._homes: dict[str, dict[str, Any]] = {}
        self._responses: dict[str, ResponseTarget] = {}
        self._refusals: list[dict[str, Any]] = []
        serial = itertools.count(1)
        self.new_ts: Callable[[], str] = lambda: f"{int(self._clock())}.{next(serial):06d}"
        """Makes the ``ts`` of a message Slack creates itself (a ``response_url`` post, an
        ack); the stand-in sets its own, so every ``ts`` comes from one sequence."""

    # -- reading ---------------------------------------------------------------------------
    def user(self, user_id: str) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    def channel(self, channel_id: str) -> Channel | None:
        with self._lock:
            return self._channels.get(channel_id)

    def message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        """A copy of the message ``ts`` in ``channel_id`` (a reply too), None if unknown."""
        with self._lock:
            found = self._index.get((channel_id, ts))
            return _public(found) if found is not None else None

    def views(self, user_id: str) -> list[dict[str, Any]]:
        """Copies of ``user_id``'s modal stack, bottom first."""
        with self._lock:
            return copy.deepcopy(self._stacks.get(user_id, []))

    def view(self, user_id: str, view_id: str) -> dict[str, Any] | None:
        """A copy of ``user_id``'s modal or Home tab ``view_id`` (None: not shown to them)."""
        with self._lock:
            found = self._find_view(view_id)
            if found is None or found[0] != user_id:
                return None
            return copy.deepcopy(found[1])

    def home(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            home = self._homes.get(user_id)
            return copy.deepcopy(home) if home is not None else None

    def snapshot(self, user_id: str) -> dict[str, Any]:
        """``user_id``'s client: ``{"version", "team", "bot", "users", "channels",
        "messages": {channel id: [Message]}, "views": [View], "home": View | None,
        "refusals"}`` (the playground contract's shapes; ephemerals only their own)."""
        with self._lock:
            channels = [c for c in self._channels.values() if not c.is_im or c.user_id == user_id]
            messages = {
                c.id: [
                    _public(m, user_id)
                    for m in self._messages.get(c.id, [])
                    if m["_to"] in (None, user_id)
                ]
                for c in channels
            }
            return {
                "version": self.version,
                "team": dict(self.team),
                "bot": dict(self.bot),
                "users": [user.to_json() for user in self.users],
                "channels": [c.to_json() for c in channels],
                "messages": messages,
                "views": copy.deepcopy(self._stacks.get(user_id, [])),
                "home": copy.deepcopy(self._homes.get(user_id)),
                "refusals": copy.deepcopy(self._refusals),
            }

    # -- what the stand-in accepted ----------------------------------------------------------
    def apply(
        self,
        method: str,
        args: dict[str, Any],
        answer: dict[str, Any],
        *,
        user_id: str | None = None,
    ) -> None:
        """Apply a Web API call the stand-in answered ``ok`` (``answer``); ``user_id`` is
        whom its ``trigger_id`` was issued for (None: unknown, so a ``views.open`` /
        ``views.push`` cannot be shown to anyone). Other methods change nothing."""
        with self._lock:
            changed = self._apply(method, args, answer, user_id)
            if changed:
                self.version += 1

    def _apply(
        self, method: str, args: dict[str, Any], answer: dict[str, Any], user_id: str | None
    ) -> bool:
        if method == "chat.postMessage":
            channel = str(answer.get("channel") or args.get("channel") or "")
            self._add(channel, str(answer["ts"]), args, to=None)
            return True
        if method == "chat.postEphemeral":
            channel, user = str(args.get("channel") or ""), str(args.get("user") or "")
            self._add(channel, str(answer["message_ts"]), args, to=user)
            return True
        if method == "chat.update":
            found = self._index.get((str(args.get("channel") or ""), str(args.get("ts") or "")))
            if found is None:
                return False
            # What it leaves out stays: Slack documents this for attachments
            # (https://api.slack.com/methods/chat.update); blocks are treated alike here.
            if "text" in args:
                found["text"] = args.get("text") or ""
            if "blocks" in args:
                found["blocks"] = args.get("blocks") or None
            found["edited"] = True
            return True
        if method == "chat.delete":
            return self._delete(str(args.get("channel") or ""), str(args.get("ts") or ""))
        if method == "conversations.open":
            for user in str(args.get("users") or "").split(","):
                self._ensure_channel(dm_channel_id(user.strip()))
            return False
        if method in ("views.open", "views.push"):
            if user_id is None:
                return False
            self._stacks.setdefault(user_id, []).append(_shown(answer["view"]))
            return True
        if method == "views.update":
            return self._update_view(answer["view"])
        if method == "views.publish":
            self._homes[str(args.get("user_id") or "")] = _shown(answer["view"])
            return True
        return False

    def stack_depth(self, user_id: str) -> int:
        """How many modals ``user_id`` has open."""
        with self._lock:
            return len(self._stacks.get(user_id, []))

    def refused(self, method: str, answer: dict[str, Any]) -> None:
        """Note that the stand-in refused ``method`` with ``answer`` (shown on the page)."""
        detail = "; ".join(answer.get("response_metadata", {}).get("messages", []))
        with self._lock:
            self._refusals.append(
                {
                    "method": method,
                    "error": str(answer.get("error")),
                    "detail": detail,
                    "at": self._clock(),
                }
            )
            del self._refusals[:-MAX_REFUSALS]
            self.version += 1

    # -- response_url ------------------------------------------------------------------------
    def expect_response(self, name: str, target: ResponseTarget) -> None:
        """Posts to the ``response_url`` ``name`` answer ``target``."""
        with self._lock:
            self._responses[name] = target

    def respond(self, name: str, args: dict[str, Any]) -> None:
        """A post to the ``response_url`` ``name`` (unknown names change nothing)."""
        with self._lock:
            target = self._responses.get(name)
            if target is None:
                return
            original = (
                self._index.get((target.channel_id, target.message_ts))
                if target.message_ts is not None
                else None
            )
            if _flag(args.get("delete_original")):
                if original is not None:
                    self._delete(target.channel_id, str(original["ts"]))
            elif _flag(args.get("replace_original")) and original is not None:
                _replace(original, args)
            else:
                self._post_answer(target.user_id, target.channel_id, args)
            self.version += 1

    def command_ack(self, user_id: str, channel_id: str, body: dict[str, Any]) -> bool:
        """Show a slash command's acknowledgement body (``text`` / ``blocks``, ephemeral
        unless ``response_type`` is ``in_channel``); False when it carries no message."""
        if not body.get("text") and not body.get("blocks"):
            return False
        with self._lock:
            self._post_answer(user_id, channel_id, body)
            self.version += 1
        return True

    def _post_answer(self, user_id: str, channel_id: str, args: dict[str, Any]) -> None:
        public = args.get("response_type") == "in_channel"
        self._add(channel_id, self.new_ts(), args, to=None if public else user_id)

    # -- modals ------------------------------------------------------------------------------
    def submission_ack(
        self, user_id: str, view_id: str, body: dict[str, Any], new_view: dict[str, Any] | None
    ) -> None:
        """Apply a ``view_submission`` acknowledgement to ``user_id``'s stack: ``errors`` keeps
        ``view_id`` open with the errors (``{block_id: message}``), ``update`` replaces it
        with ``new_view``, ``push`` pushes ``new_view``, ``clear`` closes them all; anything
        else closes ``view_id`` (and what was pushed over it). ``new_view`` is the view as
        shown (with its ``id`` and ``hash``), for ``update`` and ``push``."""
        action = body.get("response_action")
        with self._lock:
            stack = self._stacks.get(user_id, [])
            index = next((i for i, v in enumerate(stack) if v["id"] == view_id), None)
            if action == "clear":
                stack.clear()
            elif index is None:
                return
            elif action == "errors":
                stack[index]["errors"] = dict(body.get("errors") or {})
            elif action == "update" and new_view is not None:
                stack[index] = _shown(new_view)
            elif action == "push" and new_view is not None:
                stack.append(_shown(new_view))
            else:
                del stack[index:]
            self.version += 1

    def close_view(self, user_id: str, view_id: str) -> dict[str, Any] | None:
        """The person closes modal ``view_id`` (with what was pushed over it; all of them when
        it has ``clear_on_close``). Returns the closed view, None when it was not open."""
        with self._lock:
            stack = self._stacks.get(user_id, [])
            index = next((i for i, v in enumerate(stack) if v["id"] == view_id), None)
            if index is None:
                return None
            closed = stack[index]
            del stack[0 if closed.get("clear_on_close") else index :]
            self.version += 1
            return copy.deepcopy(closed)

    # -- internals ---------------------------------------------------------------------------
    def _ensure_channel(self, channel_id: str) -> None:
        if channel_id in self._channels:
            return
        if channel_id.startswith("D"):
            user = "U" + channel_id[1:]
            self._channels[channel_id] = Channel(
                channel_id, self.bot["name"], is_im=True, user_id=user
            )
        else:
            self._channels[channel_id] = Channel(channel_id, channel_id.lower())
        self._messages.setdefault(channel_id, [])

    def _add(self, channel: str, ts: str, args: dict[str, Any], *, to: str | None) -> None:
        self._ensure_channel(channel)
        message: dict[str, Any] = {
            "ts": ts,
            "user": self.bot["user_id"],
            "text": args.get("text") or "",
            "blocks": args.get("blocks") or None,
            "thread_ts": None,
            "replies": [],
            "ephemeral": to is not None,
            "edited": False,
            "deleted": False,
            "_to": to,
        }
        thread_ts = str(args.get("thread_ts") or "")
        parent = self._index.get((channel, thread_ts)) if thread_ts else None
        if parent is not None and parent["thread_ts"] is None:
            message["thread_ts"] = thread_ts
            parent["replies"].append(message)
        else:
            self._messages[channel].append(message)
        self._index[(channel, ts)] = message

    def _delete(self, channel: str, ts: str) -> bool:
        """Delete a message: gone, unless it has replies (then "This message was deleted.")."""
        found = self._index.pop((channel, ts), None)
        if found is None:
            return False
        if found["replies"]:
            found.update(deleted=True, text=DELETED_TEXT, blocks=None)
            return True
        if found["thread_ts"] is not None:
            parent = self._index.get((channel, found["thread_ts"]))
            if parent is not None:
                parent["replies"].remove(found)
        else:
            self._messages[channel].remove(found)
        return True

    def _find_view(self, view_id: str) -> tuple[str, dict[str, Any], list[Any] | None] | None:
        """(user, view, its stack or None for a Home tab)."""
        for user, stack in self._stacks.items():
            for view in stack:
                if view["id"] == view_id:
                    return user, view, stack
        for user, home in self._homes.items():
            if home["id"] == view_id:
                return user, home, None
        return None

    def _update_view(self, view: dict[str, Any]) -> bool:
        found = self._find_view(str(view.get("id")))
        if found is None:
            return False
        user, old, stack = found
        if stack is None:
            self._homes[user] = _shown(view)
        else:
            stack[stack.index(old)] = _shown(view)
        return True


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _replace(message: dict[str, Any], args: dict[str, Any]) -> None:
    """A ``response_url``'s ``replace_original``: the message is what was posted, all of it."""
    message["text"] = args.get("text") or ""
    message["blocks"] = args.get("blocks") or None


def _shown(view: dict[str, Any]) -> dict[str, Any]:
    """A view as the client keeps it: Slack's fields plus ``errors`` (none yet)."""
    shown = copy.deepcopy(view)
    shown.setdefault("errors", {})
    return shown


def _public(message: dict[str, Any], user_id: str | None = None) -> dict[str, Any]:
    """A message without internal fields; its replies as ``user_id`` sees them."""
    shown = {key: value for key, value in message.items() if not key.startswith("_")}
    shown["blocks"] = copy.deepcopy(message["blocks"])
    shown["replies"] = [
        _public(reply, user_id)
        for reply in message["replies"]
        if user_id is None or reply["_to"] in (None, user_id)
    ]
    return shown
