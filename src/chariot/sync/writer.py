"""One sink's writer: a bounded queue fed by the reader, drained by its own thread.

A writer never blocks the reader for good: when its sink fails it keeps taking batches off
its queue (and drops them, the checkpoint stays where the last good batch left it), and the
reader's ``offer`` gives up waiting as soon as the writer thread has ended for any reason.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

from chariot.batch import Batch, split_batch
from chariot.errors import ChariotError
from chariot.progress import ProgressCallback, State, notify
from chariot.redaction import redact
from chariot.sinks.base import Sink
from chariot.streams import Stream
from chariot.sync.pause_hook import pause_after_commit
from chariot.sync.results import SinkTableResult

log = logging.getLogger(__name__)

_END = None  # the reader's "no more batches" marker


class SinkWriter:
    def __init__(
        self, sink: Sink, *, queue_batches: int, max_attempts: int, batch_rows: int
    ) -> None:
        self.sink = sink
        # Rows per sink transaction: a larger batch from the reader is written in pieces.
        self.batch_rows = batch_rows
        self.max_attempts = max_attempts
        self.queue: queue.Queue[Batch | None] = queue.Queue(maxsize=queue_batches)
        self.finished = threading.Event()
        self.stop = threading.Event()  # set by the conductor on interrupt: drop what is left
        self.failure: str | None = None  # first failure; later tables are skipped
        self.result: SinkTableResult | None = None
        self.committed = 0  # batches written this run (the crash test's hook counts them)

    @property
    def name(self) -> str:
        return self.sink.name

    # -- reader side ---------------------------------------------------------------------

    def start_table(self, result: SinkTableResult) -> None:
        self.result = result
        self.finished.clear()
        self.queue = queue.Queue(maxsize=self.queue.maxsize)

    def offer(self, batch: Batch | None) -> None:
        """Hand a batch (or the end marker) over, in pieces of at most ``batch_rows`` rows
        (``split_batch``); returns early if the thread is gone."""
        for piece in [None] if batch is None else split_batch(batch, self.batch_rows):
            while not self.finished.is_set():
                try:
                    self.queue.put(piece, timeout=0.2)
                    break
                except queue.Full:
                    continue

    @property
    def accepting(self) -> bool:
        return self.failure is None and not self.finished.is_set()

    # -- writer thread -------------------------------------------------------------------

    def run(self, stream: Stream, expected: int | None, progress: ProgressCallback | None) -> None:
        """The thread body for one table: write every batch until the end marker."""
        result = self.result
        assert result is not None
        started = time.perf_counter()
        self._report(progress, result, expected, "running")
        try:
            for batch in self._batches():
                if self.failure is not None or self.stop.is_set():
                    continue  # keep draining so the reader never waits on us
                try:
                    self._write(batch, result)
                except BaseException as error:  # any failure ends this sink only, not the run
                    self._fail(result, stream, error)
                    self._report(progress, result, expected, "failed")
                    continue
                self._report(progress, result, expected, "running")
        finally:
            result.seconds = round(time.perf_counter() - started, 3)
            if self.failure is None:
                self._report(progress, result, expected, "done")
            self.finished.set()

    def _batches(self) -> Iterator[Batch]:
        """The queued batches up to the end marker. Before one is handed out, the next is
        taken too if the reader has queued it already, and staged: the sink can convert
        its rows while the current batch's transaction runs in the database."""
        item = self.queue.get()
        while item is not _END:
            try:
                upcoming, queued = self.queue.get_nowait(), True
            except queue.Empty:
                upcoming, queued = None, False
            if upcoming is not None and self.failure is None and not self.stop.is_set():
                self.sink.stage(upcoming)
            yield item
            item = upcoming if queued else self.queue.get()

    def _write(self, batch: Batch, result: SinkTableResult) -> None:
        for attempt in range(1, self.max_attempts + 1):
            try:
                written = self.sink.write(batch)
                break
            except Exception as error:
                if attempt >= self.max_attempts or not self.sink.is_transient(error):
                    raise
                delay = min(0.5 * 2 ** (attempt - 1), 8.0)
                log.warning(
                    "sink write failed, retrying",
                    extra={
                        "sink": self.name,
                        "table": batch.stream.name,
                        "attempt": attempt,
                        "retry_in_s": delay,
                        "error": describe_error(error),
                    },
                )
                time.sleep(delay)
        result.rows_written += written.written
        result.rows_rejected += len(written.rejected)
        if batch.last_key:
            result.checkpoint_after = list(batch.last_key)
        self.committed += 1
        pause_after_commit(self.name, batch, self.committed)

    def _fail(self, result: SinkTableResult, stream: Stream, error: BaseException) -> None:
        self.failure = describe_error(error)
        result.status = "failed"
        result.error = self.failure
        result.error_kind = error_kind(error)
        result.error_hint = getattr(error, "hint", None)
        log.info(
            "sink failed",
            extra={"sink": self.name, "table": stream.name, "error": self.failure},
            exc_info=not isinstance(error, ChariotError),
        )

    def _report(
        self,
        progress: ProgressCallback | None,
        result: SinkTableResult,
        expected: int | None,
        state: State,
    ) -> None:
        done = result.rows_written + result.rows_rejected
        notify(progress, f"{result.table} -> {result.sink}", done, expected, state=state)


def error_kind(error: BaseException) -> str:
    """The exit-code kind a failure stands for: a ``ChariotError``'s own, else "sink_write"."""
    return error.exit_code.kind if isinstance(error, ChariotError) else "sink_write"


def describe_error(error: BaseException) -> str:
    """One line naming the cause, secrets masked (results and status show it as it is)."""
    if isinstance(error, ChariotError):
        return redact(str(error))
    message = getattr(error, "message", None) or str(error)
    first = message.strip().splitlines()[0] if message.strip() else ""
    name = type(error).__name__
    return redact(f"{name}: {first}" if first else name)
