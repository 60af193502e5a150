"""Load the template catalog: the built-in YAML files, then a team's `CATALOG_DIR`.

File format: a YAML file holds one template mapping or a list of them (fields as in
`catalog.models.Template`), at most MAX_FILE_BYTES (256 KB) and nested at most MAX_DEPTH (20)
levels deep. Every problem in every file is collected, then raised at once as a
`CatalogError` whose `str()` has one line per problem, `<file>: <field>: <reason>`, e.g.

    team/llama.yaml: recommended_vram_gb: must be at least min_vram_gb (16)
    team/x.yaml: tpu: unknown key
    team/deep.yaml: yaml: nested deeper than 20 levels at line 1, column 21
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.composer import ComposerError
from yaml.nodes import Node

from catalog.models import Template

#: Largest template file read, in bytes. A template is a few hundred bytes; the bound keeps a
#: mistaken or hostile file from filling memory or the log.
MAX_FILE_BYTES = 256 * 1024
#: Deepest YAML nesting accepted (nodes from the document's root; a template needs 4). PyYAML
#: composes nodes recursively, so 500 nested "[" raised RecursionError: deeper files are
#: refused first, as a one-line problem.
MAX_DEPTH = 20

#: Slugs of the built-in templates, in the order the catalog shows them.
BUILTIN_SLUGS: tuple[str, ...] = ("jupyter-lab", "stable-diffusion", "comfy-ui", "vllm")

#: Shown as the source of a built-in template.
BUILTIN_SOURCE = "builtin"

# Friendlier reasons for pydantic's error types (the rest use pydantic's own message).
_REASONS: dict[str, str] = {
    "missing": "missing",
    "extra_forbidden": "unknown key",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of names to values",
    "string_type": 'must be a string (quote values such as "yes", "true" or "8080")',
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "bool_type": "must be true or false",
    "too_short": "must not be empty",
}


def one_line(text: str) -> str:
    """`text` with every character that is not printable (a newline, a control character,
    U+2028) written as a ``\\uXXXX`` escape: a problem stays one line whatever a file's name,
    keys or values hold."""
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


class CatalogError(Exception):
    """One or more problems in the catalog files.

    `problems` is the list of one-line messages `<file>: <field>: <reason>` (made one line by
    `one_line` whatever they quote); `str()` joins them with newlines. Messages never hold env
    values (they could be secrets).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: list[str] = [one_line(problem) for problem in problems]
        super().__init__("\n".join(self.problems))


