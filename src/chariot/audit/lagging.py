"""The audit beside a follower: sink positions before the comparison, the log after it.

``sink_positions`` is called before any table is compared; ``set_aside_in_flight`` after
the last one: it lists the keys of whole missing/extra ranges, THEN reads the log's end,
reads the log from the lowest position to it, and moves every difference on a key changed
there into the report's ``in_flight`` (why that is exact: ``chariot.audit.in_flight``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chariot.audit.in_flight import (
    RANGE_KEYS,
    Changed,
    ListedRange,
    LogWindow,
    changed_after,
    collect,
    set_aside,
    set_aside_ranges,
    with_foreign_key_actions,
)
from chariot.batch import Key
from chariot.cdc.fold import StreamIndex
from chariot.cdc.position import LogPosition
from chariot.config import Settings
from chariot.errors import ChariotError
from chariot.sinks.base import ChangeSink, Sink
from chariot.streams import Stream

if TYPE_CHECKING:
    from chariot.audit.tables import Scope, SideFactory, StreamAudit

log = logging.getLogger(__name__)

Positions = dict[str, dict[str, LogPosition]]  # sink -> table -> position
CHUNK_KEYS = 5_000
LAG_HINT = "the sink is behind the log; run `chariot sync` or wait for the follower"


def sink_positions(settings: Settings, sinks: Sequence[str], notes: list[str]) -> Positions:
    """Each change-capture sink's stored log position per table (read before comparing)."""
    from chariot.plugins import load_sink

    found: Positions = {}
    for name in sinks:
        try:
            with load_sink(name)(settings) as sink:
                if isinstance(sink, ChangeSink):
                    found[name] = dict(sink.log_positions())
        except ChariotError as error:
            notes.append(
                f"{name}'s log positions could not be read ({error}): rows still in flight "
                "there are counted as differences"
            )
    return found


def set_aside_in_flight(
    settings: Settings, scope: Scope, audits: list[StreamAudit], positions: Positions
) -> list[str]:
    """Move the differences on keys changed after each sink's position into ``in_flight``
    and refresh the report rows; returns notes (the lag found, or why it was not looked at)."""
    from chariot.audit.tables import SideFactory

    behind = [
        a for a in audits if a.stream.name in positions.get(a.sink, {}) and _has_differences(a)
    ]
    if not behind:
        return []
    factory = SideFactory(settings)
    try:
        listed = {id(a): _list_ranges(factory, a) for a in behind}  # before the log's end
        window = _read_log(settings, scope, [positions[a.sink][a.stream.name] for a in behind])
        notes = []
        if not window.complete:
            notes.append(f"rows in flight may be counted as differences: {window.note}")
        notes += _reclassify(settings, factory, scope, behind, positions, window, listed)
    finally:
        factory.close()
    return notes


def _has_differences(audit: StreamAudit) -> bool:
    return not audit.result.clean


def _list_ranges(
    factory: SideFactory, audit: StreamAudit
) -> tuple[list[ListedRange], list[ListedRange]]:
    findings = audit.findings
    lists: tuple[list[ListedRange], list[ListedRange]] = ([], [])
    for ranges, opened, target in (
        (findings.missing_ranges, "source", lists[0]),
        (findings.extra_ranges, "sink", lists[1]),
    ):
        if not ranges:
            continue
        side = (
            factory.source(audit.canonical)
            if opened == "source"
            else factory.sink(audit.sink, audit.canonical)
        )
        try:
            for segment, count in ranges:
                keys = side.keys_in(segment, limit=RANGE_KEYS + 1) if count <= RANGE_KEYS else []
                whole = count <= RANGE_KEYS and len(keys) <= RANGE_KEYS
                target.append(ListedRange(segment, count, tuple(keys) if whole else None))
        finally:
            side.close()
    return lists


def _read_log(settings: Settings, scope: Scope, starts: list[LogPosition]) -> LogWindow:
    from chariot.cdc.position import current_position
    from chariot.cdc.reader import read_transactions
    from chariot.connections import mysql_connect

    streams = StreamIndex(scope.project_streams or scope.streams)
    window = LogWindow()
    try:
        connection = mysql_connect(settings.mysql)
        try:
            window.end = current_position(connection)  # after the comparison: see the module
        finally:
            connection.close()
        lowest = min(starts, key=lambda p: p.sort_key())
        start = LogPosition(lowest.file, lowest.offset)  # a chunked transaction is read whole
        transactions = read_transactions(settings.mysql, streams.ordered, start, stop_at=window.end)
        collect(window, transactions, streams)
    except ChariotError as error:
        window.complete = False
        window.note = f"the binary log could not be read: {error}"
    return window


