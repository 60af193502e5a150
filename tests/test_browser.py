"""The playground in a real browser: headless Chromium (Debian's ``chromium`` package, driven by
Playwright without its own browser download) clicks through ``python -m bot demo``.

Locally these tests skip with one line when no Chromium is found; with ``CI_REQUIRE_BROWSER=1``
(``.ci/run`` sets it) a missing browser fails them instead, so CI cannot pass by skipping.
The tests find things by the page's ``data-testid`` hooks (composer, user-switcher,
channel-<name>, channel-dm, tab-home, message with ``data-ts``, ephemeral, modal, modal-submit,
confirm, confirm-ok, confirm-deny, home, sim-ready, refusals) and Block Kit's ``action_id`` on
each element (``data-action-id``). ``PLAYGROUND_URL`` points them at a playground already running
instead of starting ``python -m bot demo``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.playground.screenshots import find_chromium

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 30_000  # the longest any step may take: the bot's poller moves the status along


def _no_browser(reason: str) -> None:
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CI_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install -e '.[test]')")
    executable = find_chromium()
    if executable is None:
        _no_browser("no Chromium found (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Starts ``python -m bot demo`` on a free port; returns the process and the page's URL once
    ``GET /`` answers. Raises AssertionError (with the demo's output) when it does not within
    60 s."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = data / "demo.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--port", str(port), "--data", str(data)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)  # polling for the server to come up, not waiting out a fixed delay
    stop_demo(process)
    raise AssertionError(f"python -m bot demo did not serve {url}:\n{log.read_text()[-3000:]}")


def stop_demo(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a person stops it; kill only if it does not stop within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def demo(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("PLAYGROUND_URL"):
        yield os.environ["PLAYGROUND_URL"]
        return
    process, url = start_demo(tmp_path_factory.mktemp("demo"))
    yield url
    stop_demo(process)


@pytest.fixture
def page(browser: Any, demo: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(WAIT_MS)
    page.goto(demo)
    page.get_by_test_id("composer").wait_for()
    yield page
    context.close()
    assert not errors, f"the page threw: {errors}"


def owner_id(page: Any) -> str:
    """The owner's user id from the user switcher (the page starts as the first user)."""
    return str(
        page.eval_on_selector(
            "[data-testid=user-switcher]",
            "s => [...s.options].find(o => o.textContent.includes('(owner)')).value",
        )
    )


def status_message(page: Any) -> Any:
    """The deployment's status message in #gpu (the one with a Destroy button)."""
    return page.locator("[data-testid=message]").filter(
        has=page.locator("[data-action-id=deployment_destroy]")
    )


def test_deploy_ready_stop_start_destroy_in_the_browser(page: Any) -> None:
    page.get_by_test_id("user-switcher").select_option(owner_id(page))
    page.get_by_test_id("channel-gpu").click()
    page.get_by_test_id("composer").fill("/templates 12gb")
    page.get_by_test_id("composer").press("Enter")

    catalog = page.locator("[data-testid=message]").filter(has=page.get_by_test_id("ephemeral"))
    catalog.locator("[data-action-id=deploy_template]").first.click()

    modal = page.get_by_test_id("modal").last
    offer = modal.locator("select[data-action-id=gpu_offer]")
    page.wait_for_function(
        "() => { const s = document.querySelector("
        "'[data-testid=modal] select[data-action-id=gpu_offer]');"
        " return s && s.options.length > 1; }"
    )
    first_offer = offer.locator("option").nth(1).get_attribute("value")
    offer.select_option(first_offer)
    modal.get_by_test_id("modal-submit").click()
    page.get_by_test_id("modal").wait_for(state="detached")

    status_message(page).wait_for()
    ts = status_message(page).get_attribute("data-ts")
    status = page.locator(f"[data-testid=message][data-ts='{ts}']")  # found again once destroyed
    page.get_by_test_id("sim-ready").click()
    status.locator("[data-action-id=deployment_stop]").wait_for()
    assert "Ready" in status.inner_text()

    status.locator("[data-action-id=deployment_stop]").click()
    status.locator("[data-action-id=deployment_start]").wait_for()
    assert "Stopped" in status.inner_text()

    status.locator("[data-action-id=deployment_start]").click()
    status.locator("[data-action-id=deployment_start]").wait_for(state="detached")
    page.get_by_test_id("sim-ready").click()
    status.locator("[data-action-id=deployment_stop]").wait_for()

    status.locator("[data-action-id=deployment_destroy]").click()
    confirm = page.get_by_test_id("confirm")
    assert "Destroy" in confirm.inner_text()
    page.get_by_test_id("confirm-deny").click()  # "Cancel" sends nothing: still running
    confirm.wait_for(state="detached")
    assert status.locator("[data-action-id=deployment_stop]").count() == 1

    status.locator("[data-action-id=deployment_destroy]").click()
    page.get_by_test_id("confirm-ok").click()
    page.locator(f"[data-testid=message][data-ts='{ts}']", has_text="Destroyed").wait_for()
    assert status.locator("[data-action-id=deployment_stop]").count() == 0
    assert "Nothing refused so far" in page.get_by_test_id("refusals").inner_text()