class _TooDeep(ComposerError):
    """YAML nested deeper than MAX_DEPTH (its `problem_mark` is where)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses nesting deeper than MAX_DEPTH (a ComposerError with
    the place, before Python's recursion limit is near)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _TooDeep(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class Catalog:
    """An ordered, read-only set of templates.

    Order: built-ins in :data:`BUILTIN_SLUGS` order (an override keeps its built-in's place),
    then custom templates sorted by name (case-insensitive), then slug.
    """

    def __init__(self, templates: Sequence[Template], sources: dict[str, str] | None = None):
        self._templates: tuple[Template, ...] = tuple(templates)
        self._by_slug: dict[str, Template] = {t.slug: t for t in self._templates}
        if len(self._by_slug) != len(self._templates):
            raise ValueError("two templates share a slug")
        self._sources: dict[str, str] = dict(sources or {})

    def get(self, slug: str) -> Template | None:
        """The template with this slug, or None."""
        return self._by_slug.get(slug)

    def source(self, slug: str) -> str | None:
        """Where a template came from: "builtin" or the YAML file's path; None if unknown."""
        return self._sources.get(slug)

    @property
    def slugs(self) -> list[str]:
        """All slugs, in catalog order."""
        return [t.slug for t in self._templates]

    def __iter__(self) -> Iterator[Template]:
        return iter(self._templates)

    def __len__(self) -> int:
        return len(self._templates)

    def __contains__(self, slug: object) -> bool:
        return slug in self._by_slug

    def __repr__(self) -> str:
        return f"Catalog({self.slugs!r})"


def _field_name(loc: tuple[int | str, ...]) -> str:
    """Pydantic's error location as a field path: ("ports", 0) -> "ports[0]"."""
    name = ""
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "template"


def _reason(kind: str, loc: tuple[int | str, ...], ctx: dict[str, Any], msg: str) -> str:
    """A short reason for one pydantic error (never quoting the input: it may be a secret)."""
    if kind == "too_short" and loc == ("ports",):
        return "must list at least one port"
    if kind == "list_type" and loc == ("ports",):
        return "must be a list of port numbers, e.g. [8000]"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "string_too_short":
        return "must not be empty"
    return _REASONS.get(kind, msg)


def _format_validation_error(label: str, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(err["loc"])
        named = (err.get("ctx") or {}).get("field")  # a model validator names its field
        if not loc and isinstance(named, str):
            loc = (named,)
        field = _field_name(loc)  # an unknown key is reported under its own name
        problems.append(
            f"{label}: {field}: {_reason(err['type'], loc, err.get('ctx') or {}, err['msg'])}"
        )
    return problems


def _parse_documents(label: str, text: str) -> list[tuple[str, dict[str, Any] | str]]:
    """Parse one file's text into `(label, mapping)` pairs, or `(label, problem)` pairs."""
    loader = _BoundedLoader(text)
    try:
        data = loader.get_single_data()
    except RecursionError:  # not reached below MAX_DEPTH; kept so that no traceback escapes
        return [(label, f"yaml: nested deeper than {MAX_DEPTH} levels")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, _TooDeep):
            return [(label, f"yaml: {problem}{where}")]
        return [(label, f"yaml: invalid YAML{where}: {problem}")]
    finally:
        loader.dispose()
    if data is None:
        return [(label, "file: is empty (expected a template mapping or a list of them)")]
    if isinstance(data, dict):
        return [(label, data)]
    if not isinstance(data, list):
        kind = type(data).__name__
        return [(label, f"file: expected a template mapping or a list of them, got {kind}")]
    if not data:
        return [(label, "file: is an empty list")]
    items: list[tuple[str, dict[str, Any] | str]] = []
    for index, item in enumerate(data, start=1):
        item_label = f"{label} (item {index})"
        if isinstance(item, dict):
            items.append((item_label, item))
        else:
            kind = type(item).__name__
            items.append((item_label, f"template: expected a mapping of fields, got {kind}"))
    return items


def _load_text(label: str, text: str) -> tuple[list[Template], list[str]]:
    """Validate every template in one file's text; problems in file order."""
    templates: list[Template] = []
    problems: list[str] = []
    for item_label, item in _parse_documents(label, text):
        if isinstance(item, str):
            problems.append(f"{item_label}: {item}")
            continue
        bad_keys = [k for k in item if not isinstance(k, str)]
        if bad_keys:
            problems.append(f"{item_label}: {bad_keys[0]!r}: keys must be field names")
            continue
        try:
            templates.append(Template.model_validate(item))
        except ValidationError as exc:
            problems.extend(_format_validation_error(item_label, exc))
    return templates, problems


def read_template_file(path: Path) -> str:
    """The text of one template file (UTF-8), read no further than MAX_FILE_BYTES + 1 bytes.

    Raises ValueError ("is N bytes; ...") for a larger file, OSError when it cannot be read
    and UnicodeDecodeError when it is not UTF-8.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        size = max(len(data), path.stat().st_size)
        raise ValueError(
            f"is {size} bytes; a template file may be at most {MAX_FILE_BYTES} "
            f"({MAX_FILE_BYTES // 1024} KB)"
        )
    return data.decode("utf-8")


def _builtin_templates() -> tuple[list[Template], list[str]]:
    folder = resources.files("catalog").joinpath("builtin")
    found: dict[str, Template] = {}
    problems: list[str] = []
    for slug in BUILTIN_SLUGS:
        label = f"builtin/{slug}.yaml"
        try:
            text = folder.joinpath(f"{slug}.yaml").read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(f"{label}: file: cannot be read ({exc.strerror or exc})")
            continue
        templates, file_problems = _load_text(label, text)
        problems.extend(file_problems)
        for template in templates:
            found[template.slug] = template
    ordered = [found[s] for s in BUILTIN_SLUGS if s in found]
    return ordered, problems


def _custom_files(catalog_dir: Path) -> list[Path]:
    files = [
        p
        for p in catalog_dir.iterdir()
        if p.is_file() and p.suffix.lower() in (".yaml", ".yml") and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: p.name)


def load_catalog(catalog_dir: Path | str | None = None) -> Catalog:
    """Load the built-in templates, then every `*.yaml`/`*.yml` file of `catalog_dir`.

    Files are read in sorted name order, not recursively; each holds one template mapping or
    a list of them. A custom template whose slug is a built-in's replaces that built-in
    (override); the same slug twice among custom files is an error ("duplicate slug").
    `catalog_dir` None loads the built-ins only.

    Returns a `Catalog`. Raises `CatalogError` listing every problem of every file (a missing
    folder, unreadable or invalid YAML, a missing/unknown/bad field, a duplicate slug).
    """
    builtins, problems = _builtin_templates()
    sources = {t.slug: BUILTIN_SOURCE for t in builtins}
    if catalog_dir is None:
        if problems:
            raise CatalogError(problems)
        return Catalog(builtins, sources)

    folder = Path(catalog_dir)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "folder not found"
        raise CatalogError([*problems, f"{folder}: CATALOG_DIR: {what}"])

    custom: dict[str, Template] = {}
    for path in _custom_files(folder):
        label = str(path)
        try:
            text = read_template_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{label}: file: cannot be read ({exc})")
            continue
        except ValueError as exc:
            problems.append(f"{label}: file: {exc}")
            continue
        templates, file_problems = _load_text(label, text)
        problems.extend(file_problems)
        for template in templates:
            if template.slug in custom:
                problems.append(
                    f'{label}: slug: duplicate slug "{template.slug}" '
                    f"(also in {sources[template.slug]})"
                )
                continue
            custom[template.slug] = template
            sources[template.slug] = label

    if problems:
        raise CatalogError(problems)

    ordered = [custom.pop(t.slug, t) for t in builtins]
    ordered += sorted(custom.values(), key=lambda t: (t.name.casefold(), t.slug))
    return Catalog(ordered, sources)


def validate_dir(path: Path | str) -> list[str]:
    """Check a folder of template files as `load_catalog` would; return its problems.

    An empty list means the folder is fine (together with the built-ins).
    """
    try:
        load_catalog(Path(path))
    except CatalogError as exc:
        return exc.problems
    return []
