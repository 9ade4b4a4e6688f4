"""What the benchmarks share: their own source database and sink schema, and the Neo4j lock.

Every function takes the bench's settings (``settings.mysql.database`` and
``settings.postgres.schema_name`` name the bench's own database and schema), so two
benchmarks never touch each other's data, nor the demo's.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.conftest: the shared Neo4j lock and wipe

from chariot.config import Settings  # noqa: E402
from chariot.connections import mysql_connect, neo4j_session, postgres_connection  # noqa: E402
from tests.conftest import NEO4J_LOCK_PATH, wipe_graph  # noqa: E402


def create_database(settings: Settings) -> None:
    connection = mysql_connect(settings.mysql.model_copy(update={"database": ""}))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS `{settings.mysql.database}` CHARACTER SET utf8mb4"
            )
    finally:
        connection.close()


def drop_schema(settings: Settings, schema: str | None = None) -> None:
    name = schema or settings.postgres.schema_name
    with postgres_connection(settings.postgres, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def drop(settings: Settings) -> None:
    """The bench's source database and its PostgreSQL schema."""
    connection = mysql_connect(settings.mysql.model_copy(update={"database": ""}))
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{settings.mysql.database}`")
    finally:
        connection.close()
    drop_schema(settings)


def wipe(settings: Settings) -> None:
    """Relationships first, in bounded transactions: DETACH DELETE of 10,000 users at once
    (the test fixture's wipe) exceeds Neo4j's transaction memory pool at 1M ratings."""
    with neo4j_session(settings.neo4j) as session:
        session.run(
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 50000 ROWS"
        ).consume()
    wipe_graph(settings.neo4j)


def reset_sinks(settings: Settings) -> None:
    """Both sinks empty: the bench's schema dropped, the graph wiped (hold the lock)."""
    drop_schema(settings)
    wipe(settings)


@contextmanager
def neo4j_lock(settings: Settings) -> Iterator[None]:
    """The test suite's file lock (Community has one database): held while the bench uses
    the graph, which is wiped when it lets go."""
    with open(NEO4J_LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            wipe(settings)
