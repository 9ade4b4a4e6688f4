"""`chariot status`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    console,
    finish,
    project_file_exists,
    project_streams_from,
    reported_errors,
    settings_from,
)
from chariot.exit_codes import ExitCode
from chariot.keys import key_to_json

if TYPE_CHECKING:  # imported by the command itself: `chariot sync` does not load it
    from chariot.status import StatusReport


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show each server (reachable, version), row counts per table, checkpoints and runs.

    Exits 3 when a server is unreachable; the others are still reported.
    """
    from chariot.status import collect_status

    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx)
        # The servers are worth seeing before there is a project (before `chariot init`).
        if project_file_exists(ctx):
            report = collect_status(settings, project_streams_from(ctx))
        else:
            report = collect_status(settings, ())
            report.notes.append("no project file: run `chariot init` (tables are not shown)")
    finish(
        report,
        exit_code=ExitCode.OK if report.all_reachable else ExitCode.CONNECTION,
        as_json=as_json,
        render=lambda: render_status(report),
    )


def render_status(report: StatusReport) -> None:
    table = Table(title="Servers", title_justify="left")
    for column in ("server", "role", "state", "version"):
        table.add_column(column)
    for endpoint in report.endpoints:
        state = "[green]up[/]" if endpoint.reachable else "[red]down[/]"
        table.add_row(endpoint.name, endpoint.role, state, endpoint.version or "")
    console.print(table)
    render_row_counts(report)
    for endpoint in report.endpoints:
        if endpoint.error:
            console.print(f"[red]{endpoint.name}[/]: {escape(endpoint.error)}", soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}", soft_wrap=True)
    render_sync_state(report)
    render_aggregation_runs(report)
    render_last_audit(report)


def render_row_counts(report: StatusReport) -> None:
    """One row per table of the project, one column per server: fits any number of tables."""
    if not report.tables:
        return
    table = Table(title="Rows per table", title_justify="left")
    table.add_column("table")
    for endpoint in report.endpoints:
        table.add_column(endpoint.name, justify="right")
    for name in report.tables:
        counts = [
            "-" if endpoint.row_counts.get(name) is None else f"{endpoint.row_counts[name]:,}"
            for endpoint in report.endpoints
        ]
        table.add_row(escape(name), *counts)
    console.print(table)


def render_sync_state(report: StatusReport) -> None:
    """Checkpoints and lag per sink and table, then the rejects each sink recorded."""
    if report.checkpoints:
        table = Table(title="Sync checkpoints", title_justify="left")
        for column in ("sink", "table", "high-water mark"):
            table.add_column(column)
        table.add_column("lag (source rows after it)", justify="right")
        for mark in report.checkpoints:
            table.add_row(
                mark.sink,
                mark.table,
                escape(key_to_json(mark.high_water_mark)) if mark.high_water_mark else "-",
                "?" if mark.lag is None else f"{mark.lag:,}",
            )
        console.print(table)
    render_change_capture(report)
    for sink, error in report.sink_errors.items():
        if not report.is_down(sink):  # a down server's error is already in the list above
            console.print(
                f"[red]{sink}[/]: checkpoints unavailable: {escape(error)}", soft_wrap=True
            )
    for rejects in report.rejects:
        if not rejects.counts:
            continue
        counts = ", ".join(f"{table} {count:,}" for table, count in rejects.counts.items())
        console.print(f"[yellow]{rejects.sink}[/] rejected rows: {counts}", highlight=False)
        for reject in rejects.first:
            key = key_to_json(reject.key)
            line = f"  {reject.table} {escape(key)}: {escape(reject.reason)}"
            console.print(line, highlight=False)


