"""Orphans: source rows whose referenced row is absent from the source (``Stream.references``).

The sinks keep such rows on purpose (no foreign keys: a rating may arrive before its movie),
so the audit reports them as notes with their first keys, never as differences. Each
reference costs one anti-join in the source (plus one to list keys when there are orphans);
rows the reader's reject rules refuse are not counted, since no sink holds them.
"""

from __future__ import annotations

from chariot.audit.forms import postgres_canonical
from chariot.audit.report import OrphanNote
from chariot.audit.source import SourceSide
from chariot.config import Settings
from chariot.streams import Reference, Stream


def find_orphans(
    settings: Settings, streams: tuple[Stream, ...], limit: int
) -> tuple[list[OrphanNote], list[str]]:
    """Orphan notes for each reference of these streams (with up to ``limit`` keys each),
    and plain notes for references that could not be checked."""
    orphans: list[OrphanNote] = []
    notes: list[str] = []
    known = {stream.name: stream for stream in streams}
    for stream in streams:
        if not stream.references:
            continue
        source = SourceSide(settings, postgres_canonical(stream))
        try:
            for reference in stream.references:
                parent = _referenced(stream, reference, known)
                if parent is None or not _source_has(source, parent.source_table):
                    notes.append(
                        f"{stream.name} not checked for orphans: the source has no table "
                        f"{parent.source_table if parent else reference.table}"
                    )
                    continue
                found = _orphans(source, reference, parent, limit)
                if found.count:
                    orphans.append(found)
        finally:
            source.close()
    return orphans, notes


def _referenced(stream: Stream, reference: Reference, known: dict[str, Stream]) -> Stream | None:
    """The referenced table's stream: from the same project, else among the audited ones."""
    project = stream.project
    if project is not None and reference.table in project.tables:
        from chariot.project.streams import table_stream

        return table_stream(project, reference.table)
    return known.get(reference.table)


def _source_has(source: SourceSide, table: str) -> bool:
    found = source.query(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = %s",
        (table,),
    )
    return bool(found[0][0])


def _orphans(source: SourceSide, reference: Reference, parent: Stream, limit: int) -> OrphanNote:
    child = source.table
    joined = " AND ".join(
        f"parent.`{key}` = {child}.`{column}`"
        for key, column in zip(parent.key, reference.columns, strict=True)
    )
    present = " AND ".join(f"{child}.`{column}` IS NOT NULL" for column in reference.columns)
    # The reject rules last: MySQL evaluates them only for the few rows without a parent
    # (first, they cost more than the anti-join itself: 1.7 s -> 0.5 s for 1M ratings).
    where = (
        f"{present} AND NOT EXISTS "
        f"(SELECT 1 FROM `{parent.source_table}` AS parent WHERE {joined}) AND {source.loadable}"
    )
    count = int(source.query(f"SELECT COUNT(*) FROM {child} WHERE {where}")[0][0])
    keys: list[list[object]] = []
    if count and limit > 0:
        order = ", ".join(f"{child}.{column}" for column in source.key_columns)
        rows = source.query(
            f"SELECT {order} FROM {child} WHERE {where} ORDER BY {order} LIMIT {int(limit)}"
        )
        keys = [list(row) for row in rows]
    return OrphanNote(
        table=source.stream.name,
        references=parent.name,
        columns=list(reference.columns),
        count=count,
        keys=keys,
    )
