"""Test helper: the text a per-character labelling picks out of a completion (roles and decision marks)."""

from __future__ import annotations


def text_by_role(completion: str, roles: list[str]) -> dict[str, str]:
    """``{role: the characters with that role, concatenated}``."""
    return {r: "".join(ch for ch, x in zip(completion, roles, strict=True) if x == r) for r in set(roles)}


def marked_text(completion: str, marks: list[bool]) -> str:
    """The marked characters, concatenated."""
    return "".join(ch for ch, m in zip(completion, marks, strict=True) if m)
