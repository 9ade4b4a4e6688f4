"""The sink writer stages the batch after the one it writes, when the reader has queued it:
every batch is still written once, in order, and staging is never a write."""

from __future__ import annotations

from typing import Any

from chariot.batch import Batch, Key, WriteResult
from chariot.config import Settings
from chariot.project.streams import default_streams
from chariot.sinks.base import Sink
from chariot.streams import Stream
from chariot.sync.results import SinkTableResult
from chariot.sync.writer import SinkWriter

RATINGS = next(stream for stream in default_streams() if stream.name == "ratings")


class RecordingSink(Sink):
    """Keeps the order of ``stage`` and ``write`` calls (no database: the writer's logic)."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__(Settings())
        self.calls: list[tuple[str, Key]] = []

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        pass

    def checkpoint(self, stream: Stream) -> Key | None:
        return None

    def stage(self, batch: Batch) -> None:
        self.calls.append(("stage", batch.last_key))

    def write(self, batch: Batch) -> WriteResult:
        self.calls.append(("write", batch.last_key))
        return WriteResult(written=len(batch))

    def describe(self) -> str:
        return "recording"


def batches(count: int) -> list[Batch]:
    rows: list[tuple[Any, ...]] = [(n, 1, None, 0) for n in range(1, count + 1)]
    return [Batch(RATINGS, [row], last_key=row[:2]) for row in rows]


def run_writer(queued: list[Batch]) -> list[tuple[str, Key]]:
    sink = RecordingSink()
    writer = SinkWriter(sink, queue_batches=len(queued) + 1, max_attempts=1, batch_rows=10_000)
    writer.start_table(SinkTableResult(table="ratings", sink=sink.name))
    for item in queued:
        writer.offer(item)
    writer.offer(None)
    writer.run(RATINGS, len(queued), None)
    return sink.calls


def test_each_batch_is_staged_before_the_one_ahead_of_it_is_written() -> None:
    keys = [b.last_key for b in batches(3)]
    assert run_writer(batches(3)) == [
        ("stage", keys[1]),
        ("write", keys[0]),
        ("stage", keys[2]),
        ("write", keys[1]),
        ("write", keys[2]),
    ]


def test_a_single_batch_is_written_without_staging() -> None:
    (only,) = batches(1)
    assert run_writer([only]) == [("write", only.last_key)]


def test_no_batches_no_calls() -> None:
    assert run_writer([]) == []