def test_home_tab_shows_the_deployments(page: Any) -> None:
    page.get_by_test_id("user-switcher").select_option(owner_id(page))
    page.get_by_test_id("tab-home").click()
    home = page.get_by_test_id("home")
    page.locator("[data-testid=home]", has_text="Your GPU deployments").wait_for()
    assert "How to" in home.inner_text()


HOSTILE = (
    "<script>window.pwned=1</script> <img src=x onerror=window.pwned=1> "
    "&lt;img src=x onerror=window.pwned=2&gt; "
    "*bold* _it_ ~gone~ `a<b` <https://example.com/?a=1&amp;b=2|the link> "
    "<javascript:alert(1)|bad> <@{user}> <#{channel}> <!here> "
    "<!date^1796637600^{{date_num}} {{time}}|fallback>\n&gt; quoted\n```<b>code</b>```"
)


def test_mrkdwn_renders_hostile_text_as_text(page: Any) -> None:
    state = httpx.get(page.url.split("?")[0] + "playground/api/state").json()
    user = state["users"][0]
    channel = next(c for c in state["channels"] if not c["is_im"])
    html = page.evaluate(
        """([text, ctx]) => {
            const box = document.createElement('div');
            box.append(window.Playground.renderMrkdwn(text, ctx));
            return {html: box.innerHTML, text: box.textContent,
                    links: [...box.querySelectorAll('a')].map(a => a.getAttribute('href')),
                    tags: [...box.querySelectorAll('*')].map(e => e.tagName.toLowerCase())};
        }""",
        [
            HOSTILE.format(user=user["id"], channel=channel["id"]),
            {
                "users": state["users"],
                "channels": state["channels"],
                "tz": "Asia/Tokyo",
                "now": 1796637600,
            },
        ],
    )
    assert page.evaluate("() => window.pwned") is None
    assert "script" not in html["tags"] and "img" not in html["tags"]
    assert "<script>window.pwned=1</script>" in html["text"]
    assert "<img src=x onerror=window.pwned=2>" in html["text"]  # Slack's escapes, decoded
    assert {"b", "i", "s", "code", "blockquote", "pre"} <= set(html["tags"])
    assert html["links"] == ["https://example.com/?a=1&b=2"]  # javascript: is never a link
    assert f"@{user['real_name'] or user['name']}" in html["text"]
    assert f"#{channel['name']}" in html["text"]
    assert "@here" in html["text"]
    assert "2026-12-07 7:00 PM" in html["text"]  # 10:00 UTC in Tokyo


# -- the page alone, against a stub of the playground's JSON API ---------------------------------

STUB_USERS = [
    {"id": "U0OWNER01", "name": "ada", "real_name": "Ada", "tz": "Asia/Tokyo", "role": "owner"},
    {"id": "U0TEAM001", "name": "bob", "real_name": "Bob", "tz": "UTC", "role": "teammate"},
]
CONFIRM = {
    "title": {"type": "plain_text", "text": "Destroy it?"},
    "text": {"type": "mrkdwn", "text": "This *deletes* the disk."},
    "confirm": {"type": "plain_text", "text": "Destroy"},
    "deny": {"type": "plain_text", "text": "Keep it"},
    "style": "danger",
}


def _text(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text}


