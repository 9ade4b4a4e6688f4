"""`chariot run`: sync, then aggregate, then audit, stopping at the first failing stage.

Each stage is the same library call its own command makes; this module only orders them,
decides what a stage's failure is, and collects one summary.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field

from chariot.config import Settings
from chariot.errors import ChariotError
from chariot.exit_codes import ExitCode
from chariot.keys import json_ready
from chariot.progress import ProgressCallback, State, notify, prefixed
from chariot.streams import Stream

log = logging.getLogger(__name__)

StageName = Literal["sync", "aggregate", "audit"]
STAGES: tuple[StageName, ...] = ("sync", "aggregate", "audit")


class StageResult(BaseModel):
    stage: StageName
    status: Literal["ok", "failed", "skipped", "not run"]
    rows: int = Field(0, description="sync: rows read; aggregate: ratings; audit: rows compared")
    seconds: float = 0.0
    detail: str | None = Field(None, description="why it failed or was skipped")
    exit_code: int = 0
    result: dict[str, Any] | None = Field(None, description="the stage command's own --json result")


class PipelineResult(BaseModel):
    stages: list[StageResult]
    seconds: float = 0.0

    @property
    def failed_stage(self) -> StageResult | None:
        return next((stage for stage in self.stages if stage.status == "failed"), None)

    @property
    def ok(self) -> bool:
        return self.failed_stage is None


def run_pipeline(
    settings: Settings,
    *,
    sinks: list[str] | None = None,
    full_refresh: bool = False,
    workers: int | None = None,
    repair: bool = False,
    progress: ProgressCallback | None = None,
    streams: tuple[Stream, ...] | None = None,
) -> PipelineResult:
    """Run sync → aggregate → audit; a stage that fails stops the pipeline.

    ``progress`` hears the stages done out of all (task "pipeline"), and each stage's own
    progress with the stage's name before its task names ("sync: ratings -> postgres").
    """
    sink_names = list(dict.fromkeys(sinks or settings.run.sinks))
    sync_progress, aggregate_progress, audit_progress = (
        prefixed(progress, f"{name}: ") for name in STAGES
    )
    stages = {
        "sync": lambda: _sync(settings, sink_names, full_refresh, sync_progress, streams),
        "aggregate": lambda: _aggregate(settings, sink_names, workers, aggregate_progress, streams),
        "audit": lambda: _audit(settings, sink_names, repair, audit_progress, streams),
    }
    started = time.perf_counter()
    results: list[StageResult] = []
    for done, name in enumerate(STAGES):
        if any(result.status == "failed" for result in results):
            results.append(
                StageResult(stage=name, status="not run", detail="an earlier stage failed")
            )
            continue
        notify(progress, "pipeline", done, len(STAGES), unit="stages")
        results.append(_timed(name, stages[name]))
        log.info(
            "stage finished",
            extra={
                "stage": name,
                "status": results[-1].status,
                "rows": results[-1].rows,
                "seconds": results[-1].seconds,
            },
        )
    finished = sum(result.status in ("ok", "skipped") for result in results)
    state: State = "done" if finished == len(STAGES) else "failed"
    notify(progress, "pipeline", finished, len(STAGES), unit="stages", state=state)
    return PipelineResult(stages=results, seconds=round(time.perf_counter() - started, 3))


def _timed(name: StageName, stage: Callable[[], StageResult]) -> StageResult:
    started = time.perf_counter()
    try:
        result = stage()
    except ChariotError as error:
        result = StageResult(
            stage=name, status="failed", detail=_one_line(error), exit_code=error.exit_code
        )
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _sync(
    settings: Settings,
    sinks: list[str],
    full_refresh: bool,
    progress: ProgressCallback | None,
    streams: tuple[Stream, ...] | None,
) -> StageResult:
    from chariot.sync import sync

    result = sync(
        settings, sinks=sinks, full_refresh=full_refresh, progress=progress, streams=streams
    )
    rows = sum(table.rows_read for table in result.tables)
    payload = json_ready(result)
    if not result.ok:
        detail = "; ".join(failure.line() for failure in result.failures)
        return StageResult(
            stage="sync",
            status="failed",
            rows=rows,
            detail=detail,
            exit_code=ExitCode[(result.failure_kind or "sink_write").upper()],
            result=payload,
        )
    changes = sum(part.changes for part in result.changes) // max(len(result.changes), 1)
    detail = (
        f"change capture: {changes:,} changes applied"
        if result.mode == "cdc"
        else f"keyset ({result.mode_reason})"
        if result.mode_reason
        else "keyset"
    )
    return StageResult(stage="sync", status="ok", rows=rows, detail=detail, result=payload)


def _aggregate(
    settings: Settings,
    sinks: list[str],
    workers: int | None,
    progress: ProgressCallback | None,
    streams: tuple[Stream, ...] | None,
) -> StageResult:
    if "postgres" not in sinks:
        return StageResult(
            stage="aggregate",
            status="skipped",
            detail="aggregation reads the tables in the postgres sink, which is not selected",
        )
    from chariot.aggregate.runner import run_aggregation

    project = streams[0].project if streams else None
    result = run_aggregation(
        settings, workers=workers, graph="neo4j" in sinks, progress=progress, project=project
    )
    if result.action == "none":
        return StageResult(
            stage="aggregate", status="skipped", detail="the project declares no aggregations"
        )
    payload = json_ready(result)
    if result.graph_status == "failed":
        return StageResult(
            stage="aggregate",
            status="failed",
            rows=result.rows_read,
            detail="summaries promoted in PostgreSQL but not written to Neo4j: "
            f"{result.graph_error}",
            exit_code=ExitCode.AGGREGATION,
            result=payload,
        )
    return StageResult(stage="aggregate", status="ok", rows=result.rows_read, result=payload)


def _audit(
    settings: Settings,
    sinks: list[str],
    repair: bool,
    progress: ProgressCallback | None,
    streams: tuple[Stream, ...] | None,
) -> StageResult:
    from chariot.audit import AuditOptions, run_audit
    from chariot.audit.tables import AUDITABLE_SINKS

    audited = [sink for sink in sinks if sink in AUDITABLE_SINKS]
    if not audited:
        return StageResult(
            stage="audit", status="skipped", detail="no selected sink can be audited"
        )
    options = AuditOptions(sinks=tuple(audited), repair=repair, streams=streams)
    report = run_audit(settings, options, progress=progress)
    rows = sum(result.rows_compared for result in report.results)
    payload = json_ready(report)
    if not report.clean:
        return StageResult(
            stage="audit",
            status="failed",
            rows=rows,
            exit_code=ExitCode.DIFFERENCES,
            detail=_audit_detail(report),
            result=payload,
        )
    return StageResult(stage="audit", status="ok", rows=rows, result=payload)


def _audit_detail(report: Any) -> str:
    parts = [
        f"{r.table}/{r.sink}: {r.missing} missing, {r.extra} extra, {r.differing} differing"
        for r in report.results
        if not r.clean
    ]
    if not report.summaries.clean:
        parts.append(f"summaries: {report.summaries.status}")
    return "differences found: " + "; ".join(parts) + " (run `chariot audit` for the rows)"


def _one_line(error: ChariotError) -> str:
    return str(error) + (f" (hint: {error.hint})" if error.hint else "")
