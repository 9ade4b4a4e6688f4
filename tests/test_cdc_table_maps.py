"""Table-map events parsed once per table definition (``chariot.cdc.table_maps``): a log of
one statement per row reuses one parse, and a changed definition (a column added, mid-log)
is parsed afresh, so every row still decodes with its own table's columns."""

from __future__ import annotations

import pytest

from chariot.cdc import table_maps
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import read_transactions
from chariot.config import MySQLSettings
from tests.cdc_support import ITEMS, execute, log_position

pytestmark = pytest.mark.integration


def _rows(settings: MySQLSettings, start: LogPosition) -> list[tuple[str, object, object]]:
    seen = read_transactions(settings, [ITEMS], start, stop_at=log_position(settings))
    return [
        (change.kind, (change.before or {}).get("label"), (change.after or {}).get("label"))
        for transaction in seen
        for change in transaction.changes
    ]


def test_one_parse_per_table_definition(binlog_mysql: MySQLSettings) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        *(f"INSERT INTO items VALUES ({n}, 'v{n}')" for n in range(30)),
        *(f"UPDATE items SET label = 'w{n}' WHERE id = {n}" for n in range(30)),
        "DELETE FROM items WHERE id < 30",
    )
    before = table_maps.cache_counts()
    rows = _rows(binlog_mysql, start)
    assert rows[:2] == [("insert", None, "v0"), ("insert", None, "v1")]
    assert rows[30:32] == [("update", "v0", "w0"), ("update", "v1", "w1")]
    assert rows[60:] == [("delete", f"w{n}", None) for n in range(30)]
    after = table_maps.cache_counts()
    # 61 statements, each with its table map: one parse (or none if another test's reader
    # parsed these same bytes), the rest reused.
    assert after["parses"] - before["parses"] <= 1
    assert after["hits"] - before["hits"] >= 60


def test_a_changed_definition_is_parsed_afresh(binlog_mysql: MySQLSettings) -> None:
    """Same table id or not, different bytes: the added column is seen and the project's
    columns decode from the right positions (the label moved from 2nd to 3rd here)."""
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        "INSERT INTO items VALUES (1, 'a')",
        "INSERT INTO items VALUES (2, 'b')",
        "ALTER TABLE items ADD COLUMN note varchar(20) NULL FIRST",
        "INSERT INTO items (id, label, note) VALUES (3, 'c', 'n')",
        "UPDATE items SET label = 'd', note = 'm' WHERE id = 1",
    )
    before = table_maps.cache_counts()
    assert _rows(binlog_mysql, start) == [
        ("insert", None, "a"),
        ("insert", None, "b"),
        ("insert", None, "c"),
        ("update", "a", "d"),
    ]
    assert table_maps.cache_counts()["parses"] - before["parses"] >= 1


def test_the_cache_is_used_by_the_reader() -> None:
    from pymysqlreplication.constants import BINLOG
    from pymysqlreplication.packet import BinLogPacketWrapper

    table_maps.install()
    table_maps.install()  # idempotent
    events = BinLogPacketWrapper._BinLogPacketWrapper__event_map  # type: ignore[attr-defined]
    assert events[BINLOG.TABLE_MAP_EVENT] is table_maps.CachedTableMapEvent
