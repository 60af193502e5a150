"""PNG screenshots of the playground's main moments (``python -m bot demo --screenshots DIR``).

Headless Chromium (the distribution's ``chromium`` package, driven through the ``playwright``
Python package of the ``test`` extra; no browser is downloaded) plays a person's first minute on
the page at ``url``: ``/templates 12gb``, **Deploy**, an offer, the simulated instance turning
ready, the simulated clock moved on until the lifetime warning, and the Home tab. Every picture is
taken from what the page shows, so the README's pictures are regenerated, never drawn.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

SHOTS = ("catalog", "picker", "ready", "lifetime-warning", "home")
"""The files written, in order (``<name>.png``)."""
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 1280, 800
STEP_TIMEOUT_MS = 30_000
MAX_CLOCK_STEPS = 80
"""How many +10 min steps the lifetime warning may take (the shortest **Run for** is chosen)."""


class ScreenshotError(RuntimeError):
    """A step of the walk-through did not happen on the page (its message names the step)."""


def find_chromium() -> str | None:
    """The path of a Chromium on PATH (Debian: ``/usr/bin/chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def take_screenshots(url: str, out_dir: Path, *, chromium: str | None = None) -> list[Path]:
    """Walks the playground at ``url`` (``python -m bot demo``'s page, freshly started: no
    deployment yet) and writes ``catalog.png``, ``picker.png``, ``ready.png``,
    ``lifetime-warning.png`` and ``home.png`` into ``out_dir`` (created if missing).

    Returns the paths written, in that order. Raises :class:`ScreenshotError` when Chromium or
    the ``playwright`` package is missing, or when a step does not show up within 30 s (the
    message names the step); the page's own JavaScript errors fail it too.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ScreenshotError(
            "screenshots need the playwright package: pip install -e '.[test]'"
        ) from exc
    executable = chromium or find_chromium()
    if executable is None:
        raise ScreenshotError("screenshots need Chromium: apt-get install chromium")
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(
                viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT}, device_scale_factor=1
            )
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.set_default_timeout(STEP_TIMEOUT_MS)
            try:
                written = _walk(page, url, out_dir)
            except PlaywrightError as exc:
                raise ScreenshotError(f"the page did not show the next step: {exc}") from exc
            if errors:
                raise ScreenshotError(f"the page threw: {errors}")
            return written
        finally:
            browser.close()


def _walk(page: Page, url: str, out_dir: Path) -> list[Path]:
    shots: list[Path] = []

    def shot(name: str, target: Locator | None = None) -> None:
        path = out_dir / f"{name}.png"
        _settle(page)
        if target is None:
            page.screenshot(path=str(path))
        else:
            target.screenshot(path=str(path))
        shots.append(path)

    page.goto(url)
    page.get_by_test_id("composer").wait_for()
    owner = page.eval_on_selector(
        "[data-testid=user-switcher]",
        "s => ([...s.options].find(o => o.textContent.includes('(owner)')) || s.options[0]).value",
    )
    page.get_by_test_id("user-switcher").select_option(str(owner))
    page.get_by_test_id("channel-gpu").click()
    page.get_by_test_id("composer").fill("/templates 12gb")
    page.get_by_test_id("composer").press("Enter")
    catalog = page.locator("[data-testid=message]").filter(has=page.get_by_test_id("ephemeral"))
    catalog.locator("[data-action-id=deploy_template]").first.wait_for()
    catalog.last.scroll_into_view_if_needed()
    shot("catalog")

    catalog.locator("[data-action-id=deploy_template]").first.click()
    modal = page.get_by_test_id("modal").last
    page.wait_for_function(
        "() => { const s = document.querySelector("
        "'[data-testid=modal] select[data-action-id=gpu_offer]');"
        " return s && s.options.length > 1; }"
    )
    offer = modal.locator("select[data-action-id=gpu_offer]")
    offer.select_option(offer.locator("option").nth(1).get_attribute("value") or "")
    _shortest_lifetime(page, modal)
    shot("picker", modal)

    modal.get_by_test_id("modal-submit").click()
    page.get_by_test_id("modal").wait_for(state="detached")
    status = page.locator("[data-testid=message]").filter(
        has=page.locator("[data-action-id=deployment_destroy]")
    )
    status.wait_for()
    page.get_by_test_id("sim-ready").click()
    status.locator("[data-action-id=deployment_stop]").wait_for()
    shot("ready", status)

    page.get_by_test_id("channel-dm").click()
    warning = page.locator("[data-testid=message]").filter(
        has=page.locator("[data-block-id^=lt_expiry_]")
    )
    for _ in range(MAX_CLOCK_STEPS):
        if warning.count():
            break
        page.get_by_test_id("sim-advance-10m").click()
        _wait_for_change(page, warning)
    else:
        raise ScreenshotError("no lifetime warning after the simulated clock moved on")
    warning.first.scroll_into_view_if_needed()
    shot("lifetime-warning", warning.first)

    page.get_by_test_id("tab-home").click()
    page.locator("[data-testid=home]", has_text="Your GPU deployments").wait_for()
    shot("home", page.get_by_test_id("home"))
    return shots


def _shortest_lifetime(page: Page, modal: Locator) -> None:
    """Chooses the shortest **Run for** (so the warning comes after few clock steps) and waits
    for the bot to redraw the picker's cost line."""
    select = modal.locator("select[data-action-id=lifetime]")
    if not select.count():
        return
    values = select.locator("option").evaluate_all("os => os.map(o => [o.value, o.textContent])")
    hours = [(_hours(text), value) for value, text in values if value and _hours(text)]
    if not hours:
        return
    before = modal.inner_text()
    select.select_option(min(hours)[1])
    deadline = time.monotonic() + 10
    while modal.inner_text() == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the bot's views.update arrives with the next poll


def _hours(label: str) -> float | None:
    """Hours from a **Run for** label ("2 hours", "1 day", "1 week"); None otherwise."""
    words = label.split()
    if len(words) != 2:
        return None
    try:
        number = float(words[0])
    except ValueError:
        return None
    unit = {"hour": 1, "hours": 1, "day": 24, "days": 24, "week": 168, "weeks": 168}
    return number * unit[words[1]] if words[1] in unit else None


def _wait_for_change(page: Page, warning: Locator) -> None:
    """Waits until the page shows the clock step (the simulated clock's text changes), then up
    to 3 s for the warning the bot may post after it."""
    clock = page.get_by_test_id("clock")
    before = clock.inner_text() if clock.count() else ""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and clock.count() and clock.inner_text() == before:
        page.wait_for_timeout(100)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not warning.count():
        page.wait_for_timeout(100)


def _settle(page: Page, quiet_ms: int = 1200, timeout_s: float = 15) -> None:
    """Waits until no POST is in flight and the state shown has not changed for ``quiet_ms``
    (the bot's answers to a click arrive as later state versions), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        seen = page.evaluate("() => [document.body.dataset.pending, document.body.dataset.version]")
        if seen != last or seen[0] not in (None, "0"):
            last, quiet_since = seen, time.monotonic()
        elif (time.monotonic() - quiet_since) * 1000 >= quiet_ms:
            return
        page.wait_for_timeout(100)
