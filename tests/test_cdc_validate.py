"""Change capture rejects exactly the rows the source reader rejects, with the same reason.

Each row is inserted into a real MariaDB table once, then read twice: by the keyset reader
(whose SQL rules decide) and from the binary log (``chariot.cdc.validate`` decides on the
decoded after-image). Needs a server with the binary log on: tests/cdc_support.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.cdc.decode import ZERO_DATE
from chariot.cdc.position import current_position
from chariot.cdc.reader import read_transactions
from chariot.cdc.validate import reject_reason
from chariot.config import MySQLSettings, Settings
from chariot.connections import mysql_connect
from chariot.project.streams import column_kind
from chariot.sources.sql import SqlSource
from chariot.streams import Column, Stream

# (column, DDL type, project type, PostgreSQL type, nullable, min, max, step)
COLUMNS: list[tuple[str, str, str, str, bool, str | None, str | None, str | None]] = [
    ("rating", "decimal(3,1)", "decimal(3,1)", "numeric(3,1)", False, "0.5", "5.0", "0.5"),
    ("score", "int", "int", "integer", True, "0", "100", "5"),
    ("big", "bigint unsigned", "bigint unsigned", "numeric(20)", True, None, None, "100000"),
    ("share", "double", "double", "double precision", True, "0", "1", None),
    ("tenth", "float", "float", "real", True, "0", "0.1", None),
    ("title", "varchar(20)", "varchar(20)", "text", False, None, None, None),
    ("tags", "set('a','b')", "set('a','b')", "text[]", True, None, None, None),
    ("day", "date", "date", "date", False, None, None, None),
    ("at", "datetime", "datetime", "timestamp", True, None, None, None),
    ("stamp", "timestamp NULL", "timestamp", "timestamptz", True, None, None, None),
    ("active", "tinyint(1)", "tinyint(1)", "boolean", True, None, None, None),
]


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _stream(table: str) -> Stream:
    columns = [Column("id", "id", "int", source_type="int", postgres="integer")]
    for name, _, source_type, postgres, nullable, low, high, step in COLUMNS:
        columns.append(
            Column(
                name,
                name,
                column_kind(postgres),
                nullable=nullable,
                min_value=_decimal(low),
                max_value=_decimal(high),
                step=_decimal(step),
                source_type=source_type,
                postgres=postgres,
            )
        )
    return Stream(table, table, tuple(columns), key=("id",))


GOOD: dict[str, Any] = {
    "rating": "4.5",
    "score": 10,
    "big": 200000,
    "share": 0.5,
    "tenth": 0.05,
    "title": "fine",
    "tags": "a,b",
    "day": "2020-01-02",
    "at": "2020-01-02 03:04:05",
    "stamp": "2020-01-02 03:04:05",
    "active": 1,
}

# One bad value per row (the rest GOOD), and a few rows breaking several rules at once.
CASES: list[dict[str, Any]] = [
    {},
    {"rating": None},
    {"rating": "5.5"},
    {"rating": "0.0"},
    {"rating": "2.3"},
    {"score": -5},
    {"score": 101},
    {"score": 7},
    {"score": None},  # nullable: loads
    {"big": 100001},  # 100001 / 100000 is 1.0000 in MySQL: a multiple, as far as SQL goes
    {"big": 150000},
    {"big": 18446744073709551615},
    {"share": 1.0000001},
    {"share": -0.0},
    {"tenth": 0.1},  # a FLOAT's 0.1 is 0.100000001...: above the double 0.1
    {"tenth": 0.099},
    {"title": None},
    {"title": "nul\x00byte"},
    {"title": "back\x08space"},
    {"tags": ""},
    {"day": None},
    {"day": "0000-00-00"},
    {"day": "2020-00-15"},
    {"day": "2020-05-00"},
    {"day": "0000-05-10"},
    {"at": "0000-00-00 00:00:00"},
    {"at": "2020-00-01 10:00:00"},
    {"stamp": "0000-00-00 00:00:00"},
    {"active": 0},
    {"active": 2},
    {"active": -1},
    {"rating": "9.9", "title": None, "day": "0000-00-00"},
    {"title": "x\x00", "active": 7},
]


def _create(mysql: MySQLSettings, table: str) -> None:
    columns = ", ".join(f"`{name}` {ddl}" for name, ddl, *_ in COLUMNS)
    connection = mysql_connect(mysql, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE `{table}` (id int NULL, {columns})")
    finally:
        connection.close()


def _insert(mysql: MySQLSettings, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert the rows with a permissive SQL mode (zero dates, out-of-range values kept)."""
    names = ", ".join(["id", *(f"`{name}`" for name, *_ in COLUMNS)])
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    connection = mysql_connect(mysql, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = '', time_zone = '+00:00'")
            cursor.executemany(f"INSERT INTO `{table}` ({names}) VALUES ({marks})", rows)
    finally:
        connection.close()


def _position(mysql: MySQLSettings) -> Any:
    connection = mysql_connect(mysql)
    try:
        return current_position(connection)
    finally:
        connection.close()


def _by_reader(mysql: MySQLSettings, stream: Stream) -> dict[Any, str | None]:
    """{key: reason or None} as the keyset reader decides (its SQL rules)."""
    source = SqlSource(Settings(mysql=mysql))
    try:
        batches = list(source.read(stream, after=None, batch_size=7))
    finally:
        source.close()
    found: dict[Any, str | None] = {row[0]: None for b in batches for row in b.rows}
    for batch in batches:
        found.update({reject.key[0]: reject.reason for reject in batch.rejects})
    return found


def _by_log(mysql: MySQLSettings, stream: Stream, rows: list[tuple[Any, ...]]) -> dict[Any, Any]:
    """{key: reason or None} for the same rows read back from the binary log."""
    table = stream.source_table
    start = _position(mysql)
    _insert(mysql, table, rows)
    found: dict[Any, str | None] = {}
    for transaction in read_transactions(mysql, [stream], start, stop_at=_position(mysql)):
        for change in transaction.changes:
            assert change.after is not None
            found[change.after["id"]] = reject_reason(stream, change.after)
    return found


def _same_rows_read_both_ways(
    mysql: MySQLSettings, rows: list[tuple[Any, ...]]
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    table = f"t_{uuid.uuid4().hex[:8]}"
    stream = _stream(table)
    _create(mysql, table)
    logged = _by_log(mysql, stream, rows)
    return _by_reader(mysql, stream), logged


def _as_the_log_words_it(reason: str | None) -> str | None:
    """The one known wording difference: the log cannot tell a date with a zero part from
    the zero date (see chariot.cdc.validate), so it gives the zero-date reason."""
    if reason is not None and reason.startswith("zero year, month or day in "):
        return "zero date in " + reason.removeprefix("zero year, month or day in ")
    return reason


@pytest.mark.integration
def test_each_rule_rejects_the_same_rows_with_the_same_reason(binlog_mysql: MySQLSettings) -> None:
    rows = [(i, *({**GOOD, **case}[name] for name, *_ in COLUMNS)) for i, case in enumerate(CASES)]
    rows.append((None, *GOOD.values()))  # a NULL key
    by_reader, by_log = _same_rows_read_both_ways(binlog_mysql, rows)
    assert set(by_reader) == set(by_log) == {row[0] for row in rows}
    assert {k: _as_the_log_words_it(v) for k, v in by_reader.items()} == by_log
    # The cases mean what they say: loads and rejects as written.
    assert by_reader[0] is None and by_reader[8] is None and by_reader[9] is None
    assert by_reader[None] == "NULL in key column id"
    assert by_reader[2] == "rating outside 0.5-5.0"
    assert by_reader[4] == "rating not a multiple of 0.5"
    assert by_reader[14] == "tenth outside 0-0.1"
    assert by_reader[17] == "NUL character in title" and by_reader[18] is None
    assert by_reader[21] == "zero date in `day`"
    assert by_reader[22] == "zero year, month or day in `day`"
    assert by_reader[27] == "zero date in `stamp`"
    assert by_reader[29] == "`active` is neither 0 nor 1 (stored as boolean)"
    assert by_reader[31] == "rating outside 0.5-5.0"  # the first rule that applies


def _value(strategy: st.SearchStrategy[Any], *bad: Any) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, st.sampled_from(bad)) if bad else strategy


def _date(*, time: bool) -> st.SearchStrategy[str]:
    parts = st.tuples(
        st.sampled_from([0, 1, 999, 2020, 9999]),
        st.integers(0, 12),
        st.integers(0, 28),
    )
    clock = " 10:11:12" if time else ""
    return parts.map(lambda p: f"{p[0]:04}-{p[1]:02}-{p[2]:02}{clock}")


def _text() -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(["a", "Z", "\x00", "\x08", "é", " "]), max_size=6)


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "rating": _value(
        st.decimals("-9.9", "9.9", places=1, allow_nan=False, allow_infinity=False).map(str), None
    ),
    "score": _value(st.integers(-20, 120), None),
    "big": _value(st.integers(0, 2**64 - 1), 100001, 99999, 300000, None),
    "share": _value(st.floats(-1, 2, allow_nan=False), 1.0, 0.0, None),
    "tenth": _value(
        st.floats(-0.2, 0.2, allow_nan=False).map(lambda f: float(f"{f:.3g}")),
        0.1,
        None,
    ),
    "title": _value(_text(), None),
    "tags": st.sampled_from(["", "a", "b", "a,b", None]),
    "day": _value(_date(time=False), None),
    "at": _value(_date(time=True), None),
    "stamp": _value(
        st.datetimes(dt.datetime(1971, 1, 1), dt.datetime(2037, 1, 1)).map(
            lambda d: d.replace(microsecond=0).isoformat(" ")
        ),
        "0000-00-00 00:00:00",
        None,
    ),
    "active": _value(st.integers(-3, 3), None),
}


