"""Rows still in flight: what a sink that follows the binary log has not applied yet.

A sink that syncs by change capture stores, per table, the log position it has reached
(``ChangeSink.log_positions``). While a follower runs, the sink is always a little behind
the source, so a plain comparison would report the rows changed in between as differences.
They are not: the audit tells them apart like this, for each table and sink.

1. The sink's position ``P`` is read BEFORE the comparison starts.
2. After the comparison, the log's end ``E`` is read, and the log is read from ``P`` to ``E``.
   Every source key a change there touches (the before and the after image's key, and the
   rows that the source's foreign-key actions changed with it, which the log lacks) is
   "changed since the sink's position".
3. A missing, extra or differing key among them is counted as in flight (lag), not as a
   difference; every other one stays a difference.

Why this is exact. The comparison read each key at some instant between reading ``P`` and
reading ``E``; the follower only moves the sink forward, so at that instant the sink held
the source's state at some position at or after ``P``. A key that no transaction in
``(P, E]`` touched had, at every position from ``P`` to the instant the source was read,
one and the same value: so the sink, however far it had got, must have held exactly the
source's row. A difference on such a key is real. A key that was touched in ``(P, E]`` may
legitimately differ (the sink has not applied that change yet, or had not when the source
was read): in flight. Leaving out a key that was changed (the read stops at a bound, a
foreign-key action it could not resolve) only ever shows a difference too many, never hides
one. A whole range the sink lacks (or holds alone) is in flight only when its keys, listed
BEFORE ``E`` is read, are all changed ones: a row of the range that is gone by then was
deleted before ``E``, so its key is in the log too; otherwise the range stays a difference.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chariot.audit.compare import Findings
from chariot.audit.segments import Segment, key_in_segment
from chariot.batch import Key
from chariot.cdc.fold import StreamIndex, pending_changes
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.streams import Stream

log = logging.getLogger(__name__)

# Changes read at most; a sink further behind keeps the rest as differences (and a note).
MAX_CHANGES = 1_000_000
# A whole range is resolved to keys only up to this many rows (else it stays a difference).
RANGE_KEYS = 10_000
# Foreign-key actions that change the referencing rows (``restrict``/``no action`` do not).
CHANGING_ACTIONS = ("cascade", "set null", "set default")

# (stream, its referencing columns, referenced key values) -> keys of the rows that match.
Referencing = Callable[[Stream, tuple[str, ...], list[Key]], list[Key]]


def normal_key(key: Sequence[Any]) -> Key:
    """One form for a key whatever read it: the log, the source, PostgreSQL or Neo4j."""
    return tuple(_normal(value) for value in key)


def _normal(value: Any) -> Any:
    if hasattr(value, "to_native"):  # neo4j.time values
        value = value.to_native()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


# -- the log between the sink's position and the end -----------------------------------------


@dataclass
class LogWindow:
    """The source transactions after the lowest sink position, up to the log's end ``end``,
    with each change reduced to its keys. ``complete``: False when the read stopped early
    (``note`` says why): keys changed after that are not known, so they stay differences."""

    transactions: list[SourceTransaction] = field(default_factory=list)
    end: LogPosition | None = None
    complete: bool = True
    note: str | None = None


def keys_only(transaction: SourceTransaction, streams: StreamIndex) -> SourceTransaction:
    """The transaction with each row image cut down to its key columns (memory)."""

    def cut(change: Change) -> Change:
        stream = streams.by_table.get(change.table)
        columns = stream.key if stream is not None else ()
        return Change(
            change.table,
            change.kind,
            None if change.before is None else {c: change.before[c] for c in columns},
            None if change.after is None else {c: change.after[c] for c in columns},
        )

    return SourceTransaction(
        [cut(c) for c in transaction.changes],
        transaction.position,
        transaction.gtid,
        transaction.start,
        transaction.committed_at,
    )


def collect(
    window: LogWindow,
    transactions: Iterable[SourceTransaction],
    streams: StreamIndex,
    *,
    max_changes: int = MAX_CHANGES,
) -> None:
    """Add ``transactions`` (keys only) to ``window``, stopping after ``max_changes``."""
    changes = sum(len(t.changes) for t in window.transactions)
    for transaction in transactions:
        window.transactions.append(keys_only(transaction, streams))
        changes += len(transaction.changes)
        if changes >= max_changes:
            window.complete = False
            window.note = f"the log was read for at most {max_changes:,} changes"
            return


# -- which keys changed after a position --------------------------------------------------------


@dataclass
class Changed:
    """One table's keys changed after a position (normalised, for matching), and the raw
    keys whose rows went away (deleted, or moved to another key) and arrived by a move, for
    the foreign-key actions of the tables that reference it."""

    keys: set[Key] = field(default_factory=set)
    deleted: list[Key] = field(default_factory=list)
    moved_from: list[Key] = field(default_factory=list)
    moved_to: list[Key] = field(default_factory=list)

    def add(self, keys: Iterable[Key]) -> None:
        self.keys.update(normal_key(key) for key in keys)


def changed_after(
    window: LogWindow, streams: StreamIndex, table: str, position: LogPosition
) -> Changed:
    """The keys of ``table`` (a stream name) that the window's transactions change after
    ``position``, as the change writer would apply them (a position inside a transaction
    skips the changes it covers: ``chariot.cdc.fold.pending_changes``)."""
    changed = Changed()
    stream = streams.by_name[table]
    positions = {table: position}
    for transaction in window.transactions:
        for _, change in pending_changes(transaction, positions, streams):
            old = _key(stream, change.before)
            new = _key(stream, change.after)
            changed.add(key for key in (old, new) if key is not None)
            if change.kind == "delete" and old is not None:
                changed.deleted.append(old)
            elif old is not None and new is not None and normal_key(old) != normal_key(new):
                changed.moved_from.append(old)
                changed.moved_to.append(new)
    return changed


def _key(stream: Stream, row: Mapping[str, Any] | None) -> Key | None:
    return None if row is None else tuple(row[column] for column in stream.key)


def with_foreign_key_actions(
    streams: Sequence[Stream],
    direct: Callable[[str], Changed],
    in_sink: Referencing,
    in_source: Referencing,
    wanted: str,
) -> Changed:
    """``wanted``'s changed keys, with the rows the source's foreign-key actions changed.

    The log lacks those rows (only the referenced row's change is logged), so they are
    found by value: the sink's rows that still reference a deleted or moved key (old or
    new: the follower may have applied it meanwhile), and the source's rows that reference
    a moved key's new value. A cascading delete or key change goes on to the tables that
    reference those rows in turn. ``streams``: every stream, parents before children;
    ``direct(name)``: a stream's own changes from the log.
    """
    by_name = {stream.name: stream for stream in streams}
    found: dict[str, Changed] = {}

    def effect(name: str) -> Changed:
        if name in found:
            return found[name]
        stream = by_name[name]
        changed = direct(name)
        found[name] = changed  # a reference cycle ends here
        for reference in stream.references:
            if reference.table not in by_name or reference.table == name:
                continue
            parent = effect(reference.table)
            columns = reference.columns
            if reference.on_delete in CHANGING_ACTIONS and parent.deleted:
                rows = in_sink(stream, columns, parent.deleted)
                changed.add(rows)
                if reference.on_delete == "cascade":
                    changed.deleted += rows
            moved = parent.moved_from + parent.moved_to
            if reference.on_update in CHANGING_ACTIONS and moved:
                before = in_sink(stream, columns, moved)
                after = in_source(stream, columns, parent.moved_to)
                changed.add([*before, *after])
                if reference.on_update == "cascade" and set(columns) & set(stream.key):
                    changed.moved_from += before
                    changed.moved_to += after
        return changed

    return effect(wanted)


# -- reclassifying the comparison's findings ----------------------------------------------------


def set_aside(findings: Findings, changed: set[Key]) -> int:
    """Move every missing, extra or differing key among ``changed`` (normalised keys) into
    ``findings.in_flight``; returns how many moved."""
    flight = findings.in_flight
    moved = 0
    for source, target in (
        (findings.missing, flight.missing),
        (findings.extra, flight.extra),
    ):
        for key in [k for k in source if normal_key(k) in changed]:
            target[key] = source.pop(key)
            moved += 1
    for key in [k for k in findings.differing if normal_key(k) in changed]:
        flight.differing[key] = findings.differing.pop(key)
        moved += 1
    return moved


@dataclass(frozen=True)
class ListedRange:
    """A whole range's keys as listed (before the log's end was read); ``keys`` None: more
    than ``RANGE_KEYS`` (the range then stays a difference)."""

    segment: Segment
    count: int
    keys: tuple[Key, ...] | None


def set_aside_ranges(
    findings: Findings,
    missing: Sequence[ListedRange],
    extra: Sequence[ListedRange],
    changed: set[Key],
) -> int:
    """Move each whole range whose listed keys are all changed ones into ``in_flight``;
    returns the rows moved. A range holding a key the sink recorded as rejected stays (its
    count already leaves that key out): kept conservatively as a difference."""
    moved = 0
    flight = findings.in_flight
    for listed, ranges, target in (
        (missing, findings.missing_ranges, flight.missing_ranges),
        (extra, findings.extra_ranges, flight.extra_ranges),
    ):
        for item in listed:
            if item.keys is None or not all(normal_key(k) in changed for k in item.keys):
                continue
            if ranges is findings.missing_ranges and any(
                key_in_segment(key, item.segment) for key in findings.rejected_known
            ):
                continue
            entry = (item.segment, item.count)
            if entry in ranges:
                ranges.remove(entry)
                target.append(entry)
                moved += item.count
    return moved
