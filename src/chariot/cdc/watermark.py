"""Chunked first copies while the log is applied: the watermark method of Netflix's DBLog.

A table that needs a first copy in a sink is not copied before the log phase; its log
position starts at the current position, and during the log phase a producer thread reads
it chunk by chunk (keyset pages in key order, with the source reader, so values and reject
rules are the keyset copy's). For each chunk it:

1. writes a LOW watermark: a fresh uuid into the watermark table, committed alone;
2. reads the chunk (a new snapshot, so it sees every commit before the low watermark);
3. writes a HIGH watermark, committed alone, after the read has finished.

The log reader sees both watermarks as row events of the watermark table, in log order.
Between them, every key of the chunk's table that a change names (before or after image)
is dropped from the chunk: the log carries that row's newer state itself. A row no change
names in the window did not change while the chunk was read, so the value read is its
value at the high watermark: the rest of the chunk enters the stream there, as a
transaction of upserts at the high watermark's log position (``ChunkTransaction``), and
each sink applies it like any change, with the chunk's last key as the table's checkpoint
in the same transaction. No lock is held on the source; the log never waits for a copy.

Foreign-key actions (ON DELETE/UPDATE CASCADE, SET NULL, SET DEFAULT) change rows of the
chunk's table without a row event of it. When a delete or a key change of a table that the
chunk's table refers to with such an action (directly or through others) is in the window,
the chunk's keys cannot be trusted: the chunk is thrown away and read again.

The price is a write into the source: the watermark table is created once by an admin and
the source user needs INSERT and UPDATE on it (``watermark_problem`` names the grant).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from chariot.batch import Key, Reject
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.config import Settings
from chariot.errors import SourceReadError
from chariot.streams import Column, Stream

log = logging.getLogger(__name__)

# A test hook, inert unless a test sets it: called with the stream and the chunk's rows
# after the chunk is read and before its high watermark is written, so a test can change
# rows inside the window deterministically.
between_watermarks: Callable[[Stream, list[tuple[Any, ...]]], None] | None = None

# How long the producer waits at a time for the log reader to reach its high watermark
# before it looks at the stop flag again.
_WAIT_SECONDS = 0.2


def watermark_ddl(table: str) -> str:
    """The statement an admin runs once in the source database."""
    return (
        f"CREATE TABLE `{table}` (name VARCHAR(255) NOT NULL PRIMARY KEY, "
        "mark CHAR(36) NOT NULL) ENGINE=InnoDB"
    )


def watermark_grant(table: str, database: str, user: str) -> str:
    return f"GRANT INSERT, UPDATE ON `{database}`.`{table}` TO {user}"


def watermark_stream(table: str) -> Stream:
    """The watermark table as the log reader decodes it (never synced to a sink)."""
    return Stream(
        name=table,
        source_table=table,
        columns=(
            Column("name", "name", "text", source_type="varchar(255)", postgres="text"),
            Column("mark", "mark", "text", source_type="char(36)", postgres="text"),
        ),
        key=("name",),
    )


@dataclass(frozen=True)
class SnapshotRequest:
    """Copy ``stream`` in chunks after ``after`` (None: from the start) into ``sinks``."""

    stream: Stream
    after: Key | None
    sinks: frozenset[str]


@dataclass(frozen=True)
class ChunkTransaction(SourceTransaction):
    """A chunk's rows (as inserts) at its high watermark's log position, for ``sinks`` only.

    ``rejects``: the rows of the chunk the reader refused (same rules as a keyset copy).
    ``checkpoint``: the chunk's last key (None for an empty chunk): the sink stores it as
    the table's high-water mark with the batch. ``last``: the table is whole after it."""

    stream: Stream | None = None
    sinks: frozenset[str] = frozenset()
    rejects: tuple[Reject, ...] = ()
    checkpoint: Key | None = None
    last: bool = False
    rows: int = 0

    def as_empty(self) -> SourceTransaction:
        """What a sink outside ``sinks`` sees: the high watermark's empty transaction."""
        return SourceTransaction([], self.position, self.gtid, self.start, self.committed_at)


