"""A first load into PostgreSQL COPYs without the table's primary key and builds it at the end.

Killed (SIGKILL, at a pause hook: deterministic) after any committed batch, including the
last one before the key is built, the table holds exactly the rows up to its checkpoint, once
each; the next run builds the key and completes the table. A batch PostgreSQL refuses a value
of, and rows that share a key, are handled with the key built first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.batch import Batch, Reject
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.sinks.postgres import PostgresSink
from chariot.sinks.postgres_layout import layout_for
from tests.conftest import settings_env
from tests.movielens_project import RATINGS
from tests.sync_support import checkpoints, expected_postgres, postgres_rows, source_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATINGS_ROWS = 20_000
BATCH_SIZE = 5_000  # 4 batches of ratings


def _primary_key(settings: Settings, table: str) -> str | None:
    with postgres_connection(settings.postgres) as connection:
        query = layout_for(RATINGS, settings.postgres.schema_name).key_constraint
        row = connection.execute(query).fetchone()
    return None if row is None else str(row[0])


def _killed_after(settings: Settings, tmp_path: Path, batches: int) -> None:
    marker = tmp_path / f"paused-{batches}.jsonl"
    env = {
        **os.environ,
        **settings_env(settings),
        "CHARIOT_RUN__BATCH_SIZE": str(BATCH_SIZE),
        "CHARIOT_TEST_PAUSE_AFTER_BATCHES": str(batches),
        "CHARIOT_TEST_PAUSE_MARKER": str(marker),
    }
    command = [sys.executable, "-m", "chariot", "--quiet", "sync", "--sink", "postgres"]
    command += ["--mode", "keyset", "--table", "ratings"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (marker.exists() and marker.read_text().endswith("\n")):
            assert process.poll() is None, "the sync ended before its pause"
            assert time.monotonic() < deadline, "no pause within 300 s"
            time.sleep(0.05)
    finally:
        process.kill()
        _, err = process.communicate()
    assert process.returncode == -signal.SIGKILL, err


def _sync(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **settings_env(settings), "CHARIOT_RUN__BATCH_SIZE": str(BATCH_SIZE)}
    command = [sys.executable, "-m", "chariot", "--quiet", "sync", "--sink", "postgres"]
    done = subprocess.run(
        [*command, "--mode", "keyset", "--table", "ratings"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("batches", [2, 4])  # mid-load; after the last batch, before the key
def test_a_first_load_killed_without_its_key_loses_and_doubles_nothing(
    sql_settings: Settings, tmp_path: Path, batches: int
) -> None:
    from chariot.seed import seed_synthetic

    seed_synthetic(sql_settings.mysql, RATINGS_ROWS, seed=5)
    source = source_rows(sql_settings.mysql, RATINGS)
    shaped = {tuple(row[:2]): tuple(row) for row in expected_postgres("ratings", source)}
    expected = [shaped[tuple(row[:2])] for row in source]  # in source key order

    _killed_after(sql_settings, tmp_path, batches)

    assert _primary_key(sql_settings, "ratings") is None  # the kill landed before the key
    stored = postgres_rows(sql_settings.postgres, "ratings")
    covered = batches * BATCH_SIZE
    assert len(stored) == covered  # no duplicate: exactly the rows up to the checkpoint
    assert sorted(stored) == sorted(expected[:covered])
    assert checkpoints(sql_settings.postgres)["ratings"] == list(source[covered - 1][:2])

    _sync(sql_settings, tmp_path)

    assert _primary_key(sql_settings, "ratings") is not None
    assert sorted(postgres_rows(sql_settings.postgres, "ratings")) == sorted(expected)


def _sink(settings: Settings) -> PostgresSink:
    return PostgresSink(settings)


def test_a_refused_value_in_a_first_load_is_a_reject_with_the_key_built(
    sql_settings: Settings,
) -> None:
    with _sink(sql_settings) as sink:
        sink.prepare(RATINGS)
        assert _primary_key(sql_settings, "ratings") is None
        rows = [(1, 1, Decimal("4.0"), 1), (1, 2, Decimal("45.0"), 2), (1, 3, Decimal("3.0"), 3)]
        written = sink.write(Batch(RATINGS, rows, (1, 3)))  # 45.0 does not fit numeric(2,1)
        assert written.written == 2 and [r.key for r in written.rejected] == [(1, 2)]
        assert _primary_key(sql_settings, "ratings") is not None
        assert len(postgres_rows(sql_settings.postgres, "ratings")) == 2


def test_rows_sharing_a_key_keep_the_last_written_when_the_key_is_built(
    sql_settings: Settings,
) -> None:
    """The safety net the key was during the load: a wrong proof still ends in one row."""
    with _sink(sql_settings) as sink:
        sink.prepare(RATINGS)
        sink.write(Batch(RATINGS, [(1, 1, Decimal("4.0"), 1)], (1, 1)))
        sink.write(Batch(RATINGS, [(1, 1, Decimal("2.5"), 9)], (1, 1)))  # a replay, newer
        sink.table_complete(RATINGS)
    assert _primary_key(sql_settings, "ratings") is not None
    rows: list[Any] = postgres_rows(sql_settings.postgres, "ratings")
    assert [tuple(row) for row in rows] == [(1, 1, Decimal("2.5"), 9)]


def test_a_replayed_batch_builds_the_key_and_doubles_nothing(sql_settings: Settings) -> None:
    """The sink's contract: replaying a batch is harmless at any time, key or not."""
    first = [(1, 1, Decimal("4.0"), 1), (1, 2, Decimal("3.0"), 2)]
    with _sink(sql_settings) as sink:
        sink.prepare(RATINGS)
        sink.write(Batch(RATINGS, first, (1, 2)))
        assert _primary_key(sql_settings, "ratings") is None  # increasing keys: key-less
        sink.write(Batch(RATINGS, [(1, 3, Decimal("1.0"), 3)], (1, 3)))
        assert _primary_key(sql_settings, "ratings") is None
        sink.write(Batch(RATINGS, first, (1, 2)))  # a replay: the key first, then the upsert
        assert _primary_key(sql_settings, "ratings") is not None
        assert len(postgres_rows(sql_settings.postgres, "ratings")) == 3
        sink.write(Batch(RATINGS, [(2, 1, Decimal("5.0"), 4)], (2, 1)))
        sink.table_complete(RATINGS)
    rows = [tuple(row) for row in postgres_rows(sql_settings.postgres, "ratings")]
    assert sorted(rows) == sorted([*first, (1, 3, Decimal("1.0"), 3), (2, 1, Decimal("5.0"), 4)])


