"""Every id Slack can send the bot has a listener, and listeners are methods a test can import.

The ids come from where Slack learns them: the manifests (slash commands, shortcuts, bot events)
and the Block Kit builders (:mod:`bot.slack.blocks`: their ``ACTION_*`` / ``CALLBACK_*``
constants, the ids their functions derive, and any literal ``action_id=`` / ``callback_id=``).
Each id is turned into the smallest payload of its surface and offered to the listeners of the
app :func:`bot.slack.app.create_app` builds (Bolt's own matchers decide, as for a real
request), in single-workspace mode and in OAuth mode.

Ids that never reach a listener are listed with the reason (:data:`READ_ON_SUBMIT`,
:data:`NO_SUBMIT`); an entry that stops being true fails too.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml
from cryptography.fernet import Fernet
from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.listener.listener import Listener
from slack_bolt.util.utils import get_arg_names_of_callable
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import FileInstallationStore
from slack_sdk.oauth.state_store import FileOAuthStateStore

import bot.slack.blocks
from bot.playground.slack_api import FakeSlack
from bot.services.context import Services
from bot.slack.app import create_app
from bot.slack.blocks import lifetimes
from tests.fixtures.slack import BOT_TOKEN, make_settings

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ("manifest.yml", "manifest.oauth.yml")

#: Input elements read from ``view.state`` on submission: Slack sends no block action for an
#: element of an ``input`` block unless it sets ``dispatch_action``
#: (https://api.slack.com/reference/block-kit/blocks#input), so no listener is due.
READ_ON_SUBMIT = {
    "deny_reason",  # budgets.ACTION_DENY_REASON: the Deny modal's reason
    "workspace_budget",  # budgets.ACTION_WORKSPACE_BUDGET: the budgets modal
    "budget_user",  # budgets.ACTION_BUDGET_USER
    "user_budget",  # budgets.ACTION_USER_BUDGET
    "disk_gb",  # picker.ACTION_DISK: read on submit and on "Search again"
    "setup_key",  # setup.ACTION_*: the setup modal's fields
    "setup_admins",
    "setup_approvers",
    "setup_digest",
    "setup_approval_dph",
    "setup_default_lifetime",
    "setup_max_lifetime",
    "share_users_select",  # sharing.ACTION_SHARE_USERS: the Share modal's people
    "ssh_key_paste",  # sshkeys.ACTION_ADD: the SSH keys modal's box
}
#: Modals without a submit button: Slack sends no ``view_submission`` for them.
NO_SUBMIT = {"template_details"}

#: The names Bolt injects into a listener (slack_bolt/kwargs_injection/utils.py
#: ``build_required_kwargs``); any other parameter would be passed None, or, first in a
#: method's signature, dropped.
BOLT_ARGS = {
    "logger",
    "client",
    "req",
    "request",
    "resp",
    "response",
    "context",
    "body",
    "options",
    "shortcut",
    "action",
    "view",
    "command",
    "event",
    "message",
    "step",
    "ack",
    "say",
    "respond",
    "payload",
    "next",
    "next_",
}

_LITERAL_ID = re.compile(r"""\b(action_id|callback_id)\s*=\s*["']([^"']+)["']""")


# -- the ids ----------------------------------------------------------------------------------


def _manifest(name: str) -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((ROOT / name).read_text()))


def manifest_ids() -> dict[str, set[str]]:
    """Slash commands, shortcuts (global / message) and bot events of both manifests."""
    found: dict[str, set[str]] = {"command": set(), "shortcut": set(), "message_action": set()}
    found["event"] = set()
    for name in MANIFESTS:
        data = _manifest(name)
        features = data.get("features") or {}
        for command in features.get("slash_commands") or []:
            found["command"].add(command["command"])
        for shortcut in features.get("shortcuts") or []:
            kind = "message_action" if shortcut.get("type") == "message" else "shortcut"
            found[kind].add(shortcut["callback_id"])
        events = (data.get("settings") or {}).get("event_subscriptions") or {}
        found["event"].update(events.get("bot_events") or [])
    return found


def _block_modules() -> Iterator[Any]:
    for info in pkgutil.iter_modules(bot.slack.blocks.__path__):
        yield importlib.import_module(f"bot.slack.blocks.{info.name}")


def block_ids() -> dict[str, set[str]]:
    """``action`` and ``view`` ids of the Block Kit builders: their ``ACTION_*`` /
    ``CALLBACK_*`` string constants, the **Extend** ids they derive, and literal ids."""
    found: dict[str, set[str]] = {"action": set(), "view": set()}
    for module in _block_modules():
        for name, value in vars(module).items():
            if not isinstance(value, str):
                continue  # ACTION_EXTEND_PATTERN: a matcher, checked through the ids below
            if name.startswith("ACTION_"):
                found["action"].add(value)
            elif name.startswith("CALLBACK_"):
                found["view"].add(value)
        source = Path(cast(str, module.__file__)).read_text()
        for kind, value in _LITERAL_ID.findall(source):
            found["action" if kind == "action_id" else "view"].add(value)
    found["action"].update(lifetimes.extend_action_id(hours) for hours in (1, 4, 24, 168))
    return found


def payload(surface: str, id_: str) -> dict[str, Any]:
    """The smallest body of ``surface`` that names ``id_``, as Bolt's matchers read it."""
    team = {"id": "T0COVERAGE"}
    user = {"id": "U0COVERAGE", "team_id": "T0COVERAGE"}
    if surface == "action":
        action = {"type": "button", "action_id": id_, "block_id": "b", "action_ts": "1.2"}
        return {"type": "block_actions", "team": team, "user": user, "actions": [action]}
    if surface == "view":
        view = {"type": "modal", "id": "V0COVERAGE", "callback_id": id_, "state": {"values": {}}}
        return {"type": "view_submission", "team": team, "user": user, "view": view}
    if surface == "command":
        return {"command": id_, "text": "", "team_id": "T0COVERAGE", "user_id": "U0COVERAGE"}
    if surface in ("shortcut", "message_action"):
        return {"type": surface, "callback_id": id_, "team": team, "user": user}
    assert surface == "event"
    event = {"type": id_, "user": "U0COVERAGE"}
    return {"type": "event_callback", "team_id": "T0COVERAGE", "event": event}