@pytest.mark.integration
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.fixed_dictionaries(VALUES), min_size=1, max_size=25))
def test_generated_rows_are_judged_alike_by_the_reader_and_the_log(
    binlog_mysql: MySQLSettings, generated: list[dict[str, Any]]
) -> None:
    rows = [(i, *(row[name] for name, *_ in COLUMNS)) for i, row in enumerate(generated)]
    by_reader, by_log = _same_rows_read_both_ways(binlog_mysql, rows)
    assert set(by_reader) == set(by_log) == set(range(len(rows)))
    assert {k: _as_the_log_words_it(v) for k, v in by_reader.items()} == by_log


# -- pure logic: no server -------------------------------------------------------------------


def test_a_zero_date_from_the_log_is_rejected_and_a_boolean_kept_as_a_number() -> None:
    stream = _stream("t")
    row = {"id": 1, **{name: None for name, *_ in COLUMNS}}
    row.update(rating=Decimal("1.0"), title="x", day=ZERO_DATE)
    assert reject_reason(stream, row) == "zero date in `day`"
    row.update(day=dt.date(2020, 1, 1), active=True)
    assert reject_reason(stream, row) is None
    row.update(active=2)
    assert reject_reason(stream, row) == "`active` is neither 0 nor 1 (stored as boolean)"
