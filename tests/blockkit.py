"""Reading what the bot sent: the text and buttons of Block Kit blocks (shared by the tests)."""

from __future__ import annotations

from typing import Any


def texts(blocks: list[dict[str, Any]] | None) -> str:
    """All the text of a message's or view's blocks: sections, fields, context, buttons."""
    parts: list[str] = []
    for block in blocks or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for field in block.get("fields") or []:
            parts.append(field["text"])
        for element in block.get("elements") or []:
            if isinstance(element.get("text"), dict):
                parts.append(element["text"]["text"])
            elif isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def buttons(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every button in the blocks' actions blocks, in order."""
    return [
        element
        for block in blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "button"
    ]
