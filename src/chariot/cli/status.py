"""`chariot status`."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import JsonOption, console, print_json, reported_errors, settings_from
from chariot.status import StatusReport, collect_status
from chariot.streams import MOVIELENS_STREAMS


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show each server (reachable, version), row counts per table, checkpoints and runs.

    Exits 3 when a server is unreachable; the others are still reported.
    """
    with reported_errors(ctx, as_json=as_json):
        report = collect_status(settings_from(ctx))
    if as_json:
        print_json(report)
    else:
        render_status(report)
    if not report.all_reachable:
        raise typer.Exit(3)


def render_status(report: StatusReport) -> None:
    table = Table(title="Servers", title_justify="left")
    for column in ("server", "role", "state", "version"):
        table.add_column(column)
    for stream in MOVIELENS_STREAMS:
        table.add_column(stream.name, justify="right")
    for endpoint in report.endpoints:
        state = "[green]up[/]" if endpoint.reachable else "[red]down[/]"
        counts = [
            "-" if endpoint.row_counts.get(s.name) is None else f"{endpoint.row_counts[s.name]:,}"
            for s in MOVIELENS_STREAMS
        ]
        table.add_row(endpoint.name, endpoint.role, state, endpoint.version or "", *counts)
    console.print(table)
    for endpoint in report.endpoints:
        if endpoint.error:
            console.print(f"[red]{endpoint.name}[/]: {escape(endpoint.error)}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