# -- the apps ---------------------------------------------------------------------------------


class _Collaborators(SimpleNamespace):
    """Any collaborator a listener class is built with: an empty stand-in (the listeners only
    keep them until a request comes)."""

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace()


def _services(settings: Any, *, installs: object | None) -> Services:
    """What ``create_app`` reads of the services to register listeners (no database, no
    Vast.ai): the real settings, ``installs`` as given, stand-ins for the rest."""
    return cast(Services, _Collaborators(settings=settings, installs=installs))


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, App]]:
    """The app in single-workspace mode and in OAuth mode (installation and state stores on
    disk), both against the fake Slack (Bolt calls ``auth.test`` at start)."""
    with FakeSlack() as fake:
        single = make_settings(fake)
        oauth = make_settings(
            fake,
            slack_bot_token=None,
            slack_client_id="111.222",
            slack_client_secret="coverage-secret",
            encryption_key=Fernet.generate_key().decode(),
        )
        store_dir = tmp_path_factory.mktemp("oauth")
        yield {
            "single": create_app(single, _services(single, installs=None)),
            "oauth": create_app(
                oauth,
                _services(oauth, installs=SimpleNamespace()),
                installation_store=FileInstallationStore(base_dir=str(store_dir / "i")),
                state_store=FileOAuthStateStore(
                    expiration_seconds=600, base_dir=str(store_dir / "s")
                ),
            ),
        }


def listeners_for(app: App, surface: str, id_: str) -> list[Listener]:
    """The app's listeners whose matchers accept a ``surface`` payload naming ``id_``."""
    request = BoltRequest(body=payload(surface, id_), mode="socket_mode")
    response = BoltResponse(status=404)
    return [listener for listener in app._listeners if listener.matches(req=request, resp=response)]


def expected() -> list[tuple[str, str]]:
    """(surface, id) of everything Slack may send that needs a listener."""
    from_blocks = block_ids()
    from_manifests = manifest_ids()
    pairs = {("action", i) for i in from_blocks["action"] - READ_ON_SUBMIT}
    pairs |= {("view", i) for i in from_blocks["view"] - NO_SUBMIT}
    for surface in ("command", "shortcut", "message_action", "event"):
        pairs |= {(surface, i) for i in from_manifests[surface]}
    return sorted(pairs)


# -- the checks -------------------------------------------------------------------------------


