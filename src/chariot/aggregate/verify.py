"""Check the promoted summaries against an independent recomputation in plain SQL.

``check_summaries(settings)`` recomputes every statistic from the raw ``ratings`` (and
``movies`` for genres) with ``GROUP BY``, ``avg``, ``stddev_samp``, ``percentile_cont`` and
``count(*) FILTER`` - none of the aggregation's numpy code - and compares, key by key:

* ``movie_stats(movie_id PK, rating_count, rating_mean, rating_stddev, rating_min,
  rating_max, rating_median, rating_histogram int[10], first_rated_at, last_rated_at,
  bayesian_average, run_id)``
* ``user_stats(user_id PK, rating_count, rating_mean, rating_stddev, first_rated_at,
  last_rated_at, run_id)``
* ``genre_stats(genre PK, movie_count, rating_count, rating_mean, run_id)``
* with ``neo4j=True``, the Movie node properties ``ratingCount, ratingMean, ratingStddev,
  ratingMin, ratingMax, ratingMedian, ratingHistogram, firstRatedAt, lastRatedAt,
  bayesianAverage`` (see ``statistics.py`` for the exact definitions).

Counts, timestamps and histograms must be equal; floating values may differ by at most
``FLOAT_TOLERANCE`` times max(1, |expected|). A missing summary table counts as empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, computed_field

from chariot.aggregate import schema
from chariot.aggregate.statistics import (
    GENRE_COLUMNS,
    HALF_STARS_TENTHS,
    MOVIE_COLUMNS,
    NEO4J_RUN_PROPERTY,
    USER_COLUMNS,
    SummaryColumn,
)
from chariot.config import Settings
from chariot.connections import neo4j_session, postgres_connection
from chariot.errors import AuditError

FLOAT_TOLERANCE = 1e-9
NEO4J_MOVIES = "neo4j:Movie"


class ValueDifference(BaseModel):
    key: int | str
    column: str
    expected: Any = None
    actual: Any = None


class SummaryTableCheck(BaseModel):
    """One summary (a table, or the Movie properties in Neo4j) against the recomputation."""

    name: str
    rows_expected: int
    rows_actual: int
    rows_compared: int = Field(description="keys present on both sides, compared column by column")
    rows_differing: int = Field(description="compared keys with at least one different value")
    missing_count: int = Field(description="keys the recomputation has and the summary lacks")
    unexpected_count: int = Field(description="keys the summary has and the recomputation lacks")
    missing_keys: list[int | str] = Field(default_factory=list)
    unexpected_keys: list[int | str] = Field(default_factory=list)
    differences: list[ValueDifference] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.rows_differing == 0 and self.missing_count == 0 and self.unexpected_count == 0


class SummaryCheck(BaseModel):
    promoted_run_id: int | None = Field(
        description="the run whose summaries are promoted; None if none"
    )
    tables: list[SummaryTableCheck]
    limit: int = Field(description="cap on keys and differences listed per table")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(table.ok for table in self.tables)


def check_summaries(settings: Settings, *, neo4j: bool = True, limit: int = 20) -> SummaryCheck:
    """Compare the promoted summaries (and Neo4j Movie properties) with plain-SQL truth."""
    with postgres_connection(settings.postgres) as connection:
        existing = schema.existing_tables(connection, settings.postgres.schema_name)
        if schema.RATINGS not in existing:
            raise AuditError(
                f"no {schema.RATINGS} table in schema {settings.postgres.schema_name}",
                hint="run `chariot sync` first",
            )
        queries = TruthQueries(settings, existing)
        movie_truth = _fetch(connection, queries.movie_truth())
        checks = [
            compare(
                schema.MOVIE_STATS,
                movie_truth,
                _fetch(connection, queries.movie_actual()),
                MOVIE_COLUMNS,
                limit,
            ),
            compare(
                schema.USER_STATS,
                _fetch(connection, queries.user_truth()),
                _fetch(connection, queries.user_actual()),
                USER_COLUMNS,
                limit,
            ),
            compare(
                schema.GENRE_STATS,
                _fetch(connection, queries.genre_truth()),
                _fetch(connection, queries.genre_actual()),
                GENRE_COLUMNS,
                limit,
            ),
        ]
        run_id = queries.promoted_run_id(connection)
    if neo4j:
        checks.append(
            compare(NEO4J_MOVIES, movie_truth, _neo4j_movies(settings), MOVIE_COLUMNS, limit)
        )
    return SummaryCheck(promoted_run_id=run_id, tables=checks, limit=limit)


class TruthQueries:
    """The truth queries (plain SQL over raw ratings) and the reads of the summaries."""

    def __init__(self, settings: Settings, existing: set[str]) -> None:
        self.schema = settings.postgres.schema_name
        self.existing = existing
        self.prior_weight = settings.run.bayes_prior_weight
        self.prior_mean = settings.run.bayes_prior_mean

    def table(self, name: str) -> str:
        return schema.qualified(self.schema, name)

    def movie_truth(self) -> tuple[str, tuple[Any, ...]]:
        bins = ", ".join(
            f"count(*) FILTER (WHERE rating = {t / 10:.1f})" for t in HALF_STARS_TENTHS
        )
        return (
            f"""SELECT movie_id, count(*) AS rating_count, avg(rating)::float8 AS rating_mean,
                stddev_samp(rating)::float8 AS rating_stddev, min(rating)::float8 AS rating_min,
                max(rating)::float8 AS rating_max,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY rating) AS rating_median,
                ARRAY[{bins}]::int[] AS rating_histogram, min("timestamp") AS first_rated_at,
                max("timestamp") AS last_rated_at,
                ((%s::numeric * %s::numeric + sum(rating)) / (%s::numeric + count(*)))::float8
                    AS bayesian_average
            FROM {self.table(schema.RATINGS)} GROUP BY movie_id""",
            (self.prior_mean, self.prior_weight, self.prior_weight),
        )

    def user_truth(self) -> tuple[str, tuple[Any, ...]]:
        return (
            f"""SELECT user_id, count(*) AS rating_count, avg(rating)::float8 AS rating_mean,
                stddev_samp(rating)::float8 AS rating_stddev, min("timestamp") AS first_rated_at,
                max("timestamp") AS last_rated_at
            FROM {self.table(schema.RATINGS)} GROUP BY user_id""",
            (),
        )

    def genre_truth(self) -> tuple[str, tuple[Any, ...]] | None:
        if schema.MOVIES not in self.existing:
            return None
        return (
            f"""WITH movie_genre AS (
                SELECT DISTINCT m.movie_id, g.genre
                FROM {self.table(schema.MOVIES)} m CROSS JOIN LATERAL unnest(m.genres) AS g(genre)
                WHERE g.genre IS NOT NULL)
            SELECT mg.genre, count(DISTINCT r.movie_id) AS movie_count, count(*) AS rating_count,
                avg(r.rating)::float8 AS rating_mean
            FROM {self.table(schema.RATINGS)} r JOIN movie_genre mg ON mg.movie_id = r.movie_id
            GROUP BY mg.genre""",
            (),
        )

    def movie_actual(self) -> tuple[str, tuple[Any, ...]] | None:
        return self._actual(schema.MOVIE_STATS, "movie_id", MOVIE_COLUMNS)

    def user_actual(self) -> tuple[str, tuple[Any, ...]] | None:
        return self._actual(schema.USER_STATS, "user_id", USER_COLUMNS)

    def genre_actual(self) -> tuple[str, tuple[Any, ...]] | None:
        return self._actual(schema.GENRE_STATS, "genre", GENRE_COLUMNS)

    def _actual(
        self, table: str, key: str, columns: Sequence[SummaryColumn]
    ) -> tuple[str, tuple[Any, ...]] | None:
        if table not in self.existing:
            return None
        selected = ", ".join(f"{c.name}::float8" if c.kind == "float" else c.name for c in columns)
        return f"SELECT {key}, {selected} FROM {self.table(table)}", ()

    def promoted_run_id(self, connection: Any) -> int | None:
        if schema.MOVIE_STATS not in self.existing or schema.RUNS not in self.existing:
            return None
        row = connection.execute(
            f"SELECT max(run_id) FROM {self.table(schema.RUNS)} WHERE promoted_at IS NOT NULL"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])


def _fetch(
    connection: Any, query: tuple[str, tuple[Any, ...]] | None
) -> dict[Any, tuple[Any, ...]]:
    """Rows keyed by their first column (verification is not a hot path)."""
    if query is None:
        return {}
    text, params = query
    return {row[0]: tuple(row[1:]) for row in connection.execute(text, params)}


def _neo4j_movies(settings: Settings) -> dict[Any, tuple[Any, ...]]:
    properties = [c.neo4j for c in MOVIE_COLUMNS]
    returned = ", ".join(f"m.{name}" for name in properties)
    condition = " OR ".join(f"m.{name} IS NOT NULL" for name in [*properties, NEO4J_RUN_PROPERTY])
    query = f"MATCH (m:Movie) WHERE {condition} RETURN m.movieId, {returned}"
    with neo4j_session(settings.neo4j) as session:
        return {record[0]: tuple(record[1:]) for record in session.run(query)}


def compare(
    name: str,
    expected: dict[Any, tuple[Any, ...]],
    actual: dict[Any, tuple[Any, ...]],
    columns: Sequence[SummaryColumn],
    limit: int,
) -> SummaryTableCheck:
    """Key-by-key, column-by-column comparison; lists are capped at ``limit``."""
    missing = sorted(expected.keys() - actual.keys(), key=_sort_key)
    unexpected = sorted(actual.keys() - expected.keys(), key=_sort_key)
    shared = sorted(expected.keys() & actual.keys(), key=_sort_key)
    differing: set[Any] = set()
    differences: list[ValueDifference] = []
    for index, column in enumerate(columns):
        wanted = [expected[key][index] for key in shared]
        found = [actual[key][index] for key in shared]
        for position in np.flatnonzero(_mismatches(column, wanted, found)):
            key = shared[position]
            differing.add(key)
            if len(differences) < limit:
                differences.append(
                    ValueDifference(
                        key=key,
                        column=column.name,
                        expected=wanted[position],
                        actual=found[position],
                    )
                )
    return SummaryTableCheck(
        name=name,
        rows_expected=len(expected),
        rows_actual=len(actual),
        rows_compared=len(shared),
        rows_differing=len(differing),
        missing_count=len(missing),
        unexpected_count=len(unexpected),
        missing_keys=missing[:limit],
        unexpected_keys=unexpected[:limit],
        differences=differences,
    )


def _mismatches(column: SummaryColumn, wanted: list[Any], found: list[Any]) -> np.ndarray:
    if column.kind != "float":
        return np.array(
            [_normalise(w) != _normalise(f) for w, f in zip(wanted, found, strict=True)], dtype=bool
        )
    expected = np.array([np.nan if w is None else float(w) for w in wanted], dtype=np.float64)
    actual = np.array([np.nan if f is None else float(f) for f in found], dtype=np.float64)
    both_null = np.isnan(expected) & np.isnan(actual)
    close = np.abs(expected - actual) <= FLOAT_TOLERANCE * np.maximum(1.0, np.abs(expected))
    return ~(both_null | close)


def _normalise(value: Any) -> Any:
    return [int(item) for item in value] if isinstance(value, list | tuple) else value


def _sort_key(key: Any) -> tuple[str, Any]:
    return (type(key).__name__, key)
