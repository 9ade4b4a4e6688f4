"""The worker every executor runs: claim a partition, read it in bulk, compute, commit.

``run_worker`` is a module-level function of picklable arguments (settings and a run id):
it opens its own connections, so it runs the same inline, in a process pool or on a Dask
cluster. A partition's results and its ``done`` mark are one transaction, committed only
while this worker still holds the partition's lease token.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel

from chariot.aggregate import compute, pgcopy, schema
from chariot.aggregate.partitions import KEY_COLUMNS, Claim, JobControl
from chariot.aggregate.statistics import HISTOGRAM_COLUMNS
from chariot.config import Settings
from chariot.connections import postgres_connect, postgres_connection
from chariot.lease import worker_id

READ_TYPES = ("int4", "int2", "int8")  # key, rating in tenths, timestamp
MOVIE_STAGING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "int8"),
    ("movie_id", "int4"),
    ("rating_count", "int8"),
    ("rating_sum_tenths", "int8"),
    ("rating_mean", "float8"),
    ("rating_stddev", "float8"),
    ("rating_min_tenths", "int2"),
    ("rating_max_tenths", "int2"),
    ("rating_median", "float8"),
    *((name, "int4") for name in HISTOGRAM_COLUMNS),
    ("first_rated_at", "int8"),
    ("last_rated_at", "int8"),
    ("bayesian_average", "float8"),
)
USER_STAGING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "int8"),
    ("user_id", "int4"),
    ("rating_count", "int8"),
    ("rating_mean", "float8"),
    ("rating_stddev", "float8"),
    ("first_rated_at", "int8"),
    ("last_rated_at", "int8"),
)


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
    parent_pid: int | None = None,
    after_partition: Callable[[], None] | None = None,
    snapshot: str | None = None,
) -> WorkerReport:
    """Process partitions of ``run_id`` until none is left to claim, reading the ratings
    through ``snapshot`` (a ``pg_export_snapshot()`` id) when given."""
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
                _process(connection, settings, claim, report, snapshot)
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
    connection: Any, settings: Settings, claim: Claim, report: WorkerReport, snapshot: str | None
) -> None:
    started = time.perf_counter()
    schema_name = settings.postgres.schema_name
    if snapshot is not None:
        use_snapshot(connection, snapshot)
    keys, tenths, timestamps = read_partition(connection, schema_name, claim)
    connection.commit()  # end the read transaction before the (short) write transaction
    if claim.kind == "movie":
        table, columns = _movie_rows(claim.run_id, keys, tenths, timestamps, settings)
    else:
        table, columns = _user_rows(claim.run_id, keys, tenths, timestamps)
    rows_out = len(columns[0][1])
    jobs = JobControl(connection, schema_name)
    # The done mark first: it row-locks the partition and proves the lease is still ours.
    if not jobs.mark_done(
        claim, seconds=time.perf_counter() - started, rows_in=len(keys), rows_out=rows_out
    ):
        connection.rollback()
        report.leases_lost += 1
        return
    with connection.cursor() as cursor:
        pgcopy.copy_in(
            cursor,
            schema.qualified(schema_name, table),
            [name for name, _, _ in columns],
            [values for _, values, _ in columns],
            [pg_type for _, _, pg_type in columns],
        )
    connection.commit()
    report.partitions_done += 1
    report.rows_in += len(keys)
    report.rows_out += rows_out


def use_snapshot(connection: Any, snapshot: str) -> None:
    """Make the transaction that starts now read the exported snapshot ``snapshot``."""
    from psycopg import sql

    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    connection.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))


def read_partition(connection: Any, schema_name: str, claim: Claim) -> list[np.ndarray]:
    """(key, rating in tenths, timestamp) of every rating in the partition's key range."""
    key = KEY_COLUMNS[claim.kind]
    conditions, params = [], []
    if claim.key_after is not None:
        conditions.append(f"{key} > %s")
        params.append(claim.key_after)
    if claim.key_through is not None:
        conditions.append(f"{key} <= %s")
        params.append(claim.key_through)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    source = f"{schema.qualified(schema_name, schema.RATINGS)} {where}"
    expressions = (key, "rating * 10", '"timestamp"')
    return pgcopy.fetch_columns(connection, expressions, source, params, READ_TYPES)


Columns = list[tuple[str, np.ndarray, str]]


def _movie_rows(
    run_id: int, keys: np.ndarray, tenths: np.ndarray, timestamps: np.ndarray, settings: Settings
) -> tuple[str, Columns]:
    stats = compute.movie_stats(
        keys,
        tenths,
        timestamps,
        prior_weight=settings.run.bayes_prior_weight,
        prior_mean=settings.run.bayes_prior_mean,
    )
    values = [
        np.full(len(stats), run_id, np.int64),
        stats.keys,
        stats.count,
        stats.sum_tenths,
        stats.mean,
        stats.stddev,
        stats.min_tenths,
        stats.max_tenths,
        stats.median,
        *(stats.histogram[:, index] for index in range(len(HISTOGRAM_COLUMNS))),
        stats.first,
        stats.last,
        stats.bayesian,
    ]
    return schema.MOVIE_STAGING, _zip_columns(MOVIE_STAGING_COLUMNS, values)


def _user_rows(
    run_id: int, keys: np.ndarray, tenths: np.ndarray, timestamps: np.ndarray
) -> tuple[str, Columns]:
    stats = compute.user_stats(keys, tenths, timestamps)
    values = [
        np.full(len(stats), run_id, np.int64),
        stats.keys,
        stats.count,
        stats.mean,
        stats.stddev,
        stats.first,
        stats.last,
    ]
    return schema.USER_STAGING, _zip_columns(USER_STAGING_COLUMNS, values)


def _zip_columns(spec: tuple[tuple[str, str], ...], values: list[np.ndarray]) -> Columns:
    return [(name, value, pg_type) for (name, pg_type), value in zip(spec, values, strict=True)]


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
