"""Helpers for the sync tests: seed the source, read every side back, compute what a sink
must hold from the source rows with the reference (Python) transforms."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from chariot.config import MySQLSettings, PostgresSettings
from chariot.connections import mysql_connect, postgres_connection
from chariot.streams import Stream
from tests.movielens_project import STREAMS_BY_NAME
from tests.movielens_rules import split_genres, title_year


def seed_movielens(mysql: MySQLSettings, directory: Path) -> None:
    from chariot.seed import seed_movielens as seed

    seed(mysql, directory)


def create_source_tables(mysql: MySQLSettings) -> None:
    from chariot.seed import create_source_tables as create

    create(mysql)


def mysql_execute(mysql: MySQLSettings, *statements: str | tuple[str, Any]) -> None:
    connection = mysql_connect(mysql)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                if isinstance(statement, tuple):
                    if statement[1] and isinstance(statement[1], list):
                        cursor.executemany(statement[0], statement[1])
                    else:
                        cursor.execute(*statement)
                else:
                    cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def source_rows(mysql: MySQLSettings, stream: Stream) -> list[tuple[Any, ...]]:
    """Every source row, in the source's key order (its collation decides)."""
    columns = ", ".join(f"`{name}`" for name in stream.source_columns)
    keys = ", ".join(f"`{name}`" for name in stream.key)
    connection = mysql_connect(mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {columns} FROM `{stream.source_table}` ORDER BY {keys}")
            return list(cursor.fetchall())
    finally:
        connection.close()


def postgres_rows(postgres: PostgresSettings, table: str) -> list[tuple[Any, ...]]:
    """A sink table's rows, sorted in Python (only for comparing as sets, not for order).
    A table not created yet holds no rows."""
    with postgres_connection(postgres) as connection:
        name = f'"{postgres.schema_name}"."{table}"'
        if connection.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
            return []
        rows = connection.execute(f'SELECT * FROM "{postgres.schema_name}"."{table}"').fetchall()
    return sorted(rows, key=repr)


def postgres_scalar(postgres: PostgresSettings, query: str, params: Any = None) -> Any:
    with postgres_connection(postgres) as connection:
        row = connection.execute(
            query.replace("{schema}", f'"{postgres.schema_name}"'), params
        ).fetchone()
    return row[0] if row else None


def expected_postgres(stream_name: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What the PostgreSQL table must hold for these (loadable) source rows."""
    if stream_name == "movies":
        shaped = [(m, t, split_genres(g), title_year(t)) for m, t, g in rows]
    elif stream_name == "ratings":
        shaped = [(u, m, Decimal(r), ts) for u, m, r, ts in rows]
    else:
        shaped = [tuple(row) for row in rows]
    return sorted(shaped, key=repr)


def checkpoints(postgres: PostgresSettings) -> dict[str, list[Any]]:
    with postgres_connection(postgres) as connection:
        name = f'"{postgres.schema_name}"._chariot_checkpoints'
        if connection.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is None:
            return {}
        rows = connection.execute(
            f'SELECT table_name, high_water_mark FROM "{postgres.schema_name}"._chariot_checkpoints'
        ).fetchall()
    return {name: json.loads(mark) for name, mark in rows}


def rejects(postgres: PostgresSettings) -> dict[tuple[str, str], str]:
    """(table, row_key as JSON text) -> reason."""
    with postgres_connection(postgres) as connection:
        rows = connection.execute(
            f'SELECT table_name, row_key, reason FROM "{postgres.schema_name}"._chariot_rejects'
        ).fetchall()
    return {(table, json.dumps(json.loads(key))): reason for table, key, reason in rows}


def assert_postgres_equals_source(
    mysql: MySQLSettings,
    postgres: PostgresSettings,
    tables: tuple[str, ...] = tuple(STREAMS_BY_NAME),
) -> None:
    for table in tables:
        expected = expected_postgres(table, source_rows(mysql, STREAMS_BY_NAME[table]))
        actual = postgres_rows(postgres, table)
        assert len(actual) == len(expected), f"{table}: {len(actual)} rows, source {len(expected)}"
        assert actual == expected, f"{table}: rows differ from the source"
