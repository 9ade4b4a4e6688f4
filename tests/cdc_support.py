"""The MySQL/MariaDB server that change-capture tests read the binary log of.

The normal test server (CHARIOT_MYSQL__*) when its binary log is on, as `scripts/services.sh`
and compose.yaml start it. Otherwise the server that CHARIOT_CDC_MYSQL__HOST / __PORT /
__USER / __PASSWORD name (each defaults to the normal server's), e.g. a private one:

    CHARIOT_SERVICES_DIR=$PWD/.services-cdc CHARIOT_MYSQL__PORT=3317 scripts/services.sh up mariadb
    CHARIOT_CDC_MYSQL__PORT=3317 pytest tests/test_cdc_*.py

Without either the tests skip, or fail under CHARIOT_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.cdc.position import LogPosition, current_position
from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.streams import Column, Stream
from tests.servers import Servers, unavailable

_OVERRIDES = ("HOST", "PORT", "USER", "PASSWORD")


def _log_bin_on(settings: MySQLSettings) -> bool:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_row_metadata")
            log_bin, metadata = cursor.fetchone()
        return bool(int(log_bin)) and str(metadata).upper() == "FULL"
    finally:
        connection.close()


def _overridden(settings: MySQLSettings) -> MySQLSettings | None:
    values: dict[str, Any] = {}
    for key in _OVERRIDES:
        value = os.environ.get(f"CHARIOT_CDC_MYSQL__{key}")
        if value:
            converted: Any = {"PASSWORD": SecretStr, "PORT": int}.get(key, str)(value)
            values[key.lower()] = converted
    if not values:
        return None
    return settings.model_copy(update={**values, "url": None})


@pytest.fixture(scope="session")
def binlog_server(servers: Servers) -> MySQLSettings:
    if _log_bin_on(servers.mysql):
        return servers.mysql
    private = _overridden(servers.mysql)
    if private is not None and _log_bin_on(private):
        return private
    unavailable(
        "the MySQL test server's binary log is off (or lacks binlog_row_metadata=FULL): "
        "restart it with scripts/services.sh, which turns it on, or name one that has it "
        "with CHARIOT_CDC_MYSQL__PORT (tests/cdc_support.py)"
    )
    raise AssertionError("unreachable")


@pytest.fixture
def binlog_mysql(binlog_server: MySQLSettings) -> Iterator[MySQLSettings]:
    """A fresh database on the binary-log server, dropped afterwards."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(binlog_server, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        yield binlog_server.model_copy(update={"database": name})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def execute(settings: MySQLSettings, *statements: str, time_zone: str = "+00:00") -> None:
    """Run statements in one autocommit session (each its own transaction)."""
    connection = mysql_connect(settings, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET time_zone = '{time_zone}'")
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def start_follower(settings: Any, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m chariot sync --follow`` with ``settings`` (and ``env``) as environment
    variables, its output appended to ``log``."""
    from tests.conftest import settings_env

    variables = {**os.environ, **settings_env(settings), **env}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "chariot", "--log-format", "json", "sync", "--follow"],
            env=variables,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


# A small table the reader tests write to: an int key and a nullable label.
ITEMS = Stream(
    "items",
    "items",
    (
        Column("id", "id", "int", source_type="int", postgres="integer"),
        Column("label", "label", "text", nullable=True, source_type="varchar(20)", postgres="text"),
    ),
    key=("id",),
)


def log_position(settings: MySQLSettings) -> LogPosition:
    connection = mysql_connect(settings)
    try:
        return current_position(connection)
    finally:
        connection.close()
