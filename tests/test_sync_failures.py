"""Failure semantics of the conductor: one sink failing leaves the other to finish, transient
errors are retried, the reader never hangs on a dead writer, sinks at different positions.

The second sink here is a real ``Sink`` subclass kept in memory (registered as an entry
point for the test), next to the real PostgreSQL sink.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chariot import plugins
from chariot.batch import Batch, Key, WriteResult
from chariot.config import Settings
from chariot.sinks.base import Sink
from chariot.streams import Stream
from chariot.sync import SyncResult, sync
from tests.movielens_project import MOVIES, RATINGS
from tests.sync_support import (
    assert_postgres_equals_source,
    checkpoints,
    mysql_execute,
    seed_movielens,
    source_rows,
)

pytestmark = pytest.mark.integration


class MemorySink(Sink):
    """Keeps rows and checkpoints in class attributes; fails on demand."""

    name = "memory"
    rows: ClassVar[dict[str, dict[Key, tuple[Any, ...]]]] = {}
    marks: ClassVar[dict[str, Key]] = {}
    fail_after_batches: ClassVar[int | None] = None  # then raise ``failure`` on every write
    failure: ClassVar[BaseException] = RuntimeError("disk on fire")
    transient_failures: ClassVar[int] = 0  # ConnectionErrors before each successful write
    writes: ClassVar[int] = 0
    attempts: ClassVar[int] = 0

    @classmethod
    def reset(cls) -> None:
        cls.rows, cls.marks, cls.writes, cls.attempts = {}, {}, 0, 0
        cls.fail_after_batches, cls.transient_failures = None, 0

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        self.rows.setdefault(stream.name, {})

    def checkpoint(self, stream: Stream) -> Key | None:
        return self.marks.get(stream.name)

    def write(self, batch: Batch) -> WriteResult:
        cls = type(self)
        cls.attempts += 1
        if self.fail_after_batches is not None and cls.writes >= self.fail_after_batches:
            raise self.failure
        if cls.transient_failures and cls.attempts % (cls.transient_failures + 1):
            raise ConnectionError("connection reset by peer")
        positions = batch.stream.key_positions
        table = self.rows[batch.stream.name]
        for row in batch.rows:
            table[tuple(row[i] for i in positions)] = tuple(row)
        self.marks[batch.stream.name] = batch.last_key
        cls.writes += 1
        return WriteResult(written=len(batch.rows), rejected=list(batch.rejects))


@pytest.fixture
def memory_sink(monkeypatch: pytest.MonkeyPatch) -> type[MemorySink]:
    real = plugins.installed
    extra = EntryPoint("memory", f"{__name__}:MemorySink", plugins.SINK_GROUP)

    def installed(group: str) -> dict[str, EntryPoint]:
        found = real(group)
        return {**found, "memory": extra} if group == plugins.SINK_GROUP else found

    monkeypatch.setattr(plugins, "installed", installed)
    MemorySink.reset()
    return MemorySink


@pytest.fixture
def ratings_source(sql_settings: Settings, movielens_dir: Path) -> Settings:
    seed_movielens(sql_settings.mysql, movielens_dir)
    run = sql_settings.run.model_copy(update={"batch_size": 2000, "queue_batches": 2})
    return sql_settings.model_copy(update={"run": run})


def _sync_with_watchdog(settings: Settings, **options: Any) -> SyncResult:
    """Run a sync in a thread: a hang fails the test instead of stalling the suite."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = sync(settings, **options)
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=180)
    assert not worker.is_alive(), "sync hung"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def test_a_failing_sink_leaves_the_other_to_finish(
    ratings_source: Settings, memory_sink: type[MemorySink], cli: Any
) -> None:
    memory_sink.fail_after_batches = 3  # dies early in movies; PostgreSQL must still finish
    result = _sync_with_watchdog(ratings_source, sinks=["postgres", "memory"])
    assert [f.line() for f in result.failures] == [
        "sink memory failed on table movies: RuntimeError: disk on fire"
    ]
    statuses = {(p.table, p.sink): p.status for t in result.tables for p in t.sinks}
    assert statuses[("movies", "memory")] == "failed"
    assert statuses[("ratings", "memory")] == "skipped"
    assert all(statuses[(t, "postgres")] == "ok" for t in ("movies", "links", "ratings", "tags"))
    assert_postgres_equals_source(ratings_source.mysql, ratings_source.postgres)
    movies = source_rows(ratings_source.mysql, MOVIES)
    assert memory_sink.marks["movies"] == movies[3 * 2000 - 1][:1]  # its last good batch
    assert len(memory_sink.rows["movies"]) == 6000

    memory_sink.reset()
    memory_sink.fail_after_batches = 0
    outcome = cli("sync", "--sink", "postgres", "--sink", "memory", settings=ratings_source)
    assert outcome.exit_code == 5
    assert "Error: sink memory failed on table movies: RuntimeError: disk on fire" in outcome.output
    assert "Traceback" not in outcome.output


