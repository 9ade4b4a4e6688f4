"""Can this source be read by change capture? One line per problem, each with its fix.

Checked up front, before anything is read: the binary log is on, in ROW format, with FULL
row images and FULL row metadata (without it row events carry no column names), the user
holds the replication privileges, and a saved position is still on the server.

Exit codes: a setting or a privilege -> ``ChangeCaptureUnavailable`` (4, source_read: the
source's log cannot be read); a purged position -> ``LogPositionPurged`` (8, data: the
source no longer holds what a sink needs; the message names the command that recovers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chariot.cdc.position import LogPosition, is_mariadb
from chariot.errors import DataError, SourceReadError

if TYPE_CHECKING:
    import pymysql.connections

RECOVER = "chariot sync --full-refresh"


@dataclass(frozen=True)
class Problem:
    """One unmet precondition: what is wrong, and the exact fix."""

    message: str
    fix: str

    def line(self) -> str:
        return f"{self.message} (fix: {self.fix})"


class ChangeCaptureUnavailable(SourceReadError):
    """The source's binary log cannot be read by change capture (a setting or a grant)."""

    def __init__(self, problems: list[Problem]) -> None:
        # Every problem at once: fixing them one run at a time would be tedious.
        super().__init__(
            "change capture: " + "; ".join(problem.message for problem in problems),
            hint="; ".join(problem.fix for problem in problems),
        )
        self.problems = problems


class LogPositionPurged(DataError):
    """A sink's saved log position is no longer on the server (the logs were purged)."""


def change_capture_problems(connection: pymysql.connections.Connection) -> list[Problem]:
    """Every unmet setting and privilege, in the order a user would fix them."""
    mariadb = is_mariadb(connection)
    variables = _variables(connection)
    problems = settings_problems(variables, mariadb=mariadb)
    if variables.get("log_bin") in ("1", "ON"):
        problems += _privilege_problems(connection, mariadb=mariadb)
    return problems


def check_change_capture(
    connection: pymysql.connections.Connection, position: LogPosition | None = None
) -> None:
    """Raise ``ChangeCaptureUnavailable`` for the first problem (all on ``.problems``), or
    ``LogPositionPurged`` when ``position`` is given and its file is gone."""
    problems = change_capture_problems(connection)
    if problems:
        raise ChangeCaptureUnavailable(problems)
    if position is not None:
        check_position_available(connection, position)