def test_the_ids_are_collected() -> None:
    """The collection finds what the app is known to use (so an empty scan cannot pass)."""
    ids = set(expected())
    assert {("action", "deploy_template"), ("action", "lifetime_extend:4")} <= ids
    assert {("view", "deploy_modal"), ("view", "workspace_setup")} <= ids
    assert {("command", "/templates"), ("event", "app_home_opened")} <= ids
    assert ("event", "tokens_revoked") in ids  # manifest.oauth.yml
    assert len(ids) >= 35


@pytest.mark.parametrize(("surface", "id_"), expected(), ids=lambda v: str(v))
def test_every_id_has_a_listener(apps: dict[str, App], surface: str, id_: str) -> None:
    """Each id has exactly one listener, a method of a listener class in
    ``bot.slack.listeners`` (importable and testable on its own). Install events exist only in
    OAuth mode (``manifest.oauth.yml``); everything else in both modes."""
    modes = ["oauth"] if id_ in ("app_uninstalled", "tokens_revoked") else ["single", "oauth"]
    for mode in modes:
        found = listeners_for(apps[mode], surface, id_)
        assert len(found) == 1, f"{mode} mode: {len(found)} listeners for {surface} {id_!r}"
        function = found[0].ack_function
        assert inspect.ismethod(function), f"{surface} {id_!r}: {function!r} is not a method"
        assert type(function.__self__).__module__.startswith("bot.slack.listeners.")


def test_the_exceptions_are_still_true(apps: dict[str, App]) -> None:
    """Every id listed as reaching no listener is still one the builders use, and still has
    none (a listener added for it means the list is out of date)."""
    from_blocks = block_ids()
    assert from_blocks["action"] >= READ_ON_SUBMIT
    assert from_blocks["view"] >= NO_SUBMIT
    for id_ in READ_ON_SUBMIT:
        assert listeners_for(apps["single"], "action", id_) == [], id_
    for id_ in NO_SUBMIT:
        assert listeners_for(apps["single"], "view", id_) == [], id_


def test_listeners_take_only_what_bolt_injects(apps: dict[str, App]) -> None:
    """Bolt fills a listener's parameters by name; any other name would arrive as None. Bolt
    lists a bound method's ``self`` too (``inspect.getfullargspec``) and drops it because it is
    first and named ``self`` (``build_required_kwargs``)."""
    for mode, app in apps.items():
        for listener in app._listeners:
            function = listener.ack_function
            names = get_arg_names_of_callable(function)
            if inspect.ismethod(function):
                assert names[0] == "self", f"{mode}: {function!r}"
                names = names[1:]
            assert set(names) <= BOLT_ARGS, f"{mode}: {function!r} takes {set(names) - BOLT_ARGS}"


# -- Bolt and bound methods -------------------------------------------------------------------


class _Recorder:
    """A listener class as the app's are: state from the constructor, Bolt's args by name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[dict[str, Any]] = []

    def on_click(
        self, ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        # Recorded before the ack: Bolt answers the request once ack() is called, and the rest
        # of a listener runs on Bolt's listener thread.
        self.calls.append({"body": body, "action": action, "client": client, "self": self})
        ack()


def test_bolt_injects_arguments_into_a_bound_method(fake_slack: FakeSlack) -> None:
    """slack_bolt reads a listener's parameter names (``get_arg_names_of_callable``:
    ``inspect.getfullargspec``, which lists a bound method's ``self``), drops a first ``self``
    and passes the rest by name (``build_required_kwargs``): a bound method gets the request's
    ``ack``, ``body``, ``action`` and ``client``, and keeps its own state."""
    app = App(
        client=WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url),
        signing_secret="unused",
        request_verification_enabled=False,
    )
    recorder = _Recorder("x")
    app.action("coverage_click")(recorder.on_click)
    body = payload("action", "coverage_click")
    request = BoltRequest(
        body="payload=" + json.dumps(body),
        headers={"content-type": ["application/x-www-form-urlencoded"]},
    )
    response = app.dispatch(request)
    assert response.status == 200
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert call["self"] is recorder and call["self"].prefix == "x"
    assert call["action"]["action_id"] == "coverage_click"
    assert call["body"]["team"] == {"id": "T0COVERAGE"}
    assert isinstance(call["client"], WebClient)
