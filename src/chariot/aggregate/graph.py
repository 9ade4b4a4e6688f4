"""Promoted movie summaries -> properties of ``(:Movie {movieId})`` nodes in Neo4j.

Idempotent: ``MERGE`` on ``movieId`` (so a movie not synced to the graph yet still gets its
summary; the sync later adds its title), ``SET`` every summary property and ``statsRunId``;
then the summary properties are removed from Movies stamped by an older run (movies that no
longer have ratings). Rows travel as columns (one list per property), ``UNWIND`` by index.

Properties: ratingCount, ratingMean, ratingStddev (absent when ratingCount = 1), ratingMin,
ratingMax, ratingMedian, ratingHistogram (10 counts, 0.5 ... 5.0), firstRatedAt,
lastRatedAt (unix seconds), bayesianAverage, statsRunId (the promoted run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from chariot.aggregate import pgcopy, schema
from chariot.aggregate.statistics import MOVIE_COLUMNS, NEO4J_PROPERTIES, NEO4J_RUN_PROPERTY
from chariot.config import Settings
from chariot.connections import neo4j_driver, postgres_connection
from chariot.errors import AggregationError, ChariotError
from chariot.lease import LeaseOwner
from chariot.progress import ProgressCallback, notify
from chariot.sinks.neo4j.lease import CONSTRAINT as LEASE_CONSTRAINT
from chariot.sinks.neo4j.lease import GraphLease

BATCH_MOVIES = 5_000
MOVIE_CONSTRAINT = (  # the same statement (and name) as the Neo4j sink's
    "CREATE CONSTRAINT chariot_movie_id IF NOT EXISTS FOR (m:Movie) REQUIRE m.movieId IS UNIQUE"
)
_SCALARS = [c for c in MOVIE_COLUMNS if c.kind != "array"]
LEASED = ("Movie",)  # the writer lease it shares with the sync of movies, links, ratings, tags


@dataclass(frozen=True)
class GraphWrite:
    movies_written: int
    movies_cleared: int
    seconds: float


def write_graph(
    settings: Settings, run_id: int, progress: ProgressCallback | None = None
) -> GraphWrite:
    """Write the promoted ``movie_stats`` onto Movie nodes; raises a ``ChariotError``."""
    started = time.perf_counter()
    columns = _read_movie_stats(settings)
    driver = neo4j_driver(settings.neo4j)  # ConnectionFailed when unreachable
    lease = GraphLease(
        driver,
        settings.neo4j.database,
        LeaseOwner("aggregate"),
        ttl_seconds=settings.run.lease_seconds,
    )
    try:
        with driver.session(database=settings.neo4j.database) as session:
            session.run(MOVIE_CONSTRAINT).consume()
            session.run(LEASE_CONSTRAINT).consume()
            lease.acquire(LEASED, wait_seconds=settings.run.lease_wait_seconds)
            total = len(columns["movieId"])
            task = "summaries -> neo4j"
            notify(progress, task, 0, total, unit="movies")
            for start in range(0, total, BATCH_MOVIES):
                batch = {
                    name: values[start : start + BATCH_MOVIES] for name, values in columns.items()
                }
                session.execute_write(_write_batch, batch, run_id, lease)
                notify(progress, task, min(start + BATCH_MOVIES, total), total, unit="movies")
            cleared = 0
            while count := session.execute_write(_clear_stale, run_id, lease):
                cleared += count
    except ChariotError:
        raise
    except Exception as error:  # driver errors: one clear line, never a traceback
        raise AggregationError(
            f"writing summaries to Neo4j at {settings.neo4j.display_url()} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    finally:
        lease.release()
        driver.close()
    return GraphWrite(total, cleared, round(time.perf_counter() - started, 3))


def _read_movie_stats(settings: Settings) -> dict[str, list[Any]]:
    """The promoted movie summaries as columns of Python values (what the driver sends)."""
    scalars = [
        f"coalesce({c.name}, 'NaN')" if c.name == "rating_stddev" else c.name for c in _SCALARS
    ]
    bins = [f"rating_histogram[{index}]" for index in range(1, 11)]
    types = ["int4"] + ["float8" if c.kind == "float" else "int8" for c in _SCALARS] + ["int4"] * 10
    source = schema.qualified(settings.postgres.schema_name, schema.MOVIE_STATS)
    with postgres_connection(settings.postgres) as connection:
        arrays = pgcopy.fetch_columns(connection, ["movie_id", *scalars, *bins], source, (), types)
    columns: dict[str, list[Any]] = {"movieId": arrays[0].tolist()}
    for column, values in zip(_SCALARS, arrays[1 : 1 + len(_SCALARS)], strict=True):
        columns[str(column.neo4j)] = values.tolist()
    columns["ratingHistogram"] = (
        np.column_stack(arrays[1 + len(_SCALARS) :]).tolist() if arrays[0].size else []
    )
    return columns


def _write_batch(tx: Any, batch: dict[str, list[Any]], run_id: int, lease: GraphLease) -> None:
    lease.check(tx, LEASED)
    assignments = []
    for name in batch:
        if name == "movieId":
            continue
        value = f"${name}[i]"
        if name == "ratingStddev":  # NaN marks n = 1: no sample deviation, no property
            value = f"CASE WHEN isNaN({value}) THEN null ELSE {value} END"
        assignments.append(f"m.{name} = {value}")
    tx.run(
        "UNWIND range(0, size($movieId) - 1) AS i "
        "MERGE (m:Movie {movieId: $movieId[i]}) "
        f"SET {', '.join(assignments)}, m.{NEO4J_RUN_PROPERTY} = $runId",
        runId=run_id,
        **batch,
    ).consume()


def _clear_stale(tx: Any, run_id: int, lease: GraphLease) -> int:
    lease.check(tx, LEASED)
    removed = ", ".join(f"m.{name}" for name in NEO4J_PROPERTIES)
    record = tx.run(
        f"MATCH (m:Movie) WHERE m.{NEO4J_RUN_PROPERTY} IS NOT NULL "
        f"AND m.{NEO4J_RUN_PROPERTY} <> $runId "
        f"WITH m LIMIT {BATCH_MOVIES} REMOVE {removed} RETURN count(m) AS cleared",
        runId=run_id,
    ).single()
    return int(record["cleared"]) if record else 0
