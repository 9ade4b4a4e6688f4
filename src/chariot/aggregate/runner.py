"""The conductor of ``chariot aggregate``: open (or resume, or join) a run, drive workers
until every partition is done, promote atomically, then write the graph.

When the sink tracks changes (a change-capture sync records the groups it touched), a run
recomputes only those groups instead (incremental.py), in this process; the output says
which it did and why a run was full.

Re-running after any interruption continues the open run: only partitions not ``done`` are
computed. A second command started while a run is open joins it as more workers; whichever
command promotes first wins, the other reports the run as promoted by another process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel, Field

from chariot.aggregate import incremental, schema
from chariot.aggregate.declared import Declared, declared_aggregations, quoted
from chariot.aggregate.executors import (
    POLL_SECONDS,
    Round,
    check_executor,
    choose_executor,
    run_round,
    warm_pool,
)
from chariot.aggregate.graph import labelled, write_graph
from chariot.aggregate.partitions import JobControl, OpenRun
from chariot.aggregate.promote import Promotion, describe_promotion, promote
from chariot.aggregate.snapshot import InputSnapshot, exported_snapshot, input_tables
from chariot.aggregate.worker import WorkerReport
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.errors import AggregationError, Busy, ChariotError
from chariot.lease import keep_trying, worker_id
from chariot.progress import ProgressCallback, notify
from chariot.project.model import Project
from chariot.sinks.postgres_lease import loads_in_progress

log = logging.getLogger(__name__)


class SummaryResult(BaseModel):
    """One declared aggregation in a run."""

    table: str = Field(description="the aggregated table")
    mode: str = Field("full", description="'full' (every group) or 'incremental'")
    groups_recomputed: int | None = Field(
        None, description="incremental: the touched groups recomputed (gone ones included)"
    )
    reads: str = Field("", description="what one input row is (the table, joined, exploded)")
    rows_in: int = Field(0, description="input rows the run read for it")
    groups: int = Field(0, description="rows of the promoted summary table")
    unreferenced_table: str | None = Field(
        None, description="the table the group key points at (project references)"
    )
    unreferenced_groups: int = Field(
        0, description="groups whose key has no row in that table: summarised all the same"
    )
    unreferenced_rows: int | None = Field(None, description="the input rows of those groups")


class AggregationResult(BaseModel):
    run_id: int
    action: str = Field(
        description="'computed', 'unchanged' (no change recorded since the promoted run: "
        "nothing recomputed), 'graph-only' (finished a promoted run's graph write), or "
        "'none' (the project declares no aggregations)"
    )
    mode: str = Field(
        "full",
        description="'full' (every group, in partitions) or 'incremental' (the "
        "groups the sink recorded as touched, in one process)",
    )
    full_because: str | None = Field(None, description="why the run was full")
    since_run: int | None = Field(
        None, description="incremental: the promoted run the summaries were brought on from"
    )
    groups_recomputed: int = Field(0, description="incremental: touched groups recomputed")
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
    rows_read: int = Field(
        0, description="input rows the run read: its largest aggregation of a table's own rows"
    )
    summaries: dict[str, SummaryResult] = Field(
        default_factory=dict, description="summary table -> what the run put there"
    )
    promoted_now: bool = False
    input_state: dict[str, Any] = Field(
        default_factory=dict,
        description="what the run read: each input table's checkpoint in the snapshot",
    )
    recomputed_because: str | None = Field(
        None, description="why an unfinished earlier run was dropped instead of resumed"
    )
    graph_status: str = "skipped"
    graph_nodes_written: int = 0
    graph_nodes_cleared: int = 0
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
    project: Project | None = None,
    full: bool = False,
) -> AggregationResult:
    """Compute, promote and (with ``graph``) write the ``project``'s declared aggregations
    (default: the project file's); see the module docstring. ``full`` (implied by
    ``restart``) recomputes every group even when only some changed.

    Raises ``AggregationError`` when partitions fail beyond their attempts; a Neo4j failure
    after the promotion is reported in ``graph_status``/``graph_error`` instead.
    """
    if project is None:
        from chariot.project import load_project

        project = load_project()
    declared = declared_aggregations(project)
    if not declared:
        chosen = choose_executor(executor or settings.run.executor, workers or 1)
        return AggregationResult(run_id=0, action="none", executor=chosen, workers=0, resumed=False)
    with _postgres_errors(settings):
        return _run(
            settings,
            declared,
            workers,
            executor,
            scheduler,
            restart=restart,
            graph=graph,
            progress=progress,
            full=full or restart,
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
    declared: tuple[Declared, ...],
    workers: int | None,
    executor: str | None,
    scheduler: str | None,
    *,
    restart: bool,
    graph: bool,
    progress: ProgressCallback | None,
    full: bool,
) -> AggregationResult:
    started = time.perf_counter()
    workers = workers or settings.run.workers
    chosen = choose_executor(executor or settings.run.executor, workers)
    scheduler = scheduler or settings.run.scheduler or None
    check_executor(chosen, scheduler)
    schema_name = settings.postgres.schema_name
    inputs = input_tables(declared)
    graph = graph and bool(labelled(declared))  # nothing to write: the run says "skipped"
    with postgres_connection(settings.postgres) as connection:
        jobs = JobControl(connection, schema_name, declared)
        prepare_tables(connection, schema_name, declared)
        keep_trying(
            partial(_loaded, connection, schema_name, inputs),
            wait_seconds=settings.run.lease_wait_seconds,
        )
        awaiting = None if restart or not graph else _run_awaiting_graph(jobs)
        chosen_plan = None
        if awaiting is not None:
            result = AggregationResult(
                run_id=awaiting, action="graph-only", executor=chosen, workers=0, resumed=True
            )
            _count_summaries(connection, settings, declared, result)
        else:
            with ExitStack() as stack:
                # a full run's workers start now: they import while this process plans
                pool = stack.enter_context(warm_pool(chosen, workers)) if full else None
                snapshot = stack.enter_context(exported_snapshot(settings, declared))
                refuse_half_loaded(snapshot.connection, schema_name, inputs)
                chosen_plan = incremental.plan(snapshot, schema_name, declared, full=full)
                if chosen_plan.incremental:
                    result = _incremental(
                        connection, settings, snapshot, declared, chosen_plan, graph
                    )
                else:
                    if pool is None:
                        pool = stack.enter_context(warm_pool(chosen, workers))
                    rounds = _Rounds(chosen, workers, scheduler, snapshot.id, declared, pool)
                    result = _compute(jobs, settings, snapshot, rounds, restart, graph, progress)
                    result.full_because = chosen_plan.reason
    if chosen_plan is not None and result.mode == "incremental":
        if result.graph_status == "pending":
            # the touched groups' nodes only, unless the promoted run's graph is unfinished
            groups = chosen_plan.groups if chosen_plan.graph_complete else None
            _write_graph(settings, declared, result, progress, groups=groups)
    elif graph and (result.promoted_now or result.action == "graph-only"):
        _write_graph(settings, declared, result, progress)
    result.seconds = round(time.perf_counter() - started, 3)
    log.info(
        "aggregation finished",
        extra={
            "agg_run_id": result.run_id,
            "partitions": result.partitions_total,
            "partitions_done_now": result.partitions_done_now,
            "rows_read": result.rows_read,
            "graph_status": result.graph_status,
            "seconds": result.seconds,
        },
    )
    return result


def _incremental(
    connection: Any,
    settings: Settings,
    snapshot: InputSnapshot,
    declared: tuple[Declared, ...],
    chosen: incremental.Plan,
    graph: bool,
) -> AggregationResult:
    """Recompute only the touched groups (nothing, when none was touched)."""
    schema_name = settings.postgres.schema_name
    result = AggregationResult(
        run_id=chosen.since_run or 0,
        action="unchanged",
        mode="incremental",
        executor="inline",
        workers=1,
        resumed=False,
        input_state=snapshot.state,
        since_run=chosen.since_run,
        groups_recomputed=chosen.touched,
        graph_status="unchanged" if graph else "skipped",
    )
    done = None
    if chosen.touched:
        done = incremental.recompute(
            connection,
            snapshot,
            schema_name,
            declared,
            chosen,
            partition_rows=settings.run.partition_rows,
            graph=graph,
        )
        result.run_id, result.action, result.promoted_now = done.run_id, "computed", True
        result.graph_status = "pending" if graph else "skipped"
    elif graph and not chosen.graph_complete:
        result.graph_status = "pending"  # finish the promoted run's graph as a whole
    _count_summaries(connection, settings, declared, result)
    promotion = (
        describe_promotion(connection, schema_name, declared, promoted_now=False)
        if done is None
        else done.promotion
    )
    connection.commit()
    for aggregation in declared:
        summary = result.summaries[aggregation.name]
        summary.mode = "incremental"
        summary.groups_recomputed = len(chosen.groups.get(aggregation.name, []))
        summary.rows_in = 0 if done is None else done.rows_in.get(aggregation.name, 0)
        if aggregation.name in promotion.unreferenced:
            found = promotion.unreferenced[aggregation.name]
            summary.unreferenced_table = found.table
            summary.unreferenced_groups = found.groups
            summary.unreferenced_rows = found.rows
    plain = [d.name for d in declared if d.join_table is None and not d.exploded]
    result.rows_read = max(
        (result.summaries[name].rows_in for name in plain or result.summaries), default=0
    )
    return result


@dataclass(frozen=True)
class _Rounds:
    """How this command runs its workers, and the snapshot they read through."""

    executor: str
    workers: int
    scheduler: str | None
    snapshot: str
    declared: tuple[Declared, ...]
    pool: ProcessPoolExecutor | None = None  # the first round's processes, already started


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
    _drive(jobs, settings, result, rounds, progress)
    _promote(jobs.connection, settings, rounds.declared, result, graph=graph, snapshot=snapshot)
    return result


def refuse_half_loaded(connection: Any, schema_name: str, tables: list[str]) -> None:
    """Summaries of a table that is being (re)loaded would count half of it: refuse.
    ``connection`` is the snapshot's: the marker is seen exactly when the load is."""
    loads = loads_in_progress(connection, schema_name, tables)
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