def stub_state() -> dict[str, Any]:
    """A state in the contract's shape: one message with buttons (one confirmed), a select and
    an overflow, a thread, an ephemeral, and a modal with required and optional inputs."""
    message = {
        "ts": "1796637600.000100",
        "user": "U0BOT0001",
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": _text("plain_text", "Status")},
            {
                "type": "section",
                "block_id": "sec",
                "text": _text("mrkdwn", "Ends <!date^1796641200^{time}|at 11:00>"),
                "fields": [_text("mrkdwn", "*GPU*"), _text("plain_text", "RTX 4090")],
                "accessory": {
                    "type": "overflow",
                    "action_id": "more",
                    "options": [{"text": _text("plain_text", "Logs"), "value": "logs"}],
                },
            },
            {
                "type": "actions",
                "block_id": "acts",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "stop",
                        "text": _text("plain_text", "Stop"),
                        "value": "7",
                    },
                    {
                        "type": "button",
                        "action_id": "destroy",
                        "style": "danger",
                        "text": _text("plain_text", "Destroy"),
                        "value": "7",
                        "confirm": CONFIRM,
                    },
                    {
                        "type": "static_select",
                        "action_id": "pick",
                        "placeholder": _text("plain_text", "Pick"),
                        "options": [
                            {"text": _text("plain_text", "One"), "value": "1"},
                            {"text": _text("plain_text", "Two"), "value": "2"},
                        ],
                    },
                ],
            },
            {"type": "context", "elements": [_text("mrkdwn", "Deployment #7")]},
        ],
        "thread_ts": None,
        "replies": [
            {
                "ts": "1796637700.000200",
                "user": "U0BOT0001",
                "text": "a reply in the thread",
                "blocks": None,
                "thread_ts": "1796637600.000100",
                "replies": [],
                "ephemeral": False,
                "edited": False,
                "deleted": False,
            }
        ],
        "ephemeral": False,
        "edited": True,
        "deleted": False,
    }
    ephemeral = {
        **message,
        "ts": "1796637800.000300",
        "text": "just for you",
        "blocks": None,
        "replies": [],
        "ephemeral": True,
        "edited": False,
    }
    view = {
        "id": "V0MODAL01",
        "hash": "h1",
        "type": "modal",
        "callback_id": "cb",
        "title": _text("plain_text", "Deploy"),
        "submit": _text("plain_text", "Deploy"),
        "close": _text("plain_text", "Cancel"),
        "private_metadata": "",
        "errors": {},
        "blocks": [
            {
                "type": "input",
                "block_id": "name_b",
                "label": _text("plain_text", "Name"),
                "element": {"type": "plain_text_input", "action_id": "name"},
            },
            {
                "type": "input",
                "block_id": "disk_b",
                "label": _text("plain_text", "Disk"),
                "element": {
                    "type": "number_input",
                    "action_id": "disk",
                    "is_decimal_allowed": False,
                    "initial_value": "20",
                },
            },
            {
                "type": "input",
                "block_id": "who_b",
                "optional": True,
                "label": _text("plain_text", "Share with"),
                "element": {"type": "multi_users_select", "action_id": "who"},
            },
            {
                "type": "input",
                "block_id": "where_b",
                "label": _text("plain_text", "Channel"),
                "element": {
                    "type": "conversations_select",
                    "action_id": "where",
                    "default_to_current_conversation": True,
                    "filter": {"include": ["public", "private"]},
                },
            },
        ],
    }
    return {
        "version": 1,
        "team": {"id": "T0GPU0001", "name": "GPU Lab", "domain": "gpulab"},
        "bot": {"user_id": "U0BOT0001", "name": "GPU Templates"},
        "users": STUB_USERS,
        "channels": [
            {"id": "C0GPU0001", "name": "gpu", "is_im": False},
            {"id": "D0OWNER01", "name": "GPU Templates", "is_im": True},
        ],
        "messages": {"C0GPU0001": [message, ephemeral], "D0OWNER01": []},
        "views": [view],
        "home": None,
        "clock": {"now": "2026-12-07T10:00:00+00:00", "offset_seconds": 0},
        "instances": [],
        "refusals": [
            {
                "method": "chat.update",
                "error": "invalid_blocks",
                "detail": "[ERROR] too long [json-pointer:/blocks/0]",
                "at": 1.0,
            }
        ],
    }


