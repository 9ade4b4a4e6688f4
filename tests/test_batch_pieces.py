"""A sink whose transactions are best smaller than the reader's batch writes each batch in
pieces (``batch.split_batch``): every row once, in order, each piece's checkpoint the key of
its own last row, the batch's checkpoint and rejects on the last piece."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.batch import Batch, Key, Reject, WriteResult, split_batch
from chariot.config import POSTGRES_BATCH_ROWS, Settings, sink_batch_size, with_batch_size
from chariot.project.streams import default_streams
from chariot.sinks.base import Sink
from chariot.streams import Stream
from chariot.sync.conductor import reader_batch_rows
from chariot.sync.results import SinkTableResult
from chariot.sync.writer import SinkWriter

STREAMS = {stream.name: stream for stream in default_streams()}
RATINGS, TAGS = STREAMS["ratings"], STREAMS["tags"]


def _rows(count: int) -> list[tuple[Any, ...]]:
    return [(1 + n // 3, 1 + n % 3 * 7, None, n) for n in range(count)]


@settings(deadline=None)  # a loaded machine; the first Arrow table imports pyarrow
@given(st.integers(1, 40), st.integers(1, 12), st.booleans())
def test_pieces_hold_every_row_once_with_valid_checkpoints(
    count: int, size: int, arrow: bool
) -> None:
    rows = _rows(count)
    reject = Reject("ratings", (99, 1), "rating outside 0.5-5.0")
    last_key = (99, 1)  # a reject after the last row moved the mark past it
    if arrow:
        columns = pa.table(list(zip(*rows, strict=True)), names=list(RATINGS.source_columns))
        batch = Batch(RATINGS, None, last_key, [reject], columns=columns)
    else:
        batch = Batch(RATINGS, rows, last_key, [reject])
    pieces = split_batch(batch, size)
    assert [row for piece in pieces for row in piece.rows] == rows
    assert all(0 < len(piece) <= size for piece in pieces)
    assert len(pieces) == -(-count // size)
    for piece in pieces[:-1]:
        assert piece.last_key == piece.rows[-1][:2] and piece.rejects == []
    assert pieces[-1].last_key == last_key and pieces[-1].rejects == [reject]


def test_a_batch_of_rejects_only_or_within_the_size_stays_whole() -> None:
    empty = Batch(RATINGS, [], (5, 5), [Reject("ratings", (5, 5), "NULL rating")])
    assert split_batch(empty, 1) == [empty]
    small = Batch(RATINGS, _rows(3), (1, 15))
    assert split_batch(small, 3) == [small]


def test_keys_that_are_not_integers_are_not_split() -> None:
    rows = [(1, 1, f"tag{n}", n) for n in range(5)]
    batch = Batch(TAGS, rows, (1, 1, "tag4"))
    assert split_batch(batch, 2) == [batch]


def test_the_reader_reads_what_the_largest_sink_takes_when_it_can_split() -> None:
    assert reader_batch_rows(RATINGS, [10_000, 50_000]) == 50_000
    assert reader_batch_rows(TAGS, [10_000, 50_000]) == 10_000  # a text key: the smallest


def test_postgres_has_its_own_batch_size_unless_the_run_sets_one() -> None:
    assert sink_batch_size(Settings(), "postgres") == POSTGRES_BATCH_ROWS
    assert sink_batch_size(Settings(), "neo4j") == Settings().run.batch_size
    run = Settings().run.model_copy(update={"batch_size": 700})
    assert sink_batch_size(Settings(run=run), "postgres") == 700
    own = Settings(run=run).postgres.model_copy(update={"batch_size": 30})
    assert sink_batch_size(Settings(run=run, postgres=own), "postgres") == 30
    assert sink_batch_size(Settings(run=run), "some_plugin") == 700


class _Recording(Sink):
    name = "recording"

    def __init__(self) -> None:
        super().__init__(Settings())
        self.written: list[tuple[Key, int, int]] = []

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        pass

    def checkpoint(self, stream: Stream) -> Key | None:
        return None

    def write(self, batch: Batch) -> WriteResult:
        self.written.append((batch.last_key, len(batch), len(batch.rejects)))
        return WriteResult(written=len(batch), rejected=batch.rejects)


def test_the_writer_commits_each_piece_with_its_own_checkpoint() -> None:
    sink = _Recording()
    writer = SinkWriter(sink, queue_batches=10, max_attempts=1, batch_rows=3)
    result = SinkTableResult(table="ratings", sink=sink.name)
    writer.start_table(result)
    rows = _rows(7)
    writer.offer(Batch(RATINGS, rows, rows[-1][:2], [Reject("ratings", (3, 1), "x")]))
    writer.offer(None)
    writer.run(RATINGS, 7, None)
    assert sink.written == [(rows[2][:2], 3, 0), (rows[5][:2], 3, 0), (rows[6][:2], 1, 1)]
    assert result.rows_written == 7 and result.rows_rejected == 1
    assert result.checkpoint_after == list(rows[6][:2])


def test_the_batch_size_option_beats_every_sinks_own_setting() -> None:
    base = Settings()
    own = Settings(
        postgres=base.postgres.model_copy(update={"batch_size": 30}),
        neo4j=base.neo4j.model_copy(update={"batch_size": 40}),
    )
    given = with_batch_size(own, 700)
    assert [sink_batch_size(given, sink) for sink in ("postgres", "neo4j")] == [700, 700]
    assert given.run.batch_size == 700
    assert [sink_batch_size(own, sink) for sink in ("postgres", "neo4j")] == [30, 40]
