"""`chariot sync` into PostgreSQL against real servers: ml-latest-small exactly, incremental
runs, rejects, dry runs, status, and a source that fails mid-read."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.errors import SourceReadError
from chariot.sync import Progress, sync
from tests.movielens_project import RATINGS, STREAMS_BY_NAME
from tests.movielens_rules import split_genres, title_year
from tests.sync_support import (
    assert_postgres_equals_source,
    checkpoints,
    create_source_tables,
    expected_postgres,
    mysql_execute,
    postgres_rows,
    postgres_scalar,
    seed_movielens,
    source_rows,
)

pytestmark = pytest.mark.integration


def _csv(directory: Path, name: str) -> list[list[str]]:
    with open(directory / f"{name}.csv", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))[1:]


def _from_csv(directory: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What PostgreSQL must hold, straight from the CSV files (independent of MySQL)."""
    movies = [(int(m), t, split_genres(g), title_year(t)) for m, t, g in _csv(directory, "movies")]
    links = [(int(m), i, int(t) if t else None) for m, i, t in _csv(directory, "links")]
    ratings = [(int(u), int(m), Decimal(r), int(ts)) for u, m, r, ts in _csv(directory, "ratings")]
    tags = [(int(u), int(m), tag, int(ts)) for u, m, tag, ts in _csv(directory, "tags")]
    shaped = {"movies": movies, "links": links, "ratings": ratings, "tags": tags}
    return {name: sorted(rows, key=repr) for name, rows in shaped.items()}


def _parts(output: str) -> dict[tuple[str, str], dict[str, Any]]:
    result = json.loads(output)
    return {(part["table"], part["sink"]): part for t in result["tables"] for part in t["sinks"]}