class StubPlayground:
    """Serves the page's files and :func:`stub_state` (its version bumps on every GET, as a busy
    workspace's would), and records each POST as (path, JSON body)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.state = stub_state()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        static = ROOT / "bot" / "playground" / "static"
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: bytes, ctype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/playground/api/state":
                    stub.state["version"] += 1
                    self._send(json.dumps(stub.state).encode(), "application/json")
                    return
                name = "index.html" if path == "/" else path.removeprefix("/static/")
                kind = {".js": "text/javascript", ".css": "text/css"}.get(
                    Path(name).suffix, "text/html"
                )
                self._send((static / name).read_bytes(), kind)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.posts.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
                self._send(b'{"ok": true}', "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.posts if p == f"/playground/api/{path}"]


@pytest.fixture
def stub(browser: Any) -> Iterator[tuple[StubPlayground, Any]]:
    server = StubPlayground()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(10_000)
    page.goto(server.url)
    page.get_by_test_id("modal").wait_for()
    yield server, page
    context.close()
    server.server.shutdown()
    assert not errors, f"the page threw: {errors}"


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def test_modal_checks_required_fields_keeps_typing_across_polls_and_submits_slack_state(
    stub: tuple[StubPlayground, Any],
) -> None:
    server, page = stub
    modal = page.get_by_test_id("modal")
    modal.get_by_test_id("modal-submit").click()
    assert "Please complete this required field." in modal.inner_text()
    assert server.posted("submit") == []

    modal.locator("[data-action-id=name]").fill("my box")
    # The bot updates the view (views.update: a new hash, a new block): what was typed stays,
    # as in Slack, where an input keeps its value while its block_id and action_id do.
    view = server.state["views"][0]
    view["blocks"] = [*view["blocks"], {"type": "context", "elements": [_text("mrkdwn", "$1/h")]}]
    view["hash"] = "h2"
    page.locator("[data-testid=modal]", has_text="$1/h").wait_for()
    assert modal.locator("[data-action-id=name]").input_value() == "my box"
    modal.locator("[data-action-id=disk]").fill("40")
    modal.locator("[data-action-id=who]").select_option(["U0TEAM001"])
    modal.get_by_test_id("modal-submit").click()
    wait_until(lambda: server.posted("submit"))
    assert server.posted("submit") == [
        {
            "user": "U0OWNER01",
            "view_id": "V0MODAL01",
            "state": {
                "values": {
                    "name_b": {"name": {"type": "plain_text_input", "value": "my box"}},
                    "disk_b": {"disk": {"type": "number_input", "value": "40"}},
                    "who_b": {
                        "who": {"type": "multi_users_select", "selected_users": ["U0TEAM001"]}
                    },
                    "where_b": {
                        "where": {
                            "type": "conversations_select",
                            "selected_conversation": "C0GPU0001",
                        }
                    },
                }
            },
        }
    ]
    modal.get_by_test_id("modal-close").click()
    wait_until(lambda: server.posted("close"))
    assert server.posted("close") == [{"user": "U0OWNER01", "view_id": "V0MODAL01"}]


def test_message_buttons_confirmations_selects_threads_and_ephemerals(
    stub: tuple[StubPlayground, Any],
) -> None:
    server, page = stub
    server.state["views"] = []
    page.get_by_test_id("modal").wait_for(state="detached")
    message = page.locator("[data-testid=message][data-ts='1796637600.000100']")
    assert "Ends 8:00 PM" in message.inner_text()  # 11:00 UTC in Ada's Asia/Tokyo
    assert "(edited)" in message.inner_text()

    message.locator("[data-action-id=destroy]").click()
    confirm = page.get_by_test_id("confirm")
    assert "Destroy it?" in confirm.inner_text() and "Keep it" in confirm.inner_text()
    page.get_by_test_id("confirm-deny").click()
    confirm.wait_for(state="detached")
    message.locator("[data-action-id=stop]").click()
    message.locator("[data-action-id=destroy]").click()
    page.get_by_test_id("confirm-ok").click()
    message.locator("select[data-action-id=pick]").select_option(label="Two")
    wait_until(lambda: len(server.posted("action")) == 3)
    actions = [
        (body["action"], body["channel"], body["message_ts"]) for body in server.posted("action")
    ]
    button = {"type": "button", "block_id": "acts", "value": "7"}
    assert actions[0][0] == {**button, "action_id": "stop", "text": _text("plain_text", "Stop")}
    assert actions[1][0] == {
        **button,
        "action_id": "destroy",
        "style": "danger",
        "text": _text("plain_text", "Destroy"),
    }
    assert actions[2][0] == {
        "type": "static_select",
        "action_id": "pick",
        "block_id": "acts",
        "selected_option": {"text": _text("plain_text", "Two"), "value": "2"},
    }
    assert {(c, ts) for _, c, ts in actions} == {("C0GPU0001", "1796637600.000100")}
    picked = server.posted("action")[2]["state"]["values"]["acts"]["pick"]
    assert picked["selected_option"]["value"] == "2"

    assert page.get_by_test_id("thread-replies").count() == 0
    message.get_by_test_id("thread-toggle").click()
    assert "a reply in the thread" in page.get_by_test_id("thread-replies").inner_text()
    ephemeral = page.locator("[data-testid=message]").filter(has=page.get_by_test_id("ephemeral"))
    assert ephemeral.count() == 1 and "just for you" in ephemeral.inner_text()
    assert "invalid_blocks" in page.get_by_test_id("refusals").inner_text()
