"""The /templates text filter: parsing and matching against the built-in catalog."""

from __future__ import annotations

import pytest

from catalog import TemplateQuery, filter_templates, load_catalog, parse_query

CATALOG = load_catalog()


def slugs(text: str) -> list[str]:
    return [m.template.slug for m in filter_templates(CATALOG, parse_query(text))]


def test_empty_text_lists_everything_in_catalog_order() -> None:
    assert parse_query("   ") == TemplateQuery()
    assert slugs("") == ["jupyter-lab", "stable-diffusion", "comfy-ui", "vllm"]
    matches = filter_templates(CATALOG, parse_query(""))
    assert len(matches) == 4 and all(m.meets_recommended is None for m in matches)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("comfy", ["comfy-ui"]),
        ("COMFY", ["comfy-ui"]),
        ("image", ["stable-diffusion", "comfy-ui"]),  # category
        ("image diffusion", ["stable-diffusion"]),  # every word must match
        ("llm", ["vllm"]),
        ("jupyter-lab", ["jupyter-lab"]),  # slug
        ("webui", ["stable-diffusion"]),  # name
        ("nothing-like-this", []),
    ],
)
def test_words_match_name_slug_or_category(text: str, expected: list[str]) -> None:
    assert slugs(text) == expected


@pytest.mark.parametrize(
    "text", ["12gb", "12 GB", "12GB", "vram:12", "vram 12", "VRAM=12", "vram:12gb"]
)
def test_vram_forms(text: str) -> None:
    query = parse_query(text)
    assert query.vram_gb == 12 and query.words == []


def test_vram_filter_keeps_what_runs_and_marks_recommended() -> None:
    matches = filter_templates(CATALOG, parse_query("12gb"))

    assert {m.template.slug: m.meets_recommended for m in matches} == {
        "jupyter-lab": True,  # 4/8
        "stable-diffusion": True,  # 8/12: exactly the recommended size
        "comfy-ui": True,  # 6/10
    }
    matches = filter_templates(CATALOG, parse_query("image 8gb"))
    assert {m.template.slug: m.meets_recommended for m in matches} == {
        "stable-diffusion": False,
        "comfy-ui": False,
    }
    assert slugs("vllm 16gb") == ["vllm"]
    assert slugs("vllm 15gb") == []


def test_words_and_vram_together() -> None:
    query = parse_query("Diffusion  vram:24")
    assert query.words == ["diffusion"] and query.vram_gb == 24


def test_keyword_inside_longer_text_is_a_word() -> None:
    query = parse_query("running vllm")
    assert query.words == ["running", "vllm"]
    assert slugs("running vllm") == []