class WatermarkWriter:
    """Writes watermarks into the source's watermark table, each in its own commit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.run.watermark_table
        self._connection: Any = None

    def mark(self, name: str, mark: str) -> None:
        """Write ``mark`` on row ``name`` and commit it. The caller knows the mark before
        it is written: the log reader may see it before this call returns."""
        import pymysql

        from chariot.connections import mysql_connect

        statement = (
            f"INSERT INTO `{self.table}` (name, mark) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE mark = %s"
        )
        try:
            if self._connection is None:
                self._connection = mysql_connect(self.settings.mysql)
            with self._connection.cursor() as cursor:
                cursor.execute(statement, (name, mark, mark))
            self._connection.commit()
        except pymysql.err.MySQLError as error:
            self.close()
            raise watermark_problem(self.settings, error) from error

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # already broken: nothing to release
                log.debug("closing the watermark connection failed", exc_info=True)
            self._connection = None


def fresh_mark() -> str:
    return str(uuid.uuid4())


def check_watermarks(settings: Settings) -> None:
    """Write one watermark now: a missing table or grant stops the sync before it starts."""
    writer = WatermarkWriter(settings)
    try:
        writer.mark("chariot:check", fresh_mark())
    finally:
        writer.close()


# Server errors that mean the watermark table is missing, different, or not writable.
_NO_TABLE, _DENIED, _NO_COLUMN = 1146, (1142, 1044, 1227), 1054


def watermark_problem(settings: Settings, error: Exception) -> SourceReadError:
    """One line for a failed watermark write, with the statement that fixes it."""
    args: tuple[Any, ...] = getattr(error, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    message = str(args[-1]) if args else str(error)
    address = settings.mysql.address()
    database = address.database or "<database>"
    table = settings.run.watermark_table
    user = f"'{address.user or '<user>'}'@'%'"
    grant = watermark_grant(table, database, user)
    off = "or unset CHARIOT_RUN__SNAPSHOT for the default copy, which needs no grant"
    if code == _NO_TABLE:
        return SourceReadError(
            f"watermark snapshots need the table {database}.{table} in the source: {message}",
            hint=f"as an admin: {watermark_ddl(table)}; {grant}; {off}",
        )
    if code in _DENIED:
        return SourceReadError(
            f"watermark snapshots write into {database}.{table}, and the source user may "
            f"not: {message}",
            hint=f"as an admin: {grant}; {off}",
        )
    if code == _NO_COLUMN:
        return SourceReadError(
            f"the watermark table {database}.{table} lacks the columns chariot writes: {message}",
            hint=f"re-create it as an admin: {watermark_ddl(table)}; {grant}",
        )
    return SourceReadError(
        f"writing a watermark into {database}.{table} failed: {message}",
        hint="check the source server; the sinks keep what they committed, re-run to resume",
    )


@dataclass
class _Chunk:
    request: SnapshotRequest
    low: str = ""
    high: str = ""
    opened: bool = False  # the low watermark was read from the log
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    last_key: Key | None = None
    last: bool = False
    named: set[Key] = field(default_factory=set)  # keys changed between the watermarks
    tainted: bool = False  # a foreign-key action may have changed rows: read it again
    read: threading.Event = field(default_factory=threading.Event)
    emitted: threading.Event = field(default_factory=threading.Event)


class ChunkedSnapshot:
    """The producer thread (watermarks and chunk reads) and the log side (``through``).

    One chunk is in flight at a time: the producer waits until the log reader has passed
    the chunk's high watermark before it writes the next low one, so memory holds one
    chunk and the chunks of a table reach the sinks in key order."""

    def __init__(
        self,
        settings: Settings,
        requests: Sequence[SnapshotRequest],
        chunk_rows: int,
        streams: Sequence[Stream] = (),
    ) -> None:
        self.settings = settings
        self._streams_by_table = {stream.source_table: stream for stream in streams}
        self.acting = {r.stream.name: acting_parents(r.stream, streams) for r in requests}
        self.reread = 0  # chunks read again after a foreign-key action in their window
        self.requests = list(requests)
        self.chunk_rows = max(chunk_rows, 1)
        self.marks = watermark_stream(settings.run.watermark_table)
        self.error: BaseException | None = None
        self.chunks = 0  # chunks emitted into the stream
        self._current: _Chunk | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._reached: LogPosition | None = None

    # -- the producer ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._produce, name="chariot-snapshot", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Cancel what is left (the sinks keep their checkpoints) and wait for the thread."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def finished(self) -> bool:
        """Every requested table was copied whole into the stream (or the producer failed)."""
        return self._done.is_set()

    def reached(self, position: LogPosition | None) -> bool:
        """The log reader has passed ``position`` (None: trivially)."""
        if position is None:
            return True
        return self._reached is not None and self._reached.reached(position)

    def _produce(self) -> None:
        from chariot.sources.sql import SqlSource

        source = SqlSource(self.settings)
        writer = WatermarkWriter(self.settings)
        try:
            for request in self.requests:
                self._copy(request, source, writer)
                if self._cancel.is_set():
                    return
        except BaseException as error:  # the log side raises it once the sinks finished
            self.error = error
            log.info("watermark snapshot failed", exc_info=True)
        finally:
            writer.close()
            source.close()
            self._done.set()

    def _copy(self, request: SnapshotRequest, source: Any, writer: WatermarkWriter) -> None:
        after = request.after
        first = True
        while not self._cancel.is_set():
            chunk = _Chunk(request, low=fresh_mark(), high=fresh_mark())
            with self._lock:
                self._current = chunk
            writer.mark(request.stream.name, chunk.low)
            self._read(chunk, source, after, first=first)
            chunk.read.set()
            if between_watermarks is not None:
                between_watermarks(request.stream, chunk.rows)
            writer.mark(request.stream.name, chunk.high)
            while not chunk.emitted.wait(_WAIT_SECONDS):
                if self._cancel.is_set():
                    return
            if chunk.tainted:
                self.reread += 1
                continue  # the same chunk again, with new watermarks
            if chunk.last:
                log.info("watermark snapshot done", extra={"table": request.stream.name})
                return
            after, first = chunk.last_key, False

    def _read(self, chunk: _Chunk, source: Any, after: Key | None, *, first: bool) -> None:
        """One keyset page after ``after``: its rows, its rejects, whether it is the last."""
        pages = source.read(chunk.request.stream, after=after, batch_size=self.chunk_rows)
        try:
            batch = next(pages, None)
        finally:
            pages.close()
        if batch is None:
            chunk.last = True
            return
        in_range = [r for r in batch.rejects if None not in r.key]
        # Rows with a NULL key come with every read's first page: keep them once a run.
        chunk.rejects = list(batch.rejects) if first else in_range
        chunk.rows = list(batch.rows)
        chunk.last_key = tuple(batch.last_key) if batch.last_key else None
        read = len(batch.rows) + len(in_range)
        chunk.last = chunk.last_key is None or read < self.chunk_rows

    # -- the log side ------------------------------------------------------------------

    def through(self, transactions: Iterator[SourceTransaction]) -> Iterator[SourceTransaction]:
        """The log's transactions with the watermarks taken out, the keys changed inside a
        chunk's window noted, and each chunk put in at its high watermark."""
        for transaction in transactions:
            marks = [c for c in transaction.changes if c.table == self.marks.source_table]
            if not marks:
                self._note(transaction.changes)
                self._reached = transaction.position
                yield transaction
                continue
            others = [c for c in transaction.changes if c.table != self.marks.source_table]
            self._note(others)
            chunk = self._at_mark(marks)
            self._reached = transaction.position
            if chunk is not None:
                yield self._emit(chunk, transaction)
                if others:  # never ours (a watermark commits alone): keep them all the same
                    yield SourceTransaction(
                        others,
                        transaction.position,
                        transaction.gtid,
                        transaction.start,
                        transaction.committed_at,
                    )
                continue
            yield SourceTransaction(
                others,
                transaction.position,
                transaction.gtid,
                transaction.start,
                transaction.committed_at,
            )

    def _at_mark(self, marks: list[Change]) -> _Chunk | None:
        """Open the current chunk's window at its low watermark; return it at its high."""
        with self._lock:
            chunk = self._current
        if chunk is None:
            return None
        for change in marks:
            mark = (change.after or {}).get("mark")
            if mark is None:
                continue
            if mark == chunk.low:
                chunk.opened = True
            elif mark == chunk.high and chunk.opened:
                return chunk
        return None

    def _note(self, changes: Sequence[Change]) -> None:
        chunk = self._current
        if chunk is None or not chunk.opened or not changes:
            return
        stream = chunk.request.stream
        acting = self.acting.get(stream.name, set())
        for change in changes:
            if change.table in acting and _may_act(change, self._streams_by_table):
                chunk.tainted = True
            if change.table != stream.source_table:
                continue
            for row in (change.before, change.after):
                if row is not None:
                    chunk.named.add(tuple(row[column] for column in stream.key))

    def _emit(self, chunk: _Chunk, transaction: SourceTransaction) -> SourceTransaction:
        if not chunk.read.is_set():  # the high watermark is written after the read
            raise SourceReadError("a watermark came back before its chunk was read")
        if chunk.tainted:  # nothing enters the stream; the producer reads the chunk again
            with self._lock:
                self._current = None
            chunk.emitted.set()
            return SourceTransaction(
                [],
                transaction.position,
                transaction.gtid,
                transaction.start,
                transaction.committed_at,
            )
        stream = chunk.request.stream
        positions = stream.key_positions
        columns = stream.source_columns
        changes = []
        for row in chunk.rows:
            if tuple(row[p] for p in positions) in chunk.named:
                continue
            after = dict(zip(columns, row, strict=True))
            changes.append(Change(stream.source_table, "insert", None, after))
        rejects = tuple(r for r in chunk.rejects if r.key not in chunk.named)
        self.chunks += 1
        with self._lock:
            self._current = None
        chunk.emitted.set()
        return ChunkTransaction(
            changes,
            transaction.position,
            transaction.gtid,
            transaction.start,
            transaction.committed_at,
            stream=stream,
            sinks=chunk.request.sinks,
            rejects=rejects,
            checkpoint=chunk.last_key,
            last=chunk.last,
            rows=len(chunk.rows),
        )


def acting_parents(stream: Stream, streams: Sequence[Stream]) -> set[str]:
    """Source tables whose deletes or key changes may change ``stream``'s rows through a
    foreign-key action (directly, or down a chain of them), which the log does not show."""
    by_name = {s.name: s for s in streams}
    found: set[str] = set()
    todo = [stream]
    seen = {stream.name}
    while todo:
        child = todo.pop()
        for reference in child.references:
            if reference.on_delete in _ACTING or reference.on_update in _ACTING:
                parent = by_name.get(reference.table)
                if parent is not None and parent.name not in seen:
                    seen.add(parent.name)
                    found.add(parent.source_table)
                    todo.append(parent)
    return found


_ACTING = ("cascade", "set null", "set default")


def _may_act(change: Change, streams: dict[str, Stream]) -> bool:
    """A delete, or an update that changes the row's key: what fires a foreign-key action."""
    if change.kind == "delete":
        return True
    if change.kind != "update" or change.before is None or change.after is None:
        return False
    stream = streams.get(change.table)
    if stream is None:
        return True
    return any(change.before[c] != change.after[c] for c in stream.key)
