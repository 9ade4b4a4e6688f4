"""The log phase of a change-capture sync: one binary-log reader, one applier per sink.

The reader thread reads whole source transactions from the lowest position any sink holds
for the selected tables and hands each to every sink's applier through a bounded queue.
An applier keeps the changes its sink has not applied yet (``chariot.cdc.fold``), folds
the transactions waiting in its queue into one batch (more under load, one when idle: low
lag either way), adds what the source's foreign-key actions did, and has its sink apply
the batch with the position after it in ONE transaction. A source transaction larger than
the sink's ``max_changes_per_transaction`` is applied in chunks, each position recording
how far into it the sink got.

Without ``follow`` the read ends at the log position taken when the phase starts; with it
the read goes on until ``stop`` is set, which is checked between transactions.

With watermark snapshots (``CHARIOT_RUN__SNAPSHOT=watermark``, ``chariot.cdc.watermark``)
a producer thread copies the tables that need a first copy chunk by chunk while the log is
read: the reader also reads the watermark table, and each chunk comes through it as a
transaction at its high watermark, for the sinks that copy the table only. A sink applies
a chunk alone in one batch, with the chunk's last key as the table's checkpoint, and once
the table's last chunk is in, calls ``table_complete``. Without ``follow`` the read then
goes on past the phase's end position until every chunk is in.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.fold import Folder, StreamIndex, chunk_position, merge, pending_changes
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import SourceTransaction, read_transactions
from chariot.cdc.watermark import ChunkedSnapshot, ChunkTransaction, SnapshotRequest
from chariot.config import Settings
from chariot.progress import ProgressCallback, notify
from chariot.sinks.base import ChangeSink
from chariot.streams import Stream
from chariot.sync.pause_hook import pause_after_apply
from chariot.sync.results import ChangeResult
from chariot.sync.writer import describe_error, error_kind

log = logging.getLogger(__name__)

_END = None
# An applier with nothing but empty transactions (other tables' traffic) stores its
# position at most this often: the position moves on without a transaction per event.
_IDLE_POSITION_SECONDS = 1.0
# How long whole transactions with changes wait for more to join their sink transaction
# (bounded by size too: a full batch goes at once). A few ms of lag for fewer commits.
_GATHER_SECONDS = 0.01
_GATHERED = object()  # the applier's own signal: the wait is over, flush

# Foreign-key actions the log lacks: (changes, sink) -> the changes they made.
ForeignKeys = Callable[[ChangeBatch, ChangeSink], list[Any]]
Validator = Callable[[Stream, dict[str, Any]], str | None]


@dataclass
class LogPhase:
    """What the log phase needs: the sinks, their positions, and the source's helpers."""

    settings: Settings
    streams: Sequence[Stream]
    sinks: dict[str, ChangeSink]
    positions: dict[str, dict[str, LogPosition]]  # sink -> table -> position
    validate: Validator
    foreign_keys: ForeignKeys | None = None
    follow: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    progress: ProgressCallback | None = None
    snapshots: Sequence[SnapshotRequest] = ()  # tables copied in chunks while the log runs


def apply_log(phase: LogPhase, stop_at: LogPosition | None) -> list[ChangeResult]:
    """Read the log from the lowest position and apply it to every sink; returns one
    result per sink. Raises the reader's error (after the appliers finished what was
    read before it): ``SchemaChanged``, ``LogPositionPurged``, ``SourceReadError``."""
    streams = StreamIndex(phase.streams)
    appliers = [
        _Applier(name, sink, phase, streams, dict(phase.positions.get(name, {})))
        for name, sink in phase.sinks.items()
    ]
    appliers = [applier for applier in appliers if applier.positions]
    if not appliers:
        return []
    start = min((p for a in appliers for p in a.positions.values()), key=lambda p: p.sort_key())
    start = LogPosition(start.file, start.offset)  # a chunk's transaction is read whole
    snapshot = _snapshot(phase, appliers)
    threads = [
        threading.Thread(target=a.run, name=f"chariot-apply-{a.name}", daemon=True)
        for a in appliers
    ]
    for thread in threads:
        thread.start()
    read_error: BaseException | None = None

    def stop() -> bool:
        if phase.stop.is_set() or not any(a.accepting for a in appliers):
            return True
        if snapshot is None:
            return False
        if snapshot.error is not None:
            return True
        # Without follow: once every chunk is in and the phase's end is passed.
        return not phase.follow and snapshot.finished and snapshot.reached(stop_at)

    try:
        if snapshot is not None:
            snapshot.start()
        transactions = read_transactions(
            phase.settings.mysql,
            [*phase.streams, snapshot.marks] if snapshot is not None else phase.streams,
            start,
            # The chunks come after the phase's end position: read on until they are in.
            follow=phase.follow or snapshot is not None,
            stop_at=None if phase.follow or snapshot is not None else stop_at,
            stop=stop,
            empty=True,
            passed=lambda table, after: (
                (snapshot is not None and table == snapshot.marks.source_table)
                or _passed(appliers, streams, table, after)
            ),
        )
        if snapshot is not None:
            transactions = snapshot.through(transactions)
        for transaction in transactions:
            for applier in appliers:
                applier.offer(transaction)
    except BaseException as error:  # the appliers still finish what was read
        read_error = error
        if not isinstance(error, Exception):
            phase.stop.set()
    finally:
        if snapshot is not None:
            snapshot.stop()
        for applier in appliers:
            applier.offer(_END)
        for thread in threads:
            thread.join()
    if read_error is None and snapshot is not None:
        read_error = snapshot.error
    if read_error is not None:
        raise read_error
    return [applier.result for applier in appliers]