def _loaded(connection: Any, schema_name: str, tables: list[str]) -> bool | None:
    """True when no input table is being loaded (for ``--wait``)."""
    loads = loads_in_progress(connection, schema_name, tables)
    connection.commit()
    return None if any(load.holder for load in loads) else True


def prepare_tables(connection: Any, schema_name: str, declared: tuple[Declared, ...]) -> None:
    existing = schema.existing_tables(connection, schema_name)
    missing = [t for t in input_tables(declared) if t not in existing]
    if missing:
        raise AggregationError(
            f"no {' and no '.join(missing)} table in PostgreSQL schema {schema_name}",
            hint="run `chariot sync` first (aggregate reads what the PostgreSQL sink wrote)",
        )
    schema.ensure_tables(connection, schema_name, declared)
    for aggregation in declared:
        if aggregation.ranged and not aggregation.group_joined:
            _index_column(connection, schema_name, aggregation.table, aggregation.group_source)
        for column, _ in aggregation.join_on[:1]:
            # the sink finds the rows a changed joined row's groups come from (touched.py)
            _index_column(connection, schema_name, aggregation.table, column)
    connection.commit()


def _index_column(connection: Any, schema_name: str, table_name: str, column: str) -> None:
    """Key-range partitions read by an index range scan, not a table scan: index the group
    column unless an index already starts with it (built once; blocks sync writes meanwhile).
    Likewise a join column."""
    table = schema.qualified(schema_name, table_name)
    indexed = connection.execute(
        "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(%s) AND a.attname = %s",
        (table, column),
    ).fetchone()
    if indexed is None:
        name = f"{table_name[:25]}_{column[:25]}_agg_idx"
        connection.execute(
            f"CREATE INDEX IF NOT EXISTS {quoted(name)} ON {table} ({quoted(column)})"
        )


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
    # a run of 0.1.0 (no recorded state) computed other tables: recomputed too
    if run_id is not None and jobs.input_state(run_id) != input_state:
        if jobs.counts(run_id)["running"]:
            jobs.connection.rollback()
            raise Busy(
                f"aggregation run {run_id} is being computed by another command from an "
                "earlier state of the synced tables",
                hint="wait for it to finish (or pass --wait SECONDS), then re-run",
            )
        because = f"the synced tables or the declared aggregations changed since run {run_id}"
        jobs.abandon_open_runs()
        run_id = None
    resumed = run_id is not None
    reset = 0
    if run_id is None:
        run_id = jobs.create_run(settings.run.partition_rows, input_state)
    else:
        reset = jobs.reset_failed(run_id)
    counts = jobs.counts(run_id)
    jobs.connection.commit()
    return OpenRun(run_id, resumed, counts["total"], counts["done"], reset, because)


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
        _absorb(result, _round(rounds_of, settings, run_id, tick, first=rounds == 0))
        rounds += 1
    _check_failures(jobs, result, counts, settings.run.partition_attempts)


