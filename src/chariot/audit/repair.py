"""Make each sink equal the source for the differences an audit found.

Missing and differing rows are read again from the source and written with the sink's own
``upsert_rows`` (the same transforms as a sync; checkpoints untouched); extra rows go through
``delete_keys`` (in Neo4j: the relationship, or the stream's properties, and the nodes that
leaves orphaned, as the sink documents). Deletes run first, children before parents (the
reverse of the streams' dependency order), then upserts, parents first. Source rows are
handed over as the value contract reads them, like a sync's. Rows a sync recorded as rejected
are left alone: writing them would only be rejected again.

This is how source updates and deletes reach the sinks: a high-water mark only sees new keys.
"""

from __future__ import annotations

import logging
from typing import Any

from chariot.audit.forms import canonical_for, postgres_canonical
from chariot.audit.report import RepairAction
from chariot.audit.segments import Segment
from chariot.audit.source import SourceSide
from chariot.audit.tables import Scope, SideFactory, StreamAudit
from chariot.batch import Key
from chariot.config import Settings
from chariot.sinks.base import RepairableSink, Sink

log = logging.getLogger(__name__)

CHUNK_KEYS = 5_000


def hold_leases(settings: Settings, scope: Scope) -> dict[str, Sink]:
    """Open each selected sink as "audit --repair" and take its writer lease of every table
    it compares, before anything is compared. Raises ``Busy`` naming the holder (a running
    sync, a follower) and then holds nothing."""
    from chariot.plugins import load_sink

    sinks: dict[str, Sink] = {}
    try:
        for name in scope.sinks:
            sinks[name] = load_sink(name)(settings)
            sinks[name].lease_owner = sinks[name].lease_owner.doing("audit --repair")
            for stream in scope.streams:
                if canonical_for(stream, name) is not None:
                    sinks[name].acquire(stream)
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise
    return sinks


def repair(
    settings: Settings, audits: list[StreamAudit], sinks: dict[str, Sink]
) -> list[RepairAction]:
    """Repair what ``audits`` found, through ``sinks`` (from ``hold_leases``: their leases
    are held already)."""
    actions = {
        (a.stream.name, a.sink): RepairAction(table=a.stream.name, sink=a.sink) for a in audits
    }
    work = [a for a in audits if not a.result.clean]
    factory = SideFactory(settings)
    try:
        for audit in work:  # the leases again: a no-op for a sink that holds them
            sink = _sink(settings, sinks, audit.sink, actions[(audit.stream.name, audit.sink)])
            if sink is not None:
                sink.acquire(audit.stream)
        for audit in reversed(work):
            action = actions[(audit.stream.name, audit.sink)]
            sink = _sink(settings, sinks, audit.sink, action)
            if sink is not None:
                action.deleted = _delete(factory, sink, audit)
        for audit in work:
            action = actions[(audit.stream.name, audit.sink)]
            sink = _sink(settings, sinks, audit.sink, action)
            if sink is not None:
                action.upserted = _upsert(settings, sink, audit)
    finally:
        factory.close()
    return [actions[(a.stream.name, a.sink)] for a in work]


def _sink(
    settings: Settings, sinks: dict[str, Sink], name: str, action: RepairAction
) -> RepairableSink | None:
    from chariot.plugins import load_sink

    if name not in sinks:
        sinks[name] = load_sink(name)(settings)
        sinks[name].lease_owner = sinks[name].lease_owner.doing("audit --repair")
    sink = sinks[name]
    if not isinstance(sink, RepairableSink):
        action.note = f"sink {name} has no repair ability (not a RepairableSink)"
        return None
    return sink


def _delete(factory: SideFactory, sink: RepairableSink, audit: StreamAudit) -> int:
    findings = audit.findings
    keys: list[Key] = list(findings.extra)
    # A key held several times in the sink is deleted, then written once below.
    keys += [key for key, duplicated in findings.differing.items() if duplicated]
    if findings.extra_ranges:
        side = factory.sink(audit.sink, audit.canonical)
        try:
            for segment, _ in findings.extra_ranges:
                keys += side.keys_in(segment)
        finally:
            side.close()
    deleted = 0
    for start in range(0, len(keys), CHUNK_KEYS):
        deleted += sink.delete_keys(audit.stream, keys[start : start + CHUNK_KEYS])
    if keys:
        log.info(
            "repair deleted %d rows",
            deleted,
            extra={"table": audit.stream.name, "sink": audit.sink},
        )
    return deleted


def _upsert(settings: Settings, sink: RepairableSink, audit: StreamAudit) -> int:
    findings = audit.findings
    keys = [*findings.missing, *findings.differing]
    if not keys and not findings.missing_ranges:
        return 0
    sink.prepare(audit.stream)  # creates what a never-synced stream needs; keeps the data
    source = SourceSide(settings, postgres_canonical(audit.stream))
    written = 0
    try:
        for start in range(0, len(keys), CHUNK_KEYS):
            chunk = keys[start : start + CHUNK_KEYS]
            written += _write(sink, audit, source.contract_rows(chunk))
        for segment, _ in findings.missing_ranges:
            written += _write_range(sink, audit, source, segment)
    finally:
        source.close()
    log.info(
        "repair wrote %d rows", written, extra={"table": audit.stream.name, "sink": audit.sink}
    )
    return written


def _write_range(
    sink: RepairableSink, audit: StreamAudit, source: SourceSide, segment: Segment
) -> int:
    return _write(sink, audit, source.contract_rows_in(segment))


def _write(sink: RepairableSink, audit: StreamAudit, rows: list[tuple[Any, ...]]) -> int:
    rejected = audit.findings.rejected_known
    if rejected:
        positions = audit.stream.key_positions
        rows = [row for row in rows if tuple(row[i] for i in positions) not in rejected]
    return sink.upsert_rows(audit.stream, rows) if rows else 0
