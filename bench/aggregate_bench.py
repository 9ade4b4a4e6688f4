"""`chariot aggregate` with 1, 2, 4 workers side by side with plain SQL in PostgreSQL.

    python bench/aggregate_bench.py                       # 5,000,000 ratings, workers 1,2,4
    python bench/aggregate_bench.py --ratings 1000000 --workers 1,2 --partition-rows 20000

Loads MovieLens-shaped synthetic ratings into its own PostgreSQL schema (default
``chariot_bench_agg``, dropped afterwards unless --keep; re-used when it already holds the
requested count), VACUUM ANALYZEs them as autovacuum would after a sync, builds the
aggregation's tables and index once (timed apart), then times, for the aggregations of the
project file (CHARIOT_PROJECT: the MovieLens example's):

* ``sql``: PostgreSQL computing the same statistics with plain SQL (the independent
  recomputation of ``chariot.aggregate.verify``: GROUP BY, avg, stddev_samp,
  percentile_cont, count FILTER), materialised with CREATE TEMP TABLE AS;
* ``chariot N``: ``run_aggregation(workers=N, restart=True, graph=False)``: plan, claim,
  read, compute, stage and promote, end to end (no Neo4j).

Finally the last aggregation is checked against the SQL truth. Settings (the server) come
from CHARIOT_* variables / .env like the CLI; the schema is overridden.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from chariot.aggregate import schema
from chariot.aggregate.declared import declared_aggregations
from chariot.aggregate.runner import prepare_tables, run_aggregation
from chariot.aggregate.verify import check_summaries, truth_query
from chariot.config import Settings, load_settings
from chariot.connections import postgres_connection
from chariot.project import load_project
from chariot.seed.synthetic import load_ratings_into_postgres


def main() -> None:
    options = _arguments()
    base = load_settings()
    settings = base.model_copy(
        update={
            "postgres": base.postgres.model_copy(update={"schema_name": options.schema}),
            "run": base.run.model_copy(update={"partition_rows": options.partition_rows}),
        }
    )
    try:
        _load(settings, options.ratings)
        print(f"index build (once per database): {_timed(lambda: _index(settings)):.2f} s")
        sql_seconds = _timed(lambda: _plain_sql(settings))
        print(f"plain SQL: {sql_seconds:.2f} s")
        rows = [("sql (PostgreSQL, plain GROUP BY)", sql_seconds)]
        for workers in options.workers:
            seconds = _aggregate(settings, workers)
            rows.append((f"chariot aggregate --workers {workers}", seconds))
            print(f"chariot --workers {workers}: {seconds:.2f} s")
        check = check_summaries(settings, neo4j=False)
        _report(rows, options.ratings, options.partition_rows, check.ok)
    finally:
        if not options.keep:
            with postgres_connection(settings.postgres, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{options.schema}" CASCADE')


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--ratings", type=int, default=5_000_000)
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--partition-rows", type=int, default=50_000)
    parser.add_argument("--schema", default="chariot_bench_agg")
    parser.add_argument(
        "--keep", action="store_true", help="keep the schema (and its data) afterwards"
    )
    return parser.parse_args()


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


RATINGS = "ratings"  # the synthetic data's table (MovieLens-shaped)


def _load(settings: Settings, ratings: int) -> None:
    table = schema.qualified(settings.postgres.schema_name, RATINGS)
    with postgres_connection(settings.postgres) as connection:
        existing = schema.existing_tables(connection, settings.postgres.schema_name)
        have = -1
        if RATINGS in existing:
            have = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if have != ratings:
        loaded = load_ratings_into_postgres(settings.postgres, ratings, seed=2024)
        print(
            f"loaded {loaded.ratings:,} ratings, {loaded.movies:,} movies in {loaded.seconds:.1f} s"
        )
    with postgres_connection(settings.postgres, autocommit=True) as connection:
        connection.execute(
            f"VACUUM ANALYZE {schema.qualified(settings.postgres.schema_name, RATINGS)}"
        )


def _index(settings: Settings) -> None:
    declared = declared_aggregations(load_project())
    with postgres_connection(settings.postgres) as connection:
        prepare_tables(connection, settings.postgres.schema_name, declared)


def _plain_sql(settings: Settings) -> None:
    with postgres_connection(settings.postgres) as connection:
        for declared in declared_aggregations(load_project()):
            text = truth_query(declared, settings.postgres.schema_name)
            connection.execute(f'CREATE TEMP TABLE "bench_{declared.name}" AS {text}')
        connection.rollback()


def _aggregate(settings: Settings, workers: int) -> float:
    result = run_aggregation(settings, workers=workers, restart=True, graph=False)
    return result.seconds


def _report(rows: list[tuple[str, float]], ratings: int, partition_rows: int, exact: bool) -> None:
    sql_seconds = rows[0][1]
    print()
    print(f"{ratings:,} ratings, partitions of ~{partition_rows:,}; summaries exact: {exact}")
    print(f"{'':38} {'seconds':>8} {'ratings/s':>12} {'vs SQL':>8}")
    for label, seconds in rows:
        print(f"{label:38} {seconds:8.2f} {ratings / seconds:12,.0f} {sql_seconds / seconds:7.2f}x")


if __name__ == "__main__":
    main()