@pytest.mark.parametrize(
    "second",
    [
        [(1, 2, Decimal("2.0"), 7)],  # overlaps the last key written, newer value
        [(1, 1, Decimal("2.0"), 7)],  # an older batch
        [(1, 9, Decimal("2.0"), 7), (1, 5, Decimal("2.5"), 8)],  # keys out of order
        [],  # rejects only
    ],
)
def test_a_batch_not_above_the_last_key_is_upserted_with_the_key(
    sql_settings: Settings, second: list[tuple[Any, ...]]
) -> None:
    first = [(1, 1, Decimal("4.0"), 1), (1, 2, Decimal("3.0"), 2)]
    rejects = [] if second else [Reject("ratings", (1, 7), "test")]
    with _sink(sql_settings) as sink:
        sink.prepare(RATINGS)
        sink.write(Batch(RATINGS, first, (1, 2)))
        sink.write(Batch(RATINGS, second, (1, 9), rejects))
        assert _primary_key(sql_settings, "ratings") is not None
    expected = {tuple(row[:2]): tuple(row) for row in first}
    expected.update({tuple(row[:2]): tuple(row) for row in second})  # the later write wins
    rows = [tuple(row) for row in postgres_rows(sql_settings.postgres, "ratings")]
    assert sorted(rows) == sorted(expected.values())


