"""The PostgreSQL sink: COPY each batch into a staging table, upsert it, move the checkpoint.

One transaction per batch holds the upsert (``INSERT ... SELECT ... ON CONFLICT DO UPDATE``),
the rejects and the high-water mark in ``_chariot_checkpoints``: a crash at any instant leaves
data and checkpoint in step, and replaying a batch rewrites the same values. The documented
transforms (genres array, year) run in SQL over the staged batch (``chariot.transforms``), so
Python never touches a row: the driver's tuples go straight into COPY.

There are no foreign keys, on purpose: ratings and tags may arrive before their movie (the
tables load in parallel sinks, a movie row may be rejected, or the source may simply lack
it), and a sink must keep them rather than drop them; ``chariot audit`` reports orphans.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.config import Settings
from chariot.connections import ensure_postgres_schema
from chariot.sinks.base import RepairableSink
from chariot.sinks.postgres_layout import CHECKPOINTS, REJECTS, PgTable, layout_for
from chariot.streams import Stream

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)


class PostgresSink(RepairableSink):
    name = "postgres"
    lock_wait_seconds: float = 15.0  # for the table lock held by another (or a killed) run

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.schema = settings.postgres.schema_name
        self._connection: psycopg.Connection[Any] | None = None
        self._staged: set[str] = set()  # staging tables created on the current connection
        self._locked: set[str] = set()
        self._clear_rejects: set[str] = set()  # tables whose rejects may now load: clean them

    # -- connection --------------------------------------------------------------------

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The sink's connection, reopened after a failure (staging and locks go with it)."""
        if self._connection is None or self._connection.closed or self._connection.broken:
            from chariot.connections import postgres_connect

            self._drop_connection()
            self._connection = postgres_connect(self.settings.postgres, autocommit=True)
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self._staged.clear()
        self._locked.clear()

    def close(self) -> None:
        self._drop_connection()

    def describe(self) -> str:
        return f"{self.settings.postgres.display_url()} schema {self.schema}"

    # -- Sink --------------------------------------------------------------------------

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        table = layout_for(stream, self.schema)
        connection = self.connection
        self._lock_table(table)
        with connection.transaction():
            # Two runs creating the schema at once would race on the catalog.
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chariot:{self.schema}",)
            )
            ensure_postgres_schema(connection, self.schema)
            for statement in table.create_statements():
                connection.execute(statement)
            if full_refresh:
                for statement in table.empty_statements():
                    connection.execute(statement)
        if self._has_rejects(table):
            self._clear_rejects.add(stream.name)

    def checkpoint(self, stream: Stream) -> Key | None:
        return self.stored_checkpoints().get(stream.name)

    def write(self, batch: Batch) -> WriteResult:
        table = layout_for(batch.stream, self.schema)
        connection = self.connection
        try:
            with connection.transaction():
                if batch.rows:
                    self._upsert(table, batch.rows)
                if batch.rejects:
                    self._record_rejects(table, batch.rejects)
                if batch.last_key:
                    connection.execute(
                        table.save_checkpoint,
                        (batch.stream.name, key_json(batch.last_key), len(batch.rows)),
                    )
        except BaseException:
            self._staged.discard(table.name)  # its creation may have been rolled back
            raise
        return WriteResult(written=len(batch.rows), rejected=list(batch.rejects))

    # -- status ------------------------------------------------------------------------

    def stored_checkpoints(self) -> dict[str, Key]:
        if not self._exists(CHECKPOINTS):
            return {}
        from psycopg import sql

        query = sql.SQL("SELECT table_name, high_water_mark FROM {}").format(
            self._control(CHECKPOINTS)
        )
        return {str(name): tuple(mark) for name, mark in self.connection.execute(query)}

    def recorded_rejects(self, *, limit: int = 100) -> tuple[dict[str, int], list[Reject]]:
        if not self._exists(REJECTS):
            return {}, []
        from psycopg import sql

        rejects = self._control(REJECTS)
        counts_query = sql.SQL("SELECT table_name, count(*) FROM {} GROUP BY 1 ORDER BY 1")
        first_query = sql.SQL(
            "SELECT table_name, row_key, reason FROM {} ORDER BY table_name, first_seen, row_key "
            "LIMIT %s"
        )
        connection = self.connection
        counts = {str(t): int(n) for t, n in connection.execute(counts_query.format(rejects))}
        first = [
            Reject(str(t), tuple(key), str(reason))
            for t, key, reason in connection.execute(first_query.format(rejects), (limit,))
        ]
        return counts, first

    # -- RepairableSink ----------------------------------------------------------------

    def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
        table = layout_for(stream, self.schema)
        try:
            with self.connection.transaction():
                self._upsert(table, rows)
        except BaseException:
            self._staged.discard(table.name)
            raise
        return len(rows)

    def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
        """Delete rows by source key (the PostgreSQL tables have nothing that depends on them)."""
        if not keys:
            return 0
        table = layout_for(stream, self.schema)
        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.executemany(table.delete_by_key, [tuple(key) for key in keys])
            return max(cursor.rowcount, 0)

    # -- internals ---------------------------------------------------------------------

    def _upsert(self, table: PgTable, rows: list[tuple[Any, ...]]) -> None:
        connection = self.connection
        if table.name not in self._staged:
            connection.execute(table.create_staging)
            self._staged.add(table.name)
        with connection.cursor() as cursor:
            with cursor.copy(table.copy_into_staging) as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(table.upsert_from_staging)
            if table.stream.name in self._clear_rejects:
                cursor.execute(table.delete_loaded_rejects, (table.stream.name,))

    def _record_rejects(self, table: PgTable, rejects: list[Reject]) -> None:
        unique = {key_json(reject.key): reject.reason for reject in rejects}
        with self.connection.cursor() as cursor:
            cursor.executemany(
                table.save_reject,
                [(table.stream.name, key, reason) for key, reason in unique.items()],
            )
        self._clear_rejects.add(table.stream.name)

    def _lock_table(self, table: PgTable) -> None:
        """One writer per table and schema: a second concurrent sync would move the
        checkpoint back and forth. The lock is the session's, so a killed run frees it, but
        only once its server process notices: hence a bounded wait, not a refusal."""
        if table.name in self._locked:
            return
        import psycopg

        from chariot.errors import SinkWriteError

        connection = self.connection
        try:
            with connection.transaction():
                connection.execute(
                    f"SET LOCAL lock_timeout = '{int(self.lock_wait_seconds * 1000)}ms'"
                )
                connection.execute(
                    "SELECT pg_advisory_lock(hashtext(%s))",
                    (f"chariot:{self.schema}.{table.name}",),
                )
        except psycopg.errors.LockNotAvailable:
            raise SinkWriteError(
                f"another chariot sync is writing {self.schema}.{table.name} in PostgreSQL",
                hint="wait for it to finish, or stop it; its work is kept",
            ) from None
        self._locked.add(table.name)

    def _has_rejects(self, table: PgTable) -> bool:
        row = self.connection.execute(table.any_rejects, (table.stream.name,)).fetchone()
        return bool(row and row[0])

    def _exists(self, name: str) -> bool:
        row = self.connection.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}"."{name}"',)
        ).fetchone()
        return bool(row and row[0])

    def _control(self, name: str) -> sql.Composed:
        from psycopg import sql

        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))


def key_json(key: Key) -> str:
    """A key as the JSON array stored in ``high_water_mark`` / ``row_key``."""
    return json.dumps(list(key), default=str, ensure_ascii=False)
