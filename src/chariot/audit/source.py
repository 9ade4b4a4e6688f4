"""The MySQL/MariaDB source as a comparison side; also where boundaries and repair rows come from.

Reads run in autocommit (one short snapshot per statement), so an audit never holds a
transaction open across segments. Key order and key comparison are the source's own (the
primary key's collation): boundaries are read with ``ORDER BY key LIMIT 1 OFFSET n``.

The side holds only the rows a sync would load: a row that the reader's reject rules
(``chariot.validation``, the same SQL) refuse is left out of every read and counted apart,
so a sink is compared with what a full refresh would give it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from chariot.audit.canonical import (
    Canonical,
    arith_total,
    mysql_arith,
    mysql_digest,
    mysql_ordered,
    ordered_total,
)
from chariot.audit.segments import Segment, keys_condition, positional, range_condition
from chariot.audit.sides import KEYS_PER_QUERY, Checksum, Digests, HashingSide
from chariot.batch import Key
from chariot.config import Settings
from chariot.connections import mysql_connect
from chariot.errors import AuditError
from chariot.streams import Stream

if TYPE_CHECKING:
    import pymysql.connections


# Room for one ordered segment's text (``Canonical.ordered`` keeps it far smaller); a
# text cut short would only make the segment differ, and its rows be compared one by one.
GROUP_CONCAT_BYTES = 1 << 30


@dataclass(frozen=True)
class RowCounts:
    loadable: int  # rows a sync loads: what the sinks are compared with
    rejected: int  # rows the reader's reject rules refuse


@cache  # compiling it took ~0.1 s, and every side of every segment reader needs it
def reject_reason_sql(stream: Stream) -> str:
    """The reader's reject rules for this stream as MySQL text: a reason, or NULL."""
    from sqlalchemy.dialects import mysql

    from chariot.sources.sql import source_table
    from chariot.validation import reject_reason

    reason = reject_reason(stream, source_table(stream), "mysql")
    return str(reason.compile(dialect=mysql.dialect(), compile_kwargs={"literal_binds": True}))


