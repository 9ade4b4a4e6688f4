"""The documented MovieLens transforms, shared by every sink.

One place decides what a source value becomes in a sink, so PostgreSQL and Neo4j can never
disagree:

* ``genres``: ``"A|B"`` -> ``["A", "B"]``; ``"(no genres listed)"``, ``""`` and NULL -> ``[]``.
* ``year``: the four digits of a trailing ``(YYYY)`` in the title (regex
  ``\\((\\d{4})\\)\\s*$`` with ASCII digits and ASCII whitespace), else NULL.
* ``title``: stored exactly as in the source (trailing spaces kept).
* ``imdbId``: a string, leading zeros kept; ``tmdbId``: NULL stays NULL.
* ``rating``: numeric(2,1) in PostgreSQL, a float in Neo4j.

The Python functions are the reference; ``postgres_*_sql`` are the same rules as SQL, so
the PostgreSQL sink transforms set-wise (a test checks that both agree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

NO_GENRES = "(no genres listed)"
GENRE_SEPARATOR = "|"
# The documented ``\((\d{4})\)\s*$`` with explicit ASCII classes: PostgreSQL's \d and \s
# follow the database locale (\s matched U+2003 under C.UTF-8) and Python's follow Unicode,
# so spelling the classes out is the only way both engines agree on every title.
YEAR_PATTERN = r"\(([0-9]{4})\)[ \t\n\r\f\v]*$"

_YEAR = re.compile(YEAR_PATTERN)


def split_genres(genres: str | None) -> list[str]:
    """``"Action|Comedy"`` -> ``["Action", "Comedy"]``; no genres -> ``[]``."""
    if genres is None or genres == "" or genres == NO_GENRES:
        return []
    return genres.split(GENRE_SEPARATOR)


def title_year(title: str | None) -> int | None:
    """The year of ``"Heat (1995)"`` (1995); None when the title has no trailing year."""
    if title is None:
        return None
    match = _YEAR.search(title)
    return int(match.group(1)) if match else None


def rating_to_float(rating: Decimal | float | None) -> float | None:
    """Ratings are exact halves, so the float is exact too (3.5 -> 3.5)."""
    return None if rating is None else float(rating)


def genre_names(all_genres: Iterable[str | None]) -> set[str]:
    """Every distinct genre name used by these source ``genres`` values."""
    return {name for genres in all_genres for name in split_genres(genres)}


# The same rules as PostgreSQL expressions over a quoted column reference.
# string_to_array('', '|') is '{}' already, so only NULL and the marker need a case.
def postgres_genres_sql(column: str) -> str:
    return (
        f"CASE WHEN {column} IS NULL OR {column} = '{NO_GENRES}' THEN '{{}}'::text[]"
        f" ELSE string_to_array({column}, '{GENRE_SEPARATOR}') END"
    )


def postgres_year_sql(column: str) -> str:
    return f"(substring({column} from '{YEAR_PATTERN}'))::integer"
