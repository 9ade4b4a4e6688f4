"""The PostgreSQL sink as a comparison side: the same canonical text and MD5, in SQL.

A table with a field SQL cannot encode like MySQL (a timestamp, a boolean, bytes ...)
ships its segments' values instead, encoded in Python with the same rules.

Text keys are compared and ordered ``COLLATE "C"`` (byte order), like the source's binary
key collation, so a segment's bounds select the same rows on both sides. Reads are
autocommit: one short snapshot per statement, nothing that holds back vacuum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from chariot.audit.canonical import Canonical, ordered_total, postgres_digest, postgres_ordered
from chariot.audit.segments import Segment, keys_condition, positional, row_range_condition
from chariot.audit.sides import Checksum, Digests, HashingSide
from chariot.batch import Key
from chariot.config import Settings
from chariot.connections import postgres_connect
from chariot.errors import AuditError

if TYPE_CHECKING:
    import psycopg


class PostgresSide(HashingSide):
    label = "postgres"

    def __init__(self, settings: Settings, canonical: Canonical) -> None:
        super().__init__(canonical)
        self.in_sql = canonical.postgres_in_sql
        self.bisectable = self.in_sql
        self.settings = settings
        schema = settings.postgres.schema_name
        self.table = f'"{schema}"."{canonical.stream.name}"'
        self.key_columns = [f.postgres for f in canonical.key_fields]
        self.order = ", ".join(
            f.postgres + (' COLLATE "C"' if f.kind == "text" else "") for f in canonical.key_fields
        )
        self._connection: psycopg.Connection[Any] | None = None
        self._exists: bool | None = None

    @property
    def connection(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            self._connection = postgres_connect(self.settings.postgres, autocommit=True)
            # A segment's checksum costs the planner enough to JIT-compile it, which took
            # longer (~5 ms) than it saved on 50,000 rows; this session only.
            self._connection.execute("SET jit = off")
        return self._connection

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        try:
            return list(self.connection.execute(sql, tuple(params)).fetchall())  # type: ignore[arg-type]
        except psycopg.Error as error:
            message = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise AuditError(f"postgres table {self.table}: {message}") from error

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    @property
    def exists(self) -> bool:
        """A table never synced reads as empty: every source row is then missing."""
        if self._exists is None:
            found = self.query("SELECT to_regclass(%s)", (self.table,))
            self._exists = found[0][0] is not None
            if self._exists:
                self._check_encoding()
        return self._exists

    def _check_encoding(self) -> None:
        encoding = self.query("SHOW server_encoding")[0][0]
        if str(encoding).upper() not in ("UTF8", "UTF-8"):
            raise AuditError(
                f"postgres database encoding is {encoding}; the audit compares UTF-8 text",
            )

    def where(self, segment: Segment) -> tuple[str, list[Any]]:
        values, param = positional()

        def collated(value: Any) -> str:
            # Only text keys have str values: compare them in byte order, like the source.
            return param(value) + (' COLLATE "C"' if isinstance(value, str) else "")

        return row_range_condition(self.key_columns, segment, collated), values

    def checksum(self, segment: Segment) -> Checksum:
        if not self.exists:
            return Checksum(0, 0)
        if not self.in_sql:
            return super().checksum(segment)
        where, params = self.where(segment)
        if self.canonical.ordered:
            # The rows' texts in key order (the key index), hashed once per segment.
            text, hashed = postgres_ordered(self.canonical)
            count, hexed = self.query(
                f"SELECT count(*), {hashed} FROM (SELECT {text} AS t FROM {self.table} "
                f"WHERE {where} ORDER BY {self.order}) AS rows",
                params,
            )[0]
            return Checksum(int(count), ordered_total(hexed))
        count, total = self.query(
            f"SELECT count(*), coalesce(sum({postgres_digest(self.canonical)}), 0) "
            f"FROM {self.table} WHERE {where}",
            params,
        )[0]
        return Checksum(int(count), int(total))

    def digests(self, segment: Segment) -> Digests:
        if not self.exists:
            return []
        if not self.in_sql:
            return super().digests(segment)
        where, params = self.where(segment)
        width = len(self.key_columns)
        rows = self.query(
            f"SELECT {', '.join(self.key_columns)}, {postgres_digest(self.canonical)} "
            f"FROM {self.table} WHERE {where}",
            params,
        )
        return [(tuple(row[:width]), int(row[width])) for row in rows]

    def split_key(self, segment: Segment, offset: int) -> Key | None:
        keys = self.keys_in(segment, limit=1, offset=offset)
        return keys[0] if keys else None

    def keys_in(self, segment: Segment, limit: int | None = None, offset: int = 0) -> list[Key]:
        if not self.exists:
            return []
        where, params = self.where(segment)
        paging = f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit is not None else ""
        rows = self.query(
            f"SELECT {', '.join(self.key_columns)} FROM {self.table} WHERE {where} "
            f"ORDER BY {self.order}{paging}",
            params,
        )
        return [tuple(row) for row in rows]

    def segment_values(self, segment: Segment) -> Iterable[Sequence[Any]]:
        if not self.exists:
            return []
        where, params = self.where(segment)
        fields = ", ".join(f.postgres for f in self.canonical.fields)
        return self.query(f"SELECT {fields} FROM {self.table} WHERE {where}", params)

    def fetch_values(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        if not self.exists:
            return []
        values, param = positional()
        where = keys_condition(self.key_columns, keys, param)
        fields = ", ".join(f.postgres for f in self.canonical.fields)
        return [
            tuple(row)
            for row in self.query(f"SELECT {fields} FROM {self.table} WHERE {where}", values)
        ]
