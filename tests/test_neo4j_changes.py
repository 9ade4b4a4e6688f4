"""The Neo4j sink applies change capture batches (``ChangeSink``), on the real server.

The invariant every test checks: a graph loaded from source state S, after ``apply`` of the
changes from S to S', equals the graph a fresh first load of S' builds (nodes with their
properties, relationships with their ends and properties, recorded rejects). Deletes keep
what other rows still justify (a movie deleted while its ratings remain is a placeholder
node holding them, exactly as a first load makes it).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chariot.batch import Batch, Key, Reject
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import Neo4jSettings, RunSettings, Settings
from chariot.connections import neo4j_session
from chariot.errors import SinkWriteError
from chariot.project import Project
from chariot.sinks.neo4j import Neo4jSink, graph
from chariot.streams import Stream
from tests.movielens_project import LINKS, MOVIELENS_STREAMS, MOVIES, RATINGS, TAGS

pytestmark = pytest.mark.integration

# table -> key -> source row (``stream.source_columns`` order), and the rejected keys.
Rows = dict[str, dict[Key, tuple[Any, ...]]]
Rejected = dict[str, dict[Key, str]]
POSITION = LogPosition("binlog.000001", 400, "0-1-5")
COMMITTED = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


class State:
    """A source state: rows per table and keys the source reader rejects."""

    def __init__(self, streams: tuple[Stream, ...], rows: Rows, rejected: Rejected | None = None):
        self.streams = streams
        self.rows = {s.name: dict(rows.get(s.name, {})) for s in streams}
        self.rejected = {s.name: dict((rejected or {}).get(s.name, {})) for s in streams}

    def copy(self) -> State:
        return State(self.streams, copy.deepcopy(self.rows), copy.deepcopy(self.rejected))


def keyed(stream: Stream, rows: list[tuple[Any, ...]]) -> dict[Key, tuple[Any, ...]]:
    return {tuple(row[p] for p in stream.key_positions): tuple(row) for row in rows}


# -- loading, diffing, reading the graph --------------------------------------------------------


def sink_for(neo4j: Neo4jSettings, **neo4j_options: Any) -> Neo4jSink:
    options = {**neo4j.model_dump(), **neo4j_options}
    return Neo4jSink(Settings(neo4j=Neo4jSettings(**options), run=RunSettings()))


def first_load(neo4j: Neo4jSettings, state: State) -> None:
    """What ``chariot sync`` does on an empty graph: each table in order, one batch."""
    with sink_for(neo4j) as sink:
        for stream in state.streams:
            sink.prepare(stream)
            rows = [state.rows[stream.name][key] for key in sorted(state.rows[stream.name])]
            rejects = [
                Reject(stream.name, key, reason)
                for key, reason in state.rejected[stream.name].items()
            ]
            keys = sorted([*state.rows[stream.name], *state.rejected[stream.name]])
            if keys:
                sink.write(Batch(stream, rows, keys[-1], rejects))


def changes_between(before: State, after: State, *, hint_all: bool = False) -> list[TableChanges]:
    """The net changes from ``before`` to ``after``, as the change writer folds them: the
    rows both states hold are ``updated`` (in place). ``hint_all``: every upsert is, even
    a row the graph does not hold (the hint must never decide what the graph holds)."""
    tables = []
    for stream in after.streams:
        old, new = before.rows[stream.name], after.rows[stream.name]
        old_rejected, new_rejected = before.rejected[stream.name], after.rejected[stream.name]
        present = {*new, *new_rejected}
        tables.append(
            TableChanges(
                stream,
                deletes=sorted(k for k in {*old, *old_rejected} if k not in present),
                upserts=[new[k] for k in sorted(new) if old.get(k) != new[k]],
                rejects=[
                    Reject(stream.name, k, reason)
                    for k, reason in sorted(new_rejected.items())
                    if old_rejected.get(k) != reason
                ],
                updated={k for k in new if hint_all or k in old},
            )
        )
    return tables


def batch_of(tables: list[TableChanges], position: LogPosition = POSITION) -> ChangeBatch:
    return ChangeBatch(
        tables=tables,
        position=position,
        positioned=tuple(t.stream.name for t in tables),
        transactions=1,
        changes=sum(len(t.changed_keys) for t in tables),
        committed_at=COMMITTED,
    )


def graph_state(neo4j: Neo4jSettings, project: Project) -> dict[str, list[str]]:
    """Every node of the project's labels with its properties, every relationship with its
    ends' keys and properties, and the recorded rejects: sorted text, to compare."""

    def rows(cypher: str, **parameters: Any) -> list[str]:
        with neo4j_session(neo4j) as session:
            found = [record.data() for record in session.run(cypher, parameters)]
        return sorted(repr(sorted((k, _stable(v)) for k, v in row.items())) for row in found)

    state = {
        label: rows(f"MATCH (n:`{label}`) RETURN properties(n) AS p")
        for label in project.graph.nodes
    }
    for relationship in project.graph.relationships:
        start = label_key(project, relationship.from_.label)
        end = label_key(project, relationship.to.label)
        state[relationship.type] = rows(
            f"MATCH (a:`{relationship.from_.label}`)-[r:`{relationship.type}`]->"
            f"(b:`{relationship.to.label}`) "
            "RETURN [k IN $start | a[k]] AS a, [k IN $end | b[k]] AS b, properties(r) AS p",
            start=start,
            end=end,
        )
    state["rejects"] = rows("MATCH (r:ChariotReject) RETURN r.table AS t, r.key AS k")
    return state