def _snapshot(phase: LogPhase, appliers: list[_Applier]) -> ChunkedSnapshot | None:
    """The chunked copy of ``phase.snapshots`` for the sinks that read those tables."""
    reading = {a.name: a for a in appliers}
    requests = []
    for request in phase.snapshots:
        sinks = frozenset(
            name
            for name in request.sinks
            if name in reading and request.stream.name in reading[name].positions
        )
        if sinks:
            requests.append(SnapshotRequest(request.stream, request.after, sinks))
    if not requests:
        return None
    # A chunk is applied in one sink transaction: no bigger than any sink takes at once.
    caps = [a.cap for a in appliers if a.cap is not None]
    rows = min([max(phase.settings.run.batch_size, 1), *caps])
    return ChunkedSnapshot(phase.settings, requests, rows, phase.streams)


def _passed(appliers: list[_Applier], streams: StreamIndex, table: str, after: LogPosition) -> bool:
    """A schema change of ``table`` is behind every sink that reads it (re-copied since)."""
    stream = streams.by_table.get(table)
    if stream is None:
        return False
    holding = [a.positions.get(stream.name) for a in appliers if stream.name in a.positions]
    return bool(holding) and all(p is not None and p.reached(after) for p in holding)


class _Applier:
    def __init__(
        self,
        name: str,
        sink: ChangeSink,
        phase: LogPhase,
        streams: StreamIndex,
        positions: dict[str, LogPosition],
    ) -> None:
        self.name = name
        self.sink = sink
        self.phase = phase
        self.streams = streams
        self.positions = {
            table: position for table, position in positions.items() if table in streams.by_name
        }
        self.queue: queue.Queue[SourceTransaction | None] = queue.Queue(
            maxsize=max(phase.settings.run.queue_batches, 1) * 1000
        )
        self.finished = threading.Event()
        self.failure: BaseException | None = None
        self.result = ChangeResult(
            sink=name,
            position_before=_lowest(self.positions),
            position_after=_lowest(self.positions),
        )
        self.batch_changes = max(phase.settings.run.batch_size, 1)
        self.cap = sink.max_changes_per_transaction
        self.committed = 0
        self.applied = dict(self.positions)  # what the sink has committed (``positions``:
        # what it has been handed)
        self._committer: _Committer | None = None
        self._last_flush = time.monotonic()
        self._gather_until: float | None = None  # flush what is pending by then

    @property
    def accepting(self) -> bool:
        return self.failure is None and not self.finished.is_set()

    def offer(self, transaction: SourceTransaction | None) -> None:
        while not self.finished.is_set():
            try:
                self.queue.put(transaction, timeout=0.2)
                return
            except queue.Full:
                continue

    # -- the applier thread ----------------------------------------------------------------

    def run(self) -> None:
        started = time.perf_counter()
        pending: list[SourceTransaction] = []
        self._committer = _Committer(self)
        try:
            while (transaction := self._next(pending)) is not _END:
                if self.failure is not None:
                    continue  # keep draining: the reader never waits on a failed sink
                try:
                    if transaction is _GATHERED and self._committer.busy:
                        # The sink is still on the batch before: gather on, so the next
                        # one is full rather than a few transactions taken early.
                        self._gather_until = time.monotonic() + _GATHER_SECONDS
                    elif transaction is _GATHERED:
                        self._flush(pending)
                        pending = []
                    else:
                        pending = self._take(cast(SourceTransaction, transaction), pending)
                except BaseException as error:
                    self._fail(error)
            if self.failure is None and pending:
                self._flush(pending)
        except BaseException as error:
            self._fail(error)
        finally:
            self._committer.close()
            self.result.seconds = round(time.perf_counter() - started, 3)
            self.finished.set()

    def _next(self, pending: list[SourceTransaction]) -> SourceTransaction | None | object:
        """The next queued transaction; ``_GATHERED`` once whole transactions with changes
        have waited ``_GATHER_SECONDS`` for more to share their sink transaction."""
        if not pending:
            self._gather_until = None
        if self._gather_until is None:
            return self.queue.get()
        try:
            return self.queue.get(timeout=max(self._gather_until - time.monotonic(), 0.0))
        except queue.Empty:
            return _GATHERED

    def _take(
        self, transaction: SourceTransaction, pending: list[SourceTransaction]
    ) -> list[SourceTransaction]:
        if isinstance(transaction, ChunkTransaction):
            if self.name not in transaction.sinks:
                transaction = transaction.as_empty()
            else:
                if pending:
                    self._flush(pending)
                self._apply_chunk(transaction)
                return []
        if self.cap is not None and len(transaction.changes) > self.cap:
            if pending:
                self._flush(pending)
            self._apply_in_chunks(transaction)
            return []
        pending.append(transaction)
        waiting = sum(len(t.changes) for t in pending)
        if waiting >= self.batch_changes or (self.cap is not None and waiting >= self.cap):
            self._flush(pending)
            return []
        if self.queue.empty():
            has_changes = any(t.changes for t in pending)
            idle_long = time.monotonic() - self._last_flush >= _IDLE_POSITION_SECONDS
            if idle_long or self.phase.stop.is_set():
                self._flush(pending)
                return []
            if has_changes and self._gather_until is None:
                # Wait a moment for more whole transactions: one sink transaction for
                # several costs its fixed part once (the reader is often just behind).
                self._gather_until = time.monotonic() + _GATHER_SECONDS
        return pending

    def _flush(self, transactions: list[SourceTransaction]) -> None:
        self._gather_until = None
        folder = Folder(self.streams, self.phase.validate)
        for transaction in transactions:
            folder.add(pending_changes(transaction, self.positions, self.streams))
            folder.transactions += 1
        last = transactions[-1]
        self._apply(folder, last.position, last.committed_at)

    def _apply_in_chunks(self, transaction: SourceTransaction) -> None:
        assert self.cap is not None
        pending = pending_changes(transaction, self.positions, self.streams)
        for start in range(0, len(pending), self.cap):
            chunk = pending[start : start + self.cap]
            end = chunk[-1][0] + 1 if start + self.cap < len(pending) else len(transaction.changes)
            folder = Folder(self.streams, self.phase.validate)
            folder.add(chunk)
            folder.transactions = 1 if end >= len(transaction.changes) else 0
            self._apply(folder, chunk_position(transaction, end), transaction.committed_at)
        if not pending:
            self._apply(Folder(self.streams, self.phase.validate), transaction.position, None)

    def _apply_chunk(self, chunk: ChunkTransaction) -> None:
        """A watermark snapshot's chunk, alone in its batch: its rows as upserts, its
        rejects, and its last key as the table's checkpoint, with the position."""
        assert chunk.stream is not None
        folder = Folder(self.streams, self.phase.validate)
        folder.add(pending_changes(chunk, self.positions, self.streams))
        self._apply(folder, chunk.position, chunk.committed_at, chunk=chunk)
        if chunk.last and self._settled():
            self.sink.table_complete(chunk.stream)

    def _apply(
        self,
        folder: Folder,
        position: LogPosition,
        committed_at: Any,
        *,
        chunk: ChunkTransaction | None = None,
    ) -> None:
        positioned = tuple(
            name for name, held in self.positions.items() if not held.reached(position)
        )
        if not positioned:
            return  # every table is past it already (another run got further)
        batch = folder.batch(position, positioned, committed_at)
        if chunk is not None:
            _add_chunk(batch, chunk)
        elif self.phase.foreign_keys is not None and batch.tables:
            # The lookup reads the sink, which must hold every batch before this one.
            parents = any(t.deletes or t.moved or t.replaced for t in batch.tables)
            if parents and not self._settled():
                return
            merge(batch, self.phase.foreign_keys(batch, self.sink), self.streams)
        self.sink.prepare_changes(batch)
        for name in positioned:
            self.positions[name] = position
        self._last_flush = time.monotonic()
        assert self._committer is not None
        self._committer.submit(batch)

    def _settled(self) -> bool:
        """Wait until the sink has committed every batch handed to it; False if one failed."""
        assert self._committer is not None
        self._committer.drain()
        return self.failure is None

    def _commit(self, batch: ChangeBatch) -> None:
        """On the committer's thread: the batch in one sink transaction, then its count."""
        self._with_retries(batch)
        for name in batch.positioned:
            self.applied[name] = batch.position
        self._count(batch)
        self.committed += 1
        pause_after_apply(self.name, batch.position.render(), self.committed)

    def _with_retries(self, batch: ChangeBatch) -> None:
        attempts = self.phase.settings.run.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                self.sink.apply(batch)
                return
            except Exception as error:
                if attempt >= attempts or not self.sink.is_transient(error):
                    raise
                delay = min(0.5 * 2 ** (attempt - 1), 8.0)
                log.warning(
                    "applying changes failed, retrying",
                    extra={"sink": self.name, "attempt": attempt, "error": describe_error(error)},
                )
                time.sleep(delay)

    def _count(self, batch: ChangeBatch) -> None:
        result = self.result
        result.transactions += batch.transactions
        result.changes += batch.changes
        for table in batch.tables:
            result.upserts += len(table.upserts)
            result.deletes += len(table.deletes)
            result.rejects += len(table.rejects)
        result.position_after = _lowest(self.applied)
        if batch.committed_at is not None:
            result.committed_at = batch.committed_at
        notify(
            self.phase.progress,
            f"changes -> {self.name}",
            result.changes,
            None,
            state="running",
        )

    def _fail(self, error: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = error
        self.result.status = "failed"
        self.result.error = describe_error(error)
        self.result.error_kind = error_kind(error)
        self.result.error_hint = getattr(error, "hint", None)
        log.info("sink failed applying changes", extra={"sink": self.name}, exc_info=True)


class _Committer:
    """An applier's sink transactions, in order, on a thread of their own: the applier
    folds and prepares the next batch (Python, under the GIL) while the sink's server works
    on this one (measured: the applier's own CPU was a fifth of a Neo4j batch's time). One
    batch at most waits behind the one committing, so memory stays bounded. After a
    failure the batches still handed to it are dropped: the sink keeps what it committed,
    each batch with its position."""

    def __init__(self, applier: _Applier) -> None:
        self.applier = applier
        self.queue: queue.Queue[ChangeBatch | None] = queue.Queue(maxsize=1)
        self.thread = threading.Thread(
            target=self._run, name=f"chariot-commit-{applier.name}", daemon=True
        )
        self.thread.start()

    def submit(self, batch: ChangeBatch) -> None:
        self.queue.put(batch)

    @property
    def busy(self) -> bool:
        """A batch is committing or waiting to."""
        return self.queue.unfinished_tasks > 0

    def drain(self) -> None:
        self.queue.join()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        while True:
            batch = self.queue.get()
            try:
                if batch is None:
                    return
                if self.applier.failure is None:
                    self.applier._commit(batch)
            except BaseException as error:
                self.applier._fail(error)
            finally:
                self.queue.task_done()


def _add_chunk(batch: ChangeBatch, chunk: ChunkTransaction) -> None:
    """The chunk's rejects and checkpoint (its rows are the batch's upserts already)."""
    stream = chunk.stream
    assert stream is not None
    if chunk.rejects:
        table = next((t for t in batch.tables if t.stream.name == stream.name), None)
        if table is None:
            table = TableChanges(stream)
            batch.tables.append(table)
        table.rejects += chunk.rejects
    if chunk.checkpoint is not None:
        batch.checkpoints[stream.name] = chunk.checkpoint


def _lowest(positions: dict[str, LogPosition]) -> str | None:
    if not positions:
        return None
    return min(positions.values(), key=lambda p: p.sort_key()).render()
