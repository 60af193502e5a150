"""The product cites public sources, never the team's private notes or issue numbers.

Code, docs and tests must point at what a reader outside the team can open: docs.vast.ai,
api.slack.com / docs.slack.dev, public repositories, and the condensed copies in
``docs/VAST_API.md`` and ``docs/SLACK_API.md``. This test reads every file git tracks under the
product's folders and fails on a pointer at the notes kept beside the repository (``../shared``,
``vast-api.md``, ``reference/slack.md``, ``DESIGN.md``) or at an issue number (``issue 13``,
``Issue #14``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What git tracks and the product ships or tests: folders and single files.
SCOPE = ("bot", "catalog", "storage", "benchmarks", "docs", "tests", "README.md", ".env.example")

#: Pointers at the private notes, and issue numbers. ``docs/SLACK_API.md`` itself is allowed:
#: the pattern names ``reference/slack.md`` (the notes' path), not ``slack.md`` alone.
FORBIDDEN = re.compile(
    r"\.\./shared|/work/shared|vast-api\.md|reference/slack\.md|DESIGN\.md|\bissue #?\d+",
    re.IGNORECASE,
)

#: The vendors' files copied unchanged (their own links are theirs, not ours to rewrite).
VENDORED = ("tests/specs/",)

#: This file names the forbidden strings in order to forbid them.
SELF = "tests/test_docs_sources.py"


def tracked_files() -> list[str]:
    """Paths (relative, POSIX) that git tracks under :data:`SCOPE`, minus vendored copies."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *SCOPE],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [
        path
        for path in out.split("\0")
        if path and path != SELF and (not path.startswith(VENDORED) or path.endswith("README.md"))
    ]


def offending_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` for each line of ``text`` that matches :data:`FORBIDDEN`."""
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if FORBIDDEN.search(line)]


def test_the_pattern_catches_each_pointer_and_spares_the_public_copies() -> None:
    for bad in (
        "see vast-api.md §4",
        "(reference/slack.md §1.4)",
        'DESIGN.md "Money safety"',
        "../shared/reference/specs",
        "(issue 13)",
        "Issue #14, defect M",
    ):
        assert offending_lines(bad), bad
    for good in (
        "docs/VAST_API.md §4",
        "docs/SLACK_API.md §1.4",
        "api.slack.com/reference/block-kit/blocks",
        "docs.vast.ai/api-reference/instances/create-instance",
        "dstackai/gpuhunt#142",
        "deployment #12",
    ):
        assert not offending_lines(good), good


def test_the_scope_is_read() -> None:
    files = tracked_files()
    assert "bot/vast/client.py" in files and "README.md" in files
    assert "docs/VAST_API.md" in files and "docs/SLACK_API.md" in files


def test_no_pointer_at_private_notes_or_issue_numbers() -> None:
    found: list[str] = []
    for path in tracked_files():
        file = ROOT / path
        if not file.is_file():  # deleted in the work tree but still tracked
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary data has no prose to check
        found += [f"{path}:{n}: {line.strip()[:120]}" for n, line in offending_lines(text)]
    assert not found, "pointers at the team's notes or issue numbers:\n" + "\n".join(found)
