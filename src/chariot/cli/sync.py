"""`chariot sync`."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated

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
    project_streams_from,
    reported_errors,
    settings_from,
)
from chariot.cli.progress import progress_display
from chariot.config import with_batch_size
from chariot.exit_codes import ExitCode
from chariot.keys import key_to_json
from chariot.redaction import redact
from chariot.sync import SyncResult, sync


class SyncMode(StrEnum):
    auto = "auto"
    keyset = "keyset"
    cdc = "cdc"


def sync_command(
    ctx: typer.Context,
    tables: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            "-t",
            metavar="TABLE",
            help="Sync only this table (repeatable). Default: all.",
        ),
    ] = None,
    sinks: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            "-s",
            metavar="SINK",
            help="Write only to this sink (repeatable). Default: CHARIOT_RUN__SINKS.",
        ),
    ] = None,
    full_refresh: Annotated[
        bool,
        typer.Option("--full-refresh", help="Empty each selected table and checkpoint first."),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            max=1_000_000,
            help="Rows per batch and sink transaction, for every sink (default: each sink's "
            "own batch size, else CHARIOT_RUN__BATCH_SIZE).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be read and written; change nothing."),
    ] = False,
    mode: Annotated[
        SyncMode | None,
        typer.Option(
            "--mode",
            help="cdc: apply the binary log (updates and deletes too); keyset: copy rows "
            "above each checkpoint; auto: cdc where the source allows it "
            "(default CHARIOT_RUN__MODE, auto).",
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep applying changes as they commit (change capture) until SIGINT or "
            "SIGTERM, which stop after the current transaction (exit 0).",
        ),
    ] = False,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Copy MySQL tables into PostgreSQL and Neo4j: each table read once, sinks in parallel.

    With change capture (the default where the source's binary log allows it) each sink
    then applies every insert, update and delete from the log, up to the log's end at the
    start (or for good with --follow). Otherwise incremental by key: each sink resumes
    after its own checkpoint. Exits 5 when a sink failed (the others finish their work),
    3 when every failed sink was unreachable, 4 when the source or its binary log could
    not be read (change capture unavailable, a schema change), 8 when the source was
    replaced under a sink or its log position was purged, 9 when another command holds a
    table's writer lease. Every code: docs, Reference, Exit codes.
    """
    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx, batch_size=batch_size, lease_wait_seconds=wait)
        if batch_size is not None:
            settings = with_batch_size(settings, batch_size)
        stop = threading.Event()
        with (
            progress_display(ctx, as_json=as_json, enabled=not dry_run and not follow) as progress,
            _stopped_by_signals(stop, enabled=follow),
        ):
            result = sync(
                settings,
                tables=tables,
                sinks=sinks,
                full_refresh=full_refresh,
                dry_run=dry_run,
                progress=progress,
                streams=project_streams_from(ctx),
                mode=mode.value if mode else None,
                follow=follow,
                stop=stop,
            )
    finish(
        result,
        exit_code=ExitCode[(result.failure_kind or "ok").upper()],
        as_json=as_json,
        render=lambda: render_result(result),
    )


@contextmanager
def _stopped_by_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """While following: SIGINT and SIGTERM ask the sync to stop after the current
    transaction (it then exits 0), instead of interrupting it."""
    if not enabled:
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def request_stop(number: int, frame: object) -> None:
        stop.set()

    for number in previous:
        signal.signal(number, request_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def render_result(result: SyncResult) -> None:
    render_table(result)
    render_changes(result)
    for failure in result.failures:
        err_console.print(f"[bold red]Error:[/] {escape(redact(failure.line()))}", soft_wrap=True)
    if result.failures:
        err_console.print(f"[dim]Hint: {escape(redact(result.hint()))}[/]", soft_wrap=True)


def render_table(result: SyncResult) -> None:
    title = "Sync (dry run: nothing written)" if result.dry_run else "Sync"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("table", "sink", "status"):
        table.add_column(column, no_wrap=True)
    table.add_column("checkpoint", overflow="fold", min_width=12)
    pending = "to write" if result.dry_run else "pending"
    for column in (pending, "written", "rejected", "seconds", "rows/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for table_result in result.tables:
        for part in table_result.sinks:
            status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]"}.get(
                part.status, part.status
            )
            mark = part.checkpoint_after if not result.dry_run else part.checkpoint_before
            table.add_row(
                part.table,
                part.sink,
                status,
                escape(key_to_json(mark)) if mark else "-",
                f"{part.rows_pending:,}",
                f"{part.rows_written:,}",
                f"{part.rows_rejected:,}",
                f"{part.seconds:.1f}",
                f"{part.rows_per_second:,.0f}",
            )
    console.print(table)
    read = sum(t.rows_read for t in result.tables)
    rejected = sum(t.rows_rejected for t in result.tables)
    verb = "would read" if result.dry_run else "read"
    console.print(
        f"{verb} {read:,} rows from {escape(result.source)}, {rejected:,} rejected "
        f"(see `chariot status`), {result.seconds:.1f}s",
        highlight=False,
    )


def render_changes(result: SyncResult) -> None:
    if result.dry_run:
        return
    if result.mode != "cdc":
        reason = f" ({escape(result.mode_reason)})" if result.mode_reason else ""
        console.print(f"mode: keyset{reason}", highlight=False)
        return
    if result.recopied:
        console.print(
            "re-copied to start change capture (synced by keys before): "
            + ", ".join(result.recopied),
            highlight=False,
        )
    table = Table(title="Change capture", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("sink", "status", "log position"):
        table.add_column(column, no_wrap=True)
    for column in ("transactions", "changes", "upserts", "deletes", "rejected", "changes/s"):
        table.add_column(column, justify="right", no_wrap=True)
    for part in result.changes:
        status = {"ok": "[green]ok[/]", "failed": "[red]failed[/]"}.get(part.status, part.status)
        table.add_row(
            part.sink,
            status,
            escape(part.position_after or "-"),
            f"{part.transactions:,}",
            f"{part.changes:,}",
            f"{part.upserts:,}",
            f"{part.deletes:,}",
            f"{part.rejects:,}",
            f"{part.changes_per_second:,.0f}",
        )
    console.print(table)
    console.print("mode: cdc (binary log)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync_command)
