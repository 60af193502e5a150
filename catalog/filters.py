"""The `/templates [filter]` text filter (pure functions, no Slack).

Examples of filter text:
    ""               every template
    "image"          templates whose name, slug or category contains "image"
    "diffusion 12gb" ... that also run on a 12 GB GPU ("12 GB", "12GB", "vram:12", "vram 12")

Sub-commands (`help`, `mine`, `running`, …) are not filters: the bot's `/templates` listener
owns their table and looks a whole-text word up there before parsing a filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from catalog.models import Template

# "12gb", "12 gb", "12GB", "vram:12", "vram=12", "vram 12", "vram:12gb".
_VRAM_RE = re.compile(
    r"(?:\bvram\s*[:=]?\s*(?P<a>\d{1,4})(?:\s*gb)?\b)|(?:\b(?P<b>\d{1,4})\s*gb\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TemplateQuery:
    """A parsed filter: `words` (lowercase) that must all match, an optional VRAM size.

    `vram_gb`: GPU memory in GB (per GPU, nominal size).
    """

    words: list[str] = field(default_factory=list)
    vram_gb: int | None = None


@dataclass(frozen=True)
class TemplateMatch:
    """A template that passed the filter.

    `meets_recommended`: None when the query gave no VRAM size, else whether that size
    reaches the template's recommended VRAM.
    """

    template: Template
    meets_recommended: bool | None = None


def parse_query(text: str) -> TemplateQuery:
    """Parse the text typed after `/templates` into a `TemplateQuery`.

    Case-insensitive. The first VRAM mention wins ("12gb", "12 GB", "vram:12", "vram 12").
    Never raises.
    """
    cleaned = " ".join(text.strip().lower().split())
    vram_gb: int | None = None
    match = _VRAM_RE.search(cleaned)
    if match is not None:
        vram_gb = int(match.group("a") or match.group("b"))
        cleaned = _VRAM_RE.sub(" ", cleaned)
    words = [w for w in re.split(r"[\s,]+", cleaned) if w]
    return TemplateQuery(words=words, vram_gb=vram_gb)


def _matches_words(template: Template, words: Iterable[str]) -> bool:
    haystacks = (template.name.lower(), template.slug, template.category.lower())
    return all(any(word in h for h in haystacks) for word in words)


def filter_templates(catalog: Iterable[Template], query: TemplateQuery) -> list[TemplateMatch]:
    """Templates of `catalog` (in its order) that match `query`.

    Every word must be a case-insensitive substring of the name, slug or category. With
    `query.vram_gb`, only templates whose `min_vram_gb` <= vram_gb are kept, and
    `meets_recommended` says whether vram_gb >= `recommended_vram_gb`.
    """
    matches = []
    for template in catalog:
        if not _matches_words(template, query.words):
            continue
        if query.vram_gb is None:
            matches.append(TemplateMatch(template, None))
        elif template.runs_on(query.vram_gb):
            matches.append(TemplateMatch(template, template.meets_recommended(query.vram_gb)))
    return matches
