"""The conductor of ``chariot aggregate``: open (or resume, or join) a run, drive workers
until every partition is done, promote atomically, then write the graph.

Re-running after any interruption continues the open run: only partitions not ``done`` are
computed. A second command started while a run is open joins it as more workers; whichever
command promotes first wins, the other reports the run as promoted by another process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, Field

from chariot.aggregate import schema
from chariot.aggregate.executors import (
    POLL_SECONDS,
    Round,
    check_executor,
    choose_executor,
    run_round,
)
from chariot.aggregate.graph import write_graph
from chariot.aggregate.partitions import JobControl, OpenRun
from chariot.aggregate.promote import Promotion, promote
from chariot.aggregate.snapshot import InputSnapshot, exported_snapshot
from chariot.aggregate.worker import WorkerReport
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.errors import AggregationError, Busy, ChariotError
from chariot.lease import keep_trying, worker_id
from chariot.progress import ProgressCallback, notify
from chariot.sinks.postgres_lease import loads_in_progress

log = logging.getLogger(__name__)


class AggregationResult(BaseModel):
    run_id: int
    action: str = Field(
        description="'computed', or 'graph-only' (finished a promoted run's graph write)"
    )
    executor: str
    workers: int
    resumed: bool = Field(description="continued (or joined) a run that was already open")
    partitions_total: int = 0
    partitions_done_before: int = Field(0, description="already done when this command started")
    partitions_done_now: int = Field(0, description="done by this command's workers")
    partitions_done_by_others: int = Field(0, description="done meanwhile by another command")
    partitions_reset: int = Field(0, description="failed partitions given fresh attempts")
    attempts_failed: int = Field(0, description="partition attempts that raised and were retried")
    leases_lost: int = 0
    worker_crashes: list[str] = Field(default_factory=list)
    ratings: int = 0
    movies: int = 0
    users: int = 0
    genres: int = 0
    movies_not_in_catalog: int = 0
    ratings_of_movies_not_in_catalog: int = 0
    promoted_now: bool = False
    input_state: dict[str, Any] = Field(
        default_factory=dict,
        description="what the run read: each input table's checkpoint in the snapshot",
    )
    recomputed_because: str | None = Field(
        None, description="why an unfinished earlier run was dropped instead of resumed"
    )
    graph_status: str = "skipped"
    graph_movies_written: int = 0
    graph_movies_cleared: int = 0
    graph_error: str | None = None
    seconds: float = 0.0
    worker_reports: list[WorkerReport] = Field(default_factory=list)


def run_aggregation(
    settings: Settings,
    *,
    workers: int | None = None,
    executor: str | None = None,
    scheduler: str | None = None,
    restart: bool = False,
    graph: bool = True,
    progress: ProgressCallback | None = None,
) -> AggregationResult:
    """Compute, promote and (with ``graph``) write the summaries; see the module docstring.

    Raises ``AggregationError`` when partitions fail beyond their attempts; a Neo4j failure
    after the promotion is reported in ``graph_status``/``graph_error`` instead.
    """
    with _postgres_errors(settings):
        return _run(
            settings, workers, executor, scheduler, restart=restart, graph=graph, progress=progress
        )


@contextmanager
def _postgres_errors(settings: Settings) -> Iterator[None]:
    """A server error mid-run (restart, lost connection) is one clear line, not a traceback."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AggregationError(
            f"PostgreSQL at {settings.postgres.display_url()}: {message}",
            hint="re-run `chariot aggregate` to resume where it stopped",
        ) from error


