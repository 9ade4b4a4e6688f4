"""The Neo4j sink against a real Neo4j: graph model, idempotence, checkpoints, rejects,
full refresh, repair deletes and the retry path."""

from __future__ import annotations

import contextlib
import csv
import logging
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot.batch import Batch, Reject
from chariot.config import Neo4jSettings, RunSettings, Settings
from chariot.connections import neo4j_session
from chariot.errors import ConnectionFailed, SinkWriteError
from chariot.project.streams import default_streams
from chariot.sinks.neo4j import Neo4jSink
from chariot.sinks.neo4j.graph import graph_mapping
from chariot.sinks.neo4j.retry import with_retries
from chariot.sinks.neo4j.sink import decode_key, encode_key
from chariot.streams import Stream
from tests.conftest import wipe_graph
from tests.movielens_rules import split_genres, title_year

Row = tuple[Any, ...]

SMALL = {
    "movies": [
        (1, "Toy Story (1995)", "Adventure|Animation"),
        (2, "Jumanji (1995)", "Adventure|Fantasy"),
        (3, "Nothing Listed", "(no genres listed)"),
    ],
    "links": [(1, "0114709", 862), (2, "0113497", None)],
    "ratings": [
        (1, 1, Decimal("4.0"), 964982703),
        (1, 2, Decimal("3.5"), 964981247),
        (2, 1, Decimal("0.5"), 1),
    ],
    "tags": [(1, 1, "Funny", 11), (1, 1, "funny", 10), (3, 2, "jungle", 12)],
}
# MovieLens through its example project (tests/conftest.py points CHARIOT_PROJECT at it).
STREAMS = {stream.name: stream for stream in default_streams()}
MOVIES, LINKS, RATINGS, TAGS = (STREAMS[name] for name in ("movies", "links", "ratings", "tags"))


# -- helpers ---------------------------------------------------------------------------------


def make_settings(neo4j: Neo4jSettings, **run: Any) -> Settings:
    return Settings(neo4j=neo4j, run=RunSettings(**run))


def batch(stream: Stream, rows: list[Row], rejects: list[Reject] | None = None) -> Batch:
    last = rows[-1] if rows else None
    key_positions = [stream.source_columns.index(name) for name in stream.key]
    last_key = tuple(last[i] for i in key_positions) if last else ()
    return Batch(stream, rows, last_key=last_key, rejects=rejects or [])


def load(sink: Neo4jSink, stream: Stream, rows: list[Row], size: int = 10_000) -> None:
    sink.prepare(stream)
    for start in range(0, len(rows), size):
        sink.write(batch(stream, rows[start : start + size]))


def load_small(sink: Neo4jSink) -> None:
    for name, rows in SMALL.items():
        load(sink, STREAMS[name], rows)


def query(settings: Neo4jSettings, cypher: str, **parameters: Any) -> list[dict[str, Any]]:
    with neo4j_session(settings) as session:
        return [record.data() for record in session.run(cypher, parameters)]


def scalar(settings: Neo4jSettings, cypher: str, **parameters: Any) -> Any:
    return next(iter(query(settings, cypher, **parameters)[0].values()))


# newAbove: whether the sink can still prove keys above the checkpoint new (a replay cannot).
VOLATILE = {"updatedAt", "lastSeen", "rowsWritten", "newAbove"}


def snapshot(settings: Neo4jSettings) -> tuple[list[str], list[str]]:
    """Every node and relationship with its properties, ignoring bookkeeping timestamps."""
    nodes = query(settings, "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
    relationships = query(
        settings,
        "MATCH (a)-[r]->(b) RETURN type(r) AS type, properties(r) AS props, "
        "properties(a) AS start, properties(b) AS end",
    )

    def stable(record: dict[str, Any]) -> str:
        cleaned = {
            key: sorted((k, v) for k, v in value.items() if k not in VOLATILE)
            if isinstance(value, dict)
            else value
            for key, value in record.items()
        }
        return repr(sorted(cleaned.items()))

    return sorted(map(stable, nodes)), sorted(map(stable, relationships))


def read_movielens(directory: Path) -> dict[str, list[Row]]:
    """The CSVs as the MySQL source driver would return them, in key order."""

    def rows(name: str) -> list[list[str]]:
        with open(directory / f"{name}.csv", newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))[1:]

    movies = [(int(m), title, genres) for m, title, genres in rows("movies")]
    links = [(int(m), imdb, int(tmdb) if tmdb else None) for m, imdb, tmdb in rows("links")]
    ratings = [(int(u), int(m), Decimal(r), int(t)) for u, m, r, t in rows("ratings")]
    tags = [(int(u), int(m), tag, int(t)) for u, m, tag, t in rows("tags")]
    return {
        "movies": sorted(movies),
        "links": sorted(links),
        "ratings": sorted(ratings),
        "tags": sorted(tags, key=lambda row: row[:3]),
    }