def label_key(project: Project, label: str) -> list[str]:
    from chariot.sinks.neo4j.plan import label_key as key_of

    return list(key_of(project, project.graph.nodes[label]))


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _stable(v)) for k, v in value.items())
    return value


def assert_apply_equals_first_load(
    neo4j: Neo4jSettings, before: State, after: State, *, replays: int = 1, hint_all: bool = False
) -> dict[str, list[str]]:
    """Load ``before``, apply the changes to ``after`` (``replays`` times), and compare the
    graph with a first load of ``after``. Returns the graph state."""
    project = after.streams[0].project
    assert project is not None
    clear_graph(neo4j)
    first_load(neo4j, before)
    with sink_for(neo4j) as sink:
        for _ in range(replays):
            sink.apply(batch_of(changes_between(before, after, hint_all=hint_all)))
    applied = graph_state(neo4j, project)
    clear_graph(neo4j)
    first_load(neo4j, after)
    loaded = graph_state(neo4j, project)
    for part in loaded:
        assert applied[part] == loaded[part], part
    return applied


def clear_graph(neo4j: Neo4jSettings) -> None:
    """Every node and relationship (small graphs here); constraints stay, unlike wipe_graph's
    full reset, which is what makes a fresh sink slow to start."""
    with neo4j_session(neo4j) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()


def scalar(neo4j: Neo4jSettings, cypher: str, **parameters: Any) -> Any:
    with neo4j_session(neo4j) as session:
        record = session.run(cypher, parameters).single()
    assert record is not None
    return record[0]


# -- MovieLens ------------------------------------------------------------------------------


def movielens(
    movies: list[tuple[Any, ...]],
    links: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
    ratings: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
    tags: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
) -> State:
    return State(
        MOVIELENS_STREAMS,
        {
            "movies": keyed(MOVIES, list(movies)),
            "links": keyed(LINKS, list(links)),
            "ratings": keyed(RATINGS, list(ratings)),
            "tags": keyed(TAGS, list(tags)),
        },
    )


def rating(user: int, movie: int, stars: str, at: int = 1_000) -> tuple[Any, ...]:
    return (user, movie, Decimal(stars), at)


BASE = movielens(
    movies=[
        (1, "Toy Story (1995)", "Adventure|Animation"),
        (2, "Jumanji (1995)", "Adventure|Fantasy"),
        (3, "Heat (1995)", "Crime"),
        (4, "Untitled", None),
    ],
    links=[(1, "0114709", 862), (2, "0113497", None), (3, "0113277", 949)],
    ratings=[
        rating(10, 1, "4.0"),
        rating(11, 1, "3.5"),
        rating(10, 2, "5.0"),
        rating(12, 3, "1.0"),
    ],
    tags=[(10, 1, "pixar", 5), (11, 2, "jungle", 6)],
)


