"""Whole source transactions from the binary log, as decoded change records.

A thin layer over ``pymysqlreplication.BinLogStreamReader``: it groups the row events of the
project's tables between a transaction's start (a GTID event, or BEGIN) and its commit (an
XID event, or COMMIT), decodes each row image with ``chariot.cdc.decode``, and yields one
``SourceTransaction`` per commit that touched a project table, with the log position after
it. Storing that position with the changes applied is what makes resuming exact: reading
again from it yields exactly the later transactions.

The stream is opened by file and offset on both MySQL 8 and MariaDB (the library's MariaDB
mode ignores file and offset and would start at the server's first log). A statement that
changes a project table outside row events (ALTER, RENAME, DROP, TRUNCATE, ...) stops the
read right before it (``SchemaChanged``); changes are never dropped silently (a two-phase XA
transaction on a project table stops it too).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from chariot.cdc.decode import decode_planned, row_plan
from chariot.cdc.position import LogPosition
from chariot.config import MySQLSettings
from chariot.errors import ConfigError, ConnectionFailed, SourceReadError
from chariot.streams import Column, Stream

log = logging.getLogger(__name__)

ChangeKind = Literal["insert", "update", "delete"]


@dataclass(frozen=True)
class Change:
    """One row changed in the source: ``before`` for update/delete, ``after`` for
    insert/update, each ``{source column: contract value}`` over the project's columns."""

    table: str  # the source table
    kind: ChangeKind
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class SourceTransaction:
    """The changes of one committed source transaction, in log order (none for a
    transaction that changed no project table: it still moves the position)."""

    changes: list[Change]
    position: LogPosition  # right after the commit: where reading resumes
    gtid: str = ""  # the transaction's GTID when the server logs one
    start: LogPosition | None = None  # where reading would find this transaction first
    committed_at: dt.datetime | None = None  # the source's commit time (UTC, 1 s precision)


@dataclass
class _Open:
    changes: list[Change] = field(default_factory=list)
    gtid: str = ""
    start: LogPosition | None = None
    began: bool = False  # inside a transaction (its GTID event or BEGIN was read)


def read_transactions(
    settings: MySQLSettings,
    streams: Sequence[Stream],
    start: LogPosition,
    *,
    follow: bool = False,
    stop_at: LogPosition | None = None,
    server_id: int | None = None,
    stop: Callable[[], bool] | None = None,
    empty: bool = False,
    passed: Callable[[str, LogPosition], bool] | None = None,
) -> Iterator[SourceTransaction]:
    """The transactions after ``start`` that changed one of ``streams``' source tables.

    ``follow``: wait for new transactions forever (else stop at the end of the log);
    ``stop_at``: stop after the first transaction that ends at or after this position.
    ``server_id``: this reader's replica id, unique among the server's replicas
    (default: a random one). ``stop``: asked between transactions (and, when following,
    at least every second): True ends the read there. ``empty``: also yield transactions
    that changed no project table (they move the position). ``start.within`` is not
    applied here: the transaction comes whole, and each sink skips what it applied.
    ``passed(table, after)``: True when a schema change of ``table`` ending at ``after`` is
    already behind every reader of the table (re-copied since): it is then skipped.
    """
    if stop_at is not None and start.reached(stop_at):
        return  # nothing to catch up on (reading on would pass the stop)
    columns = {stream.source_table: stream.columns for stream in streams}
    stream = _open_stream(settings, list(columns), start, follow=follow, server_id=server_id)
    events = _events(stream, start, f"'{settings.address().user or ''}'")
    database = settings.address().database or ""
    stops = _Stops(
        start, stop_at, database, stop or (lambda: False), empty, passed or (lambda t, p: False)
    )
    try:
        yield from _transactions(stream, events, columns, stops)
    finally:
        stream.close()


def _open_stream(
    settings: MySQLSettings,
    tables: list[str],
    start: LogPosition,
    *,
    follow: bool,
    server_id: int | None,
) -> Any:
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import (
        GtidEvent,
        HeartbeatLogEvent,
        MariadbGtidEvent,
        QueryEvent,
        XAPrepareEvent,
        XidEvent,
    )
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    from chariot.cdc import row_events, table_maps

    table_maps.install()
    row_events.install()
    address = settings.address()
    if not address.is_mysql or not address.database:
        raise ConfigError(
            f"change capture needs a MySQL or MariaDB source, not {address.display}",
            hint="unset CHARIOT_MYSQL__URL or point it at MySQL/MariaDB",
        )
    connection = {
        "host": address.host or "localhost",
        "port": address.port or 3306,
        "user": address.user or "",
        "password": address.password or "",
        "charset": "utf8mb4",
        "connect_timeout": 10,
    }
    return BinLogStreamReader(
        connection_settings=connection,
        pymysql_wrapper=_connect,
        server_id=server_id or _default_server_id(),
        log_file=start.file,
        log_pos=start.offset,
        resume_stream=True,
        blocking=follow,
        # While following, the server sends a heartbeat when idle: a stop is seen within it.
        slave_heartbeat=1.0 if follow else None,
        only_schemas=[address.database],
        only_tables=tables,
        only_events=[
            GtidEvent,
            MariadbGtidEvent,
            QueryEvent,
            XidEvent,
            XAPrepareEvent,
            WriteRowsEvent,
            UpdateRowsEvent,
            DeleteRowsEvent,
            *row_events.PLANNED_EVENTS,  # the library builds these once installed
            table_maps.CachedTableMapEvent,  # let through to be parsed (once per definition)
            *([HeartbeatLogEvent] if follow else []),
        ],
    )


