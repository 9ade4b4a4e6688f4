"""Where to cut an integer group key into partitions, from (key, row count) pairs.

The pairs are either every key with its exact count, or the keys of a sample of the table
with their sampled counts, each standing for ``scale`` rows. Either way the cuts only
balance the work: the ranges always tile the whole key space (unbounded at both ends), so
every group is in exactly one partition and the results are exact whatever the sample.
A large table is sampled (``TABLESAMPLE SYSTEM``: a few percent of its pages) because
counting every key costs a scan and a grouping of the whole table for every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SAMPLE_ABOVE_ROWS = 400_000  # below this, counting every key is cheap (well under a second)
SAMPLE_ROWS = 100_000  # rows a sample aims at (pages of a clustered key stay many per cut)
SAMPLE_MIN_PERCENT = 2.0  # a very large table still gets enough pages for its many cuts


@dataclass(frozen=True)
class KeyRange:
    key_after: int | None  # exclusive; None = unbounded
    key_through: int | None  # inclusive; None = unbounded
    rows: int  # rows planned (estimated when sampled)


def sample_percent(estimated_rows: float | None, sample_above: int = SAMPLE_ABOVE_ROWS) -> float:
    """The share of the table's pages to read (100: count every key exactly).

    ``estimated_rows`` None (never analysed) or small: exact."""
    if estimated_rows is None or estimated_rows < sample_above:
        return 100.0
    percent = max(SAMPLE_MIN_PERCENT, 100.0 * SAMPLE_ROWS / estimated_rows)
    return min(100.0, round(percent, 4))


def cut_ranges(
    keys: Sequence[int], counts: Sequence[int], partition_rows: int, scale: float = 1.0
) -> list[KeyRange]:
    """Consecutive key ranges of ~``partition_rows`` rows; ``keys`` ascending and distinct.

    A key goes to bucket ``rows before it // partition_rows`` (as if counted exactly), so a
    cut never splits a key, a key heavier than ``partition_rows`` ends its range, and every
    range but the last holds ``partition_rows`` give or take one key's rows.
    """
    if partition_rows <= 0:
        raise ValueError("partition_rows must be positive")
    buckets: list[tuple[int, float]] = []  # (last key, rows) per bucket, in key order
    current, before = -1, 0.0
    for key, count in zip(keys, counts, strict=True):
        rows = count * scale
        bucket = int(before // partition_rows)
        if buckets and bucket == current:
            buckets[-1] = (key, buckets[-1][1] + rows)
        else:
            buckets.append((key, rows))
            current = bucket
        before += rows
    if not buckets:  # nothing to cut: one unbounded range still covers the key space
        return [KeyRange(None, None, 0)]
    ranges, after = [], None
    for index, (last_key, rows) in enumerate(buckets):
        through = None if index == len(buckets) - 1 else last_key
        ranges.append(KeyRange(after, through, round(rows)))
        after = last_key
    return ranges