@pytest.fixture
def sink(neo4j_settings: Neo4jSettings) -> Iterator[Neo4jSink]:
    with Neo4jSink(make_settings(neo4j_settings)) as opened:
        yield opened


# -- the whole of ml-latest-small -------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_movielens_graph_matches_the_csvs_exactly(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings, movielens_dir: Path
) -> None:
    data = read_movielens(movielens_dir)
    for name in ("movies", "links", "ratings", "tags"):
        load(sink, STREAMS[name], data[name], size=10_000)
    db = neo4j_settings

    expected_movies = {
        movie_id: (title, title_year(title), sorted(split_genres(genres)))
        for movie_id, title, genres in data["movies"]
    }
    expected_links = {movie_id: (imdb, tmdb) for movie_id, imdb, tmdb in data["links"]}
    movies = query(
        db,
        "MATCH (m:Movie) OPTIONAL MATCH (m)-[:IN_GENRE]->(g:Genre) "
        "RETURN m.movieId AS id, m.title AS title, m.year AS year, m.imdbId AS imdb, "
        "m.tmdbId AS tmdb, keys(m) AS keys, collect(g.name) AS genres",
    )
    found = {m["id"]: (m["title"], m["year"], sorted(m["genres"])) for m in movies}
    assert found == expected_movies
    assert {m["id"]: (m["imdb"], m["tmdb"]) for m in movies} == expected_links
    assert all(set(m["keys"]) <= {"movieId", "title", "year", "imdbId", "tmdbId"} for m in movies)

    ratings = query(
        db,
        "MATCH (u:User)-[r:RATED]->(m:Movie) "
        "RETURN u.userId AS u, m.movieId AS m, r.rating AS rating, r.timestamp AS ts",
    )
    assert len(ratings) == 100_836
    assert {(r["u"], r["m"]): (r["rating"], r["ts"]) for r in ratings} == {
        (u, m): (float(rating), ts) for u, m, rating, ts in data["ratings"]
    }
    assert all(type(r["rating"]) is float and type(r["ts"]) is int for r in ratings)

    tags = query(
        db,
        "MATCH (u:User)-[t:TAGGED]->(m:Movie) "
        "RETURN u.userId AS u, m.movieId AS m, t.tag AS tag, t.timestamp AS ts",
    )
    assert len(tags) == 3_683
    assert {(t["u"], t["m"], t["tag"]): t["ts"] for t in tags} == {
        (u, m, tag): ts for u, m, tag, ts in data["tags"]
    }

    users = {u for u, *_ in data["ratings"]} | {u for u, *_ in data["tags"]}
    assert {r["id"] for r in query(db, "MATCH (u:User) RETURN u.userId AS id")} == users
    genres = {name for _, _, value in data["movies"] for name in split_genres(value)}
    assert {r["name"] for r in query(db, "MATCH (g:Genre) RETURN g.name AS name")} == genres
    assert {r["type"] for r in query(db, "MATCH ()-[r]->() RETURN DISTINCT type(r) AS type")} == {
        "IN_GENRE",
        "RATED",
        "TAGGED",
    }

    # The known quirks, each spelled out.
    assert scalar(db, "MATCH (m:Movie) WHERE m.title IS NOT NULL RETURN count(m)") == 9_742
    assert (
        scalar(
            db, "MATCH (m:Movie) WHERE m.imdbId IS NOT NULL AND m.tmdbId IS NULL RETURN count(m)"
        )
        == 8
    )
    assert scalar(db, "MATCH (m:Movie) WHERE NOT (m)-[:IN_GENRE]->() RETURN count(m)") == 34
    assert scalar(db, "MATCH (m:Movie {movieId: 1}) RETURN m.imdbId") == "0114709"
    title_7789 = scalar(db, "MATCH (m:Movie {movieId: 7789}) RETURN m.title")
    assert title_7789 == "11'09\"01 - September 11 (2002)"
    assert scalar(db, "MATCH (m:Movie {movieId: 73}) RETURN m.title") == "Misérables, Les (1995)"
    # 12 titles without "(YYYY)" plus "Death Note: Desu nôto (2006–2007)" have no year.
    assert scalar(db, "MATCH (m:Movie) WHERE m.year IS NULL RETURN count(m)") == 13
    assert sink.stored_checkpoints() == {
        "movies": (193609,),
        "links": (193609,),
        "ratings": (610, 170875),
        "tags": data["tags"][-1][:3],
    }