def _round(
    rounds: _Rounds, settings: Settings, run_id: int, tick: Callable[[], Any], *, first: bool
) -> Round:
    try:
        return run_round(
            rounds.executor,
            settings,
            run_id,
            rounds.workers,
            rounds.scheduler,
            tick,
            snapshot=rounds.snapshot,
            declared=rounds.declared,
            pool=rounds.pool if first else None,  # a later round: its workers died
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
        f"{kind} partition {pid} (keys {_bound(after)}..{_bound(through)}]: {error}"
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
    connection: Any,
    settings: Settings,
    declared: tuple[Declared, ...],
    result: AggregationResult,
    *,
    graph: bool,
    snapshot: InputSnapshot,
) -> None:
    promotion: Promotion = promote(
        connection,
        settings.postgres.schema_name,
        result.run_id,
        declared,
        promoted_by=worker_id(),
        graph=graph,
        snapshot=snapshot,
    )
    result.promoted_now = promotion.promoted_now
    _count_summaries(connection, settings, declared, result)
    for name, found in promotion.unreferenced.items():
        summary = result.summaries[name]
        summary.unreferenced_table = found.table
        summary.unreferenced_groups = found.groups
        summary.unreferenced_rows = found.rows
    if not promotion.promoted_now:
        result.graph_status = "left to the promoting command" if graph else "skipped"


