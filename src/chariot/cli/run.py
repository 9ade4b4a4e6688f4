"""`chariot run`: the whole pipeline in one command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    WaitOption,
    console,
    fail,
    finish,
    project_streams_from,
    reported_errors,
    settings_from,
)
from chariot.cli.progress import progress_display
from chariot.exit_codes import ExitCode

if TYPE_CHECKING:  # imported by the command itself: `chariot sync` does not load it
    from chariot.pipeline import PipelineResult

STATUS_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow", "not run": "dim"}


def run(
    ctx: typer.Context,
    sinks: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            "-s",
            metavar="SINK",
            help="Only these sinks (repeatable). Default: CHARIOT_RUN__SINKS.",
        ),
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh", help="Sync stage: rebuild every table in the selected sinks."
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=256,
            help="Aggregate stage: worker processes (default CHARIOT_RUN__WORKERS).",
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Audit stage: fix the differences found, then audit again."),
    ] = False,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run sync → aggregate → audit, stopping at the first failing stage.

    Exits 0 when every stage is ok; otherwise with the failing stage's code
    (sync 4/5, aggregate 6, audit 1 for differences or 7 when it could not run).
    """
    from chariot.pipeline import run_pipeline

    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx, lease_wait_seconds=wait)
        with progress_display(ctx, as_json=as_json) as progress:
            result = run_pipeline(
                settings,
                sinks=sinks,
                full_refresh=full_refresh,
                workers=workers,
                repair=repair,
                progress=progress,
                streams=project_streams_from(ctx),
            )
    failed = result.failed_stage
    if failed is not None and not as_json:
        render_pipeline(result)
        fail(f"stage {failed.stage} failed: {failed.detail}", exit_code=ExitCode(failed.exit_code))
    code = ExitCode(failed.exit_code) if failed is not None else ExitCode.OK
    finish(result, exit_code=code, as_json=as_json, render=lambda: render_pipeline(result))


def render_pipeline(result: PipelineResult) -> None:
    table = Table(title="Pipeline", title_justify="left", box=box.SIMPLE_HEAD)
    for column, justify in (
        ("stage", "left"),
        ("status", "left"),
        ("rows", "right"),
        ("seconds", "right"),
        ("detail", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for stage in result.stages:
        style = STATUS_STYLE[stage.status]
        table.add_row(
            stage.stage,
            f"[{style}]{stage.status}[/]",
            f"{stage.rows:,}",
            f"{stage.seconds:.1f}",
            escape(stage.detail or ""),
        )
    console.print(table)
    console.print(f"total {result.seconds:.1f} s")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
