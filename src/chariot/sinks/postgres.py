"""The PostgreSQL sink: COPY each batch into a staging table, upsert it, move the checkpoint.

One transaction per batch holds the upsert (``INSERT ... SELECT ... ON CONFLICT DO UPDATE``),
the rejects and the high-water mark in ``_chariot_checkpoints``: a crash at any instant leaves
data and checkpoint in step, and replaying a batch rewrites the same values. The project's
transforms run in SQL over the staged batch (``chariot.project.expressions``), so Python
never touches a row: the reader's tuples go straight into COPY (only a ``python``
transform's column is computed in Python, and staged with its row). A value PostgreSQL
refuses (JSON it does not accept, a number beyond a type the project narrowed) fails its
batch, which is bisected down to the row: that row is a reject with its key, the rest load.

Change capture (``apply``) goes the same way: one transaction per batch of changes holds
the deletes (one statement per table, ``postgres_changes``), the upserts through the same
staging path, the rejects and the log position of every table it covers.

There are no foreign keys, on purpose: ratings and tags may arrive before their movie (the
tables load in parallel sinks, a movie row may be rejected, or the source may simply lack
it), and a sink must keep them rather than drop them; ``chariot audit`` reports orphans.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import Settings
from chariot.connections import ensure_postgres_schema
from chariot.errors import Busy
from chariot.keys import key_from_json, key_getter, key_to_json
from chariot.lease import DEAD_HOLDER_GRACE_SECONDS, holder_of, is_dead_local_process, keep_trying
from chariot.sinks import postgres_changes as changes_sql
from chariot.sinks.base import ChangeSink
from chariot.sinks.postgres_layout import (
    CHECKPOINTS,
    LOG_POSITIONS,
    REJECTS,
    PgTable,
    control_statements,
    layout_for,
)
from chariot.sinks.postgres_lease import lock_holder, lock_key
from chariot.streams import Stream
from chariot.sync.pause_hook import pause_before_commit

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)


class PostgresSink(ChangeSink):
    name = "postgres"
    max_changes_per_transaction = None  # a whole source transaction, however large

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.schema = settings.postgres.schema_name
        self._connection: psycopg.Connection[Any] | None = None
        self._staged: set[str] = set()  # staging tables created on the current connection
        self._locked: set[str] = set()
        self._clear_rejects: set[str] = set()  # tables whose rejects may now load: clean them
        self._rejects_known: set[str] = set()  # tables whose rejects were looked for (apply)
        # Tables whose next batch's keys are proven new (``_prove_new``): COPY, no upsert.
        self._new_keys: set[str] = set()
        self._keyed: set[str] = set()  # tables known (this session) to have their primary key
        # The control tables were created (or found) by a committed prepare of this sink:
        # the next tables' prepares skip those six statements (a no-change sync's most).
        self._controls_ready = False
        # Tables this session dropped the key of (a first load): the last key it COPYed in.
        self._keyless_last: dict[str, tuple[int, ...] | None] = {}

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
        self._rejects_known.clear()
        self._new_keys.clear()  # the lease lapsed with the session: someone may have written
        self._keyed.clear()
        self._keyless_last.clear()

    def close(self) -> None:
        self._drop_connection()

    def describe(self) -> str:
        return f"{self.settings.postgres.display_url()} schema {self.schema}"

    # -- Sink --------------------------------------------------------------------------

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        table = layout_for(stream, self.schema)
        connection = self.connection
        self._lock_table(table)
        with connection.transaction(), connection.cursor() as cursor:
            self._create(table.create_statements(controls=not self._controls_ready))
            if full_refresh:
                for statement in table.empty_statements():
                    connection.execute(statement)
                _touched().invalidate_incremental(cursor, self.schema, stream)
            first_copy = full_refresh or self._first_copy(table)
            if first_copy:
                connection.execute(table.mark_loading, (table.name, self.lease_owner.describe()))
        self._controls_ready = True
        if self._has_rejects(table):
            self._clear_rejects.add(stream.name)
        self._ensure_key(table)  # a first load that ended before its key was built
        self._prove_new(table)
        if first_copy and table.name in self._new_keys and table.integer_key:
            self._drop_key(table)

    def _prove_new(self, table: PgTable) -> None:
        """Whether this table run may COPY its batches straight in (the first-load path)
        instead of staging and upserting them (measured on 1M ratings, batches of 50,000:
        COPY into the keyed, logged table 2.6x the rows/s of COPY to staging + INSERT ...
        ON CONFLICT DO UPDATE).

        Proof that every key of every batch is new to the table: the table is empty now,
        under this sink's writer lease (no other command writes it while we hold it), and
        the reader hands over keys in strictly increasing order, each batch after the last,
        so no batch repeats a key a previous batch of this run wrote. It lapses for the rest
        of the run as soon as anything else writes the table in this process: change capture
        (``apply``; with a watermark snapshot the log applier may write rows above the
        keyset mark between batches), a repair (``upsert_rows``, ``delete_keys``), or a new
        session (the lease went with the old one). Rejects recorded before the load also
        disable it (a loaded row must clear its old reject, which the staging path does);
        rejects of this load do not (their keys never come again in this read).

        Even a wrong proof cannot double or lose a row: a table with a checkpoint keeps its
        primary key, so a key already present makes the COPY fail (unique violation), and
        that batch is written again through the upsert, in the same transaction as its
        checkpoint; a first load copies without the key and builds it at the end
        (``_drop_key`` says why that is safe)."""
        self._new_keys.discard(table.name)
        if table.name in self._clear_rejects:
            return
        row = self.connection.execute(table.is_empty).fetchone()
        if row and row[0]:
            self._new_keys.add(table.name)

    def table_complete(self, stream: Stream) -> None:
        table = layout_for(stream, self.schema)
        self._ensure_key(table)
        with self.connection.transaction():
            self.connection.execute(table.clear_loading, (table.name,))
            # A table following the log: the log alone carries its later rows now.
            self.connection.execute(changes_sql.set_copied(self.schema), (True, table.name))

    # -- the key of a first load ---------------------------------------------------------

    def _drop_key(self, table: PgTable) -> None:
        """A first load (the table empty, no checkpoint yet, keys proven new) COPYs into the
        table without its primary key and builds it once at the end (``table_complete``):
        measured on 1M ratings, COPY into the keyed table 3.3-5.6 s, into the table without
        it 1.5-1.9 s plus 0.6-0.9 s to build it.

        Exactly-once holds without the key: every batch still commits with its checkpoint,
        and only this run's COPYs write the table until the key is back, in strictly
        increasing key order from the first row (no checkpoint: the reader starts at the
        beginning), each batch once (a retry after a lost connection is no longer proven
        new). Anything else that writes the table builds the key first (``_ensure_key``:
        an upsert, change capture, a repair, a batch PostgreSQL refuses a value of), and so
        does the next run after a kill: the table then holds exactly the rows up to its
        checkpoint, and the load goes on through the keyed path."""
        connection = self.connection
        with connection.transaction():
            row = connection.execute(table.key_constraint).fetchone()
            if row is not None:
                connection.execute(table.drop_key(str(row[0])))
        self._keyed.discard(table.name)
        self._keyless_last[table.name] = None  # the table is empty (``_prove_new``)

    def _extends_keyless_load(self, table: PgTable, batch: Batch) -> tuple[int, ...] | None:
        """Whether a batch may be COPYed into the table while it has no key: its keys (all
        integers) strictly increase and its first is strictly above the last key this session
        COPYed in since the table was empty, so no key can be there twice. Anything else (a
        replay, an older batch, a batch of rejects only) builds the key and is upserted.
        Returns the batch's last key if it may, else None."""
        if table.name not in self._new_keys or table.name not in self._keyless_last:
            return None
        span = _increasing_int_keys(batch)
        if span is None:
            return None
        last = self._keyless_last[table.name]
        return span[1] if last is None or span[0] > last else None

    def _ensure_key(self, table: PgTable) -> None:
        """Build the table's primary key if a first load dropped it. Outside any transaction
        (what it learns is kept for the session). Rows sharing a key (a first load cannot
        write any; this is the safety net the key was) keep the one written last."""
        import psycopg
        from psycopg.pq import TransactionStatus

        if table.name in self._keyed:
            return
        self._keyless_last.pop(table.name, None)
        connection = self.connection
        if connection.info.transaction_status != TransactionStatus.IDLE:
            raise AssertionError("the key is built outside a batch's transaction")
        with connection.transaction():
            if connection.execute(table.key_constraint).fetchone() is None:
                try:
                    with connection.transaction():
                        connection.execute(table.add_key)
                except psycopg.errors.UniqueViolation:
                    log.warning(
                        "rows sharing a key after a first load: keeping the last written",
                        extra={"sink": self.name, "table": table.name},
                    )
                    connection.execute(table.delete_duplicate_keys)
                    connection.execute(table.add_key)
        self._keyed.add(table.name)

    def _first_copy(self, table: PgTable) -> bool:
        row = self.connection.execute(table.has_checkpoint, (table.name,)).fetchone()
        return not (row and row[0])

    def checkpoint(self, stream: Stream) -> Key | None:
        return self.stored_checkpoints().get(stream.name)

    def write(self, batch: Batch) -> WriteResult:
        table = layout_for(batch.stream, self.schema)
        self._lock_table(table)  # again after a reconnection: the lock went with the session
        keyless_last = None
        if table.name in self._keyless_last:  # this session dropped the key (a first load)
            keyless_last = self._extends_keyless_load(table, batch)
        if table.name in self._keyless_last and keyless_last is None:
            self._new_keys.discard(table.name)  # a replay or an older batch: the key first
        if table.name not in self._new_keys:
            self._ensure_key(table)  # an upsert needs it (ON CONFLICT)
        try:
            result = self._write(table, batch)
        except _NeedsKey:  # rolled back: written again through the upsert, key first
            self._new_keys.discard(table.name)
            self._ensure_key(table)
            return self._write(table, batch)
        if table.name in self._keyless_last:  # committed key-less: later ones must go above
            assert keyless_last is not None  # else the key was built before the write
            self._keyless_last[table.name] = keyless_last
        return result

    def _write(self, table: PgTable, batch: Batch) -> WriteResult:
        connection = self.connection
        rejects = list(batch.rejects)
        try:
            with connection.transaction(), connection.cursor() as cursor:
                _touched().invalidate_incremental(cursor, self.schema, batch.stream)
                unstorable = self._write_rows(table, batch) if len(batch) else []
                rejects += unstorable
                if rejects:
                    self._record_rejects(table, rejects)
                if batch.last_key:
                    written = len(batch) - len(unstorable)
                    connection.execute(
                        table.save_checkpoint,
                        (batch.stream.name, key_json(batch.last_key), written),
                    )
        except BaseException:
            self._staged.discard(table.name)  # its creation may have been rolled back
            raise
        return WriteResult(written=len(batch) - len(unstorable), rejected=rejects)

    # -- status ------------------------------------------------------------------------

    def stored_checkpoints(self) -> dict[str, Key]:
        if not self._exists(CHECKPOINTS):
            return {}
        from psycopg import sql

        query = sql.SQL("SELECT table_name, high_water_mark FROM {}").format(
            self._control(CHECKPOINTS)
        )
        return {str(name): key_from_json(mark) for name, mark in self.connection.execute(query)}

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
            Reject(str(t), key_from_json(key), str(reason))
            for t, key, reason in connection.execute(first_query.format(rejects), (limit,))
        ]
        return counts, first

    # -- RepairableSink ----------------------------------------------------------------

    def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
        from chariot.sources.values import convert_source_rows

        # A repair reads the source itself: its rows may be the driver's (a SET as 'a,b')
        # or the reader's. The conversion leaves the reader's values as they are.
        rows = convert_source_rows(stream, rows)
        table = layout_for(stream, self.schema)
        self._lock_table(table)
        self._new_keys.discard(table.name)
        self._ensure_key(table)
        try:
            with self.connection.transaction(), self.connection.cursor() as cursor:
                _touched().invalidate_incremental(cursor, self.schema, stream)
                unstorable = self._upsert_storable(table, rows)
                if unstorable:
                    self._record_rejects(table, unstorable)
                self.connection.execute(table.touch_checkpoint, (table.name,))
        except BaseException:
            self._staged.discard(table.name)
            raise
        return len(rows) - len(unstorable)

    def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
        """Delete rows by source key (the PostgreSQL tables have nothing that depends on them)."""
        if not keys:
            return 0
        table = layout_for(stream, self.schema)
        self._lock_table(table)
        self._new_keys.discard(table.name)
        self._ensure_key(table)
        with self.connection.transaction(), self.connection.cursor() as cursor:
            _touched().invalidate_incremental(cursor, self.schema, stream)
            deleted = self._delete(cursor, table, keys)
            cursor.execute(table.touch_checkpoint, (table.name,))
            return deleted

    # -- ChangeSink --------------------------------------------------------------------

    def log_positions(self) -> dict[str, LogPosition]:
        if not self._exists(LOG_POSITIONS):
            return {}
        rows = self.connection.execute(changes_sql.select_positions(self.schema))
        return {str(name): LogPosition.parse(str(text)) for name, text in rows}

    def start_log(self, stream: Stream, position: LogPosition) -> None:
        self._lock_table(layout_for(stream, self.schema))
        with self.connection.transaction():
            self._create(control_statements(self.schema))
            self.connection.execute(
                changes_sql.save_positions(self.schema), (position.render(), None, [stream.name])
            )
            self.connection.execute(changes_sql.set_copied(self.schema), (False, stream.name))

    def log_copied(self) -> set[str]:
        if not self._exists(LOG_POSITIONS):
            return set()
        return {
            str(name) for (name,) in self.connection.execute(changes_sql.select_copied(self.schema))
        }

    def forget_log(self, stream: Stream) -> None:
        self._lock_table(layout_for(stream, self.schema))
        if self._exists(LOG_POSITIONS):
            self.connection.execute(changes_sql.delete_position(self.schema), (stream.name,))

    def apply(self, batch: ChangeBatch) -> None:
        changed = [
            (layout_for(changes.stream, self.schema), changes)
            for changes in batch.tables
            if changes
        ]
        for table, _ in changed:
            self._lock_table(table)
            self._new_keys.discard(table.name)  # the log writes rows a keyset pass may reach
            self._ensure_key(table)
        for name in batch.positioned:
            self._lock(name)
        self._learn_rejects([table for table, _ in changed])
        connection = self.connection
        try:
            with connection.transaction(), connection.cursor() as cursor:
                self._apply_changes(cursor, changed)
                if batch.checkpoints:
                    self._save_checkpoints(cursor, batch)
                if batch.positioned:
                    committed_at = changes_sql.as_utc(batch.committed_at)
                    cursor.execute(
                        changes_sql.save_positions(self.schema),
                        (batch.position.render(), committed_at, list(batch.positioned)),
                    )
                pause_before_commit(self.name)  # a test hook; inert unless its variable is set
        except BaseException:
            for table, _ in changed:
                self._staged.discard(table.name)  # its creation may have been rolled back
            raise

    def _apply_changes(
        self, cursor: psycopg.Cursor[Any], changed: list[tuple[PgTable, TableChanges]]
    ) -> None:
        """Deletes in reverse table order, upserts in order; the aggregation's touched
        groups recorded before the rows change (the groups they leave) and after (the
        groups they join)."""
        keys = [(table.stream, changes.changed_keys) for table, changes in changed]
        touched = _touched().TouchedGroups(cursor, self.schema, keys)
        touched.before_changes()
        for table, changes in reversed(changed):
            self._delete(cursor, table, [*changes.deletes, *(r.key for r in changes.rejects)])
        for table, changes in changed:
            self._apply_upserts(cursor, table, changes)
        touched.after_changes()
        if changed:
            cursor.execute(self._touch_checkpoints, ([table.name for table, _ in changed],))

    def keys_referencing(
        self, stream: Stream, columns: tuple[str, ...], values: list[Key]
    ) -> list[Key]:
        table = layout_for(stream, self.schema)
        query = changes_sql.keys_matching(table, tuple(columns))  # refuses a column first
        arrays = changes_sql.value_arrays(values, len(columns))
        if not arrays or not arrays[0]:
            return []
        rows = self.connection.execute(query, arrays).fetchall()
        return [changes_sql.source_key(row) for row in rows]

    def _apply_upserts(
        self, cursor: psycopg.Cursor[Any], table: PgTable, changes: TableChanges
    ) -> None:
        """Upsert as ``write`` does; a row PostgreSQL refuses is a reject, and its older
        version goes. Then the rejects are recorded, and those of keys now fine forgotten.
        The rows go in key order: the server finds each in the primary key (and the table)
        in that order, reading each page once for the keys on it (``sorted_keys``)."""
        rows = _in_key_order(changes.upserts, table.stream.key_positions)
        unstorable = self._upsert_storable(table, rows) if rows else []
        self._delete(cursor, table, [reject.key for reject in unstorable])
        rejects = [*changes.rejects, *unstorable]
        if rejects:
            self._record_rejects(table, rejects)
        if table.name not in self._clear_rejects:
            return  # no reject recorded for this table: nothing to forget
        refused = {key_json(reject.key) for reject in rejects}
        positions = table.stream.key_positions
        fine = [
            *(key_json(key) for key in changes.deletes),
            *(key_json(tuple(row[p] for p in positions)) for row in changes.upserts),
        ]
        cursor.execute(
            changes_sql.clear_rejects(self.schema),
            (table.name, [key for key in fine if key not in refused]),
        )

    def _learn_rejects(self, tables: list[PgTable]) -> None:
        """Whether each table has recorded rejects to forget (asked once per lease taken:
        while this sink holds the table's lease no one else records any)."""
        for table in tables:
            if table.name not in self._rejects_known:
                if self._has_rejects(table):
                    self._clear_rejects.add(table.name)
                self._rejects_known.add(table.name)

    # -- internals ---------------------------------------------------------------------

    def _create(self, statements: list[sql.Composed]) -> None:
        """Run DDL in the current transaction, the schema first."""
        connection = self.connection
        # Two runs creating the schema at once would race on the catalog.
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chariot:{self.schema}",)
        )
        ensure_postgres_schema(connection, self.schema)
        for statement in statements:
            connection.execute(statement)

    def _delete(self, cursor: psycopg.Cursor[Any], table: PgTable, keys: list[Key]) -> int:
        """Delete rows by source key: one statement, however many keys, in key order."""
        arrays = changes_sql.value_arrays(changes_sql.sorted_keys(keys), len(table.stream.key))
        if not arrays[0]:
            return 0
        cursor.execute(changes_sql.delete_matching(table), arrays)
        return max(cursor.rowcount, 0)

    def _save_checkpoints(self, cursor: psycopg.Cursor[Any], batch: ChangeBatch) -> None:
        """A watermark snapshot's progress: each table's high-water mark, as ``write``
        stores it, in the batch's transaction (a restart resumes right after it)."""
        from psycopg import sql

        query = sql.SQL(
            "INSERT INTO {0} AS c (table_name, high_water_mark, rows_written, updated_at)"
            " VALUES (%s, %s, %s, now()) ON CONFLICT (table_name) DO UPDATE SET"
            " high_water_mark = EXCLUDED.high_water_mark,"
            " rows_written = coalesce(c.rows_written, 0) + EXCLUDED.rows_written,"
            " updated_at = EXCLUDED.updated_at"
        ).format(self._control(CHECKPOINTS))
        written = {table.stream.name: len(table.upserts) for table in batch.tables}
        for name, key in batch.checkpoints.items():
            cursor.execute(query, (name, key_json(key), written.get(name, 0)))

    @property
    def _touch_checkpoints(self) -> sql.Composed:
        """Rows changed without the mark moving: readers comparing states must see it."""
        from psycopg import sql

        return sql.SQL("UPDATE {} SET updated_at = now() WHERE table_name = ANY(%s)").format(
            self._control(CHECKPOINTS)
        )

    def _write_rows(self, table: PgTable, batch: Batch) -> list[Reject]:
        """A keyset batch's rows: COPY them in when their keys are proven new
        (``_prove_new``), else upsert. A unique violation ends the proof (the batch goes
        through the upsert after all); a value PostgreSQL cannot store sends the batch to
        the upsert, whose bisection finds the row."""
        import psycopg

        if table.name in self._new_keys:
            try:
                with self.connection.transaction():  # a savepoint inside the batch's
                    self._copy_new(table, batch)
                return []
            except psycopg.errors.UniqueViolation:
                self._new_keys.discard(table.name)
                self._staged.discard(table.name)
                log.warning(
                    "a key thought new is in the table already: upserting from here on",
                    extra={"sink": self.name, "table": table.name},
                )
            except psycopg.DataError:
                self._staged.discard(table.name)
                if table.name not in self._keyed:
                    raise _NeedsKey() from None  # the upsert's bisection needs the key
        return self._upsert_storable(table, batch.rows)

    def _copy_new(self, table: PgTable, batch: Batch) -> None:
        """COPY a batch of new keys in: its Arrow columns as CSV when the reader gave them
        and no output is computed in Python (no Python row is ever built), else its rows."""
        direct = table.direct_targets is not None
        if not direct:
            self._ensure_staging(table)
        with self.connection.cursor() as cursor:
            if batch.columns is not None and not table.in_python:
                _copy_csv(cursor, table.copy_new_csv, batch.columns)
            else:
                _copy_rows(cursor, table.copy_new_rows, table.staged_rows(batch.rows))
            if not direct:
                cursor.execute(table.insert_from_staging)
            if table.stream.name in self._clear_rejects:
                self._forget_loaded_rejects(cursor, table, batch.rows)

    def _upsert_storable(self, table: PgTable, rows: list[tuple[Any, ...]]) -> list[Reject]:
        """Upsert ``rows``; a value PostgreSQL cannot store (a NUL in text, a number out of
        range) makes its row a reject instead of failing the batch. The happy path costs one
        savepoint; a failing batch is bisected, so k bad rows cost O(k log n) attempts."""
        import psycopg

        try:
            with self.connection.transaction():  # a savepoint inside the batch's transaction
                self._upsert(table, rows)
            return []
        except psycopg.DataError as error:
            self._staged.discard(table.name)  # created inside the savepoint, maybe
            if len(rows) == 1:
                key = tuple(rows[0][i] for i in table.stream.key_positions)
                return [
                    Reject(table.name, key, f"PostgreSQL cannot store it: {_first_line(error)}")
                ]
            middle = len(rows) // 2
            return self._upsert_storable(table, rows[:middle]) + self._upsert_storable(
                table, rows[middle:]
            )

    def _upsert(self, table: PgTable, rows: list[tuple[Any, ...]]) -> None:
        self._ensure_staging(table)
        with self.connection.cursor() as cursor:
            _copy_rows(cursor, table.copy_into_staging, table.staged_rows(rows))
            cursor.execute(table.upsert_from_staging)
            self._forget_loaded_rejects(cursor, table, rows)

    def _ensure_staging(self, table: PgTable) -> None:
        if table.name not in self._staged:
            self.connection.execute(table.create_staging)
            self._staged.add(table.name)

    def _forget_loaded_rejects(
        self, cursor: psycopg.Cursor[Any], table: PgTable, rows: list[tuple[Any, ...]]
    ) -> None:
        """Rows that load now are no longer rejects (only once the table has recorded some).
        Matched on the text the rejects were recorded with (Python's, not PostgreSQL's
        rendering of the key): per-row work, but only then."""
        if table.stream.name in self._clear_rejects:
            positions = table.stream.key_positions
            keys = [key_json(tuple(row[p] for p in positions)) for row in rows]
            cursor.execute(table.delete_loaded_rejects, (table.stream.name, keys))

    def _record_rejects(self, table: PgTable, rejects: list[Reject]) -> None:
        unique = {key_json(reject.key): reject.reason for reject in rejects}
        with self.connection.cursor() as cursor:
            cursor.executemany(
                table.save_reject,
                [(table.stream.name, key, reason) for key, reason in unique.items()],
            )
        self._clear_rejects.add(table.stream.name)

    def acquire(self, stream: Stream) -> None:
        self._lock_table(layout_for(stream, self.schema))

    def _lock_table(self, table: PgTable) -> None:
        """The writer lease: one writer per table and schema (a second concurrent writer
        would move the checkpoint back and forth, or empty what the first wrote). A session
        advisory lock, so a killed holder frees it as soon as its server notices; the
        connection's application_name names the holder to whoever is refused."""
        self._lock(table.name)

    def _lock(self, name: str) -> None:
        if name in self._locked:
            return
        key = lock_key(self.schema, name)
        connection = self.connection
        connection.execute(
            "SELECT set_config('application_name', %s, false)",
            (self.lease_owner.describe()[:63],),
        )

        def attempt() -> bool | None:
            row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
            return True if row and row[0] else None

        if keep_trying(attempt, wait_seconds=self.lease_wait_seconds) is None:
            holder = lock_holder(connection, key)
            dead = is_dead_local_process(holder_of(holder))
            if not dead or keep_trying(attempt, wait_seconds=DEAD_HOLDER_GRACE_SECONDS) is None:
                raise Busy(
                    f"PostgreSQL table {self.schema}.{name} is held by "
                    f"{holder or 'another session'}",
                    hint="wait for that command to finish (or pass --wait SECONDS)",
                )
        self._locked.add(name)
        self._rejects_known.discard(name)  # others may have recorded rejects meanwhile

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


