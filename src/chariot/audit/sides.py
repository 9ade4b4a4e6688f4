"""What the comparison needs from each database: checksums, digests and rows per segment.

A ``Side`` is one database's view of one stream. The comparison (``compare.py``) only talks
to this interface, so the source, PostgreSQL and Neo4j are interchangeable in it. Each side
owns one connection and is used by one thread at a time.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chariot.audit.canonical import Canonical, digest, display_value, ordered_digest, row_text
from chariot.audit.segments import Segment
from chariot.batch import Key

Digests = list[tuple[Key, int]]
Row = dict[str, Any]  # field name -> display value

KEYS_PER_QUERY = 500


@dataclass(frozen=True)
class Checksum:
    count: int
    # The exact sum of the rows' 60-bit digests; for an ``ordered`` form, the MD5 of the
    # rows' texts in key order (not additive: ``Comparison`` reads both halves then).
    total: int

    def __sub__(self, other: Checksum) -> Checksum:
        return Checksum(self.count - other.count, self.total - other.total)


class Side(ABC):
    """One database's view of a stream, in canonical form."""

    label: str = "side"
    # SQL sides checksum any sub-range cheaply; a side that must ship rows to hash them
    # (Neo4j) is compared row by row as soon as a segment differs.
    bisectable: bool = True

    def __init__(self, canonical: Canonical) -> None:
        self.canonical = canonical

    @abstractmethod
    def checksum(self, segment: Segment) -> Checksum: ...

    @abstractmethod
    def digests(self, segment: Segment) -> Digests:
        """Every row's (key, digest) in the segment, in no particular order."""

    @abstractmethod
    def split_key(self, segment: Segment, offset: int) -> Key | None:
        """The key of the row ``offset`` rows into the segment (in this side's key order)."""

    @abstractmethod
    def keys_in(self, segment: Segment, limit: int | None = None) -> list[Key]:
        """Keys in the segment, in key order."""

    @abstractmethod
    def fetch_values(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        """Canonical field values (``canonical.fields`` order) of the rows with these keys."""

    def rows(self, keys: Sequence[Key]) -> dict[Key, Row]:
        """Display rows by key, for the report."""
        found: dict[Key, Row] = {}
        for start in range(0, len(keys), KEYS_PER_QUERY):
            for values in self.fetch_values(keys[start : start + KEYS_PER_QUERY]):
                found[self.key_of(values)] = {
                    f.name: display_value(f, v)
                    for f, v in zip(self.canonical.fields, values, strict=True)
                }
        return found

    def key_of(self, values: Sequence[Any]) -> Key:
        names = self.canonical.field_names
        return tuple(values[names.index(name)] for name in self.canonical.key)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""


class HashingSide(Side):
    """A side that ships canonical values and hashes them in Python."""

    bisectable = False

    @abstractmethod
    def segment_values(self, segment: Segment) -> Iterable[Sequence[Any]]:
        """Canonical field values of every row in the segment."""

    def digests(self, segment: Segment) -> Digests:
        canonical = self.canonical
        return [
            (self.key_of(values), digest(row_text(canonical, values)))
            for values in self.segment_values(segment)
        ]

    def checksum(self, segment: Segment) -> Checksum:
        if self.canonical.ordered:
            return self._ordered_checksum(segment)
        found = self.digests(segment)
        return Checksum(len(found), sum(value for _, value in found))

    def _ordered_checksum(self, segment: Segment) -> Checksum:
        canonical = self.canonical
        rows = [(self.key_of(values), values) for values in self.segment_values(segment)]
        # Keys Python cannot order leave the rows as read: the segment is then compared row
        # by row.
        with contextlib.suppress(TypeError):
            rows.sort(key=lambda row: row[0])
        texts = (row_text(canonical, values) for _, values in rows)
        return Checksum(len(rows), ordered_digest(texts))
