"""The MySQL source schema: the four MovieLens tables, kept as data in this one place.

Non-key columns are nullable on purpose: real sources contain bad rows that ``sync`` must
report, not refuse at load time. ``tags.tag`` uses a binary collation so that tags that
differ only in letter case are distinct keys and key order is code-point order in MySQL,
PostgreSQL and Python alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect

if TYPE_CHECKING:
    import pymysql.cursors

TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"

# Suffixes of the tables a seed loads into before swapping them in (see ``swap_in``).
STAGING_SUFFIX = "__chariot_new"
RETIRED_SUFFIX = "__chariot_old"


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, type and nullability)
    key: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self, table_name: str | None = None) -> str:
        columns = [f"`{name}` {definition}" for name, definition in self.columns]
        columns.append("PRIMARY KEY (" + ", ".join(f"`{k}`" for k in self.key) + ")")
        body = ",\n  ".join(columns)
        return f"CREATE TABLE `{table_name or self.name}` (\n  {body}\n) {TABLE_OPTIONS}"


SOURCE_TABLES: tuple[SourceTable, ...] = (
    SourceTable(
        "movies",
        (
            ("movieId", "INT NOT NULL"),
            ("title", "VARCHAR(255) NULL"),
            ("genres", "VARCHAR(255) NULL"),
        ),
        key=("movieId",),
    ),
    SourceTable(
        "links",
        (("movieId", "INT NOT NULL"), ("imdbId", "VARCHAR(20) NULL"), ("tmdbId", "INT NULL")),
        key=("movieId",),
    ),
    SourceTable(
        "ratings",
        (
            ("userId", "INT NOT NULL"),
            ("movieId", "INT NOT NULL"),
            ("rating", "DECIMAL(2,1) NULL"),
            ("timestamp", "BIGINT NULL"),
        ),
        key=("userId", "movieId"),
    ),
    SourceTable(
        "tags",
        (
            ("userId", "INT NOT NULL"),
            ("movieId", "INT NOT NULL"),
            ("tag", "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
            ("timestamp", "BIGINT NULL"),
        ),
        key=("userId", "movieId", "tag"),
    ),
)
SOURCE_TABLES_BY_NAME = {table.name: table for table in SOURCE_TABLES}


def create_source_tables(settings: MySQLSettings, *, replace: bool = False) -> list[str]:
    """Create the four MovieLens tables in the source database (empty, if missing).

    ``replace`` drops existing ones first. Returns the table names.
    """
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            for table in SOURCE_TABLES:
                if replace:
                    cursor.execute(f"DROP TABLE IF EXISTS `{table.name}`")
                cursor.execute(table.ddl().replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        connection.commit()
    finally:
        connection.close()
    return [table.name for table in SOURCE_TABLES]


def create_staging_tables(cursor: pymysql.cursors.Cursor) -> None:
    """Fresh, empty ``<table>__chariot_new`` tables; leftovers of an interrupted seed go first."""
    drop_work_tables(cursor)
    for table in SOURCE_TABLES:
        cursor.execute(table.ddl(table.name + STAGING_SUFFIX))


def drop_work_tables(cursor: pymysql.cursors.Cursor) -> None:
    names = [t.name + suffix for t in SOURCE_TABLES for suffix in (STAGING_SUFFIX, RETIRED_SUFFIX)]
    cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{name}`" for name in names))


def swap_in(cursor: pymysql.cursors.Cursor) -> None:
    """Replace the live tables by the staging ones in ONE atomic ``RENAME TABLE``.

    Readers see the old complete data until the rename and the new complete data after it;
    there is no moment with empty or half-loaded tables (unlike TRUNCATE, which commits
    implicitly, or DELETE + reload, which is slow and bloats the undo log).
    """
    cursor.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    )
    existing = {str(row[0]) for row in cursor.fetchall()}
    renames: list[str] = []
    for table in SOURCE_TABLES:
        if table.name in existing:
            renames.append(f"`{table.name}` TO `{table.name}{RETIRED_SUFFIX}`")
        renames.append(f"`{table.name}{STAGING_SUFFIX}` TO `{table.name}`")
    cursor.execute("RENAME TABLE " + ", ".join(renames))
    drop_work_tables(cursor)
