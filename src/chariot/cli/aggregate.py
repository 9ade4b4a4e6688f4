"""`chariot aggregate`."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    WaitOption,
    console,
    err_console,
    finish,
    project_from,
    reported_errors,
    settings_from,
)
from chariot.cli.progress import progress_display
from chariot.exit_codes import ExitCode

if TYPE_CHECKING:  # the runner imports numpy and the drivers: keep `--help` instant
    from chariot.aggregate.runner import AggregationResult, SummaryResult


class Executor(StrEnum):
    auto = "auto"
    inline = "inline"
    process = "process"
    dask = "dask"


def aggregate(
    ctx: typer.Context,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", min=1, max=256, help="Worker count (default CHARIOT_RUN__WORKERS)."
        ),
    ] = None,
    executor: Annotated[
        Executor | None,
        typer.Option(
            "--executor",
            help="auto (inline for 1 worker, else processes), inline, process, or dask "
            "(default CHARIOT_RUN__EXECUTOR).",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Dask scheduler address for --executor dask, e.g. tcp://host:8786."
        ),
    ] = None,
    partition_rows: Annotated[
        int | None,
        typer.Option(
            "--partition-rows",
            min=1,
            help="Input rows per partition of a NEW run (default CHARIOT_RUN__PARTITION_ROWS).",
        ),
    ] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart", help="Abandon the unfinished run (if any) and start a fresh one."
        ),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Recompute every group, even when the sink recorded which groups changed.",
        ),
    ] = False,
    graph: Annotated[
        bool,
        typer.Option(
            "--graph/--no-graph",
            help="Write the summaries of aggregations that name a label onto its Neo4j nodes.",
        ),
    ] = True,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compute the project's declared aggregations into PostgreSQL (and onto Neo4j nodes).

    Resumable: re-run after any interruption and only unfinished partitions are computed;
    the new summaries replace the old in one transaction. After a change-capture sync,
    only the groups it touched are recomputed (unless --full). Exits 6 when partitions failed
    beyond CHARIOT_RUN__PARTITION_ATTEMPTS or the Neo4j write failed (re-run to finish it),
    9 when an input table is being loaded or the graph's writer lease is held.
    """
    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx, partition_rows=partition_rows, lease_wait_seconds=wait)
        with progress_display(ctx, as_json=as_json) as progress:
            from chariot.aggregate.runner import run_aggregation

            result = run_aggregation(
                settings,
                workers=workers,
                executor=executor.value if executor else None,
                scheduler=scheduler,
                restart=restart,
                graph=graph,
                progress=progress,
                project=project_from(ctx),
                full=full,
            )
    finish(
        result,
        exit_code=_exit_code(result),
        as_json=as_json,
        render=lambda: render_result(result),
    )


def _exit_code(result: AggregationResult) -> ExitCode:
    if result.graph_status == "busy":
        return ExitCode.BUSY
    return ExitCode.AGGREGATION if result.graph_error else ExitCode.OK


def render_result(result: AggregationResult) -> None:
    table = Table(
        title=f"Aggregation run {result.run_id}",
        title_justify="left",
        box=box.SIMPLE,
        show_header=False,
    )
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for label, value in _result_rows(result):
        table.add_row(label, value)
    console.print(table)
    if result.graph_error:
        err_console.print(
            f"[bold red]Error:[/] PostgreSQL summaries of run {result.run_id} are "
            f"promoted, but the Neo4j write failed: {escape(result.graph_error)}",
            soft_wrap=True,
        )
        err_console.print("[dim]Hint: re-run `chariot aggregate` to finish the graph write.[/]")
    if result.worker_reports:
        workers = Table(title="Workers", title_justify="left", box=box.SIMPLE)
        for column in (
            "worker",
            "partitions",
            "retried",
            "leases lost",
            "rows read",
            "rows out",
            "seconds",
        ):
            workers.add_column(column, justify="left" if column == "worker" else "right")
        for report in result.worker_reports:
            workers.add_row(
                report.worker_id,
                f"{report.partitions_done:,}",
                str(report.attempts_failed),
                str(report.leases_lost),
                f"{report.rows_in:,}",
                f"{report.rows_out:,}",
                f"{report.seconds:.2f}",
            )
        console.print(workers)
    for crash in result.worker_crashes:
        err_console.print(
            f"[yellow]worker lost (its partitions were taken over):[/] {escape(crash)}",
            soft_wrap=True,
        )


def _result_rows(result: AggregationResult) -> list[tuple[str, str]]:
    if result.action == "none":
        return [("action", "nothing to do: the project declares no [aggregations]")]
    if result.action == "graph-only":
        return [
            ("action", "finished the Neo4j write of the promoted run"),
            ("graph", _graph_line(result)),
            ("seconds", f"{result.seconds:.2f}"),
        ]
    if result.mode == "incremental":
        return _incremental_rows(result)
    started = "resumed" if result.resumed else "new run"
    rows = [
        (
            "run",
            f"{result.run_id} ({started}), executor {result.executor}, {result.workers} worker(s)",
        ),
        ("mode", "full" + (f": {result.full_because}" if result.full_because else "")),
        (
            "partitions",
            (
                f"{result.partitions_total} total: {result.partitions_done_now} done now, "
                f"{result.partitions_done_before} resumed as done, "
                f"{result.partitions_done_by_others} by another command"
            ),
        ),
        (
            "retries",
            f"{result.attempts_failed} failed attempt(s) retried, "
            f"{result.leases_lost} lease(s) lost",
        ),
        ("rows read", f"{result.rows_read:,}"),
    ]
    for name, summary in result.summaries.items():
        line = f"{summary.groups:,} rows from {summary.rows_in:,} rows ({summary.reads})"
        rows.append((name, line + _unreferenced(summary)))
    rows += [
        (
            "promoted",
            "yes, by this command" if result.promoted_now else "already, by another command",
        ),
        ("graph", _graph_line(result)),
        ("seconds", f"{result.seconds:.2f}"),
    ]
    return rows


def _incremental_rows(result: AggregationResult) -> list[tuple[str, str]]:
    since = f"since run {result.since_run}"
    if result.action == "unchanged":
        rows = [("mode", f"incremental: no change recorded {since}, nothing recomputed")]
    else:
        rows = [
            ("run", f"{result.run_id} (incremental, in this process)"),
            ("mode", f"incremental: {result.groups_recomputed:,} touched group(s) {since}"),
        ]
    for name, summary in result.summaries.items():
        line = (
            f"{summary.groups_recomputed or 0:,} group(s) recomputed from {summary.rows_in:,} "
            f"rows ({summary.reads}); {summary.groups:,} rows"
        )
        rows.append((name, line + _unreferenced(summary)))
    if result.action != "unchanged":
        rows.append(("promoted", "yes, by this command"))
    rows += [("graph", _graph_line(result)), ("seconds", f"{result.seconds:.2f}")]
    return rows


def _unreferenced(summary: SummaryResult) -> str:
    if not summary.unreferenced_groups:
        return ""
    rows_of = (
        f" ({summary.unreferenced_rows:,} rows)" if summary.unreferenced_rows is not None else ""
    )
    return (
        f"; {summary.unreferenced_groups:,} keys{rows_of} have no row in "
        f"{summary.unreferenced_table}: summarised all the same"
    )


def _graph_line(result: AggregationResult) -> str:
    if result.graph_status == "done":
        return (
            f"{result.graph_nodes_written:,} nodes written, "
            f"{result.graph_nodes_cleared:,} cleared of stale summaries"
        )
    return result.graph_status


def register(app: typer.Typer) -> None:
    app.command("aggregate")(aggregate)
