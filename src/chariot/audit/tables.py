"""Audit every selected table in every selected sink: one stream at a time, sides in parallel.

For a stream, the source's key space is split once into segments; the source checksums
each segment once per canonical form (shared by the sinks that use the same form) while
each sink checksums the same segments, all concurrently (different servers). Then each
sink's differing segments are bisected in that sink's own thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chariot.audit.canonical import Canonical
from chariot.audit.compare import Comparison, Findings
from chariot.audit.forms import canonical_for, postgres_canonical
from chariot.audit.neo4j import GraphSide
from chariot.audit.postgres import PostgresSide
from chariot.audit.progress import SegmentProgress, source_side
from chariot.audit.report import RowDifference, TableAudit
from chariot.audit.segments import (
    MAX_SEGMENT_ROWS,
    Segment,
    choose_segments,
    key_in_segment,
    segment_rows_for,
    segments_from_boundaries,
)
from chariot.audit.sides import Checksum, Side
from chariot.audit.source import SourceSide
from chariot.batch import Key
from chariot.config import Settings
from chariot.progress import ProgressCallback
from chariot.streams import Stream

log = logging.getLogger(__name__)

AUDITABLE_SINKS = ("postgres", "neo4j")
REJECTS_LIMIT = 1_000_000
# A table the server estimates at this many rows has segments of ``MAX_SEGMENT_ROWS``
# (about 64 segments reach that size at 3.2M rows; an estimate off by a fifth changes
# only how many rows a segment has, never what is compared).
LARGE_TABLE_ROWS = 4_000_000


@dataclass(frozen=True)
class Scope:
    """What to compare and how; the same scope is used again after a repair."""

    streams: tuple[Stream, ...]
    sinks: tuple[str, ...]
    sample: float | None = None
    segment_rows: int | None = None
    examples: int = 10
    seed: int | None = None
    # Every stream of the project, parents first (foreign-key actions reach beyond the scope).
    project_streams: tuple[Stream, ...] = ()


@dataclass
class StreamAudit:
    """One table in one sink: the report row and what the repair needs."""

    result: TableAudit
    findings: Findings
    stream: Stream
    sink: str
    canonical: Canonical
    segments: list[Segment] = field(default_factory=list)


@dataclass(frozen=True)
class KeySpace:
    """A stream's segments, and the source's rows: all of them, or (sampled) the rows the
    sync's reject rules leave out."""

    segments: list[Segment]
    rows: int
    rejected: int | None  # None: ``rows`` less the loadable rows the segments count


