"""Incremental aggregation (issue #11, item 9): after changes the sink recorded group by
group, ``chariot aggregate`` recomputes only the touched groups, and the summaries (and
node properties) equal a full recomputation; an untracked change makes the run full.

The changes are made the way the PostgreSQL sink makes them in a change-capture
transaction: ``TouchedGroups.before_changes`` before the rows change, the change,
``after_changes``, one commit (``record_touched`` before and after, in one test)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from chariot.aggregate import incremental
from chariot.aggregate.declared import declared_aggregations
from chariot.aggregate.runner import AggregationResult, run_aggregation
from chariot.aggregate.snapshot import exported_snapshot
from chariot.aggregate.touched import (
    TOUCHED,
    TOUCHED_SETS,
    TouchedGroups,
    ensure_tracking_tables,
    forget_seen,
    invalidate_incremental,
    record_touched,
)
from chariot.aggregate.verify import check_summaries
from chariot.batch import Key
from chariot.config import PostgresSettings, RunSettings, Settings
from chariot.connections import neo4j_session, postgres_connect, postgres_connection
from chariot.errors import Busy
from chariot.project import Project, load_project
from chariot.project.streams import project_streams
from chariot.seed.synthetic import load_ratings_into_postgres
from chariot.streams import Stream
from tests.test_aggregate_sakila import sakila  # noqa: F401 - the module's Sakila fixture
from tests.test_aggregate_support import load_movielens, query, summaries

pytestmark = pytest.mark.integration

Change = tuple[str, Sequence[Any]]


def _streams(project: Project) -> dict[str, Stream]:
    return {stream.name: stream for stream in project_streams(project)}


def change(postgres: PostgresSettings, stream: Stream, keys: list[Key], *sql: Change) -> None:
    """One sink transaction: the groups of the rows before, the change, the groups after."""
    schema = postgres.schema_name
    with postgres_connection(postgres) as connection, connection.cursor() as cursor:
        groups = TouchedGroups(cursor, schema, [(stream, keys)])
        groups.before_changes()
        for statement, params in sql:
            cursor.execute(statement.replace("{schema}", f'"{schema}"'), params)
        groups.after_changes()
        connection.commit()


def change_recorded_twice(
    postgres: PostgresSettings, stream: Stream, keys: list[Key], *sql: Change
) -> None:
    """As ``change``, with the one-call-per-side ``record_touched``."""
    schema = postgres.schema_name
    with postgres_connection(postgres) as connection, connection.cursor() as cursor:
        record_touched(cursor, schema, stream, keys)
        for statement, params in sql:
            cursor.execute(statement.replace("{schema}", f'"{schema}"'), params)
        record_touched(cursor, schema, stream, keys)
        connection.commit()


def untracked(postgres: PostgresSettings, stream: Stream, *sql: Change) -> None:
    """A key-based write, a repair or a full refresh: rows change, groups unrecorded."""
    with postgres_connection(postgres) as connection, connection.cursor() as cursor:
        for statement, params in sql:
            cursor.execute(statement.replace("{schema}", f'"{postgres.schema_name}"'), params)
        invalidate_incremental(cursor, postgres.schema_name, stream)
        connection.commit()


def recomputed(result: AggregationResult) -> dict[str, int | None]:
    return {name: summary.groups_recomputed for name, summary in result.summaries.items()}


def genres_of(postgres: PostgresSettings, movies: Sequence[int]) -> set[str]:
    rows = query(
        postgres,
        "SELECT DISTINCT unnest(genres) FROM {schema}.movies WHERE movie_id = ANY(%s)",
        (list(movies),),
    )
    return {row[0] for row in rows}


@pytest.fixture
def movielens(settings: Settings, movielens_dir: Path) -> tuple[Settings, dict[str, Stream]]:
    """ml-latest-small in the sink's tables, written the way a first copy is (untracked)."""
    load_movielens(settings.postgres, movielens_dir)
    streams = _streams(load_project())
    for name in ("movies", "ratings"):
        untracked(settings.postgres, streams[name])
    return settings, streams


