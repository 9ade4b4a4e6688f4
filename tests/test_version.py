"""`chariot --version`, and with -v before it the drivers' and the servers' versions."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chariot import __version__
from chariot.config import MySQLSettings, Neo4jSettings, PostgresSettings, RunSettings, Settings
from chariot.status import DRIVERS, server_versions
from tests.conftest import settings_env
from tests.servers import Servers

CLOSED_PORTS = {
    "CHARIOT_MYSQL__PORT": "1",
    "CHARIOT_POSTGRES__PORT": "1",
    "CHARIOT_NEO4J__URI": "bolt://127.0.0.1:1",
}


def test_plain_version_is_one_line(cli: Any) -> None:
    result = cli("--version", env=CLOSED_PORTS)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"chariot {__version__}"]


def test_verbose_version_names_every_driver(cli: Any) -> None:
    result = cli("-v", "--version", env=CLOSED_PORTS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"chariot {__version__}"
    for driver in DRIVERS:
        assert any(line.startswith(f"driver {driver} ") for line in lines), (driver, lines)
    assert not any(line.startswith("server ") for line in lines)  # none reachable: none shown


def test_verbose_version_with_bad_settings_still_succeeds(cli: Any) -> None:
    result = cli("-v", "--version", env={"CHARIOT_RUN__BATCH_SIZE": "0"})
    assert result.exit_code == 0, result.output
    assert "driver pymysql" in result.stdout


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_servers_that_do_not_answer_are_left_out_after_the_deadline(silent_port: int) -> None:
    settings = Settings(
        mysql=MySQLSettings(port=silent_port),
        postgres=PostgresSettings(port=silent_port),
        neo4j=Neo4jSettings(uri=f"bolt://127.0.0.1:{silent_port}"),
        run=RunSettings(),
    )
    started = time.monotonic()
    assert server_versions(settings, timeout=1.0) == {}
    # Each driver alone would wait its 10 s connection timeout.
    assert time.monotonic() - started < 6


@pytest.mark.integration
def test_verbose_version_names_the_reachable_servers(cli: Any, servers: Servers) -> None:
    settings = Settings(
        mysql=servers.mysql, postgres=servers.postgres, neo4j=servers.neo4j, run=RunSettings()
    )
    result = cli("-v", "--version", env=settings_env(settings))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("server mysql MySQL-compatible ") for line in lines), lines
    assert any(line.startswith("server postgres PostgreSQL ") for line in lines), lines
    assert any(line.startswith("server neo4j Neo4j ") for line in lines), lines
