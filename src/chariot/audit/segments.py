"""Key-space segments and the range predicates that select them in every database.

A segment is the half-open key range ``(lo, hi]``; ``None`` is minus or plus infinity, so
the segments taken from the source cover the whole key space and every sink row, even one
the source never had, falls into exactly one of them. Boundaries are source keys taken in
the source's own order; the same bounds are applied to each side with the tuple comparison
expanded (``a > ? OR (a = ? AND b > ?)``), which MariaDB and MySQL turn into a primary-key
range (MariaDB does not for the row-constructor form).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chariot.batch import Key

# A placeholder factory: records the value, returns the text that stands for it.
Param = Callable[[Any], str]


@dataclass(frozen=True)
class Segment:
    lo: Key | None  # exclusive; None = from the first key
    hi: Key | None  # inclusive; None = to the last key

    def split(self, middle: Key) -> tuple[Segment, Segment]:
        return Segment(self.lo, middle), Segment(middle, self.hi)


def segments_from_boundaries(boundaries: Sequence[Key]) -> list[Segment]:
    """``[b1, b2]`` -> ``(-inf, b1], (b1, b2], (b2, +inf)``."""
    edges: list[Key | None] = [None, *boundaries, None]
    return [Segment(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]


def range_condition(columns: Sequence[str], segment: Segment, param: Param) -> str:
    """SQL/Cypher text selecting ``lo < key <= hi`` over ``columns`` (key order)."""
    parts: list[str] = []
    if segment.lo is not None:
        parts.append(f"{columns[0]} >= {param(segment.lo[0])}")  # an index range start
        parts.append(_compare(columns, segment.lo, ">", ">", param))
    if segment.hi is not None:
        parts.append(f"{columns[0]} <= {param(segment.hi[0])}")
        parts.append(_compare(columns, segment.hi, "<", "<=", param))
    return " AND ".join(parts) if parts else "1 = 1"


def row_range_condition(columns: Sequence[str], segment: Segment, param: Param) -> str:
    """The same range as ``range_condition`` as row comparisons, ``(a, b) > (?, ?)``, which
    PostgreSQL turns into one B-tree range over the whole key: the rows come in key order
    (no sort) and the planner sees the range's real size. MariaDB/MySQL need the expanded
    form (they do not make a range of a row comparison)."""
    if len(columns) == 1:
        return range_condition(columns, segment, param)
    row = f"({', '.join(columns)})"
    parts: list[str] = []
    for bound, operator in ((segment.lo, ">"), (segment.hi, "<=")):
        if bound is None:
            continue
        if len(bound) != len(columns):
            raise ValueError(f"key {bound!r} does not match columns {list(columns)}")
        parts.append(f"{row} {operator} ({', '.join(param(value) for value in bound)})")
    return " AND ".join(parts) if parts else "1 = 1"


def _compare(columns: Sequence[str], key: Key, strict: str, last: str, param: Param) -> str:
    """``(c1 > v1 OR (c1 = v1 AND (c2 >= v2)))``, built left to right so positional
    placeholders are recorded in the order they appear."""
    if len(columns) != len(key):
        raise ValueError(f"key {key!r} does not match columns {list(columns)}")
    if len(columns) == 1:
        return f"({columns[0]} {last} {param(key[0])})"
    head = f"{columns[0]} {strict} {param(key[0])} OR ({columns[0]} = {param(key[0])} AND "
    return f"({head}{_compare(columns[1:], key[1:], strict, last, param)}))"


def keys_condition(columns: Sequence[str], keys: Sequence[Key], param: Param) -> str:
    """``(a = ? AND b = ?) OR ...``: index lookups on every engine, unlike row IN lists."""
    if not keys:
        return "1 = 0"
    return " OR ".join(
        "(" + " AND ".join(f"{c} = {param(v)}" for c, v in zip(columns, key, strict=True)) + ")"
        for key in keys
    )


def positional(placeholder: str = "%s") -> tuple[list[Any], Param]:
    """Parameters for drivers with positional placeholders (pymysql, psycopg)."""
    values: list[Any] = []

    def param(value: Any) -> str:
        values.append(value)
        return placeholder

    return values, param


def named(prefix: str = "p") -> tuple[dict[str, Any], Param]:
    """Parameters for Cypher (``$p0``, ``$p1`` ...)."""
    values: dict[str, Any] = {}

    def param(value: Any) -> str:
        name = f"{prefix}{len(values)}"
        values[name] = value
        return f"${name}"

    return values, param


def choose_segments(
    segments: Sequence[Segment], fraction: float | None, *, seed: int | None = None
) -> list[int]:
    """Indexes of the segments to compare: all of them, or a random ``fraction`` (at least one)."""
    if fraction is None or fraction >= 1:
        return list(range(len(segments)))
    wanted = max(1, math.ceil(len(segments) * fraction))
    return sorted(random.Random(seed).sample(range(len(segments)), wanted))


MAX_SEGMENT_ROWS = 50_000


def segment_rows_for(total_rows: int, requested: int | None) -> int:
    """Rows per segment: as asked, else about 64 segments, between 2,000 and 50,000 rows."""
    if requested is not None:
        return requested
    return min(MAX_SEGMENT_ROWS, max(2_000, math.ceil(total_rows / 64)))


def key_in_segment(key: Key, segment: Segment) -> bool:
    """Python's view of membership; used only to attribute recorded rejects to a range."""
    try:
        return (segment.lo is None or tuple(key) > tuple(segment.lo)) and (
            segment.hi is None or tuple(key) <= tuple(segment.hi)
        )
    except TypeError:
        return False
