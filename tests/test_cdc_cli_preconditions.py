"""`chariot sync` when change capture cannot go on: one line naming the problem and the
exact fix, the documented exit code, no traceback, no password (issue #11, items 6 and 7).

Each test runs against a private MariaDB (tests/cdc_servers.py): the tests flip GLOBAL
binary log settings and purge logs, which must never happen on the shared server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chariot.cdc.position import LogPosition, current_position
from chariot.config import MySQLSettings, PostgresSettings, RunSettings, Settings
from chariot.connections import postgres_connection
from chariot.exit_codes import ExitCode
from chariot.project.loading import load_project
from chariot.project.streams import project_streams
from tests.cdc_servers import PrivateMariaDB
from tests.servers import Servers

pytestmark = pytest.mark.integration

ITEMS = (
    "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50) NULL)",
    "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three')",
)
Cli = Callable[..., Any]


@pytest.fixture
def project_env(tmp_path: Path) -> dict[str, str]:
    return {"CHARIOT_PROJECT": str(tmp_path / "chariot.toml")}


def _settings(mysql: MySQLSettings, postgres: PostgresSettings, servers: Servers) -> Settings:
    # PostgreSQL only: these tests are about the source; no graph lock needed.
    return Settings(
        mysql=mysql, postgres=postgres, neo4j=servers.neo4j, run=RunSettings(sinks=["postgres"])
    )


def _with_items(
    server: PrivateMariaDB,
    postgres_settings: PostgresSettings,
    servers: Servers,
    cli: Cli,
    env: dict[str, str],
) -> Iterator[Settings]:
    with server.database() as mysql:
        server.execute(*ITEMS, database=mysql.database)
        settings = _settings(mysql, postgres_settings, servers)
        init = cli("init", settings=settings, env=env)
        assert init.exit_code == 0, init.output
        yield settings


@pytest.fixture
def off_settings(
    binlog_off_server: PrivateMariaDB,
    postgres_settings: PostgresSettings,
    servers: Servers,
    cli: Cli,
    project_env: dict[str, str],
) -> Iterator[Settings]:
    """The items table on the server whose binary log is off, and its project file."""
    yield from _with_items(binlog_off_server, postgres_settings, servers, cli, project_env)


@pytest.fixture
def on_settings(
    binlog_on_server: PrivateMariaDB,
    postgres_settings: PostgresSettings,
    servers: Servers,
    cli: Cli,
    project_env: dict[str, str],
) -> Iterator[Settings]:
    """The items table on the private server whose binary log is on, and its project."""
    yield from _with_items(binlog_on_server, postgres_settings, servers, cli, project_env)


def _error_line(outcome: Any, settings: Settings, exit_code: ExitCode) -> tuple[str, str]:
    """The one error line and its hint; nothing else went wrong on the way."""
    assert outcome.exit_code == exit_code, outcome.output
    output = outcome.output
    assert "Traceback" not in output
    for secret in (settings.mysql.password, settings.postgres.password):
        assert secret.get_secret_value() not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    hints = [line for line in output.splitlines() if line.startswith("Hint:")]
    assert len(errors) == 1 and len(hints) == 1, output
    return errors[0], hints[0]


def _json_error(outcome: Any, settings: Settings, exit_code: ExitCode) -> dict[str, Any]:
    assert outcome.exit_code == exit_code, outcome.output
    for secret in (settings.mysql.password, settings.postgres.password):
        assert secret.get_secret_value() not in outcome.output
    document = json.loads(outcome.stdout)
    assert document["ok"] is False
    error: dict[str, Any] = document["error"]
    assert error["exit_code"] == int(exit_code) and error["kind"] == exit_code.kind
    return error


def _positions(settings: Settings) -> dict[str, LogPosition]:
    from chariot.sinks.postgres import PostgresSink

    sink: Any = PostgresSink(settings)
    try:
        positions: dict[str, LogPosition] = sink.log_positions()
        return positions
    finally:
        sink.close()


def _pg_items(settings: Settings) -> list[tuple[Any, ...]]:
    with postgres_connection(settings.postgres) as connection:
        connection.execute(f'SET search_path TO "{settings.postgres.schema_name}"')
        return [tuple(row) for row in connection.execute("SELECT id, name FROM items ORDER BY id")]


def _source_items(server: PrivateMariaDB, settings: Settings) -> list[tuple[Any, ...]]:
    connection: Any = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, name FROM `{settings.mysql.database}`.items ORDER BY id")
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def _source_position(server: PrivateMariaDB) -> LogPosition:
    connection: Any = server.connect()
    try:
        return current_position(connection)
    finally:
        connection.close()


# --------------------------------------------------------------------------- item 6


def test_binary_log_off_is_one_line_with_the_fix(cli: Cli, off_settings: Settings) -> None:
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    error, hint = _error_line(cli(*args, settings=off_settings), off_settings, ExitCode.SOURCE_READ)
    assert "the binary log is off (log_bin = OFF)" in error
    assert "--log-bin --server-id=1 --binlog-format=ROW" in hint
    assert "--binlog-row-image=FULL --binlog-row-metadata=FULL" in hint

    failed = _json_error(
        cli(*args, "--json", settings=off_settings), off_settings, ExitCode.SOURCE_READ
    )
    assert "the binary log is off" in failed["message"] and "--log-bin" in failed["hint"]


@pytest.mark.parametrize(
    ("variable", "value", "wanted"),
    [
        ("binlog_format", "MIXED", "ROW"),
        ("binlog_format", "STATEMENT", "ROW"),
        ("binlog_row_image", "MINIMAL", "FULL"),
        ("binlog_row_metadata", "MINIMAL", "FULL"),
    ],
)
def test_each_binlog_setting_is_one_line_with_the_fix(
    cli: Cli,
    binlog_on_server: PrivateMariaDB,
    on_settings: Settings,
    variable: str,
    value: str,
    wanted: str,
) -> None:
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    with binlog_on_server.global_settings(**{variable: value}):
        outcome = cli(*args, settings=on_settings)
        failed = _json_error(
            cli(*args, "--json", settings=on_settings), on_settings, ExitCode.SOURCE_READ
        )
    error, hint = _error_line(outcome, on_settings, ExitCode.SOURCE_READ)
    assert f"{variable} is {value}, change capture needs {wanted}" in error
    assert f"SET GLOBAL {variable} = '{wanted}'" in hint
    assert f"--{variable.replace('_', '-')}={wanted}" in hint
    assert f"{variable} is {value}" in failed["message"]
    assert f"SET GLOBAL {variable} = '{wanted}'" in failed["hint"]
    # Nothing was written: the check comes before any sink is touched.
    assert "items" not in _tables(on_settings)


def test_a_user_without_replication_grants_is_one_line_with_the_grant(
    cli: Cli, binlog_on_server: PrivateMariaDB, on_settings: Settings
) -> None:
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    with binlog_on_server.reader_without_replication(on_settings.mysql.database) as reader:
        settings = on_settings.model_copy(update={"mysql": reader})
        error, hint = _error_line(cli(*args, settings=settings), settings, ExitCode.SOURCE_READ)
        as_json = cli(*args, "--json", settings=settings)
        failed = _json_error(as_json, settings, ExitCode.SOURCE_READ)
    user = f"'{reader.user}'@'127.0.0.1'"
    assert f"the source user {user} lacks REPLICATION SLAVE, BINLOG MONITOR" in error
    assert f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user}" in hint
    assert "lacks REPLICATION SLAVE" in failed["message"]
    assert "GRANT REPLICATION SLAVE" in failed["hint"]


def _tables(settings: Settings) -> set[str]:
    with postgres_connection(settings.postgres) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (settings.postgres.schema_name,),
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_auto_falls_back_to_keyset_on_a_server_without_a_binary_log_and_says_why(
    cli: Cli, off_settings: Settings
) -> None:
    synced = cli("sync", "--mode", "auto", "--sink", "postgres", settings=off_settings)
    assert synced.exit_code == 0, synced.output
    assert "mode: keyset (the binary log is off (log_bin = OFF))" in synced.output
    assert _pg_items(off_settings) == [(1, "one"), (2, "two"), (3, "three")]

    as_json = cli("sync", "--mode", "auto", "--sink", "postgres", "--json", settings=off_settings)
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)
    assert result["mode"] == "keyset" and "binary log is off" in result["mode_reason"]

    status = cli("status", settings=off_settings)
    assert status.exit_code == 0, status.output
    cells = [re.split(r"[\s│┃|]+", line.strip("│┃| ")) for line in status.output.splitlines()]
    assert ["postgres", "keyset"] in [row[:2] for row in cells], status.output
    report = json.loads(cli("status", "--json", settings=off_settings).stdout)
    assert report["change_capture"] == []


@pytest.mark.parametrize("lost", ["grants revoked", "binlog_format STATEMENT"])
def test_auto_is_an_error_once_a_sink_follows_the_log_and_capture_is_lost(
    cli: Cli, binlog_on_server: PrivateMariaDB, on_settings: Settings, lost: str
) -> None:
    """Keyset would miss every update and delete: never a silent fall-back."""
    synced = cli("sync", "--mode", "keyset", "--sink", "postgres", settings=on_settings)
    assert synced.exit_code == 0, synced.output
    # A sink that already follows the log for items (as a cdc sync leaves it).
    from chariot.sinks.postgres import PostgresSink

    (items,) = project_streams(load_project())
    sink: Any = PostgresSink(on_settings)
    try:
        sink.start_log(items, _source_position(binlog_on_server))
    finally:
        sink.close()

    args = ("sync", "--mode", "auto", "--sink", "postgres")
    if lost == "grants revoked":
        with binlog_on_server.reader_without_replication(on_settings.mysql.database) as reader:
            settings = on_settings.model_copy(update={"mysql": reader})
            error, hint = _error_line(cli(*args, settings=settings), settings, ExitCode.SOURCE_READ)
        assert "lacks REPLICATION SLAVE" in error
    else:
        with binlog_on_server.global_settings(binlog_format="STATEMENT"):
            outcome = cli(*args, settings=on_settings)
        error, hint = _error_line(outcome, on_settings, ExitCode.SOURCE_READ)
        assert "binlog_format is STATEMENT" in error
    assert "postgres:items already sync by change capture" in error
    assert "`chariot sync --mode keyset --full-refresh`" in hint
    assert _positions(on_settings)["items"]  # still following: nothing was given up


# --------------------------------------------------------------------------- purged


def test_a_purged_log_position_is_exit_8_naming_the_position_and_the_full_refresh(
    cli: Cli, binlog_on_server: PrivateMariaDB, on_settings: Settings
) -> None:
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    first = cli(*args, settings=on_settings)
    assert first.exit_code == 0, first.output
    held = _positions(on_settings)["items"]

    binlog_on_server.execute(
        "INSERT INTO items VALUES (4, 'four')", database=on_settings.mysql.database
    )
    binlog_on_server.execute("FLUSH BINARY LOGS")
    newest = _source_position(binlog_on_server).file
    _purge_to(binlog_on_server, newest, held)

    error, hint = _error_line(cli(*args, settings=on_settings), on_settings, ExitCode.DATA)
    assert f"the saved log position {held.render()} was purged from the source" in error
    assert f"its oldest binary log is {newest}" in error
    assert "`chariot sync --full-refresh`" in hint
    failed = _json_error(cli(*args, "--json", settings=on_settings), on_settings, ExitCode.DATA)
    assert held.render() in failed["message"]
    assert _positions(on_settings)["items"] == held  # nothing moved

    # The way out works: a full refresh re-copies and follows the log from now on.
    recovered = cli(*args, "--full-refresh", settings=on_settings)
    assert recovered.exit_code == 0, recovered.output
    again = cli(*args, settings=on_settings)
    assert again.exit_code == 0, again.output
    assert _pg_items(on_settings) == _source_items(binlog_on_server, on_settings)


def _purge_to(server: PrivateMariaDB, newest: str, held: LogPosition) -> None:
    """PURGE BINARY LOGS up to ``newest``. The server keeps a file that a binary log dump
    still reads, and the dump thread of the sync that just ended may take a moment to go:
    purge again until the held file is gone (bounded)."""
    deadline = time.monotonic() + 30
    while True:
        server.execute(f"PURGE BINARY LOGS TO '{newest}'")
        files = [str(row[0]) for row in server.query("SHOW BINARY LOGS")]
        if held.file not in files or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert files == [newest], f"the server kept {files}"


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize(
    ("statement", "shown"),
    [
        ("ALTER TABLE items DROP COLUMN extra", "ALTER TABLE items DROP COLUMN extra"),
        (
            "RENAME TABLE items TO items_moved, items_moved TO items",
            "RENAME TABLE items TO items_moved, items_moved TO items",
        ),
        ("TRUNCATE TABLE items", "TRUNCATE TABLE items"),
    ],
)
def test_a_schema_change_stops_the_sync_before_it_naming_the_statement_and_the_way_out(
    cli: Cli,
    binlog_on_server: PrivateMariaDB,
    on_settings: Settings,
    statement: str,
    shown: str,
) -> None:
    database = on_settings.mysql.database
    # A column the project does not name (added before the first sync), so that dropping it
    # leaves the project valid and only the log has to stop.
    binlog_on_server.execute("ALTER TABLE items ADD COLUMN extra INT NULL", database=database)
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    first = cli(*args, settings=on_settings)
    assert first.exit_code == 0, first.output

    binlog_on_server.execute(
        "UPDATE items SET name = 'uno' WHERE id = 1",  # keyset would not carry it: the log does
        database=database,
    )
    before = _source_position(binlog_on_server)
    binlog_on_server.execute(statement, database=database)
    after = _source_position(binlog_on_server)
    binlog_on_server.execute(
        "DELETE FROM items WHERE id = 2",
        "INSERT INTO items (id, name) VALUES (5, 'five')",
        database=database,
    )

    error, hint = _error_line(cli(*args, settings=on_settings), on_settings, ExitCode.SOURCE_READ)
    assert f"change capture stopped at a schema change of table items: {shown}" in error
    assert "`chariot sync --full-refresh --table items`" in hint
    failed = _json_error(
        cli(*args, "--json", settings=on_settings), on_settings, ExitCode.SOURCE_READ
    )
    assert shown in failed["message"]
    held = _positions(on_settings)["items"]
    assert before.reached(held) and not held.reached(after)  # stopped before the statement
    stopped_at = _pg_items(on_settings)
    assert (1, "uno") in stopped_at  # the log before the statement was applied ...
    assert (2, "two") in stopped_at  # ... and nothing after it

    refreshed = cli(*args, "--full-refresh", "--table", "items", settings=on_settings)
    assert refreshed.exit_code == 0, refreshed.output
    assert _positions(on_settings)["items"].reached(after)
    plain = cli(*args, settings=on_settings)
    assert plain.exit_code == 0, plain.output
    assert _pg_items(on_settings) == _source_items(binlog_on_server, on_settings)


def test_an_added_nullable_column_does_not_stop_the_sync(
    cli: Cli, binlog_on_server: PrivateMariaDB, on_settings: Settings
) -> None:
    database = on_settings.mysql.database
    args = ("sync", "--mode", "cdc", "--sink", "postgres")
    first = cli(*args, settings=on_settings)
    assert first.exit_code == 0, first.output

    binlog_on_server.execute(
        "ALTER TABLE items ADD COLUMN note VARCHAR(20) NULL",
        "INSERT INTO items (id, name, note) VALUES (4, 'four', 'new')",
        "UPDATE items SET name = 'uno' WHERE id = 1",
        database=database,
    )
    synced = cli(*args, settings=on_settings)
    assert synced.exit_code == 0, synced.output
    assert "Error" not in synced.output
    assert _pg_items(on_settings) == [(1, "uno"), (2, "two"), (3, "three"), (4, "four")]