def test_only_touched_groups_are_recomputed_and_equal_a_full_run(
    movielens: tuple[Settings, dict[str, Stream]],
) -> None:
    settings, streams = movielens
    pg = settings.postgres
    first = run_aggregation(settings, workers=1)
    assert (first.mode, first.full_because) == ("full", "no summaries were promoted yet")
    assert first.graph_status == "done"

    again = run_aggregation(settings, workers=1)
    assert (again.action, again.mode, again.groups_recomputed) == ("unchanged", "incremental", 0)
    assert again.run_id == first.run_id and not again.promoted_now

    # A movie rated once (its group disappears), a rating that moves to another movie
    # (a key change: both groups), an updated rating, a rating of a movie not in movies.
    [(gone, gone_user)] = query(
        pg,
        "SELECT movie_id, min(user_id) FROM {schema}.ratings GROUP BY 1 HAVING count(*) = 1 "
        "ORDER BY 1 LIMIT 1",
    )
    [(moved_to,)] = query(
        pg,
        "SELECT movie_id FROM {schema}.movies WHERE movie_id NOT IN "
        "(SELECT movie_id FROM {schema}.ratings WHERE user_id = 1) AND movie_id > 3 "
        "AND movie_id <> %s ORDER BY 1 LIMIT 1",
        (gone,),
    )
    genres = genres_of(pg, [1, 3, gone, moved_to, 2]) | {"Documentary"}
    ratings, movies = streams["ratings"], streams["movies"]
    change(
        pg,
        ratings,
        [(1, 1), (gone_user, gone), (1, 3), (1, moved_to), (610, 999_999)],
        ("UPDATE {schema}.ratings SET rating = 0.5 WHERE user_id = 1 AND movie_id = 1", ()),
        ("DELETE FROM {schema}.ratings WHERE movie_id = %s", (gone,)),
        (
            "UPDATE {schema}.ratings SET movie_id = %s WHERE user_id = 1 AND movie_id = 3",
            (moved_to,),
        ),
        ("INSERT INTO {schema}.ratings VALUES (610, 999999, 4.5, 1700000000)", ()),
    )
    # A movie's genres change: only the aggregation joining movies is touched.
    change(
        pg,
        movies,
        [(2,)],
        ("UPDATE {schema}.movies SET genres = genres || '{Documentary}' WHERE movie_id = 2", ()),
    )

    result = run_aggregation(settings, workers=1)
    assert (result.action, result.mode, result.since_run) == ("computed", "incremental", 1)
    assert result.promoted_now and result.run_id > first.run_id
    assert recomputed(result) == {
        "movie_stats": 5,  # 1, 3, the moved-to movie, the gone one, 999999
        "user_stats": len({1, gone_user, 610}),
        "genre_stats": len(genres),
    }
    assert result.groups_recomputed == sum(recomputed(result).values())  # type: ignore[arg-type]
    assert result.summaries["movie_stats"].groups == 9_724  # one gone, one new
    assert result.graph_status == "done"
    assert result.graph_nodes_written == 4 and result.graph_nodes_cleared == 1
    check = check_summaries(settings)
    assert check.ok, check.model_dump_json(indent=1)
    with neo4j_session(settings.neo4j) as session:
        node = session.run("MATCH (m:Movie {movieId: $id}) RETURN m", id=gone).single()["m"]
    assert "ratingCount" not in node and "statsRunId" not in node  # as a full run leaves it
    incremental = summaries(pg)
    for table in (TOUCHED, TOUCHED_SETS):  # every record was consumed
        assert not query(pg, f"SELECT 1 FROM {{schema}}.{table}")

    assert run_aggregation(settings, workers=1).action == "unchanged"
    full = run_aggregation(settings, workers=2, executor="process", full=True)
    assert full.mode == "full" and "--full" in (full.full_because or "")
    assert summaries(pg) == incremental  # bit for bit
    assert check_summaries(settings).ok


