"""Rows per second of the Neo4j sink writing ratings, on MovieLens or synthetic data.

    python bench/neo4j_sink_bench.py --movielens ../shared/data/ml-latest-small
    python bench/neo4j_sink_bench.py --synthetic 1000000 --batch-size 10000

Four figures: a first load of the first 90% (after a full refresh the sink proves the keys
new: distinct nodes MERGEd, relationships CREATEd); an incremental run of the last 10% by
a new sink instance (keys above the checkpoint: still proven new); the same new rows
applied as change capture does (``apply``: MERGE, the keys are not provable there); and a
replay of the first tenth (every MERGE finds its match).

It WIPES the Neo4j database before and after (Community has one database), taking the same
file lock as the test suite so it never runs over someone's tests. Settings come from the
CHARIOT_* environment / .env like the CLI. Rows are built in-process as the source driver
returns them (int, int, Decimal, int), so the figure includes the sink's per-batch
conversion, not the source read.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from chariot.batch import Batch
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition
from chariot.config import Settings, load_settings
from chariot.connections import neo4j_session
from chariot.project import load_project
from chariot.project.streams import table_stream
from chariot.sinks.neo4j import Neo4jSink

# The ratings table as the MovieLens example project declares it (the sink maps it from there).
MOVIELENS_PROJECT = Path(__file__).resolve().parents[1] / "examples" / "movielens" / "chariot.toml"
RATINGS = table_stream(load_project(MOVIELENS_PROJECT), "ratings")

LOCK_PATH = Path(tempfile.gettempdir()) / "chariot-neo4j-tests.lock"
HALF_STARS = [Decimal(n) / 2 for n in range(1, 11)]
Row = tuple[Any, ...]


def movielens_ratings(directory: Path) -> list[Row]:
    with open(directory / "ratings.csv", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        rows = [(int(u), int(m), Decimal(r), int(t)) for u, m, r, t in reader]
    return sorted(rows, key=lambda row: (row[0], row[1]))


def synthetic_ratings(count: int, *, movies: int = 20_000, per_user: int = 150) -> list[Row]:
    """MovieLens-shaped: ~150 ratings per user, skewed towards popular movies, key order."""
    import numpy as np

    generator = np.random.default_rng(42)
    rows: list[Row] = []
    user = 0
    while len(rows) < count:
        user += 1
        size = min(per_user, count - len(rows))
        # Pareto popularity; unique() sorts, which gives (userId, movieId) key order.
        popular = (generator.pareto(1.2, size * 2) * 50).astype(np.int64) % movies + 1
        picks = np.unique(popular)[:size]
        stars = generator.integers(0, 10, len(picks))
        stamps = generator.integers(828_000_000, 1_540_000_000, len(picks))
        rows.extend(
            (user, int(movie), HALF_STARS[star], int(stamp))
            for movie, star, stamp in zip(picks, stars, stamps, strict=True)
        )
    return rows


def wipe(settings: Settings) -> None:
    # Relationships first: DETACH DELETE of 10,000 users at ~150 ratings each is 1.5M
    # relationships in one inner transaction, past the transaction memory pool of a 1 GB heap.
    batched = "IN TRANSACTIONS OF 10000 ROWS"
    with neo4j_session(settings.neo4j) as session:
        session.run(f"MATCH ()-[r]->() CALL (r) {{ DELETE r }} {batched}").consume()
        session.run(f"MATCH (n) CALL (n) {{ DELETE n }} {batched}").consume()


def batches_of(rows: list[Row], size: int) -> list[Batch]:
    return [
        Batch(RATINGS, rows[start : start + size], last_key=rows[start : start + size][-1][:2])
        for start in range(0, len(rows), size)
    ]


def timed_writes(sink: Neo4jSink, batches: list[Batch]) -> tuple[int, float]:
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        if index + 1 < len(batches):
            sink.stage(batches[index + 1])  # as the sync's writer does: converted ahead
        sink.write(batch)
    return sum(len(batch) for batch in batches), time.perf_counter() - started


def timed_changes(sink: Neo4jSink, batches: list[Batch]) -> tuple[int, float]:
    """The batches' rows as change capture applies new rows: upserts, one transaction each."""
    position = LogPosition.parse("bench-bin.000001:4")
    started = time.perf_counter()
    for batch in batches:
        changes = TableChanges(RATINGS, upserts=batch.rows)
        sink.apply(ChangeBatch([changes], position, positioned=()))
    return sum(len(batch) for batch in batches), time.perf_counter() - started


def rate(what: str, rows: int, seconds: float) -> str:
    return f"{what} {rows:,} rows {seconds:.1f} s ({rows / seconds:,.0f} rows/s)"


def run(rows: list[Row], batch_size: int) -> str:
    settings = load_settings()
    split = len(rows) * 9 // 10
    initial, later = batches_of(rows[:split], batch_size), batches_of(rows[split:], batch_size)
    half = len(later) // 2
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wipe(settings)
        try:
            with Neo4jSink(settings) as sink:
                sink.prepare(RATINGS, full_refresh=True)
                first = timed_writes(sink, initial)
            # A later run (a new sink instance): new rows above the checkpoint.
            with Neo4jSink(settings) as sink:
                sink.prepare(RATINGS)
                incremental = timed_writes(sink, later[:half])
                # The other new rows as change capture applies them (MERGE).
                changes = timed_changes(sink, later[half:])
                # A replay (every MERGE finds its match) of the first tenth of the batches.
                replay = timed_writes(sink, initial[: max(1, len(initial) // 10)])
        finally:
            wipe(settings)
    return f"ratings, batch {batch_size:,}: " + "; ".join(
        [
            rate("first load", *first),
            rate("incremental (keyset, new keys)", *incremental),
            rate("change capture (new keys)", *changes),
            rate("replay", *replay),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--movielens", type=Path, help="directory with ratings.csv")
    source.add_argument("--synthetic", type=int, help="this many generated ratings")
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    if args.movielens:
        rows = movielens_ratings(args.movielens)
    else:
        rows = synthetic_ratings(args.synthetic)
    print(run(rows, args.batch_size))


if __name__ == "__main__":
    main()
