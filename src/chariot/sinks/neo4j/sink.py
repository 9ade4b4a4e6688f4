"""The Neo4j sink: one explicit transaction per batch holds the rows, the rejects and the
checkpoint node (or, for change capture, the log position node), so a crash at any instant
leaves graph and checkpoint in step."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.cdc.changes import ChangeBatch
from chariot.cdc.position import LogPosition
from chariot.config import Settings
from chariot.connections import neo4j_driver
from chariot.errors import SinkWriteError
from chariot.sinks.base import ChangeSink
from chariot.sinks.neo4j import changes, graph, referencing
from chariot.sinks.neo4j.graph import decode_key, encode_key
from chariot.sinks.neo4j.lease import GraphLease
from chariot.sinks.neo4j.parameters import CONVERSION_ERRORS, Prepared
from chariot.sinks.neo4j.proof import NOT_PROVEN, Proof, proof
from chariot.sinks.neo4j.retry import with_retries
from chariot.streams import Stream
from chariot.sync.pause_hook import pause_before_commit

if TYPE_CHECKING:
    from neo4j import Driver, ManagedTransaction

T = TypeVar("T")

# Rows per inner transaction of a full refresh (CALL {} IN TRANSACTIONS OF n ROWS).
REFRESH_ROWS_PER_TRANSACTION = 10_000


class Neo4jSink(ChangeSink):
    """Writes each table as the project's ``[graph]`` maps it; see ``graph.py``."""

    name = "neo4j"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.max_changes_per_transaction = settings.neo4j.max_changes_per_transaction
        self._driver: Driver | None = None
        self._constraints_ready: set[str] = set()
        self._lease: GraphLease | None = None
        self._mappings: dict[tuple[str, str, str], graph.GraphMapping] = {}
        self._resolved: dict[str, Stream] = {}  # streams built by hand -> the project's
        self._stager: ThreadPoolExecutor | None = None
        self._staged: list[tuple[Batch, Future[_Converted]]] = []  # see ``stage``
        # Per table, the proof (``proof.py``) as this sink's last change batch left it: the
        # next batch's upserts are split by it before its transaction opens.
        self._proofs: dict[str, Proof] = {}

    # -- the sink contract -----------------------------------------------------------------

    def acquire(self, stream: Stream) -> None:
        self.acquire_all([stream])

    def acquire_all(self, streams: Sequence[Stream]) -> None:
        """Every label and type the streams write, in ONE lease transaction (all or none)."""
        mappings = [self._mapping(stream) for stream in streams]
        self._ensure_constraints(mappings)
        if self._lease is None:
            self._lease = GraphLease(
                self._connected(),
                self.settings.neo4j.database,
                self.lease_owner,
                ttl_seconds=self.settings.run.lease_seconds,
            )
        resources = {resource for mapping in mappings for resource in mapping.resources}
        self._lease.acquire(resources, wait_seconds=self.lease_wait_seconds)

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        mapping = self._mapping(stream)
        self.acquire(stream)
        if full_refresh:
            # The checkpoint goes first: a crash half-way through the deletes then leaves no
            # high-water mark, and the next run reloads the stream from the start.
            self._transact(
                lambda tx: _clear_stream_state(tx, stream.name),
                what=self._what(stream, "full refresh"),
            )
            for statement in mapping.refresh(REFRESH_ROWS_PER_TRANSACTION):
                self._auto_commit(statement, what=self._what(stream, "full refresh"))
        self._prove_new_above(stream, mapping)

    def _prove_new_above(self, stream: Stream, mapping: graph.GraphMapping) -> None:
        """Mark the table ``newAbove`` when it has no checkpoint yet and the graph holds
        none of its relationships (a first load, or just after a full refresh)."""
        any_made = mapping.any_made
        if any_made is None:
            return

        def work(tx: ManagedTransaction) -> None:
            self._check_lease(tx, mapping)
            record = tx.run(graph.READ_NEW_ABOVE, table=stream.name).single()
            if record is None or record["mark"] is not None or record["new_above"]:
                return
            made = tx.run(any_made).single()
            if made is not None and not made["made"]:
                tx.run(graph.MARK_NEW_ABOVE, table=stream.name).consume()

        self._transact(work, what=self._what(stream, "reading what it holds"))

    def checkpoint(self, stream: Stream) -> Key | None:
        def read(tx: ManagedTransaction) -> Key | None:
            record = tx.run(
                "MATCH (c:ChariotCheckpoint {table: $table}) RETURN c.highWaterMark AS mark",
                table=stream.name,
            ).single()
            return None if record is None or record["mark"] is None else decode_key(record["mark"])

        return self._transact(read, what=self._what(stream, "reading the checkpoint"))

    def stage(self, batch: Batch) -> None:
        # Only the conversion runs ahead, in its own thread (the driver waiting on the
        # socket for the current batch lets it run): nothing is written before ``write``.
        if self._stager is None:
            self._stager = ThreadPoolExecutor(1, thread_name_prefix="chariot-neo4j-stage")
        future = self._stager.submit(_converted, self._mapping(batch.stream), batch)
        self._staged = [*self._staged[-1:], (batch, future)]  # this one and the one before

    def write(self, batch: Batch) -> WriteResult:
        mapping = self._mapping(batch.stream)
        converted = self._unstaged(batch) or _converted(mapping, batch)
        prepared, all_rejects = converted.prepared, converted.rejects
        rejects = [[r.table, encode_key(r.key), r.reason] for r in all_rejects]
        mark = encode_key(batch.last_key) if batch.last_key else None
        first = converted.first

        def work(tx: ManagedTransaction) -> None:
            self._check_lease(tx, mapping)
            if prepared.rows and mapping.write_new is not None and _new_rows(tx, batch, first):
                _write_new_rows(tx, mapping, prepared)
            else:
                _write_rows(tx, mapping, prepared)
            if rejects:
                tx.run(graph.WRITE_REJECTS, rejects=rejects).consume()
            if mark is not None:
                tx.run(
                    graph.WRITE_CHECKPOINT,
                    table=batch.stream.name,
                    high_water_mark=mark,
                    rows_written=prepared.rows,
                ).consume()

        self._transact(work, what=self._what(batch.stream, "write"))
        return WriteResult(written=prepared.rows, rejected=all_rejects)

    def _unstaged(self, batch: Batch) -> _Converted | None:
        """``batch`` as ``stage`` converted it, if it did (the stage's error, if any)."""
        for index, (staged, future) in enumerate(self._staged):
            if staged is batch:
                del self._staged[: index + 1]
                return future.result()
        return None

    # -- change capture ---------------------------------------------------------------------

    def log_positions(self) -> dict[str, LogPosition]:
        def read(tx: ManagedTransaction) -> dict[str, LogPosition]:
            return {
                record["table"]: LogPosition.parse(record["position"])
                for record in tx.run(graph.READ_LOG_POSITIONS)
                if record["position"] is not None
            }

        return self._transact(read, what="neo4j sink: reading log positions")

    def log_copied(self) -> set[str]:
        def read(tx: ManagedTransaction) -> set[str]:
            return {record["table"] for record in tx.run(graph.READ_COPIED)}

        return self._transact(read, what="neo4j sink: reading finished copies")

    def table_complete(self, stream: Stream) -> None:
        mapping = self._mapping(stream)

        def work(tx: ManagedTransaction) -> None:
            self._check_lease(tx, mapping)
            tx.run(graph.MARK_COPIED, table=stream.name).consume()

        self._transact(work, what=self._what(stream, "recording the finished copy"))

    def start_log(self, stream: Stream, position: LogPosition) -> None:
        mapping = self._mapping(stream)
        self.acquire(stream)

        def work(tx: ManagedTransaction) -> None:
            self._check_lease(tx, mapping)
            tx.run(graph.CLEAR_COPIED, table=stream.name).consume()
            _write_positions(tx, [stream.name], position, None)

        self._transact(work, what=self._what(stream, "storing the log position"))

    def forget_log(self, stream: Stream) -> None:
        mapping = self._mapping(stream)
        self.acquire(stream)

        def work(tx: ManagedTransaction) -> None:
            self._check_lease(tx, mapping)
            tx.run(graph.FORGET_LOG_POSITION, table=stream.name).consume()

        self._transact(work, what=self._what(stream, "dropping the log position"))

    def prepare_changes(self, batch: ChangeBatch) -> None:
        batch.prepared = works = self._table_works(batch)
        # The next batch is prepared while this one commits: split it by the proof this
        # one will leave (its transaction reads the stored one, and splits again if not).
        self._remember_proofs(works)

    def _table_works(self, batch: ChangeBatch) -> list[changes.TableWork]:
        """Conversions and rejects, before the transaction opens: it only runs statements.
        The upserts are split by the proof last seen; ``apply`` splits again should the
        transaction read another (a batch before this one raised it meanwhile)."""
        works = []
        for table in batch.tables:
            mapping = self._mapping(table.stream)
            # Such a row's old relationship cannot be found by key: neither a delete nor
            # an update (which may move its ends) could be applied right.
            if table and mapping.undeletable:
                raise SinkWriteError(
                    f"neo4j sink, table {table.stream.name}: cannot apply changes by key: its "
                    f"{', '.join(mapping.undeletable)} relationships are not identified by "
                    "the table's key",
                    hint="make the key columns the relationship's ends or its identity in "
                    "[graph], or sync this table by keys (full refresh) instead",
                )
            known = self._proofs.get(table.stream.name, NOT_PROVEN)
            works.append(changes.table_work(table, mapping, known))
        return works

    def apply(self, batch: ChangeBatch) -> None:
        works = batch.prepared if batch.prepared is not None else self._table_works(batch)
        for table in batch.tables:
            self.acquire(table.stream)
        resources = sorted({r for work in works for r in work.mapping.resources})

        def work(tx: ManagedTransaction) -> None:
            if works:
                if self._lease is None:
                    raise SinkWriteError("neo4j sink: apply before the lease was taken (a bug)")
                self._lease.check(tx, resources)
            # Which upserts are proven new, read in the transaction that writes them; the
            # log's rows above the marks raise ``logMark`` (``proof.py``).
            for table in works:
                if table.loaded and table.mapping.write_new is not None:
                    table.split(_read_proof(tx, table.table))
            # Children first, so a parent's delete sees what its children left.
            for table in reversed(works):
                changes.delete_rows(tx, table)
            for table in works:
                changes.write_rows(tx, table)
                changes.record_rejects(tx, table)
            # A watermark snapshot's progress, where ``write`` keeps the high-water mark.
            written = {table.stream.name: len(table.upserts) for table in batch.tables}
            for name, key in batch.checkpoints.items():
                tx.run(
                    graph.WRITE_CHECKPOINT,
                    table=name,
                    high_water_mark=encode_key(key),
                    rows_written=written.get(name, 0),
                ).consume()
            if batch.positioned:
                _write_positions(tx, list(batch.positioned), batch.position, batch.committed_at)
            pause_before_commit(self.name)  # a test hook; inert unless its variable is set

        self._transact(work, what=f"neo4j sink: applying changes up to {batch.position}")
        self._remember_proofs(works)

    def _remember_proofs(self, works: list[changes.TableWork]) -> None:
        for done in works:
            if done.loaded and done.mapping.write_new is not None:
                # What the transaction read, with ``logMark`` as it raised it.
                raised = done.highest_new
                self._proofs[done.table] = done.proof if raised is None else Proof(True, raised)

    def keys_referencing(
        self, stream: Stream, columns: tuple[str, ...], values: list[Key]
    ) -> list[Key]:
        if not values:
            return []
        plan = self._mapping(stream).plan
        outputs = [referencing.output_of(stream, plan, column) for column in columns]
        lookup = referencing.referencing_query(plan, outputs)
        graph_values = _graph_values(self._mapping(stream), outputs, values)
        if not graph_values:
            return []

        def read(tx: ManagedTransaction) -> list[Key]:
            found = tx.run(lookup.cypher, values=graph_values)
            return [
                tuple(
                    referencing.as_source_value(stream, plan, name, value)
                    for name, value in zip(plan.key_columns, record["key"], strict=True)
                )
                for record in found
            ]

        return self._transact(read, what=self._what(stream, "finding referencing rows"))

    # -- status -----------------------------------------------------------------------------

    def stored_checkpoints(self) -> dict[str, Key]:
        def read(tx: ManagedTransaction) -> dict[str, Key]:
            result = tx.run(
                "MATCH (c:ChariotCheckpoint) WHERE c.highWaterMark IS NOT NULL "
                "RETURN c.table AS table, c.highWaterMark AS mark ORDER BY table"
            )
            return {record["table"]: decode_key(record["mark"]) for record in result}

        return self._transact(read, what="neo4j sink: reading checkpoints")

    def recorded_rejects(self, *, limit: int = 100) -> tuple[dict[str, int], list[Reject]]:
        def read(tx: ManagedTransaction) -> tuple[dict[str, int], list[Reject]]:
            counts = {
                record["table"]: record["rejects"]
                for record in tx.run(
                    "MATCH (r:ChariotReject) "
                    "RETURN r.table AS table, count(*) AS rejects ORDER BY table"
                )
            }
            first = [
                Reject(table=table, key=decode_key(key), reason=reason)
                for table, key, reason in tx.run(
                    "MATCH (r:ChariotReject) RETURN r.table, r.key, r.reason "
                    "ORDER BY r.table, r.key LIMIT $limit",
                    limit=limit,
                )
            ]
            return counts, first

        return self._transact(read, what="neo4j sink: reading rejects")

    def describe(self) -> str:
        return f"neo4j {self.settings.neo4j.display_url()}"

    def close(self) -> None:
        self._staged = []
        if self._stager is not None:
            self._stager.shutdown(wait=True)
            self._stager = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    # -- audit --repair ---------------------------------------------------------------------

    def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
        mapping = self._mapping(stream)
        self.acquire(stream)
        size = self.settings.run.batch_size
        written = 0
        for start in range(0, len(rows), size):
            chunk = mapping.parameters(rows[start : start + size])
            self._transact(
                self._guarded(
                    mapping,
                    partial(_repair_rows, table=stream.name, mapping=mapping, prepared=chunk),
                ),
                what=self._what(stream, "repair upsert"),
            )
            written += chunk.rows
        return written

    def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
        mapping = self._mapping(stream)
        self.acquire(stream)
        size = self.settings.run.batch_size
        deleted = 0
        for start in range(0, len(keys), size):
            chunk = mapping.graph_keys(
                [list(key) for key in dict.fromkeys(keys[start : start + size])]
            )
            deleted += self._transact(
                self._guarded(mapping, partial(_delete_with_orphans, mapping=mapping, keys=chunk)),
                what=self._what(stream, "repair delete"),
            )
        return deleted

    # -- plumbing ---------------------------------------------------------------------------

    def _mapping(self, stream: Stream) -> graph.GraphMapping:
        """The table's mapping, generated once per (table definition, graph model)."""
        if stream.project is None:
            resolved = self._resolved.get(stream.name)
            if resolved is None or resolved.source_columns != stream.source_columns:
                resolved = self._resolved[stream.name] = _with_project(stream)
            stream = resolved
        assert stream.project is not None
        cache_key = (stream.name, stream.signature, stream.project.graph.model_dump_json())
        mapping = self._mappings.get(cache_key)
        if mapping is None:
            mapping = self._mappings[cache_key] = graph.graph_mapping(stream)
        return mapping

    def _guarded(
        self, mapping: graph.GraphMapping, work: Callable[[ManagedTransaction], T]
    ) -> Callable[[ManagedTransaction], T]:
        """``work`` preceded, in its transaction, by the check that the lease is still ours."""

        def guarded(tx: ManagedTransaction) -> T:
            self._check_lease(tx, mapping)
            return work(tx)

        return guarded

    def _check_lease(self, tx: ManagedTransaction, mapping: graph.GraphMapping) -> None:
        if self._lease is None:
            raise SinkWriteError("neo4j sink: write before the writer lease was taken (a bug)")
        self._lease.check(tx, mapping.resources)

    def _what(self, stream: Stream, operation: str) -> str:
        return f"neo4j sink, table {stream.name}: {operation}"

    def _connected(self) -> Driver:
        if self._driver is None:
            self._driver = neo4j_driver(self.settings.neo4j)  # raises ConnectionFailed
        return self._driver

    def _ensure_constraints(self, mappings: Sequence[graph.GraphMapping]) -> None:
        """Uniqueness constraints before the first load: MERGE then seeks an index."""
        missing = list(
            dict.fromkeys(
                statement
                for mapping in mappings
                for statement in (*graph.BOOKKEEPING_CONSTRAINTS, *mapping.constraints)
                if statement not in self._constraints_ready
            )
        )
        if not missing:
            return
        # One read instead of a schema statement per constraint on every run (each is a
        # round trip and a schema transaction even when it does nothing); only the names
        # this run needs (a shared database may hold many more).
        existing = self._constraint_names([_constraint_name(s) for s in missing])
        to_create = [
            statement for statement in missing if _constraint_name(statement) not in existing
        ]
        for statement in to_create:
            self._auto_commit(statement, what="neo4j sink: creating constraints")
        if to_create:
            self._auto_commit("CALL db.awaitIndexes(300)", what="neo4j sink: waiting for indexes")
        self._constraints_ready.update(missing)

    def _constraint_names(self, names: list[str]) -> set[str]:
        def read(tx: ManagedTransaction) -> set[str]:
            found = tx.run("SHOW CONSTRAINTS YIELD name WHERE name IN $names", names=names)
            return {record["name"] for record in found}

        return self._transact(read, what="neo4j sink: reading constraints")

    def _transact(self, work: Callable[[ManagedTransaction], T], *, what: str) -> T:
        """``work`` in one explicit transaction, committed once, retried when transient."""

        def attempt() -> T:
            database = self.settings.neo4j.database
            with (
                self._connected().session(database=database) as session,
                session.begin_transaction() as tx,
            ):
                result = work(tx)  # type: ignore[arg-type]  # an explicit tx runs the same
                tx.commit()
                return result

        return with_retries(attempt, attempts=self.settings.run.max_attempts, what=what)

    def _auto_commit(self, statement: str, *, what: str) -> None:
        """Schema statements and ``CALL {} IN TRANSACTIONS`` must run outside an explicit
        transaction. Each one here is idempotent, so a retry simply continues the work."""

        def attempt() -> None:
            with self._connected().session(database=self.settings.neo4j.database) as session:
                session.run(statement).consume()

        with_retries(attempt, attempts=self.settings.run.max_attempts, what=what)


