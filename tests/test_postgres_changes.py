"""The PostgreSQL sink applies change capture (``ChangeSink``): a batch of deletes, upserts
and rejects in one transaction with the log position; replays are harmless; foreign-key
actions find their rows by source values; apply loads exactly what ``write`` loads."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chariot.batch import Batch, Key, Reject
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import PostgresSettings, Settings
from chariot.connections import mysql_connect
from chariot.errors import SinkWriteError
from chariot.project import load_project, parse_project
from chariot.project.init import init_project
from chariot.project.streams import project_streams
from chariot.sinks.postgres import PostgresSink, key_json
from chariot.sources.sql import SqlSource
from chariot.streams import Stream
from tests.movielens_project import LINKS, MOVIES, RATINGS, TAGS
from tests.sakila import ROW_COUNTS, load_sakila
from tests.servers import Servers
from tests.sync_support import checkpoints, expected_postgres, postgres_rows, rejects
from tests.test_sync_sakila_postgres import ODDITIES, ODDITY_ROWS

pytestmark = pytest.mark.integration

FIRST = LogPosition("binlog.000001", 4)
SECOND = LogPosition("binlog.000001", 900, gtid="0-1-7")
COMMITTED = dt.datetime(2026, 11, 27, 12, 0, 1, tzinfo=dt.UTC)


@pytest.fixture
def sink(postgres_settings: PostgresSettings) -> Iterator[PostgresSink]:
    with PostgresSink(Settings(postgres=postgres_settings)) as opened:
        yield opened


def stored_positions(postgres: PostgresSettings) -> dict[str, tuple[str, dt.datetime | None]]:
    from chariot.connections import postgres_connection

    with postgres_connection(postgres) as connection:
        rows = connection.execute(
            f'SELECT table_name, log_position, committed_at FROM "{postgres.schema_name}"'
            "._chariot_log_positions"
        ).fetchall()
    return {name: (position, committed) for name, position, committed in rows}


def changes(stream: Stream, **kwargs: Any) -> TableChanges:
    return TableChanges(stream, **kwargs)


def batch(*tables: TableChanges, position: LogPosition = SECOND, **kwargs: Any) -> ChangeBatch:
    positioned = kwargs.pop("positioned", tuple(t.stream.name for t in tables))
    return ChangeBatch(list(tables), position, positioned, committed_at=COMMITTED, **kwargs)


MOVIE_ROWS = [
    (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    (2, "Jumanji (1995)", "Adventure|Children|Fantasy"),
    (3, "Grumpier Old Men (1995)", "Comedy|Romance"),
]
RATING_ROWS = [
    (1, 1, Decimal("4.0"), 964982703),
    (1, 2, Decimal("4.0"), 964981247),
    (2, 3, Decimal("2.5"), 964982224),
]


def loaded(sink: PostgresSink) -> None:
    """MovieLens movies and ratings, copied by keys (write), log started at FIRST."""
    for stream in (MOVIES, RATINGS):
        sink.prepare(stream)
        sink.start_log(stream, FIRST)
    sink.write(Batch(MOVIES, MOVIE_ROWS, (3,)))
    sink.write(Batch(RATINGS, RATING_ROWS, (2, 3)))


# -- log positions ------------------------------------------------------------------------------


def test_log_positions_are_started_replaced_and_forgotten(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    assert sink.log_positions() == {}  # no schema yet: nothing synced by change capture
    chunked = LogPosition("binlog.000002", 630, gtid="0-1-6", within=5000)
    sink.start_log(MOVIES, chunked)  # before any prepare: it makes the control tables
    sink.start_log(RATINGS, FIRST)
    assert sink.log_positions() == {"movies": chunked, "ratings": FIRST}
    sink.start_log(MOVIES, SECOND)
    assert sink.log_positions() == {"movies": SECOND, "ratings": FIRST}
    sink.forget_log(MOVIES)
    sink.forget_log(TAGS)  # never started: nothing to forget
    assert sink.log_positions() == {"ratings": FIRST}
    assert stored_positions(postgres_settings) == {"ratings": (FIRST.render(), None)}


def test_a_full_refresh_keeps_the_log_position(sink: PostgresSink) -> None:
    loaded(sink)
    sink.prepare(MOVIES, full_refresh=True)
    assert sink.log_positions() == {"movies": FIRST, "ratings": FIRST}


def test_the_log_position_table_is_a_control_table(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    from chariot.connections import postgres_connection

    sink.prepare(LINKS)
    with postgres_connection(postgres_settings) as connection:
        columns = connection.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = '_chariot_log_positions'"
            " ORDER BY ordinal_position",
            (postgres_settings.schema_name,),
        ).fetchall()
    assert columns == [
        ("table_name", "text", "NO"),
        ("log_position", "text", "NO"),
        ("committed_at", "timestamp with time zone", "YES"),
        ("updated_at", "timestamp with time zone", "YES"),
        ("copied", "boolean", "NO"),
    ]


# -- apply --------------------------------------------------------------------------------------


def test_inserts_updates_deletes_and_moved_keys_land_with_the_position(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    loaded(sink)
    movies = changes(
        MOVIES,
        deletes=[(2,)],
        upserts=[(1, "Toy Story, renamed (1996)", "Animation"), (0, "Below the mark", None)],
    )
    # rating (1, 1) moved to movie 3 (an update of its key), one inserted above the mark.
    ratings = changes(
        RATINGS,
        deletes=[(1, 1)],
        upserts=[(1, 3, Decimal("5.0"), 1), (9, 9, Decimal("0.5"), 2)],
        moved=[((1, 1), (1, 3))],
    )
    sink.apply(batch(movies, ratings, transactions=2, changes=5))

    assert postgres_rows(postgres_settings, "movies") == expected_postgres(
        "movies",
        [(0, "Below the mark", None), (1, "Toy Story, renamed (1996)", "Animation"), MOVIE_ROWS[2]],
    )
    assert postgres_rows(postgres_settings, "ratings") == expected_postgres(
        "ratings", [RATING_ROWS[1], RATING_ROWS[2], (1, 3, Decimal("5.0"), 1), (9, 9, 0.5, 2)]
    )
    assert sink.log_positions() == {"movies": SECOND, "ratings": SECOND}
    assert stored_positions(postgres_settings)["movies"] == (SECOND.render(), COMMITTED)
    # The high-water marks stay where the copy left them.
    assert checkpoints(postgres_settings) == {"movies": [3], "ratings": [2, 3]}


def test_a_table_without_changes_still_gets_the_position(sink: PostgresSink) -> None:
    loaded(sink)
    sink.apply(batch(changes(MOVIES, deletes=[(3,)]), positioned=("movies", "ratings")))
    assert sink.log_positions() == {"movies": SECOND, "ratings": SECOND}
    later = LogPosition("binlog.000002", 4)
    sink.apply(batch(position=later, positioned=("ratings",)))  # nothing for this sink
    assert sink.log_positions() == {"movies": SECOND, "ratings": later}


def test_replaying_a_batch_is_harmless(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    loaded(sink)
    applied = batch(
        changes(MOVIES, deletes=[(1,)], upserts=[(4, "Heat (1995)", "Action")]),
        changes(RATINGS, deletes=[(1, 1), (7, 7)], upserts=[(1, 4, Decimal("3.0"), 5)]),
    )
    sink.apply(applied)
    after_once = {t: postgres_rows(postgres_settings, t) for t in ("movies", "ratings")}
    sink.apply(applied)
    sink.apply(applied)
    assert {t: postgres_rows(postgres_settings, t) for t in ("movies", "ratings")} == after_once
    assert sink.log_positions()["ratings"] == SECOND


def test_rejects_are_recorded_their_rows_deleted_and_forgotten_once_fine(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    loaded(sink)
    # Key (1, 2): its new version breaks a rule the reader checks; (2, 3): PostgreSQL cannot
    # store its new version (beyond numeric(2,1)). Both old versions must go.
    sink.apply(
        batch(
            changes(
                RATINGS,
                upserts=[(2, 3, Decimal("12.5"), 1), (5, 5, Decimal("1.0"), 1)],
                rejects=[Reject("ratings", (1, 2), "rating outside 0.5-5.0")],
            )
        )
    )
    assert postgres_rows(postgres_settings, "ratings") == expected_postgres(
        "ratings", [RATING_ROWS[0], (5, 5, Decimal("1.0"), 1)]
    )
    recorded = rejects(postgres_settings)
    assert set(recorded) == {("ratings", "[1, 2]"), ("ratings", "[2, 3]")}
    assert "PostgreSQL cannot store it" in recorded[("ratings", "[2, 3]")]
    # (1, 2) is fixed in the source; (2, 3) is deleted there: neither is a reject any more.
    fixed = changes(RATINGS, deletes=[(2, 3)], upserts=[(1, 2, Decimal("4.5"), 2)])
    sink.apply(batch(fixed, position=LogPosition("binlog.000001", 1200)))
    assert rejects(postgres_settings) == {}
    assert (1, 2, Decimal("4.5"), 2) in postgres_rows(postgres_settings, "ratings")


def test_a_text_key_changed_only_in_case_is_a_delete_and_an_insert(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [(1, 1, "funny", 10), (1, 1, "Pixar", 11)], (1, 1, "funny")))
    moved = changes(
        TAGS,
        deletes=[(1, 1, "funny")],
        upserts=[(1, 1, "Funny", 10)],
        moved=[((1, 1, "funny"), (1, 1, "Funny"))],
    )
    sink.apply(batch(moved))
    assert postgres_rows(postgres_settings, "tags") == [(1, 1, "Funny", 10), (1, 1, "Pixar", 11)]


def test_a_failing_batch_changes_neither_rows_nor_position(
    sink: PostgresSink, postgres_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chariot.aggregate import touched

    loaded(sink)
    before = {t: postgres_rows(postgres_settings, t) for t in ("movies", "ratings")}
    applied = batch(
        changes(MOVIES, deletes=[(1,)], upserts=[(4, "Heat (1995)", "Action")]),
        changes(
            RATINGS, upserts=[(3, 3, Decimal("9.0"), 1)], rejects=[Reject("ratings", (1, 1), "x")]
        ),
    )

    def fail_after_the_rows_changed(self: Any) -> None:
        raise RuntimeError("forced failure mid-apply")

    monkeypatch.setattr(touched.TouchedGroups, "after_changes", fail_after_the_rows_changed)
    with pytest.raises(RuntimeError, match="forced failure"):
        sink.apply(applied)
    assert {t: postgres_rows(postgres_settings, t) for t in ("movies", "ratings")} == before
    assert sink.log_positions() == {"movies": FIRST, "ratings": FIRST}
    assert rejects(postgres_settings) == {}

    # A real error too: the last table of the batch was never created in PostgreSQL.
    monkeypatch.undo()
    missing = changes(TAGS, upserts=[(1, 1, "x", 1)])
    with pytest.raises(Exception, match="does not exist"):
        sink.apply(batch(*applied.tables, missing))
    assert {t: postgres_rows(postgres_settings, t) for t in ("movies", "ratings")} == before
    assert sink.log_positions() == {"movies": FIRST, "ratings": FIRST}

    sink.apply(applied)  # and the sink goes on (its staging tables are made again)
    assert sink.log_positions() == {"movies": SECOND, "ratings": SECOND}
    assert (4, "Heat (1995)", ["Action"], 1995) in postgres_rows(postgres_settings, "movies")


def test_touched_groups_are_recorded_before_and_after_in_the_transaction(
    sink: PostgresSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chariot.aggregate import touched

    loaded(sink)
    seen: list[tuple[str, dict[str, list[Key]], int, int]] = []

    def counting(when: str) -> Any:
        def record(self: Any) -> None:
            counts = []
            for name in ("movies", "ratings"):
                self.cursor.execute(f'SELECT count(*) FROM "{self.schema}"."{name}"')
                counts.append(self.cursor.fetchone()[0])
            keys = {plan.stream.name: plan.arrays for plan in self.plans}
            seen.append((when, keys, *counts))

        return record

    monkeypatch.setattr(touched.TouchedGroups, "before_changes", counting("before"))
    monkeypatch.setattr(touched.TouchedGroups, "after_changes", counting("after"))
    sink.apply(
        batch(
            changes(MOVIES, deletes=[(1,), (2,)]),
            changes(RATINGS, upserts=[(1, 1, Decimal("1.0"), 1), (3, 3, Decimal("1.0"), 1)]),
        )
    )
    # Each aggregation reading a table gets only the key columns its groups come from.
    planned = seen[0][1]
    assert seen == [("before", planned, 3, 3), ("after", planned, 1, 4)]
    assert set(planned) == {"movies", "ratings"}


def test_every_key_based_write_invalidates_the_incremental_aggregation(
    sink: PostgresSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chariot.aggregate import touched

    invalidated: list[tuple[str, bool]] = []

    def invalidate(cursor: Any, schema: str, stream: Stream) -> None:
        invalidated.append((stream.name, cursor.connection.info.transaction_status != 0))

    monkeypatch.setattr(touched, "invalidate_incremental", invalidate)
    sink.prepare(RATINGS)  # an ordinary prepare changes no row
    sink.write(Batch(RATINGS, RATING_ROWS, (2, 3)))
    sink.upsert_rows(RATINGS, [RATING_ROWS[0]])
    sink.delete_keys(RATINGS, [(1, 1)])
    sink.prepare(RATINGS, full_refresh=True)
    sink.apply(batch(changes(RATINGS, upserts=[RATING_ROWS[0]])))  # records touched groups
    assert invalidated == [("ratings", True)] * 4  # each inside its transaction


def test_repair_deletes_many_keys_in_one_go(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    loaded(sink)
    assert sink.delete_keys(RATINGS, [(1, 1), (2, 3), (8, 8)]) == 2
    assert postgres_rows(postgres_settings, "ratings") == expected_postgres(
        "ratings", [RATING_ROWS[1]]
    )


# -- keys_referencing ---------------------------------------------------------------------------


def test_keys_referencing_find_rows_by_source_values(sink: PostgresSink) -> None:
    loaded(sink)
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [(1, 1, "Pixar", 1), (2, 1, "fun", 2), (2, 3, "old", 3)], (2, 3, "old")))
    assert sink.keys_referencing(RATINGS, ("movieId",), [(1,), (3,), (99,)]) == [(1, 1), (2, 3)]
    assert sink.keys_referencing(RATINGS, ("movieId",), []) == []
    found = sink.keys_referencing(TAGS, ("movieId",), [(1,)])
    assert found == [(1, 1, "Pixar"), (2, 1, "fun")]
    assert all(
        type(part) is t for key in found for part, t in zip(key, (int, int, str), strict=True)
    )
    assert sink.keys_referencing(TAGS, ("tag", "userId"), [("fun", 2), ("Fun", 2)]) == [
        (2, 1, "fun")
    ]


def test_keys_referencing_refuses_a_column_stored_as_something_else(sink: PostgresSink) -> None:
    loaded(sink)
    with pytest.raises(SinkWriteError, match="does not store source column 'genres'"):
        sink.keys_referencing(MOVIES, ("genres",), [("Comedy",)])
    with pytest.raises(SinkWriteError, match="has no source column 'nope'"):
        sink.keys_referencing(MOVIES, ("nope",), [(1,)])


CALENDAR = """
[tables.days]
key = ["day", "code"]
transforms = [{ rename = "day", to = "on_day" }, { cast = "code", to = "text" }]