# -- idempotence, checkpoints, placeholders ---------------------------------------------------


@pytest.mark.integration
def test_replaying_batches_changes_nothing(sink: Neo4jSink, neo4j_settings: Neo4jSettings) -> None:
    load_small(sink)
    before = snapshot(neo4j_settings)
    load_small(sink)
    assert snapshot(neo4j_settings) == before
    assert scalar(neo4j_settings, "MATCH ()-[r:TAGGED]->() RETURN count(r)") == 3  # Funny != funny


@pytest.mark.integration
def test_checkpoint_is_stored_with_the_batch(sink: Neo4jSink) -> None:
    sink.prepare(TAGS)
    assert sink.checkpoint(TAGS) is None
    rows = [(7, 1, 'Zürich, "quoted"', 5), (7, 2, "ünïcode", 6)]
    result = sink.write(batch(TAGS, rows))
    assert result.written == 2
    assert sink.checkpoint(TAGS) == (7, 2, "ünïcode")
    assert sink.checkpoint(RATINGS) is None
    assert sink.stored_checkpoints() == {"tags": (7, 2, "ünïcode")}


@pytest.mark.integration
def test_a_failing_batch_commits_neither_rows_nor_checkpoint(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load(sink, RATINGS, SMALL["ratings"][:1])
    # A NULL key makes MERGE fail half-way through the batch: a client error, not retried.
    bad = Batch(RATINGS, [(5, 5, Decimal("1.0"), 1), (5, None, Decimal("1.0"), 2)], last_key=(5, 6))
    started = time.monotonic()
    with pytest.raises(SinkWriteError, match=r"^neo4j sink, table ratings: write failed: "):
        sink.write(bad)
    assert time.monotonic() - started < 10
    assert sink.checkpoint(RATINGS) == (1, 1)
    assert scalar(neo4j_settings, "MATCH ()-[r:RATED]->() RETURN count(r)") == 1
    assert scalar(neo4j_settings, "MATCH (u:User {userId: 5}) RETURN count(u)") == 0


@pytest.mark.integration
def test_rating_for_an_unknown_movie_creates_a_placeholder(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load(sink, RATINGS, [(9, 424242, Decimal("2.5"), 3)])
    placeholder = query(neo4j_settings, "MATCH (m:Movie) RETURN properties(m) AS p")
    assert placeholder == [{"p": {"movieId": 424242}}]
    assert scalar(neo4j_settings, "MATCH (m:Movie) WHERE m.title IS NOT NULL RETURN count(m)") == 0
    load(sink, MOVIES, [(424242, "Late Arrival (2001)", "Drama")])
    movie = query(neo4j_settings, "MATCH (m:Movie) RETURN properties(m) AS p")
    assert movie == [{"p": {"movieId": 424242, "title": "Late Arrival (2001)", "year": 2001}}]
    rating = scalar(neo4j_settings, "MATCH (:User {userId: 9})-[r:RATED]->(:Movie) RETURN r.rating")
    assert rating == 2.5


@pytest.mark.integration
def test_changed_genres_replace_in_genre(sink: Neo4jSink, neo4j_settings: Neo4jSettings) -> None:
    def genres() -> list[str]:
        cypher = "MATCH (:Movie {movieId: 1})-[:IN_GENRE]->(g) RETURN g.name AS n"
        rows = query(neo4j_settings, cypher)
        return sorted(row["n"] for row in rows)

    load(sink, MOVIES, [(1, "Heat (1995)", "Action|Crime")])
    assert genres() == ["Action", "Crime"]
    load(sink, MOVIES, [(1, "Heat (1995)", "Crime|Thriller")])
    assert genres() == ["Crime", "Thriller"]
    # "Action" is used by no movie any more: its node goes too.
    assert sorted(r["n"] for r in query(neo4j_settings, "MATCH (g:Genre) RETURN g.name AS n")) == [
        "Crime",
        "Thriller",
    ]
    load(sink, MOVIES, [(1, "Heat", "(no genres listed)")])
    assert genres() == []
    assert query(neo4j_settings, "MATCH (m:Movie) RETURN properties(m) AS p") == [
        {"p": {"movieId": 1, "title": "Heat"}}
    ]


# -- rejects ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_rejects_are_recorded_with_the_batch(sink: Neo4jSink) -> None:
    rejects = [
        Reject("ratings", (3, 77), "rating 7.5 is outside 0.5..5.0"),
        Reject("ratings", (3, 78), "timestamp is NULL"),
    ]
    sink.prepare(RATINGS)
    result = sink.write(batch(RATINGS, [(3, 76, Decimal("4.5"), 1)], rejects))
    assert result.rejected == rejects
    sink.write(batch(RATINGS, [(3, 76, Decimal("4.5"), 1)], rejects[:1]))  # seen again: no dup
    tag_reject = Reject("tags", (3, 1, 'naïve "tag"'), "tag longer than 255 characters")
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [], last_key=(3, 1, 'naïve "tag"'), rejects=[tag_reject]))
    counts, first = sink.recorded_rejects()
    assert counts == {"ratings": 2, "tags": 1}
    assert first == [*rejects, tag_reject]
    assert sink.recorded_rejects(limit=1)[1] == rejects[:1]
    assert sink.checkpoint(TAGS) == (3, 1, 'naïve "tag"')


