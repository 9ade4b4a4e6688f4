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
from tests.audit_support import mysql, postgres
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
def test_mysql_postgres_and_python_build_the_same_digests(
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
    at_source = _digests(SourceSide(movie_tables, canonical))
    at_sink = _digests(PostgresSide(movie_tables, canonical))
    in_python = {
        (movie_id,): digest(row_text(canonical, _sql_form(movie_id, title, genres, canonical)))
        for movie_id, title, genres in source
    }
    assert at_source == at_sink == in_python
    graph = _form("neo4j")
    python_source = _digests(SourceSide(movie_tables, graph))
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


def _digests(side: Any) -> dict[tuple[Any, ...], int]:
    try:
        return dict(side.digests(Segment(None, None)))
    finally:
        side.close()