def test_an_untracked_change_makes_the_next_run_full(
    sql_settings: Settings, movielens_dir: Path, cli: Callable[..., Any]
) -> None:
    settings = sql_settings
    pg = settings.postgres
    load_movielens(pg, movielens_dir)
    streams = _streams(load_project())
    before = run_aggregation(settings, workers=1, graph=False)
    assert before.mode == "full" and "not tracked" in (before.full_because or "")
    assert run_aggregation(settings, workers=1, graph=False).mode == "full"  # still untracked

    untracked(pg, streams["ratings"])  # tracking starts (as a sync's first write does)
    assert run_aggregation(settings, workers=1, graph=False).mode == "full"
    assert run_aggregation(settings, workers=1, graph=False).action == "unchanged"

    untracked(
        pg,
        streams["movies"],
        ("UPDATE {schema}.movies SET genres = '{Western}' WHERE movie_id = 1", ()),
    )
    change(
        pg,
        streams["ratings"],
        [(1, 1)],
        ("UPDATE {schema}.ratings SET rating = 1.0 WHERE user_id = 1 AND movie_id = 1", ()),
    )
    shown = cli("aggregate", "--no-graph", settings=settings)
    assert shown.exit_code == 0, shown.output
    assert "full: movies changed without its groups being recorded" in shown.stdout
    assert check_summaries(settings, neo4j=False).ok
    change_recorded_twice(
        pg,
        streams["ratings"],
        [(1, 1), (1, 999_998)],
        ("UPDATE {schema}.ratings SET movie_id = 999998 WHERE user_id = 1 AND movie_id = 1", ()),
    )
    shown = cli("aggregate", "--no-graph", settings=settings)
    # movies 1 and 999998, user 1, movie 1's one genre (999998 is in no movie row)
    assert "incremental: 4 touched group(s) since run" in shown.stdout, shown.stdout
    assert "2 group(s) recomputed" in shown.stdout
    as_json = json.loads(cli("aggregate", "--no-graph", "--json", settings=settings).stdout)
    assert (as_json["ok"], as_json["action"], as_json["mode"]) == (True, "unchanged", "incremental")
    assert as_json["summaries"]["movie_stats"]["groups_recomputed"] == 0
    status = json.loads(cli("status", "--json", settings=settings).stdout)
    assert "incremental" in json.dumps(status)

    untracked(
        pg,
        streams["movies"],
        ("UPDATE {schema}.movies SET genres = '{Comedy}' WHERE movie_id = 1", ()),
    )
    result = run_aggregation(settings, workers=1, graph=False)
    assert result.mode == "full" and "movies changed without" in (result.full_because or "")
    assert check_summaries(settings, neo4j=False).ok
    # the full run consumed what its snapshot saw: the touched groups and the invalidation
    assert run_aggregation(settings, workers=1, graph=False).action == "unchanged"

    change(
        pg,
        streams["ratings"],
        [(1, 1)],
        ("UPDATE {schema}.ratings SET rating = 2.0 WHERE user_id = 1 AND movie_id = 1", ()),
    )
    asked = run_aggregation(settings, workers=1, graph=False, restart=True)
    assert asked.mode == "full" and "--restart" in (asked.full_because or "")
    assert check_summaries(settings, neo4j=False).ok


def test_a_promotion_forgets_exactly_the_records_its_snapshot_saw(
    postgres_settings: PostgresSettings,
) -> None:
    schema = postgres_settings.schema_name
    insert = (
        f'INSERT INTO "{schema}".{TOUCHED} (aggregation, fingerprint, group_key) '
        "VALUES ('movie_stats', 'f', %s)"
    )
    with postgres_connection(postgres_settings) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        ensure_tracking_tables(connection, schema)
        connection.execute(insert, ("seen",))
        connection.commit()
    reader = postgres_connect(postgres_settings)
    try:
        reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        seen = reader.execute("SELECT pg_current_snapshot()::text").fetchone()[0]
        with postgres_connection(postgres_settings) as connection:
            connection.execute(insert, ("meanwhile",))
            connection.commit()
            assert forget_seen(connection, schema, seen, invalidations=True) == 1
            connection.commit()
    finally:
        reader.close()
    left = query(postgres_settings, f"SELECT group_key FROM {{schema}}.{TOUCHED}")
    assert left == [("meanwhile",)]


def test_groups_are_recorded_as_one_sorted_set_per_statement(
    movielens: tuple[Settings, dict[str, Stream]],
) -> None:
    """A transaction of many changed ratings stores one row per aggregation (its groups
    as one sorted array), not one row per group; the plan reads them as groups."""
    settings, streams = movielens
    pg = settings.postgres
    keys: list[Key] = [(user, movie) for user in (1, 5, 7) for movie in (1, 3, 6, 47, 50)]
    stored = query(pg, "SELECT user_id, movie_id FROM {schema}.ratings")
    keys = [key for key in keys if key in set(stored)] + [(999_999, 1)]
    change(
        pg,
        streams["ratings"],
        keys,
        ("UPDATE {schema}.ratings SET rating = 0.5 WHERE user_id = ANY(%s)", ([1, 5, 7],)),
    )
    rows = query(pg, f"SELECT aggregation, group_keys FROM {{schema}}.{TOUCHED_SETS} ORDER BY 1")
    assert [name for name, _ in rows] == ["genre_stats", "movie_stats", "user_stats"]
    sets = dict(rows)
    assert sets["user_stats"] == sorted({str(user) for user, _ in keys})
    assert sets["movie_stats"] == sorted({str(movie) for _, movie in keys})
    assert sets["genre_stats"] == sorted(genres_of(pg, [movie for _, movie in keys]))
    assert not query(pg, f"SELECT 1 FROM {{schema}}.{TOUCHED}")


