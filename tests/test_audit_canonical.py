"""The canonical text is built alike in MariaDB, PostgreSQL and Python, for awkward values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.audit.canonical import Canonical, digest, row_text
from chariot.audit.forms import canonical_for
from chariot.audit.postgres import PostgresSide
from chariot.audit.segments import Segment
from chariot.audit.source import SourceSide
from chariot.config import Settings
from tests.audit_support import all_digests, mysql, postgres
from tests.movielens_rules import split_genres, title_year

pytestmark = pytest.mark.integration

# Any text MySQL's utf8mb4 can hold: no surrogates, no NUL (sources reject it anyway).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
TITLES = st.one_of(
    TEXT,
    st.builds(
        lambda t, y, tail: f"{t} ({y}){tail}",
        TEXT,
        st.integers(0, 9999).map("{:04d}".format),
        st.sampled_from(["", " ", "  ", "\t", "\n", "\u00a0", "\u2028", "#", ")"]),
    ),
)
GENRES = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "(no genres listed)", "(No Genres Listed)", "Action", "Sci-Fi|IMAX", "A||B", "A|"]
    ),
    st.lists(TEXT.filter(lambda g: "|" not in g), min_size=1, max_size=3).map("|".join),
)


@pytest.fixture
def movie_tables(sql_settings: Settings) -> Settings:
    from chariot.seed import create_source_tables

    create_source_tables(sql_settings.mysql)
    postgres(sql_settings.postgres, "CREATE SCHEMA IF NOT EXISTS {s}")
    postgres(
        sql_settings.postgres,
        "CREATE TABLE {s}.movies (movie_id integer PRIMARY KEY, title text NOT NULL, "
        "genres text[] NOT NULL, year integer)",
    )
    return sql_settings


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(TITLES, GENRES), min_size=1, max_size=8))
def test_mysql_postgres_and_python_build_the_sameall_digests(
    movie_tables: Settings, rows: list[tuple[str, str | None]]
) -> None:
    """The source's SQL transforms (genres, year) match the reference Python transforms that
    the sinks use, and both SQL dialects hash the same text as Python would for the graph."""
    mysql(movie_tables.mysql, "DELETE FROM movies")
    postgres(movie_tables.postgres, "DELETE FROM {s}.movies")
    source = [(i, title, genres) for i, (title, genres) in enumerate(rows, start=1)]
    for row in source:
        mysql(movie_tables.mysql, "INSERT INTO movies VALUES (%s, %s, %s)", row)
        postgres(
            movie_tables.postgres,
            "INSERT INTO {s}.movies VALUES (%s, %s, %s, %s)",
            (row[0], row[1], split_genres(row[2]), title_year(row[1])),
        )
    canonical = _form("postgres")
    at_source = all_digests(SourceSide(movie_tables, canonical))
    at_sink = all_digests(PostgresSide(movie_tables, canonical))
    in_python = {
        (movie_id,): digest(row_text(canonical, _sql_form(movie_id, title, genres, canonical)))
        for movie_id, title, genres in source
    }
    assert at_source == at_sink == in_python
    graph = _form("neo4j")
    python_source = all_digests(SourceSide(movie_tables, graph))
    expected_graph = {
        (movie_id,): digest(
            row_text(
                graph, _in_order(graph, movie_id, title, split_genres(genres), title_year(title))
            )
        )
        for movie_id, title, genres in source
    }
    assert python_source == expected_graph


def _sql_form(
    movie_id: int, title: str, genres: str | None, canonical: Canonical
) -> tuple[Any, ...]:
    return _in_order(canonical, movie_id, title, "|".join(split_genres(genres)), title_year(title))


def _in_order(
    canonical: Canonical, movie_id: int, title: str, genres: Any, year: int | None
) -> tuple[Any, ...]:
    by_name = {"movie_id": movie_id, "title": title, "genres": genres, "year": year}
    return tuple(by_name[name] for name in canonical.field_names)


def _form(sink: str) -> Canonical:
    from chariot.project.streams import default_streams

    movies = next(s for s in default_streams() if s.name == "movies")
    form = canonical_for(movies, sink)
    assert form is not None
    return form


TAG_ROWS = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(1, 3),
        TEXT.filter(lambda t: t == t.rstrip(" ") and t != ""),  # utf8mb4_bin pads spaces
        st.integers(0, 2**62),
    ),
    min_size=2,
    max_size=10,
    unique_by=lambda row: row[:3],
)


@pytest.fixture
def tag_tables(sql_settings: Settings) -> Settings:
    from chariot.seed import create_source_tables

    create_source_tables(sql_settings.mysql)
    postgres(sql_settings.postgres, "CREATE SCHEMA IF NOT EXISTS {s}")
    postgres(
        sql_settings.postgres,
        'CREATE TABLE {s}.tags (user_id integer, movie_id integer, tag text COLLATE "C", '
        '"timestamp" bigint NOT NULL, PRIMARY KEY (user_id, movie_id, tag))',
    )
    return sql_settings


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(TAG_ROWS, st.data())
def test_ordered_checksums_agree_in_every_database_and_change_with_one_value(
    tag_tables: Settings, rows: list[tuple[int, int, str, int]], data: st.DataObject
) -> None:
    """A segment's ordered checksum (its rows' texts in key order, hashed once) is the same
    in MariaDB (text keys ordered by their bytes), PostgreSQL (COLLATE "C") and Python; one
    changed value in the sink, in any column, makes it differ."""
    from chariot.audit.canonical import ordered_digest

    mysql(tag_tables.mysql, "DELETE FROM tags")
    postgres(tag_tables.postgres, "DELETE FROM {s}.tags")
    for row in rows:
        mysql(tag_tables.mysql, "INSERT INTO tags VALUES (%s, %s, %s, %s)", row)
        postgres(tag_tables.postgres, "INSERT INTO {s}.tags VALUES (%s, %s, %s, %s)", row)
    canonical = _tags_form()
    assert canonical.ordered
    whole = Segment(None, None)
    at_source = _checksum(SourceSide(tag_tables, canonical), whole)
    at_sink = _checksum(PostgresSide(tag_tables, canonical), whole)
    in_python = ordered_digest(row_text(canonical, row) for row in sorted(rows))
    assert at_source.count == at_sink.count == len(rows)
    assert at_source.total == at_sink.total == in_python

    user_id, movie_id, tag, stamp = data.draw(st.sampled_from(rows))
    column = data.draw(st.sampled_from(["user_id", "movie_id", "tag", "timestamp"]))
    value: Any = {"user_id": 9, "movie_id": 9, "tag": tag + "x", "timestamp": stamp ^ 1}[column]
    postgres(
        tag_tables.postgres,
        f'UPDATE {{s}}.tags SET "{column}" = %s WHERE user_id = %s AND movie_id = %s AND tag = %s',
        (value, user_id, movie_id, tag),
    )
    assert _checksum(PostgresSide(tag_tables, canonical), whole) != at_source


def _tags_form() -> Canonical:
    from chariot.project.streams import default_streams

    tags = next(s for s in default_streams() if s.name == "tags")
    form = canonical_for(tags, "postgres")
    assert form is not None
    return form


def _checksum(side: Any, segment: Segment) -> Any:
    try:
        return side.checksum(segment)
    finally:
        side.close()
