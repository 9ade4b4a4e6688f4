"""The unit of work that flows from the source reader to every sink writer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from chariot.streams import Stream

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Reject:
    """A source row a sink cannot take, kept with its key and the reason."""

    table: str
    key: Key
    reason: str


class Batch:
    """Consecutive source rows of one stream, in key order.

    ``rows`` hold the source columns in ``stream.source_columns`` order, as the value
    contract has them (int, str, Decimal, None, ...). ``last_key`` is the key of the last row:
    the high-water mark a sink stores, in the same transaction, once it has written the batch.

    A batch read by the Arrow reader (``chariot.sources.arrow_pages``) also carries its rows as
    ``columns``, a pyarrow Table of the same columns whose Python values are the contract's;
    ``rows`` are then built from it on first use (once, whichever sink thread asks first), so
    a sink that takes the columns directly (PostgreSQL's first load) never pays for them.
    """

    __slots__ = ("stream", "last_key", "rejects", "columns", "_rows", "_lock")

    def __init__(
        self,
        stream: Stream,
        rows: list[tuple[Any, ...]] | None,
        last_key: Key,
        rejects: list[Reject] | None = None,
        *,
        columns: Any = None,
    ) -> None:
        if rows is None and columns is None:
            raise ValueError("a batch needs rows or columns")
        self.stream = stream
        self.last_key = last_key
        self.rejects: list[Reject] = rejects if rejects is not None else []  # every sink refuses
        self.columns = columns
        self._rows = rows
        self._lock = threading.Lock()

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        rows = self._rows
        if rows is None:
            with self._lock:
                if self._rows is None:
                    self._rows = _rows_of(self.columns)
                rows = self._rows
        return rows

    def __len__(self) -> int:
        if self._rows is None:
            return int(self.columns.num_rows)
        return len(self._rows)

    def __repr__(self) -> str:
        return f"Batch({self.stream.name!r}, {len(self)} rows, last_key={self.last_key!r})"


def split_batch(batch: Batch, rows: int) -> list[Batch]:
    """``batch`` as consecutive pieces of at most ``rows`` rows, for a sink whose
    transactions are best smaller than the reader's batch. Each piece's ``last_key`` is the
    key of its own last row: the rows come in key order, so a prefix's last key is a valid
    checkpoint (everything up to it is in that piece or an earlier one). The last piece
    keeps the batch's ``last_key`` (which may be a reject's, after the last row) and carries
    every reject, so a reject is recorded under a checkpoint that covers its key.

    Only a batch whose key values are all integers is split: a key the reader converted
    (a TIMESTAMP, a SET) might not be written back as the reader would resume from it."""
    count = len(batch)
    if count <= rows:
        return [batch]
    positions = batch.stream.key_positions
    pieces: list[Batch] = []
    for start in range(0, count, rows):
        end = min(start + rows, count)
        final = end == count
        if batch.columns is not None:
            columns = batch.columns.slice(start, end - start)
            part: list[tuple[Any, ...]] | None = None
            last = tuple(columns.column(p)[end - start - 1].as_py() for p in positions)
        else:
            columns = None
            part = batch.rows[start:end]
            last = tuple(part[-1][p] for p in positions)
        if not all(type(value) is int for value in last):
            return [batch]
        pieces.append(
            Batch(
                batch.stream,
                part,
                batch.last_key if final else last,
                batch.rejects if final else [],
                columns=columns,
            )
        )
    return pieces


def _rows_of(columns: Any) -> list[tuple[Any, ...]]:
    """An Arrow table's rows as tuples: one C-level conversion per column, then a transpose."""
    return list(zip(*(column.to_pylist() for column in columns.columns), strict=True))


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[Reject] = field(default_factory=list)