def _constraint_name(statement: str) -> str:
    """``CREATE CONSTRAINT <name> IF NOT EXISTS ...`` -> ``<name>``."""
    return statement.split()[2]


@dataclass(frozen=True)
class _Converted:
    """A batch as ``write`` sends it: the statements' parameters, every reject, the first key."""

    prepared: Prepared
    rejects: list[Reject]
    first: Key | None


def _converted(mapping: graph.GraphMapping, batch: Batch) -> _Converted:
    rows = batch.rows
    prepared = mapping.parameters(rows)
    refused = _refused(batch.stream, rows, prepared)
    return _Converted(prepared, [*batch.rejects, *refused], _first_key(batch))


def _write_rows(tx: ManagedTransaction, mapping: graph.GraphMapping, prepared: Prepared) -> None:
    if prepared.rows and mapping.write is not None:
        tx.run(mapping.write, prepared.parameters).consume()


def _repair_rows(
    tx: ManagedTransaction, table: str, mapping: graph.GraphMapping, prepared: Prepared
) -> None:
    """A repair may write rows above the checkpoint: keys there are no longer proven new."""
    tx.run(graph.CLEAR_NEW_ABOVE, tables=[table]).consume()
    _write_rows(tx, mapping, prepared)


def _write_new_rows(
    tx: ManagedTransaction, mapping: graph.GraphMapping, prepared: Prepared
) -> None:
    for statement, parameter in mapping.node_merges:
        tx.run(statement, {parameter: prepared.distinct[parameter]}).consume()
    assert mapping.write_new is not None
    tx.run(mapping.write_new, prepared.parameters).consume()