def _connect(**options: Any) -> Any:
    """The library's connections, opened as Chariot opens its own (``open_pymysql``: PyMySQL's
    own loads the system's CA store for each one, ~0.1 s); its deprecated ``db`` renamed."""
    from chariot.connections import open_pymysql

    if "db" in options:
        options["database"] = options.pop("db")
    return open_pymysql(options)


def _default_server_id() -> int:
    # A replica id must differ from the server's and from every other connected reader's
    # (a second reader with the same id disconnects the first): random, above the small ids
    # servers use.
    return 2**31 + secrets.randbelow(2**31 - 1)


@dataclass
class _Stops:
    """Where reading stands and must stop: the last commit read, the caller's stop, and the
    database whose schema changes stop it."""

    reached: LogPosition
    stop_at: LogPosition | None
    database: str
    stop: Callable[[], bool] = lambda: False
    empty: bool = False
    passed: Callable[[str, LogPosition], bool] = lambda table, after: False


def _transactions(
    stream: Any,
    events: Iterable[Any],
    columns: Mapping[str, Sequence[Column]],
    stops: _Stops,
) -> Iterator[SourceTransaction]:
    from pymysqlreplication.event import (
        GtidEvent,
        MariadbGtidEvent,
        QueryEvent,
        XAPrepareEvent,
        XidEvent,
    )
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    current = _Open(start=stops.reached)
    for event in events:
        committed = False
        if not current.began and stops.stop():
            return  # between transactions: nothing read is left unyielded
        if isinstance(event, MariadbGtidEvent | GtidEvent):
            _never_dropped(current, "a transaction began before the last one committed")
            current = _Open(gtid=str(event.gtid), start=stops.reached, began=True)
        elif isinstance(event, XAPrepareEvent):
            # The rows of XA PREPARE come now, its XA COMMIT later as another log group: a
            # position stored in between would skip them. Refused rather than half-done.
            _never_dropped(current, f"a two-phase XA transaction ({event.xid}) changed it")
        elif isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
            current.changes.extend(_changes(event, columns[event.table]))
        elif isinstance(event, XidEvent):
            committed = True
        elif isinstance(event, QueryEvent):
            text = _query_text(event)
            committed = text == "COMMIT"  # non-transactional tables
            current.began = current.began or text == "BEGIN"
            if not committed:
                _stop_at_schema_change(event, stream, list(columns), stops)
        if not committed:
            continue
        position = LogPosition(stream.log_file, int(stream.log_pos), current.gtid)
        if current.changes or stops.empty:
            committed_at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)
            yield SourceTransaction(
                current.changes, position, current.gtid, current.start, committed_at
            )
        current = _Open(start=position)
        stops.reached = position
        if stops.stop_at is not None and position.reached(stops.stop_at):
            return


def _stop_at_schema_change(event: Any, stream: Any, tables: list[str], stops: _Stops) -> None:
    statement = _query_text(event, upper=False)
    schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
    table = schema_change_table(statement, schema, stops.database, tables)
    if table is None:
        return
    after = LogPosition(stream.log_file, int(stream.log_pos))
    if table != "*" and stops.passed(table, after):
        return  # the table was re-copied after this statement
    if table != "*" and added_nullable_column(statement):
        # The project names its columns: a new nullable one is simply not read until the
        # project file names it (then a full refresh of the table carries it).
        log.warning(
            "a column was added to a project table; not carried until the project names it",
            extra={"table": table, "statement": " ".join(statement.split())[:200]},
        )
        return
    raise SchemaChanged(table, statement, stops.reached, after)


_ADD_COLUMN = re.compile(
    r"^\s*ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE\s+\S+\s+ADD\s+(?:COLUMN\s+)?"
    r"(?:IF\s+NOT\s+EXISTS\s+)?`?[\w$]+`?\s+(?P<definition>[^,;]*?)\s*;?\s*$",
    re.I | re.S,
)


def added_nullable_column(statement: str) -> bool:
    """An ALTER TABLE that adds one column that may be NULL and nothing else (no NOT NULL,
    no key, no generated or default-filled NOT NULL value): rows read before and after
    differ only in a column the project does not name."""
    flat = re.sub(r"\([^()]*\)", "()", _STATEMENT_COMMENT.sub(" ", statement))  # decimal(5,2)
    match = _ADD_COLUMN.match(flat)
    if match is None:
        return False
    definition = match["definition"].upper()
    refused = ("NOT NULL", "PRIMARY", "UNIQUE", "KEY", "AS ", "GENERATED", "REFERENCES")
    return not any(word in definition for word in refused)


