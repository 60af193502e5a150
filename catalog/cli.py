"""Command-line helpers for the catalog; `python -m bot catalog list|validate PATH|schema`
calls these.

`python -m catalog list [DIR]`, `python -m catalog validate PATH` and `python -m catalog
schema` work too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from catalog.loader import CatalogError, load_catalog, validate_dir
from catalog.models import Template
from catalog.schema import schema_text

_HEADERS = ("slug", "name", "category", "min VRAM", "rec VRAM", "CUDA", "ports", "disk")


def _row(t: Template) -> tuple[str, ...]:
    return (
        t.slug,
        t.name,
        t.category,
        f"{t.min_vram_gb} GB",
        f"{t.recommended_vram_gb} GB",
        t.cuda_version,
        ",".join(str(p) for p in t.ports),
        f"{t.disk_gb} GB",
    )


def format_table(catalog: Iterable[Template]) -> str:
    """A plain-text table of the templates, one row each, columns padded with spaces.

    Columns: slug, name, category, min VRAM, rec VRAM (GB per GPU), CUDA, ports, disk (GB).
    """
    rows = [_HEADERS, *(_row(t) for t in catalog)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def main_list(catalog_dir: Path | str | None = None) -> int:
    """Print the catalog (built-ins plus `catalog_dir`) as a table; 0 on success.

    On bad files prints the problems to stderr and returns 1.
    """
    try:
        catalog = load_catalog(catalog_dir)
    except CatalogError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(format_table(catalog))
    return 0


def main_validate(path: Path | str) -> int:
    """Check a folder of template files: print "OK: N templates (M from PATH)" and return 0,
    or print one problem a line to stderr and return 1. N counts the whole catalog
    (built-ins included, overrides once); M the templates the folder defines."""
    problems = validate_dir(path)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    catalog = load_catalog(path)
    custom = sum(1 for slug in catalog.slugs if catalog.source(slug) != "builtin")
    print(f"OK: {len(catalog)} templates ({custom} from {path})")
    return 0


def main_schema() -> int:
    """Print the JSON Schema of a template file (`catalog.schema`) to stdout; returns 0."""
    sys.stdout.write(schema_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`list [DIR]`, `validate PATH` or `schema`; returns the exit code (2 on bad usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "list" and len(args) <= 2:
        return main_list(args[1] if len(args) == 2 else None)
    if args and args[0] == "validate" and len(args) == 2:
        return main_validate(args[1])
    if args == ["schema"]:
        return main_schema()
    print("usage: catalog list [DIR] | catalog validate PATH | catalog schema", file=sys.stderr)
    return 2
