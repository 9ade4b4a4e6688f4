"""The aggregation's summaries against an independent recomputation (aggregate/verify.py)."""

from __future__ import annotations

from chariot.audit.report import SummariesAudit
from chariot.config import Settings
from chariot.connections import first_value, postgres_connection
from chariot.project.model import Project


def audit_summaries(
    settings: Settings, *, neo4j: bool, project: Project | None = None
) -> SummariesAudit:
    """Run ``check_summaries`` when a run was promoted; otherwise say there is nothing yet."""
    if not _aggregation_promoted(settings):
        return SummariesAudit(
            status="no summaries yet",
            note="`chariot aggregate` has not completed a run; there are no summaries to check",
        )
    from chariot.aggregate.verify import check_summaries

    check = check_summaries(settings, neo4j=neo4j, project=project)
    return SummariesAudit(
        status="ok" if check.ok else "differences",
        note=None if neo4j else "Neo4j node properties not checked (neo4j not selected)",
        check=check.model_dump(mode="json"),
    )


def _aggregation_promoted(settings: Settings) -> bool:
    from chariot.aggregate import schema

    runs = f'"{settings.postgres.schema_name}"."{schema.RUNS}"'
    with postgres_connection(settings.postgres, autocommit=True) as connection:
        if first_value(connection.execute("SELECT to_regclass(%s)", (runs,)).fetchone()) is None:
            return False
        row = connection.execute(
            f"SELECT count(*) FROM {runs} WHERE promoted_at IS NOT NULL"
        ).fetchone()
        return bool(row and row[0])
