"""Change capture into Neo4j: row changes applied per second (``Neo4jSink.apply``).

    python bench/neo4j_changes_bench.py --movielens ../shared/data/ml-latest-small
    python bench/neo4j_changes_bench.py --movielens DIR --batches 5 --per-batch 20000

Loads the MovieLens ratings (a first load, untimed), then applies batches of a 1:1:1 mix of
inserts, updates and deletes of ratings, each batch one sink transaction of ``--per-batch``
changes with its log position, as the change writer hands them over. It WIPES the Neo4j
database before and after, taking the same file lock as the test suite. Settings come from
the CHARIOT_* environment / .env like the CLI.
"""

from __future__ import annotations

import argparse
import fcntl
import time
from decimal import Decimal
from pathlib import Path

from neo4j_sink_bench import LOCK_PATH, RATINGS, Row, batches_of, movielens_ratings, wipe

from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import load_settings
from chariot.sinks.neo4j import Neo4jSink


def _other(stars: Decimal) -> Decimal:
    return Decimal("1.0") if stars == Decimal("0.5") else Decimal("0.5")


def change_batches(rows: list[Row], batches: int, per_batch: int) -> list[ChangeBatch]:
    """Each batch deletes, updates and inserts a third of ``per_batch`` ratings."""
    third = per_batch // 3
    live = list(rows)
    fresh_user = max(row[0] for row in rows) + 1
    result = []
    for number in range(batches):
        deleted, live = live[:third], live[third:]
        updated = [(u, m, _other(r), t) for u, m, r, t in live[:third]]
        inserted = [(fresh_user + n // 100, n % 100 + 1, Decimal("3.0"), 1) for n in range(third)]
        fresh_user += third // 100 + 1
        live = live[third:] + updated + inserted
        result.append(
            ChangeBatch(
                tables=[
                    TableChanges(
                        RATINGS,
                        deletes=[row[:2] for row in deleted],
                        upserts=updated + inserted,
                    )
                ],
                position=LogPosition("binlog.000001", 1_000 + number),
                positioned=("ratings",),
                changes=3 * third,
            )
        )
    return result


def run(rows: list[Row], batches: int, per_batch: int) -> str:
    settings = load_settings()
    changes = change_batches(rows, batches, per_batch)
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wipe(settings)
        try:
            with Neo4jSink(settings) as sink:
                sink.prepare(RATINGS, full_refresh=True)
                for batch in batches_of(rows, 10_000):
                    sink.write(batch)
                started = time.perf_counter()
                for batch in changes:
                    sink.apply(batch)
                elapsed = time.perf_counter() - started
        finally:
            wipe(settings)
    applied = sum(batch.changes for batch in changes)
    return (
        f"{applied:,} changes (1:1:1 insert/update/delete of ratings) in {len(changes)} "
        f"transactions on {len(rows):,} ratings: {elapsed:.1f} s ({applied / elapsed:,.0f} "
        "changes/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", type=Path, required=True, help="directory with ratings.csv")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--per-batch", type=int, default=20_000)
    args = parser.parse_args()
    print(run(movielens_ratings(args.movielens), args.batches, args.per_batch))


if __name__ == "__main__":
    main()