def test_a_changed_movie_touches_its_genres_without_reading_the_ratings(
    movielens: tuple[Settings, dict[str, Stream]],
) -> None:
    """No index leads from a movie to its ratings: reading them per changed movie was a
    scan of the ratings each time. The genres come from the movie's row alone; a movie
    nobody rated touches its genres needlessly, and the results still equal a full run."""
    settings, streams = movielens
    pg = settings.postgres
    assert run_aggregation(settings, workers=1).mode == "full"
    [(unrated,)] = query(
        pg,
        "SELECT movie_id FROM {schema}.movies WHERE movie_id NOT IN "
        "(SELECT movie_id FROM {schema}.ratings) ORDER BY 1 LIMIT 1",
    )
    before = genres_of(pg, [2, unrated])
    schema = pg.schema_name
    with postgres_connection(pg) as connection, connection.cursor() as cursor:
        groups = TouchedGroups(cursor, schema, [(streams["movies"], [(2,), (unrated,)])])
        groups.before_changes()
        cursor.execute(
            f'UPDATE "{schema}".movies SET genres = %s WHERE movie_id = ANY(%s)',
            (["Film-Noir", "Western"], [2, unrated]),
        )
        groups.after_changes()
        # This transaction's own reads of the ratings, by any path.
        cursor.execute(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables"
            " WHERE schemaname = %s AND relname = 'ratings'",
            (schema,),
        )
        assert cursor.fetchone() == (0,)
        connection.commit()
    [(touched,)] = query(
        pg,
        f"SELECT group_keys FROM {{schema}}.{TOUCHED_SETS} WHERE aggregation = 'genre_stats'"
        " ORDER BY seq LIMIT 1",
    )
    assert set(touched) == before  # the old genres, the unrated movie's too
    result = run_aggregation(settings, workers=1)
    assert result.mode == "incremental"
    assert recomputed(result)["genre_stats"] == len(before | {"Film-Noir", "Western"})
    incremental = summaries(pg)
    run_aggregation(settings, workers=1, full=True)
    assert summaries(pg) == incremental


def test_groups_recorded_by_version_0_1_are_still_read_and_forgotten(
    movielens: tuple[Settings, dict[str, Stream]],
) -> None:
    """A schema written by 0.1 holds touched groups one row each: an upgraded
    ``chariot aggregate`` recomputes them with the new sets, then forgets both."""
    settings, streams = movielens
    pg = settings.postgres
    assert run_aggregation(settings, workers=1, graph=False).mode == "full"
    fingerprint = {d.name: d.fingerprint for d in declared_aggregations(load_project())}
    with postgres_connection(pg) as connection:
        connection.execute(
            f'INSERT INTO "{pg.schema_name}".{TOUCHED} (aggregation, fingerprint, group_key)'
            " VALUES ('movie_stats', %s, '1'), ('movie_stats', %s, '3')",
            (fingerprint["movie_stats"], fingerprint["movie_stats"]),
        )
        connection.commit()
    change(
        pg,
        streams["ratings"],
        [(1, 3), (5, 1)],
        ("UPDATE {schema}.ratings SET rating = 1.0 WHERE user_id = 5 AND movie_id = 1", ()),
    )
    result = run_aggregation(settings, workers=1, graph=False)
    assert result.mode == "incremental"
    assert recomputed(result)["movie_stats"] == 2  # '1' and '3', from both tables
    assert recomputed(result)["user_stats"] == 2
    for table in (TOUCHED, TOUCHED_SETS):
        assert not query(pg, f"SELECT 1 FROM {{schema}}.{table}")
    assert check_summaries(settings, neo4j=False).ok


def _summary_rows(settings: Settings, project: Project) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    for name, aggregation in project.aggregations.items():
        columns = ", ".join(f'"{c}"' for c in [aggregation.group_column, *aggregation.statistics])
        tables[name] = query(
            settings.postgres, f'SELECT {columns} FROM {{schema}}."{name}" ORDER BY 1'
        )
    return tables


