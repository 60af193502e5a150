"""Event kinds: ``storage.EventKind`` names every kind the code writes, and ``add_event`` warns
about (or, strict, refuses) a kind that is no member.

The scan reads bot/ and storage/ with ``ast``: every call that writes an event row
(``add_event``, ``_event``, ``add_team_event``, ``_team_event``, ``_claim_once``,
``_update_once(event=...)``, ``TeamEvent(action=...)``) has its kind resolved to strings:
literals, ``EventKind`` members, module constants (also imported ones), dict values,
conditional expressions, locals, f-strings (every combination of their parts) and parameters
(through every call of the function that receives them). A kind the scan cannot resolve fails
the test too: a new writer must stay resolvable or be taught here.
"""

from __future__ import annotations

import ast
import functools
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

import storage
from storage import EventKind, events, repo
from storage import intents as storage_intents

ROOT = Path(__file__).resolve().parents[1]
SF = sessionmaker[Session]

#: Writer → (position of the kind among the arguments, its keyword name). ``self`` not counted.
WRITERS: dict[str, tuple[int | None, str]] = {
    "add_event": (3, "action"),
    "_event": (3, "action"),
    "add_team_event": (3, "action"),
    "_team_event": (3, "action"),
    "_claim_once": (4, "event"),
    "_update_once": (None, "event"),  # a tuple (actor, action, detail)
    "TeamEvent": (None, "action"),
    "DeploymentEvent": (None, "action"),
}


class Unresolved(Exception):
    """The scan cannot tell which strings an expression holds."""


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    constants: dict[str, ast.expr] = field(default_factory=dict)
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local → (module, name)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)


def _modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in ("bot", "storage"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = Module(name, path, tree)
            for node in tree.body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign) and node.value is not None
                    else []
                )
                value = getattr(node, "value", None)
                for target in targets:
                    if isinstance(target, ast.Name) and value is not None:
                        module.constants[target.id] = value
                    elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                        for t, v in zip(target.elts, value.elts, strict=True):
                            if isinstance(t, ast.Name):
                                module.constants[t.id] = v
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        module.imports[alias.asname or alias.name] = (node.module, alias.name)
            for parent in ast.walk(tree):
                for child in ast.iter_child_nodes(parent):
                    module.parents[child] = parent
            found[module.name] = module
    return found


MODULES = _modules()


def _enclosing(module: Module, node: ast.AST) -> ast.FunctionDef | None:
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, ast.FunctionDef):
            return node
    return None


#: Functions whose result is a word of a kind, with every value they can return (read from the
#: code's own tables, not copied): ``storage.act_of`` names the act of a desired state.
RETURNS: dict[str, tuple[str, ...]] = {"act_of": tuple(storage_intents._ACTS.values())}


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _argument(call: ast.Call, position: int | None, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _strings(module: Module, node: ast.expr, depth: int = 0) -> set[str]:
    """Every string ``node`` may hold where it stands in ``module``."""
    if depth > 6:
        raise Unresolved(ast.unparse(node))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Attribute):
        if node.attr == "value":
            return _strings(module, node.value, depth + 1)
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "EventKind") or (
            isinstance(owner, ast.Attribute) and owner.attr == "EventKind"
        ):  # EventKind.X or storage.EventKind.X
            return {EventKind[node.attr].value}
    if isinstance(node, ast.IfExp):
        return _strings(module, node.body, depth + 1) | _strings(module, node.orelse, depth + 1)
    if isinstance(node, ast.Call) and _called_name(node) in RETURNS:
        return set(RETURNS[_called_name(node) or ""])
    if isinstance(node, ast.Call) and _called_name(node) == "EventKind" and len(node.args) == 1:
        # EventKind(x) raises ValueError for a non-member when it runs: checked either way.
        try:
            return _strings(module, node.args[0], depth + 1)
        except Unresolved:
            return set()
    if isinstance(node, ast.JoinedStr):
        parts: list[set[str]] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                parts.append(_strings(module, value.value, depth + 1))
            else:
                parts.append(_strings(module, value, depth + 1))
        return {"".join(combo) for combo in itertools.product(*parts)}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        table = _named(module, node.value, node.value.id, depth)
        if isinstance(table, ast.Dict):
            return set().union(*(_strings(module, v, depth + 1) for v in table.values))
    if isinstance(node, ast.Name):
        function = _enclosing(module, node)
        if function is not None:
            local = _local(module, function, node.id, depth)
            if local is not None:
                return local
        named = _named(module, node, node.id, depth)
        if named is not None:
            return _strings(_owner(module, node.id), named, depth + 1)
    raise Unresolved(f"{module.name}: {ast.unparse(node)}")