def test_a_movie_deleted_while_its_ratings_remain_keeps_a_bare_node(
    neo4j_settings: Neo4jSettings,
) -> None:
    after = BASE.copy()
    del after.rows["movies"][(1,)]  # its links row, ratings and tag stay
    assert_apply_equals_first_load(neo4j_settings, BASE, after)
    db = neo4j_settings
    # The node stays for what still justifies it; the row's own properties and genres go.
    assert scalar(db, "MATCH (m:Movie {movieId: 1}) RETURN m.title") is None
    assert scalar(db, "MATCH (m:Movie {movieId: 1}) RETURN m.imdbId") == "0114709"
    assert scalar(db, "MATCH (:Movie {movieId: 1})<-[r:RATED]-() RETURN count(r)") == 2
    assert scalar(db, "MATCH (:Movie {movieId: 1})-[r:IN_GENRE]->() RETURN count(r)") == 0
    # Animation was movie 1's genre only; Adventure still has Jumanji.
    assert scalar(db, "MATCH (g:Genre {name: 'Animation'}) RETURN count(g)") == 0
    assert scalar(db, "MATCH (g:Genre {name: 'Adventure'}) RETURN count(g)") == 1


def test_a_movie_and_everything_about_it_deleted_leaves_nothing(
    neo4j_settings: Neo4jSettings,
) -> None:
    after = BASE.copy()
    del after.rows["movies"][(3,)]
    del after.rows["links"][(3,)]
    del after.rows["ratings"][(12, 3)]  # user 12's only rating
    assert_apply_equals_first_load(neo4j_settings, BASE, after)
    assert scalar(neo4j_settings, "MATCH (m:Movie {movieId: 3}) RETURN count(m)") == 0
    assert scalar(neo4j_settings, "MATCH (u:User {userId: 12}) RETURN count(u)") == 0
    assert scalar(neo4j_settings, "MATCH (g:Genre {name: 'Crime'}) RETURN count(g)") == 0


def test_updates_moved_keys_inserts_and_deletes_in_one_batch(
    neo4j_settings: Neo4jSettings,
) -> None:
    after = BASE.copy()
    movies, links, ratings, tags = (after.rows[t] for t in ("movies", "links", "ratings", "tags"))
    movies[(2,)] = (2, "Jumanji (1996)", "Fantasy|Comedy")  # new year, one genre swapped
    movies[(4,)] = (4, "Untitled (2001)", "Drama")  # from no genre to one
    movies[(9,)] = (9, "Late Arrival (2020)", "Crime")  # an insert
    links[(2,)] = (2, "0113497", 8844)  # NULL -> value
    links[(1,)] = (1, "0114709", None)  # value -> NULL: the property goes
    # A key-changing update: user 11's rating of movie 1 becomes one of movie 2.
    del ratings[(11, 1)]
    ratings[(11, 2)] = rating(11, 2, "2.5", 2_000)
    ratings[(10, 1)] = rating(10, 1, "0.5", 3_000)  # a value update
    ratings[(13, 9)] = rating(13, 9, "4.5")  # a new user, below any mark
    del tags[(11, 2, "jungle")]
    tags[(11, 2, "board game")] = (11, 2, "board game", 7)
    assert_apply_equals_first_load(neo4j_settings, BASE, after)
    assert scalar(neo4j_settings, "MATCH (m:Movie {movieId: 1}) RETURN m.tmdbId") is None
    assert scalar(neo4j_settings, "MATCH (m:Movie {movieId: 2}) RETURN m.year") == 1996