def check_position_available(
    connection: pymysql.connections.Connection, position: LogPosition
) -> None:
    """``LogPositionPurged`` when the file of ``position`` is no longer in SHOW BINARY LOGS."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW BINARY LOGS")
        files = {str(row[0]) for row in cursor.fetchall()}
    if position.file not in files:
        oldest = min(files, key=lambda name: LogPosition(name, 0).sort_key(), default="none")
        raise position_purged(position, oldest)


def position_purged(position: LogPosition, oldest: str | None = None) -> LogPositionPurged:
    """The error for a saved position whose log file the server no longer has."""
    holds = f" (its oldest binary log is {oldest})" if oldest else ""
    return LogPositionPurged(
        f"change capture: the saved log position {position.render()} was purged from the "
        f"source{holds}: changes since then cannot be read",
        hint=f"re-copy the affected tables with `{RECOVER}` (add --table T for each), "
        "then keep binary logs longer than the time between syncs "
        "(binlog_expire_logs_seconds)",
    )


def missing_replication_grant(user: str) -> ChangeCaptureUnavailable:
    """The error for a server that refused the binary log dump (no REPLICATION SLAVE)."""
    return ChangeCaptureUnavailable(
        [
            Problem(
                f"the source user {user} may not read the binary log",
                f"as an admin: GRANT REPLICATION SLAVE ON *.* TO {user}",
            )
        ]
    )


# Settings read up front; each absent one is fine (another flavour or an older version),
# except binlog_row_metadata, which change capture cannot do without.
_VARIABLES = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "binlog_row_value_options",  # MySQL 8: PARTIAL_JSON logs partial JSON after-images
    "binlog_transaction_compression",  # MySQL 8: compressed payloads the reader cannot read
    "log_bin_compress",  # MariaDB: compressed row events the reader cannot read
)


def _variables(connection: pymysql.connections.Connection) -> dict[str, str]:
    marks = ", ".join(["%s"] * len(_VARIABLES))
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({marks})", _VARIABLES)
        return {str(name).lower(): str(value).upper() for name, value in cursor.fetchall()}


def settings_problems(variables: dict[str, str], *, mariadb: bool) -> list[Problem]:
    if variables.get("log_bin") not in ("1", "ON"):
        fix = (
            "start MariaDB with --log-bin --server-id=1 --binlog-format=ROW "
            "--binlog-row-image=FULL --binlog-row-metadata=FULL"
            if mariadb
            else "start MySQL without --skip-log-bin / --disable-log-bin (on by default in "
            "MySQL 8), with --binlog-row-metadata=FULL"
        )
        return [Problem("the binary log is off (log_bin = OFF)", fix)]
    problems = []
    for name in ("binlog_format", "binlog_row_image", "binlog_row_metadata"):
        found = variables.get(name)
        wanted = "ROW" if name == "binlog_format" else "FULL"
        if found is None:
            problems.append(
                Problem(
                    f"the server has no {name} setting (too old for change capture)",
                    "upgrade to MariaDB 10.5 or later, or MySQL 8.0.14 or later",
                )
            )
        elif found != wanted:
            dashed = name.replace("_", "-")
            problems.append(
                Problem(
                    f"{name} is {found}, change capture needs {wanted}",
                    f"SET PERSIST {name} = '{wanted}' (MySQL 8) or SET GLOBAL {name} = "
                    f"'{wanted}' and --{dashed}={wanted} in the server's options (MariaDB)",
                )
            )
    return problems + _unreadable_events(variables)


def _unreadable_events(variables: dict[str, str]) -> list[Problem]:
    """Settings under which the server logs changes in a form the reader cannot decode:
    they would be skipped, and skipped changes are silent loss."""
    problems = []
    if variables.get("binlog_row_value_options", "") not in ("", "OFF"):
        problems.append(
            Problem(
                "binlog_row_value_options is PARTIAL_JSON: JSON updates are logged partially",
                "SET PERSIST binlog_row_value_options = ''",
            )
        )
    if variables.get("binlog_transaction_compression", "OFF") in ("1", "ON"):
        problems.append(
            Problem(
                "binlog_transaction_compression is ON: compressed transactions cannot be read",
                "SET PERSIST binlog_transaction_compression = OFF",
            )
        )
    if variables.get("log_bin_compress", "OFF") in ("1", "ON"):
        problems.append(
            Problem(
                "log_bin_compress is ON: compressed row events cannot be read",
                "SET GLOBAL log_bin_compress = OFF and drop --log-bin-compress from the "
                "server's options",
            )
        )
    return problems


# Privileges as SHOW GRANTS prints them; MariaDB 10.5 renamed REPLICATION CLIENT to
# BINLOG MONITOR (the old name is an alias) and prints REPLICATION SLAVE as such.
_NEEDED_MARIADB = ("REPLICATION SLAVE", "BINLOG MONITOR")
_NEEDED_MYSQL = ("REPLICATION SLAVE", "REPLICATION CLIENT")
_ALIASES = {"REPLICATION REPLICA": "REPLICATION SLAVE", "REPLICATION CLIENT": "BINLOG MONITOR"}
_GLOBAL_GRANT = re.compile(r"^GRANT (?P<privileges>.+?) ON \*\.\* TO ", re.IGNORECASE)
_ROLE_GRANT = re.compile(r"^GRANT [`'][^`']+[`'](?:@[`'][^`']*[`'])? TO ", re.IGNORECASE)


def _privilege_problems(
    connection: pymysql.connections.Connection, *, mariadb: bool
) -> list[Problem]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW GRANTS")
        lines = [str(row[0]) for row in cursor.fetchall()]
    missing = missing_privileges(lines, mariadb=mariadb)
    if not missing:
        return []
    user = _current_user(connection)
    grant = ", ".join(missing)
    return [
        Problem(
            f"the source user {user} lacks {grant} (needed to read the binary log)",
            f"as an admin: GRANT {grant} ON *.* TO {user}",
        )
    ]


def missing_privileges(grant_lines: list[str], *, mariadb: bool) -> list[str]:
    """The replication privileges that SHOW GRANTS's lines do not give on ``*.*``.

    A role's privileges are not listed there: with a role granted, nothing is reported
    missing (the reader's own error names the grant should the server refuse it).
    """
    granted: set[str] = set()
    for line in grant_lines:
        if _ROLE_GRANT.match(line):
            return []
        match = _GLOBAL_GRANT.match(line)
        if match is None:
            continue
        for privilege in match["privileges"].split(","):
            name = " ".join(privilege.split()).upper()
            granted.add(name)
            if mariadb or name != "REPLICATION CLIENT":
                granted.add(_ALIASES.get(name, name))
    if "ALL PRIVILEGES" in granted or "ALL" in granted:
        return []
    needed = _NEEDED_MARIADB if mariadb else _NEEDED_MYSQL
    return [privilege for privilege in needed if privilege not in granted]


def _current_user(connection: pymysql.connections.Connection) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT CURRENT_USER()")
        row: Any = cursor.fetchone()
    user, _, host = str(row[0]).partition("@")
    return f"'{user}'@'{host}'"
