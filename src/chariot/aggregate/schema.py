"""Tables of the aggregation, all in ``settings.postgres.schema_name``.

Inputs (written by ``chariot sync``): ``ratings(user_id, movie_id, rating numeric(2,1),
"timestamp" bigint)`` and ``movies(movie_id, title, genres text[], year)``.

Promoted summaries (replaced as a whole, in one transaction, when a run completes):

* ``movie_stats``  one row per movie with at least one rating (see ``statistics.py``)
* ``user_stats``   one row per user with at least one rating
* ``genre_stats``  one row per genre that has at least one rated movie

Job control and staging (``_chariot_agg_*``): one row per run, one per partition, and the
per-run staging tables the workers commit into together with their partition's ``done`` mark.
"""

from __future__ import annotations

from typing import Any

from chariot.connections import ensure_postgres_schema

RUNS = "_chariot_agg_runs"
PARTITIONS = "_chariot_agg_partitions"
MOVIE_STAGING = "_chariot_agg_movie_staging"
USER_STAGING = "_chariot_agg_user_staging"
MOVIE_STATS = "movie_stats"
USER_STATS = "user_stats"
GENRE_STATS = "genre_stats"
RATINGS = "ratings"
MOVIES = "movies"
# A covering index so a movie-range partition is an index-only range scan, not a table scan.
RATINGS_MOVIE_INDEX = "ratings_movie_id_agg_idx"

RUN_STATES = ("running", "done", "abandoned")
PARTITION_STATES = ("pending", "running", "done", "failed")
GRAPH_STATES = ("pending", "done", "failed", "skipped")

_DDL = """
CREATE TABLE IF NOT EXISTS {s}.{runs} (
    run_id bigserial PRIMARY KEY,
    status text NOT NULL DEFAULT 'running' CHECK (status IN {run_states}),
    graph_status text NOT NULL DEFAULT 'pending' CHECK (graph_status IN {graph_states}),
    partition_rows integer NOT NULL,
    bayes_prior_weight double precision NOT NULL,
    bayes_prior_mean double precision NOT NULL,
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
CREATE TABLE IF NOT EXISTS {s}.{partitions} (
    run_id bigint NOT NULL REFERENCES {s}.{runs} ON DELETE CASCADE,
    partition_id integer NOT NULL,
    kind text NOT NULL CHECK (kind IN ('movie', 'user')),
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
-- Staging has no foreign key on purpose: a per-row RI check would double the cost of
-- every partition's COPY; rows of finished or abandoned runs are deleted by run_id.
CREATE TABLE IF NOT EXISTS {s}.{movie_staging} (
    run_id bigint NOT NULL,
    movie_id integer NOT NULL,
    rating_count bigint NOT NULL,
    rating_sum_tenths bigint NOT NULL,
    rating_mean double precision NOT NULL,
    rating_stddev double precision NOT NULL,
    rating_min_tenths smallint NOT NULL,
    rating_max_tenths smallint NOT NULL,
    rating_median double precision NOT NULL,
    h05 integer NOT NULL, h10 integer NOT NULL, h15 integer NOT NULL, h20 integer NOT NULL,
    h25 integer NOT NULL, h30 integer NOT NULL, h35 integer NOT NULL, h40 integer NOT NULL,
    h45 integer NOT NULL, h50 integer NOT NULL,
    first_rated_at bigint NOT NULL,
    last_rated_at bigint NOT NULL,
    bayesian_average double precision NOT NULL,
    PRIMARY KEY (run_id, movie_id)
);
CREATE TABLE IF NOT EXISTS {s}.{user_staging} (
    run_id bigint NOT NULL,
    user_id integer NOT NULL,
    rating_count bigint NOT NULL,
    rating_mean double precision NOT NULL,
    rating_stddev double precision NOT NULL,
    first_rated_at bigint NOT NULL,
    last_rated_at bigint NOT NULL,
    PRIMARY KEY (run_id, user_id)
);
CREATE TABLE IF NOT EXISTS {s}.{movie_stats} (
    movie_id integer PRIMARY KEY,
    rating_count bigint NOT NULL,
    rating_mean double precision NOT NULL,
    rating_stddev double precision,
    rating_min numeric(2,1) NOT NULL,
    rating_max numeric(2,1) NOT NULL,
    rating_median double precision NOT NULL,
    rating_histogram integer[] NOT NULL,
    first_rated_at bigint NOT NULL,
    last_rated_at bigint NOT NULL,
    bayesian_average double precision NOT NULL,
    run_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.{user_stats} (
    user_id integer PRIMARY KEY,
    rating_count bigint NOT NULL,
    rating_mean double precision NOT NULL,
    rating_stddev double precision,
    first_rated_at bigint NOT NULL,
    last_rated_at bigint NOT NULL,
    run_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.{genre_stats} (
    genre text PRIMARY KEY,
    movie_count bigint NOT NULL,
    rating_count bigint NOT NULL,
    rating_mean double precision NOT NULL,
    run_id bigint NOT NULL
);
"""


def qualified(schema: str, table: str) -> str:
    """``"schema"."table"``; the schema name is validated by settings, tables are ours."""
    return f'"{schema}"."{table}"'


def ensure_tables(connection: Any, schema: str) -> None:
    """Create the job-control, staging and summary tables (idempotent; caller commits).

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
            movie_staging=MOVIE_STAGING,
            user_staging=USER_STAGING,
            movie_stats=MOVIE_STATS,
            user_stats=USER_STATS,
            genre_stats=GENRE_STATS,
            run_states=_sql_list(RUN_STATES),
            partition_states=_sql_list(PARTITION_STATES),
            graph_states=_sql_list(GRAPH_STATES),
        )
    )


def existing_tables(connection: Any, schema: str) -> set[str]:
    rows = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {str(row[0]) for row in rows}


def _sql_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"