def _increasing_int_keys(batch: Batch) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The first and last keys of a batch whose keys are all integers and strictly increase
    row after row (compared as Python tuples of ints); None for any other batch (no rows, a
    key of another type, keys out of order)."""
    if len(batch) == 0:
        return None
    positions = batch.stream.key_positions
    if batch.columns is not None and batch._rows is None:  # Arrow: never build the rows
        return _increasing_arrow_keys(batch.columns, positions)
    keys = [tuple(row[p] for p in positions) for row in batch.rows]
    if not all(type(value) is int for key in (keys[0], keys[-1]) for value in key):
        return None
    if any(type(value) is not int for key in keys for value in key):
        return None
    if not all(a < b for a, b in zip(keys, keys[1:], strict=False)):
        return None
    return keys[0], keys[-1]


def _increasing_arrow_keys(
    columns: Any, positions: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = [columns.column(p) for p in positions]
    if not all(pa.types.is_integer(key.type) for key in keys) or any(k.null_count for k in keys):
        return None
    if columns.num_rows > 1:
        # Row i < row i+1, lexicographically: decided by the first column that differs.
        before = [key.slice(0, columns.num_rows - 1) for key in keys]
        after = [key.slice(1) for key in keys]
        less = pc.less(before[-1], after[-1])
        for a, b in zip(reversed(before[:-1]), reversed(after[:-1]), strict=True):
            less = pc.or_(pc.less(a, b), pc.and_(pc.equal(a, b), less))
        if not pc.all(less).as_py():
            return None
    first = tuple(int(key[0].as_py()) for key in keys)
    last = tuple(int(key[-1].as_py()) for key in keys)
    return first, last


class _NeedsKey(Exception):
    """A first-load batch must be upserted (PostgreSQL refused a value) before the key exists."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _in_key_order(rows: list[tuple[Any, ...]], positions: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """Rows sorted by their key (folded changes hold one row per key); as they came when
    Python cannot order the keys."""
    try:
        return sorted(rows, key=key_getter(positions))
    except TypeError:
        return rows


def key_json(key: Key) -> str:
    """A key as the JSON text stored in ``high_water_mark`` / ``row_key``."""
    return key_to_json(key)


def _touched() -> Any:
    """The aggregation's record of touched groups (imported late: it reads this sink's
    tables, and tests replace its functions)."""
    from chariot.aggregate import touched

    return touched


# COPY data is sent in pieces of this size (one call per piece: the server parses as it goes).
CSV_PIECE_BYTES = 1 << 20


def _copy_csv(cursor: psycopg.Cursor[Any], statement: sql.Composed, columns: Any) -> None:
    """COPY an Arrow table as CSV written by pyarrow in C (in memory, no header): a NULL is
    an unquoted empty field and every string is quoted (so '' stays ''), a double is its
    shortest round-trip text, a decimal its digits at the column's scale, a datetime
    ``YYYY-MM-DD HH:MM:SS.ffffff``, a bool ``true``/``false``: what PostgreSQL parses to the
    values the row path's COPY stores (``tests/test_arrow_reader.py`` compares them)."""
    import pyarrow as pa
    import pyarrow.csv as csv

    sink = pa.BufferOutputStream()
    csv.write_csv(columns, sink, csv.WriteOptions(include_header=False))
    data = memoryview(sink.getvalue())
    with cursor.copy(statement) as copy:
        for start in range(0, len(data), CSV_PIECE_BYTES):
            copy.write(data[start : start + CSV_PIECE_BYTES])


def _copy_rows(cursor: psycopg.Cursor[Any], statement: sql.Composed, staged: Any) -> None:
    """COPY the staged rows (computed before COPY starts: a Python transform may fail)."""
    with cursor.copy(statement) as copy:
        for row in staged:
            copy.write_row(row)