[tables.days.columns]
day = { type = "date" }
code = { type = "int" }
note = { type = "varchar(20)", nullable = true }

[tables.events]
key = ["id"]
references = [{ table = "days", columns = ["day", "code"] }]
transforms = [{ cast = "code", to = "bigint" }, { extract = "title", pattern = "([a-z]+)" }]

[tables.events.columns]
id = { type = "varchar(10)" }
day = { type = "date" }
code = { type = "int" }
title = { type = "varchar(20)" }
"""


def test_keys_referencing_with_dates_text_keys_and_casts(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    days, events = project_streams(parse_project(CALENDAR))
    for stream in (days, events):
        sink.prepare(stream)
    monday, tuesday = dt.date(2026, 11, 23), dt.date(2026, 11, 24)
    sink.write(Batch(days, [(monday, 1, "a"), (monday, 2, None), (tuesday, 1, "b")], (tuesday, 1)))
    event_rows = [("e1", monday, 1, "x"), ("E1", monday, 2, "y"), ("e2", tuesday, 1, "z")]
    sink.write(Batch(events, event_rows, ("e2",)))

    # The key cast to text comes back as the source's int; the date as a date.
    found = sink.keys_referencing(days, ("day",), [(monday,)])
    assert found == [(monday, 1), (monday, 2)]
    assert all(isinstance(code, int) for _, code in found)
    referencing = sink.keys_referencing(events, ("day", "code"), [(monday, 2), (tuesday, 1)])
    assert referencing == [("E1",), ("e2",)]
    with pytest.raises(SinkWriteError, match="'title'"):
        sink.keys_referencing(events, ("title",), [("x",)])

    # Deleting by a cast key and a date, and by a text key that differs only in case.
    sink.apply(batch(changes(days, deletes=[(monday, 2)]), changes(events, deletes=[("e1",)])))
    assert postgres_rows(postgres_settings, "days") == [
        (monday, "1", "a"),
        (tuesday, "1", "b"),
    ]
    assert [row[0] for row in postgres_rows(postgres_settings, "events")] == ["E1", "e2"]


# -- apply loads what write loads ---------------------------------------------------------------

MOVIELENS_SAMPLES = {
    MOVIES: [
        (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        (2, "Babylon 5 ", "(no genres listed)"),
        (3, "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance"),
        (4, '"Great Performances" Cats (1998)', None),
        (5, "Year in the middle (1999) of it", ""),
        (6, "Tab\tand \\ backslash (2010)\n", "Drama"),
    ],
    LINKS: [(1, "0114709", 862), (2, "0000012", None)],
    RATINGS: [(1, 1, Decimal("4.0"), 964982703), (1, 2, Decimal("0.5"), 0)],
    TAGS: [(1, 1, "funny", 1), (1, 1, "Funny", 2), (2, 5, "ÉLAN ", 2**40), (3, 3, "nul\x00", 1)],
}


def table_contents(postgres: PostgresSettings, streams: list[Stream]) -> dict[str, Any]:
    return {stream.name: postgres_rows(postgres, stream.name) for stream in streams}


def test_apply_loads_what_write_loads_for_movielens(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    streams = list(MOVIELENS_SAMPLES)
    for stream, rows in MOVIELENS_SAMPLES.items():
        sink.prepare(stream)
        last = tuple(rows[-1][i] for i in stream.key_positions)
        sink.write(Batch(stream, rows, last))
    written = table_contents(postgres_settings, streams)
    written_rejects = rejects(postgres_settings)
    assert len(written["tags"]) == 3 and len(written_rejects) == 1  # the NUL

    for stream in streams:
        sink.prepare(stream, full_refresh=True)
    sink.apply(batch(*(changes(s, upserts=rows) for s, rows in MOVIELENS_SAMPLES.items())))
    assert table_contents(postgres_settings, streams) == written
    assert rejects(postgres_settings) == written_rejects


def test_a_reject_key_with_a_nul_is_recorded_and_harmless(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(TAGS)
    sink.start_log(TAGS, FIRST)
    key = (1, 1, "nul\x00")
    sink.apply(batch(changes(TAGS, rejects=[Reject("tags", key, "NUL in text")])))
    assert rejects(postgres_settings) == {("tags", key_json(key)): "NUL in text"}
    sink.apply(batch(changes(TAGS, deletes=[key]), position=LogPosition("binlog.000003", 4)))
    assert rejects(postgres_settings) == {}  # deleted in the source: no longer a reject
    assert sink.log_positions() == {"tags": LogPosition("binlog.000003", 4)}


# -- Sakila and every type: apply loads what write loads ----------------------------------------


@pytest.fixture(scope="module")
def sakila_streams(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, tuple[Stream, ...]]]:
    """Sakila plus a table of awkward values of every type, in a database of this
    module's own, and the streams ``chariot init`` makes of them."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        settings = Settings(mysql=servers.mysql.model_copy(update={"database": name}))
        load_sakila(settings.mysql)
        source = mysql_connect(settings.mysql, autocommit=True)
        try:
            with source.cursor() as cursor:
                cursor.execute("SET SESSION sql_mode = ''")  # zero dates, as old servers allowed
                cursor.execute(ODDITIES)
                cursor.executemany(
                    f"INSERT INTO oddities VALUES ({', '.join(['%s'] * 12)})", ODDITY_ROWS
                )
        finally:
            source.close()
        path = tmp_path_factory.mktemp("sakila") / "chariot.toml"
        init_project(settings, path=path)
        yield settings, project_streams(load_project(path))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def read_all(settings: Settings, stream: Stream) -> list[Batch]:
    with SqlSource(settings) as source:
        return list(source.read(stream, after=None, batch_size=5000))


