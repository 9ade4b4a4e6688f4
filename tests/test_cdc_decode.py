"""Values decoded from the binary log equal what a SELECT of the same row gives, per type.

Each row is written once, then read back twice: with a SELECT (converted as the source
reader's VALUE CONTRACT converts it: ``contract_value`` below) and from the binary log
(``chariot.cdc.reader`` with ``chariot.cdc.decode``). Needs a server with the binary log on:
tests/cdc_support.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.cdc.decode import ZERO_DATE, decode_value
from chariot.cdc.position import current_position
from chariot.cdc.reader import read_transactions
from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.project.column_types import parse_source_type
from chariot.streams import Column, Stream

pytestmark = pytest.mark.integration

# (column type as the project writes it, DDL type, PostgreSQL type, values as SQL literals)
TYPES: list[tuple[str, str, str, list[str]]] = [
    ("set('b','a','c')", "set('b','a','c')", "text[]", ["'c,a'", "''", "'a,b,c'", "'b'"]),
    ("year", "year", "smallint", ["0", "1901", "2155", "2024"]),
    (
        "timestamp(3)",
        "timestamp(3) NULL",
        "timestamptz",
        # written in a +05:30 session: the first and last instants a TIMESTAMP holds
        ["'2024-01-01 00:00:00.123'", "'1970-01-01 05:30:01'", "'2038-01-19 08:44:07.999'"],
    ),
    ("float", "float", "real", ["0.1", "3.4028234e38", "123456789", "1.17549435e-38", "-0"]),
    ("double", "double", "double precision", ["0.1", "-1.7976931348623157e308", "1e-300"]),
    (
        "datetime(6)",
        "datetime(6)",
        "timestamp",
        ["'2024-01-02 03:04:05.000007'", "'1000-01-01'", "'9999-12-31 23:59:59.999999'"],
    ),
    ("datetime(1)", "datetime(1)", "timestamp", ["'2024-01-02 03:04:05.9'"]),
    ("datetime", "datetime", "timestamp", ["'2024-01-02 03:04:05'"]),
    ("date", "date", "date", ["'2024-02-29'", "'1000-01-01'", "'9999-12-31'"]),
    (
        "time(6)",
        "time(6)",
        "interval",
        ["'-838:59:59.000001'", "'-00:00:00.5'", "'838:59:59'", "'-00:00:01.25'", "'00:00:00'"],
    ),
    ("time(1)", "time(1)", "interval", ["'-12:00:00.1'", "'-00:00:00.9'"]),
    ("time", "time", "interval", ["'-838:59:59'", "'12:34:56'"]),
    ("bit(1)", "bit(1)", "boolean", ["1", "0"]),
    ("bit(9)", "bit(9)", "bigint", ["257", "0", "511"]),
    ("bit(64)", "bit(64)", "numeric(20)", ["18446744073709551615", "1"]),
    ("blob", "blob", "bytea", ["x'00ff00'", "''", "'abc'"]),
    ("longblob", "longblob", "bytea", ["x'c3'", "''"]),
    ("binary(4)", "binary(4)", "bytea", ["x'0100'", "''", "x'ffffffff'"]),
    ("varbinary(5)", "varbinary(5)", "bytea", ["x'00000000'", "''"]),
    ("json", "json", "jsonb", ["'{\"a\": [1, 2.50]}'", "'\"x\"'", "'[]'"]),
    ("decimal(7,3)", "decimal(7,3)", "numeric(7,3)", ["-1234.5", "0", "9999.999", "-0.001"]),
    ("decimal(30,10)", "decimal(30,10)", "numeric(30,10)", ["-12345678901234567890.0123456789"]),
    ("enum('x','y')", "enum('x','y')", "text", ["'x'", "'y'"]),
    ("int unsigned", "int unsigned", "bigint", ["4294967295", "0", "2147483648"]),
    (
        "bigint unsigned",
        "bigint unsigned",
        "numeric(20)",
        ["18446744073709551615", "9223372036854775808"],
    ),
    ("tinyint unsigned", "tinyint unsigned", "smallint", ["255", "128"]),
    ("smallint unsigned", "smallint unsigned", "integer", ["65535", "32768"]),
    ("mediumint unsigned", "mediumint unsigned", "integer", ["16777215", "8388608"]),
    ("bigint", "bigint", "bigint", ["-9223372036854775808", "9223372036854775807"]),
    ("tinyint(1)", "tinyint(1)", "boolean", ["1", "0"]),
    ("tinyint(1)", "tinyint(1)", "smallint", ["-5", "1"]),
    ("varchar(20)", "varchar(20)", "text", ["'n\\0ul '", "''", "'é😀'"]),
    ("char(5)", "char(5)", "text", ["'ab '", "'é'", "''"]),
    ("text", "text", "text", ["'line\\nbreak\\ttab'", "''"]),
    ("varchar(10)", "varchar(10) CHARACTER SET latin1", "text", ["'é'"]),
    ("tinytext", "tinytext", "text", ["'t'", "''"]),
    ("mediumtext", "mediumtext", "text", ["'m\\0'"]),
    ("longtext", "longtext", "text", ["REPEAT('é', 70000)"]),
    ("tinyblob", "tinyblob", "bytea", ["x'00'", "''"]),
    ("mediumblob", "mediumblob", "bytea", ["x'ff00ff'"]),
    ("char(3)", "char(3) COLLATE utf8mb4_bin", "text", ["'a  '", "' a'"]),
    ("enum('a b','c''d')", "enum('a b','c''d')", "text", ["'c''d'", "'not a member'"]),
    ("set('x y','z')", "set('x y','z')", "text[]", ["'z,x y'"]),
    ("json", "json", "jsonb", ['\'{"k": "é\\\\u00e9", "n": null}\'']),
    ("decimal(5,0)", "decimal(5,0)", "numeric(5,0)", ["-99999", "12345"]),
    ("decimal(4,2) unsigned", "decimal(4,2) unsigned", "numeric(4,2)", ["99.99", "0.5"]),
    (
        "uuid",
        "uuid",
        "uuid",
        [
            "'123e4567-e89b-12d3-a456-426614174000'",
            "'f47ac10b-58cc-4372-a567-0e02b2c3d479'",
            "'00000000-0000-0000-0000-000000000000'",
        ],
    ),
]


def contract_value(value: Any, column: Column) -> Any:
    """A SELECT value (pymysql, session time zone UTC) as the source reader yields it."""
    if value is None:
        return None
    parsed = parse_source_type(column.source_type)
    if parsed.name == "set":
        chosen = set(value.split(",")) if value else set()
        return [member for member in parsed.members if member in chosen]
    if parsed.name == "bit":
        number = int.from_bytes(value, "big")
        return number == 1 if parsed.size == 1 else number
    if parsed.name in ("date", "datetime", "timestamp") and isinstance(value, str):
        return ZERO_DATE  # pymysql gives '0000-00-00' as text
    if parsed.name == "timestamp":
        return value.replace(tzinfo=dt.UTC)
    if parsed.is_tinyint1 and column.postgres == "boolean":
        return bool(value)
    if parsed.name == "uuid":
        return str(value)
    return value


def roundtrip(
    settings: MySQLSettings, columns: list[tuple[str, str, str]], rows: list[list[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Create table t(id, c0, c1 ...), insert ``rows`` (SQL literals) in one transaction,
    return (SELECT rows in contract form, rows decoded from the log)."""
    stream_columns = [Column("id", "id", "int", source_type="int", postgres="integer")] + [
        Column(f"c{i}", f"c{i}", "text", nullable=True, source_type=t, postgres=pg)
        for i, (t, _, pg) in enumerate(columns)
    ]
    stream = Stream("t", "t", tuple(stream_columns), key=("id",))
    ddl = ", ".join(f"c{i} {ddl}" for i, (_, ddl, _) in enumerate(columns))
    connection = mysql_connect(settings, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00', sql_mode = ''")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, {ddl})")
            cursor.execute("DELETE FROM t")
            start = current_position(connection)
            # another session time zone for the write: TIMESTAMP must not depend on it
            cursor.execute("SET time_zone = '+05:30'")
            cursor.execute("BEGIN")
            for number, row in enumerate(rows):
                cursor.execute(f"INSERT INTO t VALUES ({number}, {', '.join(row)})")
            cursor.execute("COMMIT")
            end = current_position(connection)
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute("SELECT * FROM t ORDER BY id")
            selected = [
                {c.source: contract_value(v, c) for c, v in zip(stream_columns, r, strict=True)}
                for r in cursor.fetchall()
            ]
    finally:
        connection.close()
    logged = [
        change.after
        for transaction in read_transactions(settings, [stream], start, stop_at=end)
        for change in transaction.changes
        if change.kind == "insert" and change.after is not None
    ]
    return selected, logged


def test_every_type_decodes_to_what_select_gives(binlog_mysql: MySQLSettings) -> None:
    columns = [(t, ddl, pg) for t, ddl, pg, _ in TYPES]
    width = max(len(values) for *_, values in TYPES)
    rows = [
        [values[i] if i < len(values) else "NULL" for *_, values in TYPES] for i in range(width)
    ]
    rows.append(["NULL"] * len(TYPES))
    selected, logged = roundtrip(binlog_mysql, columns, rows)
    assert len(logged) == len(selected) == len(rows)
    for want, got in zip(selected, logged, strict=True):
        for index, (source_type, _, postgres, _) in enumerate(TYPES):
            name = f"c{index}"
            assert got[name] == want[name], (source_type, postgres, want[name], got[name])
            assert type(got[name]) is type(want[name]), (source_type, want[name], got[name])


def test_zero_dates_and_empty_sets_are_told_from_null(binlog_mysql: MySQLSettings) -> None:
    columns = [
        ("date", "date", "date"),
        ("datetime", "datetime", "timestamp"),
        ("timestamp", "timestamp NULL", "timestamptz"),
        ("set('a','b')", "set('a','b')", "text[]"),
    ]
    rows = [["'0000-00-00'", "'0000-00-00 00:00:00'", "'0000-00-00 00:00:00'", "''"]]
    rows.append(["NULL"] * 4)
    _, logged = roundtrip(binlog_mysql, columns, rows)
    assert [logged[0][f"c{i}"] for i in range(4)] == [ZERO_DATE, ZERO_DATE, ZERO_DATE, []]
    assert [logged[1][f"c{i}"] for i in range(4)] == [None, None, None, None]


def test_unsigned_values_logged_signed_are_made_unsigned() -> None:
    # A log without signedness metadata gives an unsigned column's high values negative.
    assert decode_value(-1, "bigint unsigned") == 18446744073709551615
    assert decode_value(-128, "tinyint unsigned") == 128
    assert decode_value(-1, "int") == -1


def test_mysql_binary_json_is_printed_as_mysql_prints_it() -> None:
    # MySQL 8 logs JSON in its binary form, which the library parses (keys may be bytes).
    parsed = {b"a": [1, 2.5, None, True], b"\xc3\xa9": {"x": "y"}}
    assert decode_value(parsed, "json") == '{"a": [1, 2.5, null, true], "é": {"x": "y"}}'


def test_negative_time_fraction_is_corrected() -> None:
    # What the library hands over for -00:00:01.25 (checked against the server above).
    logged = -dt.timedelta(seconds=1, microseconds=750000)
    assert decode_value(logged, "time(2)") == -dt.timedelta(seconds=1, microseconds=250000)
    assert decode_value(-dt.timedelta(seconds=3), "time") == -dt.timedelta(seconds=3)


NUMERIC = {
    "int": st.integers(-(2**31), 2**31 - 1),
    "int unsigned": st.integers(0, 2**32 - 1),
    "bigint unsigned": st.integers(0, 2**64 - 1),
    "smallint": st.integers(-(2**15), 2**15 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=32),
    "double": st.floats(allow_nan=False, allow_infinity=False),
    "decimal(12,4)": st.decimals(
        min_value=Decimal("-99999999.9999"), max_value=Decimal("99999999.9999"), places=4
    ),
    "varchar(30)": st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
    "time(6)": st.timedeltas(
        min_value=-dt.timedelta(hours=838, minutes=59, seconds=59),
        max_value=dt.timedelta(hours=838, minutes=59, seconds=59),
    ),
}
POSTGRES = {"varchar(30)": "text", "time(6)": "interval"}


def _literal(value: Any) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0")
        return f"'{escaped}'"
    if isinstance(value, dt.timedelta):
        sign = "-" if value < dt.timedelta(0) else ""
        micros = abs(value) // dt.timedelta(microseconds=1)
        seconds, fraction = divmod(micros, 1_000_000)
        hours, rest = divmod(seconds, 3600)
        return f"'{sign}{hours}:{rest // 60:02}:{rest % 60:02}.{fraction:06}'"
    return repr(value) if isinstance(value, float) else str(value)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.fixed_dictionaries(NUMERIC), min_size=1, max_size=8))