def test_a_kill_during_the_key_build_leaves_the_table_as_it_was(
    sql_settings: Settings, tmp_path: Path
) -> None:
    """The key is built in one transaction: killed while it waits to build it (held back by
    a lock this test takes), the run leaves the table key-less with its rows; the next run
    builds it."""
    from chariot.seed import seed_synthetic

    seed_synthetic(sql_settings.mysql, RATINGS_ROWS, seed=5)
    _killed_after(sql_settings, tmp_path, 4)
    assert _primary_key(sql_settings, "ratings") is None
    before = sorted(postgres_rows(sql_settings.postgres, "ratings"))

    qualified = f'"{sql_settings.postgres.schema_name}"."ratings"'
    building = "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
    building += " AND query LIKE %s AND (%s OR wait_event_type = 'Lock')"
    pattern = f"ALTER TABLE {qualified} ADD PRIMARY KEY%"

    def builders(*, waiting_only: bool) -> int:
        with postgres_connection(sql_settings.postgres) as probe:
            row = probe.execute(building, (pattern, not waiting_only)).fetchone()
        return int(row[0]) if row else 0

    env = {**os.environ, **settings_env(sql_settings), "CHARIOT_RUN__BATCH_SIZE": str(BATCH_SIZE)}
    command = [sys.executable, "-m", "chariot", "--quiet", "sync", "--sink", "postgres"]
    command += ["--mode", "keyset", "--table", "ratings"]
    with postgres_connection(sql_settings.postgres) as holder:
        holder.execute(f"LOCK TABLE {qualified} IN ACCESS SHARE MODE")  # held: a transaction
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not builders(waiting_only=True):
                assert process.poll() is None, "the sync ended before building the key"
                assert time.monotonic() < deadline, "the key build never waited on the lock"
                time.sleep(0.05)
        finally:
            process.kill()
            process.communicate()
        holder.rollback()  # the orphaned backend may now build the key: it cannot commit it
    assert process.returncode == -signal.SIGKILL

    deadline = time.monotonic() + 60
    while builders(waiting_only=False):
        assert time.monotonic() < deadline, "the orphaned key build never ended"
        time.sleep(0.05)
    assert _primary_key(sql_settings, "ratings") is None
    assert sorted(postgres_rows(sql_settings.postgres, "ratings")) == before

    _sync(sql_settings, tmp_path)
    assert _primary_key(sql_settings, "ratings") is not None
    assert len(postgres_rows(sql_settings.postgres, "ratings")) == RATINGS_ROWS


def test_a_first_load_written_in_pieces_stops_at_a_piece_with_exactly_its_rows(
    sql_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's batches of 10,000 rows go into PostgreSQL in pieces of 3,000, each with
    the last key of its own rows as the checkpoint: a run that fails on the third piece
    leaves exactly the first two pieces' rows, and the next run completes the table."""
    from chariot.seed import seed_synthetic
    from chariot.sync import conductor, sync

    seed_synthetic(sql_settings.mysql, RATINGS_ROWS, seed=5)
    source = source_rows(sql_settings.mysql, RATINGS)
    shaped = {tuple(row[:2]): tuple(row) for row in expected_postgres("ratings", source)}
    expected = [shaped[tuple(row[:2])] for row in source]
    run = sql_settings.run.model_copy(update={"batch_size": 10_000, "mode": "keyset"})
    pieces = sql_settings.postgres.model_copy(update={"batch_size": 3_000})
    settings = sql_settings.model_copy(update={"run": run, "postgres": pieces})
    monkeypatch.setattr(conductor, "reader_batch_rows", lambda stream, sizes: 10_000)
    written: list[int] = []
    write = PostgresSink.write

    def failing_third(sink: PostgresSink, batch: Batch) -> Any:
        written.append(len(batch))
        if len(written) == 3:
            raise RuntimeError("the third piece fails")
        return write(sink, batch)

    monkeypatch.setattr(PostgresSink, "write", failing_third)
    failed = sync(settings, sinks=["postgres"], tables=["ratings"])
    assert not failed.ok and written == [3_000, 3_000, 3_000]
    assert _primary_key(sql_settings, "ratings") is None  # a first load, key-less so far
    assert checkpoints(sql_settings.postgres)["ratings"] == list(source[6_000 - 1][:2])
    stored = postgres_rows(sql_settings.postgres, "ratings")
    assert len(stored) == 6_000 and sorted(stored) == sorted(expected[:6_000])

    monkeypatch.setattr(PostgresSink, "write", write)
    assert sync(settings, sinks=["postgres"], tables=["ratings"]).ok
    assert _primary_key(sql_settings, "ratings") is not None
    assert sorted(postgres_rows(sql_settings.postgres, "ratings")) == sorted(expected)