def test_sakila_joined_and_exploded_keys_follow_changes(
    sakila: tuple[Settings, Project],  # noqa: F811
) -> None:
    settings, project = sakila
    pg = settings.postgres
    streams = _streams(project)
    for stream in streams.values():
        untracked(pg, stream)  # as the first copy of each table
    assert run_aggregation(settings, workers=1, graph=False, project=project).mode == "full"

    # A film's SET changes (exploded, own and joined); a copy moves to another film (the
    # joined group key of its rentals); a payment goes, another changes; a rental goes.
    [(copy, film)] = query(
        pg, "SELECT inventory_id, film_id FROM {schema}.inventory ORDER BY 1 LIMIT 1"
    )
    change(
        pg,
        streams["film"],
        [(1,)],
        ("UPDATE {schema}.film SET special_features = '{Trailers}' WHERE film_id = 1", ()),
    )
    change(
        pg,
        streams["inventory"],
        [(copy,)],
        ("UPDATE {schema}.inventory SET film_id = 500 WHERE inventory_id = %s", (copy,)),
    )
    change(
        pg,
        streams["payment"],
        [(1,), (2,)],
        ("DELETE FROM {schema}.payment WHERE payment_id = 1", ()),
        ("UPDATE {schema}.payment SET amount = 11.99 WHERE payment_id = 2", ()),
    )
    [(rental, rented)] = query(
        pg,
        "SELECT r.rental_id, i.film_id FROM {schema}.rental r JOIN {schema}.inventory i "
        "USING (inventory_id) WHERE i.film_id NOT IN (1, 500, %s) ORDER BY 1 LIMIT 1",
        (film,),
    )
    change(
        pg,
        streams["rental"],
        [(rental,)],
        ("DELETE FROM {schema}.rental WHERE rental_id = %s", (rental,)),
    )

    result = run_aggregation(settings, workers=1, graph=False, project=project)
    assert (result.mode, result.action) == ("incremental", "computed")
    touched = recomputed(result)
    assert touched["customer_payments"] == 1  # payments 1 and 2 are customer 1's
    assert touched["film_rentals"] == len({film, 500, rented})
    assert touched["feature_films"] == len(
        {"Deleted Scenes", "Behind the Scenes", "Trailers"}
    )  # film 1's features before and after
    assert touched["feature_copies"] >= 1
    check = check_summaries(settings, neo4j=False, project=project)
    assert check.ok, check.model_dump_json(indent=1)
    incremental = _summary_rows(settings, project)
    run_aggregation(
        settings, workers=2, executor="process", graph=False, project=project, full=True
    )
    assert _summary_rows(settings, project) == incremental


def test_an_older_snapshot_never_replaces_a_newer_promotion(
    postgres_settings: PostgresSettings,
) -> None:
    """Two commands see the same change; the one with the newer snapshot promotes first:
    the other's promotion is refused (re-run), so no summary goes back in time."""
    settings = Settings(postgres=postgres_settings, run=RunSettings())
    load_ratings_into_postgres(postgres_settings, 3_000, seed=4)
    streams = _streams(load_project())
    untracked(postgres_settings, streams["ratings"])
    run_aggregation(settings, workers=1, graph=False)
    [(user, movie)] = query(
        postgres_settings, "SELECT user_id, movie_id FROM {schema}.ratings ORDER BY 1, 2 LIMIT 1"
    )
    rate = "UPDATE {schema}.ratings SET rating = %s WHERE user_id = %s AND movie_id = %s"
    change(postgres_settings, streams["ratings"], [(user, movie)], (rate, (0.5, user, movie)))
    declared = declared_aggregations(load_project())
    schema = postgres_settings.schema_name
    with exported_snapshot(settings, declared) as older:
        chosen = incremental.plan(older, schema, declared, full=False)
        assert chosen.incremental
        assert (chosen.groups["movie_stats"], chosen.groups["user_stats"]) == (
            [str(movie)],
            [str(user)],
        )
        change(postgres_settings, streams["ratings"], [(user, movie)], (rate, (5.0, user, movie)))
        newer = run_aggregation(settings, workers=1, graph=False)
        assert newer.mode == "incremental" and newer.promoted_now
        with postgres_connection(postgres_settings) as connection, pytest.raises(Busy):
            incremental.recompute(
                connection, older, schema, declared, chosen, partition_rows=1_000, graph=False
            )
    assert check_summaries(settings, neo4j=False).ok
    assert run_aggregation(settings, workers=1, graph=False).action == "unchanged"