def test_apply_loads_what_write_loads_for_every_sakila_type(
    sakila_streams: tuple[Settings, tuple[Stream, ...]], postgres_settings: PostgresSettings
) -> None:
    source_settings, streams = sakila_streams
    settings = source_settings.model_copy(update={"postgres": postgres_settings})
    read = {stream: read_all(settings, stream) for stream in streams}
    with PostgresSink(settings) as sink:
        for stream, batches in read.items():
            sink.prepare(stream)
            for copied in batches:
                sink.write(copied)
        written = table_contents(postgres_settings, list(streams))
        written_rejects = rejects(postgres_settings)
        for stream in streams:
            sink.prepare(stream, full_refresh=True)
        sink.apply(
            batch(
                *(
                    changes(
                        stream,
                        upserts=[row for b in batches for row in b.rows],
                        rejects=[reject for b in batches for reject in b.rejects],
                    )
                    for stream, batches in read.items()
                )
            )
        )
    counts = {name: len(rows) for name, rows in written.items()}
    assert counts == {**ROW_COUNTS, "oddities": 5} and len(written_rejects) == 4
    for stream in streams:
        assert table_contents(postgres_settings, [stream]) == {stream.name: written[stream.name]}
    assert rejects(postgres_settings) == written_rejects


def test_keys_referencing_in_sakila_equal_the_sources(
    sakila_streams: tuple[Settings, tuple[Stream, ...]], postgres_settings: PostgresSettings
) -> None:
    source_settings, streams = sakila_streams
    settings = source_settings.model_copy(update={"postgres": postgres_settings})
    by_name = {stream.name: stream for stream in streams}
    wanted = [("payment", "rental_id", (1, 2, 999)), ("film_actor", "film_id", (1, 7))]
    with PostgresSink(settings) as sink:
        for table, column, values in wanted:
            stream = by_name[table]
            sink.prepare(stream)
            for copied in read_all(settings, stream):
                sink.write(copied)
            found = sink.keys_referencing(stream, (column,), [(v,) for v in values])
            keys = ", ".join(f"`{k}`" for k in stream.key)
            expected = mysql_rows(
                settings,
                f"SELECT {keys} FROM `{table}` WHERE `{column}` IN ({', '.join(map(str, values))})"
                f" ORDER BY {keys}",
            )
            assert found == expected and len(found) > 2, table