def _first_key(batch: Batch) -> Key | None:
    if not batch.rows:
        return None
    row = batch.rows[0]  # rows come in key order
    return tuple(row[p] for p in batch.stream.key_positions)


def _new_rows(tx: ManagedTransaction, batch: Batch, first: Key | None) -> bool:
    """Whether no relationship of ``batch``'s rows can exist yet, proven inside the
    transaction that writes them (then CREATE cannot double one); see ``proof.py``.

    Under change capture (``--mode auto``) the log may already have written rows above a
    keyset checkpoint: ``apply`` raises ``logMark`` past them, so a keyset batch must start
    above both marks. Compared here only where Python orders keys as the source does
    (integers); other keys get the fast path for the first batch only (no mark yet). A
    batch that is not proven new (a sink whose checkpoint is ahead of the one the read
    started from, a retried batch that did commit) is MERGEd, and the mark, which it may
    move back, is no longer trusted.
    """
    record = tx.run(graph.READ_NEW_ABOVE, table=batch.stream.name).single()
    if record is None or not record["new_above"]:
        return False
    if record["mark"] is None and record["log_mark"] is None:
        return True
    found = proof(True, record["mark"], record["log_mark"])
    if first is not None and found.is_new(first):
        return True
    tx.run(graph.CLEAR_NEW_ABOVE, tables=[batch.stream.name]).consume()
    return False