def _reclassify(
    settings: Settings,
    factory: SideFactory,
    scope: Scope,
    audits: list[StreamAudit],
    positions: Positions,
    window: LogWindow,
    listed: dict[int, tuple[list[ListedRange], list[ListedRange]]],
) -> list[str]:
    from chariot.plugins import load_sink
    from chariot.sync import select_streams

    everything = tuple(select_streams(scope.project_streams or scope.streams, None))
    index = StreamIndex(everything)
    lookups = _Lookups(settings, factory)
    notes: list[str] = []
    try:
        for audit in audits:
            position = positions[audit.sink][audit.stream.name]
            if audit.sink not in lookups.sinks:
                lookups.sinks[audit.sink] = load_sink(audit.sink)(settings)
            sink = lookups.sinks[audit.sink]

            def direct(name: str, at: LogPosition = position) -> Changed:
                return changed_after(window, index, name, at)

            def in_sink(
                stream: Stream, columns: tuple[str, ...], values: list[Key], held: Sink = sink
            ) -> list[Key]:
                return lookups.in_sink(held, stream, columns, values)

            changed = with_foreign_key_actions(
                everything, direct, in_sink, lookups.in_source, audit.stream.name
            ).keys
            findings = audit.findings
            set_aside(findings, changed)
            missing, extra = listed[id(audit)]
            set_aside_ranges(findings, missing, extra, changed)
            if findings.in_flight_count:
                _refresh(factory, audit, scope.examples)
                notes.append(
                    f"{audit.stream.name} in {audit.sink}: {findings.in_flight_count:,} rows "
                    f"still in flight: {LAG_HINT}"
                )
        notes += lookups.notes
    finally:
        lookups.close()
    return notes


class _Lookups:
    """Finds the rows a foreign-key action changed: in a sink, and in the source."""

    def __init__(self, settings: Settings, factory: SideFactory) -> None:
        self.settings = settings
        self.factory = factory
        self.sinks: dict[str, Sink] = {}
        self.notes: list[str] = []

    def in_sink(
        self, sink: Sink, stream: Stream, columns: tuple[str, ...], values: list[Key]
    ) -> list[Key]:
        if not isinstance(sink, ChangeSink):
            return []
        found: list[Key] = []
        try:
            for start in range(0, len(values), CHUNK_KEYS):
                chunk = values[start : start + CHUNK_KEYS]
                found += sink.keys_referencing(stream, columns, chunk)
        except Exception as error:  # counted as differences then, never hidden
            self._failed(f"{sink.name}'s rows of {stream.name} referencing changed rows", error)
            return []
        return found

    def in_source(self, stream: Stream, columns: tuple[str, ...], values: list[Key]) -> list[Key]:
        from chariot.audit.forms import postgres_canonical

        if not values:
            return []
        source = self.factory.source(postgres_canonical(stream))
        try:
            return source.keys_referencing(columns, values)
        except ChariotError as error:
            self._failed(f"the source's rows of {stream.name} referencing changed rows", error)
            return []
        finally:
            source.close()

    def _failed(self, what: str, error: BaseException) -> None:
        log.info("in-flight lookup failed", exc_info=True)
        note = f"{what} could not be read ({error}): they count as differences"
        if note not in self.notes:
            self.notes.append(note)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def _refresh(factory: SideFactory, audit: StreamAudit, limit: int) -> None:
    """The report row after keys moved to in flight: counts, and examples of each."""
    from chariot.audit.tables import examples

    findings, result = audit.findings, audit.result
    result.missing = findings.missing_count
    result.extra = findings.extra_count
    result.differing = len(findings.differing)
    result.in_flight = findings.in_flight_count
    source = factory.source(audit.canonical)
    sink = factory.sink(audit.sink, audit.canonical)
    try:
        result.examples = examples(source, sink, findings, limit)
        result.in_flight_examples = examples(source, sink, findings.in_flight, limit)
    finally:
        source.close()
        sink.close()
