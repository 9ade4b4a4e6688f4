"""The columnar read path: each keyset page straight into a pyarrow Table (``chariot[fast]``).

The same statement as the row reader's page (``sql._PageReader``: the columns, the reject
reason the server computes, ``WHERE key > mark ORDER BY key LIMIT n``) is run by connectorx,
which parses the MySQL protocol in Rust into Arrow columns without a Python object per value
(measured on this machine: ~3.5M rows/s where the row path's mysqlclient gives ~0.45M). A
page becomes a ``Batch`` carrying the Table (``Batch.columns``); its Python ``rows`` are
built only when a sink asks for them, so the PostgreSQL first load (Arrow -> CSV -> COPY)
never builds any.

Only streams whose every column comes out of connectorx as EXACTLY the value contract's value
take this path (``arrow_unsupported`` says why a stream does not; it then reads through the
row reader, as before):

* integers of every width, signed or unsigned, and ``year`` -> int (a ``tinyint(1)`` or any
  integer stored as PostgreSQL boolean -> bool, cast in Arrow);
* ``decimal(p,s)`` with p <= 28 and s <= 10 -> Decimal of scale s (connectorx goes through a
  96-bit decimal into decimal128(38,10): wider precision does not read at all, a larger
  scale would be rounded; the page is cast back to decimal128(p,s), exactly);
* ``double`` -> float (a ``float`` column comes as a single-precision value, not the
  double the row path parses from the server's text: not taken);
* ``date`` -> date; ``datetime`` -> naive datetime (microseconds);
* ``char``, ``varchar``, the ``text`` family and ``enum`` -> str.

Not taken: ``timestamp`` (connectorx's session cannot be told time_zone '+00:00'), ``time``
(connectorx refuses values beyond 24 hours), ``float``, ``bit``, ``set``, ``json``, ``uuid``,
binary types, and a key with a column other than an integer (the page's mark is written into
the SQL text, since connectorx binds no parameters: integers only, so nothing needs quoting).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from chariot.batch import Batch, Key, Reject
from chariot.config import MySQLSettings
from chariot.errors import SourceReadError
from chariot.project.column_types import INTEGERS, TEXTS, parsed_source_type
from chariot.redaction import redact
from chariot.sources.arrow_rules import arrow_screens, screened_rejects
from chariot.streams import Column, Stream

if TYPE_CHECKING:
    from chariot.sources.sql import SqlSource

log = logging.getLogger(__name__)

# URL options the Arrow reader honours as the row reader does; any other keeps the row reader.
PORTABLE_OPTIONS = {"charset", "local_infile"}
# Rows per connectorx call: each call opens its own connections and asks for the result's
# types first, ~10 ms here, so a call reads several batches (sliced into ``batch_size``
# rows for the sinks: the checkpoint still moves per batch). Measured on 1M ratings at load
# ~10 (2 cores): 50,000-row calls 3.4-4.9 s, 200,000-row calls 2.0-4.4 s. A page is also
# bounded in bytes (the rows of the page before tell their width), so that wide rows keep
# the process small. Pages start at one batch (the width is not known before) and double:
# the reader stays only a few batches ahead of the slowest writer at first.
PAGE_ROWS = 200_000
PAGE_BYTES = 64 << 20
DECIMAL_MAX_PRECISION = 28  # connectorx's decimal is 96 bits: 28 digits
DECIMAL_MAX_SCALE = 10  # ... written into decimal128(38, 10)


def arrow_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("connectorx") is not None and find_spec("pyarrow") is not None


def arrow_url(settings: MySQLSettings) -> str | None:
    """The connectorx URL of the source, or None when the Arrow reader is off, not installed,
    the source is not on this machine (``sql.on_this_machine``: connectorx does not use TLS),
    or not a plain MySQL/MariaDB URL (other drivers, TLS options)."""
    from chariot.sources.sql import on_this_machine

    if not settings.arrow_reader or not arrow_installed() or not on_this_machine(settings):
        return None
    address = settings.address()
    if not address.is_mysql or set(address.query) - PORTABLE_OPTIONS:
        return None
    user = quote(address.user or "", safe="")
    password = quote(address.password or "", safe="")
    return (
        f"mysql://{user}:{password}@{address.host or '127.0.0.1'}:{address.port or 3306}/"
        f"{quote(address.database or '', safe='')}"
    )


def arrow_unsupported(stream: Stream) -> str | None:
    """Why ``stream`` must be read row by row (None: the Arrow reader gives its exact values)."""
    for column in stream.columns:
        reason = _column_unsupported(column)
        if reason is not None:
            return f"column {column.source} ({column.source_type or 'no source type'}): {reason}"
    for name in stream.key:
        source = _parsed(stream.column(name))
        if source is None or source.name not in INTEGERS:
            return f"key column {name} is not an integer"
    return None


def _parsed(column: Column) -> Any:
    return parsed_source_type(column.source_type)


def _column_unsupported(column: Column) -> str | None:
    source = _parsed(column)
    if source is None:
        return "no known source type"
    if source.name in (*INTEGERS, "year", "double", "date", "datetime", *TEXTS, "enum"):
        return None
    if source.name == "decimal":
        if source.precision <= DECIMAL_MAX_PRECISION and source.scale <= DECIMAL_MAX_SCALE:
            return None
        return f"beyond decimal({DECIMAL_MAX_PRECISION},{DECIMAL_MAX_SCALE})"
    return "not read exactly into Arrow"


def _target_type(column: Column) -> Any:
    """The Arrow type a page's column is cast to (None: as connectorx gives it)."""
    import pyarrow as pa

    source = _parsed(column)
    postgres = column.postgres.split("(")[0].strip()
    if source.name in INTEGERS and postgres == "boolean":
        return pa.bool_()
    if source.name == "decimal":
        return pa.decimal128(source.precision, source.scale)
    if source.name == "datetime":
        return pa.timestamp("us")
    return None