def _read_proof(tx: ManagedTransaction, table: str) -> Proof:
    record = tx.run(graph.READ_NEW_ABOVE, table=table).single()
    if record is None:
        return NOT_PROVEN
    return proof(bool(record["new_above"]), record["mark"], record["log_mark"])


def _refused(stream: Stream, rows: Sequence[Sequence[Any]], prepared: Prepared) -> list[Reject]:
    """The rows whose values Neo4j cannot store, as rejects with their key."""
    positions = stream.key_positions
    return [
        Reject(stream.name, tuple(rows[index][p] for p in positions), reason)
        for index, reason in prepared.rejected
    ]


def _with_project(stream: Stream) -> Stream:
    """``stream`` itself, or for a stream built by hand (no project: the old MovieLens
    constants some callers still pass) the project file's table of that name."""
    if stream.project is not None:
        return stream
    from chariot.project.streams import default_streams

    for candidate in default_streams():
        if candidate.name == stream.name and candidate.source_columns == stream.source_columns:
            return candidate
    raise SinkWriteError(
        f"neo4j sink: table {stream.name!r} is not a table of the project file with the "
        f"columns {', '.join(stream.source_columns)}"
    )


def _clear_stream_state(tx: ManagedTransaction, table: str) -> None:
    """Forget a stream's checkpoint and rejects: a full refresh re-reads (and re-rejects) all.
    Its copy is no longer finished either (``log_copied``), until the new one is."""
    tx.run(graph.CLEAR_COPIED, table=table).consume()
    tx.run("MATCH (c:ChariotCheckpoint {table: $table}) DELETE c", table=table).consume()
    tx.run("MATCH (r:ChariotReject {table: $table}) DELETE r", table=table).consume()


def _delete_with_orphans(
    tx: ManagedTransaction, mapping: graph.GraphMapping, keys: list[list[Any]]
) -> int:
    """Delete what the keys' rows made, and the nodes only they kept: the first statement
    (the row's node, else its relationship) counts the rows."""
    counts = []
    for statement in mapping.deletes:
        record = tx.run(statement, keys=keys).single()
        counts.append(int(record["deleted"]) if record is not None else 0)
    return counts[0] if counts else 0


def _write_positions(
    tx: ManagedTransaction,
    tables: list[str],
    position: LogPosition,
    committed_at: dt.datetime | None,
) -> None:
    tx.run(
        graph.WRITE_LOG_POSITIONS,
        tables=tables,
        position=position.render(),
        committed_at=committed_at,
    ).consume()


def _graph_values(
    mapping: graph.GraphMapping, outputs: list[str], values: list[Key]
) -> list[list[Any]]:
    """Source values of plain columns as the graph holds them; a value no graph property
    can hold matches no row."""
    converted = []
    for value in values:
        try:
            converted.append(mapping.convert(outputs, list(value)))
        except CONVERSION_ERRORS:
            continue
    return converted
