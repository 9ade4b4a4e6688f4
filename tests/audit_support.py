"""Helpers for the audit tests: seed, sync, damage each side, read audit results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chariot.audit import AuditOptions, run_audit
from chariot.audit.report import AuditReport, TableAudit
from chariot.audit.segments import Segment
from chariot.config import MySQLSettings, PostgresSettings, Settings
from chariot.connections import mysql_connect, neo4j_session, postgres_connection


def seed_and_sync(
    settings: Settings, movielens_dir: Path, sinks: list[str], *, mode: str | None = None
) -> None:
    """``mode="keyset"``: sinks that do not follow the log, so a source change made after
    the sync is a difference for the audit (after a change-capture sync it is in flight)."""
    from chariot.seed import seed_movielens
    from chariot.sync import sync

    seed_movielens(settings.mysql, movielens_dir)
    result = sync(settings, sinks=sinks, mode=mode)
    assert not result.failures, result.failures


def mysql(settings: MySQLSettings, statement: str, params: Any = ()) -> int:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            changed = cursor.execute(statement, params)
        connection.commit()
        return int(changed)
    finally:
        connection.close()


def postgres(settings: PostgresSettings, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Run a statement in the test's schema (``{s}`` stands for it)."""
    with postgres_connection(settings, autocommit=True) as connection:
        cursor = connection.execute(statement.format(s=f'"{settings.schema_name}"'), params)
        return list(cursor.fetchall()) if cursor.description else []


def cypher(settings: Settings, statement: str, **params: Any) -> list[list[Any]]:
    with neo4j_session(settings.neo4j) as session:
        return [list(values) for values in session.run(statement, params).values()]


def audit(settings: Settings, **options: Any) -> AuditReport:
    return run_audit(settings, AuditOptions(**options))


def result(report: AuditReport, table: str, sink: str, *, after_repair: bool = False) -> TableAudit:
    results = report.repair.after if after_repair and report.repair else report.results
    return next(r for r in results if r.table == table and r.sink == sink)


def differences(
    report: AuditReport, *, after_repair: bool = False
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(table, sink) -> (missing, extra, differing), only where something differs."""
    results = report.repair.after if after_repair and report.repair else report.results
    return {(r.table, r.sink): (r.missing, r.extra, r.differing) for r in results if not r.clean}


def example_keys(result: TableAudit, kind: str) -> list[list[Any]]:
    return [e.key for e in result.examples if e.kind == kind]


def all_digests(side: Any) -> dict[tuple[Any, ...], int]:
    """Every row's digest on one side of a comparison (a source, PostgreSQL or graph side),
    which is closed afterwards."""
    try:
        return dict(side.digests(Segment(None, None)))
    finally:
        side.close()
