"""Example Python transforms: each receives one source value (None for NULL) and returns
the value the sinks store, of the type the project's ``to`` names."""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+")


def slugify(value: str | None) -> str | None:
    """'Toy Story (1995)' -> 'toy-story-1995' (to = "text")."""
    if value is None:
        return None
    return "-".join(WORD.findall(value.lower()))


def words(value: str | None) -> list[str]:
    """'Toy Story' -> ['toy', 'story']; NULL -> no words (to = "text[]")."""
    return WORD.findall(value.lower()) if value else []


def letters(value: str | None) -> int | None:
    """How many letters the text has (to = "integer")."""
    if value is None:
        return None
    return sum(character.isalpha() for character in value)
