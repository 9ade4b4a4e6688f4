"""The latest aggregation runs and their partitions by state, for ``chariot status``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from chariot.aggregate import schema
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.errors import AggregationError


class AggregationRunStatus(BaseModel):
    run_id: int
    status: str = Field(
        description="running (open: re-run to resume), done (promoted) or abandoned"
    )
    graph_status: str = Field(description="Neo4j write: pending, done, failed or skipped")
    mode: str = Field(
        "full", description="full (partitions) or incremental (only the touched groups)"
    )
    created_at: datetime
    promoted_at: datetime | None = None
    partitions: dict[str, int] = Field(
        description="partition count per state: pending, running, done, failed"
    )
    ratings_planned: int = Field(
        description="input rows the run planned to read (its largest aggregation of a table's "
        "own rows; the name is 0.1.0's, when every aggregation read ratings)"
    )
    last_error: str | None = Field(None, description="the latest partition error, if any")
    graph_error: str | None = None


def aggregation_runs(settings: Settings, *, limit: int = 5) -> list[AggregationRunStatus]:
    """The newest ``limit`` runs; [] when the job tables do not exist. Raises ``ChariotError``
    when PostgreSQL cannot be read (status tells "unknown" from "none")."""
    tables = (
        schema.qualified(settings.postgres.schema_name, schema.RUNS),
        schema.qualified(settings.postgres.schema_name, schema.PARTITIONS),
    )
    import psycopg

    try:
        with postgres_connection(settings.postgres) as connection:
            if schema.RUNS not in schema.existing_tables(connection, settings.postgres.schema_name):
                return []
            rows = connection.execute(
                _QUERY.format(runs=tables[0], partitions=tables[1]), (limit,)
            ).fetchall()
    except psycopg.Error as error:
        raise AggregationError(f"reading {tables[0]} failed: {str(error).strip()}") from error
    return [_run_status(row) for row in rows]


_QUERY = """
SELECT r.run_id, r.status, r.graph_status, r.created_at, r.promoted_at, r.ratings_planned,
       r.graph_error,
       -- a job table of 0.1.0 has no mode column until the next aggregate adds it
       (SELECT coalesce(to_jsonb(x) ->> 'mode', 'full') FROM {runs} x WHERE x.run_id = r.run_id),
       count(p.*) FILTER (WHERE p.status = 'pending'),
       count(p.*) FILTER (WHERE p.status = 'running'),
       count(p.*) FILTER (WHERE p.status = 'done'),
       count(p.*) FILTER (WHERE p.status = 'failed'),
       (SELECT q.last_error FROM {partitions} q
        WHERE q.run_id = r.run_id AND q.last_error IS NOT NULL
        ORDER BY q.finished_at DESC NULLS LAST LIMIT 1)
FROM {runs} r LEFT JOIN {partitions} p ON p.run_id = r.run_id
GROUP BY r.run_id ORDER BY r.run_id DESC LIMIT %s
"""


def _run_status(row: tuple) -> AggregationRunStatus:  # type: ignore[type-arg]
    run_id, status, graph_status, created, promoted, planned, graph_error, mode, *rest = row
    *counts, last_error = rest
    return AggregationRunStatus(
        run_id=run_id,
        status=status,
        graph_status=graph_status,
        created_at=created,
        promoted_at=promoted,
        ratings_planned=planned,
        graph_error=graph_error,
        mode=mode,
        last_error=last_error,
        partitions=dict(zip(("pending", "running", "done", "failed"), counts, strict=True)),
    )
