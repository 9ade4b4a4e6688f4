"""Which aggregation groups a change-capture sync touched (recomputed by the next
``chariot aggregate``). Placeholder for the contract: filled in by the incremental
aggregation work."""

from __future__ import annotations

from typing import Any

from chariot.batch import Key
from chariot.streams import Stream


def record_touched(cursor: Any, schema: str, stream: Stream, keys: list[Key]) -> None:
    """Record, inside the caller's PostgreSQL transaction, the groups of every aggregation
    that the sink's current rows with these source keys of ``stream`` belong to. The
    PostgreSQL sink calls it before it deletes or upserts them, and again after."""


def invalidate_incremental(cursor: Any, schema: str, stream: Stream) -> None:
    """Record, inside the caller's PostgreSQL transaction, that ``stream``'s rows changed
    without their groups being recorded (a key-based batch, a full refresh, a repair): the
    next ``chariot aggregate`` recomputes every group of the aggregations that read it."""