def _count_summaries(
    connection: Any, settings: Settings, declared: tuple[Declared, ...], result: AggregationResult
) -> None:
    """Rows each aggregation of the run read, and the promoted summary sizes."""
    schema_name = settings.postgres.schema_name
    read = dict(
        connection.execute(
            f"SELECT kind, coalesce(sum(rows_in), 0) "
            f"FROM {schema.qualified(schema_name, schema.PARTITIONS)} "
            "WHERE run_id = %s GROUP BY kind",
            (result.run_id,),
        ).fetchall()
    )
    existing = schema.existing_tables(connection, schema_name)
    for aggregation in declared:
        groups = 0
        if aggregation.name in existing:
            groups = connection.execute(
                f"SELECT count(*) FROM {schema.qualified(schema_name, aggregation.name)}"
            ).fetchone()[0]
        result.summaries[aggregation.name] = SummaryResult(
            table=aggregation.table,
            reads=aggregation.describe_rows(),
            rows_in=int(read.get(aggregation.name, 0)),
            groups=int(groups),
        )
    plain = [d.name for d in declared if d.join_table is None and not d.exploded]
    result.rows_read = max(
        (result.summaries[name].rows_in for name in plain or result.summaries), default=0
    )
    connection.commit()


def _write_graph(
    settings: Settings,
    declared: tuple[Declared, ...],
    result: AggregationResult,
    progress: ProgressCallback | None,
    *,
    groups: dict[str, list[str]] | None = None,
) -> None:
    if not labelled(declared):
        result.graph_status = "skipped"
        return
    try:
        written = write_graph(settings, result.run_id, declared, progress, groups=groups)
    except ChariotError as error:
        # "busy": another command holds the graph's writer lease; a re-run writes it then.
        result.graph_status = "busy" if isinstance(error, Busy) else "failed"
        result.graph_error = str(error)
    else:
        result.graph_status = "done"
        result.graph_nodes_written, result.graph_nodes_cleared = (
            written.nodes_written,
            written.nodes_cleared,
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
