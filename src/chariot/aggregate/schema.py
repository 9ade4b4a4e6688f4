"""Tables of the aggregation, all in ``settings.postgres.schema_name``.

Inputs: the tables the project's aggregations read, as ``chariot sync`` wrote them.
Promoted summaries: one table per declared aggregation, named as the project names it
(replaced as a whole, in one transaction, when a run completes; see promote.py).

Job control and staging (``_chariot_agg_*``): one row per run, one per partition (``kind``
is the aggregation's name), and per aggregation a staging table the workers commit into
together with their partition's ``done`` mark (its name carries the declaration's
fingerprint, so a changed declaration never meets rows of the old shape).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chariot.aggregate.declared import Declared, quoted
from chariot.connections import ensure_postgres_schema

RUNS = "_chariot_agg_runs"
PARTITIONS = "_chariot_agg_partitions"

RUN_STATES = ("running", "done", "abandoned")
PARTITION_STATES = ("pending", "running", "done", "failed")
GRAPH_STATES = ("pending", "done", "failed", "skipped")

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.{runs} (
    run_id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'running' CHECK (status IN {run_states}),
    graph_status text NOT NULL DEFAULT 'pending' CHECK (graph_status IN {graph_states}),
    partition_rows integer NOT NULL,
    bayes_prior_weight double precision,  -- 0.1.0: the prior is in the project file now
    bayes_prior_mean double precision,
    ratings_planned bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    promoted_at timestamptz,
    graph_written_at timestamptz,
    promoted_by text,
    last_error text,
    graph_error text
);
ALTER TABLE {s}.{runs} ADD COLUMN IF NOT EXISTS input_state jsonb;
DO $$ BEGIN  -- 'full' (partitions) or 'incremental' (the touched groups only)
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{s}.{runs}'::regclass
                   AND attname = 'mode' AND NOT attisdropped) THEN
        ALTER TABLE {s}.{runs} ADD COLUMN mode text NOT NULL DEFAULT 'full';
    END IF;
END $$;
-- Upgrades from 0.1.0, only when needed (an ALTER locks the table even when it is a no-op).
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '{s}.{runs}'::regclass
               AND attname = 'bayes_prior_weight' AND attnotnull) THEN
        ALTER TABLE {s}.{runs} ALTER COLUMN bayes_prior_weight DROP NOT NULL,
            ALTER COLUMN bayes_prior_mean DROP NOT NULL;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS {s}.{partitions} (
    run_id bigint NOT NULL REFERENCES {s}.{runs} ON DELETE CASCADE,
    partition_id integer NOT NULL,
    kind text NOT NULL,  -- the aggregation (summary table) name
    key_after bigint,
    key_through bigint,
    rows_planned bigint NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN {partition_states}),
    attempts integer NOT NULL DEFAULT 0,
    worker_id text,
    lease_token uuid,
    lease_expires_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    seconds double precision,
    rows_in bigint,
    rows_out bigint,
    last_error text,
    PRIMARY KEY (run_id, partition_id)
);
CREATE INDEX IF NOT EXISTS {partitions_status_idx} ON {s}.{partitions} (run_id, status);
DO $$ BEGIN  -- 0.1.0 allowed only its two kinds of partitions
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '{s}.{partitions}'::regclass
               AND conname = '{partitions}_kind_check') THEN
        ALTER TABLE {s}.{partitions} DROP CONSTRAINT {partitions}_kind_check;
    END IF;
END $$;
"""


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"``, quoted."""
    return f"{quoted(schema)}.{quoted(table)}"


def ensure_tables(connection: Any, schema: str, declared: Iterable[Declared] = ()) -> None:
    """Create the job-control tables and the staging table of each ``declared``
    aggregation (idempotent; caller commits).

    Serialised with an advisory lock: concurrent ``CREATE TABLE IF NOT EXISTS`` of the same
    table can otherwise fail with a unique violation in the catalog.
    """
    connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chariot-agg-ddl:{schema}",))
    ensure_postgres_schema(connection, schema)
    connection.execute(
        _DDL.format(
            s=f'"{schema}"',
            runs=RUNS,
            partitions=PARTITIONS,
            partitions_status_idx=f"{PARTITIONS}_status_idx",
            run_states=_sql_list(RUN_STATES),
            partition_states=_sql_list(PARTITION_STATES),
            graph_states=_sql_list(GRAPH_STATES),
        )
    )
    for aggregation in declared:
        connection.execute(staging_ddl(schema, aggregation))


def staging_ddl(schema: str, declared: Declared) -> str:
    """No foreign key on purpose: a per-row RI check would slow every partition's write;
    rows of finished or abandoned runs are deleted by run_id."""
    columns = [f"{quoted(s.column)} {s.postgres}" for s in declared.statistics]
    group = quoted(declared.group_column)
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, declared.staging)} ("
        f"run_id bigint NOT NULL, {group} {declared.group_postgres} NOT NULL, "
        f"{', '.join(columns)}, PRIMARY KEY (run_id, {group}))"
    )


def summary_ddl(schema: str, declared: Declared) -> str:
    """The promoted summary: the group key, one column per statistic, the run it shows."""
    columns = [
        f"{quoted(s.column)} {s.postgres}{'' if s.nullable else ' NOT NULL'}"
        for s in declared.statistics
    ]
    return (
        f"CREATE TABLE {qualified(schema, declared.name)} ("
        f"{quoted(declared.group_column)} {declared.group_postgres} PRIMARY KEY, "
        f"{', '.join(columns)}, run_id bigint NOT NULL)"
    )


def existing_tables(connection: Any, schema: str) -> set[str]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {str(row[0]) for row in rows}


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"
