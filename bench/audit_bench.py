"""`chariot audit` of the ratings table: clean, and with 100 scattered differences, per sink.

    python bench/audit_bench.py                      # 1,000,000 synthetic ratings
    python bench/audit_bench.py --ratings 200000 --sinks postgres

Seeds MovieLens-shaped synthetic data into its own MySQL database and PostgreSQL schema
(``chariot_bench_audit``, dropped afterwards unless --keep), syncs it (the sync time is the
"full re-sync" figure the audit is measured against), then times ``run_audit`` on the
ratings table of each sink: once with no differences, once after changing 100 ratings at
scattered keys in that sink. It WIPES the Neo4j database before and after (Community has
one database), under the test suite's file lock. Settings come from CHARIOT_* / .env.
"""

from __future__ import annotations

import argparse
import fcntl
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from chariot.audit import AuditOptions, run_audit
from chariot.config import Settings, load_settings
from chariot.connections import mysql_connect, neo4j_session, postgres_connection

NEO4J_LOCK_PATH = Path(tempfile.gettempdir()) / "chariot-neo4j-tests.lock"
NAME = "chariot_bench_audit"


def main() -> None:
    options = _arguments()
    base = load_settings()
    settings = base.model_copy(
        update={
            "mysql": base.mysql.model_copy(update={"database": NAME}),
            "postgres": base.postgres.model_copy(update={"schema_name": NAME}),
        }
    )
    sinks = options.sinks.split(",")
    with open(NEO4J_LOCK_PATH, "w") as lock:
        if "neo4j" in sinks:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _prepare(settings, options.ratings, sinks)
            figures = [_bench_sink(settings, sink, options.differences) for sink in sinks]
        finally:
            if not options.keep:
                _drop(settings, sinks)
    print(f"\n{options.ratings:,} ratings")
    print(f"{'sink':10} {'clean audit':>12} {'with diffs':>12} {'found':>7} {'re-sync':>9}")
    for sink, clean, dirty, found, resync in figures:
        print(f"{sink:10} {clean:>10.2f} s {dirty:>10.2f} s {found:>7} {resync:>7.1f} s")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--differences", type=int, default=100)
    parser.add_argument("--sinks", default="postgres,neo4j")
    parser.add_argument("--keep", action="store_true", help="keep the bench database and graph")
    return parser.parse_args()


def _prepare(settings: Settings, ratings: int, sinks: list[str]) -> None:
    from chariot.seed.synthetic import seed_synthetic

    admin = mysql_connect(settings.mysql.model_copy(update={"database": ""}))
    with admin.cursor() as cursor:
        cursor.execute(
            f"CREATE DATABASE IF NOT EXISTS `{NAME}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    admin.close()
    started = time.perf_counter()
    seed_synthetic(settings.mysql, ratings)
    print(f"seeded {ratings:,} ratings in {time.perf_counter() - started:.1f} s")
    if "neo4j" in sinks:
        _wipe_graph(settings)


def _bench_sink(settings: Settings, sink: str, count: int) -> tuple[str, float, float, int, float]:
    from chariot.sync import sync

    started = time.perf_counter()
    sync(settings, sinks=[sink], tables=["movies", "ratings"])
    resync = time.perf_counter() - started
    print(f"{sink}: sync of movies + ratings {resync:.1f} s")
    options = AuditOptions(tables=("ratings",), sinks=(sink,), summaries=False)
    clean, report = _timed(settings, options)
    assert report.clean, report.results
    keys = _scattered_keys(settings, count)
    _damage(settings, sink, keys)
    dirty, report = _timed(settings, options)
    found = report.results[0].differing
    print(f"{sink}: clean {clean:.2f} s, with {count} differences {dirty:.2f} s (found {found})")
    return sink, clean, dirty, found, resync


def _timed(settings: Settings, options: AuditOptions) -> tuple[float, Any]:
    started = time.perf_counter()
    report = run_audit(settings, options)
    return time.perf_counter() - started, report


def _scattered_keys(settings: Settings, count: int) -> list[tuple[int, int]]:
    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM ratings")
            total = int(cursor.fetchone()[0])
            keys = []
            for offset in sorted(random.Random(1).sample(range(total), count)):
                cursor.execute(
                    "SELECT userId, movieId FROM ratings ORDER BY userId, movieId "
                    f"LIMIT 1 OFFSET {offset}"
                )
                keys.append(tuple(cursor.fetchone()))
            return keys
    finally:
        connection.close()


def _damage(settings: Settings, sink: str, keys: list[tuple[int, int]]) -> None:
    """Set each rating to a value no MovieLens rating has (0.1): a differing row each."""
    if sink == "postgres":
        with (
            postgres_connection(settings.postgres, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.executemany(
                f'UPDATE "{NAME}".ratings SET rating = 0.1 WHERE user_id = %s AND movie_id = %s',
                keys,
            )
        return
    with neo4j_session(settings.neo4j) as session:
        session.run(
            "UNWIND $keys AS key "
            "MATCH (:User {userId: key[0]})-[r:RATED]->(:Movie {movieId: key[1]}) "
            "SET r.rating = 0.1",
            keys=[list(key) for key in keys],
        ).consume()


def _wipe_graph(settings: Settings) -> None:
    # Relationships first: DETACH DELETE of 10,000 users holding a million ratings between
    # them is one transaction too big for Neo4j's memory pool.
    with neo4j_session(settings.neo4j) as session:
        for statement in (
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
        ):
            session.run(statement).consume()


def _drop(settings: Settings, sinks: list[str]) -> None:
    admin = mysql_connect(settings.mysql)
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{NAME}`")
    admin.close()
    with postgres_connection(settings.postgres, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{NAME}" CASCADE')
    if "neo4j" in sinks:
        _wipe_graph(settings)


if __name__ == "__main__":
    main()