class SourceSide(HashingSide):
    """The source table of one stream. SQL does the canonical text and MD5, unless a field
    needs Python (``canonical.source_in_sql``: a regular-expression capture, a timestamp,
    the graph's genre sets): then the rows are read and encoded here."""

    label = "mysql"

    def __init__(self, settings: Settings, canonical: Canonical) -> None:
        super().__init__(canonical)
        if not settings.mysql.is_mysql:
            raise AuditError(
                f"the audit reads MySQL or MariaDB sources, not {settings.mysql.display_url()}",
                hint="unset CHARIOT_MYSQL__URL or point it at MySQL/MariaDB",
            )
        self.settings = settings
        self.stream = canonical.stream
        self.table = f"`{self.stream.source_table}`"
        self.key_columns = [f"`{name}`" for name in self.stream.key]
        self.reject_reason = reject_reason_sql(self.stream)
        self.loadable = f"({self.reject_reason}) IS NULL"
        self.python_mode = not canonical.source_in_sql
        self.bisectable = not self.python_mode
        self._connection: pymysql.connections.Connection | None = None
        self.scan_ordered: bool | None = None  # see ``_integer_primary_key``
        self._primary: list[tuple[str, str]] | None = None
        self._rows_connection: Any = None  # mysqlclient, for reads of many rows
        self._rows_fast: bool | None = None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def connection(self) -> pymysql.connections.Connection:
        if self._connection is None:
            self._connection = mysql_connect(self.settings.mysql)
            self._connection.autocommit(True)
            if self.canonical.ordered:
                with self._connection.cursor() as cursor:  # an ordered segment's whole text
                    cursor.execute(f"SET SESSION group_concat_max_len = {GROUP_CONCAT_BYTES}")
        return self._connection

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import pymysql

        return self._fetch(self.connection, pymysql.MySQLError, sql, params)

    def many_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``query`` for a read of many small rows (every row's key and digest): through
        mysqlclient when the ``chariot[fast]`` extra is installed, rows parsed in C
        (measured: 986k (key, digest) rows in 3.2-4.1 s against PyMySQL's 6.1-6.8 s;
        a sink behind the log differs in every segment and has every row read so)."""
        connection = self._fast_rows()
        if connection is None:
            return self.query(sql, params)
        import MySQLdb

        return self._fetch(connection, MySQLdb.MySQLError, sql, params)

    def _fetch(
        self, connection: Any, errors: type[Exception], sql: str, params: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """Every row of ``sql`` through either driver; its errors as one ``AuditError``."""
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, tuple(params))
                return list(cursor.fetchall())
        except errors as error:
            raise AuditError(
                f"source table {self.stream.source_table}: {_mysql_message(error)}",
                hint=_mysql_hint(error),
            ) from error

    def _fast_rows(self) -> Any:
        if self._rows_fast is None:
            self._rows_fast = False
            from chariot.sources.sql import fast_driver_url

            url = fast_driver_url(self.settings.mysql)
            if url is not None:
                self._rows_connection = _mysqlclient(url)
                self._rows_fast = self._rows_connection is not None
        return self._rows_connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._rows_connection is not None:
            self._rows_connection.close()
            self._rows_connection = None
            self._rows_fast = None

    def where(self, segment: Segment) -> tuple[str, list[Any]]:
        values, param = positional()
        return f"{range_condition(self.key_columns, segment, param)} AND {self.loadable}", values

    def with_keys(self, keys: Sequence[Key]) -> tuple[str, list[Any]]:
        values, param = positional()
        return f"({keys_condition(self.key_columns, keys, param)}) AND {self.loadable}", values

    # -- what the whole audit needs once per stream ------------------------------------------

    def check_exists(self) -> None:
        found = self.query(
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            (self.stream.source_table,),
        )
        if not found[0][0]:
            raise AuditError(
                f"source table {self.stream.source_table} does not exist in "
                f"{self.settings.mysql.display_url()}",
                hint="load the source first, e.g. `chariot seed movielens`",
            )

    def count_rows(self) -> RowCounts:
        # One scan of the table counts both (COUNT(*) alone would read it all the same).
        rejected = f"COALESCE(SUM(({self.reject_reason}) IS NOT NULL), 0)"
        total, refused = self.query(f"SELECT COUNT(*), {rejected} FROM {self.table}")[0]
        return RowCounts(loadable=int(total) - int(refused), rejected=int(refused))

    def count_all(self) -> int:
        """Every row, loadable or not (InnoDB counts a small index: no row is evaluated)."""
        return int(self.query(f"SELECT COUNT(*) FROM {self.table}")[0][0])

    def estimated_rows(self) -> int:
        """The server's estimate of the table's rows (InnoDB: a guess, kept up to date)."""
        found = self.query(
            "SELECT COALESCE(MAX(table_rows), 0) FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            (self.stream.source_table,),
        )
        return int(found[0][0] or 0)

    def key_is_primary(self) -> bool:
        """Whether the stream's key is the table's primary key (no NULL in any key column:
        every row is on the boundaries' walk)."""
        return [name.lower() for name, _ in self._primary_key()] == [
            name.lower() for name in self.stream.key
        ]

    def _primary_key(self) -> list[tuple[str, str]]:
        """(column, data type) of the table's primary key, in key order."""
        if self._primary is None:
            found = self.query(
                "SELECT column_name, data_type FROM information_schema.statistics "
                "JOIN information_schema.columns USING (table_schema, table_name, column_name) "
                "WHERE table_schema = DATABASE() AND table_name = %s "
                "AND index_name = 'PRIMARY' ORDER BY seq_in_index",
                (self.stream.source_table,),
            )
            self._primary = [(str(name), str(kind).lower()) for name, kind in found]
        return self._primary

    def count_after(self, key: Key | None) -> int:
        """Every row above ``key`` (all rows for None), loadable or not."""
        values, param = positional()
        where = range_condition(self.key_columns, Segment(key, None), param)
        return int(self.query(f"SELECT COUNT(*) FROM {self.table} WHERE {where}", values)[0][0])

    def boundaries(self, segment_rows: int) -> list[Key]:
        """Every ``segment_rows``-th key, walking the primary key once in short queries.
        Rejected rows count too (any key bounds a segment; the reject rules, evaluated per
        row, doubled the walk's cost); a NULL key never bounds one."""
        order = ", ".join(self.key_columns)
        keyed = " AND ".join(f"{column} IS NOT NULL" for column in self.key_columns)
        found: list[Key] = []
        last: Key | None = None
        while True:
            values, param = positional()
            where = f"{range_condition(self.key_columns, Segment(last, None), param)} AND {keyed}"
            params = values
            rows = self.query(
                f"SELECT {order} FROM {self.table} WHERE {where} "
                f"ORDER BY {order} LIMIT 1 OFFSET {segment_rows - 1}",
                params,
            )
            if not rows:
                return found
            last = tuple(rows[0])
            found.append(last)

    # -- the Side interface -----------------------------------------------------------------

    def checksum(self, segment: Segment) -> Checksum:
        if self.python_mode:
            return super().checksum(segment)
        where, params = self.where(segment)
        if self.canonical.ordered:
            order = self._text_order()
            hint = " FORCE INDEX (PRIMARY)" if order is None else ""
            count, hexed = self.query(
                f"SELECT COUNT(*), {mysql_ordered(self.canonical, order)} "
                f"FROM {self.table}{hint} WHERE {where}",
                params,
            )[0]
            return Checksum(int(count), ordered_total(hexed))
        sums = ", ".join(f"COALESCE(SUM({part}), 0)" for part in self._digest_parts())
        count, *totals = self.query(
            f"SELECT COUNT(*), {sums} FROM {self.table} WHERE {where}", params
        )[0]
        return Checksum(int(count), self._combine(totals))

    def _text_order(self) -> str | None:
        """How an ordered checksum orders a segment's rows like every other side (numbers
        by value, text by its bytes): None when the primary-key range scan already reads
        them so (an integer primary key: no sort), else an ORDER BY list."""
        if _integer_primary_key(self, self.stream):
            return None
        parts = []
        for name in self.stream.key:
            column = f"`{name}`"
            numeric = self.stream.column(name).kind in ("int", "bigint", "decimal")
            parts.append(column if numeric else f"CAST({column} AS BINARY)")
        return ", ".join(parts)

    def _digest_parts(self) -> list[str]:
        if self.canonical.flavor == "arith":
            return [mysql_arith(self.canonical)]
        return [mysql_digest(self.canonical)]

    def _combine(self, parts: Sequence[Any]) -> int:
        if self.canonical.flavor == "arith":
            return arith_total(parts[0])
        return int(parts[0])

    def digests(self, segment: Segment) -> Digests:
        if self.python_mode:
            return super().digests(segment)
        where, params = self.where(segment)
        width = len(self.key_columns)
        parts = ", ".join(self._digest_parts())
        rows = self.many_rows(
            f"SELECT {', '.join(self.key_columns)}, {parts} FROM {self.table} WHERE {where}", params
        )
        return [(tuple(row[:width]), self._combine(row[width:])) for row in rows]

    def split_key(self, segment: Segment, offset: int) -> Key | None:
        keys = self.keys_in(segment, limit=1, offset=offset)
        return keys[0] if keys else None

    def keys_in(self, segment: Segment, limit: int | None = None, offset: int = 0) -> list[Key]:
        where, params = self.where(segment)
        order = ", ".join(self.key_columns)
        paging = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        rows = self.query(
            f"SELECT {order} FROM {self.table} WHERE {where} ORDER BY {order}{paging}", params
        )
        return [tuple(row) for row in rows]

    def segment_values(self, segment: Segment) -> Iterable[Sequence[Any]]:
        where, params = self.where(segment)
        return self._values(where, params)

    def fetch_values(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        return self._values(*self.with_keys(keys))

    def _values(self, where: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if self.python_mode:
            convert = self.canonical.source_values
            return [convert(row) for row in self._contract(self._raw(where, params))]
        fields = ", ".join(str(f.mysql) for f in self.canonical.fields)
        return [
            tuple(row)
            for row in self.query(f"SELECT {fields} FROM {self.table} WHERE {where}", params)
        ]

    # -- raw source rows, for the repair -----------------------------------------------------

    def raw_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        """Source rows (``stream.source_columns`` order, driver types) with these keys."""
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), KEYS_PER_QUERY):
            rows.extend(self._raw(*self.with_keys(keys[start : start + KEYS_PER_QUERY])))
        return rows

    def raw_rows_in(self, segment: Segment) -> list[tuple[Any, ...]]:
        where, params = self.where(segment)
        return self._raw(where, params)

    def contract_rows_in(self, segment: Segment) -> list[tuple[Any, ...]]:
        """The segment's rows as a sync reads them (the value contract)."""
        return self._contract(self.raw_rows_in(segment))

    def contract_rows(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        return self._contract(self.raw_rows(keys))

    def keys_referencing(self, columns: Sequence[str], values: Sequence[Key]) -> list[Key]:
        """Keys of the source rows whose ``columns`` equal one of ``values`` (any row, a
        rejected one too: what a foreign-key action changed)."""
        quoted = [f"`{name}`" for name in columns]
        keys: list[Key] = []
        for start in range(0, len(values), KEYS_PER_QUERY):
            params, param = positional()
            chunk = values[start : start + KEYS_PER_QUERY]
            where = keys_condition(quoted, chunk, param)
            sql = f"SELECT {', '.join(self.key_columns)} FROM {self.table} WHERE {where}"
            keys.extend(tuple(row) for row in self.query(sql, params))
        return keys

    def _contract(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        from chariot.sources.values import convert_source_rows

        return convert_source_rows(self.stream, rows)

    def _raw(self, where: str, params: list[Any]) -> list[tuple[Any, ...]]:
        columns = ", ".join(f"`{name}`" for name in self.stream.source_columns)
        order = ", ".join(self.key_columns)
        return [
            tuple(row)
            for row in self.query(
                f"SELECT {columns} FROM {self.table} WHERE {where} ORDER BY {order}", params
            )
        ]


def _mysqlclient(url: str) -> Any:
    """A mysqlclient connection to the source as ``url`` names it (the same options the
    sync's fast reader gets), autocommit, session as every source connection; None when it
    cannot be opened (PyMySQL, which opened the same server, is used then)."""
    import MySQLdb
    from sqlalchemy.engine import make_url

    from chariot.connections import SOURCE_SESSION_SETUP

    parsed = make_url(url)
    args, options = parsed.get_dialect()().create_connect_args(parsed)
    options = {
        **options,
        "autocommit": True,
        "init_command": SOURCE_SESSION_SETUP,
        "connect_timeout": 10,
    }
    try:
        return MySQLdb.connect(*args, **options)
    except MySQLdb.MySQLError:
        return None


def _integer_primary_key(side: SourceSide, stream: Stream) -> bool:
    """Whether the stream's key is the table's primary key, of integer columns only."""
    if side.scan_ordered is None:
        integers = ("tinyint", "smallint", "mediumint", "int", "bigint")
        side.scan_ordered = side.key_is_primary() and all(
            kind in integers for _, kind in side._primary_key()
        )
    return side.scan_ordered


def _mysql_message(error: BaseException) -> str:
    args: tuple[Any, ...] = getattr(error, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} (MySQL error {args[0]})"
    return str(error) or type(error).__name__


def _mysql_hint(error: BaseException) -> str | None:
    code = error.args[0] if getattr(error, "args", None) else None
    if code in (1305, 1064):  # no such function / syntax: an old server
        return "the audit needs MySQL 8.0+ or MariaDB 10.3+ (REGEXP_SUBSTR, CONV, MD5)"
    if code in (2006, 2013, 2003):
        return "the source server went away; re-run the audit"
    return None
