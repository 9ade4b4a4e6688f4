"""A joined group's statistics summed up from one row per join key (compute.py) equal the
one-stage query's, bit for bit, on varied input; statistics that do not add up exactly
keep the one-stage query."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.aggregate import compute
from chariot.aggregate.declared import Declared, declared_aggregations
from chariot.config import PostgresSettings
from chariot.connections import postgres_connection
from chariot.project import parse_project

TABLES = """
format = 1
[tables.movies]
key = ["movie_id"]
transforms = [{ split = "genres", delimiter = "|", empty = [""] }]
[tables.movies.columns]
movie_id = { type = "int" }
title = { type = "varchar(20)", nullable = true }
genres = { type = "varchar(255)", nullable = true }
[tables.ratings]
key = ["user_id", "movie_id"]
[tables.ratings.columns]
user_id = { type = "int" }
movie_id = { type = "int" }
rating = { type = "decimal(2,1)", nullable = true }
score = { type = "double" }
timestamp = { type = "bigint" }
"""

STATISTICS = """
movies = { count_distinct = "movie_id" }
n = "count"
total = "sum"
mean = "mean"
stddev = "stddev"
low = "min"
high = "max"
stars = { histogram = { values = [0.5, 1.0, 2.5, 5.0] } }
first = "earliest"
last = "latest"
bayes = { bayesian_average = { prior_weight = 10, prior_mean = 3.5 } }
"""

PROJECT = (
    TABLES
    + """
[aggregations.by_genre]
table = "ratings"
join = { table = "movies", on = { movie_id = "movie_id" } }
group_by = "movies.genres"
group_as = "genre"
measure = "rating"
time_column = "timestamp"
[aggregations.by_genre.statistics]
"""
    + STATISTICS
    + """
[aggregations.by_title]
table = "ratings"
join = { table = "movies", on = { movie_id = "movie_id" } }
group_by = "movies.title"
group_as = "title"
measure = "rating"
time_column = "timestamp"
[aggregations.by_title.statistics]
"""
    + STATISTICS
)

pytestmark = pytest.mark.integration

genres = st.lists(st.sampled_from(["a", "b", "c", "Sci-Fi"]), max_size=4)  # repeats too
movies = st.dictionaries(
    st.integers(1, 30), st.tuples(st.one_of(st.none(), st.sampled_from(["x", "y"])), genres)
)
ratings = st.lists(
    st.tuples(
        st.integers(1, 20),
        st.integers(1, 35),  # some rate a movie that is not there
        st.one_of(st.none(), st.integers(0, 50)),
        st.floats(-1, 1, allow_nan=False),
        st.integers(0, 2_000_000_000),
    ),
    max_size=200,
    unique_by=lambda row: (row[0], row[1]),
)

Tables = tuple[Any, tuple[Declared, ...], str]


@pytest.fixture
def tables(postgres_settings: PostgresSettings) -> Iterator[Tables]:
    declared = declared_aggregations(parse_project(PROJECT))
    schema = postgres_settings.schema_name
    with postgres_connection(postgres_settings) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        connection.execute(
            f'CREATE TABLE "{schema}".movies (movie_id integer PRIMARY KEY, title text, '
            "genres text[])"
        )
        connection.execute(
            f'CREATE TABLE "{schema}".ratings (user_id integer, movie_id integer, '
            'rating numeric(2,1), score float8 NOT NULL, "timestamp" bigint NOT NULL, '
            "PRIMARY KEY (user_id, movie_id))"
        )
        connection.commit()
        yield connection, declared, schema


def test_only_statistics_that_add_up_exactly_are_summed_from_parts() -> None:
    declared = {d.name: d for d in declared_aggregations(parse_project(PROJECT))}
    assert compute.pre_aggregable(declared["by_genre"])
    assert compute.pre_aggregable(declared["by_title"])
    for statistic in (
        'median = "median"',  # needs every value
        'score_mean = { mean = "score" }',  # a float sum depends on the order
        'users = { count_distinct = "user_id" }',  # a user rates movies of many keys
    ):
        text = PROJECT.replace('first = "earliest"', f'first = "earliest"\n{statistic}', 1)
        changed = {d.name: d for d in declared_aggregations(parse_project(text))}
        assert not compute.pre_aggregable(changed["by_genre"]), statistic
        query, _ = compute.partition_query(changed["by_genre"], "s", None, None)
        assert not query.startswith("WITH pre")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(movie_rows=movies, rating_rows=ratings)
def test_summed_up_statistics_equal_the_one_stage_query_bit_for_bit(
    tables: Tables, movie_rows: dict[int, Any], rating_rows: list[tuple[Any, ...]]
) -> None:
    connection, declared, schema = tables
    connection.execute(f'TRUNCATE "{schema}".movies, "{schema}".ratings')
    with connection.cursor() as cursor:
        with cursor.copy(f'COPY "{schema}".movies FROM STDIN') as copy:
            for movie, (title, listed) in movie_rows.items():
                copy.write_row((movie, title, listed))
        with cursor.copy(f'COPY "{schema}".ratings FROM STDIN') as copy:
            for user, movie, tenths, score, stamp in rating_rows:
                rating = None if tenths is None else Decimal(tenths) / 10
                copy.write_row((user, movie, rating, score, stamp))
    for aggregation in declared:
        summed, params = compute.partition_query(aggregation, schema, None, None)
        assert summed.startswith("WITH pre") and not params
        one_stage = compute.one_stage_query(aggregation, schema, None, None)
        expected = sorted(connection.execute(one_stage).fetchall(), key=repr)
        assert sorted(connection.execute(summed).fetchall(), key=repr) == expected
    connection.rollback()
