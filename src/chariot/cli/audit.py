"""`chariot audit`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    WaitOption,
    console,
    finish,
    project_streams_from,
    reported_errors,
    settings_from,
)
from chariot.cli.progress import progress_display
from chariot.exit_codes import ExitCode

if TYPE_CHECKING:  # imported by the command itself: `chariot sync` does not load it
    from chariot.audit.report import (
        AuditReport,
        OrphanNote,
        RowDifference,
        SummariesAudit,
        TableAudit,
    )


def audit(
    ctx: typer.Context,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            "-t",
            metavar="TABLE",
            help="Audit only this table of the project file (repeatable). Default: every table.",
        ),
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            "-s",
            metavar="SINK",
            help="Audit only this sink (repeatable): postgres, neo4j. Default: CHARIOT_RUN__SINKS.",
        ),
    ] = None,
    sample: Annotated[
        float | None,
        typer.Option(
            "--sample",
            metavar="FRACTION",
            help="Fast statistical mode: compare only this random fraction (0-1] of the segments.",
        ),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Make each sink equal the source for the differences found, then audit again.",
        ),
    ] = False,
    examples: Annotated[
        int,
        typer.Option(
            "--examples",
            min=0,
            help="Keys listed per kind of difference (per table and sink) and per orphan note.",
        ),
    ] = 10,
    segment_rows: Annotated[
        int | None,
        typer.Option(
            "--segment-rows",
            min=2,
            help="Source rows per checksummed segment (default: about 64 segments).",
        ),
    ] = None,
    summaries: Annotated[
        bool,
        typer.Option(
            "--summaries/--no-summaries",
            help="Also check the aggregations' summaries (with the tables they read).",
        ),
    ] = True,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed for --sample (reproducible).")
    ] = None,
    wait: WaitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare every row and column of the source with each sink; optionally repair.

    Exit codes: 0 everything agrees (rows still in flight, which a running follower has not
    applied yet, are lag, not differences), 1 differences found (after --repair: some
    remain), 7 the audit itself could not run, 9 (--repair) another command (a sync, a
    follower) holds a writer lease.
    """
    from chariot.audit import AuditOptions, run_audit

    with reported_errors(ctx, as_json=as_json):
        streams = project_streams_from(ctx)
    options = AuditOptions(
        streams=streams,
        tables=tuple(table) if table else None,
        sinks=tuple(sink) if sink else None,
        sample=sample,
        repair=repair,
        examples=examples,
        segment_rows=segment_rows,
        summaries=summaries,
        seed=seed,
    )
    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx, lease_wait_seconds=wait)
        with progress_display(ctx, as_json=as_json) as progress:
            report = run_audit(settings, options, progress=progress)
    finish(
        report,
        exit_code=ExitCode.OK if report.clean else ExitCode.DIFFERENCES,
        as_json=as_json,
        render=lambda: render_audit(report),
    )


