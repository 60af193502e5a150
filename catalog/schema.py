"""The JSON Schema of a template file, for editors that validate YAML as people type.

``python -m bot catalog schema > gpu-template.schema.json`` writes it; the YAML language server
(VS Code's YAML extension, and editors built on it) then checks a file that starts with

    # yaml-language-server: $schema=./gpu-template.schema.json

The schema is pydantic's ``model_json_schema`` of :class:`catalog.models.Template` (every
field with its title, description, bounds and patterns), wrapped to say what a file holds: one
template mapping or a non-empty list of them. It cannot say everything validation checks
(recommended ≥ minimum VRAM, health_port among ports, the env total): ``catalog validate``
remains the judge.
"""

from __future__ import annotations

import json
from typing import Any

from catalog.models import Template

#: The JSON Schema dialect written (pydantic generates 2020-12).
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def template_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a template file, as a dict.

    Shape: ``{"$schema", "title", "description", "anyOf": [template, [template, …]],
    "$defs": {"Template": …}}``. Pure; raises nothing.
    """
    template = Template.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs = template.pop("$defs", {})
    defs["Template"] = template
    ref = {"$ref": "#/$defs/Template"}
    return {
        "$schema": DIALECT,
        "title": "GPU template file",
        "description": (
            "A template file of the GPU template bot (CATALOG_DIR): one template or a list of "
            "them. `python -m bot catalog validate DIR` checks a folder as the bot will."
        ),
        "anyOf": [ref, {"type": "array", "minItems": 1, "items": ref}],
        "$defs": defs,
    }


def schema_text() -> str:
    """:func:`template_json_schema` as indented JSON text, ending with a newline."""
    return json.dumps(template_json_schema(), indent=2, ensure_ascii=False) + "\n"
