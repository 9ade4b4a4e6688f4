"""`chariot init`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    console,
    finish,
    global_options,
    reported_errors,
    settings_from,
)
from chariot.exit_codes import ExitCode

if TYPE_CHECKING:  # imported by the command itself: `chariot sync` does not load it
    from chariot.project.init import InitResult


def init(
    ctx: typer.Context,
    include: Annotated[
        list[str] | None,
        typer.Option(
            "--include",
            metavar="PATTERN",
            help="Only tables matching this name or pattern (repeatable; 'film*').",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", metavar="PATTERN", help="Leave out tables matching this name or pattern."
        ),
    ] = None,
    no_graph: Annotated[
        bool, typer.Option("--no-graph", help="Propose no graph model (tables only).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing project file.")
    ] = False,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            help="Write the project file here (a file, or a folder for chariot.toml). "
            "Default: the global --project, else ./chariot.toml.",
            envvar="CHARIOT_PROJECT",
        ),
    ] = None,
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            help="Write an example project shipped with Chariot instead of reflecting the "
            "source ('movielens': the tables `chariot seed movielens` loads).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a starting chariot.toml by reflecting the source database.

    Every base table with a primary key, with its columns and their mapped types.

    A proposed graph: tables become node labels; foreign keys and join tables relationships.

    The file is commented and meant to be edited; an existing one is kept unless --force.
    """
    from chariot.project.init import init_project

    with reported_errors(ctx, as_json=as_json):
        result = init_project(
            settings_from(ctx),
            path=project or global_options(ctx).project,
            include=include,
            exclude=exclude,
            graph=not no_graph,
            force=force,
            example=example,
        )
    finish(result, exit_code=ExitCode.OK, as_json=as_json, render=lambda: render_init(result))


def render_init(result: InitResult) -> None:
    # A title wider than the table would wrap inside it: print the source on its own line.
    console.print(f"Tables from {escape(result.source)}", highlight=False, soft_wrap=True)
    table = Table()
    for column in ("table", "key", "columns"):
        table.add_column(column)
    for summary in result.tables:
        table.add_row(escape(summary.name), escape(", ".join(summary.key)), str(summary.columns))
    console.print(table)
    for name, reason in result.skipped_tables.items():
        console.print(f"[yellow]left out[/] {escape(name)}: {escape(reason)}", highlight=False)
    for line in result.skipped_columns:
        console.print(f"[yellow]warning[/] {escape(line)}", highlight=False)
    if result.labels:
        console.print(f"labels: {escape(', '.join(result.labels))}", highlight=False)
    for relationship in result.relationships:
        console.print(f"  {escape(relationship)}", highlight=False)
    console.print(f"wrote {escape(result.path)}: review and edit it", highlight=False)
    console.print("next: chariot run (sync, aggregate, audit)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