def test_movielens_lands_in_postgres_row_for_row_and_column_for_column(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    outcome = cli("sync", "--sink", "postgres", "--json", settings=sql_settings)
    assert outcome.exit_code == 0, outcome.output
    parts = _parts(outcome.stdout)
    expected = _from_csv(movielens_dir)
    for table, rows in expected.items():
        assert postgres_rows(sql_settings.postgres, table) == rows, table
        assert parts[(table, "postgres")]["rows_written"] == len(rows)
        assert parts[(table, "postgres")]["status"] == "ok"
    assert [len(expected[t]) for t in ("movies", "links", "ratings", "tags")] == [
        9742,
        9742,
        100836,
        3683,
    ]

    pg = sql_settings.postgres
    assert postgres_scalar(pg, "SELECT count(*) FROM {schema}.movies WHERE genres = '{}'") == 34
    assert postgres_scalar(pg, "SELECT count(*) FROM {schema}.movies WHERE year IS NULL") == 13
    assert postgres_scalar(pg, "SELECT count(*) FROM {schema}.links WHERE tmdb_id IS NULL") == 8
    assert postgres_scalar(pg, "SELECT imdb_id FROM {schema}.links WHERE movie_id = 1") == "0114709"
    assert postgres_scalar(pg, "SELECT count(DISTINCT tag) FROM {schema}.tags") == 1589
    assert postgres_scalar(pg, "SELECT count(DISTINCT lower(tag)) FROM {schema}.tags") == 1475
    title = postgres_scalar(pg, "SELECT title FROM {schema}.movies WHERE movie_id = 4973")
    assert title == "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)"
    assert checkpoints(pg) == {
        "movies": [193609],
        "links": [193609],
        "ratings": [610, 170875],
        "tags": [610, 168248, "Heroic Bloodshed"],
    }


def test_a_first_load_counts_no_rows_first_and_a_resumed_one_does(
    sql_settings: Settings, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the beginning the whole table is read anyway: no COUNT(*) first (the rows read
    are the rows pending); above a checkpoint the count still decides what is pending."""
    from chariot.sources.sql import SqlSource

    seed_movielens(sql_settings.mysql, movielens_dir)
    counted: list[tuple[str, Any]] = []
    count = SqlSource.count

    def recording(self: SqlSource, stream: Any, *, after: Any = None) -> int:
        counted.append((stream.name, after))
        return count(self, stream, after=after)

    monkeypatch.setattr(SqlSource, "count", recording)
    first = sync(sql_settings, sinks=["postgres"], tables=["ratings"])
    (part,) = first.tables[0].sinks
    assert counted == []
    assert part.rows_pending == first.tables[0].rows_read == 100836
    assert part.rows_written + part.rows_rejected == 100836

    mysql_execute(sql_settings.mysql, "INSERT INTO ratings VALUES (611, 1, 4.5, 1)")
    resumed = sync(sql_settings, sinks=["postgres"], tables=["ratings"], mode="keyset")
    assert counted == [("ratings", (610, 170875))]
    assert resumed.tables[0].sinks[0].rows_pending == 1


@pytest.mark.parametrize("mode", ["keyset", "cdc"])
def test_a_second_sync_writes_nothing_and_new_rows_are_carried_exactly(
    sql_settings: Settings, movielens_dir: Path, mode: str
) -> None:
    """By keys, the new rows are read above each checkpoint; by change capture, a table
    whose copy finished is carried by the log alone (no keyset pass: nothing read)."""
    from chariot.seed import append_synthetic_ratings

    sql_settings.run.mode = mode  # type: ignore[assignment]
    seed_movielens(sql_settings.mysql, movielens_dir)
    sync(sql_settings, sinks=["postgres"])
    again = sync(sql_settings, sinks=["postgres"])
    assert [(t.table, t.rows_read) for t in again.tables] == [
        ("movies", 0),
        ("links", 0),
        ("ratings", 0),
        ("tags", 0),
    ]
    assert all(
        part.rows_written == 0 and part.rows_pending == 0 for t in again.tables for part in t.sinks
    )

    appended = append_synthetic_ratings(sql_settings.mysql, 500)
    mysql_execute(
        sql_settings.mysql,
        "INSERT INTO movies VALUES (200000, 'Brand New (2024)', 'Drama|Comedy')",
        "INSERT INTO links VALUES (200000, '0000042', NULL)",
        # New keys sort after the high-water marks (new users, new movies): see the docs on
        # rows inserted below a mark.
        "INSERT INTO tags VALUES (611, 200000, 'new', 1700000000), (611, 1, 'fresh', 1700000001)",
    )
    third = sync(sql_settings, sinks=["postgres"])
    written = {t.table: t.sinks[0].rows_written for t in third.tables}
    assert appended.ratings == 500 and third.mode == mode
    new_rows = {"movies": 1, "links": 1, "ratings": 500, "tags": 2}
    if mode == "keyset":
        assert written == new_rows
    else:
        assert written == dict.fromkeys(new_rows, 0)
        assert [part.changes for part in third.changes] == [sum(new_rows.values())]
    assert_postgres_equals_source(sql_settings.mysql, sql_settings.postgres)


def test_bad_rows_are_reported_with_key_and_reason_and_the_rest_loads(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    mysql_execute(
        sql_settings.mysql,
        "UPDATE ratings SET rating = 7.5 WHERE userId = 1 AND movieId = 1",
        "UPDATE movies SET title = NULL WHERE movieId = 2",
    )
    outcome = cli("sync", "--sink", "postgres", "--json", settings=sql_settings)
    assert outcome.exit_code == 0, outcome.output
    parts = _parts(outcome.stdout)
    assert parts[("ratings", "postgres")]["rows_rejected"] == 1
    assert parts[("ratings", "postgres")]["rows_written"] == 100_835
    assert parts[("movies", "postgres")]["rows_rejected"] == 1
    for table in ("movies", "ratings"):
        loadable = [
            r
            for r in source_rows(sql_settings.mysql, STREAMS_BY_NAME[table])
            if r[:2] != (1, 1) and r[0] != 2 or table == "ratings" and r[:2] != (1, 1)
        ]
        assert postgres_rows(sql_settings.postgres, table) == expected_postgres(table, loadable)

    status = cli("status", "--json", settings=sql_settings, env={"CHARIOT_RUN__SINKS": "postgres"})
    report = json.loads(status.stdout)
    (postgres,) = report["rejects"]
    assert postgres["counts"] == {"movies": 1, "ratings": 1}
    assert {(r["table"], tuple(r["key"]), r["reason"]) for r in postgres["first"]} == {
        ("movies", (2,), "NULL title"),
        ("ratings", (1, 1), "rating outside 0.5-5.0"),
    }
    lags = {
        (c["sink"], c["table"]): (c["high_water_mark"], c["lag"]) for c in report["checkpoints"]
    }
    assert lags[("postgres", "ratings")] == ([610, 170875], 0)

    human = cli("status", settings=sql_settings, env={"CHARIOT_RUN__SINKS": "postgres"})
    assert "rating outside 0.5-5.0" in human.stdout and "[1, 1]" in human.stdout


def test_dry_run_counts_rows_after_each_checkpoint_and_changes_nothing(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    before = cli("sync", "--sink", "postgres", "--dry-run", "--json", settings=sql_settings)
    assert before.exit_code == 0, before.output
    assert {k: p["rows_pending"] for k, p in _parts(before.stdout).items()} == {
        ("movies", "postgres"): 9742,
        ("links", "postgres"): 9742,
        ("ratings", "postgres"): 100836,
        ("tags", "postgres"): 3683,
    }
    exists = "SELECT count(*) FROM pg_namespace WHERE nspname = %s"
    assert postgres_scalar(sql_settings.postgres, exists, (sql_settings.postgres.schema_name,)) == 0

    cli(
        "sync",
        "--sink",
        "postgres",
        "--table",
        "ratings",
        "--batch-size",
        "2000",
        settings=sql_settings,
    )
    mysql_execute(
        sql_settings.mysql, "INSERT INTO ratings VALUES (611, 1, 4.5, 1), (611, 2, 3.0, 2)"
    )
    after = cli("sync", "--sink", "postgres", "--dry-run", settings=sql_settings)
    assert after.exit_code == 0, after.output
    assert "dry run" in after.stdout
    parts = _parts(
        cli("sync", "-s", "postgres", "--dry-run", "--json", settings=sql_settings).stdout
    )
    assert parts[("ratings", "postgres")]["rows_pending"] == 2
    assert parts[("ratings", "postgres")]["checkpoint_before"] == [610, 170875]
    assert parts[("movies", "postgres")]["rows_pending"] == 9742
    assert postgres_scalar(sql_settings.postgres, "SELECT count(*) FROM {schema}.ratings") == 100836
    # The sink's own batch size, unless --batch-size is given: the option beats it.
    own = {"CHARIOT_POSTGRES__BATCH_SIZE": "30"}
    for options, rows in (((), 30), (("--batch-size", "700"), 700)):
        planned = cli(
            "sync",
            "-s",
            "postgres",
            "--dry-run",
            "--json",
            *options,
            settings=sql_settings,
            env=own,
        )
        assert json.loads(planned.stdout)["sink_batch_sizes"] == {"postgres": rows}


def test_full_refresh_reloads_from_scratch(sql_settings: Settings) -> None:
    create_source_tables(sql_settings.mysql)
    mysql_execute(sql_settings.mysql, "INSERT INTO ratings VALUES (1, 1, 4.0, 1), (1, 2, 3.0, 2)")
    sync(sql_settings, sinks=["postgres"], tables=["ratings"])
    mysql_execute(sql_settings.mysql, "UPDATE ratings SET rating = 1.5 WHERE movieId = 1")
    assert sync(sql_settings, sinks=["postgres"], tables=["ratings"]).tables[0].rows_read == 0
    refreshed = sync(sql_settings, sinks=["postgres"], tables=["ratings"], full_refresh=True)
    assert refreshed.tables[0].sinks[0].rows_written == 2
    assert postgres_rows(sql_settings.postgres, "ratings") == [
        (1, 1, Decimal("1.5"), 1),
        (1, 2, Decimal("3.0"), 2),
    ]


def test_a_source_that_fails_mid_read_fails_the_run_and_checkpoints_stay_true(
    sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    settings = sql_settings.model_copy(
        update={
            # keyset: the key reader's own failure (change capture stops at the RENAME)
            "run": sql_settings.run.model_copy(
                update={"batch_size": 1000, "max_attempts": 2, "mode": "keyset"}
            )
        }
    )
    renamed: list[bool] = []

    def rename_once(event: Progress) -> None:
        if event.task == "ratings -> postgres" and event.done >= 3000 and not renamed:
            renamed.append(True)
            mysql_execute(settings.mysql, "RENAME TABLE ratings TO ratings_elsewhere")

    with pytest.raises(SourceReadError, match="reading table ratings"):
        sync(settings, sinks=["postgres"], tables=["ratings"], progress=rename_once)
    mysql_execute(settings.mysql, "RENAME TABLE ratings_elsewhere TO ratings")
    mark = checkpoints(settings.postgres)["ratings"]
    loaded = postgres_rows(settings.postgres, "ratings")
    source = source_rows(settings.mysql, RATINGS)
    position = [row[:2] for row in source].index(tuple(mark)) + 1
    assert 3000 <= position < len(source)
    assert loaded == expected_postgres("ratings", source[:position])  # no gap, nothing beyond

    resumed = sync(settings, sinks=["postgres"], tables=["ratings"])
    assert resumed.tables[0].sinks[0].rows_written == len(source) - position
    assert_postgres_equals_source(settings.mysql, settings.postgres, ("ratings",))


def test_bad_input_ends_in_one_clear_line(cli: Any, sql_settings: Settings) -> None:
    unknown_sink = cli("sync", "--sink", "kafka", settings=sql_settings)
    assert unknown_sink.exit_code == 2
    assert "unknown sink 'kafka'; installed sinks:" in unknown_sink.output
    unknown_table = cli("sync", "--table", "rating", "--sink", "postgres", settings=sql_settings)
    assert unknown_table.exit_code == 2
    assert "unknown table 'rating'; tables: movies, links, ratings, tags" in unknown_table.output
    bad_batch = cli("sync", "--batch-size", "0", "--sink", "postgres", settings=sql_settings)
    assert bad_batch.exit_code == 2 and "--batch-size" in bad_batch.output
    no_source = cli(
        "sync",
        "--sink",
        "postgres",
        settings=sql_settings,
        env={"CHARIOT_MYSQL__PASSWORD": "wrong-secret"},
    )
    assert no_source.exit_code == 3
    assert "wrong-secret" not in no_source.output and "Traceback" not in no_source.output
    # A project naming tables the source lacks: the project is wrong for this source (2),
    # said before anything is written (0.1.0 created `movies` in PostgreSQL, then failed).
    missing_tables = cli("sync", "--sink", "postgres", settings=sql_settings)
    assert missing_tables.exit_code == 2, missing_tables.output
    assert "tables.movies: the source has no table 'movies'" in missing_tables.output
    with postgres_connection(sql_settings.postgres) as connection:
        schema = sql_settings.postgres.schema_name
        created = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
    assert created == (0,)


def test_progress_is_reported_per_table_and_sink(sql_settings: Settings) -> None:
    create_source_tables(sql_settings.mysql)
    mysql_execute(
        sql_settings.mysql,
        ("INSERT INTO ratings VALUES (%s, %s, %s, %s)", [(1, m, "4.0", 1) for m in range(1, 8)]),
    )
    events: list[Progress] = []
    # keyset: a change-capture log phase that runs a second or more (a loaded machine, other
    # databases' traffic in the log) reports its own task's progress too
    run = sql_settings.run.model_copy(update={"batch_size": 3, "mode": "keyset"})
    settings = sql_settings.model_copy(update={"run": run})
    sync(settings, sinks=["postgres"], tables=["ratings"], progress=events.append)
    assert [(e.state, e.done, e.total) for e in events] == [
        ("running", 0, 7),
        ("running", 3, 7),
        ("running", 6, 7),
        ("running", 7, 7),
        ("done", 7, 7),
    ]
    assert {(e.task, e.unit) for e in events} == {("ratings -> postgres", "rows")}
