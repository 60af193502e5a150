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

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 30_000  # the longest any step may take: the bot's poller moves the status along


def chromium_path() -> str | None:
    """Debian's Chromium (``/usr/bin/chromium``) or another Chromium on PATH; None when absent."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


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
    executable = chromium_path()
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

    status = status_message(page)
    status.wait_for()
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
    destroyed = page.locator("[data-testid=message]", has_text="Destroyed")
    destroyed.wait_for()
    assert destroyed.locator("[data-action-id=deployment_stop]").count() == 0
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
