"""Where the test servers come from: the environment, else testcontainers, else skip.

``CHARIOT_REQUIRE_SERVICES=1`` (set by ``make test`` and CI) turns every such skip into a
failure, so an integration test can never silently not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from chariot.config import MySQLSettings, Neo4jSettings, PostgresSettings

REQUIRE = os.environ.get("CHARIOT_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


@dataclass
class Servers:
    mysql: MySQLSettings
    postgres: PostgresSettings
    neo4j: Neo4jSettings
    origin: str


def unavailable(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"CHARIOT_REQUIRE_SERVICES is set but {reason}", pytrace=False)
    pytest.skip(reason)


def from_environment() -> Servers | None:
    """Servers named by CHARIOT_* variables (what `make test` and CI export)."""
    if not any(
        key in os.environ
        for key in ("CHARIOT_MYSQL__HOST", "CHARIOT_POSTGRES__HOST", "CHARIOT_NEO4J__URI")
    ):
        return None
    from chariot.config import load_settings

    settings = load_settings()
    return Servers(settings.mysql, settings.postgres, settings.neo4j, origin="environment")


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def from_testcontainers(stack: list[object]) -> Servers:
    """Start MySQL 8.4, PostgreSQL 16 and Neo4j 5.26 containers (kept for the session)."""
    from pydantic import SecretStr
    from testcontainers.mysql import MySqlContainer
    from testcontainers.neo4j import Neo4jContainer
    from testcontainers.postgres import PostgresContainer

    mysql = MySqlContainer(
        "mysql:8.4", username="root", password="chariot-mysql", dbname="movielens"
    )
    mysql.with_command("--local-infile=1 --binlog-row-metadata=FULL")  # change capture
    postgres = PostgresContainer(
        "postgres:16", username="chariot", password="chariot-postgres", dbname="chariot"
    )
    neo4j = Neo4jContainer("neo4j:5.26-community", password="chariot-neo4j")
    for container in (mysql, postgres, neo4j):
        container.start()
        stack.append(container)
    return Servers(
        MySQLSettings(
            host=mysql.get_container_host_ip(),
            port=int(mysql.get_exposed_port(3306)),
            user="root",
            password=SecretStr("chariot-mysql"),
            database="movielens",
        ),
        PostgresSettings(
            host=postgres.get_container_host_ip(),
            port=int(postgres.get_exposed_port(5432)),
            user="chariot",
            password=SecretStr("chariot-postgres"),
            database="chariot",
        ),
        Neo4jSettings(
            uri=neo4j.get_connection_url(), user="neo4j", password=SecretStr("chariot-neo4j")
        ),
        origin="testcontainers",
    )