def mysql_rows(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


# -- a property: any sequence of batches leaves the table equal to the model ----------------------

TAG_KEYS = st.tuples(
    st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.sampled_from(["a", "A", "b"])
)
# (what happens to a key, its timestamp): an upsert, a delete, a reader's reject, or a row
# PostgreSQL refuses (a timestamp beyond bigint).
OPERATIONS = st.one_of(
    st.tuples(st.just("upsert"), st.integers(0, 2**62)),
    st.tuples(st.just("delete"), st.just(0)),
    st.tuples(st.just("reject"), st.just(0)),
    st.tuples(st.just("upsert"), st.just(10**20)),
)
BATCHES = st.lists(
    st.tuples(st.dictionaries(TAG_KEYS, OPERATIONS, max_size=8), st.booleans()), max_size=6
)


def folded(operations: dict[Key, tuple[str, int]]) -> TableChanges:
    """The net effect per key, as the conductor folds it (keys disjoint)."""
    result = changes(TAGS)
    for key, (operation, timestamp) in operations.items():
        if operation == "upsert":
            result.upserts.append((*key, timestamp))
        elif operation == "delete":
            result.deletes.append(key)
        else:
            result.rejects.append(Reject("tags", key, "rule broken"))
    return result


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=BATCHES)
def test_any_sequence_of_batches_leaves_the_table_equal_to_the_model(
    sink: PostgresSink, postgres_settings: PostgresSettings, batches: Any
) -> None:
    sink.prepare(TAGS, full_refresh=True)  # each example starts empty
    sink.start_log(TAGS, FIRST)
    model: dict[Key, tuple[Any, ...]] = {}
    refused: set[Key] = set()
    for number, (operations, replayed) in enumerate(batches, start=1):
        position = LogPosition("binlog.000001", 100 * number)
        for _ in range(2 if replayed else 1):
            sink.apply(batch(folded(operations), position=position))
        for key, (operation, timestamp) in operations.items():
            model.pop(key, None)
            refused.discard(key)
            if operation == "upsert" and timestamp < 2**63:
                model[key] = (*key, timestamp)
            elif operation != "delete":
                refused.add(key)
        assert postgres_rows(postgres_settings, "tags") == sorted(model.values(), key=repr)
        assert {key for _, key in rejects(postgres_settings)} == {key_json(k) for k in refused}
        assert sink.log_positions() == {"tags": position}


@given(st.lists(st.tuples(st.integers(-5, 5), st.text(max_size=3)), max_size=30))
def test_keys_go_to_the_server_distinct_and_in_order(keys: list[Key]) -> None:
    from chariot.sinks.postgres_changes import sorted_keys

    assert sorted_keys(keys) == sorted(set(keys))


def test_keys_python_cannot_order_go_as_they_came() -> None:
    from chariot.sinks.postgres_changes import sorted_keys

    assert sorted_keys([(2,), ("a",), (2,), (None,)]) == [(2,), ("a",), (None,)]
