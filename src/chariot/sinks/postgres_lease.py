"""The PostgreSQL sink's writer lease and load markers, shared with ``chariot aggregate``.

The lease is a session advisory lock per schema and table. A load marker (a row of
``_chariot_loads``) stands while a table's first copy or full refresh is under way, and
goes when the sink holds the whole table: readers that need a complete table (the
aggregation) refuse a half-loaded one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOADS = "_chariot_loads"

LOADS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}." + LOADS + " ("
    " table_name text PRIMARY KEY, owner text, started_at timestamptz)"
)


@dataclass(frozen=True)
class LoadInProgress:
    table: str
    owner: str | None  # who started it
    started_at: datetime | None
    holder: str | None  # who holds the table's lease now (None: the load was interrupted)


def lock_key(schema: str, table: str) -> str:
    return f"chariot:{schema}.{table}"


def lock_holder(connection: Any, key: str) -> str | None:
    """The application_name of the session holding the advisory lock ``key``, if any."""
    row = connection.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid = ((hashtext(%s)::bigint >> 32) & 4294967295)::oid"
        " AND l.objid = (hashtext(%s)::bigint & 4294967295)::oid LIMIT 1",
        (key, key),
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def loads_in_progress(connection: Any, schema: str, tables: list[str]) -> list[LoadInProgress]:
    """The tables among ``tables`` whose first copy or full refresh has not finished."""
    from psycopg import sql

    found = connection.execute("SELECT to_regclass(%s)", (f'"{schema}"."{LOADS}"',)).fetchone()
    if not found or found[0] is None:
        return []
    query = sql.SQL(
        "SELECT table_name, owner, started_at FROM {}.{} WHERE table_name = ANY(%s) ORDER BY 1"
    ).format(sql.Identifier(schema), sql.Identifier(LOADS))
    return [
        LoadInProgress(table, owner, started, lock_holder(connection, lock_key(schema, table)))
        for table, owner, started in connection.execute(query, (tables,)).fetchall()
    ]
