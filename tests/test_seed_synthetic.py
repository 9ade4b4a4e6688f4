"""The synthetic MovieLens-shaped generator: pure logic (hypothesis) and loads into MySQL
and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.config import MySQLSettings, PostgresSettings
from chariot.connections import mysql_connect, postgres_connection
from chariot.errors import ConfigError, DataError
from chariot.seed import (
    LoadMethod,
    append_synthetic_ratings,
    create_source_tables,
    load_ratings_into_postgres,
    seed_synthetic,
)
from chariot.seed.synthetic import prefetched, ratings_text
from chariot.seed.synthetic_data import (
    NO_GENRES,
    RatingsChunk,
    SyntheticSpec,
    _distinct_movies,
    _popularity_cdf,
    generate_movies,
    generate_ratings,
    movie_ids,
    ratings_per_user,
    tag_vocabulary,
)

# -- pure logic ---------------------------------------------------------------------------


def all_chunks(spec: SyntheticSpec) -> tuple[RatingsChunk, Any]:
    ratings, tags = zip(*generate_ratings(spec, movie_ids(spec.movies, spec.seed)), strict=True)
    joined = RatingsChunk(
        *(
            np.concatenate([getattr(c, f) for c in ratings])
            for f in ("user_id", "movie_id", "half_stars", "timestamp")
        )
    )
    return joined, tags


def feasible_specs() -> st.SearchStrategy[SyntheticSpec]:
    return st.builds(
        lambda users, movies, fill, seed: SyntheticSpec(
            ratings=int(users * max(1, movies // 2) * fill), users=users, movies=movies, seed=seed
        ),
        st.integers(1, 60),
        st.integers(1, 300),
        st.floats(0.0, 1.0),
        st.integers(0, 2**32 - 1),
    )


@given(feasible_specs())
@settings(max_examples=60, deadline=None)
def test_ratings_per_user_sum_exactly_within_bounds(spec: SyntheticSpec) -> None:
    counts = ratings_per_user(spec)
    assert counts.sum() == spec.ratings
    assert counts.max(initial=0) <= spec.max_per_user
    if spec.ratings >= spec.users:
        assert counts.min() >= 1


@given(feasible_specs())
@settings(max_examples=40, deadline=None)
def test_ratings_are_exact_unique_sorted_and_half_stars(spec: SyntheticSpec) -> None:
    ratings, _tags = all_chunks(spec)
    assert len(ratings.user_id) == spec.ratings
    keys = ratings.user_id.astype(np.int64) * (1 << 32) + ratings.movie_id
    assert np.all(np.diff(keys) > 0)  # unique and in (userId, movieId) order
    assert set(np.unique(ratings.half_stars)) <= set(range(1, 11))
    assert set(np.unique(ratings.movie_id)) <= set(movie_ids(spec.movies, spec.seed))
    assert ratings.user_id.min(initial=1) >= 1 and ratings.user_id.max(initial=1) <= spec.users


@given(st.lists(st.integers(0, 40), min_size=1, max_size=30), st.integers(0, 1000))
@settings(max_examples=60, deadline=None)
def test_distinct_movies_gives_each_user_exactly_its_count(counts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    movies = 80  # counts <= 40 = half the catalogue, like the generator's own cap
    users, chosen = _distinct_movies(
        rng, np.array(counts, dtype=np.int64), _popularity_cdf(movies, rng)
    )
    assert np.bincount(users, minlength=len(counts)).tolist() == counts
    assert len(set(zip(users.tolist(), chosen.tolist(), strict=True))) == len(users)


@given(
    st.lists(
        st.tuples(
            st.integers(1, 2**31 - 1),
            st.integers(1, 2**31 - 1),
            st.integers(1, 10),
            st.integers(0, 9_999_999_999),
        ),
        min_size=1,
        max_size=50,
    ),
    st.sampled_from([",", "\t"]),
)
def test_ratings_text_round_trips(rows: list[tuple[int, int, int, int]], separator: str) -> None:
    columns = [np.array(column, dtype=np.int64) for column in zip(*rows, strict=True)]
    text = ratings_text(RatingsChunk(*columns), separator=separator).tobytes().decode()
    parsed = [line.split(separator) for line in text.splitlines()]
    assert [(int(u), int(m), Decimal(r) * 2, int(t)) for u, m, r, t in parsed] == rows


def test_same_seed_same_data_other_seed_other_data() -> None:
    spec = SyntheticSpec.build(30_000, seed=5)
    first, first_tags = all_chunks(spec)
    again, again_tags = all_chunks(spec)
    other, _ = all_chunks(SyntheticSpec.build(30_000, seed=6))
    for field in ("user_id", "movie_id", "half_stars", "timestamp"):
        assert np.array_equal(getattr(first, field), getattr(again, field))
    assert [list(t.tag) for t in first_tags] == [list(t.tag) for t in again_tags]
    assert not np.array_equal(first.movie_id, other.movie_id)
    movies, links = generate_movies(2_000, 5)
    movies_again, links_again = generate_movies(2_000, 5)
    assert movies.equals(movies_again) and links.equals(links_again)


def test_movielens_shape() -> None:
    movies, links = generate_movies(10_000, 1)
    assert (movies["genres"] == NO_GENRES).sum() > 0
    assert (~movies["title"].str.contains(r"\(\d{4}\)$", regex=True)).sum() > 0  # some without year
    assert movies["title"].str.contains(",").any() and movies["title"].str.contains('"').any()
    assert movies["title"].str.contains("é").any()
    assert links["tmdbId"].isna().sum() >= 1
    assert links["imdbId"].str.startswith("0").any() and (links["imdbId"].str.len() == 7).all()
    spec = SyntheticSpec.build(100_000, movies=10_000, seed=1)
    ratings, tags = all_chunks(spec)
    per_movie = np.sort(np.bincount(ratings.movie_id))[::-1]
    top_share = per_movie[: len(movies) // 100].sum() / per_movie.sum()
    assert top_share > 0.1  # popular movies get far more than their 1% share
    share = {v: (ratings.half_stars == v).mean() for v in range(1, 11)}
    assert share[8] > share[7] and share[8] > share[1]  # 4.0 common, 0.5 rare
    tag_count = sum(len(t.user_id) for t in tags)
    assert 0.02 < tag_count / spec.ratings < 0.06


def test_tag_spellings_are_distinct_and_some_differ_only_in_case() -> None:
    vocabulary = tag_vocabulary()
    assert len(set(vocabulary)) == len(vocabulary)
    _ratings, tags = all_chunks(SyntheticSpec.build(50_000, seed=2))
    rows = [
        (u, m, t)
        for chunk in tags
        for u, m, t in zip(chunk.user_id, chunk.movie_id, chunk.tag, strict=True)
    ]
    assert len(set(rows)) == len(rows)
    folded = {(u, m, t.lower()) for u, m, t in rows}
    assert len(folded) < len(rows)  # case twins on the same (user, movie)


def test_infeasible_spec_is_explained() -> None:
    problem = SyntheticSpec.build(1_000, users=2, movies=10).problem()
    assert problem is not None and "raise --users or --movies" in problem


# -- loads into real servers --------------------------------------------------------------


def query(settings: MySQLSettings, sql: str) -> list[tuple[Any, ...]]:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def checksums(settings: MySQLSettings) -> list[tuple[Any, ...]]:
    return query(settings, "CHECKSUM TABLE movies, links, ratings, tags EXTENDED")


@pytest.mark.integration
def test_seed_synthetic_loads_exact_counts_deterministically(mysql_settings: MySQLSettings) -> None:
    result = seed_synthetic(mysql_settings, 20_000, seed=11)
    assert result.method == "load-data"
    assert result.rows["ratings"] == 20_000
    counts = dict(
        query(
            mysql_settings,
            "SELECT 'movies', COUNT(*) FROM movies UNION ALL SELECT 'links', COUNT(*) FROM links "
            "UNION ALL SELECT 'ratings', COUNT(*) FROM ratings "
            "UNION ALL SELECT 'tags', COUNT(*) FROM tags",
        )
    )
    assert counts == result.rows
    assert query(
        mysql_settings, "SELECT MIN(rating), MAX(rating), COUNT(DISTINCT rating) FROM ratings"
    ) == [(Decimal("0.5"), Decimal("5.0"), 10)]
    assert query(mysql_settings, "SELECT COUNT(*) FROM ratings WHERE MOD(rating * 2, 1) <> 0") == [
        (0,)
    ]
    twins = query(
        mysql_settings,
        "SELECT COUNT(*) FROM (SELECT userId, movieId, LOWER(tag) FROM tags "
        "GROUP BY userId, movieId, LOWER(tag) HAVING COUNT(*) > 1) AS t",
    )
    assert twins[0][0] > 0
    assert query(mysql_settings, "SELECT COUNT(*) FROM links WHERE tmdbId IS NULL")[0][0] >= 1
    assert query(
        mysql_settings,
        "SELECT COUNT(*) FROM ratings r LEFT JOIN movies m USING (movieId) WHERE m.movieId IS NULL",
    ) == [(0,)]
    before = checksums(mysql_settings)
    seed_synthetic(mysql_settings, 20_000, seed=11)
    assert checksums(mysql_settings) == before
    seed_synthetic(mysql_settings, 20_000, seed=12)
    assert checksums(mysql_settings) != before


@pytest.mark.integration
def test_synthetic_quoted_titles_survive_the_load(mysql_settings: MySQLSettings) -> None:
    seed_synthetic(mysql_settings, 5_000, movies=3_000, seed=3)
    movies, links = generate_movies(3_000, 3)
    loaded = dict(query(mysql_settings, "SELECT movieId, title FROM movies"))
    assert loaded == dict(zip(movies["movieId"].tolist(), movies["title"].tolist(), strict=True))
    loaded_links = query(
        mysql_settings, "SELECT movieId, imdbId, tmdbId FROM links ORDER BY movieId"
    )
    expected = [
        (int(movie), imdb, None if pd.isna(tmdb) else int(tmdb))
        for movie, imdb, tmdb in zip(
            links["movieId"], links["imdbId"], links["tmdbId"], strict=True
        )
    ]
    assert loaded_links == expected


@pytest.mark.integration
def test_synthetic_insert_fallback_gives_the_same_data(mysql_settings: MySQLSettings) -> None:
    seed_synthetic(mysql_settings, 3_000, seed=4)
    expected = checksums(mysql_settings)
    result = seed_synthetic(mysql_settings, 3_000, seed=4, method=LoadMethod.insert)
    assert result.method == "insert"
    assert checksums(mysql_settings) == expected


@pytest.mark.integration
def test_append_adds_new_users_only(mysql_settings: MySQLSettings) -> None:
    seed_synthetic(mysql_settings, 5_000, movies=1_000, seed=1)
    before = query(mysql_settings, "SELECT COUNT(*), MAX(userId), SUM(rating) FROM ratings")[0]
    checksum_before = query(mysql_settings, "CHECKSUM TABLE movies EXTENDED")
    added = append_synthetic_ratings(mysql_settings, 1_500, seed=7)
    assert added.ratings == 1_500
    assert added.first_user_id == before[1] + 1
    after = query(
        mysql_settings,
        f"SELECT COUNT(*), MIN(userId), MAX(userId) FROM ratings WHERE userId > {before[1]:d}",
    )
    assert after == [(1_500, added.first_user_id, added.last_user_id)]
    old_rows = query(
        mysql_settings, f"SELECT COUNT(*), SUM(rating) FROM ratings WHERE userId <= {before[1]:d}"
    )
    assert old_rows == [(before[0], before[2])]
    orphans = query(
        mysql_settings,
        "SELECT COUNT(*) FROM ratings WHERE movieId NOT IN (SELECT movieId FROM movies)",
    )
    assert orphans == [(0,)]
    assert query(mysql_settings, "CHECKSUM TABLE movies EXTENDED") == checksum_before
    again = append_synthetic_ratings(mysql_settings, 10, seed=7)
    assert again.first_user_id == added.last_user_id + 1


@pytest.mark.integration
def test_append_needs_movies(mysql_settings: MySQLSettings) -> None:
    create_source_tables(mysql_settings)
    with pytest.raises(DataError, match="no movies"):
        append_synthetic_ratings(mysql_settings, 10)


@pytest.mark.integration
def test_ratings_into_postgres_match_the_mysql_seed(
    mysql_settings: MySQLSettings, postgres_settings: PostgresSettings
) -> None:
    result = load_ratings_into_postgres(postgres_settings, 8_000, seed=9)
    assert (result.ratings, result.movies) == (8_000, 1_000)
    seed_synthetic(mysql_settings, 8_000, seed=9)
    mysql_ratings = query(
        mysql_settings, "SELECT userId, movieId, rating, timestamp FROM ratings ORDER BY 1, 2"
    )
    mysql_movies = query(mysql_settings, "SELECT movieId, title, genres FROM movies ORDER BY 1")
    schema = postgres_settings.schema_name
    with postgres_connection(postgres_settings) as connection:
        pg_ratings = connection.execute(
            f'SELECT user_id, movie_id, rating, "timestamp" FROM "{schema}".ratings ORDER BY 1, 2'
        ).fetchall()
        pg_movies = connection.execute(
            f'SELECT movie_id, title, genres, year FROM "{schema}".movies ORDER BY 1'
        ).fetchall()
        layout = connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable "
            "FROM information_schema.columns WHERE table_schema = %s "
            "ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        keys = connection.execute(
            "SELECT tc.table_name, string_agg(k.column_name, ',' ORDER BY k.ordinal_position) "
            "FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
            "WHERE tc.table_schema = %s "
            "AND tc.constraint_type = 'PRIMARY KEY' GROUP BY tc.table_name",
            (schema,),
        ).fetchall()
    assert [tuple(row) for row in pg_ratings] == mysql_ratings
    for (movie_id, title, genres), (pg_id, pg_title, pg_genres, pg_year) in zip(
        mysql_movies, pg_movies, strict=True
    ):
        assert (pg_id, pg_title) == (movie_id, title)
        assert pg_genres == ([] if genres == NO_GENRES else genres.split("|"))
        year = re.search(r"\((\d{4})\)\s*$", title)
        assert pg_year == (int(year.group(1)) if year else None)
    assert layout == [
        ("movies", "movie_id", "integer", "NO"),
        ("movies", "title", "text", "NO"),
        ("movies", "genres", "ARRAY", "NO"),
        ("movies", "year", "integer", "YES"),
        ("ratings", "user_id", "integer", "NO"),
        ("ratings", "movie_id", "integer", "NO"),
        ("ratings", "rating", "numeric", "NO"),
        ("ratings", "timestamp", "bigint", "NO"),
    ]
    assert dict(keys) == {"movies": "movie_id", "ratings": "user_id,movie_id"}
    # Loading again replaces, never duplicates.
    assert load_ratings_into_postgres(postgres_settings, 500, seed=9).ratings == 500
    with postgres_connection(postgres_settings) as connection:
        assert connection.execute(f'SELECT COUNT(*) FROM "{schema}".ratings').fetchone()[0] == 500


@pytest.mark.integration
def test_cli_synthetic_json(cli: Any, sql_settings: Any) -> None:
    result = cli(
        "seed",
        "synthetic",
        "--ratings",
        "4000",
        "--users",
        "40",
        "--movies",
        "500",
        "--seed",
        "3",
        "--json",
        settings=sql_settings,
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"]["ratings"] == 4_000 and payload["rows"]["movies"] == 500
    assert payload["seed"] == 3 and payload["dataset"] == "synthetic"
    users = query(sql_settings.mysql, "SELECT COUNT(DISTINCT userId) FROM ratings")[0][0]
    assert users == 40


@pytest.mark.integration
def test_cli_synthetic_infeasible_is_a_usage_error(cli: Any, sql_settings: Any) -> None:
    result = cli(
        "seed",
        "synthetic",
        "--ratings",
        "1000",
        "--users",
        "2",
        "--movies",
        "10",
        settings=sql_settings,
    )
    assert result.exit_code == ConfigError.exit_code
    assert "raise --users or --movies" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration
@pytest.mark.slow
def test_five_million_ratings(mysql_settings: MySQLSettings) -> None:
    result = seed_synthetic(mysql_settings, 5_000_000, seed=1)
    assert result.rows["ratings"] == 5_000_000
    assert query(mysql_settings, "SELECT COUNT(*) FROM ratings") == [(5_000_000,)]


def test_prefetched_keeps_order_and_passes_errors_on() -> None:
    assert list(prefetched(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("generator failed")

    with pytest.raises(ValueError, match="generator failed"):
        list(prefetched(failing()))
