"""The README and ``docs/`` agree with the code: the README stays a short front page whose
first command is the playground, every link between the pages resolves (file and heading),
every setting is documented in ``docs/CONFIGURATION.md`` and listed in ``.env.example``, and
``LICENSE`` is the licence ``pyproject.toml`` declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of ``page``: lower case, punctuation dropped, spaces → ``-``."""
    anchors, fence = set(), False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and (match := re.match(r"#+ (.+)", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not target.startswith(("http", "mailto"))]


def test_readme_is_a_short_front_page_that_starts_with_the_playground() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    commands = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    first = commands[0].rstrip()
    assert "pip install -e . " in first and first.endswith("python -m bot demo")
    assert "pip install -e '.[test]'" in commands[1] and "pytest" in commands[1]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_between_the_pages_resolves(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        if path.startswith("images/") or path.startswith("docs/images/"):
            continue  # the pictures: test_readme_pictures_are_the_screenshots
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no such heading in {file.name}")
    assert not broken, f"{page.name}: {broken}"


def test_readme_pictures_are_the_screenshots() -> None:
    """The README shows the PNGs ``python -m bot demo --screenshots docs/images`` writes."""
    pictures = re.findall(r"!\[[^\]]+\]\((docs/images/[\w-]+\.png)\)", README.read_text())
    assert {Path(p).stem for p in pictures} == {
        "catalog",
        "picker",
        "ready",
        "lifetime-warning",
        "home",
    }
    if not (ROOT / "docs" / "images").is_dir():
        pytest.skip("no docs/images yet: python -m bot demo --screenshots docs/images")
    missing = [p for p in pictures if not (ROOT / p).is_file()]
    assert not missing


def test_the_readme_links_every_page_of_docs() -> None:
    linked = {Path(target.partition("#")[0]).name for target in _links(README)}
    unlinked = [page.name for page in DOCS.glob("*.md") if page.name not in linked]
    assert not unlinked


def test_every_setting_is_documented_and_in_env_example() -> None:
    """The table of ``docs/CONFIGURATION.md`` names exactly the fields of :class:`Settings`,
    and ``.env.example`` lists each (set or commented out), as the page says it does."""
    fields = {name.upper() for name in Settings.model_fields}
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", (DOCS / "CONFIGURATION.md").read_text(), re.M))
    example = set(re.findall(r"^(?:# )?([A-Z][A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert fields - table == set(), "settings missing from docs/CONFIGURATION.md"
    assert table - fields == set(), "docs/CONFIGURATION.md documents variables that do not exist"
    assert fields - example == set(), "settings missing from .env.example"


def test_every_benchmark_is_documented_with_its_command() -> None:
    text = (DOCS / "BENCHMARKS.md").read_text(encoding="utf-8")
    modules = {p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__"}
    missing = [m for m in modules if f"python -m benchmarks.{m}" not in text]
    assert not missing


def test_license_is_the_one_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
