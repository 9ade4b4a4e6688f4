"""Whole source transactions from the binary log, filtered to the project's tables, resumable
from a stored position. Needs a server with the binary log on: tests/cdc_support.py."""

from __future__ import annotations

import threading

import pytest

from chariot.cdc.position import LogPosition
from chariot.cdc.reader import (
    Change,
    SchemaChanged,
    SourceTransaction,
    added_nullable_column,
    read_transactions,
    schema_change_table,
)
from chariot.config import MySQLSettings
from chariot.errors import SourceReadError
from tests.cdc_support import ITEMS, execute, log_position

pytestmark = pytest.mark.integration


def _read(settings: MySQLSettings, start: LogPosition) -> list[SourceTransaction]:
    return list(read_transactions(settings, [ITEMS], start, stop_at=log_position(settings)))


def _kinds(transactions: list[SourceTransaction]) -> list[list[tuple[str, object, object]]]:
    def key(row: dict[str, object] | None) -> object:
        return None if row is None else (row["id"], row["label"])

    return [[(c.kind, key(c.before), key(c.after)) for c in t.changes] for t in transactions]


def test_transactions_come_whole_in_commit_order(binlog_mysql: MySQLSettings) -> None:
    execute(
        binlog_mysql,
        "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
        "UPDATE items SET id = 20 WHERE id = 2",  # a key-changing update
        "INSERT INTO other VALUES (1)",  # not a project table: no transaction
        "DELETE FROM items WHERE id = 1",
        "BEGIN",
        "INSERT INTO items VALUES (3, 'three')",
        "INSERT INTO other VALUES (2)",
        "UPDATE items SET label = 'Three' WHERE id = 3",
        "COMMIT",
    )
    transactions = _read(binlog_mysql, start)
    assert _kinds(transactions) == [
        [("insert", None, (1, "one")), ("insert", None, (2, "two"))],
        [("update", (2, "two"), (20, "two"))],
        [("delete", (1, "one"), None)],
        [("insert", None, (3, "three")), ("update", (3, "three"), (3, "Three"))],
    ]
    assert all(c.table == "items" for t in transactions for c in t.changes)
    positions = [t.position for t in transactions]
    assert all(b.reached(a) and a != b for a, b in zip(positions, positions[1:], strict=False))
    assert all(t.gtid for t in transactions)  # MariaDB and MySQL 8 both log GTIDs


def test_resuming_from_a_stored_position_yields_exactly_the_later_ones(
    binlog_mysql: MySQLSettings,
) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        "INSERT INTO items VALUES (1, 'a')",
        "FLUSH BINARY LOGS",  # the next transactions are in the next file
        "INSERT INTO items VALUES (2, 'b')",
        "UPDATE items SET label = 'B' WHERE id = 2",
    )
    first = _read(binlog_mysql, start)
    assert len(first) == 3
    assert first[1].position.file != start.file  # crossed the rotation
    stored = LogPosition.parse(first[0].position.render())  # as a sink keeps it
    again = _read(binlog_mysql, stored)
    assert _kinds(again) == _kinds(first[1:])
    assert [t.position for t in again] == [t.position for t in first[1:]]
    assert _read(binlog_mysql, first[-1].position) == []


def test_stop_at_ends_the_read_there(binlog_mysql: MySQLSettings) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(binlog_mysql, "INSERT INTO items VALUES (1, 'a')")
    middle = log_position(binlog_mysql)
    execute(binlog_mysql, "INSERT INTO items VALUES (2, 'b')")
    read = list(read_transactions(binlog_mysql, [ITEMS], start, stop_at=middle))
    assert [t.changes for t in read] == [[Change("items", "insert", None, {"id": 1, "label": "a"})]]
    # Already there: nothing, not the transactions after the stop.
    assert list(read_transactions(binlog_mysql, [ITEMS], middle, stop_at=middle)) == []


