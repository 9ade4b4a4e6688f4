"""The SQL source: keyset pages the index can serve, every row once in the source's order,
rejects decided by the database, read errors that are errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chariot.config import MySQLSettings, RunSettings, Settings
from chariot.connections import mysql_connect
from chariot.errors import SourceReadError
from chariot.sources.sql import SqlSource, after_key, key_columns, source_table, up_to_key
from chariot.streams import Stream
from tests.movielens_project import LINKS, MOVIES, RATINGS, TAGS
from tests.sync_support import create_source_tables, mysql_execute, seed_movielens, source_rows

pytestmark = pytest.mark.integration


def _source(mysql: MySQLSettings, **run: Any) -> SqlSource:
    return SqlSource(Settings(mysql=mysql, run=RunSettings(**run)))


def _read_all(
    source: SqlSource, stream: Stream, after: Any = None, batch_size: int = 1000
) -> list[Any]:
    rows: list[Any] = []
    for batch in source.read(stream, after=after, batch_size=batch_size):
        rows.extend(batch.rows)
    return rows


@pytest.fixture
def movielens_source(mysql_settings: MySQLSettings, movielens_dir: Path) -> MySQLSettings:
    seed_movielens(mysql_settings, movielens_dir)
    return mysql_settings


def _handler_reads(cursor: Any) -> int:
    cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
    return sum(int(value) for name, value in cursor.fetchall() if name != "Handler_read_key")


@pytest.mark.parametrize(
    ("stream", "after"),
    [(RATINGS, (300, 5)), (TAGS, (474, 2959, "Brad Pitt"))],
    ids=["ratings-2-int-columns", "tags-text-3-columns"],
)
def test_keyset_page_is_an_index_range_on_mariadb_and_mysql(
    movielens_source: MySQLSettings, stream: Stream, after: tuple[Any, ...]
) -> None:
    """The row-constructor form read 46,496 index entries for a 1,000-row page here; the
    expanded predicate must read about as many as it returns."""
    from sqlalchemy import select

    source = _source(movielens_source)
    table = source_table(stream)
    keys = key_columns(stream, table)
    query = (
        select(*(table.c[name] for name in stream.source_columns))
        .where(after_key(keys, after))
        .order_by(*keys)
        .limit(1000)
    )
    sql = str(query.compile(dialect=source.engine.dialect, compile_kwargs={"literal_binds": True}))
    connection = mysql_connect(movielens_source)
    try:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            names = [column[0] for column in cursor.description]
            plan = dict(zip(names, cursor.fetchone(), strict=True))
            before = _handler_reads(cursor)
            cursor.execute(sql)
            returned = len(cursor.fetchall())
            examined = _handler_reads(cursor) - before
    finally:
        connection.close()
        source.close()
    assert plan["type"] == "range" and plan["key"] == "PRIMARY", plan
    assert returned == 1000
    assert examined <= returned + 50, f"read {examined} index entries to return {returned}"


def test_up_to_key_is_the_complement_of_after_key(movielens_source: MySQLSettings) -> None:
    from sqlalchemy import func, select

    source = _source(movielens_source)
    table = source_table(TAGS)
    keys = key_columns(TAGS, table)
    mark = (474, 2959, "Brad Pitt")
    try:
        with source.engine.connect() as connection:
            total, after, up_to = (
                connection.execute(
                    select(func.count()).select_from(table).where(condition)
                ).scalar()
                for condition in (
                    keys[0].is_not(None),
                    after_key(keys, mark),
                    up_to_key(keys, mark),
                )
            )
    finally:
        source.close()
    assert after > 0 and up_to > 0
    assert after + up_to == total


@pytest.mark.parametrize("batch_size", [1, 7, 1000, 50_000])
def test_reads_every_tag_once_in_the_source_order(
    movielens_source: MySQLSettings, batch_size: int
) -> None:
    """Tags have a text key whose values differ only in letter case: MySQL's binary
    collation orders and compares them, Python never does."""
    expected = source_rows(movielens_source, TAGS)
    source = _source(movielens_source)
    try:
        rows = _read_all(source, TAGS, batch_size=batch_size)
    finally:
        source.close()
    assert rows == expected
    assert len({row[:3] for row in rows}) == len(rows) == 3683


def test_resumes_strictly_after_a_checkpoint(movielens_source: MySQLSettings) -> None:
    expected = source_rows(movielens_source, RATINGS)
    source = _source(movielens_source)
    try:
        batches = list(source.read(RATINGS, after=None, batch_size=30_000))
        middle = batches[1].last_key
        rest = _read_all(source, RATINGS, after=middle, batch_size=7_000)
        counted = source.count(RATINGS, after=middle)
    finally:
        source.close()
    assert [len(batch) for batch in batches] == [30_000, 30_000, 30_000, 10_836]
    assert middle == expected[59_999][:2]
    assert rest == expected[60_000:]
    assert counted == len(rest)


def test_rejects_are_decided_by_the_source_with_key_and_reason(
    mysql_settings: MySQLSettings,
) -> None:
    create_source_tables(mysql_settings)
    good = [(1, 1, "4.0", 100), (1, 2, "0.5", 100), (2, 1, "5.0", 100)]
    bad = [
        (1, 3, "7.5", 100),
        (1, 4, None, 100),
        (2, 2, "2.3", 100),
        (2, 3, "3.0", None),
        (3, 1, "0.0", 1),
    ]
    mysql_execute(
        mysql_settings,
        ("INSERT INTO ratings VALUES (%s, %s, %s, %s)", good + bad),
        (
            "INSERT INTO movies VALUES (%s, %s, %s)",
            [(1, "Ok (1999)", "A"), (2, None, "B"), (3, "x", None)],
        ),
        (
            "INSERT INTO links VALUES (%s, %s, %s)",
            [(1, "0114709", 862), (2, None, 5), (3, "01", None)],
        ),
        ("INSERT INTO tags VALUES (%s, %s, %s, %s)", [(1, 1, "fine", 5), (1, 1, "nul\x00byte", 5)]),
    )
    source = _source(mysql_settings)
    try:
        found = {}
        loaded = {}
        for stream in (RATINGS, MOVIES, LINKS, TAGS):
            batches = list(source.read(stream, after=None, batch_size=2))
            found[stream.name] = {r.key: r.reason for b in batches for r in b.rejects}
            loaded[stream.name] = [row for b in batches for row in b.rows]
            assert (
                batches[-1].last_key == source_rows(mysql_settings, stream)[-1][: len(stream.key)]
            )
    finally:
        source.close()
    assert found["ratings"] == {
        (1, 3): "rating outside 0.5-5.0",
        (1, 4): "NULL rating",
        (2, 2): "rating not a multiple of 0.5",
        (2, 3): "NULL timestamp",
        (3, 1): "rating outside 0.5-5.0",
    }
    assert [row[:2] for row in loaded["ratings"]] == [(1, 1), (1, 2), (2, 1)]
    assert found["movies"] == {(2,): "NULL title"}
    assert [row[0] for row in loaded["movies"]] == [1, 3]  # NULL genres is fine: no genres
    assert found["links"] == {(2,): "NULL imdbId"}
    assert found["tags"] == {(1, 1, "nul\x00byte"): "NUL character in tag"}


def test_rows_with_a_null_key_are_reported_not_skipped(mysql_settings: MySQLSettings) -> None:
    """A source without a primary key can hold NULL keys, which no keyset comparison reaches."""
    mysql_execute(
        mysql_settings,
        "CREATE TABLE ratings (userId INT NULL, movieId INT NULL, rating DECIMAL(2,1),"
        " timestamp BIGINT)",
        (
            "INSERT INTO ratings VALUES (%s, %s, %s, %s)",
            [(1, 1, "4.0", 1), (None, 1, "4.0", 1), (2, None, "3.0", 1)],
        ),
    )
    source = _source(mysql_settings)
    try:
        batches = list(source.read(RATINGS, after=None, batch_size=10))
    finally:
        source.close()
    assert [row[:2] for batch in batches for row in batch.rows] == [(1, 1)]
    assert {(r.key, r.reason) for b in batches for r in b.rejects} == {
        ((None, 1), "NULL in key column userId"),
        ((2, None), "NULL in key column movieId"),
    }


def test_a_failed_read_is_an_error_never_the_end_of_data(movielens_source: MySQLSettings) -> None:
    source = _source(movielens_source, max_attempts=2)
    try:
        batches = source.read(RATINGS, after=None, batch_size=1000)
        first = next(batches)
        mysql_execute(movielens_source, "RENAME TABLE ratings TO ratings_gone")
        # Drained: the Arrow reader hands out batches of a page it read before the rename.
        with pytest.raises(SourceReadError, match="reading table ratings .* failed"):
            for _ in batches:
                pass
    finally:
        source.close()
    assert len(first) == 1000


def test_a_killed_source_connection_is_reconnected(movielens_source: MySQLSettings) -> None:
    source = _source(movielens_source)
    admin = mysql_connect(movielens_source)
    try:
        batches = source.read(TAGS, after=None, batch_size=500)
        rows = list(next(batches).rows)
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.processlist"
                " WHERE db = %s AND id <> CONNECTION_ID()",
                (movielens_source.database,),
            )
            for (connection_id,) in cursor.fetchall():
                cursor.execute(f"KILL {int(connection_id)}")
        for batch in batches:
            rows.extend(batch.rows)
    finally:
        admin.close()
        source.close()
    assert rows == source_rows(movielens_source, TAGS)


def test_any_sqlalchemy_url_is_a_source(tmp_path: Path) -> None:
    """The source is generic SQLAlchemy: a SQLite file works the same way."""
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            'CREATE TABLE tags ("userId" INT, "movieId" INT, tag TEXT, "timestamp" INT,'
            ' PRIMARY KEY ("userId", "movieId", tag))'
        )
        connection.executemany(
            "INSERT INTO tags VALUES (?, ?, ?, ?)",
            [(1, 1, "b", 1), (1, 1, "B", 2), (1, 1, "a", None), (2, 1, "x", 3), (1, 2, "é", 4)],
        )
    source = SqlSource(Settings(mysql=MySQLSettings(url=f"sqlite:///{path}")))
    try:
        batches = list(source.read(TAGS, after=None, batch_size=2))
        resumed = _read_all(source, TAGS, after=(1, 1, "B"), batch_size=2)
    finally:
        source.close()
    rows = [row for batch in batches for row in batch.rows]
    assert rows == [(1, 1, "B", 2), (1, 1, "b", 1), (1, 2, "é", 4), (2, 1, "x", 3)]
    assert [(r.key, r.reason) for b in batches for r in b.rejects] == [
        ((1, 1, "a"), "NULL timestamp")
    ]
    assert resumed == rows[1:]


def test_control_characters_are_not_mistaken_for_a_nul(mysql_settings: MySQLSettings) -> None:
    """Under a Unicode collation control characters weigh nothing, like a NUL: the NUL rule
    must look at the bytes, or a title with a backspace is rejected as holding a NUL."""
    create_source_tables(mysql_settings)
    titles = ["back\x08space", "unit\x1fseparator", "del\x7f", "tab\there", "nul\x00byte"]
    mysql_execute(
        mysql_settings,
        (
            "INSERT INTO movies VALUES (%s, %s, %s)",
            [(i, title, "A") for i, title in enumerate(titles, start=1)],
        ),
    )
    source = _source(mysql_settings)
    try:
        batches = list(source.read(MOVIES, after=None, batch_size=10))
    finally:
        source.close()
    assert [row[1] for batch in batches for row in batch.rows] == titles[:-1]
    assert [(r.key, r.reason) for b in batches for r in b.rejects] == [
        ((5,), "NUL character in title")
    ]
