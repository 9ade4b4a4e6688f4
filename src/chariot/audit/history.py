"""Each audit's summary, kept in PostgreSQL (``_chariot_audits``) for ``chariot status``."""

from __future__ import annotations

import json
from typing import Any

from chariot.audit.report import AuditReport, LastAudit
from chariot.config import Settings
from chariot.connections import ensure_postgres_schema, first_value, postgres_connection
from chariot.errors import AuditError

AUDITS = "_chariot_audits"

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    audit_id bigserial PRIMARY KEY,
    started_at timestamptz NOT NULL,
    seconds double precision NOT NULL,
    mode text NOT NULL,
    clean boolean NOT NULL,
    differences bigint NOT NULL,
    repaired boolean NOT NULL,
    summaries text NOT NULL,
    per_table jsonb NOT NULL
)
"""


def _table(settings: Settings) -> str:
    return f'"{settings.postgres.schema_name}"."{AUDITS}"'


def store_audit(settings: Settings, report: AuditReport) -> int:
    """Append the report's summary; returns its ``audit_id``."""
    table = _table(settings)
    final = report.repair.after if report.repair is not None else report.results
    per_table = {
        f"{r.table}/{r.sink}": {
            "rows_compared": r.rows_compared,
            "missing": r.missing,
            "extra": r.extra,
            "differing": r.differing,
            "rejected_known": r.rejected_known,
        }
        for r in final
    }
    import psycopg

    try:
        with postgres_connection(settings.postgres, autocommit=True) as connection:
            ensure_postgres_schema(connection, settings.postgres.schema_name)
            connection.execute(_DDL.format(table=table))
            row = connection.execute(
                f"""INSERT INTO {table} (started_at, seconds, mode, clean, differences, repaired,
                summaries, per_table) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)
            RETURNING audit_id""",
                (
                    report.started_at,
                    report.seconds,
                    report.mode,
                    report.clean,
                    report.differences,
                    report.repair is not None,
                    report.summaries.status,
                    json.dumps(per_table),
                ),
            ).fetchone()
    except psycopg.Error as error:  # e.g. a role that may not create tables in the schema
        raise AuditError(f"storing it in {table} failed: {_first_line(error)}") from error
    return int(first_value(row))


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def last_audit(settings: Settings) -> LastAudit | None:
    """The latest stored audit; None when no audit has run against this schema.

    Raises ``ChariotError`` when it cannot be read: "none yet" must not stand for "unknown".
    """
    import psycopg

    table = _table(settings)
    try:
        with postgres_connection(settings.postgres, autocommit=True) as connection:
            found = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if first_value(found) is None:
                return None
            row = connection.execute(
                f"""SELECT audit_id, started_at, seconds, mode, clean, differences, repaired,
                    summaries, per_table FROM {table} ORDER BY audit_id DESC LIMIT 1"""
            ).fetchone()
    except psycopg.Error as error:
        raise AuditError(f"reading {table} failed: {_first_line(error)}") from error
    if row is None:
        return None
    names = (
        "audit_id",
        "started_at",
        "seconds",
        "mode",
        "clean",
        "differences",
        "repaired",
        "summaries",
        "per_table",
    )
    values: dict[str, Any] = dict(zip(names, row, strict=True))
    return LastAudit(**values)