def test_a_column_the_log_lacks_is_a_clear_error(binlog_mysql: MySQLSettings) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    execute(binlog_mysql, "ALTER TABLE items DROP COLUMN label")
    start = log_position(binlog_mysql)  # the project file is stale from the start
    execute(binlog_mysql, "INSERT INTO items VALUES (1)")
    with pytest.raises(SourceReadError) as raised:
        _read(binlog_mysql, start)
    assert "has no column 'label'" in str(raised.value)
    assert "chariot sync --full-refresh --table items" in (raised.value.hint or "")


def test_a_large_transaction_comes_whole(binlog_mysql: MySQLSettings) -> None:
    """Many rows in one transaction span several row events: still one transaction."""
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    values = ", ".join(f"({n}, 'label {n}')" for n in range(3000))
    execute(binlog_mysql, "BEGIN", f"INSERT INTO items VALUES {values}", "COMMIT")
    (transaction,) = _read(binlog_mysql, start)
    assert [c.after["id"] for c in transaction.changes if c.after] == list(range(3000))


def test_the_same_table_in_another_database_is_not_read(
    binlog_mysql: MySQLSettings, binlog_server: MySQLSettings
) -> None:
    other = f"{binlog_mysql.database}_other"
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    try:
        execute(
            binlog_server,
            f"CREATE DATABASE `{other}`",
            f"CREATE TABLE `{other}`.items (id int PRIMARY KEY, label varchar(20))",
            f"INSERT INTO `{other}`.items VALUES (1, 'elsewhere')",
        )
        execute(binlog_mysql, "INSERT INTO items VALUES (2, 'here')")
        assert _kinds(_read(binlog_mysql, start)) == [[("insert", None, (2, "here"))]]
    finally:
        execute(binlog_server, f"DROP DATABASE IF EXISTS `{other}`")


def test_following_waits_for_the_next_transaction(binlog_mysql: MySQLSettings) -> None:
    """With follow=True the reader blocks at the end of the log until a commit arrives (the
    writer may commit before or after the reader connects: either way it must be read)."""
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    writer = threading.Thread(
        target=execute, args=(binlog_mysql, "INSERT INTO items VALUES (7, 'later')")
    )
    transactions = read_transactions(binlog_mysql, [ITEMS], start, follow=True)
    writer.start()
    try:
        first = next(transactions)
    finally:
        transactions.close()  # closes the stream: no reader left blocked
        writer.join()
    assert _kinds([first]) == [[("insert", None, (7, "later"))]]


def test_one_phase_xa_is_a_transaction_and_two_phase_xa_is_refused(
    binlog_mysql: MySQLSettings,
) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    one, two = (f"{binlog_mysql.database}_{n}" for n in ("one", "two"))  # XIDs are server-wide
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        f"XA START '{one}'",
        "INSERT INTO items VALUES (1, 'one phase')",
        f"XA END '{one}'",
        f"XA COMMIT '{one}' ONE PHASE",
    )
    assert _kinds(_read(binlog_mysql, start)) == [[("insert", None, (1, "one phase"))]]
    execute(
        binlog_mysql,
        f"XA START '{two}'",
        "INSERT INTO items VALUES (2, 'two phase')",
        f"XA END '{two}'",
        f"XA PREPARE '{two}'",
        f"XA COMMIT '{two}'",
    )
    with pytest.raises(SourceReadError) as raised:
        _read(binlog_mysql, start)  # never silently without row 2
    assert "two-phase XA transaction" in str(raised.value)
    assert "--table items" in (raised.value.hint or "")


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE items ADD COLUMN extra int NOT NULL DEFAULT 0",
        "TRUNCATE TABLE items",
        "TRUNCATE items",
        "RENAME TABLE items TO items_old",
        "DROP TABLE items",
        "ALTER TABLE `items` DROP COLUMN label",
    ],
)
def test_a_schema_change_stops_reading_before_it(
    binlog_mysql: MySQLSettings, statement: str
) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(binlog_mysql, "INSERT INTO items VALUES (1, 'a')")
    before = log_position(binlog_mysql)
    execute(binlog_mysql, "CREATE TABLE unrelated (id int)", statement)
    seen: list[SourceTransaction] = []
    with pytest.raises(SchemaChanged) as raised:
        seen.extend(
            read_transactions(binlog_mysql, [ITEMS], start, stop_at=log_position(binlog_mysql))
        )
    assert _kinds(seen) == [[("insert", None, (1, "a"))]]  # everything before it, then stop
    error = raised.value
    assert error.table == "items"
    assert error.statement.split()[:2] == statement.split()[:2]  # the server may rewrite it
    # At or after the last commit read (other databases' commits move it on: the server is
    # shared), never past the statement.
    assert error.before.reached(seen[0].position) and error.before.reached(before)
    assert error.after.reached(error.before) and error.after != error.before
    assert statement.split()[0] in str(error)
    assert "chariot sync --full-refresh --table items" in (error.hint or "")
    # Past the statement (after a re-copy) reading goes on.
    assert list(read_transactions(binlog_mysql, [ITEMS], error.after)) == []