def test_generated_values_decode_to_what_select_gives(
    binlog_mysql: MySQLSettings, rows: list[dict[str, Any]]
) -> None:
    columns = [(name, name, POSTGRES.get(name, "numeric")) for name in NUMERIC]
    literals = [[_literal(row[name]) for name in NUMERIC] for row in rows]
    selected, logged = roundtrip(binlog_mysql, columns, literals)
    assert logged == selected


def test_update_images_are_decoded_each_with_its_own_none_sources(
    binlog_mysql: MySQLSettings,
) -> None:
    stream = Stream(
        "t",
        "t",
        (
            Column("id", "id", "int", source_type="int", postgres="integer"),
            Column(
                "s", "s", "text[]", nullable=True, source_type="set('a','b')", postgres="text[]"
            ),
        ),
        key=("id",),
    )
    connection = mysql_connect(binlog_mysql, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id int PRIMARY KEY, s set('a','b'))")
            cursor.execute("INSERT INTO t VALUES (1, ''), (2, 'b,a')")
            start = current_position(connection)
            cursor.execute("UPDATE t SET s = CASE id WHEN 1 THEN 'b' ELSE NULL END")
            cursor.execute("UPDATE t SET s = '' WHERE id = 2")
            end = current_position(connection)
    finally:
        connection.close()
    changes = [
        (c.before, c.after)
        for t in read_transactions(binlog_mysql, [stream], start, stop_at=end)
        for c in t.changes
    ]
    assert changes == [
        ({"id": 1, "s": []}, {"id": 1, "s": ["b"]}),
        ({"id": 2, "s": ["a", "b"]}, {"id": 2, "s": None}),
        ({"id": 2, "s": None}, {"id": 2, "s": []}),
    ]
