"""A seed's unit of work: fill staging copies of the four source tables, then swap them in.

Why staging + ``RENAME TABLE`` rather than TRUNCATE + load: TRUNCATE commits implicitly,
so readers (a running ``sync``) would see empty or half-loaded tables; DELETE + reload in
one transaction keeps them readable but is slow and bloats the undo log at millions of
rows. Loading into ``<table>__chariot_new`` and renaming all four tables in one statement
keeps the old complete data readable until the instant the new complete data replaces
it, and an interrupted seed leaves the live tables untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.errors import ConfigError, ConnectionFailed, DataError
from chariot.seed.loading import CsvLayout, LoadMethod, load_csv
from chariot.seed.source_schema import (
    SOURCE_TABLES,
    STAGING_SUFFIX,
    create_staging_tables,
    drop_work_tables,
    swap_in,
)

CONNECTION_LOST = {2006, 2013, 2055}


@contextmanager
def mysql_errors(settings: MySQLSettings) -> Iterator[None]:
    """Turn driver errors of a seed step into one-line Chariot errors."""
    import pymysql

    try:
        yield
    except pymysql.err.MySQLError as error:
        code = error.args[0] if error.args else None
        text = str(error.args[-1]) if error.args else str(error)
        where = f"MySQL source at {settings.display_url()}"
        if code in CONNECTION_LOST:
            raise ConnectionFailed(f"{where}: connection lost: {text}") from error
        raise DataError(f"{where}: seeding failed: {text}") from error


def require_mysql(settings: MySQLSettings) -> None:
    if not settings.is_mysql:
        raise ConfigError(
            f"seeding needs a MySQL/MariaDB source, CHARIOT_MYSQL__URL is {settings.display_url()}"
        )


class StagedLoad:
    """Context manager: staging tables on enter, dropped again if the block fails."""

    def __init__(self, settings: MySQLSettings, method: LoadMethod = LoadMethod.auto) -> None:
        self.settings = settings
        self.requested = method
        insert_only = method is LoadMethod.insert
        self.method_used = LoadMethod.insert if insert_only else LoadMethod.load_data
        self.rows: dict[str, int] = {table.name: 0 for table in SOURCE_TABLES}
        self.table_seconds: dict[str, float] = {table.name: 0.0 for table in SOURCE_TABLES}
        self.connection: Any = None

    def __enter__(self) -> StagedLoad:
        self.connection = mysql_connect(self.settings)
        try:
            with mysql_errors(self.settings), self.connection.cursor() as cursor:
                create_staging_tables(cursor)
            self.connection.commit()
        except BaseException:
            self.connection.close()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        try:
            if exc_type is not None:
                self._discard()
        finally:
            self.connection.close()

    def load_file(
        self, table: str, path: Path, layout: CsvLayout, *, expected: int | None = None
    ) -> int:
        """Append the CSV's rows to the staging copy of ``table``; returns rows loaded.

        ``expected``: rows the file holds (known for generated files); a difference is an error.
        """
        started = time.perf_counter()
        staging = table + STAGING_SUFFIX
        with mysql_errors(self.settings), self.connection.cursor() as cursor:
            rows = self._load(cursor, staging, path, layout)
            self.connection.commit()
        if expected is not None and rows != expected:
            raise DataError(f"{path.name}: loaded {rows:,} rows into {table}, not {expected:,}")
        self.rows[table] += rows
        elapsed = self.table_seconds[table] + time.perf_counter() - started
        self.table_seconds[table] = round(elapsed, 3)
        return rows

    def swap_in(self) -> dict[str, int]:
        with mysql_errors(self.settings), self.connection.cursor() as cursor:
            swap_in(cursor)
            self.connection.commit()
        return dict(self.rows)

    def _load(self, cursor: Any, staging: str, path: Path, layout: CsvLayout) -> int:
        # Once the server refused LOAD DATA, later files go straight to INSERTs.
        method = LoadMethod.insert if self.method_used is LoadMethod.insert else self.requested
        rows, self.method_used = load_csv(cursor, staging, path, layout, method)
        return rows

    def _discard(self) -> None:
        """Best effort: drop the staging tables of a failed seed (the live ones are untouched)."""
        try:
            self.connection.rollback()
            with self.connection.cursor() as cursor:
                drop_work_tables(cursor)
        except Exception:  # noqa: BLE001,S110 - the original error is the one to report
            pass
