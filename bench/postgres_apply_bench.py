"""Changes per second the PostgreSQL sink applies from change capture (``apply``).

    python bench/postgres_apply_bench.py --movielens ../shared/data/ml-latest-small
    python bench/postgres_apply_bench.py --synthetic 1000000 --batch-size 3000

Loads the ratings with ``write`` into a schema of its own (dropped afterwards), then applies
batches of a 1:1:1 mix of inserts (new keys), updates and deletes (existing keys), each
batch one transaction with its log position, as a change-capture sync does. Settings come
from the CHARIOT_* environment / .env like the CLI. The figure is the sink alone: no binary
log read, no folding; touched aggregation groups cost what ``chariot.aggregate.touched``
costs in this checkout.
"""

from __future__ import annotations

import argparse
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from neo4j_sink_bench import RATINGS, movielens_ratings, synthetic_ratings

from chariot.batch import Batch
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import load_settings
from chariot.connections import postgres_connection
from chariot.sinks.postgres import PostgresSink

Row = tuple[Any, ...]


def mixed_batches(rows: list[Row], size: int) -> list[ChangeBatch]:
    """Batches of ``size`` changes, a third each: inserts of keys no row has (a user id past
    the last), updates and deletes of loaded rows (each row touched once)."""
    third = size // 3
    first_new_user = rows[-1][0] + 1
    batches = []
    for number, start in enumerate(range(0, len(rows) - 2 * third + 1, 2 * third)):
        updated = [(u, m, Decimal("2.5"), t + 1) for u, m, _, t in rows[start : start + third]]
        deleted = [(u, m) for u, m, _, _ in rows[start + third : start + 2 * third]]
        inserted = [(first_new_user + number, m, Decimal("4.0"), 1) for m in range(1, third + 1)]
        changes = TableChanges(RATINGS, deletes=deleted, upserts=updated + inserted)
        position = LogPosition("binlog.000001", 4 + number)
        batches.append(ChangeBatch([changes], position, ("ratings",), transactions=1))
    return batches


def run(rows: list[Row], batch_size: int) -> str:
    base = load_settings()
    schema = f"chariot_bench_{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={"postgres": base.postgres.model_copy(update={"schema_name": schema})}
    )
    batches = mixed_batches(rows, batch_size)
    try:
        with PostgresSink(settings) as sink:
            sink.prepare(RATINGS)
            for start in range(0, len(rows), 50_000):
                chunk = rows[start : start + 50_000]
                sink.write(Batch(RATINGS, chunk, chunk[-1][:2]))
            sink.start_log(RATINGS, LogPosition("binlog.000001", 4))
            started = time.perf_counter()
            for batch in batches:
                sink.apply(batch)
            elapsed = time.perf_counter() - started
    finally:
        with postgres_connection(base.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    applied = sum(len(b.tables[0].deletes) + len(b.tables[0].upserts) for b in batches)
    return (
        f"{len(rows):,} ratings loaded; {applied:,} changes (1:1:1 inserts, updates, deletes) "
        f"in {len(batches):,} batches of {batch_size:,}: {elapsed:.1f} s "
        f"({applied / elapsed:,.0f} changes/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", type=Path, help="directory with ratings.csv")
    source.add_argument("--synthetic", type=int, help="this many generated ratings")
    parser.add_argument("--batch-size", type=int, default=3_000)
    args = parser.parse_args()
    rows = (
        movielens_ratings(args.movielens) if args.movielens else synthetic_ratings(args.synthetic)
    )
    print(run(rows, args.batch_size))


if __name__ == "__main__":
    main()
