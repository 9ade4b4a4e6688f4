"""The project file: loading, errors that name file, key path and expectation, the writer's
round trip, and the MovieLens example describing exactly today's tables and graph."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot.errors import ConfigError
from chariot.exit_codes import ExitCode
from chariot.project import Project, load_project, parse_project, project_path
from chariot.project.expressions import python_function
from chariot.project.outputs import table_outputs
from chariot.project.streams import project_streams
from chariot.project.summaries import summary_columns
from chariot.project.writer import render_project, value
from chariot.sinks.postgres_layout import PgTable
from chariot.streams import Stream
from tests.movielens_project import MOVIELENS_STREAMS
from tests.movielens_rules import YEAR_PATTERN, split_genres, title_year

EXAMPLE = Path(__file__).resolve().parents[1] / "examples/movielens/chariot.toml"

MINIMAL = """
[tables.orders]
key = ["id"]
[tables.orders.columns]
id = { type = "int" }
total = { type = "decimal(10,2)" }
"""


@pytest.fixture(scope="module")
def movielens() -> Project:
    return load_project(EXAMPLE)


# -- the MovieLens example -----------------------------------------------------------------


def _essentials(stream: Stream) -> tuple[object, ...]:
    columns = [
        (c.source, c.name, c.kind, c.nullable, c.min_value, c.max_value, c.step)
        for c in stream.columns
    ]
    return (stream.name, stream.source_table, stream.key, stream.references, columns)


def test_movielens_tables_columns_and_keys_are_todays_streams(movielens: Project) -> None:
    assert [_essentials(s) for s in project_streams(movielens)] == [
        _essentials(s) for s in MOVIELENS_STREAMS
    ]


# The PostgreSQL layout the MovieLens tables had before the project file: (name, type, NOT NULL).
TODAYS_LAYOUT = {
    "movies": [
        ("movie_id", "integer", True),
        ("title", "text", True),
        ("genres", "text[]", True),
        ("year", "integer", False),
    ],
    "links": [
        ("movie_id", "integer", True),
        ("imdb_id", "text", True),
        ("tmdb_id", "integer", False),
    ],
    "ratings": [
        ("user_id", "integer", True),
        ("movie_id", "integer", True),
        ("rating", "numeric(2,1)", True),
        ("timestamp", "bigint", True),
    ],
    "tags": [
        ("user_id", "integer", True),
        ("movie_id", "integer", True),
        ("tag", 'text COLLATE "C"', True),
        ("timestamp", "bigint", True),
    ],
}


def test_movielens_postgres_columns_are_todays_layout(movielens: Project) -> None:
    for stream in project_streams(movielens):
        today = TODAYS_LAYOUT[stream.name]
        layout = PgTable(stream, "s").columns
        assert [(c.name, c.type, c.not_null) for c in layout] == today
        ours = table_outputs(movielens.tables[stream.name])
        # The layout gives text key columns COLLATE "C": a sink rule, not the project's.
        assert [(c.name, c.postgres, not c.nullable) for c in ours] == [
            (name, type_.removesuffix(' COLLATE "C"'), not_null) for name, type_, not_null in today
        ]


def test_movielens_year_pattern_is_todays(movielens: Project) -> None:
    transforms = movielens.tables["movies"].transforms
    assert [t.pattern for t in transforms if hasattr(t, "pattern")] == [YEAR_PATTERN]


@given(st.one_of(st.none(), st.text(), st.sampled_from(["", "(no genres listed)", "A|B|"])))
def test_movielens_genres_transform_is_split_genres(genres: str | None) -> None:
    project = load_project(EXAMPLE)
    column = next(c for c in table_outputs(project.tables["movies"]) if c.name == "genres")
    assert python_function(column)(genres) == split_genres(genres)


@given(
    st.one_of(
        st.none(),
        st.text(),
        st.builds(
            lambda t, y, s: f"{t} ({y}){s}",
            st.text(),
            st.integers(0, 9999).map(lambda n: f"{n:04d}"),
            st.text(" \t\n\r\x0b\x0c\u2003", max_size=3),
        ),
    )
)
def test_movielens_year_transform_is_title_year(title: str | None) -> None:
    project = load_project(EXAMPLE)
    column = next(c for c in table_outputs(project.tables["movies"]) if c.name == "year")
    assert python_function(column)(title) == title_year(title)


def test_movielens_graph_model(movielens: Project) -> None:
    graph = movielens.graph
    assert set(graph.nodes) == {"Movie", "User", "Genre"}
    assert graph.nodes["Movie"].key == ["movieId"]
    assert graph.nodes["User"].values == ["ratings.user_id", "tags.user_id"]
    assert graph.nodes["Genre"].values == ["movies.genres"]
    shapes = {(r.from_.label, r.type, r.to.label, r.table) for r in graph.relationships}
    assert shapes == {
        ("Movie", "IN_GENRE", "Genre", "movies"),
        ("User", "RATED", "Movie", "ratings"),
        ("User", "TAGGED", "Movie", "tags"),
    }
    properties = {
        "Movie": {"title", "year"} | set(graph.nodes["Movie"].extended_by[0].properties),
        **{r.type: set(r.properties) for r in graph.relationships},
    }
    assert properties == {
        "Movie": {"title", "year", "imdbId", "tmdbId"},
        "IN_GENRE": set(),
        "RATED": {"rating", "timestamp"},
        "TAGGED": {"tag", "timestamp"},
    }


# The summary tables (column, type, NOT NULL) and Movie properties of Chariot 0.1.0, which
# hard-coded them; the MovieLens example declares exactly these.
TODAYS_SUMMARIES: dict[str, list[tuple[str, str, bool, str | None]]] = {
    "movie_stats": [
        ("movie_id", "integer", True, None),
        ("rating_count", "bigint", True, "ratingCount"),
        ("rating_mean", "double precision", True, "ratingMean"),
        ("rating_stddev", "double precision", False, "ratingStddev"),
        ("rating_min", "numeric(2,1)", True, "ratingMin"),
        ("rating_max", "numeric(2,1)", True, "ratingMax"),
        ("rating_median", "double precision", True, "ratingMedian"),
        ("rating_histogram", "integer[]", True, "ratingHistogram"),
        ("first_rated_at", "bigint", True, "firstRatedAt"),
        ("last_rated_at", "bigint", True, "lastRatedAt"),
        ("bayesian_average", "double precision", True, "bayesianAverage"),
    ],
    "user_stats": [
        ("user_id", "integer", True, None),
        ("rating_count", "bigint", True, None),
        ("rating_mean", "double precision", True, None),
        ("rating_stddev", "double precision", False, None),
        ("first_rated_at", "bigint", True, None),
        ("last_rated_at", "bigint", True, None),
    ],
    "genre_stats": [
        ("genre", "text", True, None),
        ("movie_count", "bigint", True, None),
        ("rating_count", "bigint", True, None),
        ("rating_mean", "double precision", True, None),
    ],
}


@pytest.mark.parametrize("name", list(TODAYS_SUMMARIES))
def test_movielens_aggregations_are_todays_summaries(movielens: Project, name: str) -> None:
    ours = summary_columns(movielens, name)
    today = TODAYS_SUMMARIES[name]
    assert [(c.name, c.postgres, not c.nullable) for c in ours] == [t[:3] for t in today]
    assert [c.property for c in ours[1:]] == [t[3] for t in today[1:]]


def test_movielens_bayesian_prior_is_0_1_0s_default(movielens: Project) -> None:
    statistic = movielens.aggregations["movie_stats"].statistics["bayesian_average"]
    assert (float(statistic.prior_weight), float(statistic.prior_mean)) == (10.0, 3.5)


def test_writer_round_trips_the_example(movielens: Project) -> None:
    assert parse_project(render_project(movielens)) == movielens


# -- loading -------------------------------------------------------------------------------


def test_defaults_come_from_the_type_mapping() -> None:
    project = parse_project(MINIMAL)
    total = project.tables["orders"].columns["total"]
    assert (total.postgres, total.neo4j, total.nullable) == ("numeric(10,2)", "float", False)
    assert project.graph.nodes == {} and project.aggregations == {}


def test_found_in_the_working_directory_or_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)
    (tmp_path / "chariot.toml").write_text(MINIMAL, encoding="utf-8")
    assert project_path(cwd=tmp_path) == tmp_path / "chariot.toml"
    assert project_path(tmp_path) == tmp_path / "chariot.toml"  # a folder
    assert load_project(cwd=tmp_path) == load_project(tmp_path / "chariot.toml")


def test_chariot_project_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "shop"
    elsewhere.mkdir()
    (elsewhere / "chariot.toml").write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv("CHARIOT_PROJECT", str(elsewhere))
    assert project_path(cwd=tmp_path) == elsewhere / "chariot.toml"
    assert project_path(tmp_path / "given.toml") == tmp_path / "given.toml"  # the option wins
    assert list(load_project(cwd=tmp_path).tables) == ["orders"]


def test_missing_file_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_project(cwd=tmp_path)
    assert str(tmp_path / "chariot.toml") in str(caught.value)
    assert "chariot init" in (caught.value.hint or "")
    assert caught.value.exit_code == ExitCode.USAGE


BROKEN = [
    # (what replaces/extends MINIMAL, key path, words of the expectation)
    ("[tables.orders]\nkey = ]", "not valid TOML", "line 2"),
    (MINIMAL.replace('"int"', '"int(x)"'), "tables.orders.columns.id.type", "expected numbers"),
    (MINIMAL.replace('"int"', '"geometry"'), "tables.orders.columns.id", "no PostgreSQL/Neo4j"),
    (
        MINIMAL.replace('{ type = "int" }', '{ type = "int", postgres = "integr" }'),
        "tables.orders.columns.id.postgres",
        "expected a PostgreSQL type",
    ),
    (
        MINIMAL.replace('{ type = "int" }', '{ type = "int", neo4j = "int64" }'),
        "tables.orders.columns.id.neo4j",
        "expected one of integer",
    ),
    (MINIMAL.replace("key = [", "keys = ["), "tables.orders.keys", "unknown key"),
    (MINIMAL.replace('key = ["id"]', 'key = ["ID"]'), "tables.orders.key[0]", "expected a column"),
    (
        MINIMAL.replace('{ type = "int" }', '{ type = "int", nullable = true }'),
        "tables.orders.columns.id.nullable",
        "cannot be nullable",
    ),
    (  # a key written under the wrong table header
        MINIMAL + 'transforms = [{ split = "total" }]',
        "tables.orders.columns.transforms",
        "expected a table, got a list",
    ),
    (
        MINIMAL.replace(
            "[tables.orders.columns]", 'transforms = [{ splt = "total" }]\n[tables.orders.columns]'
        ),
        "tables.orders.transforms[0]",
        "expected a transform",
    ),
    (
        MINIMAL.replace(
            "[tables.orders.columns]", 'transforms = [{ split = "total" }]\n[tables.orders.columns]'
        ),
        "tables.orders.transforms[0].delimiter",
        "required key is missing",
    ),
    (
        MINIMAL.replace(
            "[tables.orders.columns]",
            'transforms = [{ split = "total", delimiter = "," }]\n[tables.orders.columns]',
        ),
        "tables.orders.transforms[0]",
        "not text",
    ),
    (
        MINIMAL.replace(
            "[tables.orders.columns]",
            'transforms = [{ rename = "totl", to = "x" }]\n[tables.orders.columns]',
        ),
        "tables.orders.transforms[0]",
        "no column 'totl'",
    ),
    (
        MINIMAL + '\n[graph.nodes.Order]\ntable = "orders"\nproperties = { total = "totl" }\n',
        "graph.nodes.Order.properties.total",
        "has no column 'totl'",
    ),
    (
        MINIMAL + '\n[graph.nodes.Order]\ntable = "orders"\n[[graph.relationships]]\n'
        'type = "PLACED"\ntable = "orders"\nfrom = { label = "Customer", key = ["id"] }\n'
        'to = { label = "Order", key = ["id"] }\n',
        "graph.relationships[0].from.label",
        "no label 'Customer' in graph.nodes",
    ),
    (
        MINIMAL + '\n[graph.nodes."Bad Label"]\ntable = "orders"\n',
        'graph.nodes."Bad Label" (the name)',
        "expected a name matching",
    ),
    (
        MINIMAL + '\n[graph.nodes.Order]\ntable = "orders"\nvalues = ["orders.id"]\n',
        "graph.nodes.Order",
        "either table",
    ),
    (
        MINIMAL + '\n[aggregations.order_stats]\ntable = "orders"\ngroup_by = "id"\n'
        '[aggregations.order_stats.statistics]\ntotal_mean = "mean"\n',
        "aggregations.order_stats.statistics.total_mean",
        "needs the aggregation's measure",
    ),
    (
        MINIMAL + '\n[aggregations.order_stats]\ntable = "orders"\ngroup_by = "id"\n'
        'measure = "total"\n[aggregations.order_stats.statistics]\nh = { histogram = '
        "{ values = [2.0, 1.0] } }\n",
        "aggregations.order_stats.statistics.h",
        "strictly increasing",
    ),
    (
        MINIMAL + '\n[aggregations.order_stats]\ntable = "orders"\ngroup_by = "id"\n'
        'label = "Order"\n[aggregations.order_stats.statistics]\nn = "count"\n',
        "aggregations.order_stats.label",
        "no label 'Order'",
    ),
]


@pytest.mark.parametrize(("text", "path", "expected"), BROKEN, ids=[b[1] for b in BROKEN])
def test_every_error_names_file_key_path_and_expectation(
    text: str, path: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_project(text, file="shop/chariot.toml")
    message = str(caught.value)
    assert message.startswith(f"shop/chariot.toml: {path}: "), message
    assert expected in message, message
    assert caught.value.exit_code == ExitCode.USAGE


def test_more_problems_are_counted_and_listed_in_the_hint() -> None:
    text = MINIMAL.replace('"int"', '"geometry"').replace('"decimal(10,2)"', '"point"')
    with pytest.raises(ConfigError) as caught:
        parse_project(text)
    assert "(and 1 more problem)" in str(caught.value)
    assert "tables.orders.columns.total" in (caught.value.hint or "")


# -- writing TOML --------------------------------------------------------------------------


@given(st.text(st.characters(codec="utf-8")))
def test_any_string_survives_the_writer(text: str) -> None:
    assert tomllib.loads(f"x = {value(text)}")["x"] == text


@given(st.dictionaries(st.text(st.characters(codec="utf-8"), min_size=1), st.text()))
def test_any_key_survives_the_writer(table: dict[str, str]) -> None:
    assert tomllib.loads(f"x = {value(table)}")["x"] == table