def _run(
    settings: Settings,
    workers: int | None,
    executor: str | None,
    scheduler: str | None,
    *,
    restart: bool,
    graph: bool,
    progress: ProgressCallback | None,
) -> AggregationResult:
    started = time.perf_counter()
    workers = workers or settings.run.workers
    chosen = choose_executor(executor or settings.run.executor, workers)
    scheduler = scheduler or settings.run.scheduler or None
    check_executor(chosen, scheduler)
    schema_name = settings.postgres.schema_name
    with postgres_connection(settings.postgres) as connection:
        jobs = JobControl(connection, schema_name)
        prepare_tables(connection, schema_name)
        keep_trying(
            partial(_loaded, connection, schema_name), wait_seconds=settings.run.lease_wait_seconds
        )
        awaiting = None if restart or not graph else _run_awaiting_graph(jobs)
        if awaiting is not None:
            result = AggregationResult(
                run_id=awaiting, action="graph-only", executor=chosen, workers=0, resumed=True
            )
            _count_summaries(connection, settings, result)
        else:
            with exported_snapshot(settings) as snapshot:
                refuse_half_loaded(snapshot.connection, schema_name)
                rounds = _Rounds(chosen, workers, scheduler, snapshot.id)
                result = _compute(jobs, settings, snapshot, rounds, restart, graph, progress)
    if graph and (result.promoted_now or result.action == "graph-only"):
        _write_graph(settings, result, progress)
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "aggregation finished",
        extra={
            "agg_run_id": result.run_id,
            "partitions": result.partitions_total,
            "partitions_done_now": result.partitions_done_now,
            "ratings": result.ratings,
            "graph_status": result.graph_status,
            "seconds": result.seconds,
        },
    )
    return result


@dataclass(frozen=True)
class _Rounds:
    """How this command runs its workers, and the snapshot they read through."""

    executor: str
    workers: int
    scheduler: str | None
    snapshot: str


def _compute(
    jobs: JobControl,
    settings: Settings,
    snapshot: InputSnapshot,
    rounds: _Rounds,
    restart: bool,
    graph: bool,
    progress: ProgressCallback | None,
) -> AggregationResult:
    """Open (or resume) a run, drive its partitions to done, promote it."""
    opened = _open_run(jobs, settings, restart=restart, input_state=snapshot.state)
    result = AggregationResult(
        run_id=opened.run_id,
        action="computed",
        executor=rounds.executor,
        workers=rounds.workers,
        resumed=opened.resumed,
        partitions_total=opened.partitions_total,
        partitions_done_before=opened.partitions_done_before,
        partitions_reset=opened.partitions_reset,
        input_state=snapshot.state,
        recomputed_because=opened.recomputed_because,
    )
    run_settings = _with_run_prior(jobs, settings, opened.run_id)
    _drive(jobs, run_settings, result, rounds, progress)
    _promote(jobs.connection, settings, result, graph=graph)
    return result


def refuse_half_loaded(connection: Any, schema_name: str) -> None:
    """Summaries of a table that is being (re)loaded would count half of it: refuse.
    ``connection`` is the snapshot's: the marker is seen exactly when the load is."""
    loads = loads_in_progress(connection, schema_name, [schema.RATINGS, schema.MOVIES])
    if not loads:
        return
    load = loads[0]
    if load.holder is not None:
        raise Busy(
            f"PostgreSQL table {schema_name}.{load.table} is being loaded by {load.holder} "
            "(a first copy or full refresh): its summaries would mix two states",
            hint="wait for that sync to finish (or pass --wait SECONDS), then re-run",
        )
    raise AggregationError(
        f"PostgreSQL table {schema_name}.{load.table} is half-loaded: a first copy or full "
        f"refresh started by {load.owner} did not finish",
        hint=f"finish it with `chariot sync --table {load.table}`, then re-run",
    )


def _loaded(connection: Any, schema_name: str) -> bool | None:
    """True when no input table is being loaded (for ``--wait``)."""
    loads = loads_in_progress(connection, schema_name, [schema.RATINGS, schema.MOVIES])
    connection.commit()
    return None if any(load.holder for load in loads) else True


def prepare_tables(connection: Any, schema_name: str) -> None:
    missing = [
        t
        for t in (schema.RATINGS, schema.MOVIES)
        if t not in schema.existing_tables(connection, schema_name)
    ]
    if missing:
        raise AggregationError(
            f"no {' and no '.join(missing)} table in PostgreSQL schema {schema_name}",
            hint="run `chariot sync` first (aggregate reads what the PostgreSQL sink wrote)",
        )
    schema.ensure_tables(connection, schema_name)
    # Index-only range scans for movie partitions; built once (blocks sync writes meanwhile).
    connection.execute(
        f"CREATE INDEX IF NOT EXISTS {schema.RATINGS_MOVIE_INDEX} ON "
        f'{schema.qualified(schema_name, schema.RATINGS)} (movie_id) INCLUDE (rating, "timestamp")'
    )
    connection.commit()


