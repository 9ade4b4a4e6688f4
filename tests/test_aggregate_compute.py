"""The partition statistics (compute.py's SQL) against a plain-Python definition, on varied
input, and the fixed-width binary transfer (pgcopy)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.aggregate import compute, pgcopy
from chariot.aggregate.declared import Declared, declared_aggregations
from chariot.config import PostgresSettings
from chariot.connections import postgres_connection
from chariot.project import parse_project

PROJECT = """
format = 1
[tables.ratings]
key = ["user_id", "movie_id"]
[tables.ratings.columns]
user_id = { type = "int" }
movie_id = { type = "int" }
rating = { type = "decimal(2,1)" }
score = { type = "double" }
timestamp = { type = "bigint" }

[aggregations.stats]
table = "ratings"
group_by = "movie_id"
measure = "rating"
time_column = "timestamp"
[aggregations.stats.statistics]
n = "count"
users = { count_distinct = "user_id" }
total = "sum"
mean = "mean"
stddev = "stddev"
low = "min"
high = "max"
median = "median"
stars = { histogram = { values = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0] } }
first = "earliest"
last = "latest"
bayes = { bayesian_average = { prior_weight = 10, prior_mean = 3.5 } }
score_mean = { mean = "score" }
score_stddev = { stddev = "score" }
score_ranges = { kind = "histogram", of = "score", edges = [-1, 0, 0.5, 1] }
"""

pytestmark = pytest.mark.integration

# Mostly half stars (MovieLens), sometimes any numeric(2,1) value such as 3.3 or 0.0.
rating_tenths = st.one_of(st.sampled_from(range(5, 51, 5)), st.integers(0, 99))
rows = st.lists(
    st.tuples(
        st.integers(1, 40),
        st.integers(1, 30),
        rating_tenths,
        st.floats(-1, 1, allow_nan=False),
        st.integers(0, 2_000_000_000),
    ),
    min_size=0,
    max_size=300,
    unique_by=lambda row: (row[0], row[1]),
)


Table = tuple[Any, Declared, str]  # connection, the aggregation, the schema


@pytest.fixture
def stats_table(postgres_settings: PostgresSettings) -> Iterator[Table]:
    [declared] = declared_aggregations(parse_project(PROJECT))
    schema = postgres_settings.schema_name
    with postgres_connection(postgres_settings) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        connection.execute(
            f'CREATE TABLE "{schema}".ratings (user_id integer, movie_id integer, '
            'rating numeric(2,1) NOT NULL, score float8 NOT NULL, "timestamp" bigint NOT NULL, '
            "PRIMARY KEY (user_id, movie_id))"
        )
        connection.commit()
        yield connection, declared, schema


def _computed(table: Table, data: list[tuple[Any, ...]]) -> dict[int, dict[str, Any]]:
    connection, declared, schema = table
    connection.execute(f'TRUNCATE "{schema}".ratings')
    with connection.cursor() as cursor, cursor.copy(f'COPY "{schema}".ratings FROM STDIN') as copy:
        for user, movie, tenths, score, stamp in data:
            copy.write_row((user, movie, Decimal(tenths) / 10, score, stamp))
    query, params = compute.partition_query(declared, schema, None, None)
    width = 1 + len(declared.statistics)
    names = [s.column for s in declared.statistics]
    found = {
        row[0]: dict(zip(names, row[1:width], strict=True))
        for row in connection.execute(query, params)
    }
    connection.rollback()
    return found


def _close(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=rows)
def test_every_statistic_matches_its_definition(
    stats_table: Table, data: list[tuple[Any, ...]]
) -> None:
    groups: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in data:
        groups[row[1]].append(row)
    found = _computed(stats_table, data)
    assert sorted(found) == sorted(groups)
    for movie, members in groups.items():
        got = found[movie]
        ratings = [Decimal(r[2]) / 10 for r in members]
        scores = [r[3] for r in members]
        n = len(ratings)
        assert got["n"] == n and got["users"] == len({r[0] for r in members})
        assert got["total"] == sum(ratings)
        assert _close(got["mean"], float(sum(ratings) / n))
        if n == 1:
            assert got["stddev"] is None and got["score_stddev"] is None  # sample stddev of one
        else:
            assert _close(got["stddev"], float(statistics.stdev(ratings)))
            assert math.isclose(got["score_stddev"], statistics.stdev(scores), abs_tol=1e-9)
        assert (got["low"], got["high"]) == (min(ratings), max(ratings))
        assert _close(got["median"], float(statistics.median(ratings)))
        assert got["stars"] == [sum(1 for r in members if r[2] == t) for t in range(5, 51, 5)]
        assert (got["first"], got["last"]) == (
            min(r[4] for r in members),
            max(r[4] for r in members),
        )
        assert _close(got["bayes"], float((10 * Decimal("3.5") + sum(ratings)) / (10 + n)))
        assert math.isclose(got["score_mean"], statistics.fmean(scores), abs_tol=1e-12)
        edges = [-1, 0, 0.5, 1]
        assert got["score_ranges"] == [
            sum(1 for s in scores if low <= s and (s < high or (i == 2 and s <= high)))
            for i, (low, high) in enumerate(zip(edges, edges[1:], strict=False))
        ]


def test_variance_is_exact_where_floating_sums_cancel(stats_table: Table) -> None:
    """100,000 identical ratings: a naive float E[x^2] - E[x]^2 is not exactly 0."""
    connection, declared, schema = stats_table
    connection.execute(
        f'INSERT INTO "{schema}".ratings SELECT u, 1, 3.5, 0.1, 0 FROM generate_series(1, 100000) u'
    )
    query, params = compute.partition_query(declared, schema, None, None)
    row = connection.execute(query, params).fetchone()
    names = [s.column for s in declared.statistics]
    got = dict(zip(names, row[1 : 1 + len(names)], strict=True))
    assert got["stddev"] == 0.0 and got["mean"] == 3.5 and got["median"] == 3.5
    connection.rollback()


def test_encode_builds_a_fixed_width_binary_copy() -> None:
    data = pgcopy.encode([np.array([1, -2], np.int32), np.array([0.5, np.nan])], ["int4", "float8"])
    assert data.startswith(pgcopy.HEADER) and data.endswith(pgcopy.TRAILER)
    body = data[len(pgcopy.HEADER) : -len(pgcopy.TRAILER)]
    assert len(body) == 2 * (2 + 4 + 4 + 4 + 8)
    assert body[:10] == b"\x00\x02\x00\x00\x00\x04\x00\x00\x00\x01"
    with pytest.raises(ValueError):
        pgcopy.encode([np.array([1], np.int32), np.array([], np.float64)], ["int4", "float8"])


def test_a_summary_may_not_take_the_name_of_a_synced_table() -> None:
    from chariot.errors import ConfigError

    project = parse_project(PROJECT.replace("[aggregations.stats", "[aggregations.ratings"))
    with pytest.raises(ConfigError, match="aggregations.ratings: the summary table would replace"):
        declared_aggregations(project)