def test_an_updated_row_loses_the_relationship_it_no_longer_makes(
    neo4j_settings: Neo4jSettings,
) -> None:
    after = BASE.copy()
    after.rows["movies"][(3,)] = (3, "Heat (1995)", "Drama")  # Crime was its only genre
    assert_apply_equals_first_load(neo4j_settings, BASE, after)
    assert scalar(neo4j_settings, "MATCH (g:Genre {name: 'Crime'}) RETURN count(g)") == 0
    genres = "MATCH (:Movie {movieId: 3})-[:IN_GENRE]->(g) RETURN collect(g.name)"
    assert scalar(neo4j_settings, genres) == ["Drama"]


def test_rows_hinted_as_updated_in_place_but_missing_are_written_anyway(
    neo4j_settings: Neo4jSettings,
) -> None:
    # ``updated`` is a hint (a row the log updated in place may be missing from the graph:
    # rejected before, or a copy that ran ahead): the ratings and tags the graph lacks are
    # MERGEd, the ones it holds SET, in one batch.
    after = BASE.copy()
    ratings, tags = after.rows["ratings"], after.rows["tags"]
    ratings[(10, 1)] = rating(10, 1, "0.5", 3_000)  # held: SET in place
    ratings[(15, 3)] = rating(15, 3, "2.0")  # not held, new user
    ratings[(12, 1)] = rating(12, 1, "4.0")  # not held, both ends exist
    tags[(10, 1, "pixar")] = (10, 1, "pixar", 9)  # held (identity: the tag)
    tags[(10, 1, "toys")] = (10, 1, "toys", 9)  # not held, same ends as a held one
    assert_apply_equals_first_load(neo4j_settings, BASE, after, hint_all=True)
    assert_apply_equals_first_load(neo4j_settings, BASE, after, hint_all=True, replays=2)
    stars = "MATCH (:User {userId: 10})-[r:RATED]->(:Movie {movieId: 1}) RETURN r.rating"
    assert scalar(neo4j_settings, stars) == 0.5


def test_replaying_a_batch_changes_nothing(neo4j_settings: Neo4jSettings) -> None:
    after = BASE.copy()
    del after.rows["movies"][(1,)]
    del after.rows["ratings"][(10, 2)]
    after.rows["ratings"][(14, 4)] = rating(14, 4, "3.0")
    assert_apply_equals_first_load(neo4j_settings, BASE, after, replays=3)


def test_rejects_are_recorded_deleted_and_cleared(neo4j_settings: Neo4jSettings) -> None:
    # The source reader rejects rating (10, 2)'s new version; the sink must drop the row it
    # holds and record the reject, as a first load of that state would.
    after = BASE.copy()
    del after.rows["ratings"][(10, 2)]
    after.rejected["ratings"][(10, 2)] = "rating: 7.0 is above 5.0"
    state = assert_apply_equals_first_load(neo4j_settings, BASE, after)
    assert state["rejects"] == [repr([("k", "[10,2]"), ("t", "ratings")])]

    # Fixed in the source: the row loads and its reject is cleared.
    assert_apply_equals_first_load(neo4j_settings, after, BASE)
    assert scalar(neo4j_settings, "MATCH (r:ChariotReject) RETURN count(r)") == 0

    # A value Neo4j cannot hold (beyond its 64-bit integers) is refused by the sink itself:
    # the old row goes, the reject is recorded; a later delete of the key clears it.
    clear_graph(neo4j_settings)
    first_load(neo4j_settings, BASE)
    huge = rating(10, 1, "4.0", 2**70)
    with sink_for(neo4j_settings) as sink:
        sink.apply(batch_of([TableChanges(RATINGS, upserts=[huge])]))
        assert (
            scalar(neo4j_settings, "MATCH ()-[r:RATED]->(:Movie {movieId: 1}) RETURN count(r)") == 1
        )
        reason = scalar(neo4j_settings, "MATCH (r:ChariotReject {key: '[10,1]'}) RETURN r.reason")
        assert "64-bit" in reason
        sink.apply(batch_of([TableChanges(RATINGS, deletes=[(10, 1)])]))
    assert scalar(neo4j_settings, "MATCH (r:ChariotReject) RETURN count(r)") == 0


