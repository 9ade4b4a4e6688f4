"""A position in the source's binary log, and where the log stands now or at a snapshot.

A position is stored as text next to a sink's checkpoint (``binlog.000002:630``, with
`` gtid=0-1-6`` when the server told us the GTID of the last transaction covered). Resuming
always goes by file and offset, which both MySQL 8 and MariaDB accept; the GTID is kept to
say which transaction a sink has reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chariot.errors import SourceReadError

if TYPE_CHECKING:
    import pymysql.connections

_TEXT = re.compile(
    r"^(?P<file>[^\s:]+):(?P<offset>\d+)(?:\+(?P<within>\d+))?(?: gtid=(?P<gtid>\S+))?$"
)
_SEQUENCE = re.compile(r"\.(\d+)$")
_ACCESS_DENIED = 1227  # ER_SPECIFIC_ACCESS_DENIED_ERROR


@dataclass(frozen=True)
class LogPosition:
    """``file`` and ``offset`` of the next event to read; ``gtid`` of the last one read.

    ``within``: how many row changes of the transaction that starts at ``offset`` were
    already applied (a transaction too large for one sink transaction is applied in
    chunks); 0 for a position between transactions. Rendered ``binlog.000002:630+5000``.
    """

    file: str
    offset: int
    gtid: str = ""
    within: int = 0

    def render(self) -> str:
        text = f"{self.file}:{self.offset}"
        if self.within:
            text += f"+{self.within}"
        return f"{text} gtid={self.gtid}" if self.gtid else text

    @classmethod
    def parse(cls, text: str) -> LogPosition:
        """The inverse of ``render``; ValueError for anything else."""
        match = _TEXT.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a binary log position (binlog.000002:630)")
        return cls(
            match["file"], int(match["offset"]), match["gtid"] or "", int(match["within"] or 0)
        )

    def sort_key(self) -> tuple[str, int, int, int]:
        """Positions of one server in log order: base name, file number, offset, within."""
        number = _SEQUENCE.search(self.file)
        base = self.file[: number.start()] if number else self.file
        return (base, int(number[1]) if number else 0, self.offset, self.within)

    def reached(self, other: LogPosition) -> bool:
        """True when this position is at or after ``other`` (same server's log)."""
        return self.sort_key() >= other.sort_key()

    def __str__(self) -> str:
        return self.render()


def is_mariadb(connection: pymysql.connections.Connection) -> bool:
    return "mariadb" in str(_one(connection, "SELECT VERSION()")[0]).lower()


def current_position(connection: pymysql.connections.Connection) -> LogPosition:
    """Where the server's binary log ends now (the next transaction starts there). No GTID:
    read apart from the file and offset it could belong to another instant."""
    row = _log_status(connection)
    return LogPosition(str(row[0]), int(row[1]))


def snapshot_position(connection: pymysql.connections.Connection) -> LogPosition:
    """Open a consistent-snapshot transaction on ``connection`` and return the log position
    it lines up with: every transaction before the position is in the snapshot, none after.

    The transaction stays open: read the first copy through this connection, then commit
    (or roll back) it. No lock is taken on MariaDB: ``Binlog_snapshot_file`` and
    ``Binlog_snapshot_position`` are read inside the snapshot (checked on MariaDB 10.11).

    MySQL 8 has no such status: there a global read lock is held for the instant between
    starting the snapshot and reading the log status (needs the RELOAD privilege). That path
    is written to the MySQL 8.4 manual but untested here (no MySQL 8 on this machine).
    """
    if is_mariadb(connection):
        return _mariadb_snapshot(connection)
    return _mysql_snapshot(connection)


def _mariadb_snapshot(connection: pymysql.connections.Connection) -> LogPosition:
    with connection.cursor() as cursor:
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        cursor.execute("SHOW STATUS LIKE 'binlog_snapshot%'")
        status = {str(name).lower(): value for name, value in cursor.fetchall()}
    file = status.get("binlog_snapshot_file")
    offset = status.get("binlog_snapshot_position")
    if not file or offset is None:
        connection.rollback()
        raise SourceReadError(
            "the source reports no binary log snapshot position (is the binary log on?)",
            hint="enable the binary log: see the change-capture page of the docs",
        )
    return LogPosition(str(file), int(offset))


def _mysql_snapshot(connection: pymysql.connections.Connection) -> LogPosition:
    with connection.cursor() as cursor:
        cursor.execute("FLUSH TABLES WITH READ LOCK")
        try:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            row = _log_status(connection)
            gtid = _gtid_now(connection)
        finally:
            cursor.execute("UNLOCK TABLES")
    return LogPosition(str(row[0]), int(row[1]), gtid)


def _log_status(connection: pymysql.connections.Connection) -> tuple[Any, ...]:
    """The first row of the log status: (File, Position, ...), under each server's name
    for it (MariaDB: SHOW BINLOG STATUS from 10.5.2; MySQL: SHOW BINARY LOG STATUS from 8.2,
    SHOW MASTER STATUS before; both still take SHOW MASTER STATUS)."""
    import pymysql

    for statement in ("SHOW BINLOG STATUS", "SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"):
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                row = cursor.fetchone()
        except pymysql.err.ProgrammingError:
            continue  # a syntax error: this server spells it another way
        except pymysql.err.OperationalError as error:
            if error.args and error.args[0] == _ACCESS_DENIED:
                raise SourceReadError(
                    "change capture: the source user may not read the binary log status",
                    hint="as an admin: GRANT REPLICATION CLIENT ON *.* TO the source user "
                    "(MariaDB: BINLOG MONITOR)",
                ) from error
            raise
        if row is None:
            raise SourceReadError(
                "the source's binary log is off: no log position to read",
                hint="enable the binary log: see the change-capture page of the docs",
            )
        return tuple(row)
    raise SourceReadError("the source does not report its binary log status")


def _gtid_now(connection: pymysql.connections.Connection) -> str:
    """The GTID state of the log: MariaDB's gtid_binlog_pos, MySQL's gtid_executed."""
    variable = "@@GLOBAL.gtid_binlog_pos" if is_mariadb(connection) else "@@GLOBAL.gtid_executed"
    value = _one(connection, f"SELECT {variable}")[0]
    return "".join(str(value or "").split())  # MySQL wraps long sets over lines


def _one(connection: pymysql.connections.Connection, sql: str) -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError(f"{sql} returned no row")  # a bug, not a user error
    return tuple(row)
