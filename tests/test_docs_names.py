"""Every code name the pages of ``docs/`` cite still exists: a backticked dotted name under
``bot``, ``storage`` or ``catalog`` (``bot.slack.messages.SlackMessages.post_status``) resolves
to a module and then to a class, function, attribute or method in it, and a backticked path
(``bot/services/rules/executor.py``, ``tests/test_rules.py``) is a file or folder of the repo.

Names are resolved by reading the source (``ast``), not by importing it, so the check takes a
fraction of a second. A name it cannot judge (an attribute of a class with bases outside the
repo, a name re-exported by ``import *`` from elsewhere) is skipped, never failed."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
PACKAGES = ("bot", "catalog", "storage")
SPAN = re.compile(r"`([^`\n]+)`")
DOTTED = re.compile(r"(?<![\w./-])((?:bot|catalog|storage)(?:\.[A-Za-z_]\w*)+)")
PATH = re.compile(r"(?<![\w./-])((?:bot|catalog|storage|tests|benchmarks|docs)/[\w./-]*)")
UNKNOWN = "unknown"  # cannot judge: skipped
# Pages whose paths are other projects' (slack-bolt's tests and docs), cited as sources.
OTHER_REPOS = {"SLACK_API.md"}


def _spans(text: str) -> list[str]:
    """The backticked spans of a page, and every line of its fenced blocks."""
    spans, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif fence:
            spans.append(line)
        else:
            spans.extend(SPAN.findall(line))
    return spans


def names_in(text: str) -> tuple[set[str], set[str]]:
    """``(dotted names, paths)`` cited by a page's text."""
    dotted: set[str] = set()
    paths: set[str] = set()
    for span in _spans(text):
        dotted.update(DOTTED.findall(span))
        paths.update(p.rstrip(".") for p in PATH.findall(span))
    return dotted, paths


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, ast.Import):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.ImportFrom):
        return [a.asname or a.name for a in node.names if a.name != "*"]
    return []


def _body(nodes: list[ast.stmt]) -> list[ast.stmt]:
    """Statements of a body, with those inside ``if``/``try`` blocks (``TYPE_CHECKING``...)."""
    out: list[ast.stmt] = []
    for node in nodes:
        out.append(node)
        if isinstance(node, ast.If):
            out += _body(node.body) + _body(node.orelse)
        elif isinstance(node, ast.Try):
            out += _body(node.body) + _body(node.orelse) + _body(node.finalbody)
            for handler in node.handlers:
                out += _body(handler.body)
    return out


def _in_class(cls: ast.ClassDef, name: str) -> bool | str:
    for node in _body(cls.body):
        if name in _targets(node):
            return True
    for node in ast.walk(cls):  # instance attributes: self.name = ...
        if (
            isinstance(node, ast.Attribute)
            and node.attr == name
            and isinstance(node.ctx, ast.Store)
        ):
            return True
    if any(not (isinstance(b, ast.Name) and b.id in {"object", "Protocol"}) for b in cls.bases):
        return UNKNOWN  # inherited, perhaps: not judged
    return False


def resolve(dotted: str) -> bool | str:
    """Whether ``dotted`` names a module, or something defined in one (``UNKNOWN`` when the
    source cannot tell)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = _module_file(".".join(parts[:cut]))
        if path is not None:
            break
    else:
        return False
    rest = parts[cut:]
    if not rest:
        return True
    nodes = _body(_tree(path).body)
    if rest[0] not in {t for node in nodes for t in _targets(node)}:
        if any(
            isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in nodes
        ):
            return UNKNOWN
        return False
    if len(rest) == 1:
        return True
    classes = [n for n in nodes if isinstance(n, ast.ClassDef) and n.name == rest[0]]
    if not classes or len(rest) > 2:
        return UNKNOWN  # an imported or assigned name, or an attribute's attribute
    return _in_class(classes[0], rest[1])


def stale(page: Path) -> list[str]:
    """The names and paths ``page`` cites that no longer exist."""
    dotted, paths = names_in(page.read_text(encoding="utf-8"))
    missing = [name for name in sorted(dotted) if resolve(name) is False]
    if page.name not in OTHER_REPOS:
        missing += [p for p in sorted(paths) if "*" not in p and not (ROOT / p).exists()]
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_code_name_a_page_cites_exists(page: Path) -> None:
    missing = stale(page)
    assert not missing, f"{page.name} cites names that no longer exist: {missing}"


def test_the_check_tells_a_live_name_from_a_stale_one() -> None:
    assert resolve("bot.slack.messages.SlackMessages") is True
    assert resolve("bot.services.rules.executor.RuleExecutor") is True
    assert resolve("bot.services.actions.ManageService") is False
    assert resolve("bot.slack.messages.SlackMessages.no_such_method") is False
    assert names_in("`bot/slack/app.py` and `storage.claim(…)`") == (
        {"storage.claim"},
        {"bot/slack/app.py"},
    )


if __name__ == "__main__":  # python tests/test_docs_names.py: list every stale name
    for page in PAGES:
        for name in stale(page):
            print(f"{page.name}: {name}")
