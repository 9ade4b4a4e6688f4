"""Any MySQL schema into PostgreSQL, typed as an analytics user would (issue #10, item 3):
Sakila, a user's small shop schema and a table of awkward values, each made a project with
`chariot init` and synced into PostgreSQL only, then compared row by row, column by column,
with the source read independently (pymysql, converted here per type, not by Chariot)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.config import MySQLSettings, PostgresSettings, RunSettings, Settings
from chariot.connections import mysql_connect, postgres_connection
from chariot.project import Project, load_project
from chariot.project.column_types import parse_source_type
from chariot.project.init import init_project
from chariot.project.model import Column as ProjectColumn
from chariot.project.outputs import table_outputs
from chariot.project.streams import project_streams
from chariot.sync import sync
from chariot.sync.results import SyncResult
from tests.sakila import ROW_COUNTS, load_sakila
from tests.servers import Servers
from tests.sync_support import mysql_execute, rejects

pytestmark = pytest.mark.integration


# -- reading both sides ------------------------------------------------------------------------


def expected_value(column: ProjectColumn, value: Any) -> Any:
    """A source value as pymysql returns it -> what PostgreSQL must hold, as psycopg reads it."""
    if value is None:
        return None
    source = parse_source_type(column.type)
    if source.name == "set":
        return value.split(",") if value else []
    if source.name == "timestamp":
        return value.replace(tzinfo=UTC)  # read in a '+00:00' session
    if source.name == "bit":
        number = int.from_bytes(value, "big")
        return number != 0 if column.postgres == "boolean" else number
    if column.postgres == "boolean":
        return bool(value)
    if column.postgres == "jsonb":
        return json.loads(value)  # psycopg reads jsonb as Python values
    return value


def postgres_value(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def source_table_rows(
    mysql: MySQLSettings, project: Project, name: str, skip: Collection[Any] = ()
) -> dict[Any, tuple[Any, ...]]:
    """key -> the row as PostgreSQL must hold it (the outputs' order), but for ``skip``."""
    table = project.tables[name]
    sources = list(table.columns)
    outputs = table_outputs(table)
    connection = mysql_connect(mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute(
                f"SELECT {', '.join(f'`{c}`' for c in sources)} FROM `{project.source_table(name)}`"
            )
            rows = cursor.fetchall()
    finally:
        connection.close()
    expected = {}
    for row in rows:
        values = dict(zip(sources, row, strict=True))
        key = tuple(values[k] for k in table.key)
        if key in skip:
            continue
        expected[key] = tuple(
            expected_value(table.columns[o.origin], values[o.origin]) for o in outputs
        )
    return expected


def postgres_table_rows(
    postgres: PostgresSettings, project: Project, name: str
) -> dict[Any, tuple[Any, ...]]:
    table = project.tables[name]
    outputs = [o.name for o in table_outputs(table)]
    positions = [outputs.index(key) for key in table.key]  # init's projects rename nothing
    columns = ", ".join(f'"{c}"' for c in outputs)
    with postgres_connection(postgres) as connection:
        rows = connection.execute(
            f'SELECT {columns} FROM "{postgres.schema_name}"."{name}"'
        ).fetchall()
    return {tuple(row[i] for i in positions): tuple(postgres_value(v) for v in row) for row in rows}


def assert_tables_equal(
    settings: Settings, project: Project, skip: dict[str, set[Any]] | None = None
) -> None:
    """Every table: the same keys, and per key the same value in every column."""
    for name in project.tables:
        source = source_table_rows(settings.mysql, project, name, (skip or {}).get(name, set()))
        target = postgres_table_rows(settings.postgres, project, name)
        assert sorted(target) == sorted(source), f"keys of {name}"
        outputs = [o.name for o in table_outputs(project.tables[name])]
        for key, row in source.items():
            for column, want, got in zip(outputs, row, target[key], strict=True):
                assert got == want, f"{name} {key} {column}: {got!r} != {want!r}"


def postgres_types(postgres: PostgresSettings, table: str) -> dict[str, tuple[str, bool]]:
    """column -> (format_type, NOT NULL)."""
    with postgres_connection(postgres) as connection:
        rows = connection.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
            " FROM pg_attribute a WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)"
            "::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (postgres.schema_name, table),
        ).fetchall()
    return {name: (type_, not_null) for name, type_, not_null in rows}


def init_and_sync(settings: Settings, directory: Path) -> tuple[Project, SyncResult]:
    path = directory / "chariot.toml"
    init_project(settings, path=path)
    project = load_project(path)
    result = sync(settings, sinks=["postgres"], streams=project_streams(project))
    return project, result


# -- Sakila --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sakila_synced(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Project, SyncResult]]:
    """Sakila in a database of this module's own, synced into a schema of its own."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        settings = Settings(
            mysql=servers.mysql.model_copy(update={"database": name}),
            postgres=servers.postgres.model_copy(update={"schema_name": name}),
            neo4j=servers.neo4j,
            run=RunSettings(),
        )
        load_sakila(settings.mysql)
        project, result = init_and_sync(settings, tmp_path_factory.mktemp("sakila"))
        yield settings, project, result
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
        with postgres_connection(servers.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_sakila_syncs_every_table_without_a_reject(
    sakila_synced: tuple[Settings, Project, SyncResult],
) -> None:
    _, project, result = sakila_synced
    assert result.ok, result.failures
    assert set(project.tables) == set(ROW_COUNTS)
    written = {
        t.table: (t.rows_read, t.rows_rejected, t.sinks[0].rows_written) for t in result.tables
    }
    assert written == {name: (count, 0, count) for name, count in ROW_COUNTS.items()}


def test_sakila_row_counts_in_postgres_are_the_readmes(
    sakila_synced: tuple[Settings, Project, SyncResult],
) -> None:
    settings, project, _ = sakila_synced
    counts = {
        name: len(postgres_table_rows(settings.postgres, project, name)) for name in ROW_COUNTS
    }
    assert counts == ROW_COUNTS


def test_sakila_every_row_equals_the_source_column_by_column(
    sakila_synced: tuple[Settings, Project, SyncResult],
) -> None:
    settings, project, _ = sakila_synced
    assert_tables_equal(settings, project)


# (table, column, PostgreSQL type as format_type writes it, NOT NULL)
SAKILA_POSTGRES_TYPES = [
    ("payment", "amount", "numeric(5,2)", True),
    ("rental", "rental_date", "timestamp without time zone", True),
    ("rental", "return_date", "timestamp without time zone", False),
    ("rental", "last_update", "timestamp with time zone", True),
    ("film", "last_update", "timestamp with time zone", True),
    ("film", "special_features", "text[]", False),
    ("film", "release_year", "smallint", False),
    ("film", "rating", "text", False),
    ("film", "rental_rate", "numeric(4,2)", True),
    ("film", "film_id", "integer", True),  # smallint unsigned, widened
    ("staff", "picture", "bytea", False),
    ("staff", "active", "boolean", True),
    ("category", "category_id", "smallint", True),  # tinyint unsigned
    ("customer", "create_date", "timestamp without time zone", True),
]


def test_sakila_postgres_types_are_the_mapped_ones(
    sakila_synced: tuple[Settings, Project, SyncResult],
) -> None:
    settings, _, _ = sakila_synced
    found = [
        (table, column, *postgres_types(settings.postgres, table)[column])
        for table, column, *_ in SAKILA_POSTGRES_TYPES
    ]
    assert found == [tuple(row) for row in SAKILA_POSTGRES_TYPES]


def test_sakila_values_of_the_new_types(
    sakila_synced: tuple[Settings, Project, SyncResult],
) -> None:
    """A few values spelt out, so a conversion shared by both sides cannot hide a mistake."""
    settings, project, _ = sakila_synced
    film = postgres_table_rows(settings.postgres, project, "film")
    columns = [o.name for o in table_outputs(project.tables["film"])]
    first = dict(zip(columns, film[(1,)], strict=True))
    assert first["special_features"] == ["Deleted Scenes", "Behind the Scenes"]
    assert first["release_year"] == 2006
    assert first["rating"] == "PG"
    assert first["rental_rate"] == Decimal("0.99")
    assert first["last_update"] == datetime(2006, 2, 15, 5, 3, 42, tzinfo=UTC)
    staff = postgres_table_rows(settings.postgres, project, "staff")
    columns = [o.name for o in table_outputs(project.tables["staff"])]
    mike = dict(zip(columns, staff[(1,)], strict=True))
    assert mike["active"] is True
    assert isinstance(mike["picture"], bytes) and mike["picture"].startswith(b"\x89PNG")


def test_source_sessions_read_timestamps_in_utc(mysql_settings: MySQLSettings) -> None:
    from chariot.connections import source_engine

    engine = source_engine(mysql_settings)
    try:
        with engine.connect() as connection:
            zone = connection.exec_driver_sql("SELECT @@session.time_zone").scalar()
    finally:
        engine.dispose()
    assert zone == "+00:00"
    connection = mysql_connect(mysql_settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@session.time_zone")
            assert cursor.fetchone() == ("+00:00",)
    finally:
        connection.close()


# -- a user's own shop -------------------------------------------------------------------------

SHOP = (
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL,"
    " email VARCHAR(200) NULL)",
    "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL,"
    " total DECIMAL(10,2) NOT NULL, created_at DATETIME NOT NULL,"
    " FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE order_items (order_id INT NOT NULL, line_no INT NOT NULL,"
    " sku VARCHAR(40) NOT NULL, qty INT NOT NULL, PRIMARY KEY (order_id, line_no),"
    " FOREIGN KEY (order_id) REFERENCES orders (id))",
    (
        "INSERT INTO customers VALUES (%s, %s, %s)",
        [(1, "Ada", "ada@example.com"), (2, "Zoë 'Quote' \\ Back", None), (3, "  spaced  ", "")],
    ),
    (
        "INSERT INTO orders VALUES (%s, %s, %s, %s)",
        [
            (10, 1, "99999999.99", "2024-02-29 23:59:59"),
            (11, 1, "-0.01", "1000-01-01 00:00:00"),
            (12, 2, "0.00", "9999-12-31 23:59:59"),
        ],
    ),
    (
        "INSERT INTO order_items VALUES (%s, %s, %s, %s)",
        [(10, 1, "SKU-1", 2), (10, 2, "SKU-2", -1), (11, 1, "é", 2147483647), (12, 7, "", 0)],
    ),
)


def test_a_users_shop_schema_syncs_exactly(sql_settings: Settings, tmp_path: Path) -> None:
    mysql_execute(sql_settings.mysql, *SHOP)
    project, result = init_and_sync(sql_settings, tmp_path)
    assert result.ok, result.failures
    assert sorted(project.tables) == ["customers", "order_items", "orders"]
    assert_tables_equal(sql_settings, project)
    orders = postgres_types(sql_settings.postgres, "orders")
    assert orders["total"] == ("numeric(10,2)", True)
    assert orders["created_at"] == ("timestamp without time zone", True)
    items = postgres_table_rows(sql_settings.postgres, project, "order_items")
    assert items[(10, 2)] == (10, 2, "SKU-2", -1)


# -- awkward values ------------------------------------------------------------------------------

ODDITIES = (
    "CREATE TABLE oddities (id INT PRIMARY KEY, day DATE NULL, at DATETIME NULL,"
    " stamp TIMESTAMP NULL DEFAULT NULL, tags SET('red','green','blue') NOT NULL DEFAULT '',"
    " big BIGINT UNSIGNED NULL, span TIME NULL, doc JSON NULL, flag BIT(1) NULL,"
    " bits BIT(12) NULL, active TINYINT(1) NULL, raw VARBINARY(16) NULL)"
)
ODDITY_ROWS = [
    # id, day, at, stamp, tags, big, span, doc, flag, bits, active, raw
    (
        1,
        "2024-02-29",
        "2024-02-29 23:59:59",
        "2038-01-19 03:14:07",
        "blue,red",
        1,
        "12:34:56",
        '{"b": [1, 2.5, "\u00e9"], "a": null}',
        b"\x01",
        b"\x0a\xaa",
        1,
        b"\x00\xff",
    ),
    (2, "0000-00-00", None, None, "", None, None, None, None, None, None, None),
    (3, None, None, None, "", None, None, None, None, None, 0, None),
    (
        4,
        None,
        None,
        None,
        "green",
        18446744073709551615,
        "-838:59:59",
        "[]",
        b"\x00",
        None,
        None,
        b"",
    ),
    (
        5,
        None,
        None,
        None,
        "red,green,blue",
        0,
        "838:59:59",
        '"text"',
        None,
        b"\x0f\xff",
        None,
        None,
    ),
    (6, None, "2020-00-15 10:00:00", None, "", None, None, None, None, None, None, None),
    (7, None, None, None, "", None, None, '{"nul": "\\u0000"}', None, None, None, None),
    (8, None, None, "0000-00-00 00:00:00", "", None, None, None, None, None, None, None),
    (
        9,
        "1000-01-01",
        "1000-01-01 00:00:00",
        "1970-01-01 00:00:01",
        "",
        None,
        "00:00:00",
        "{}",
        None,
        None,
        None,
        None,
    ),
]


def _load_oddities(settings: Settings) -> None:
    connection = mysql_connect(settings.mysql, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")  # zero dates, as old servers allowed
            cursor.execute(ODDITIES)
            cursor.executemany(
                f"INSERT INTO oddities VALUES ({', '.join(['%s'] * 12)})", ODDITY_ROWS
            )
    finally:
        connection.close()


def test_awkward_values_load_or_are_rejects_with_their_reason(
    sql_settings: Settings, tmp_path: Path
) -> None:
    _load_oddities(sql_settings)
    project, result = init_and_sync(sql_settings, tmp_path)
    assert result.ok, result.failures
    columns = project.tables["oddities"].columns
    assert {name: c.postgres for name, c in columns.items()} == {
        "id": "integer",
        "day": "date",
        "at": "timestamp",
        "stamp": "timestamptz",
        "tags": "text[]",
        "big": "numeric(20)",
        "span": "interval",
        "doc": "jsonb",
        "flag": "boolean",
        "bits": "bigint",
        "active": "boolean",
        "raw": "bytea",
    }
    found = {key: reason for (table, key), reason in rejects(sql_settings.postgres).items()}
    assert found.pop("[2]") == "zero date in `day`"
    assert found.pop("[6]") == "zero year, month or day in `at`"
    assert found.pop("[8]") == "zero date in `stamp`"
    assert found.pop("[7]").startswith("PostgreSQL cannot store it:")
    assert found == {}
    assert_tables_equal(sql_settings, project, skip={"oddities": {(2,), (6,), (7,), (8,)}})
    rows = postgres_table_rows(sql_settings.postgres, project, "oddities")
    names = [o.name for o in table_outputs(project.tables["oddities"])]
    spelt = {key: dict(zip(names, row, strict=True)) for key, row in rows.items()}
    assert spelt[(1,)]["tags"] == ["red", "blue"]  # the set's member order
    assert spelt[(1,)]["stamp"] == datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
    assert spelt[(1,)]["bits"] == 0xAAA and spelt[(1,)]["flag"] is True
    assert spelt[(3,)]["tags"] == [] and spelt[(3,)]["active"] is False
    assert spelt[(4,)]["big"] == Decimal("18446744073709551615")
    assert spelt[(4,)]["span"].total_seconds() == -(838 * 3600 + 59 * 60 + 59)
    assert spelt[(4,)]["flag"] is False and spelt[(4,)]["raw"] == b""
    assert spelt[(1,)]["doc"] == {"a": None, "b": [1, 2.5, "\u00e9"]}


def test_a_repair_may_hand_the_sink_the_drivers_rows(
    sql_settings: Settings, tmp_path: Path
) -> None:
    """``upsert_rows`` (audit --repair) with rows read by pymysql itself: a SET as 'a,b', a
    TIMESTAMP naive, a BIT as bytes land as a sync lands them."""
    from chariot.sinks.postgres import PostgresSink

    mysql_execute(sql_settings.mysql, ODDITIES)
    good = [row for row in ODDITY_ROWS if row[0] in (1, 3, 4, 5, 9)]
    mysql_execute(
        sql_settings.mysql, (f"INSERT INTO oddities VALUES ({', '.join(['%s'] * 12)})", good)
    )
    project, result = init_and_sync(sql_settings, tmp_path)
    assert result.ok, result.failures
    stream = project_streams(project)[0]
    with postgres_connection(sql_settings.postgres, autocommit=True) as connection:
        connection.execute(f'TRUNCATE "{sql_settings.postgres.schema_name}".oddities')
    connection = mysql_connect(sql_settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {', '.join(stream.source_columns)} FROM oddities")
            raw = list(cursor.fetchall())
    finally:
        connection.close()
    with PostgresSink(sql_settings) as sink:
        assert sink.upsert_rows(stream, raw) == len(good)
    assert_tables_equal(sql_settings, project)


@pytest.mark.skipif(
    not __import__("chariot.sources.sql", fromlist=["x"]).mysqlclient_installed(),
    reason="mysqlclient (chariot[fast]) is not installed",
)
def test_both_drivers_read_the_same_values_and_rejects(
    sql_settings: Settings, tmp_path: Path
) -> None:
    """The fast driver (mysqlclient) and PyMySQL hand the sinks the same batches: the same
    rows, value for value and type for type, the same rejects, the same marks."""
    from chariot.sources.sql import SqlSource

    _load_oddities(sql_settings)
    path = tmp_path / "chariot.toml"
    init_project(sql_settings, path=path)
    (stream,) = [s for s in project_streams(load_project(path)) if s.name == "oddities"]

    def batches(fast: bool) -> list[Any]:
        mysql = sql_settings.mysql.model_copy(update={"fast_driver": fast})
        with SqlSource(sql_settings.model_copy(update={"mysql": mysql})) as source:
            assert source.engine.driver == ("mysqldb" if fast else "pymysql")
            return [
                (
                    [[(type(v), v) for v in row] for row in batch.rows],
                    batch.rejects,
                    batch.last_key,
                )
                for batch in source.read(stream, after=None, batch_size=3)
            ]

    fast, default = batches(True), batches(False)
    assert fast == default
    assert sum(len(rows) for rows, _, _ in fast) == len(ODDITY_ROWS) - 3  # 3 zero-date rejects


def test_a_zero_date_in_a_key_is_one_reject(sql_settings: Settings, tmp_path: Path) -> None:
    """MariaDB answers `day IS NULL` with true for '0000-00-00' in a NOT NULL date column:
    such a key is not a NULL key, and the row is rejected once, as a zero date."""
    connection = mysql_connect(sql_settings.mysql, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = ''")
            cursor.execute("CREATE TABLE days (day DATE NOT NULL PRIMARY KEY, n INT NOT NULL)")
            cursor.execute("INSERT INTO days VALUES ('0000-00-00', 1), ('2020-01-01', 2)")
    finally:
        connection.close()
    project, result = init_and_sync(sql_settings, tmp_path)
    assert result.ok, result.failures
    assert (result.tables[0].rows_read, result.tables[0].rows_rejected) == (2, 1)
    assert list(rejects(sql_settings.postgres).values()) == ["zero date in `day`"]
    assert_tables_equal(sql_settings, project, skip={"days": {("0000-00-00",)}})
