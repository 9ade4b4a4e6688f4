"""The unit of work that flows from the source reader to every sink writer."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Batch:
    """Consecutive source rows of one stream, in key order.

    ``rows`` hold the source columns in ``stream.source_columns`` order, as the source
    driver returned them (int, str, Decimal, None). ``last_key`` is the key of the last row:
    the high-water mark a sink stores, in the same transaction, once it has written the batch.
    """

    stream: Stream
    rows: list[tuple[Any, ...]]
    last_key: Key
    rejects: list[Reject] = field(default_factory=list)  # rows every sink must refuse

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[Reject] = field(default_factory=list)
