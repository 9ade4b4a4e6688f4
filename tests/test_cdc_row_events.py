"""The planned row-event parse (``chariot.cdc.row_events``) yields exactly what the
library's own parse yields: the same log read twice, once each way, value for value and
type for type, with the same reasons for each None. Needs a server with the binary log on:
tests/cdc_support.py."""

from __future__ import annotations

from typing import Any

import pytest

from chariot.cdc import row_events
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import _open_stream
from chariot.config import MySQLSettings
from tests.cdc_support import execute, log_position

pytestmark = pytest.mark.integration

# Every type the plan covers, with edge values (as SQL literals) and NULL.
PLANNED = [
    ("tinyint", ["-128", "127", "0"]),
    ("tinyint unsigned", ["255", "0"]),
    ("smallint", ["-32768", "32767"]),
    ("smallint unsigned", ["65535"]),
    ("mediumint", ["-8388608", "8388607", "-1"]),
    ("mediumint unsigned", ["16777215", "8388608"]),
    ("int", ["-2147483648", "2147483647"]),
    ("int unsigned", ["4294967295", "2147483648"]),
    ("bigint", ["-9223372036854775808", "9223372036854775807"]),
    ("bigint unsigned", ["18446744073709551615", "9223372036854775808"]),
    ("float", ["0.1", "-3.4028234e38", "-0"]),
    ("double", ["0.1", "-1.7976931348623157e308", "1e-300"]),
    ("decimal(2,1)", ["3.5", "-0.5", "0"]),
    ("decimal(7,3)", ["-1234.5", "9999.999", "-0.001"]),
    ("decimal(30,10)", ["-12345678901234567890.0123456789", "1.5"]),
    ("decimal(18,9)", ["-999999999.999999999", "0.000000001"]),
    ("decimal(5,0)", ["-99999", "12345"]),
    ("decimal(4,2) unsigned", ["99.99", "0.5"]),
    ("varchar(20)", ["'n\\0ul '", "''", "'é😀'"]),
    ("varchar(300)", ["REPEAT('x', 299)", "'é'"]),
    ("char(5)", ["'ab '", "'é'", "''"]),
    ("varchar(10) CHARACTER SET latin1", ["'é'", "'a'"]),
    ("text", ["'line\\nbreak'", "''"]),
    ("tinytext", ["'t'"]),
    ("mediumtext", ["'m\\0'"]),
    ("longtext", ["REPEAT('é', 70000)"]),
    ("blob", ["x'00ff00'", "''"]),
    ("tinyblob", ["x'00'"]),
    ("mediumblob", ["x'ff00ff'"]),
    ("longblob", ["x'c3'", "''"]),
    ("binary(4)", ["x'0100'", "''", "x'ffffffff'"]),
    ("varbinary(5)", ["x'00000000'", "''"]),
    ("date", ["'2024-02-29'", "'1000-01-01'", "'9999-12-31'", "'0000-00-00'"]),
    ("datetime", ["'2024-01-02 03:04:05'", "'0000-00-00 00:00:00'"]),
    ("datetime(1)", ["'2024-01-02 03:04:05.9'"]),
    ("datetime(3)", ["'1000-01-01 00:00:00.001'", "'9999-12-31 23:59:59.999'"]),
    ("datetime(6)", ["'2024-01-02 03:04:05.000007'", "'9999-12-31 23:59:59.999999'"]),
    ("timestamp NULL", ["'2024-01-01 00:00:00'", "'0000-00-00 00:00:00'"]),
    ("timestamp(3) NULL", ["'2024-01-01 00:00:00.123'", "'2038-01-19 03:14:07.999'"]),
    ("timestamp(5) NULL", ["'1970-01-01 00:00:01.00001'"]),
    ("year", ["0", "1901", "2155"]),
]

LIBRARY_KINDS = ("WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent")


def _library_kind(event: Any) -> str:
    """The library's event class a (planned) row event is."""
    return next(kind.__name__ for kind in type(event).__mro__ if kind.__name__ in LIBRARY_KINDS)


_DATE = next(index for index, (kind, _) in enumerate(PLANNED) if kind == "date")


def _rows(settings: MySQLSettings, start: LogPosition, end: LogPosition) -> list[Any]:
    """(event class name, rows) of every row event between ``start`` and ``end``."""
    stream = _open_stream(settings, ["t"], start, follow=False, server_id=None)
    found = []
    try:
        for event in stream:
            if hasattr(event, "rows"):
                found.append((_library_kind(event), event.rows))
            if LogPosition(stream.log_file, int(stream.log_pos)).reached(end):
                break
    finally:
        stream.close()
    return found


