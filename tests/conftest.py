"""Shared fixtures: real servers, one fresh database/schema per test, a clean graph."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chariot.config import MySQLSettings, Neo4jSettings, PostgresSettings, RunSettings, Settings
from tests.cdc_servers import binlog_off_server, binlog_on_server  # noqa: F401 (fixtures)
from tests.cdc_support import binlog_mysql, binlog_server  # noqa: F401 (fixtures)
from tests.movielens_data import FIXTURE, find_movielens
from tests.servers import (
    REQUIRE,
    Servers,
    docker_available,
    from_environment,
    from_testcontainers,
    unavailable,
)

# Every MovieLens test reaches its tables through the example project, as a user would.
MOVIELENS_PROJECT = Path(__file__).resolve().parents[1] / "examples/movielens/chariot.toml"
os.environ.setdefault("CHARIOT_PROJECT", str(MOVIELENS_PROJECT))

NEO4J_LOCK_PATH = Path(tempfile.gettempdir()) / "chariot-neo4j-tests.lock"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    found = from_environment()
    if found is not None:
        yield found
        return
    if not docker_available():
        unavailable("no CHARIOT_* server variables and no Docker engine for testcontainers")
    containers: list[Any] = []
    try:
        yield from_testcontainers(containers)
    finally:
        for container in reversed(containers):
            container.stop()


@pytest.fixture
def mysql_settings(servers: Servers) -> Iterator[MySQLSettings]:
    """A fresh MySQL database for this test, dropped afterwards."""
    from chariot.connections import mysql_connect

    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        yield servers.mysql.model_copy(update={"database": name})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def postgres_settings(servers: Servers) -> Iterator[PostgresSettings]:
    """A fresh PostgreSQL schema for this test, dropped afterwards."""
    from chariot.connections import postgres_connection

    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    try:
        yield servers.postgres.model_copy(update={"schema_name": name})
    finally:
        with postgres_connection(servers.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def wipe_graph(settings: Neo4jSettings) -> None:
    """Community Neo4j has one user database: tests share it and leave it empty."""
    from chariot.connections import neo4j_session

    with neo4j_session(settings) as session:
        # Relationships first, in batches: DETACH DELETE of 10,000 nodes can mean millions of
        # relationships in one inner transaction (users with ~150 ratings each after a 1M
        # bench), past the transaction memory pool of a 1 GB heap.
        batched = "IN TRANSACTIONS OF 10000 ROWS"
        session.run(f"MATCH ()-[r]->() CALL (r) {{ DELETE r }} {batched}").consume()
        session.run(f"MATCH (n) CALL (n) {{ DETACH DELETE n }} {batched}").consume()
        for record in list(session.run("SHOW CONSTRAINTS YIELD name")):
            session.run(f"DROP CONSTRAINT `{record['name']}` IF EXISTS").consume()
        for record in list(session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP'")):
            session.run(f"DROP INDEX `{record['name']}` IF EXISTS").consume()


@pytest.fixture
def neo4j_settings(servers: Servers) -> Iterator[Neo4jSettings]:
    """The Neo4j database, empty before and after this test.

    Community Neo4j has a single user database, so concurrent test runs on one machine
    (two developers' pytest, or a bench) take turns through a file lock.
    """
    with open(NEO4J_LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wipe_graph(servers.neo4j)
        try:
            yield servers.neo4j
        finally:
            wipe_graph(servers.neo4j)


@pytest.fixture
def settings(
    mysql_settings: MySQLSettings,
    postgres_settings: PostgresSettings,
    neo4j_settings: Neo4jSettings,
) -> Settings:
    """Settings pointing at this test's own database, schema and a clean graph."""
    return Settings(
        mysql=mysql_settings, postgres=postgres_settings, neo4j=neo4j_settings, run=RunSettings()
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The CHARIOT_* variables that make a CLI invocation use ``settings``."""
    env: dict[str, str] = {}
    for section in ("mysql", "postgres", "neo4j"):
        model = getattr(settings, section)
        for key, value in model.model_dump().items():
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[f"CHARIOT_{section.upper()}__{key.upper()}"] = str(value)
    for key, value in settings.run.model_dump().items():
        env[f"CHARIOT_RUN__{key.upper()}"] = (
            ",".join(value) if isinstance(value, list) else str(value)
        )
    return env


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """Run ``chariot ARGS`` in-process with the given settings as environment variables."""
    from chariot.cli.app import app

    def invoke(
        *args: str, settings: Settings | None = None, env: dict[str, str] | None = None
    ) -> Any:
        monkeypatch.chdir(tmp_path)  # no stray ./.env from the developer's checkout
        variables = settings_env(settings) if settings is not None else {}
        variables.update(env or {})
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return invoke


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under CHARIOT_REQUIRE_SERVICES (make test, CI), missing MovieLens data stops the run
    before any test starts: one line, instead of a failure per test after the servers' work."""
    if not REQUIRE or not any(FIXTURE in getattr(item, "fixturenames", ()) for item in items):
        return
    data = find_movielens()
    if data.directory is None:
        raise pytest.UsageError(data.message)


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """ml-latest-small (see tests/movielens_data.py); without it the test skips, or fails
    under CHARIOT_REQUIRE_SERVICES."""
    data = find_movielens()
    if data.directory is None:
        if REQUIRE:
            pytest.fail(data.message, pytrace=False)
        pytest.skip(data.message)
    return data.directory


@pytest.fixture
def sql_settings(
    mysql_settings: MySQLSettings, postgres_settings: PostgresSettings, servers: Servers
) -> Settings:
    """Like ``settings`` for tests that never touch Neo4j: no graph lock, no wipe."""
    return Settings(
        mysql=mysql_settings, postgres=postgres_settings, neo4j=servers.neo4j, run=RunSettings()
    )