# -- full refresh and repair -------------------------------------------------------------------


@pytest.mark.integration
def test_full_refresh_of_ratings_keeps_the_other_streams(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load_small(sink)
    sink.write(batch(RATINGS, [], [Reject("ratings", (9, 9), "bad")]))
    sink.prepare(RATINGS, full_refresh=True)
    db = neo4j_settings
    assert sink.checkpoint(RATINGS) is None
    assert sink.recorded_rejects() == ({}, [])
    assert scalar(db, "MATCH ()-[r:RATED]->() RETURN count(r)") == 0
    # User 2 only rated: orphaned and gone. User 1 and 3 still tag.
    assert sorted(r["id"] for r in query(db, "MATCH (u:User) RETURN u.userId AS id")) == [1, 3]
    assert scalar(db, "MATCH ()-[r:TAGGED]->() RETURN count(r)") == 3
    assert scalar(db, "MATCH (m:Movie) WHERE m.title IS NOT NULL RETURN count(m)") == 3
    assert sink.checkpoint(TAGS) == (3, 2, "jungle")


@pytest.mark.integration
def test_full_refresh_of_movies_and_links(sink: Neo4jSink, neo4j_settings: Neo4jSettings) -> None:
    load_small(sink)
    db = neo4j_settings
    sink.prepare(MOVIES, full_refresh=True)
    assert sink.checkpoint(MOVIES) is None
    assert (
        scalar(
            db, "MATCH (m:Movie) WHERE m.title IS NOT NULL OR m.year IS NOT NULL RETURN count(m)"
        )
        == 0
    )
    assert scalar(db, "MATCH (g:Genre) RETURN count(g)") == 0
    # Ratings and tags still stand on their (now placeholder) movies; movie 3 had nothing.
    assert scalar(db, "MATCH ()-[r:RATED]->() RETURN count(r)") == 3
    assert sorted(r["id"] for r in query(db, "MATCH (m:Movie) RETURN m.movieId AS id")) == [1, 2]
    sink.prepare(LINKS, full_refresh=True)
    assert (
        scalar(
            db, "MATCH (m:Movie) WHERE m.imdbId IS NOT NULL OR m.tmdbId IS NOT NULL RETURN count(m)"
        )
        == 0
    )
    load(sink, MOVIES, SMALL["movies"])
    load(sink, LINKS, SMALL["links"])
    fresh = snapshot(db)
    load_small(sink)
    assert snapshot(db) == fresh


@pytest.mark.integration
def test_delete_keys_removes_rows_and_orphans(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load_small(sink)
    db = neo4j_settings
    assert sink.delete_keys(RATINGS, [(2, 1), (99, 99)]) == 1
    assert scalar(db, "MATCH (u:User {userId: 2}) RETURN count(u)") == 0  # orphaned user
    assert sink.delete_keys(TAGS, [(1, 1, "funny")]) == 1
    tags = query(db, "MATCH ()-[t:TAGGED]->(:Movie {movieId: 1}) RETURN t.tag AS t")
    assert [r["t"] for r in tags] == ["Funny"]
    assert sink.delete_keys(LINKS, [(2,)]) == 1
    assert query(db, "MATCH (m:Movie {movieId: 2}) RETURN m.imdbId AS i, m.tmdbId AS t") == [
        {"i": None, "t": None}
    ]
    # Movie 2: its title, year and IN_GENRE go (Fantasy, only its own, is orphaned); its
    # rating and tag keep the node. Deleting those too leaves nothing of movie 2 or user 3.
    assert sink.delete_keys(MOVIES, [(2,)]) == 1
    assert scalar(db, "MATCH (m:Movie {movieId: 2}) WHERE m.title IS NULL RETURN count(m)") == 1
    assert sorted(r["n"] for r in query(db, "MATCH (g:Genre) RETURN g.name AS n")) == [
        "Adventure",
        "Animation",
    ]
    assert sink.delete_keys(RATINGS, [(1, 2)]) == 1
    assert sink.delete_keys(TAGS, [(3, 2, "jungle")]) == 1
    assert scalar(db, "MATCH (m:Movie {movieId: 2}) RETURN count(m)") == 0
    assert sorted(r["id"] for r in query(db, "MATCH (u:User) RETURN u.userId AS id")) == [1]
    # A rating that made a placeholder movie: deleting it leaves no bare Movie behind.
    sink.upsert_rows(RATINGS, [(1, 555, Decimal("1.0"), 4)])
    assert sink.delete_keys(RATINGS, [(1, 555)]) == 1
    assert scalar(db, "MATCH (m:Movie {movieId: 555}) RETURN count(m)") == 0
    assert sink.checkpoint(RATINGS) == (2, 1)  # repair never moves a checkpoint


@pytest.mark.integration
def test_deleting_a_movie_removes_only_what_its_row_created(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load_small(sink)
    db = neo4j_settings
    before = snapshot(db)
    # Movie 2 still has a rating (user 1), a tag (user 3) and a link: its node stays with
    # them; only title, year and its genres go (Fantasy was only its own).
    assert sink.delete_keys(MOVIES, [(2,), (3,), (404,)]) == 2
    assert query(
        db,
        "MATCH (m:Movie {movieId: 2}) RETURN m.title AS title, m.year AS year, "
        "m.imdbId AS imdb, COUNT { (m)-[:IN_GENRE]->() } AS genres, "
        "COUNT { ()-[:RATED]->(m) } AS ratings, COUNT { ()-[:TAGGED]->(m) } AS tags",
    ) == [{"title": None, "year": None, "imdb": "0113497", "genres": 0, "ratings": 1, "tags": 1}]
    # Movie 3 had nothing else: no bare node is left behind.
    assert scalar(db, "MATCH (m:Movie {movieId: 3}) RETURN count(m)") == 0
    assert sorted(r["n"] for r in query(db, "MATCH (g:Genre) RETURN g.name AS n")) == [
        "Adventure",
        "Animation",
    ]
    assert sorted(r["id"] for r in query(db, "MATCH (u:User) RETURN u.userId AS id")) == [1, 2, 3]
    # Writing the rows again restores the graph exactly.
    sink.upsert_rows(MOVIES, SMALL["movies"])
    assert snapshot(db) == before


@pytest.mark.integration
def test_upsert_rows_writes_without_moving_the_checkpoint(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load(sink, MOVIES, SMALL["movies"][:1])
    assert sink.upsert_rows(MOVIES, SMALL["movies"]) == 3
    assert scalar(neo4j_settings, "MATCH (m:Movie) WHERE m.title IS NOT NULL RETURN count(m)") == 3
    assert sink.checkpoint(MOVIES) == (1,)


# -- failures ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_server_fails_fast_with_a_clear_message() -> None:
    settings = make_settings(Neo4jSettings(uri=f"bolt://127.0.0.1:{free_port()}"))
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as failure, Neo4jSink(settings) as sink:
        sink.prepare(RATINGS)
    assert time.monotonic() - started < 30
    message = str(failure.value)
    assert message.startswith("Neo4j sink at bolt://127.0.0.1:") and "\n" not in message
    assert settings.neo4j.password.get_secret_value() not in message


class FlakyProxy:
    """A loopback TCP proxy in front of Neo4j that can cut every connection and refuse the
    next few (or all), to drive the sink's retry path with real network failures."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refuse_next = 0
        self.refuse_all = False
        self.refused = 0
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, *, refuse_next: int = 0, refuse_all: bool = False) -> None:
        with self.lock:
            self.refuse_next, self.refuse_all = refuse_next, refuse_all
            for sock in self.sockets:
                sock.close()
            self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                if self.refuse_all or self.refuse_next > 0:
                    self.refuse_next -= 1
                    self.refused += 1
                    client.close()
                    continue
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def proxy(neo4j_settings: Neo4jSettings) -> Iterator[FlakyProxy]:
    from urllib.parse import urlsplit

    address = urlsplit(neo4j_settings.uri)
    flaky = FlakyProxy((address.hostname or "127.0.0.1", address.port or 7687))
    try:
        yield flaky
    finally:
        flaky.close()


@pytest.mark.integration
def test_transient_network_failures_are_retried(
    proxy: FlakyProxy, neo4j_settings: Neo4jSettings, caplog: pytest.LogCaptureFixture
) -> None:
    through_proxy = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{proxy.port}"})
    with Neo4jSink(make_settings(through_proxy, max_attempts=6)) as sink:
        load(sink, RATINGS, SMALL["ratings"][:1])
        proxy.cut(refuse_next=2)
        with caplog.at_level(logging.WARNING, logger="chariot.sinks.neo4j.retry"):
            sink.write(batch(RATINGS, SMALL["ratings"][1:]))
        assert proxy.refused == 2
        assert any("transient error, retrying" in r.getMessage() for r in caplog.records)
        assert sink.checkpoint(RATINGS) == (2, 1)
    assert scalar(neo4j_settings, "MATCH ()-[r:RATED]->() RETURN count(r)") == 3


@pytest.mark.integration
def test_exhausted_retries_raise_a_sink_write_error(
    proxy: FlakyProxy, neo4j_settings: Neo4jSettings
) -> None:
    through_proxy = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{proxy.port}"})
    with Neo4jSink(make_settings(through_proxy, max_attempts=3)) as sink:
        load(sink, RATINGS, SMALL["ratings"][:1])
        proxy.cut(refuse_all=True)
        started = time.monotonic()
        with pytest.raises(SinkWriteError) as failure:
            sink.write(batch(RATINGS, SMALL["ratings"][1:]))
        assert time.monotonic() - started < 30
    message = str(failure.value)
    assert message.startswith("neo4j sink, table ratings: write failed after 3 attempts: ")
    assert "\n" not in message and failure.value.hint
    assert proxy.refused >= 2


# -- pure logic ----------------------------------------------------------------------------------

keys = st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text()), min_size=1, max_size=4).map(
    tuple
)


@given(keys)
def test_keys_survive_the_json_round_trip(key: tuple[Any, ...]) -> None:
    assert decode_key(encode_key(key)) == key


halves = st.integers(1, 10).map(lambda n: Decimal(n) / 2)
rating_rows = st.lists(
    st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), halves, st.integers(0, 2**31)),
    min_size=1,
    max_size=50,
)


def graph_columns(stream: Stream, rows: list[Row]) -> dict[str, list[Any]]:
    """The write parameters of ``rows``, by output column."""
    mapping = graph_mapping(stream)
    parameters = mapping.parameters(rows).parameters
    return {
        column: parameters[name]
        for column, name in mapping.column_parameters.items()
        if name in parameters
    }


@given(rating_rows)
def test_rating_columns_keep_row_order_and_exact_values(rows: list[Row]) -> None:
    columns = graph_columns(RATINGS, rows)
    names = ("user_id", "movie_id", "rating", "timestamp")
    rebuilt = list(zip(*(columns[name] for name in names), strict=True))
    assert rebuilt == [(u, m, float(r), t) for u, m, r, t in rows]
    assert all(Decimal(value) == row[2] for value, row in zip(columns["rating"], rows, strict=True))
    assert all(type(value) is float for value in columns["rating"])


@given(st.lists(st.tuples(st.integers(), st.text(), st.text()), min_size=1, max_size=30))
def test_movie_and_tag_columns_apply_the_shared_transforms(rows: list[Row]) -> None:
    rows = [row for row in rows if -(2**63) <= row[0] < 2**63]
    movies = graph_columns(MOVIES, rows)
    assert movies["movie_id"] == [row[0] for row in rows]
    assert movies["year"] == [title_year(row[1]) for row in rows]
    genres = graph_mapping(MOVIES).parameters(rows).parameters["e0"]
    # One relationship per distinct genre (a repeated one is the same IN_GENRE), in order.
    assert genres == [list(dict.fromkeys(split_genres(row[2]))) for row in rows]
    tags = graph_columns(TAGS, [(row[0], row[0], row[2], 1) for row in rows])
    assert tags["tag"] == [row[2] for row in rows]


@pytest.mark.parametrize(
    ("failures", "attempts", "succeeds"), [(0, 1, True), (2, 3, True), (3, 3, False)]
)
def test_retries_are_bounded(
    failures: int, attempts: int, succeeds: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from neo4j.exceptions import ServiceUnavailable

    monkeypatch.setattr("chariot.sinks.neo4j.retry.time.sleep", lambda seconds: None)
    calls = []

    def work() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ServiceUnavailable("connection reset")
        return "done"

    if succeeds:
        assert with_retries(work, attempts=attempts, what="neo4j sink, table t: write") == "done"
    else:
        with pytest.raises(SinkWriteError, match="after 3 attempts: connection reset"):
            with_retries(work, attempts=attempts, what="neo4j sink, table t: write")
    assert len(calls) == min(failures + 1, attempts)


def test_non_transient_errors_are_not_retried() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        raise ValueError("bad parameter")

    with pytest.raises(SinkWriteError, match=r"^neo4j sink, table t: write failed: bad parameter$"):
        with_retries(work, attempts=5, what="neo4j sink, table t: write")
    assert len(calls) == 1


# -- rows proven new (CREATE) --------------------------------------------------------------


def new_above(settings: Neo4jSettings, table: str) -> bool | None:
    return scalar(
        settings, "OPTIONAL MATCH (c:ChariotCheckpoint {table: $t}) RETURN c.newAbove", t=table
    )


def rated(settings: Neo4jSettings) -> int:
    return scalar(settings, "MATCH ()-[r:RATED]->() RETURN count(r)")


@pytest.mark.integration
def test_a_first_load_is_proven_new_and_builds_the_same_graph(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    load_small(sink)
    assert new_above(neo4j_settings, "ratings") is True
    assert new_above(neo4j_settings, "movies") is True
    created = snapshot(neo4j_settings)
    # The same rows again through the MERGE path (the proof is gone after a replay).
    load_small(sink)
    assert new_above(neo4j_settings, "ratings") is None
    assert snapshot(neo4j_settings) == created


def log_mark(settings: Neo4jSettings, table: str) -> str | None:
    return scalar(
        settings, "OPTIONAL MATCH (c:ChariotCheckpoint {table: $t}) RETURN c.logMark", t=table
    )


def applied(sink: Neo4jSink, number: int, *tables: Any) -> None:
    from chariot.cdc.changes import ChangeBatch
    from chariot.cdc.position import LogPosition

    position = LogPosition.parse(f"binlog.000001:{number}")
    sink.apply(ChangeBatch(list(tables), position, positioned=()))


@pytest.mark.integration
def test_rows_the_log_wrote_above_the_checkpoint_are_not_created_twice(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    """Change capture may write rows above a keyset checkpoint: it raises ``logMark`` past
    them, so the next keyset pass, which re-reads them, MERGEs them."""
    from chariot.cdc.changes import TableChanges

    rows = SMALL["ratings"]
    load(sink, RATINGS, rows[:1])
    assert new_above(neo4j_settings, "ratings") is True
    applied(sink, 4, TableChanges(RATINGS, upserts=rows[1:]))
    assert rated(neo4j_settings) == len(rows)
    assert log_mark(neo4j_settings, "ratings") == encode_key(max(r[:2] for r in rows[1:]))
    sink.write(batch(RATINGS, rows[1:]))  # the keyset pass finds them above its checkpoint
    assert new_above(neo4j_settings, "ratings") is None
    assert rated(neo4j_settings) == len(rows)


@pytest.mark.integration
def test_the_log_creates_new_rows_once_and_merges_the_rest(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    """Rows above both marks are CREATEd; the same batch again (a retry of a batch that
    did commit, a second sink) and updates of those rows find the raised mark and MERGE;
    a repair ends the proof for good."""
    from chariot.cdc.changes import TableChanges

    rows = SMALL["ratings"]
    load(sink, RATINGS, rows[:1])
    created = TableChanges(RATINGS, upserts=rows[1:])
    applied(sink, 4, created)
    applied(sink, 5, created)  # a fresh sink object would read the proof the same way
    sink._proofs.clear()  # as a new run starts: the proof is read in the transaction
    applied(sink, 6, created)
    assert rated(neo4j_settings) == len(rows)
    # A mix: an old key updated (MERGE), a new key above the log's mark (CREATE).
    user, movie, stars, stamp = rows[-1]
    fresh = (user + 1000, movie, stars, stamp)
    applied(sink, 7, TableChanges(RATINGS, upserts=[(user, movie, stars, stamp + 1), fresh]))
    assert rated(neo4j_settings) == len(rows) + 1
    assert log_mark(neo4j_settings, "ratings") == encode_key(fresh[:2])
    applied(sink, 8, TableChanges(RATINGS, deletes=[fresh[:2]]))
    sink.upsert_rows(RATINGS, [fresh])  # audit --repair may write any key
    assert new_above(neo4j_settings, "ratings") is None
    applied(sink, 9, TableChanges(RATINGS, upserts=[fresh]))
    assert rated(neo4j_settings) == len(rows) + 1


@pytest.mark.integration
def test_a_batch_at_or_below_the_checkpoint_is_merged(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    """A sink whose checkpoint is ahead of the read (another sink's lower one), or a
    retried batch that did commit: not proven new."""
    rows = SMALL["ratings"]
    load(sink, RATINGS, rows)
    sink.write(batch(RATINGS, rows[1:]))
    assert rated(neo4j_settings) == len(rows)
    assert new_above(neo4j_settings, "ratings") is None
    sink.write(batch(RATINGS, rows[2:]))  # now never CREATEd: the mark moved back
    assert rated(neo4j_settings) == len(rows)


@pytest.mark.integration
def test_a_repair_upsert_ends_the_proof(sink: Neo4jSink, neo4j_settings: Neo4jSettings) -> None:
    rows = SMALL["ratings"]
    load(sink, RATINGS, rows[:1])
    sink.upsert_rows(RATINGS, rows[1:])  # audit --repair: rows above the checkpoint
    assert new_above(neo4j_settings, "ratings") is None
    sink.write(batch(RATINGS, rows[1:]))
    assert rated(neo4j_settings) == len(rows)


@pytest.mark.integration
def test_a_graph_holding_the_tables_relationships_is_not_proven_new(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    rows = SMALL["ratings"]
    sink.prepare(RATINGS)
    sink.upsert_rows(RATINGS, rows)  # relationships, and no checkpoint
    with neo4j_session(neo4j_settings) as session:
        session.run("MATCH (c:ChariotCheckpoint {table: 'ratings'}) DELETE c").consume()
    load(sink, RATINGS, rows)
    assert new_above(neo4j_settings, "ratings") is None
    assert rated(neo4j_settings) == len(rows)


def test_a_new_rows_write_creates_only_what_the_row_determines() -> None:
    ratings = graph_mapping(RATINGS)
    assert ratings.write_new is not None and "CREATE (a0)-[r0:`RATED`]->(b0)" in ratings.write_new
    assert [parameter for _, parameter in ratings.node_merges] == ["m0s", "m0e"]
    movies = graph_mapping(MOVIES)
    assert movies.write_new is not None and "DELETE" not in movies.write_new
    assert movies.write is not None and "UNWIND [(n0)-[r:`IN_GENRE`]->" in movies.write
    # A repeated genre is one key: one relationship even when CREATEd.
    prepared = movies.parameters([(9, "Twice (2000)", "Drama|Drama")])
    assert prepared.parameters["e0"] == [["Drama"]]


# -- batches converted ahead (``stage``) ---------------------------------------------------


def load_staged(sink: Neo4jSink, stream: Stream, rows: list[Row], size: int) -> None:
    """As the sync's writer does: the next batch is staged before the current one is written."""
    sink.prepare(stream)
    batches = [batch(stream, rows[start : start + size]) for start in range(0, len(rows), size)]
    for index, current in enumerate(batches):
        if index + 1 < len(batches):
            sink.stage(batches[index + 1])
        sink.write(current)


@pytest.mark.integration
def test_staged_batches_build_the_same_graph(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    def data() -> list[str]:  # the graph without Chariot's bookkeeping (leases differ)
        nodes, relationships = snapshot(neo4j_settings)
        return [node for node in nodes if "Chariot" not in node] + relationships

    for name, rows in SMALL.items():
        load_staged(sink, STREAMS[name], rows, size=1)
    staged = data()
    assert rated(neo4j_settings) == len(SMALL["ratings"])
    wipe_graph(neo4j_settings)
    with Neo4jSink(make_settings(neo4j_settings)) as plain:
        load_small(plain)
    assert data() == staged


@pytest.mark.integration
def test_a_staged_batch_is_written_only_by_write(
    sink: Neo4jSink, neo4j_settings: Neo4jSettings
) -> None:
    """Staging converts, nothing more: a staged batch never written leaves no trace, and a
    batch written without (or after another) staging is converted on the spot."""
    rows = SMALL["ratings"]
    sink.prepare(RATINGS)
    first, second = batch(RATINGS, rows[:1]), batch(RATINGS, rows[1:2])
    sink.stage(second)
    sink.stage(batch(RATINGS, rows[2:3]))  # staged, then dropped: never written
    sink.write(first)
    sink.write(second)
    assert rated(neo4j_settings) == 2
    assert scalar(
        neo4j_settings, "MATCH (c:ChariotCheckpoint {table: 'ratings'}) RETURN c.highWaterMark"
    ) == encode_key(rows[1][:2])