def _typed(rows: Any) -> Any:
    """Values with their types: 1 == 1.0 == True must not pass for the same value."""
    if isinstance(rows, dict):
        return {key: _typed(value) for key, value in rows.items()}
    if isinstance(rows, list | tuple):
        return [_typed(value) for value in rows]
    return (type(rows).__name__, rows)


def _write_every_change(settings: MySQLSettings) -> tuple[LogPosition, LogPosition]:
    ddl = ", ".join(f"c{i} {kind}" for i, (kind, _) in enumerate(PLANNED))
    width = max(len(values) for _, values in PLANNED)
    rows = [[values[n % len(values)] for _, values in PLANNED] for n in range(width)]
    rows.append(["NULL"] * len(PLANNED))
    execute(settings, "SET SESSION sql_mode = ''", f"CREATE TABLE t (id int PRIMARY KEY, {ddl})")
    start = log_position(settings)
    inserts = [f"INSERT INTO t VALUES ({n}, {', '.join(row)})" for n, row in enumerate(rows)]
    execute(
        settings,
        "SET SESSION sql_mode = ''",
        *inserts,
        # A multi-row update (before and after images) and a multi-row delete.
        f"UPDATE t SET id = id + 100, c0 = NULL, c{_DATE} = '2000-01-01' WHERE id < {width}",
        "DELETE FROM t WHERE id >= 100",
        # Small rows: several to an event.
        "INSERT INTO t (id, c0, c12) VALUES (200, 1, 1.5), (201, -1, -2.5), (202, NULL, NULL)",
        "UPDATE t SET c12 = c12 + 1, c0 = NULL",
        "DELETE FROM t",
    )
    return start, log_position(settings)


def test_planned_rows_equal_the_librarys(
    binlog_mysql: MySQLSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    start, end = _write_every_change(binlog_mysql)
    before = row_events.planned_events()
    planned = _rows(binlog_mysql, start, end)
    assert row_events.planned_events() - before == len(planned)
    with monkeypatch.context() as patched:
        patched.setattr(row_events, "_planned_rows", lambda event, images: None)
        library = _rows(binlog_mysql, start, end)
    kinds = [kind for kind, _ in library]
    assert {"WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"} <= set(kinds)
    assert sum(len(rows) for _, rows in library) > len(kinds)  # multi-row events too
    assert _typed(planned) == _typed(library)


def test_the_plan_is_used_for_covered_tables_only(binlog_mysql: MySQLSettings) -> None:
    execute(binlog_mysql, "CREATE TABLE t (id int PRIMARY KEY, s set('a','b'), d decimal(2,1))")
    start = log_position(binlog_mysql)
    execute(binlog_mysql, "INSERT INTO t VALUES (1, 'a', 1.5), (2, '', NULL)")
    end = log_position(binlog_mysql)
    # SET is left to the library, so the whole table is: still the same rows.
    before = row_events.planned_events()
    rows = _rows(binlog_mysql, start, end)
    assert row_events.planned_events() == before
    assert [row["values"] for row in rows[0][1]] == [
        {"id": 1, "s": {"a"}, "d": pytest.approx(1.5)},
        {"id": 2, "s": None, "d": None},
    ]
    assert rows[0][1][1]["none_sources"] == {"s": "empty set", "d": "null"}


def test_rows_of_fixed_width_columns_only_equal_the_librarys(
    binlog_mysql: MySQLSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read with one unpack per row when no value is NULL (``RowPlan.whole``), else per column.
    execute(
        binlog_mysql,
        "CREATE TABLE t (id int PRIMARY KEY, a tinyint, b smallint unsigned,"
        " c bigint unsigned, d float, e double, f bigint)",
    )
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        "INSERT INTO t VALUES (1, -128, 65535, 18446744073709551615, 0.1, -1e-300, -1),"
        " (2, NULL, 0, 0, NULL, 2.5, NULL), (3, 127, 1, 9223372036854775808, -0, 0, 7)",
        "UPDATE t SET d = d + 1, id = id + 10",
        "DELETE FROM t",
    )
    end = log_position(binlog_mysql)
    planned = _rows(binlog_mysql, start, end)
    with monkeypatch.context() as patched:
        patched.setattr(row_events, "_planned_rows", lambda event, images: None)
        library = _rows(binlog_mysql, start, end)
    assert len(planned) == 3
    assert _typed(planned) == _typed(library)