class SchemaChanged(SourceReadError):
    """A statement changed (or may have changed) a project table's schema or contents
    outside row events (ALTER, RENAME, DROP, TRUNCATE, CREATE): reading stops before it.

    ``before``: the position the reader had reached (everything before it was yielded);
    ``after``: right after the statement, where reading may go on once the table has been
    re-copied."""

    def __init__(self, table: str, statement: str, before: LogPosition, after: LogPosition) -> None:
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 120 else shown[:117] + "..."
        super().__init__(
            f"change capture stopped at a schema change of table {table}: {shown}",
            hint="update the project file if the table's columns changed, then "
            f"`chariot sync --full-refresh --table {table}`",
        )
        self.table = table
        self.statement = statement
        self.before = before
        self.after = after


_DDL = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(ALTER|RENAME|DROP|TRUNCATE|CREATE)\b", re.I | re.S)
_STATEMENT_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def schema_change_table(
    statement: str, default_schema: str, database: str, tables: Sequence[str]
) -> str | None:
    """The project table a DDL statement touches ("*" for the whole database), else None.

    Conservative on purpose: a statement that merely names the table (CREATE TABLE x LIKE
    t) counts too; stopping needlessly is loud, missing a change would be silent.
    """
    if not _DDL.match(statement):
        return None
    text = _STATEMENT_COMMENT.sub(" ", statement)
    db = re.escape(database)
    if re.search(rf"^\s*DROP\s+(?:DATABASE|SCHEMA)\s+(?:IF\s+EXISTS\s+)?`?{db}`?\s*$", text, re.I):
        return "*"
    for table in tables:
        name = re.escape(table)
        qualified = rf"`?{db}`?\s*\.\s*`?{name}`?(?![\w$])"
        unqualified = rf"(?<![\w$.`])`?{name}`?(?![\w$`.])"
        if re.search(qualified, text, re.I):
            return table
        if default_schema == database and re.search(unqualified, text, re.I):
            return table
    return None


def _never_dropped(current: _Open, why: str) -> None:
    """Changes read but not committed would be lost at this event: stop instead."""
    if not current.changes:
        return
    tables = ", ".join(sorted({change.table for change in current.changes}))
    raise SourceReadError(
        f"change capture cannot apply a change to {tables}: {why}",
        hint="two-phase XA transactions are not supported (XA COMMIT ... ONE PHASE is); "
        f"re-copy with `chariot sync --full-refresh --table {tables.split(', ')[0]}`",
    )


# Server errors of a binary log dump that have their own message and way out.
_LOG_PURGED = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested file is gone
_ACCESS_DENIED = (1227, 1045)  # no REPLICATION SLAVE; bad credentials


def _events(stream: Any, start: LogPosition, user: str) -> Iterable[Any]:
    import pymysql

    from chariot.cdc.preconditions import missing_replication_grant, position_purged

    try:
        yield from stream
    except pymysql.err.MySQLError as error:
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        message = str(error.args[-1]) if error.args else str(error)
        if code == _LOG_PURGED and "log file name" in message:
            raise position_purged(start) from error
        if code == 1227:
            raise missing_replication_grant(user) from error
        if code in _ACCESS_DENIED or isinstance(error, pymysql.err.OperationalError):
            raise ConnectionFailed(
                f"reading the source's binary log: {message}",
                hint="check CHARIOT_MYSQL__* and that the source server is running",
            ) from error
        raise SourceReadError(
            f"reading the source's binary log failed: {message}",
            hint="check the change-capture preconditions with `chariot status`",
        ) from error


def _query_text(event: Any, *, upper: bool = True) -> str:
    query = event.query
    text = query.decode(errors="replace") if isinstance(query, bytes) else str(query)
    return text.strip().upper() if upper else text.strip()


def _changes(event: Any, columns: Sequence[Column]) -> list[Change]:
    try:
        return _decoded_changes(event, columns)
    except KeyError as missing:
        # The row image lacks a column the project names: the table changed under us.
        raise SourceReadError(
            f"change capture: a change to table {event.table} has no column {missing} "
            "(the table was altered after the project file was written)",
            hint=f"update the project file, then `chariot sync --full-refresh --table "
            f"{event.table}`",
        ) from None


def _decoded_changes(event: Any, columns: Sequence[Column]) -> list[Change]:
    from pymysqlreplication.row_event import DeleteRowsEvent, WriteRowsEvent

    table = str(event.table)
    plan = row_plan(columns)
    changes = []
    for row in event.rows:
        if isinstance(event, WriteRowsEvent):
            after = decode_planned(row["values"], row.get("none_sources", {}), plan)
            changes.append(Change(table, "insert", None, after))
        elif isinstance(event, DeleteRowsEvent):
            before = decode_planned(row["values"], row.get("none_sources", {}), plan)
            changes.append(Change(table, "delete", before, None))
        else:
            before = decode_planned(row["before_values"], row.get("before_none_sources", {}), plan)
            after = decode_planned(row["after_values"], row.get("after_none_sources", {}), plan)
            changes.append(Change(table, "update", before, after))
    return changes