def test_an_added_nullable_column_does_not_stop_reading(binlog_mysql: MySQLSettings) -> None:
    """The project names its columns: a new nullable one changes nothing it reads."""
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    execute(
        binlog_mysql,
        "INSERT INTO items VALUES (1, 'a')",
        "ALTER TABLE items ADD COLUMN note decimal(5,2) NULL",
        "INSERT INTO items VALUES (2, 'b', 1.5)",
    )
    seen = list(read_transactions(binlog_mysql, [ITEMS], start, stop_at=log_position(binlog_mysql)))
    assert _kinds(seen) == [[("insert", None, (1, "a"))], [("insert", None, (2, "b"))]]


@pytest.mark.parametrize(
    ("statement", "benign"),
    [
        ("ALTER TABLE t ADD COLUMN note varchar(20) NULL", True),
        ("alter table t add x decimal(5,2)", True),
        ("ALTER TABLE t ADD COLUMN x int NOT NULL DEFAULT 0", False),
        ("ALTER TABLE t ADD x int, DROP y", False),
        ("ALTER TABLE t ADD UNIQUE KEY (x)", False),
        ("ALTER TABLE t ADD COLUMN x int AS (y + 1)", False),
        ("ALTER TABLE t DROP COLUMN y", False),
    ],
)
def test_only_one_added_nullable_column_is_benign(statement: str, benign: bool) -> None:
    assert added_nullable_column(statement) is benign


def test_a_schema_change_elsewhere_does_not_stop_reading(
    binlog_mysql: MySQLSettings, binlog_server: MySQLSettings
) -> None:
    other = f"{binlog_mysql.database}_x"
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(20))")
    start = log_position(binlog_mysql)
    try:
        execute(
            binlog_server,
            f"CREATE DATABASE `{other}`",
            f"CREATE TABLE `{other}`.items (id int)",
            f"ALTER TABLE `{other}`.items ADD COLUMN x int",
        )
        execute(
            binlog_mysql, "CREATE TABLE items_archive (id int)", "INSERT INTO items VALUES (1, 'a')"
        )
        assert _kinds(_read(binlog_mysql, start)) == [[("insert", None, (1, "a"))]]
    finally:
        execute(binlog_server, f"DROP DATABASE IF EXISTS `{other}`")


@pytest.mark.parametrize(
    ("statement", "default", "found"),
    [
        ("ALTER TABLE items ADD x int", "db", "items"),
        ("alter table `db`.`items` add x int", "other", "items"),
        ("ALTER TABLE db . items ADD x int", "other", "items"),
        ("ALTER TABLE items ADD x int", "other", None),  # other.items
        ("ALTER TABLE other.items ADD x int", "db", None),
        ("ALTER TABLE items_archive ADD x int", "db", None),
        ("RENAME TABLE a TO items, b TO c", "db", "items"),
        ("/* comment */ TRUNCATE items", "db", "items"),
        ("DROP DATABASE IF EXISTS `db`", "other", "*"),
        ("DROP DATABASE db2", "other", None),
        ("INSERT INTO items VALUES (1)", "db", None),  # DML is in row events
        ("CREATE TABLE x LIKE items", "db", "items"),  # conservative
    ],
)
def test_schema_changes_are_found_by_table_and_schema(
    statement: str, default: str, found: str | None
) -> None:
    assert schema_change_table(statement, default, "db", ["items"]) == found
