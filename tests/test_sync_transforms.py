"""The documented transforms: the Python reference and the SQL the PostgreSQL sink runs agree,
and the pure parts of the conductor (table order, plugin lookup) behave."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot import plugins
from chariot.config import PostgresSettings
from chariot.connections import postgres_connection
from chariot.errors import ConfigError, PluginError
from chariot.sinks.postgres import PostgresSink
from chariot.streams import Stream
from chariot.sync import select_streams
from tests.movielens_rules import postgres_genres_sql, postgres_year_sql, split_genres, title_year


def test_reference_transforms() -> None:
    assert split_genres("Action|Comedy") == ["Action", "Comedy"]
    assert split_genres("(no genres listed)") == []
    assert split_genres(None) == split_genres("") == []
    assert title_year("Heat (1995)") == 1995
    assert title_year("Heat (1995)  ") == 1995
    assert title_year("Babylon 5") is None
    assert title_year("Nineteen (1999) Eighty") is None
    assert title_year("Odd (١٩٩٥)") is None  # Arabic-Indic digits are not a year
    assert title_year("Series (2006-2007)") is None
    assert title_year("Wide (1995)\u2003") is None  # only ASCII whitespace may follow


TITLE_PIECES = st.sampled_from(
    ["(1995)", "(20", "05)", " ", "\t", "\n", "(", ")", "é", "Heat", "١"]
)
TITLES = st.lists(st.one_of(TITLE_PIECES, st.text(max_size=4)), max_size=6).map("".join)
GENRES = st.one_of(
    st.none(),
    st.just("(no genres listed)"),
    st.lists(st.sampled_from(["Action", "Comedy", "", "Sci-Fi", "Film-Noir", "é"]), max_size=4).map(
        "|".join
    ),
)


@pytest.mark.integration
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(title=TITLES.filter(lambda text: "\x00" not in text), genres=GENRES)
def test_postgres_sql_matches_the_python_reference(
    postgres_settings: PostgresSettings, title: str, genres: str | None
) -> None:
    query = (
        f"SELECT {postgres_year_sql('%(title)s::text')}, {postgres_genres_sql('%(genres)s::text')}"
    )
    with postgres_connection(postgres_settings) as connection:
        year, genre_list = connection.execute(query, {"title": title, "genres": genres}).fetchone()
    assert year == title_year(title)
    assert genre_list == split_genres(genres)


def _stream(name: str, depends_on: tuple[str, ...] = ()) -> Stream:
    return Stream(name=name, source_table=name, columns=(), key=(), depends_on=depends_on)


@given(st.permutations(["movies", "links", "ratings", "tags", "users", "plays"]), st.data())
def test_tables_run_after_what_they_depend_on(order: list[str], data: st.DataObject) -> None:
    dependencies = {
        "links": ("movies",),
        "ratings": ("movies", "users"),
        "tags": ("movies",),
        "plays": ("ratings",),
    }
    streams = tuple(_stream(name, dependencies.get(name, ())) for name in order)
    wanted = data.draw(st.none() | st.lists(st.sampled_from(order), unique=True, min_size=1))
    chosen = [stream.name for stream in select_streams(streams, wanted)]
    assert set(chosen) == set(wanted or order)
    for name in chosen:
        for dependency in dependencies.get(name, ()):
            if dependency in chosen:
                assert chosen.index(dependency) < chosen.index(name)


def test_unknown_tables_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown table 'rating'; tables: movies"):
        select_streams((_stream("movies"),), ["rating"])


def test_sinks_are_found_through_entry_points() -> None:
    assert plugins.load_sink("postgres") is PostgresSink
    assert {"postgres", "neo4j"} <= set(plugins.sink_names())
    assert "mysql" in plugins.source_names()


def test_an_unknown_sink_lists_the_installed_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown sink 'kafka'; installed sinks: .*postgres"):
        plugins.load_sink("kafka")


def test_a_broken_plugin_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint("broken", "chariot_no_such_module:Sink", plugins.SINK_GROUP)
    not_a_sink = EntryPoint("odd", "chariot.streams:Stream", plugins.SINK_GROUP)
    monkeypatch.setattr(plugins, "installed", lambda group: {"broken": broken, "odd": not_a_sink})
    with pytest.raises(PluginError, match="sink 'broken' .* could not be loaded: No module named"):
        plugins.load_sink("broken")
    with pytest.raises(PluginError, match="is not a Sink class"):
        plugins.load_sink("odd")