def _run_awaiting_graph(jobs: JobControl) -> int | None:
    """The latest run, if it is promoted but its graph write is pending or failed."""
    row = jobs.execute(
        f"SELECT run_id, status, graph_status FROM {jobs.runs} ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    jobs.connection.commit()
    if row is None or row[1] != "done" or row[2] not in ("pending", "failed"):
        return None
    return int(row[0])


def _open_run(
    jobs: JobControl, settings: Settings, *, restart: bool, input_state: dict[str, Any]
) -> OpenRun:
    """Continue the open run when it started from the same inputs; else start a new one."""
    jobs.lock_runs()
    if restart:
        jobs.abandon_open_runs()
    run_id = jobs.open_run_id()
    because = None
    if run_id is not None and jobs.input_state(run_id) not in (None, input_state):
        if jobs.counts(run_id)["running"]:
            jobs.connection.rollback()
            raise Busy(
                f"aggregation run {run_id} is being computed by another command from an "
                "earlier state of the synced tables",
                hint="wait for it to finish (or pass --wait SECONDS), then re-run",
            )
        because = f"the synced tables changed since run {run_id} started"
        jobs.abandon_open_runs()
        run_id = None
    resumed = run_id is not None
    reset = 0
    if run_id is None:
        run = settings.run
        run_id = jobs.create_run(
            run.partition_rows, run.bayes_prior_weight, run.bayes_prior_mean, input_state
        )
    else:
        reset = jobs.reset_failed(run_id)
    counts = jobs.counts(run_id)
    jobs.connection.commit()
    return OpenRun(run_id, resumed, counts["total"], counts["done"], reset, because)


def _with_run_prior(jobs: JobControl, settings: Settings, run_id: int) -> Settings:
    """Workers use the prior the run started with, even if the settings changed since."""
    weight, mean = jobs.execute(
        f"SELECT bayes_prior_weight, bayes_prior_mean FROM {jobs.runs} WHERE run_id = %s", (run_id,)
    ).fetchone()
    jobs.connection.commit()
    run = settings.run.model_copy(update={"bayes_prior_weight": weight, "bayes_prior_mean": mean})
    return settings.model_copy(update={"run": run})


def _drive(
    jobs: JobControl,
    settings: Settings,
    result: AggregationResult,
    rounds_of: _Rounds,
    progress: ProgressCallback | None,
) -> None:
    """Run rounds of workers until no partition is pending or running.

    A round ends when its workers find nothing to claim, or when workers die (a killed
    process breaks the pool): the next round takes over the partitions they held.
    """
    run_id = result.run_id
    rounds, max_rounds = 0, settings.run.partition_attempts + 2

    def tick() -> dict[str, int]:
        jobs.release_dead_local_leases(run_id)
        counts = jobs.counts(run_id)
        status = jobs.execute(
            f"SELECT status FROM {jobs.runs} WHERE run_id = %s", (run_id,)
        ).fetchone()[0]
        jobs.connection.commit()
        if status == "abandoned":
            raise AggregationError(
                f"run {run_id} was abandoned by `chariot aggregate --restart` in another command",
                hint="that command computes the new run; nothing to do here",
            )
        notify(progress, "partitions", counts["done"], counts["total"], unit="partitions")
        return counts

    while True:
        counts = tick()
        if counts["claimable"] == 0:
            if counts["running"] == 0:
                break
            time.sleep(POLL_SECONDS)  # another command's workers hold the rest: wait for them
            continue
        if rounds == max_rounds:
            raise AggregationError(
                f"run {run_id}: workers kept dying ({rounds} rounds): "
                + "; ".join(result.worker_crashes[-3:]),
                hint="re-run `chariot aggregate` to resume; see `chariot status`",
            )
        _absorb(result, _round(rounds_of, settings, run_id, tick))
        rounds += 1
    _check_failures(jobs, result, counts, settings.run.partition_attempts)


def _round(rounds: _Rounds, settings: Settings, run_id: int, tick: Callable[[], Any]) -> Round:
    try:
        return run_round(
            rounds.executor,
            settings,
            run_id,
            rounds.workers,
            rounds.scheduler,
            tick,
            snapshot=rounds.snapshot,
        )
    except ChariotError:
        raise
    except Exception as error:  # e.g. the inline worker lost its connection
        return Round(errors=[f"{type(error).__name__}: {error}"])


def _absorb(result: AggregationResult, finished: Round) -> None:
    result.worker_reports.extend(finished.reports)
    result.worker_crashes.extend(finished.errors)
    for report in finished.reports:
        result.partitions_done_now += report.partitions_done
        result.attempts_failed += report.attempts_failed
        result.leases_lost += report.leases_lost


def _check_failures(
    jobs: JobControl, result: AggregationResult, counts: dict[str, int], attempts: int
) -> None:
    result.partitions_done_by_others = max(
        0, counts["done"] - result.partitions_done_before - result.partitions_done_now
    )
    if not counts["failed"]:
        return
    described = "; ".join(
        f"{kind} partition {pid} ({kind}_id {_bound(after)}..{_bound(through)}]: {error}"
        for pid, kind, after, through, error in jobs.failures(result.run_id)
    )
    jobs.connection.commit()
    raise AggregationError(
        f"run {result.run_id}: {counts['failed']} partition(s) failed after {attempts} "
        f"attempts: {described}",
        hint="fix the cause, then re-run `chariot aggregate`: the run resumes and retries only "
        "those partitions (--restart starts a fresh run)",
    )


def _bound(value: int | None) -> str:
    return "" if value is None else str(value)


def _promote(
    connection: Any, settings: Settings, result: AggregationResult, *, graph: bool
) -> None:
    promotion: Promotion = promote(
        connection,
        settings.postgres.schema_name,
        result.run_id,
        promoted_by=worker_id(),
        graph=graph,
    )
    result.promoted_now = promotion.promoted_now
    result.movies_not_in_catalog = promotion.movies_not_in_catalog
    result.ratings_of_movies_not_in_catalog = promotion.ratings_of_movies_not_in_catalog
    _count_summaries(connection, settings, result)
    if not promotion.promoted_now:
        result.graph_status = "left to the promoting command" if graph else "skipped"


def _count_summaries(connection: Any, settings: Settings, result: AggregationResult) -> None:
    """Ratings the run read (its movie partitions), and the promoted summary sizes."""

    def table(name: str) -> str:
        return schema.qualified(settings.postgres.schema_name, name)

    row = connection.execute(
        f"""SELECT (SELECT coalesce(sum(rows_in), 0) FROM {table(schema.PARTITIONS)}
                    WHERE run_id = %s AND kind = 'movie'),
                   (SELECT count(*) FROM {table(schema.MOVIE_STATS)}),
                   (SELECT count(*) FROM {table(schema.USER_STATS)}),
                   (SELECT count(*) FROM {table(schema.GENRE_STATS)})""",
        (result.run_id,),
    ).fetchone()
    result.ratings, result.movies, result.users, result.genres = (int(value) for value in row)
    connection.commit()


def _write_graph(
    settings: Settings, result: AggregationResult, progress: ProgressCallback | None
) -> None:
    try:
        written = write_graph(settings, result.run_id, progress)
    except ChariotError as error:
        # "busy": another command holds the graph's writer lease; a re-run writes it then.
        result.graph_status = "busy" if isinstance(error, Busy) else "failed"
        result.graph_error = str(error)
    else:
        result.graph_status = "done"
        result.graph_movies_written, result.graph_movies_cleared = (
            written.movies_written,
            written.movies_cleared,
        )
    stored = "failed" if result.graph_status == "busy" else result.graph_status
    with postgres_connection(settings.postgres) as connection:
        connection.execute(
            f"""UPDATE {schema.qualified(settings.postgres.schema_name, schema.RUNS)}
                SET graph_status = %s, graph_error = %s, updated_at = now(),
                    graph_written_at = CASE WHEN %s = 'done' THEN now() END
                WHERE run_id = %s""",
            (stored, result.graph_error, stored, result.run_id),
        )
        connection.commit()
