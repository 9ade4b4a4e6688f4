"""Segment checksums, bisection of the segments that differ, and row-level classification.

For each segment both sides return (count, checksum: the sum of 60-bit MD5 digests, or the
MD5 of the rows' texts in key order). Equal: the segment agrees. Different: the segment is
halved at a key from the side with more rows, and the halves are checksummed again, until
a range is small enough (``leaf_rows``) to compare row digests key by key. A range where
one side is empty is kept as a whole range instead of being listed key by key (a
never-synced sink would otherwise put every key in memory).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from chariot.audit.segments import Segment
from chariot.audit.sides import Checksum, Side
from chariot.batch import Key

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_DEPTH = 40  # halving a 50,000-row segment takes 16; a guard against moving data


@dataclass
class Findings:
    """Where one sink differs from the source, for one stream."""

    missing: dict[Key, int] = field(default_factory=dict)  # key -> source digest
    extra: dict[Key, int] = field(default_factory=dict)  # key -> sink digest
    differing: dict[Key, bool] = field(default_factory=dict)  # key -> sink holds duplicates
    missing_ranges: list[tuple[Segment, int]] = field(default_factory=list)
    extra_ranges: list[tuple[Segment, int]] = field(default_factory=list)
    rejected_known: set[Key] = field(default_factory=set)
    rejected_in_ranges: int = 0
    segments_differing: int = 0
    # Differences on keys the source changed after the sink's log position: lag, not
    # differences (``chariot.audit.in_flight``); None until some are set aside.
    flying: Findings | None = None

    @property
    def in_flight(self) -> Findings:
        if self.flying is None:
            self.flying = Findings()
        return self.flying

    @property
    def in_flight_count(self) -> int:
        if self.flying is None:
            return 0
        return self.flying.missing_count + self.flying.extra_count + len(self.flying.differing)

    @property
    def missing_count(self) -> int:
        in_ranges = sum(count for _, count in self.missing_ranges) - self.rejected_in_ranges
        return len(self.missing) + in_ranges

    @property
    def extra_count(self) -> int:
        return len(self.extra) + sum(count for _, count in self.extra_ranges)

    def reconcile(self) -> None:
        """A key found missing in one segment and extra in another (only possible where the
        two databases order some odd text differently) is one row: equal or differing."""
        for key in list(self.missing.keys() & self.extra.keys()):
            if self.missing.pop(key) != self.extra.pop(key):
                self.differing[key] = False


@dataclass
class Comparison:
    """Compares one stream between a source side and a sink side."""

    source: Side
    sink: Side
    leaf_rows: int = 1024
    range_rows: int = 2_000  # one side empty over more rows than this: keep it as a range
    spread_rows: int = 64_000  # differences in both halves of at most this many: read digests
    # Checksums are sums (the upper half's is the rest); False for ordered forms, whose
    # halves are both read.
    additive: bool = True
    # The source side's reads run on this helper thread while the sink's run on the caller's:
    # the two databases work at the same time. Each side is still used by one thread only.
    _helper: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-source")
    )

    def close(self) -> None:
        self._helper.shutdown(wait=True)

    def _both(self, read: Callable[[Side], T]) -> tuple[T, T]:
        at_source = self._helper.submit(read, self.source)
        at_sink = read(self.sink)
        return at_source.result(), at_sink

    def segment(
        self, segment: Segment, source: Checksum, sink: Checksum, findings: Findings
    ) -> None:
        """Record the differences inside a segment whose checksums are ``source``/``sink``."""
        if source == sink:
            return
        findings.segments_differing += 1
        self._descend(segment, source, sink, findings, depth=0)

    def _descend(
        self, segment: Segment, source: Checksum, sink: Checksum, findings: Findings, depth: int
    ) -> None:
        if source == sink:
            return
        if sink.count == 0 and source.count > self.range_rows:
            findings.missing_ranges.append((segment, source.count))
            return
        if source.count == 0 and sink.count > self.range_rows:
            findings.extra_ranges.append((segment, sink.count))
            return
        rows = max(source.count, sink.count)
        # Halving a range whose checksum is not a sum reads both halves: up to
        # ``spread_rows``, reading the rows' digests once costs no more, and far less when
        # the differences are spread (a sink behind the log differs in every segment).
        small = rows <= self.leaf_rows or not self.additive and rows <= self.spread_rows
        if small or not (self.source.bisectable and self.sink.bisectable) or depth >= MAX_DEPTH:
            self._leaf(segment, findings)
            return
        side, count = (
            (self.source, source.count) if source.count >= sink.count else (self.sink, sink.count)
        )
        middle = side.split_key(segment, count // 2 - 1)
        if middle is None:  # the data moved under us; compare what is there now
            self._leaf(segment, findings)
            return
        # Counts and sums are additive: only the lower half is read; the upper half's
        # checksum is the rest, so each level reads half as much as the one above.
        lower, upper = segment.split(middle)
        lower_source, lower_sink = self._both(lambda side: side.checksum(lower))
        if self.additive:
            upper_source, upper_sink = source - lower_source, sink - lower_sink
        else:
            upper_source, upper_sink = self._both(lambda side: side.checksum(upper))
        if (
            lower_source != lower_sink
            and upper_source != upper_sink
            and max(source.count, sink.count) <= self.spread_rows
        ):
            # Both halves differ: the differences are spread, and halving again would read
            # most rows several times over. One digest read per half is cheaper.
            self._leaf(lower, findings)
            self._leaf(upper, findings)
            return
        self._descend(lower, lower_source, lower_sink, findings, depth + 1)
        self._descend(upper, upper_source, upper_sink, findings, depth + 1)

    def _leaf(self, segment: Segment, findings: Findings) -> None:
        source_rows, sink_rows = self._both(lambda side: side.digests(segment))
        source = dict(source_rows)
        copies = Counter(key for key, _ in sink_rows)
        sink = dict(sink_rows)
        for key, value in source.items():
            if key not in sink:
                findings.missing[key] = value
            elif copies[key] > 1 or sink[key] != value:
                findings.differing[key] = copies[key] > 1
        for key, value in sink.items():
            if key not in source:
                findings.extra[key] = value
