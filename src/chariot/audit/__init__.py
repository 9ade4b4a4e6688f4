"""`chariot audit`: exact comparison of the source with every sink, row by row.

canonical.py  the canonical row text (SQL and Python alike)
values.py     source values as the value contract reads them; one canonical text per kind
forms.py      each table's fields per sink, derived from its stream (PostgreSQL: outputs)
graph_form.py the same for Neo4j, from the project's graph model
segments.py   key-space segments and the range predicates of each database
sides.py      what a database offers the comparison (checksums, digests, rows)
source.py     MySQL/MariaDB side; postgres.py, neo4j.py: the sinks' sides
compare.py    segment checksums, bisection, row classification
tables.py     one stream at a time, sides in parallel, the report rows
orphans.py    notes on source rows whose referenced row is absent (not differences)
summaries.py  aggregation summaries against an independent recomputation
repair.py     --repair: upsert what is missing or changed, delete what is extra
in_flight.py  rows still in flight: differences on keys changed after a sink's log position
lagging.py    the sinks' positions before the comparison, the log after it
history.py    each audit's summary in _chariot_audits, for `chariot status`
progress.py   segments checksummed so far, for a progress display
report.py     the result models
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chariot.audit.report import AuditReport, LastAudit, RepairReport, SummariesAudit
from chariot.config import Settings
from chariot.errors import ChariotError, ConfigError
from chariot.progress import ProgressCallback, notify, prefixed
from chariot.streams import Stream

if TYPE_CHECKING:
    from chariot.audit.tables import Scope, StreamAudit
    from chariot.sinks.base import Sink

__all__ = ["AuditOptions", "AuditReport", "LastAudit", "last_audit", "run_audit"]


@dataclass(frozen=True)
class AuditOptions:
    tables: tuple[str, ...] | None = None  # None: every table
    sinks: tuple[str, ...] | None = None  # None: settings.run.sinks
    sample: float | None = None  # compare only this fraction of the segments
    repair: bool = False
    examples: int = 10  # keys listed per kind of difference, per table and sink
    segment_rows: int | None = None  # None: about 64 segments per table
    summaries: bool = True
    seed: int | None = None  # for a reproducible --sample
    streams: tuple[Stream, ...] | None = None  # None: the project file's tables


def run_audit(
    settings: Settings,
    options: AuditOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
) -> AuditReport:
    """Compare every selected table in every selected sink with the source.

    ``progress`` hears, per table and sink, the segments compared out of all.

    Raises ``ConfigError`` for bad options and ``AuditError``/``ConnectionFailed`` when the
    audit itself cannot run; differences are data in the returned report, never errors.
    """
    from chariot.audit.repair import hold_leases

    options = options or AuditOptions()
    scope = _scope(settings, options)
    # A repair takes its writer leases before comparing: nothing writes the tables it
    # compares and repairs (a follower holding them is named at once, exit 9).
    sinks = hold_leases(settings, scope) if options.repair else {}
    try:
        return _audit(settings, scope, options, sinks, progress)
    finally:
        for sink in sinks.values():
            sink.close()


def _audit(
    settings: Settings,
    scope: Scope,
    options: AuditOptions,
    sinks: dict[str, Sink],
    progress: ProgressCallback | None,
) -> AuditReport:
    from chariot.audit.history import store_audit
    from chariot.audit.orphans import find_orphans
    from chariot.audit.repair import repair

    started_at, started = datetime.now(UTC), time.perf_counter()
    # The orphan anti-joins read only the source: they run beside the comparison, on a
    # core the comparison leaves idle while it walks a table's keys.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-orphans") as pool:
        looking = pool.submit(find_orphans, settings, scope.streams, limit=scope.examples)
        audits, notes = _compare(settings, scope, progress)
        orphans, orphan_notes = looking.result()
    notes += orphan_notes
    summaries = _summaries(settings, scope, options, progress)
    repaired: RepairReport | None = None
    if options.repair:
        actions = repair(settings, audits, sinks)
        again = prefixed(progress, "after repair: ")
        if actions:
            after, after_notes = _compare(settings, scope, again)
            first = set(notes)
            notes += [f"after repair: {note}" for note in after_notes if note not in first]
        else:
            after = audits
        repaired = RepairReport(actions=actions, after=[a.result for a in after])
        summarised = _summarised_tables(scope)
        changed = sorted(
            {
                a.table
                for a in actions
                if a.table in summarised and a.sink == "postgres" and (a.upserted or a.deleted)
            }
        )
        if summaries.status == "ok" and changed:
            notes.append(
                f"the repair changed {', '.join(changed)} in PostgreSQL: the summaries were "
                "checked before it and are stale now; run `chariot aggregate`"
            )
    report = AuditReport(
        started_at=started_at,
        seconds=0.0,
        mode="sample" if scope.sample is not None else "full",
        sample_fraction=scope.sample,
        tables=[s.name for s in scope.streams],
        sinks=list(scope.sinks),
        results=[a.result for a in audits],
        summaries=summaries,
        repair=repaired,
        orphans=orphans,
        notes=notes,
    )
    report.seconds = round(time.perf_counter() - started, 3)
    try:
        report.audit_id = store_audit(settings, report)
    except ChariotError as error:
        report.notes.append(f"this audit could not be stored for `chariot status`: {error}")
    return report


def _compare(
    settings: Settings, scope: Scope, progress: ProgressCallback | None
) -> tuple[list[StreamAudit], list[str]]:
    """Every table in every sink, with the rows still in flight set apart (the sinks'
    log positions are read before the comparison, the log after it)."""
    from chariot.audit.lagging import set_aside_in_flight, sink_positions
    from chariot.audit.tables import audit_tables, not_compared

    notes = not_compared(scope)
    positions = sink_positions(settings, scope.sinks, notes)
    audits = audit_tables(settings, scope, progress)
    notes += set_aside_in_flight(settings, scope, audits, positions)
    return audits, notes


def last_audit(settings: Settings) -> LastAudit | None:
    from chariot.audit.history import last_audit as stored

    return stored(settings)


def _scope(settings: Settings, options: AuditOptions) -> Scope:
    from chariot.audit.tables import AUDITABLE_SINKS, Scope
    from chariot.project.streams import default_streams
    from chariot.sync import select_streams

    project_streams = options.streams if options.streams is not None else default_streams()
    by_name = {s.name: s for s in project_streams}
    tables = list(dict.fromkeys(options.tables or by_name))
    unknown = [t for t in tables if t not in by_name]
    if unknown:
        raise ConfigError(f"unknown table {unknown[0]!r}", hint=f"tables: {', '.join(by_name)}")
    sinks = list(dict.fromkeys(options.sinks or settings.run.sinks))
    unknown = [s for s in sinks if s not in AUDITABLE_SINKS]
    if unknown or not sinks:
        raise ConfigError(
            f"the audit cannot compare sink {unknown[0]!r}" if unknown else "no sink selected",
            hint=f"sinks the audit knows: {', '.join(AUDITABLE_SINKS)}",
        )
    if options.sample is not None and not 0 < options.sample <= 1:
        raise ConfigError(f"--sample must be a fraction in (0, 1], not {options.sample}")
    if options.sample is not None and options.repair:
        raise ConfigError("--repair needs a full audit", hint="drop --sample")
    if options.segment_rows is not None and options.segment_rows < 2:
        raise ConfigError("--segment-rows must be at least 2")
    sample = None if options.sample is None or options.sample >= 1 else options.sample
    # Parents before children: the repair deletes in reverse and writes in this order.
    streams = tuple(select_streams(tuple(project_streams), tables))
    return Scope(
        project_streams=tuple(select_streams(tuple(project_streams), None)),
        streams=streams,
        sinks=tuple(s for s in AUDITABLE_SINKS if s in sinks),
        sample=sample,
        segment_rows=options.segment_rows,
        examples=max(0, options.examples),
        seed=options.seed,
    )


def _summaries(
    settings: Settings, scope: Scope, options: AuditOptions, progress: ProgressCallback | None
) -> SummariesAudit:
    from chariot.audit.summaries import audit_summaries

    if not options.summaries:
        return SummariesAudit(status="skipped", note="--no-summaries")
    summarised = _summarised_tables(scope)
    if not summarised & {s.name for s in scope.streams}:
        return SummariesAudit(
            status="skipped",
            note="summaries are checked when the tables they summarise are audited"
            if summarised
            else "the project declares no aggregations",
        )
    if "postgres" not in scope.sinks:
        return SummariesAudit(
            status="skipped", note="summaries live in PostgreSQL, which was not selected"
        )
    notify(progress, "summaries", 0, 1, unit="checks")
    project = next((s.project for s in scope.streams if s.project is not None), None)
    checked = audit_summaries(settings, neo4j="neo4j" in scope.sinks, project=project)
    notify(progress, "summaries", 1, 1, unit="checks", state="done")
    return checked


def _summarised_tables(scope: Scope) -> set[str]:
    """The tables the project's aggregations read."""
    project = next((s.project for s in scope.streams if s.project is not None), None)
    if project is None:
        return set()
    return {aggregation.table for aggregation in project.aggregations.values()}
