"""MySQL's Sakila sample database, loaded into a test's own database.

The schema file creates and uses a database named ``sakila``; ``load_sakila`` rewrites those
lines (and the ``sakila.`` prefixes inside one view) to the test's database, then runs both
files through pymysql, statement by statement, honouring ``DELIMITER`` the way the
``mariadb`` client does. Versioned comments (``/*!50705 ... */``) go to the server as
written: MySQL 5.7+ runs them (the ``address.location`` GEOMETRY column), MariaDB skips them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect

SAKILA_DIR = Path(
    os.environ.get(
        "CHARIOT_SAKILA_DIR", Path(__file__).resolve().parents[1].parent / "shared/data/sakila"
    )
)

# From the README next to the files: exact row counts after loading on MariaDB 10.11.
ROW_COUNTS = {
    "actor": 200,
    "address": 603,
    "category": 16,
    "city": 600,
    "country": 109,
    "customer": 599,
    "film": 1000,
    "film_actor": 5462,
    "film_category": 1000,
    "film_text": 1000,
    "inventory": 4581,
    "language": 6,
    "payment": 16049,
    "rental": 16044,
    "staff": 2,
    "store": 2,
}
VIEWS = (
    "actor_info",
    "customer_list",
    "film_list",
    "nicer_but_slower_film_list",
    "sales_by_film_category",
    "sales_by_store",
    "staff_list",
)

_DELIMITER_LINE = re.compile(r"^DELIMITER[ \t]+(\S+)[ \t]*$", re.MULTILINE | re.IGNORECASE)
# What can hide a delimiter: quoted text, identifiers and comments (versioned ones included).
_OPAQUE = r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`[^`]*`|--[^\n]*|#[^\n]*|/\*.*?\*/"
_COMMENTS = re.compile(r"--[^\n]*|#[^\n]*|/\*(?!!).*?\*/", re.DOTALL)


def sakila_script(name: str, database: str) -> str:
    """``sakila-schema.sql`` or ``sakila-data.sql``, aimed at ``database``."""
    text = (SAKILA_DIR / name).read_text(encoding="utf-8")
    text = re.sub(r"^(DROP SCHEMA IF EXISTS|CREATE SCHEMA) sakila;$", "", text, flags=re.M)
    text = re.sub(r"^USE sakila;$", f"USE `{database}`;", text, flags=re.MULTILINE)
    return re.sub(r"\bsakila\.", f"`{database}`.", text)


def statements(script: str) -> Iterator[str]:
    """The statements of a mysql-client script, without DELIMITER lines or empty ones."""
    delimiter, position = ";", 0
    for match in [*_DELIMITER_LINE.finditer(script), None]:
        end = match.start() if match else len(script)
        yield from _split(script[position:end], delimiter)
        if match:
            delimiter, position = match.group(1), match.end()


def _split(chunk: str, delimiter: str) -> Iterator[str]:
    token = re.compile(_OPAQUE + "|" + re.escape(delimiter), re.DOTALL)
    start = 0
    for match in token.finditer(chunk):
        if match.group() == delimiter:
            yield from _nonempty(chunk[start : match.start()])
            start = match.end()
    yield from _nonempty(chunk[start:])


def _nonempty(statement: str) -> Iterator[str]:
    if _COMMENTS.sub("", statement).strip():
        yield statement.strip()


def load_sakila(settings: MySQLSettings) -> None:
    """Schema and data into ``settings.database`` (which must exist and be empty)."""
    connection = mysql_connect(settings, autocommit=True)
    try:
        with connection.cursor() as cursor:
            for name in ("sakila-schema.sql", "sakila-data.sql"):
                for statement in statements(sakila_script(name, settings.database)):
                    cursor.execute(statement)
    finally:
        connection.close()


def add_location_column(settings: MySQLSettings) -> None:
    """``address.location GEOMETRY``, as MySQL 5.7+'s Sakila has it (MariaDB skipped it)."""
    connection = mysql_connect(settings, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_NAME = 'address' AND COLUMN_NAME = 'location'"
            )
            row = cursor.fetchone()
            if row is not None and not row[0]:
                cursor.execute("ALTER TABLE address ADD COLUMN location GEOMETRY NULL")
    finally:
        connection.close()


def row_counts(settings: MySQLSettings) -> dict[str, int]:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            counts = {}
            for table in ROW_COUNTS:
                cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
                row = cursor.fetchone()
                counts[table] = int(row[0]) if row else -1
            return counts
    finally:
        connection.close()
