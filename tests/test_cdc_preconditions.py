"""Change-capture preconditions: one clear line each, with the exact fix and exit code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from chariot.cdc.position import LogPosition, current_position
from chariot.cdc.preconditions import (
    ChangeCaptureUnavailable,
    LogPositionPurged,
    change_capture_problems,
    check_change_capture,
    missing_privileges,
    settings_problems,
)
from chariot.cdc.reader import read_transactions
from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.exit_codes import ExitCode

GOOD = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL"}


def test_good_settings_have_no_problem() -> None:
    assert settings_problems({**GOOD, "binlog_row_metadata": "FULL"}, mariadb=True) == []


@pytest.mark.parametrize(
    ("variables", "says", "fix"),
    [
        ({"log_bin": "OFF"}, "the binary log is off", "--log-bin"),
        (
            {**GOOD, "binlog_format": "MIXED", "binlog_row_metadata": "FULL"},
            "binlog_format is MIXED",
            "binlog_format = 'ROW'",
        ),
        (
            {**GOOD, "binlog_row_image": "MINIMAL", "binlog_row_metadata": "FULL"},
            "binlog_row_image is MINIMAL",
            "--binlog-row-image=FULL",
        ),
        (
            {**GOOD, "binlog_row_metadata": "MINIMAL"},
            "binlog_row_metadata is MINIMAL",
            "SET PERSIST binlog_row_metadata = 'FULL'",
        ),
        (GOOD, "no binlog_row_metadata setting", "MariaDB 10.5"),
    ],
)
def test_each_setting_problem_is_one_line_with_its_fix(
    variables: dict[str, str], says: str, fix: str
) -> None:
    problems = settings_problems(variables, mariadb=True)
    assert len(problems) == 1
    assert says in problems[0].message and fix in problems[0].fix
    assert "\n" not in problems[0].line()
    error = ChangeCaptureUnavailable(problems)
    assert error.exit_code == ExitCode.SOURCE_READ
    assert says in str(error) and error.hint == problems[0].fix


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("binlog_row_value_options", "PARTIAL_JSON"),
        ("binlog_transaction_compression", "ON"),
        ("log_bin_compress", "ON"),
    ],
)
def test_settings_that_log_unreadable_events_are_problems(variable: str, value: str) -> None:
    """The reader would skip such events: silent loss, so refused up front."""
    variables = {**GOOD, "binlog_row_metadata": "FULL", variable: value}
    (problem,) = settings_problems(variables, mariadb=False)
    assert problem.message.startswith(f"{variable} is {value}")
    assert variable in problem.fix


def test_every_problem_is_in_the_one_error() -> None:
    variables = {**GOOD, "binlog_format": "STATEMENT", "binlog_row_metadata": "MINIMAL"}
    error = ChangeCaptureUnavailable(settings_problems(variables, mariadb=True))
    assert "binlog_format is STATEMENT" in str(error)
    assert "binlog_row_metadata is MINIMAL" in str(error)
    assert "--binlog-format=ROW" in (error.hint or "")
    assert "--binlog-row-metadata=FULL" in (error.hint or "")


@pytest.mark.parametrize(
    ("lines", "mariadb", "missing"),
    [
        (["GRANT ALL PRIVILEGES ON *.* TO `u`@`%` WITH GRANT OPTION"], True, []),
        (
            ["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `u`@`%`"],
            True,
            [],
        ),
        (  # MariaDB's old name for BINLOG MONITOR
            ["GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* TO `u`@`%`"],
            True,
            [],
        ),
        (
            ["GRANT USAGE ON *.* TO `u`@`%`", "GRANT SELECT ON `db`.* TO `u`@`%`"],
            True,
            ["REPLICATION SLAVE", "BINLOG MONITOR"],
        ),
        (  # MySQL 8 lists each privilege, then the dynamic ones
            [
                "GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `u`@`%`",
                "GRANT BACKUP_ADMIN ON *.* TO `u`@`%`",
            ],
            False,
            [],
        ),
        (["GRANT SELECT, REPLICATION SLAVE ON *.* TO `u`@`%`"], False, ["REPLICATION CLIENT"]),
        (
            ["GRANT REPLICATION SLAVE ON `db`.* TO `u`@`%`"],
            False,
            ["REPLICATION SLAVE", "REPLICATION CLIENT"],
        ),
        (["GRANT USAGE ON *.* TO `u`@`%`", "GRANT `cdc_role` TO `u`@`%`"], False, []),
    ],
)
def test_missing_privileges_are_read_from_show_grants(
    lines: list[str], mariadb: bool, missing: list[str]
) -> None:
    assert missing_privileges(lines, mariadb=mariadb) == missing


def test_mysql_is_told_its_own_fix_for_the_binary_log() -> None:
    (problem,) = settings_problems({"log_bin": "OFF"}, mariadb=False)
    assert "--skip-log-bin" in problem.fix


@pytest.mark.integration
def test_the_binlog_server_meets_every_precondition(binlog_mysql: MySQLSettings) -> None:
    connection = mysql_connect(binlog_mysql)
    try:
        assert change_capture_problems(connection) == []
        check_change_capture(connection, current_position(connection))
    finally:
        connection.close()


@pytest.mark.integration
def test_a_purged_position_says_how_to_recover(binlog_mysql: MySQLSettings) -> None:
    connection = mysql_connect(binlog_mysql)
    try:
        gone = LogPosition("binlog.000000", 4)  # before any file the server still holds
        with pytest.raises(LogPositionPurged) as raised:
            check_change_capture(connection, gone)
    finally:
        connection.close()
    assert raised.value.exit_code == ExitCode.DATA
    assert "binlog.000000:4 was purged" in str(raised.value)
    assert "chariot sync --full-refresh" in (raised.value.hint or "")


@pytest.fixture
def reader_without_replication(binlog_mysql: MySQLSettings) -> Iterator[MySQLSettings]:
    """A user that may SELECT but holds no replication privilege."""
    name = f"cdc_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin = mysql_connect(binlog_mysql, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
            cursor.execute(f"GRANT SELECT ON `{binlog_mysql.database}`.* TO '{name}'@'%'")
        yield binlog_mysql.model_copy(update={"user": name, "password": SecretStr(password)})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


@pytest.mark.integration
def test_missing_replication_grants_are_named_with_the_grant(
    reader_without_replication: MySQLSettings, binlog_mysql: MySQLSettings
) -> None:
    connection = mysql_connect(reader_without_replication)
    try:
        with pytest.raises(ChangeCaptureUnavailable) as raised:
            check_change_capture(connection)
    finally:
        connection.close()
    assert raised.value.exit_code == ExitCode.SOURCE_READ
    assert "lacks REPLICATION SLAVE" in str(raised.value)
    hint = raised.value.hint or ""
    assert hint.startswith("as an admin: GRANT REPLICATION SLAVE, ")
    user = reader_without_replication.user
    # The fix, applied as printed, is enough.
    admin = mysql_connect(binlog_mysql, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(hint.removeprefix("as an admin: "))
    finally:
        admin.close()
    connection = mysql_connect(reader_without_replication)
    try:
        assert change_capture_problems(connection) == [], user
    finally:
        connection.close()


@pytest.mark.integration
def test_the_reader_without_replication_grants_says_which_grant(
    reader_without_replication: MySQLSettings, binlog_mysql: MySQLSettings
) -> None:
    admin = mysql_connect(binlog_mysql)
    try:
        start = current_position(admin)
    finally:
        admin.close()
    with pytest.raises(ChangeCaptureUnavailable) as raised:
        list(read_transactions(reader_without_replication, [], start))
    assert raised.value.exit_code == ExitCode.SOURCE_READ
    assert "GRANT REPLICATION SLAVE ON *.*" in (raised.value.hint or "")


@pytest.mark.integration
def test_the_reader_from_a_purged_position_says_how_to_recover(
    binlog_mysql: MySQLSettings,
) -> None:
    with pytest.raises(LogPositionPurged) as raised:
        list(read_transactions(binlog_mysql, [], LogPosition("binlog.000000", 4)))
    assert raised.value.exit_code == ExitCode.DATA
    assert "chariot sync --full-refresh" in (raised.value.hint or "")