def render_audit(report: AuditReport) -> None:
    title = (
        "Audit"
        if report.mode == "full"
        else f"Audit (SAMPLE: {report.sample_fraction:.0%} of segments)"
    )
    console.print(_results_table(title, report.results))
    _render_examples(report.results)
    _render_summaries(report.summaries)
    if report.repair is not None:
        repairs = Table(title="Repair", title_justify="left")
        for column in ("table", "sink", "upserted", "deleted", "note"):
            repairs.add_column(
                column, justify="right" if column in ("upserted", "deleted") else "left"
            )
        for action in report.repair.actions:
            repairs.add_row(
                action.table,
                action.sink,
                f"{action.upserted:,}",
                f"{action.deleted:,}",
                action.note or "",
            )
        console.print(repairs)
        console.print(_results_table("Audit after repair", report.repair.after))
        _render_examples(report.repair.after)
    for orphan in report.orphans:
        console.print(f"[yellow]note:[/] {escape(_orphan_line(orphan))}", soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    verdict = "[green]clean[/]" if report.clean else f"[red]{_differences(report)}[/]"
    if report.in_flight:
        verdict += f" [yellow]({report.in_flight:,} rows still in flight: lag)[/]"
    where = f" (audit #{report.audit_id})" if report.audit_id is not None else ""
    console.print(f"Result: {verdict} in {report.seconds:.1f} s{where}")


def _differences(report: AuditReport) -> str:
    """What is not clean: rows, summaries, or both (never "0 differences" for a failure)."""
    parts = [f"{report.differences:,} row difference(s)"] if report.differences else []
    if not report.summaries.clean:
        parts.append(f"summaries: {report.summaries.status}")
    return "; ".join(parts) or "not clean"


def _orphan_line(orphan: OrphanNote) -> str:
    line = (
        f"{orphan.count:,} {orphan.table} rows reference {orphan.references} absent from the "
        f"source ({', '.join(orphan.columns)}); kept by the sinks, not a difference"
    )
    if orphan.keys:
        line += "; first keys: " + ", ".join(_text(key) for key in orphan.keys)
    return line


def _results_table(title: str, results: list[TableAudit]) -> Table:
    table = Table(title=title, title_justify="left")
    # "rejected": source rows a sync rejects (left out: expected absent, not a difference).
    columns = (
        "table",
        "sink",
        "rows",
        "missing",
        "extra",
        "differing",
        "in flight",
        "rejected",
        "segments",
        "secs",
    )
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("table", "sink") else "right", no_wrap=True
        )
    for r in results:
        segments = f"{r.segments_compared}/{r.segments}" + ("*" if r.sampled else "")
        name = f"[green]{r.table}[/]" if r.clean else f"[red]{r.table}[/]"
        table.add_row(
            name,
            r.sink,
            f"{r.rows_compared:,}",
            _count(r.missing),
            _count(r.extra),
            _count(r.differing),
            f"[yellow]{r.in_flight:,}[/]" if r.in_flight else "0",
            f"{r.rejected_known:,}",
            segments,
            f"{r.seconds:.1f}",
        )
    if any(r.sampled for r in results):
        table.caption = "* sampled: only these segments were compared (statistical, not exact)"
    return table


def _count(value: int) -> str:
    return f"[red]{value:,}[/]" if value else "0"


def _render_examples(results: list[TableAudit]) -> None:
    for result in results:
        for title, found in (
            ("first differences", result.examples),
            ("first rows in flight (lag, not differences)", result.in_flight_examples),
        ):
            if not found:
                continue
            table = Table(title=f"{result.table} in {result.sink}: {title}", title_justify="left")
            for column in ("kind", "key", "source", "sink"):
                table.add_column(column)
            for example in found:
                table.add_row(example.kind, escape(_text(example.key)), *_sides(example))
            console.print(table)


def _sides(example: RowDifference) -> tuple[str, str]:
    """Differing rows show only the changed fields; others the whole row."""

    def shown(row: dict[str, Any] | None) -> str:
        if row is None:
            return "-"
        fields = example.changed if example.changed and example.kind == "differing" else list(row)
        return escape(", ".join(f"{name}={_text(row.get(name))}" for name in fields if name in row))

    return shown(example.source), shown(example.sink)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _render_summaries(summaries: SummariesAudit) -> None:
    colour = {"ok": "green", "differences": "red"}.get(summaries.status, "yellow")
    line = f"Summaries: [{colour}]{summaries.status}[/]"
    if summaries.note:
        line += f" - {escape(summaries.note)}"
    console.print(line, soft_wrap=True)
    check = summaries.check or {}
    for table in check.get("tables", []):
        if table.get("ok"):
            continue
        console.print(
            f"  {escape(table['name'])}: {table['rows_differing']:,} differing, "
            f"{table['missing_count']:,} missing, {table['unexpected_count']:,} unexpected",
            soft_wrap=True,
        )
        for difference in table.get("differences", [])[:5]:
            console.print(
                f"    key {escape(_text(difference['key']))} {escape(difference['column'])}: "
                f"expected {escape(_text(difference['expected']))}, "
                f"found {escape(_text(difference['actual']))}",
                soft_wrap=True,
            )


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