class SideFactory:
    """Opens sides; one shared Neo4j driver for the whole audit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._driver: Any = None
        self._lock = threading.Lock()  # sides are opened from several threads at once

    def source(self, canonical: Canonical) -> SourceSide:
        return SourceSide(self.settings, canonical)

    def sink(self, name: str, canonical: Canonical) -> Side:
        if name == "postgres":
            return PostgresSide(self.settings, canonical)
        with self._lock:
            if self._driver is None:
                from chariot.connections import neo4j_driver

                self._driver = neo4j_driver(self.settings.neo4j)
        return GraphSide(self.settings, canonical, driver=self._driver)

    def close(self) -> None:
        if self._driver is not None:
            self._driver.close()
            self._driver = None


def audit_tables(
    settings: Settings, scope: Scope, progress: ProgressCallback | None = None
) -> list[StreamAudit]:
    factory = SideFactory(settings)
    try:
        audits: list[StreamAudit] = []
        for stream in scope.streams:
            audits.extend(audit_stream(settings, factory, stream, scope, progress))
        return audits
    finally:
        factory.close()


def audit_stream(
    settings: Settings,
    factory: SideFactory,
    stream: Stream,
    scope: Scope,
    progress: ProgressCallback | None = None,
) -> list[StreamAudit]:
    started = time.perf_counter()
    space = _key_space(factory, stream, scope)
    segments = space.segments
    chosen = [segments[i] for i in choose_segments(segments, scope.sample, seed=scope.seed)]
    canonicals = compared_forms(stream, scope.sinks)
    sinks = tuple(canonicals)
    shared = _shared_source_forms(canonicals)
    tracker = SegmentProgress(progress, stream.name, {s: shared[s] for s in sinks}, len(chosen))
    # Every checksum task is submitted before the comparisons that wait for them, and the
    # pool has a thread per task, so a waiting comparison never starves a checksum.
    with ThreadPoolExecutor(max_workers=2 + 2 * len(sinks)) as pool:
        source_sums = {
            id(c): pool.submit(
                _checksums,
                partial(factory.source, c),
                chosen,
                partial(tracker.checksummed_one, source_side(c)),
                settings.run.audit_readers,
            )
            for c in {id(c): c for c in shared.values()}.values()
        }
        sink_sums = {
            sink: pool.submit(
                _checksums,
                partial(factory.sink, sink, canonicals[sink]),
                chosen,
                partial(tracker.checksummed_one, sink),
                settings.run.audit_readers,
            )
            for sink in sinks
        }
        audits = {
            sink: pool.submit(
                _compare_sink,
                factory,
                stream,
                sink,
                canonicals[sink],
                chosen,
                source_sums[id(shared[sink])],
                sink_sums[sink],
                scope,
            )
            for sink in sinks
        }
        results = []
        for sink in sinks:
            results.append(audits[sink].result())
            tracker.compared(sink)
    seconds = time.perf_counter() - started
    for audit in results:
        audit.result.rejected_known += _rejected(space, audit.result.source_rows)
        audit.segments = segments
        audit.result.segments = len(segments)
        audit.result.sampled = scope.sample is not None and scope.sample < 1
        audit.result.seconds = round(seconds, 3)
    return results


def compared_forms(stream: Stream, sinks: tuple[str, ...]) -> dict[str, Canonical]:
    """Each selected sink's canonical form of the stream (a sink it has no place in is
    left out: ``not_compared`` names those)."""
    found = {sink: canonical_for(stream, sink) for sink in sinks}
    return {sink: form for sink, form in found.items() if form is not None}


def not_compared(scope: Scope) -> list[str]:
    """Notes for the tables a selected sink does not hold (the graph model leaves them out)."""
    return [
        f"{stream.name} is not compared in {sink}: the project's [graph] does not use it"
        for stream in scope.streams
        for sink in scope.sinks
        if canonical_for(stream, sink) is None
    ]


def _shared_source_forms(canonicals: dict[str, Canonical]) -> dict[str, Canonical]:
    """Sinks whose forms the source computes alike in SQL share one source checksum pass."""
    by_text: dict[tuple[object, ...], Canonical] = {}
    shared: dict[str, Canonical] = {}
    for sink, form in canonicals.items():
        if not form.source_in_sql:
            shared[sink] = form
            continue
        signature = (form.flavor, tuple((f.kind, f.mysql, f.scale) for f in form.fields))
        shared[sink] = by_text.setdefault(signature, form)
    return shared


def _key_space(factory: SideFactory, stream: Stream, scope: Scope) -> KeySpace:
    """The segments. A full audit counts the rejected rows from its checksums (the source's
    count the loadable rows): evaluating the reject rules on every row once more cost as
    much as a third of the source's work. A large table keyed by its primary key is not
    counted first either: its segments have the most rows anyway, and the walk over its
    keys counts it (one scan of the table fewer: ~1 s per 5M rows here)."""
    source = factory.source(postgres_canonical(stream))
    try:
        source.check_exists()
        if scope.sample is not None:
            counts = source.count_rows()
            rows = segment_rows_for(counts.loadable, scope.segment_rows)
            boundaries = source.boundaries(rows)
            return KeySpace(segments_from_boundaries(boundaries), counts.loadable, counts.rejected)
        if source.estimated_rows() >= LARGE_TABLE_ROWS and source.key_is_primary():
            rows = scope.segment_rows or MAX_SEGMENT_ROWS
            boundaries = source.boundaries(rows)
            last = boundaries[-1] if boundaries else None
            total = len(boundaries) * rows + source.count_after(last)
        else:
            total = source.count_all()
            rows = segment_rows_for(total, scope.segment_rows)
            boundaries = source.boundaries(rows)
        return KeySpace(segments_from_boundaries(boundaries), total, None)
    finally:
        source.close()


def _rejected(space: KeySpace, loadable: int) -> int:
    if space.rejected is not None:
        return space.rejected
    return max(0, space.rows - loadable)  # rows written meanwhile can make it a guess


def _checksums(
    open_side: Callable[[], Side],
    segments: list[Segment],
    checksummed: Callable[[], None],
    readers: int = 1,
) -> list[Checksum]:
    """The checksum of every segment, in order; ``readers`` sides (connections) take the
    segments in turn, so a server with idle cores hashes several segments at once."""
    readers = max(1, min(readers, len(segments)))
    if readers == 1:
        return _checksums_of(open_side, segments, checksummed)
    with ThreadPoolExecutor(max_workers=readers) as pool:
        shares = [
            pool.submit(_checksums_of, open_side, segments[first::readers], checksummed)
            for first in range(readers)
        ]
        parts = [share.result() for share in shares]
    return [parts[i % readers][i // readers] for i in range(len(segments))]


def _checksums_of(
    open_side: Callable[[], Side], segments: list[Segment], checksummed: Callable[[], None]
) -> list[Checksum]:
    side = open_side()
    try:
        sums = []
        for segment in segments:
            sums.append(side.checksum(segment))
            checksummed()
        return sums
    finally:
        side.close()


def _compare_sink(
    factory: SideFactory,
    stream: Stream,
    sink_name: str,
    canonical: Canonical,
    segments: list[Segment],
    source_sums: Future[list[Checksum]],
    sink_sums: Future[list[Checksum]],
    scope: Scope,
) -> StreamAudit:
    source, sink = factory.source(canonical), factory.sink(sink_name, canonical)
    try:
        findings = Findings()
        sources, sinks = source_sums.result(), sink_sums.result()
        comparison = Comparison(source, sink, additive=not canonical.ordered)
        try:
            for segment, at_source, at_sink in zip(segments, sources, sinks, strict=True):
                comparison.segment(segment, at_source, at_sink, findings)
        finally:
            comparison.close()
        findings.reconcile()
        if findings.missing or findings.missing_ranges:
            _set_aside_rejects(factory.settings, stream, sink_name, findings, source)
        result = TableAudit(
            table=stream.name,
            sink=sink_name,
            source_rows=sum(c.count for c in sources),
            sink_rows=sum(c.count for c in sinks),
            rows_compared=sum(c.count for c in sources),
            missing=findings.missing_count,
            extra=findings.extra_count,
            differing=len(findings.differing),
            rejected_known=len(findings.rejected_known),
            segments=len(segments),
            segments_compared=len(segments),
            segments_differing=findings.segments_differing,
            seconds=0.0,
            examples=examples(source, sink, findings, scope.examples),
        )
        log.info(
            "audited %s in %s",
            stream.name,
            sink_name,
            extra={
                "table": stream.name,
                "sink": sink_name,
                "missing": result.missing,
                "extra": result.extra,
                "differing": result.differing,
            },
        )
        return StreamAudit(result, findings, stream, sink_name, canonical)
    finally:
        source.close()
        sink.close()


def _set_aside_rejects(
    settings: Settings, stream: Stream, sink_name: str, findings: Findings, source: Side
) -> None:
    """Rows this sink recorded as rejected are expected to be missing: count them apart.
    (Rows the reader's rules reject never reach the comparison: the source leaves them out.)"""
    from chariot.plugins import load_sink

    with load_sink(sink_name)(settings) as sink:
        _, rejects = sink.recorded_rejects(limit=REJECTS_LIMIT)
    keys = {tuple(reject.key) for reject in rejects if reject.table == stream.name}
    for key in keys & findings.missing.keys():
        findings.missing.pop(key)
        findings.rejected_known.add(key)
    in_ranges = [
        key
        for key in keys - findings.rejected_known
        if any(key_in_segment(key, segment) for segment, _ in findings.missing_ranges)
    ]
    # Only a row the source side holds is counted in a missing range.
    for key in source.rows(in_ranges) if in_ranges else ():
        findings.rejected_known.add(key)
        findings.rejected_in_ranges += 1


def examples(source: Side, sink: Side, findings: Findings, limit: int) -> list[RowDifference]:
    """The first ``limit`` keys of each kind, with their values on each side."""
    if limit <= 0:
        return []
    missing = _first(
        findings.missing, findings.missing_ranges, source, limit, findings.rejected_known
    )
    extra = _first(findings.extra, findings.extra_ranges, sink, limit, set())
    differing = list(findings.differing)[:limit]
    at_source = source.rows(missing + differing)
    at_sink = sink.rows(extra + differing)
    found = [RowDifference(kind="missing", key=list(k), source=at_source.get(k)) for k in missing]
    found += [RowDifference(kind="extra", key=list(k), sink=at_sink.get(k)) for k in extra]
    for key in differing:
        before, after = at_source.get(key), at_sink.get(key)
        changed = _changed(before, after)
        if findings.differing[key]:
            changed.append("(several rows with this key in the sink)")
        found.append(
            RowDifference(
                kind="differing", key=list(key), source=before, sink=after, changed=changed
            )
        )
    return found


def _first(
    keys: dict[Key, Any], ranges: list[tuple[Segment, int]], side: Side, limit: int, skip: set[Key]
) -> list[Key]:
    chosen = list(keys)[:limit]
    for segment, _ in ranges:
        if len(chosen) >= limit:
            break
        in_range = side.keys_in(segment, limit=limit - len(chosen) + len(skip))
        chosen.extend(k for k in in_range if k not in skip)
    return chosen[:limit]


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None or after is None:
        return []
    return [name for name in before if before.get(name) != after.get(name)]