def _owner(module: Module, name: str) -> Module:
    if name in module.constants:
        return module
    source, original = module.imports[name]
    return _owner(MODULES[source], original)


def _named(module: Module, node: ast.expr, name: str, depth: int) -> ast.expr | None:
    """A module-level constant, here or imported from a scanned module."""
    if name in module.constants:
        return module.constants[name]
    if name in module.imports:
        source, original = module.imports[name]
        if source in MODULES:
            return _named(MODULES[source], node, original, depth + 1)
    return None


def _local(module: Module, function: ast.FunctionDef, name: str, depth: int) -> set[str] | None:
    """The strings of a parameter (through every call of ``function``) or of a local that
    ``function`` assigns; None when ``name`` is neither."""
    params = [a.arg for a in function.args.posonlyargs + function.args.args]
    keyword_only = [a.arg for a in function.args.kwonlyargs]
    if name in params or name in keyword_only:
        method = bool(params) and params[0] == "self"
        position = params.index(name) - int(method) if name in params else None
        found: set[str] = set()
        calls = list(_calls_of(function.name))
        if not calls:
            raise Unresolved(f"{module.name}.{function.name}({name}) is never called")
        for caller_module, call in calls:
            arg = _argument(call, position, name)
            if arg is None:
                raise Unresolved(f"{caller_module.name}: {ast.unparse(call)} without {name}")
            found |= _strings(caller_module, arg, depth + 1)
        return found
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts, strict=True):
                        if isinstance(t, ast.Name) and t.id == name:
                            values.append(v)
    if not values:
        return None
    return set().union(*(_strings(module, v, depth + 1) for v in values))


def _index_calls() -> dict[str, list[tuple[Module, ast.Call]]]:
    calls: dict[str, list[tuple[Module, ast.Call]]] = {}
    for module in MODULES.values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call):
                calls.setdefault(_called_name(node) or "", []).append((module, node))
    return calls


CALLS = _index_calls()


def _calls_of(name: str) -> Iterator[tuple[Module, ast.Call]]:
    yield from CALLS.get(name, [])


@functools.cache
def written_kinds() -> dict[str, set[str]]:
    """``{"<module>:<line>": kinds}`` of every event write in bot/ and storage/ (writes inside
    the writers themselves are their callers' kinds, resolved at those callers)."""
    sites: dict[str, set[str]] = {}
    for name in WRITERS:
        for module, node in CALLS.get(name, []):
            function = _enclosing(module, node)
            if function is not None and function.name in WRITERS:
                continue
            position, keyword = WRITERS[_called_name(node) or ""]
            arg = _argument(node, position, keyword)
            where = f"{module.name}:{node.lineno}"
            if arg is None:
                raise Unresolved(f"{where}: no kind in {ast.unparse(node)}")
            if keyword == "event" and position is None:
                assert isinstance(arg, ast.Tuple), where
                arg = arg.elts[1]
            sites[where] = _strings(module, arg)
    # A settlement (bot.services.intents.Settlement, or dataclasses.replace of one) carries the
    # event storage.complete_intent writes: ``event=(kind, detail)``.
    for name in ("Settlement", "replace"):
        for module, node in CALLS.get(name, []):
            arg = _argument(node, None, "event")
            if isinstance(arg, ast.Tuple) and arg.elts:
                sites[f"{module.name}:{node.lineno}"] = _strings(module, arg.elts[0])
    return sites


# --- the scan --------------------------------------------------------------------------------


def test_every_kind_the_code_writes_is_a_member() -> None:
    sites = written_kinds()
    unknown = {
        where: sorted(k for k in kinds if k not in set(EventKind))
        for where, kinds in sites.items()
        if not kinds <= set(EventKind)
    }
    assert unknown == {}, "add these kinds to storage.EventKind"


def test_every_member_is_written_somewhere() -> None:
    written = set().union(*written_kinds().values())
    assert set(EventKind) - written == set(), "a member nothing writes: remove it"