def test_a_failure_inside_the_transaction_changes_nothing(
    neo4j_settings: Neo4jSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = MOVIES.project
    assert project is not None
    first_load(neo4j_settings, BASE)
    after = BASE.copy()
    del after.rows["movies"][(1,)]
    after.rows["ratings"][(15, 2)] = rating(15, 2, "3.0")
    before = graph_state(neo4j_settings, project)
    batch = batch_of(changes_between(BASE, after))
    with sink_for(neo4j_settings) as sink:
        sink.start_log(MOVIES, LogPosition("binlog.000001", 4))
        # The last statement of the transaction (the position) fails: nothing of the batch
        # may remain, rows and position alike.
        monkeypatch.setattr(graph, "WRITE_LOG_POSITIONS", "RETURN 1 / 0")
        with pytest.raises(SinkWriteError, match="applying changes up to binlog.000001:400"):
            sink.apply(batch)
        assert graph_state(neo4j_settings, project) == before
        assert sink.log_positions() == {"movies": LogPosition("binlog.000001", 4)}
        monkeypatch.undo()
        sink.apply(batch)
        assert sink.log_positions() == {name: POSITION for name in batch.positioned}
    assert scalar(neo4j_settings, "MATCH (u:User {userId: 15}) RETURN count(u)") == 1


def test_log_positions_start_forget_and_ride_with_each_batch(
    neo4j_settings: Neo4jSettings,
) -> None:
    with sink_for(neo4j_settings) as sink:
        assert sink.log_positions() == {}
        chunked = LogPosition("binlog.000002", 630, "0-1-6", within=5_000)
        sink.start_log(MOVIES, chunked)
        sink.start_log(RATINGS, LogPosition("binlog.000002", 100))
        assert sink.log_positions() == {
            "movies": chunked,
            "ratings": LogPosition("binlog.000002", 100),
        }
        # A batch with no change for a table still moves the position of every table named.
        later = LogPosition("binlog.000003", 4, "0-1-9")
        sink.apply(
            ChangeBatch(
                tables=[TableChanges(MOVIES, upserts=[(5, "Five (2005)", None)])],
                position=later,
                positioned=("movies", "ratings"),
                committed_at=COMMITTED,
            )
        )
        assert sink.log_positions() == {"movies": later, "ratings": later}
        committed = scalar(
            neo4j_settings, "MATCH (p:ChariotLogPosition {table: 'movies'}) RETURN p.committedAt"
        )
        assert committed.to_native() == COMMITTED
        sink.forget_log(RATINGS)
        assert sink.log_positions() == {"movies": later}
        # The table's checkpoint is a separate node: key-based sync goes on from it.
        assert sink.checkpoint(RATINGS) is None
    constraints = scalar(neo4j_settings, "SHOW CONSTRAINTS YIELD name RETURN collect(name)")
    assert "chariot_log_position_table" in constraints


def test_the_setting_and_a_batch_near_the_cap(neo4j_settings: Neo4jSettings) -> None:
    assert sink_for(neo4j_settings).max_changes_per_transaction == 20_000
    assert (
        sink_for(neo4j_settings, max_changes_per_transaction=500).max_changes_per_transaction == 500
    )
    cap = 20_000
    third = cap // 3
    # 1:1:1 inserts, updates and deletes of ratings, all in one transaction.
    before = movielens(
        movies=[(m, f"Movie {m} (2000)", "Drama") for m in range(1, 101)],
        ratings=[
            rating(u, m, "3.0") for u in range(1, 2 * third // 100 + 2) for m in range(1, 101)
        ],
    )
    after = before.copy()
    ratings = after.rows["ratings"]
    existing = sorted(ratings)
    for key in existing[:third]:
        del ratings[key]
    for user, movie in existing[third : 2 * third]:
        ratings[(user, movie)] = rating(user, movie, "4.5", 9)
    for n in range(third):
        user, movie = 1_000 + n // 100, n % 100 + 1
        ratings[(user, movie)] = rating(user, movie, "2.0")
    tables = changes_between(before, after)
    assert cap - 3 <= sum(len(t.changed_keys) for t in tables) <= cap
    assert_apply_equals_first_load(neo4j_settings, before, after)


# Small domains, so that states overlap: deletes, updates and inserts all happen.
_movie_rows = st.dictionaries(
    st.integers(1, 4).map(lambda m: (m,)),
    st.tuples(
        st.sampled_from(["A (1999)", "B (2001)", "C"]),
        st.sampled_from([None, "", "Drama", "Drama|Comedy", "Comedy|War"]),
    ),
    max_size=4,
)
_link_rows = st.dictionaries(
    st.integers(1, 4).map(lambda m: (m,)),
    st.tuples(st.sampled_from(["001", "002"]), st.sampled_from([None, 7, 8])),
    max_size=4,
)
_rating_rows = st.dictionaries(
    st.tuples(st.integers(1, 3), st.integers(1, 5)),
    st.sampled_from(["0.5", "3.0", "5.0"]),
    max_size=8,
)
_tag_rows = st.dictionaries(
    st.tuples(st.integers(1, 2), st.integers(1, 5), st.sampled_from(["a", "b"])),
    st.integers(1, 3),
    max_size=5,
)


@st.composite
def movielens_states(draw: st.DrawFn) -> State:
    movies = draw(_movie_rows)
    links = draw(_link_rows)
    ratings = draw(_rating_rows)
    tags = draw(_tag_rows)
    return movielens(
        movies=[(m, title, genres) for (m,), (title, genres) in movies.items()],
        links=[(m, imdb, tmdb) for (m,), (imdb, tmdb) in links.items()],
        ratings=[rating(u, m, stars) for (u, m), stars in ratings.items()],
        tags=[(u, m, tag, at) for (u, m, tag), at in tags.items()],
    )


@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=movielens_states(), after=movielens_states())
def test_any_change_applied_equals_a_first_load(
    neo4j_settings: Neo4jSettings, before: State, after: State
) -> None:
    assert_apply_equals_first_load(neo4j_settings, before, after)


# -- keys_referencing -------------------------------------------------------------------------


def test_keys_referencing_reads_each_way_the_graph_stores_a_row(
    neo4j_settings: Neo4jSettings,
) -> None:
    after = BASE.copy()
    del after.rows["movies"][(1,)]  # ratings of movie 1 stay: still found
    first_load(neo4j_settings, after)
    with sink_for(neo4j_settings) as sink:
        # Relationships between value nodes (ratings, tags): by an end's key.
        assert sorted(sink.keys_referencing(RATINGS, ("movieId",), [(1,), (3,), (99,)])) == [
            (10, 1),
            (11, 1),
            (12, 3),
        ]
        assert sink.keys_referencing(TAGS, ("movieId",), [(2,)]) == [(11, 2, "jungle")]
        assert sink.keys_referencing(RATINGS, ("userId", "movieId"), [(10, 2)]) == [(10, 2)]
        # A table extending a label: its key is the reference.
        assert sink.keys_referencing(LINKS, ("movieId",), [(1,), (4,)]) == [(1,)]
        # The movie row itself is gone: its bare node is not a row of movies.
        assert sink.keys_referencing(MOVIES, ("movieId",), [(1,), (2,)]) == [(2,)]
        assert sink.keys_referencing(RATINGS, ("movieId",), []) == []
        with pytest.raises(SinkWriteError, match="genres"):
            sink.keys_referencing(MOVIES, ("genres",), [("Drama",)])


# -- Sakila ---------------------------------------------------------------------------------

SAKILA_TABLES = ("language", "actor", "film", "film_actor")


@pytest.fixture
def sakila(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[State]:
    """Sakila's language, actor, film and film_actor rows as the source reader yields them."""
    from chariot.project import load_project
    from chariot.project.init import init_project
    from chariot.project.streams import project_streams
    from chariot.sources.sql import SqlSource
    from tests.sakila import load_sakila

    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)
    load_sakila(settings.mysql)
    path = tmp_path / "chariot.toml"
    init_project(settings, path=path, include=list(SAKILA_TABLES))
    streams = tuple(s for s in project_streams(load_project(path)) if s.name in SAKILA_TABLES)
    rows: Rows = {}
    with SqlSource(settings) as source:
        for stream in streams:
            rows[stream.name] = {}
            for batch in source.read(stream, after=None, batch_size=10_000):
                rows[stream.name].update(keyed(stream, batch.rows))
    yield State(streams, rows)


def test_sakila_changes_equal_a_first_load(settings: Settings, sakila: State) -> None:
    db = settings.neo4j
    streams = {s.name: s for s in sakila.streams}
    columns = {name: list(stream.source_columns) for name, stream in streams.items()}

    def changed(table: str, key: Key, **values: Any) -> tuple[Any, ...]:
        row = list(after.rows[table][key])
        for name, value in values.items():
            row[columns[table].index(name)] = value
        return tuple(row)

    # Film 4 starts with a second language, which the change sets to NULL (as ON DELETE SET
    # NULL would): its ORIGINAL_LANGUAGE relationship must go.
    after = sakila
    sakila.rows["film"][(4,)] = changed("film", (4,), original_language_id=2)
    after = sakila.copy()
    film, actor, film_actor = (after.rows[t] for t in ("film", "actor", "film_actor"))
    film[(4,)] = changed("film", (4,), original_language_id=None)
    film[(1,)] = changed("film", (1,), language_id=2, title="ACADEMY DINOSAUR II")
    film[(3,)] = changed("film", (3,), original_language_id=3, special_features=[])
    del film[(2,)]  # its film_actor rows remain: a bare Film node holds them
    del actor[(4,)]  # likewise for the actor
    del film_actor[(1, 1)]
    # Actor 5 becomes actor 500 (ON UPDATE CASCADE carries film_actor along).
    actor[(500,)] = changed("actor", (5,), actor_id=500)
    del actor[(5,)]
    for _, film_id in [k for k in film_actor if k[0] == 5]:
        film_actor[(500, film_id)] = changed("film_actor", (5, film_id), actor_id=500)
        del film_actor[(5, film_id)]
    # A film whose every actor row goes, then the film: nothing of it is left.
    for key in [k for k in film_actor if k[1] == 10]:
        del film_actor[key]
    del film[(10,)]
    assert_apply_equals_first_load(db, sakila, after, replays=2)

    assert scalar(db, "MATCH (f:Film {film_id: 10}) RETURN count(f)") == 0
    assert scalar(db, "MATCH (f:Film {film_id: 2}) RETURN f.title") is None
    assert scalar(db, "MATCH (:Actor)-[r]->(:Film {film_id: 2}) RETURN count(r)") > 0
    languages = "MATCH (:Film {film_id: 1})-[r]->(l:Language) RETURN collect(l.language_id)"
    assert scalar(db, languages) == [2]
    assert scalar(db, "MATCH (:Film {film_id: 4})-[r]->(:Language) RETURN count(r)") == 1

    with sink_for(db) as sink:
        assert sorted(sink.keys_referencing(streams["film"], ("language_id",), [(2,)])) == [(1,)]
        assert sink.keys_referencing(streams["film"], ("original_language_id",), [(3,)]) == [(3,)]
        acted = sink.keys_referencing(streams["film_actor"], ("actor_id",), [(500,)])
        assert sorted(acted) == sorted(k for k in film_actor if k[0] == 500)
        assert len(acted) > 0


# -- what the graph model cannot answer (no server needed) ------------------------------------

SURROGATE_KEYED = """
format = 1
name = "shop"

[tables.orders]
key = ["id"]
[tables.orders.columns]
id = { type = "int", postgres = "integer", neo4j = "integer" }
note = { type = "varchar(20)", postgres = "text", neo4j = "string" }

[tables.order_tags]
key = ["id"]
references = [{ table = "orders", columns = ["order_id"] }]
[tables.order_tags.columns]
id = { type = "int", postgres = "integer", neo4j = "integer" }
order_id = { type = "int", postgres = "integer", neo4j = "integer" }
tag = { type = "varchar(20)", postgres = "text", neo4j = "string" }

[graph.nodes.Order]
table = "orders"
properties = {}

[graph.nodes.Tag]
key = ["name"]
values = ["order_tags.tag"]

[[graph.relationships]]
type = "TAGGED"
table = "order_tags"
from = { label = "Order", key = ["order_id"] }
to = { label = "Tag", key = ["tag"] }
"""


def test_what_the_graph_does_not_store_is_a_clear_error(tmp_path: Path) -> None:
    from chariot.project import load_project
    from chariot.project.streams import project_streams

    path = tmp_path / "chariot.toml"
    path.write_text(SURROGATE_KEYED, encoding="utf-8")
    streams = {s.name: s for s in project_streams(load_project(path))}
    sink = Neo4jSink(Settings())
    # order_tags is stored as TAGGED relationships that do not hold its key (id).
    with pytest.raises(SinkWriteError, match="order_tags: cannot find rows by order_id"):
        sink.keys_referencing(streams["order_tags"], ("order_id",), [(1,)])
    # Nor can a delete or an update by key find them: refused before anything is written.
    with pytest.raises(SinkWriteError, match="TAGGED relationships are not identified"):
        sink.apply(batch_of([TableChanges(streams["order_tags"], deletes=[(1,)])]))
    with pytest.raises(SinkWriteError, match="TAGGED relationships are not identified"):
        sink.apply(batch_of([TableChanges(streams["order_tags"], upserts=[(1, 1, "x")])]))
    # Order nodes keep no property: the note cannot be looked up.
    with pytest.raises(SinkWriteError, match="keeps note neither as a property of Order"):
        sink.keys_referencing(streams["orders"], ("note",), [("x",)])


# -- the plans of the change statements ------------------------------------------------------

_SCANS = ("NodeIndexScan", "NodeByLabelScan", "AllNodesScan", "DirectedRelationshipTypeScan")


def _operators(plan: Any) -> list[str]:
    return [plan["operatorType"].split("@")[0]] + [
        name for child in plan.get("children", []) for name in _operators(child)
    ]


def test_change_statements_seek_each_key_never_scan(neo4j_settings: Neo4jSettings) -> None:
    # A delete MATCHing both ends in one pattern was planned as a scan of the start label's
    # index per key (5,000 ratings deleted: 3M rows read). Every statement a change batch
    # runs per key must find its nodes by index seek.
    first_load(neo4j_settings, State(MOVIELENS_STREAMS, {}))  # the constraints (indexes)
    with sink_for(neo4j_settings) as sink, neo4j_session(neo4j_settings) as session:
        for stream in MOVIELENS_STREAMS:
            sink.prepare(stream)
            mapping = graph.graph_mapping(stream)
            statements = [
                *mapping.deletes,
                mapping.write_matched or mapping.write or "",
                mapping.write_updated or "",
                graph.ANY_REJECTS,
            ]
            for statement in filter(None, statements):
                plan = session.run("EXPLAIN " + statement).consume().plan
                assert plan is not None
                found = [op for op in _operators(plan) if op.startswith(_SCANS)]
                assert not found, (stream.name, found, statement)


def test_tables_of_free_relationships_write_by_matched_ends() -> None:
    ratings = graph.graph_mapping(RATINGS)
    assert ratings.write_matched is not None
    assert "MERGE (a0:`User`" not in ratings.write_matched  # the ends are MERGEd beforehand
    assert "MERGE (a0)-[r0:`RATED`]->(b0)" in ratings.write_matched  # not proven new
    assert ratings.node_merges
    # A table with its own node (movies) keeps the per-row write.
    assert graph.graph_mapping(MOVIES).write_matched is None
    # In-place updates MATCH the relationship (never MERGE it) and say which rows they found.
    assert ratings.write_updated is not None
    assert "MATCH (a0)-[r0:`RATED`]->(b0) SET" in ratings.write_updated
    assert "MERGE" not in ratings.write_updated
    assert "RETURN collect(i) AS found" in ratings.write_updated
    tags = graph.graph_mapping(TAGS).write_updated
    assert tags is not None and "[r0:`TAGGED` {`tag`: $c2[i]}]" in tags
    assert graph.graph_mapping(MOVIES).write_updated is None
