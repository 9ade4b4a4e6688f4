"""Each sink ends a table (``table_complete``: PostgreSQL builds a first load's key there) as
soon as it has written the table's last batch, not when the slowest sink has: its closing
work overlaps the other sinks' writes. A table whose read failed is never ended."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from chariot.batch import Batch, Key, WriteResult
from chariot.config import Settings
from chariot.errors import SourceReadError
from chariot.project.streams import default_streams
from chariot.sinks.base import Sink
from chariot.sources.base import Source
from chariot.streams import Stream
from chariot.sync.conductor import _TableRun
from chariot.sync.writer import SinkWriter

RATINGS = next(stream for stream in default_streams() if stream.name == "ratings")
ROWS = [(1, movie, None, movie) for movie in range(1, 7)]


class _Source(Source):
    name = "memory"

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__(Settings())
        self.fail = fail

    def read(self, stream: Stream, *, after: Key | None, batch_size: int) -> Iterator[Batch]:
        yield Batch(stream, ROWS[:3], ROWS[2][:2])
        if self.fail:
            raise SourceReadError("the source went away")
        yield Batch(stream, ROWS[3:], ROWS[-1][:2])

    def count(self, stream: Stream, *, after: Key | None = None) -> int:
        return len(ROWS)


class _Sink(Sink):
    """Completes by setting ``completed``; a ``waits_for`` sink will not write its last batch
    before that other sink has completed the table (bounded, so a failure cannot hang)."""

    def __init__(self, name: str, waits_for: _Sink | None = None) -> None:
        super().__init__(Settings())
        self.name = name  # type: ignore[misc]
        self.waits_for = waits_for
        self.completed = threading.Event()
        self.saw_the_other_complete: bool | None = None

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        pass

    def checkpoint(self, stream: Stream) -> Key | None:
        return None

    def write(self, batch: Batch) -> WriteResult:
        if self.waits_for is not None and batch.last_key == ROWS[-1][:2]:
            self.saw_the_other_complete = self.waits_for.completed.wait(timeout=10)
        return WriteResult(written=len(batch), rejected=[])

    def table_complete(self, stream: Stream) -> None:
        self.completed.set()


def _run(source: Source, *sinks: Sink) -> None:
    writers = [SinkWriter(sink, queue_batches=4, max_attempts=1, batch_rows=10) for sink in sinks]
    _TableRun(RATINGS, source, writers, Settings(), full_refresh=True, progress=None).run()


def test_a_fast_sink_ends_the_table_while_a_slow_one_still_writes() -> None:
    fast = _Sink("fast")
    slow = _Sink("slow", waits_for=fast)
    _run(_Source(), fast, slow)
    assert slow.saw_the_other_complete is True
    assert fast.completed.is_set() and slow.completed.is_set()


def test_a_table_whose_read_failed_is_not_ended() -> None:
    sinks = _Sink("one"), _Sink("two")
    with pytest.raises(SourceReadError):
        _run(_Source(fail=True), *sinks)
    assert not any(sink.completed.is_set() for sink in sinks)
