"""From whole source transactions to one sink's ``ChangeBatch``: filter, fold, validate.

A sink stores a log position per table. A transaction is applied to a table only when it
ends after that table's position; a position inside a transaction (``within`` changes of
it applied, a chunked giant) skips that many of its changes. What is left folds into the
net effect per key, last change winning, so a batch of many transactions costs one
statement per table and kind in the sink.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chariot.batch import Key, Reject
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.decode import ZERO_DATE
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.keys import key_getter
from chariot.streams import Stream

_ZERO_TEXT = {"date": "0000-00-00"}
# A row's reject reason by the source reader's rules, or None (``chariot.cdc.validate``).
Validator = Callable[[Stream, dict[str, Any]], str | None]


def pending_changes(
    transaction: SourceTransaction, positions: Mapping[str, LogPosition], streams: StreamIndex
) -> list[tuple[int, Change]]:
    """The (index in the transaction, change) pairs a sink still has to apply."""
    if not transaction.changes:
        return []
    pending = []
    skips: dict[str, int] = {}
    for index, change in enumerate(transaction.changes):
        stream = streams.by_table.get(change.table)
        if stream is None:
            continue
        if stream.name not in skips:
            skips[stream.name] = _already_applied(transaction, positions.get(stream.name))
        if index >= skips[stream.name]:
            pending.append((index, change))
    return pending


def _already_applied(transaction: SourceTransaction, position: LogPosition | None) -> int:
    """How many leading changes of ``transaction`` the table's position covers."""
    if position is None:
        return len(transaction.changes)  # not a change-capture table of this sink
    if position.reached(transaction.position):
        return len(transaction.changes)
    if position.within and _same_transaction(transaction, position):
        return position.within
    return 0


def _same_transaction(transaction: SourceTransaction, position: LogPosition) -> bool:
    if position.gtid and transaction.gtid:
        return position.gtid == transaction.gtid
    start = transaction.start
    return start is not None and (start.file, start.offset) == (position.file, position.offset)


def chunk_position(transaction: SourceTransaction, applied: int) -> LogPosition:
    """The position after the first ``applied`` changes of a transaction applied in chunks."""
    if applied >= len(transaction.changes):
        return transaction.position
    start = transaction.start or transaction.position
    return LogPosition(start.file, start.offset, transaction.gtid, within=applied)


class StreamIndex:
    """The selected streams by source table, in dependency order."""

    def __init__(self, streams: Sequence[Stream]) -> None:
        self.ordered = list(streams)
        self.by_table = {stream.source_table: stream for stream in streams}
        self.by_name = {stream.name: stream for stream in streams}


class Folder:
    """Accumulates one sink's pending changes; ``batch`` turns them into a ``ChangeBatch``."""

    def __init__(self, streams: StreamIndex, validate: Validator) -> None:
        self.streams = streams
        self.validate = validate
        self._net: dict[str, dict[Key, dict[str, Any] | None]] = {}
        self._moved: dict[str, list[tuple[Key, Key]]] = {}
        self._deleted: dict[str, set[Key]] = {}  # keys this run deleted (for ``replaced``)
        # Keys whose first change in the run was an in-place update (for ``updated``).
        self._updated: dict[str, set[Key]] = {}
        self.changes = 0
        self.transactions = 0
        # Per stream, made once: a function a million changes each call.
        self._key_of = {s.name: key_getter(tuple(s.key)) for s in streams.ordered}

    def add(self, changes: Sequence[tuple[int, Change]]) -> None:
        for _, change in changes:
            stream = self.streams.by_table[change.table]
            key_of = self._key_of[stream.name]
            net = self._net.setdefault(stream.name, {})
            deleted = self._deleted.setdefault(stream.name, set())
            self.changes += 1
            if change.kind == "insert":
                assert change.after is not None
                net[key_of(change.after)] = change.after
            elif change.kind == "delete":
                assert change.before is not None
                key = key_of(change.before)
                net[key] = None
                deleted.add(key)
            else:
                assert change.before is not None and change.after is not None
                old, new = key_of(change.before), key_of(change.after)
                if old != new:
                    net[old] = None
                    deleted.add(old)
                    self._moved.setdefault(stream.name, []).append((old, new))
                elif old not in net:
                    self._updated.setdefault(stream.name, set()).add(old)
                net[new] = change.after

    def batch(
        self,
        position: LogPosition,
        positioned: tuple[str, ...],
        committed_at: Any = None,
    ) -> ChangeBatch:
        tables = []
        for stream in self.streams.ordered:
            net = self._net.get(stream.name)
            if not net and not self._moved.get(stream.name):
                continue
            tables.append(self._table(stream, net or {}))
        return ChangeBatch(
            tables=tables,
            position=position,
            positioned=positioned,
            transactions=self.transactions,
            changes=self.changes,
            committed_at=committed_at,
        )

    def _table(self, stream: Stream, net: dict[Key, dict[str, Any] | None]) -> TableChanges:
        table = TableChanges(stream, moved=list(self._moved.get(stream.name, [])))
        row_of = key_getter(tuple(stream.source_columns))  # the row tuple, in C
        deleted = self._deleted.get(stream.name, set())
        updated = self._updated.get(stream.name, set())
        for key, row in net.items():
            if row is None:
                table.deletes.append(key)
                continue
            if key in deleted:
                table.replaced.append(key)  # its delete still acted on referring rows
            reason = self.validate(stream, row)
            if reason is not None:
                table.rejects.append(Reject(stream.name, _reader_key(stream, key), reason))
            else:
                table.upserts.append(row_of(row))
                if key in updated and key not in deleted:
                    table.updated.add(key)
        return table

    def __bool__(self) -> bool:
        return bool(self._net or self._moved)


def merge(batch: ChangeBatch, derived: Sequence[TableChanges], streams: StreamIndex) -> None:
    """Add what foreign-key actions did (read from the source after the log's changes, so
    they win for any key both name), keeping the batch's tables in dependency order."""
    if not derived:
        return
    tables = {table.stream.name: table for table in batch.tables}
    for extra in derived:
        table = tables.get(extra.stream.name)
        if table is None:
            tables[extra.stream.name] = extra
            continue
        replaced = set(extra.changed_keys)
        positions = table.stream.key_positions
        table.deletes = [key for key in table.deletes if key not in replaced]
        key_of = key_getter(positions)
        table.upserts = [row for row in table.upserts if key_of(row) not in replaced]
        table.rejects = [reject for reject in table.rejects if reject.key not in replaced]
        table.deletes += extra.deletes
        table.upserts += extra.upserts
        table.rejects += extra.rejects
        table.moved += extra.moved
    batch.tables = [tables[s.name] for s in streams.ordered if s.name in tables]


def _reader_key(stream: Stream, key: Key) -> Key:
    """A rejected key as the keyset reader records it: a zero date as its text."""
    if ZERO_DATE not in key:
        return key
    return tuple(
        (
            (
                "0000-00-00"
                if column.source_type.startswith("date") and column.source_type in ("date",)
                else "0000-00-00 00:00:00"
            )
            if value is ZERO_DATE
            else value
        )
        for column, value in zip(stream.key_columns, key, strict=True)
    )