def test_a_dead_writer_never_blocks_the_reader(
    ratings_source: Settings, memory_sink: type[MemorySink]
) -> None:
    """Queues of 2 batches, 51 ratings batches: the failed sink must keep draining."""
    memory_sink.fail_after_batches = 0
    result = _sync_with_watchdog(ratings_source, sinks=["postgres", "memory"], tables=["ratings"])
    assert result.tables[0].rows_read == 100_836
    assert result.tables[0].sinks[0].rows_written == 100_836
    assert len(result.failures) == 1


def test_when_every_sink_fails_reading_stops(
    ratings_source: Settings, memory_sink: type[MemorySink]
) -> None:
    memory_sink.fail_after_batches = 0
    result = _sync_with_watchdog(ratings_source, sinks=["memory"], tables=["ratings"])
    assert result.tables[0].rows_read < 100_836
    assert result.failures[0].table == "ratings"


def test_transient_errors_are_retried_with_backoff(
    ratings_source: Settings, memory_sink: type[MemorySink]
) -> None:
    memory_sink.transient_failures = 1  # every write fails once with a connection reset
    result = _sync_with_watchdog(ratings_source, sinks=["memory"], tables=["movies"])
    assert result.ok
    assert memory_sink.writes == 5 and memory_sink.attempts == 10
    assert len(memory_sink.rows["movies"]) == 9742


def test_transient_errors_give_up_after_max_attempts(
    ratings_source: Settings, memory_sink: type[MemorySink]
) -> None:
    memory_sink.transient_failures = 5
    settings = ratings_source.model_copy(
        update={"run": ratings_source.run.model_copy(update={"max_attempts": 2})}
    )
    result = _sync_with_watchdog(settings, sinks=["memory"], tables=["movies"])
    assert [f.line() for f in result.failures] == [
        "sink memory failed on table movies: ConnectionError: connection reset by peer"
    ]
    assert memory_sink.attempts == 2


def test_the_reader_starts_at_the_lowest_checkpoint_and_replays_are_harmless(
    ratings_source: Settings, memory_sink: type[MemorySink]
) -> None:
    ratings_source.run.mode = "keyset"  # the memory sink cannot apply the binary log
    sync(ratings_source, sinks=["postgres"], tables=["ratings"])  # PostgreSQL is ahead
    both = sync(ratings_source, sinks=["postgres", "memory"], tables=["ratings"])
    table = both.tables[0]
    assert table.read_from is None and table.rows_read == 100_836
    parts = {p.sink: p for p in table.sinks}
    assert parts["postgres"].rows_pending == 0 and parts["memory"].rows_pending == 100_836
    assert len(memory_sink.rows["ratings"]) == 100_836
    assert_postgres_equals_source(ratings_source.mysql, ratings_source.postgres, ("ratings",))
    assert checkpoints(ratings_source.postgres)["ratings"] == [610, 170875]

    mark = source_rows(ratings_source.mysql, RATINGS)[49_999][:2]
    memory_sink.marks["ratings"] = mark  # now memory is ahead of nobody, PostgreSQL is at the end
    mysql_execute(ratings_source.mysql, "INSERT INTO ratings VALUES (700, 1, 3.5, 1)")
    third = sync(ratings_source, sinks=["postgres", "memory"], tables=["ratings"])
    assert third.tables[0].read_from == list(mark)
    assert third.tables[0].rows_read == 100_836 - 50_000 + 1
    assert {p.sink: p.rows_pending for p in third.tables[0].sinks} == {
        "postgres": 1,
        "memory": 50_837,
    }
    assert_postgres_equals_source(ratings_source.mysql, ratings_source.postgres, ("ratings",))