def test_the_scan_sees_parameters_f_strings_and_imports() -> None:
    """The resolver follows what matters: ``f"{action}_refused"`` through the callers of
    ``load_for`` (services of two modules) and of the approvals' ``_load``, ``auto_{action}``
    through an imported constant, and the approval outcomes through a dict."""
    written = set().union(*written_kinds().values())
    assert {
        "credentials_refused",
        "extend_refused",
        "keep_running_refused",
        "deny_refused",
        "auto_destroy",
        "auto_stop_failed",
        "start_failed",
        "approval_expired",
        "vast_key_removed",
        "budget_alert",
    } <= written
    assert len(written_kinds()) >= 30


def test_the_scan_refuses_a_kind_it_cannot_resolve() -> None:
    module = MODULES["storage.repo"]
    call = ast.parse("add_event(sf, 1, 'system', compute_kind())").body[0]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    with pytest.raises(Unresolved):
        _strings(module, call.value.args[3])


# --- the enum --------------------------------------------------------------------------------


def test_members_equal_their_strings_and_fit_the_column() -> None:
    assert EventKind.STOP == "stop" and EventKind("auto_stop") is EventKind.AUTO_STOP
    for kind in EventKind:
        assert kind.value == kind.name.lower()
        assert len(kind.value) <= 32  # deployment_events.action and team_events.action


# --- add_event with an unknown kind ----------------------------------------------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "_warned", set())


def _deployment(sf: SF) -> int:
    record, _ = repo.create_deployment(
        sf,
        request_key="kinds-1",
        team_id="T1",
        user_id="U1",
        channel_id="C1",
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24.0,
        dph_total=0.4,
        disk_gb=32.0,
    )
    return record.id


def test_members_and_their_strings_are_stored_as_plain_strings(session_factory: SF) -> None:
    dep_id = _deployment(session_factory)
    repo.add_event(session_factory, dep_id, "U1", EventKind.STOP, "instance 1")
    repo.add_event(session_factory, dep_id, "U1", "start", "instance 1")
    actions = [e.action for e in storage.list_events(session_factory, dep_id)]
    assert actions == ["requested", "stop", "start"]
    assert all(type(a) is str for a in actions)


def test_an_unknown_kind_is_stored_and_warned_about_once(
    session_factory: SF,
    caplog: pytest.LogCaptureFixture,
    fresh_warnings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dep_id = _deployment(session_factory)
    monkeypatch.setattr(events, "STRICT", False)  # as in production
    with caplog.at_level(logging.WARNING, logger="storage.events"):
        repo.add_event(session_factory, dep_id, "U1", "intent_sent", "a new kind")
        repo.add_event(session_factory, dep_id, "U1", "intent_sent", "again")
        storage.add_team_event(session_factory, "T1", "U1", "team_thing")
    warnings = [r.getMessage() for r in caplog.records if r.name == "storage.events"]
    assert len(warnings) == 2
    assert "'intent_sent'" in warnings[0] and "'team_thing'" in warnings[1]
    actions = [e.action for e in storage.list_events(session_factory, dep_id)]
    assert actions[-2:] == ["intent_sent", "intent_sent"]
    assert [a.action for a in storage.list_audit(session_factory, "T1")][0] == "team_thing"


def test_strict_mode_refuses_an_unknown_kind_and_stores_nothing(
    session_factory: SF, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    dep_id = _deployment(session_factory)
    monkeypatch.setattr(events, "STRICT", True)
    with pytest.raises(ValueError, match="intent_sent"):
        repo.add_event(session_factory, dep_id, "U1", "intent_sent")
    with pytest.raises(ValueError, match="team_thing"):
        storage.add_team_event(session_factory, "T1", "U1", "team_thing")
    repo.add_event(session_factory, dep_id, "U1", "stop")  # a member's string still passes
    actions = [e.action for e in storage.list_events(session_factory, dep_id)]
    assert actions == ["requested", "stop"]
    assert [a.action for a in storage.list_audit(session_factory, "T1")] == ["stop", "requested"]


def test_the_audit_log_has_words_for_every_kind() -> None:
    """``/templates audit`` says each event in words, never the raw kind."""
    from bot.slack.blocks.budgets import AUDIT_WORDS

    assert {kind.value for kind in EventKind} - set(AUDIT_WORDS) == set()
    assert set(AUDIT_WORDS) - {kind.value for kind in EventKind} == set()
