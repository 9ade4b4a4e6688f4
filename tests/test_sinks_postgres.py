"""The PostgreSQL sink: the layout other parts code against, idempotent upserts, the
checkpoint in the same transaction as the rows, rejects, repair abilities."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chariot.batch import Batch, Reject
from chariot.config import PostgresSettings, Settings
from chariot.connections import postgres_connection
from chariot.errors import Busy
from chariot.sinks.postgres import PostgresSink
from tests.movielens_project import LINKS, MOVIELENS_STREAMS, MOVIES, RATINGS, TAGS
from tests.sync_support import checkpoints, postgres_rows, postgres_scalar, rejects

pytestmark = pytest.mark.integration


@pytest.fixture
def sink(postgres_settings: PostgresSettings) -> Iterator[PostgresSink]:
    with PostgresSink(Settings(postgres=postgres_settings)) as opened:
        yield opened


def _columns(postgres: PostgresSettings, table: str) -> list[tuple[Any, ...]]:
    with postgres_connection(postgres) as connection:
        return connection.execute(
            "SELECT column_name, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " coalesce(c.collation_name, '')"
            " FROM information_schema.columns c JOIN pg_attribute a"
            "   ON a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass"
            "  AND a.attname = c.column_name"
            " WHERE c.table_schema = %s AND c.table_name = %s ORDER BY c.ordinal_position",
            (postgres.schema_name, table),
        ).fetchall()


def _primary_key(postgres: PostgresSettings, table: str) -> list[str]:
    with postgres_connection(postgres) as connection:
        rows = connection.execute(
            "SELECT a.attname FROM pg_index i"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = format('%%I.%%I', %s::text, %s::text)::regclass"
            " AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            (postgres.schema_name, table),
        ).fetchall()
    return [row[0] for row in rows]


def test_layout_is_the_documented_contract(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    for stream in MOVIELENS_STREAMS:
        sink.prepare(stream)
        sink.table_complete(stream)  # a first load builds the key when the copy is done
    assert _columns(postgres_settings, "movies") == [
        ("movie_id", "integer", True, ""),
        ("title", "text", True, ""),
        ("genres", "text[]", True, ""),
        ("year", "integer", False, ""),
    ]
    assert _columns(postgres_settings, "links") == [
        ("movie_id", "integer", True, ""),
        ("imdb_id", "text", True, ""),
        ("tmdb_id", "integer", False, ""),
    ]
    assert _columns(postgres_settings, "ratings") == [
        ("user_id", "integer", True, ""),
        ("movie_id", "integer", True, ""),
        ("rating", "numeric(2,1)", True, ""),
        ("timestamp", "bigint", True, ""),
    ]
    assert _columns(postgres_settings, "tags") == [
        ("user_id", "integer", True, ""),
        ("movie_id", "integer", True, ""),
        ("tag", "text", True, "C"),
        ("timestamp", "bigint", True, ""),
    ]
    assert [c[:2] for c in _columns(postgres_settings, "_chariot_checkpoints")] == [
        ("table_name", "text"),
        ("high_water_mark", "text"),
        ("rows_written", "bigint"),
        ("updated_at", "timestamp with time zone"),
    ]
    assert [c[:2] for c in _columns(postgres_settings, "_chariot_rejects")] == [
        ("table_name", "text"),
        ("row_key", "text"),
        ("reason", "text"),
        ("first_seen", "timestamp with time zone"),
        ("last_seen", "timestamp with time zone"),
    ]
    assert _primary_key(postgres_settings, "movies") == ["movie_id"]
    assert _primary_key(postgres_settings, "ratings") == ["user_id", "movie_id"]
    assert _primary_key(postgres_settings, "tags") == ["user_id", "movie_id", "tag"]
    assert _primary_key(postgres_settings, "_chariot_rejects") == ["table_name", "row_key"]
    foreign_keys = postgres_scalar(
        postgres_settings,
        "SELECT count(*) FROM information_schema.table_constraints"
        " WHERE table_schema = %s AND constraint_type = 'FOREIGN KEY'",
        (postgres_settings.schema_name,),
    )
    assert foreign_keys == 0  # ratings may arrive before their movie


def test_transforms_are_applied_in_sql(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(MOVIES)
    sink.prepare(LINKS)
    movies = [
        (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        (2, "Babylon 5 ", "(no genres listed)"),  # trailing space kept, no year
        (3, "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)", "Comedy|Romance"),
        (4, '"Great Performances" Cats (1998)', None),
        (5, "Year in the middle (1999) of it", "Drama"),
    ]
    sink.write(Batch(MOVIES, movies, (5,)))
    sink.write(Batch(LINKS, [(1, "0114709", 862), (2, "0000012", None)], (2,)))
    assert postgres_rows(postgres_settings, "movies") == sorted(
        [
            (
                1,
                "Toy Story (1995)",
                ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
                1995,
            ),
            (2, "Babylon 5 ", [], None),
            (
                3,
                "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
                ["Comedy", "Romance"],
                2001,
            ),
            (4, '"Great Performances" Cats (1998)', [], 1998),
            (5, "Year in the middle (1999) of it", ["Drama"], None),
        ],
        key=repr,
    )
    assert postgres_rows(postgres_settings, "links") == [(1, "0114709", 862), (2, "0000012", None)]


def test_replaying_batches_is_harmless(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(RATINGS)
    first = Batch(RATINGS, [(1, 1, Decimal("4.0"), 10), (1, 2, Decimal("3.5"), 11)], (1, 2))
    second = Batch(RATINGS, [(2, 1, Decimal("1.0"), 12)], (2, 1))
    for batch in (first, second, first, second, second):
        assert sink.write(batch).written == len(batch)
    assert postgres_rows(postgres_settings, "ratings") == [
        (1, 1, Decimal("4.0"), 10),
        (1, 2, Decimal("3.5"), 11),
        (2, 1, Decimal("1.0"), 12),
    ]
    assert sink.checkpoint(RATINGS) == (2, 1)
    changed = Batch(RATINGS, [(1, 2, Decimal("5.0"), 99)], (1, 2))
    sink.write(changed)  # a replay with newer source values updates them
    assert (1, 2, Decimal("5.0"), 99) in postgres_rows(postgres_settings, "ratings")
    assert sink.checkpoint(RATINGS) == (1, 2)  # the checkpoint follows the batch written


def test_a_failed_batch_leaves_rows_and_checkpoint_untouched(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(RATINGS)
    sink.write(Batch(RATINGS, [(1, 1, Decimal("4.0"), 10)], (1, 1)))
    # A NULL key violates the primary key: not a value problem, the whole batch fails.
    broken = Batch(RATINGS, [(1, 2, Decimal("4.0"), 10), (1, None, Decimal("3.0"), 10)], (1, 3))
    with pytest.raises(Exception, match="null value"):
        sink.write(broken)
    assert postgres_rows(postgres_settings, "ratings") == [(1, 1, Decimal("4.0"), 10)]
    assert checkpoints(postgres_settings) == {"ratings": [1, 1]}
    sink.write(Batch(RATINGS, [(1, 2, Decimal("4.5"), 10)], (1, 2)))  # and the sink goes on
    assert sink.checkpoint(RATINGS) == (1, 2)


def test_a_value_postgres_cannot_store_is_a_reject_and_its_batch_lands(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(TAGS)
    rows = [(1, 1, "fine", 1), (1, 2, "nul\x00here", 2), (1, 3, "also fine", 3)]
    rows += [(1, 4, "ok", 10**20)]  # beyond bigint
    written = sink.write(Batch(TAGS, rows, (1, 4, "ok")))
    assert written.written == 2
    assert {reject.key for reject in written.rejected} == {(1, 2, "nul\x00here"), (1, 4, "ok")}
    assert all("PostgreSQL cannot store it" in r.reason for r in written.rejected)
    assert postgres_rows(postgres_settings, "tags") == [(1, 1, "fine", 1), (1, 3, "also fine", 3)]
    assert sink.checkpoint(TAGS) == (1, 4, "ok")
    assert len(rejects(postgres_settings)) == 2


def test_a_dropped_connection_is_transient_and_the_next_write_reconnects(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [(1, 1, "a", 1)], (1, 1, "a")))
    backend = sink.connection.info.backend_pid
    with postgres_connection(postgres_settings, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    batch = Batch(TAGS, [(1, 1, "B", 2), (1, 1, "b", 3)], (1, 1, "b"))
    with pytest.raises(Exception) as failure:
        sink.write(batch)
    assert sink.is_transient(failure.value)
    sink.write(batch)
    assert postgres_rows(postgres_settings, "tags") == [
        (1, 1, "B", 2),
        (1, 1, "a", 1),
        (1, 1, "b", 3),
    ]
    assert sink.checkpoint(TAGS) == (1, 1, "b")


def test_rejects_are_recorded_and_forgotten_once_the_row_loads(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(RATINGS)
    bad = [
        Reject("ratings", (1, 2), "rating outside 0.5-5.0"),
        Reject("ratings", (1, 3), "NULL timestamp"),
    ]
    result = sink.write(Batch(RATINGS, [(1, 1, Decimal("4.0"), 1)], (1, 3), bad))
    assert result.rejected == bad
    counts, first = sink.recorded_rejects()
    assert counts == {"ratings": 2}
    assert set(first) == set(bad)
    sink.write(Batch(RATINGS, [(1, 1, Decimal("4.0"), 1)], (1, 3), bad))  # replayed: same two
    assert rejects(postgres_settings) == {
        ("ratings", "[1, 2]"): "rating outside 0.5-5.0",
        ("ratings", "[1, 3]"): "NULL timestamp",
    }
    sink.write(Batch(RATINGS, [(1, 2, Decimal("4.5"), 1)], (1, 2)))  # fixed in the source
    assert rejects(postgres_settings) == {("ratings", "[1, 3]"): "NULL timestamp"}


def test_full_refresh_empties_the_table_its_checkpoint_and_rejects(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    for stream in (MOVIES, RATINGS):
        sink.prepare(stream)
    sink.write(
        Batch(MOVIES, [(1, "A (2000)", "Drama")], (1,), [Reject("movies", (2,), "NULL title")])
    )
    sink.write(
        Batch(RATINGS, [(1, 1, Decimal("4.0"), 1)], (1, 1), [Reject("ratings", (1, 2), "x")])
    )
    sink.prepare(MOVIES, full_refresh=True)
    assert postgres_rows(postgres_settings, "movies") == []
    assert sink.checkpoint(MOVIES) is None
    assert sink.recorded_rejects()[0] == {"ratings": 1}
    assert sink.checkpoint(RATINGS) == (1, 1)  # other tables untouched


def test_repair_writes_and_deletes_rows_without_moving_the_checkpoint(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [(1, 1, "a", 1), (1, 1, "b", 2)], (1, 1, "b")))
    assert sink.upsert_rows(TAGS, [(1, 1, "a", 5), (2, 2, "z", 6)]) == 2
    assert sink.delete_keys(TAGS, [(1, 1, "b"), (9, 9, "missing")]) == 1
    assert postgres_rows(postgres_settings, "tags") == [(1, 1, "a", 5), (2, 2, "z", 6)]
    assert sink.checkpoint(TAGS) == (1, 1, "b")


def test_one_writer_per_table_at_a_time(postgres_settings: PostgresSettings) -> None:
    settings = Settings(postgres=postgres_settings)
    with PostgresSink(settings) as first, PostgresSink(settings) as second:
        first.prepare(RATINGS)
        with pytest.raises(Busy, match="is held by chariot sync"):
            second.prepare(RATINGS)
        second.prepare(TAGS)  # other tables are free
    with PostgresSink(settings) as third:
        third.prepare(RATINGS)  # a closed (or killed) writer frees the table


def test_status_abilities_on_an_empty_schema(sink: PostgresSink) -> None:
    assert sink.stored_checkpoints() == {}
    assert sink.recorded_rejects() == ({}, [])
    assert sink.checkpoint(RATINGS) is None
    assert "***" in sink.describe() and "chariot-postgres" not in sink.describe()


def test_a_first_load_copies_into_the_empty_table_and_a_key_present_goes_to_the_upsert(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    """The first-load path (COPY straight into the keyed table: a text key keeps its key)
    holds only while the keys are proven new; a key that is there after all (written behind
    the sink's back) fails the COPY, and the batch is upserted instead: neither doubled nor
    lost."""
    sink.prepare(TAGS)
    assert "tags" in sink._new_keys  # empty under the lease: keys proven new
    sink.write(Batch(TAGS, [(1, 1, "a", 10)], (1, 1, "a")))
    assert "tags" in sink._new_keys
    with postgres_connection(postgres_settings, autocommit=True) as other:
        other.execute(f"INSERT INTO \"{postgres_settings.schema_name}\".tags VALUES (1, 2, 'b', 1)")
    batch = Batch(TAGS, [(1, 2, "b", 11), (1, 3, "c", 12)], (1, 3, "c"))
    assert sink.write(batch).written == 2
    assert "tags" not in sink._new_keys  # from here on, upserts
    assert postgres_rows(postgres_settings, "tags") == [
        (1, 1, "a", 10),
        (1, 2, "b", 11),
        (1, 3, "c", 12),
    ]
    assert sink.checkpoint(TAGS) == (1, 3, "c")


def test_a_wrong_proof_without_the_key_ends_in_one_row_per_key_the_later_write_kept(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    """An integer key is dropped for the first load: a row written behind the sink's back
    (the writer lease forbids it) is not caught by the COPY, but building the key keeps one
    row per key, the later write, as an upsert would have."""
    sink.prepare(RATINGS)
    sink.write(Batch(RATINGS, [(1, 1, Decimal("4.0"), 10)], (1, 1)))
    with postgres_connection(postgres_settings, autocommit=True) as other:
        other.execute(
            f'INSERT INTO "{postgres_settings.schema_name}".ratings VALUES (1, 2, 1.0, 1)'
        )
    batch = Batch(RATINGS, [(1, 2, Decimal("3.5"), 11), (1, 3, Decimal("2.0"), 12)], (1, 3))
    assert sink.write(batch).written == 2
    sink.table_complete(RATINGS)
    assert postgres_rows(postgres_settings, "ratings") == [
        (1, 1, Decimal("4.0"), 10),
        (1, 2, Decimal("3.5"), 11),
        (1, 3, Decimal("2.0"), 12),
    ]
    assert sink.checkpoint(RATINGS) == (1, 3)


def test_keys_are_proven_new_only_for_an_empty_table_nothing_else_writes(
    sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    sink.prepare(RATINGS)
    sink.upsert_rows(RATINGS, [(5, 5, Decimal("1.0"), 1)])  # a repair writes the table
    assert "ratings" not in sink._new_keys
    sink.write(Batch(RATINGS, [(5, 5, Decimal("2.0"), 2)], (5, 5)))
    assert postgres_rows(postgres_settings, "ratings") == [(5, 5, Decimal("2.0"), 2)]
    sink.prepare(RATINGS)  # a later table run: the table holds rows
    assert "ratings" not in sink._new_keys
    sink.prepare(TAGS)
    sink.write(Batch(TAGS, [(1, 1, "nul\x00", 1)], (1, 1, "nul\x00")))  # a value it refuses
    assert "tags" in sink._new_keys  # refused by the upsert's bisection, the proof stays
    assert len(rejects(postgres_settings)) == 1
    sink.prepare(TAGS)  # rejects recorded before the load: the staging path clears them
    assert "tags" not in sink._new_keys


def test_only_renamed_columns_copy_straight_into_the_table() -> None:
    from chariot.sinks.postgres_layout import layout_for

    assert layout_for(RATINGS, "s").direct_targets == ("user_id", "movie_id", "rating", "timestamp")
    assert layout_for(MOVIES, "s").direct_targets is None  # genres, year computed in SQL