class ArrowPageReader:
    """The keyset walk of ``sql._PageReader``, each page read by connectorx into Arrow."""

    def __init__(self, source: SqlSource, stream: Stream, batch_size: int, url: str) -> None:
        from chariot.sources.sql import _PageReader

        self.rows_reader = _PageReader(source, stream, batch_size)  # its SQL and NULL-key step
        self.source = source
        self.stream = stream
        self.batch_size = batch_size
        self.page_rows = batch_size  # the first page: one batch, until its width is known
        self.url = url
        self.casts = [(i, _target_type(column)) for i, column in enumerate(stream.columns)]
        self.casts = [(i, target) for i, target in self.casts if target is not None]
        # The reject rules screened in Arrow (``arrow_rules``), else the server's CASE.
        self.screens = arrow_screens(stream, self.rows_reader.dialect)
        # Compiled for no driver: named parameters (no doubled '%'), every value inline.
        dialect_class: Any = type(source.engine.dialect)
        self.dialect = dialect_class(paramstyle="named")

    def batches(self, after: Key | None) -> Iterator[Batch]:
        reader = self.rows_reader
        pending: list[Reject] = self.source._run(self.stream, reader._null_key_rejects)
        while True:
            page = self._page(after)
            if page.num_rows == 0:
                break
            for start in range(0, page.num_rows, self.batch_size):
                rows = page.slice(start, self.batch_size)
                # The mark is the key of the last row read, rejects included (as the row path).
                last = rows.slice(rows.num_rows - 1)
                after = tuple(last.column(name)[0].as_py() for name in self.stream.key)
                columns, rejects = self._split(rows)
                yield Batch(self.stream, None, after, pending + rejects, columns=columns)
                pending = []
            if page.num_rows < self.page_rows:
                return
            width = max(page.nbytes // page.num_rows, 1)  # bytes per row, as Arrow holds them
            grown = min(2 * self.page_rows, PAGE_ROWS, PAGE_BYTES // width)
            self.page_rows = self._whole_batches(grown)
        if pending:
            yield Batch(self.stream, [], after or (), pending)

    def _whole_batches(self, rows: int) -> int:
        return max(1, rows // self.batch_size) * self.batch_size

    def statement(self, after: Key | None) -> str:
        from sqlalchemy import select

        reader = self.rows_reader
        if self.screens is not None:
            query = select(*reader.columns)
        else:
            query = select(*reader.columns, reader.reason.label("chariot_reject_reason"))
        query = query.where(reader._after(after)).order_by(*reader.keys).limit(self.page_rows)
        compiled = query.compile(dialect=self.dialect, compile_kwargs={"literal_binds": True})
        return str(compiled)

    def _page(self, after: Key | None) -> Any:
        import connectorx

        sql = self.statement(after)
        attempts = self.source.settings.run.max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return connectorx.read_sql(self.url, sql, return_type="arrow")
            except Exception as error:  # connectorx raises RuntimeError for server errors
                if attempt < attempts:
                    log.warning(
                        "source read failed, retrying",
                        extra={"table": self.stream.name, "attempt": attempt},
                    )
                    time.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
                    continue
                raise SourceReadError(
                    f"reading table {self.stream.source_table} from "
                    f"{self.source.describe()} failed: {redact(_first_line(error))}",
                    hint="the sinks keep their checkpoints; re-run `chariot sync` to resume "
                    "(CHARIOT_MYSQL__ARROW_READER=false reads row by row)",
                ) from None
        raise AssertionError("unreachable")

    def _split(self, page: Any) -> tuple[Any, list[Reject]]:
        """The page's loadable rows (reason NULL) as the contract's columns, and the rejects."""
        import pyarrow.compute as pc

        if self.screens is not None:  # no reason column: the rules are screened here
            return screened_rejects(self.stream, self._cast(page), self.screens)
        reasons = page.column(page.num_columns - 1)
        page = page.remove_column(page.num_columns - 1)
        rejects: list[Reject] = []
        if reasons.null_count < len(reasons):
            refused = page.filter(pc.is_valid(reasons))
            keys = zip(*(refused.column(name).to_pylist() for name in self.stream.key), strict=True)
            texts = reasons.filter(pc.is_valid(reasons)).to_pylist()
            rejects = [
                Reject(self.stream.name, tuple(key), str(text))
                for key, text in zip(keys, texts, strict=True)
            ]
            page = page.filter(pc.is_null(reasons))
        return self._cast(page), rejects  # after the rejects are gone, as the row path

    def _cast(self, page: Any) -> Any:
        """The page's columns as the value contract's types, named as the stream's. With
        screened rules this comes first: such a stream has no rule a cast could trip on
        (no zero date, no boolean), and a decimal is exact in its own type."""
        import pyarrow as pa

        arrays = list(page.columns)
        for position, target in self.casts:
            arrays[position] = arrays[position].cast(target)
        return pa.table(arrays, names=list(self.stream.source_columns))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
