"""Log positions: text form, order, and the position a consistent snapshot lines up with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariot.cdc.position import LogPosition, current_position, snapshot_position
from chariot.cdc.reader import read_transactions
from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.streams import Column, Stream
from tests.cdc_support import execute

FILES = st.from_regex(r"[a-z][a-z0-9_-]{0,12}\.[0-9]{6}", fullmatch=True)
GTIDS = st.one_of(
    st.just(""),
    st.from_regex(r"[0-9]{1,3}-[0-9]{1,5}-[0-9]{1,9}", fullmatch=True),  # MariaDB
    st.from_regex(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}:[0-9]{1,9}", fullmatch=True),  # MySQL
)


@given(FILES, st.integers(4, 2**32 - 1), GTIDS)
def test_positions_render_and_parse_back(file: str, offset: int, gtid: str) -> None:
    position = LogPosition(file, offset, gtid)
    assert LogPosition.parse(position.render()) == position


def test_positions_order_by_file_number_then_offset() -> None:
    assert LogPosition("binlog.000010", 4).reached(LogPosition("binlog.000009", 900))
    assert not LogPosition("binlog.000002", 100).reached(LogPosition("binlog.000002", 101))
    assert LogPosition("binlog.000002", 101).reached(LogPosition("binlog.000002", 101))


@pytest.mark.parametrize("text", ["", "binlog.000001", "binlog.000001:x", "a:1 gtid="])
def test_other_text_is_not_a_position(text: str) -> None:
    with pytest.raises(ValueError):
        LogPosition.parse(text)


@pytest.mark.integration
def test_the_snapshot_position_splits_the_log_exactly(binlog_mysql: MySQLSettings) -> None:
    """Rows committed before the snapshot are in it; the log from its position holds
    exactly the later ones."""
    stream = Stream(
        "items",
        "items",
        (Column("id", "id", "int", source_type="int", postgres="integer"),),
        key=("id",),
    )
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY)", "INSERT INTO items VALUES (1)")
    snapshot = mysql_connect(binlog_mysql)
    try:
        position = snapshot_position(snapshot)
        execute(binlog_mysql, "INSERT INTO items VALUES (2)")  # after the snapshot
        with snapshot.cursor() as cursor:
            cursor.execute("SELECT id FROM items ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == [1]
        snapshot.commit()
        end = current_position(snapshot)
    finally:
        snapshot.close()
    later = list(read_transactions(binlog_mysql, [stream], position, stop_at=end))
    assert [[c.after for c in t.changes] for t in later] == [[{"id": 2}]]
