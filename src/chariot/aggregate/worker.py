"""The worker every executor runs: claim a partition, compute it, commit its summary rows.

``run_worker`` is a module-level function of picklable arguments (settings and a run id):
it opens its own connections, so it runs the same inline, in a process pool or on a Dask
cluster. A partition's results and its ``done`` mark are one transaction, committed only
while this worker still holds the partition's lease token.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from chariot.aggregate import compute, schema
from chariot.aggregate.declared import Declared, quoted
from chariot.aggregate.partitions import Claim, JobControl
from chariot.config import Settings
from chariot.connections import postgres_connect, postgres_connection
from chariot.errors import AggregationError, DataError
from chariot.lease import worker_id


class WorkerReport(BaseModel):
    worker_id: str
    partitions_done: int = 0
    attempts_failed: int = 0  # partition attempts that raised (retried or failed for good)
    leases_lost: int = 0  # finished partitions whose lease another worker had taken over
    rows_in: int = 0
    rows_out: int = 0
    seconds: float = 0.0


def run_worker(
    settings: Settings,
    run_id: int,
    *,
    declared: Sequence[Declared] = (),
    parent_pid: int | None = None,
    after_partition: Callable[[], None] | None = None,
    snapshot: str | None = None,
) -> WorkerReport:
    """Process partitions of ``run_id`` (of the ``declared`` aggregations) until none is left
    to claim, reading the inputs through ``snapshot`` (a ``pg_export_snapshot()`` id)."""
    by_name = {aggregation.name: aggregation for aggregation in declared}
    started = time.perf_counter()
    report = WorkerReport(worker_id=worker_id())
    run = settings.run
    with postgres_connection(settings.postgres) as connection, _LeaseKeeper(settings) as keeper:
        # Asynchronous commit: a partition's results and done mark stay one atomic commit;
        # a server crash may only forget the last few, which are then simply recomputed.
        connection.execute("SET synchronous_commit = off")
        jobs = JobControl(connection, settings.postgres.schema_name)
        while parent_pid is None or os.getppid() == parent_pid:  # orphans stop claiming
            claim = jobs.claim_next(
                run_id, report.worker_id, run.lease_seconds, run.partition_attempts
            )
            connection.commit()
            if claim is None:
                break
            keeper.watch(claim)
            try:
                _process(connection, settings, by_name, claim, report, snapshot)
            except Exception as error:  # any failure of this attempt: record it, go on
                connection.rollback()
                jobs.mark_failed(claim, f"{type(error).__name__}: {error}", run.partition_attempts)
                connection.commit()
                report.attempts_failed += 1
            finally:
                keeper.watch(None)
            if after_partition is not None:
                after_partition()
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _process(
    connection: Any,
    settings: Settings,
    declared: dict[str, Declared],
    claim: Claim,
    report: WorkerReport,
    snapshot: str | None,
) -> None:
    started = time.perf_counter()
    schema_name = settings.postgres.schema_name
    aggregation = declared.get(claim.kind)
    if aggregation is None:
        raise AggregationError(f"the project declares no aggregation {claim.kind!r}")
    if snapshot is not None:
        use_snapshot(connection, snapshot)
    rows, rows_in = read_partition(connection, schema_name, aggregation, claim)
    connection.commit()  # end the read transaction before the (short) write transaction
    jobs = JobControl(connection, schema_name)
    # The done mark first: it row-locks the partition and proves the lease is still ours.
    if not jobs.mark_done(
        claim, seconds=time.perf_counter() - started, rows_in=rows_in, rows_out=len(rows)
    ):
        connection.rollback()
        report.leases_lost += 1
        return
    names = ["run_id", aggregation.group_column, *(s.column for s in aggregation.statistics)]
    table = schema.qualified(schema_name, aggregation.staging)
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(map(quoted, names))}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row((claim.run_id, *row))
    connection.commit()
    report.partitions_done += 1
    report.rows_in += rows_in
    report.rows_out += len(rows)


def use_snapshot(connection: Any, snapshot: str) -> None:
    """Make the transaction that starts now read the exported snapshot ``snapshot``."""
    from psycopg import sql

    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


def read_partition(
    connection: Any, schema_name: str, declared: Declared, claim: Claim
) -> tuple[list[tuple[Any, ...]], int]:
    """The partition's summary rows (group key, statistics...) and the rows it read.

    A NULL in an input column the project declares NOT NULL fails the partition (it would
    silently drop out of the statistics): fix the data, re-run, and only it is retried.
    """
    query, params = compute.partition_query(
        declared, schema_name, claim.key_after, claim.key_through
    )
    return read_rows(connection, declared, query, params, where="in this partition")


def read_rows(
    connection: Any, declared: Declared, query: str, params: list[Any], *, where: str
) -> tuple[list[tuple[Any, ...]], int]:
    """Run a ``compute`` query: (summary rows, input rows read); refuses NULLs in columns
    declared NOT NULL (``DataError``)."""
    width = 1 + len(declared.statistics)
    rows, rows_in = [], 0
    nulls = [0] * len(declared.checked)
    for row in connection.execute(query, params):
        rows.append(tuple(row[:width]))
        rows_in += int(row[width])
        nulls = [total + int(found) for total, found in zip(nulls, row[width + 1 :], strict=True)]
    for column, count in zip(declared.checked, nulls, strict=True):
        if count:
            raise DataError(
                f"{count} row(s) of {declared.table} {where} have a NULL in "
                f"{column}, which the project declares NOT NULL"
            )
    return rows, rows_in


class _LeaseKeeper:
    """Renews the lease of the partition being worked on, from a thread, every third of the
    lease: a long partition keeps its lease, a dead worker stops renewing and loses it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.interval = max(1.0, settings.run.lease_seconds / 3)
        self.claim: Claim | None = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.connection: Any = None
        self.thread = threading.Thread(target=self._loop, name="chariot-lease", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self._drop_connection()

    def watch(self, claim: Claim | None) -> None:
        with self.lock:
            self.claim = claim

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                claim = self.claim
            if claim is None:
                continue
            try:
                if self.connection is None:  # most workers never need it: open lazily
                    self.connection = postgres_connect(self.settings.postgres, autocommit=True)
                JobControl(self.connection, self.settings.postgres.schema_name).renew(
                    claim, self.settings.run.lease_seconds
                )
            except Exception:  # a missed renewal only risks losing the lease, never data
                self._drop_connection()

    def _drop_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()
