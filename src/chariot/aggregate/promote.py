"""Staging -> summary tables, in ONE transaction, exactly once per run.

``DELETE`` + ``INSERT ... SELECT`` inside one transaction: under MVCC every reader sees either
the previous complete summaries or the new complete ones, never an empty or partial table
(the original demo's ``TRUNCATE`` + ``INSERT`` showed readers an empty table). The run row
is locked first, so when two commands finish the same run only one promotes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chariot.aggregate import schema
from chariot.aggregate.statistics import HISTOGRAM_COLUMNS
from chariot.errors import AggregationError, Busy
from chariot.sinks.postgres_lease import loads_in_progress


@dataclass(frozen=True)
class Promotion:
    promoted_now: bool  # False: another command had already promoted this run
    movies: int
    users: int
    genres: int
    movies_not_in_catalog: int  # rated movies absent from `movies`: in movie_stats, in no genre
    ratings_of_movies_not_in_catalog: int


def promote(
    connection: Any, schema_name: str, run_id: int, *, promoted_by: str, graph: bool
) -> Promotion:
    """Replace the summaries with run ``run_id``'s staging rows and close the run (commits)."""
    tables = _Tables(schema_name)
    row = connection.execute(
        f"SELECT status FROM {tables.runs} WHERE run_id = %s FOR UPDATE", (run_id,)
    ).fetchone()
    if row is None or row[0] == "abandoned":
        connection.rollback()
        raise AggregationError(
            f"run {run_id} was abandoned (a `chariot aggregate --restart` started a new run)",
            hint="re-run `chariot aggregate` to continue the new run",
        )
    if row[0] == "done":
        promotion = _promotion(connection, tables, promoted_now=False)
        connection.rollback()
        return promotion
    unfinished = connection.execute(
        f"SELECT count(*) FROM {tables.partitions} WHERE run_id = %s AND status <> 'done'",
        (run_id,),
    ).fetchone()[0]
    if unfinished:
        connection.rollback()
        raise AggregationError(
            f"run {run_id} still has {unfinished} unfinished partitions; not promoting"
        )
    _refuse_movies_being_loaded(connection, schema_name, tables)
    _replace_summaries(connection, tables, run_id)
    connection.execute(
        f"""UPDATE {tables.runs} SET status = 'done', promoted_at = now(), updated_at = now(),
                promoted_by = %s, graph_status = %s WHERE run_id = %s""",
        (promoted_by, "pending" if graph else "skipped", run_id),
    )
    for table in (tables.movie_staging, tables.user_staging):
        connection.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
    promotion = _promotion(connection, tables, promoted_now=True)
    connection.commit()
    return promotion


def _refuse_movies_being_loaded(connection: Any, schema_name: str, tables: _Tables) -> None:
    """Genres come from ``movies`` as it is now: hold off writers for this short transaction
    and refuse a table that a first copy or full refresh is filling."""
    connection.execute(f"LOCK TABLE {tables.movies} IN SHARE MODE")
    loading = loads_in_progress(connection, schema_name, [schema.MOVIES])
    if loading:
        connection.rollback()
        raise Busy(
            f"PostgreSQL table {schema_name}.{schema.MOVIES} is being loaded by "
            f"{loading[0].holder or loading[0].owner}: genre summaries would count half of it",
            hint="the run is computed; re-run `chariot aggregate` after that sync to promote it",
        )


class _Tables:
    def __init__(self, schema_name: str) -> None:
        def q(name: str) -> str:
            return schema.qualified(schema_name, name)

        self.runs, self.partitions = q(schema.RUNS), q(schema.PARTITIONS)
        self.movie_staging, self.user_staging = q(schema.MOVIE_STAGING), q(schema.USER_STAGING)
        self.movie_stats, self.user_stats = q(schema.MOVIE_STATS), q(schema.USER_STATS)
        self.genre_stats, self.movies = q(schema.GENRE_STATS), q(schema.MOVIES)


def _replace_summaries(connection: Any, t: _Tables, run_id: int) -> None:
    histogram = ", ".join(HISTOGRAM_COLUMNS)
    for table in (t.movie_stats, t.user_stats, t.genre_stats):
        connection.execute(f"DELETE FROM {table}")
    connection.execute(
        f"""INSERT INTO {t.movie_stats} (movie_id, rating_count, rating_mean, rating_stddev,
                rating_min, rating_max, rating_median, rating_histogram, first_rated_at,
                last_rated_at, bayesian_average, run_id)
            SELECT movie_id, rating_count, rating_mean, NULLIF(rating_stddev, 'NaN'),
                (rating_min_tenths / 10.0)::numeric(2,1), (rating_max_tenths / 10.0)::numeric(2,1),
                rating_median, ARRAY[{histogram}], first_rated_at, last_rated_at,
                bayesian_average, run_id
            FROM {t.movie_staging} WHERE run_id = %s""",
        (run_id,),
    )
    connection.execute(
        f"""INSERT INTO {t.user_stats} (user_id, rating_count, rating_mean, rating_stddev,
                first_rated_at, last_rated_at, run_id)
            SELECT user_id, rating_count, rating_mean, NULLIF(rating_stddev, 'NaN'),
                first_rated_at, last_rated_at, run_id
            FROM {t.user_staging} WHERE run_id = %s""",
        (run_id,),
    )
    # Genres reduce the movie partials (exact integer sums), so no rating is read twice.
    connection.execute(
        f"""INSERT INTO {t.genre_stats} (genre, movie_count, rating_count, rating_mean, run_id)
            SELECT g.genre, count(*), sum(s.rating_count),
                (sum(s.rating_sum_tenths) / (10 * sum(s.rating_count)))::float8, %s
            FROM {t.movie_staging} s
            JOIN {t.movies} m ON m.movie_id = s.movie_id
            CROSS JOIN LATERAL (SELECT DISTINCT unnest(m.genres)) AS g(genre)
            WHERE s.run_id = %s AND g.genre IS NOT NULL
            GROUP BY g.genre""",
        (run_id, run_id),
    )


def _promotion(connection: Any, t: _Tables, *, promoted_now: bool) -> Promotion:
    row = connection.execute(
        f"""SELECT (SELECT count(*) FROM {t.movie_stats}), (SELECT count(*) FROM {t.user_stats}),
                   (SELECT count(*) FROM {t.genre_stats}),
                   count(s.movie_id), coalesce(sum(s.rating_count), 0)
            FROM {t.movie_stats} s
            WHERE NOT EXISTS (SELECT 1 FROM {t.movies} m WHERE m.movie_id = s.movie_id)"""
    ).fetchone()
    return Promotion(promoted_now, *(int(value) for value in row))