def render_change_capture(report: StatusReport) -> None:
    """Each sink's sync mode; for change capture, its log position and lag."""
    following = {capture.sink: capture for capture in report.change_capture}
    table = Table(title="Sync mode", title_justify="left")
    for column in ("sink", "mode", "log position", "source log end"):
        table.add_column(column)
    for column in ("behind (transactions)", "behind (changes)", "lag (s)"):
        table.add_column(column, justify="right")
    for endpoint in report.endpoints:
        if endpoint.role != "sink":
            continue
        capture = following.get(endpoint.name)
        if capture is None:
            table.add_row(endpoint.name, "keyset", "-", "-", "-", "-", "-")
            continue
        more = "" if capture.lag_complete else "≥ "
        unknown = "?" if capture.lag_error else "-"
        table.add_row(
            capture.sink,
            "cdc",
            escape(capture.position),
            escape(capture.source_position or unknown),
            unknown if capture.lag_transactions is None else f"{more}{capture.lag_transactions:,}",
            unknown if capture.lag_changes is None else f"{more}{capture.lag_changes:,}",
            unknown if capture.lag_seconds is None else f"{more}{capture.lag_seconds:,.1f}",
        )
    console.print(table)
    for capture in report.change_capture:
        if capture.lag_error:
            console.print(
                f"[red]{capture.sink}[/]: lag unknown: {escape(capture.lag_error)}", soft_wrap=True
            )


def render_aggregation_runs(report: StatusReport) -> None:
    """The latest `chariot aggregate` runs with their partitions by state."""
    if "aggregation_runs" in report.unavailable:
        console.print(f"Aggregation runs: {_unknown(report, 'aggregation_runs')}", soft_wrap=True)
    if not report.aggregation_runs:
        return
    table = Table(title="Aggregation runs", title_justify="left")
    for column in ("run", "status", "graph", "created", "promoted"):
        table.add_column(column)
    for column in ("pending", "running", "done", "failed"):
        table.add_column(column, justify="right")
    states = ("pending", "running", "done", "failed")
    for run in report.aggregation_runs:
        table.add_row(
            str(run.run_id),
            run.status,
            run.graph_status,
            f"{run.created_at:%m-%d %H:%M:%S}",
            f"{run.promoted_at:%m-%d %H:%M:%S}" if run.promoted_at else "-",
            *(f"{run.partitions.get(state, 0):,}" for state in states),
        )
    console.print(table)
    latest = report.aggregation_runs[0]
    if latest.status == "running" and latest.last_error:  # an open run: why it stopped
        console.print(
            f"[yellow]run {latest.run_id} last partition error:[/] {escape(latest.last_error)}",
            soft_wrap=True,
        )
    if latest.graph_error:
        console.print(
            f"[yellow]run {latest.run_id} graph error:[/] {escape(latest.graph_error)}",
            soft_wrap=True,
        )


def render_last_audit(report: StatusReport) -> None:
    """One line for the latest `chariot audit`, and the tables where it found differences."""
    audit = report.last_audit
    if "last_audit" in report.unavailable:
        console.print(f"Last audit: {_unknown(report, 'last_audit')}", soft_wrap=True)
        return
    if audit is None:
        console.print("Last audit: none yet (`chariot audit`)")
        return
    verdict = "[green]clean[/]" if audit.clean else f"[red]{audit.differences:,} difference(s)[/]"
    extras = " after repair" if audit.repaired else ""
    extras += " (sampled)" if audit.mode == "sample" else ""
    console.print(
        f"Last audit #{audit.audit_id}: {verdict}{extras}, "
        f"{audit.started_at:%Y-%m-%d %H:%M:%S} UTC, {audit.seconds:.1f} s; "
        f"summaries: {audit.summaries}",
        highlight=False,
    )
    for name, counts in audit.per_table.items():
        if counts.get("missing") or counts.get("extra") or counts.get("differing"):
            console.print(
                f"  {escape(name)}: missing {counts['missing']:,}, extra {counts['extra']:,}, "
                f"differing {counts['differing']:,}",
                highlight=False,
            )


def _unknown(report: StatusReport, part: str) -> str:
    """ "unknown" and why, without repeating a down server's error."""
    if report.is_down("postgres"):
        return "unknown (postgres is down)"
    return f"unknown ({escape(report.unavailable[part])})"


def register(app: typer.Typer) -> None:
    app.command("status")(status)
