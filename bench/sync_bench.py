"""Rows per second of `chariot sync`, per sink: PostgreSQL alone, Neo4j alone, both at once.

    python bench/sync_bench.py                               # ml-latest-small + 1,000,000 ratings
    python bench/sync_bench.py --ratings 2000000 --cases postgres,both
    python bench/sync_bench.py --skip-movielens --batch-size 20000

Each dataset is seeded into its own MySQL database (``chariot_bench_sync``): the real
ml-latest-small CSVs, then MovieLens-shaped synthetic data from the seed's generator. For
each case the sinks start empty (the PostgreSQL schema ``chariot_bench_sync`` is dropped,
the Neo4j graph wiped under the test suite's file lock, since Community has one database)
and one full ``sync()`` runs, exactly what the CLI calls. Also timed: reading the source
alone (the reader's ceiling), so the figures say where the time goes.

Run on demand, not in CI. Settings (servers, credentials) come from CHARIOT_* / .env.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.conftest: the shared Neo4j lock and wipe

# The bench's own database and schema, and the Neo4j lock: shared with the other benches.
from bench.common import create_database as _create_database  # noqa: E402
from bench.common import drop as _drop  # noqa: E402
from bench.common import drop_schema, reset_sinks  # noqa: E402
from bench.common import neo4j_lock as _neo4j_lock  # noqa: E402
from chariot.config import Settings, load_settings  # noqa: E402
from chariot.sources.sql import SqlSource  # noqa: E402
from chariot.sync import sync  # noqa: E402
from tests.movielens_project import RATINGS  # noqa: E402

NAME = "chariot_bench_sync"
CASES = {"postgres": ["postgres"], "neo4j": ["neo4j"], "both": ["postgres", "neo4j"]}


def main() -> None:
    options = _arguments()
    base = load_settings()
    settings = base.model_copy(
        update={
            "mysql": base.mysql.model_copy(update={"database": options.name}),
            "postgres": base.postgres.model_copy(update={"schema_name": options.name}),
            "run": base.run.model_copy(update={"batch_size": options.batch_size}),
        }
    )
    report: list[dict[str, Any]] = []
    datasets = [] if options.skip_movielens else [("ml-latest-small", _movielens(options))]
    datasets.append((f"synthetic {options.ratings:,} ratings", _synthetic(options)))
    _create_database(settings)
    try:
        uses_neo4j = any("neo4j" in CASES[case] for case in options.cases)
        with _neo4j_lock(settings) if uses_neo4j else nullcontext():
            for label, seed in datasets:
                seed(settings)
                report.append(_source_only(settings, label))
                for case in options.cases:
                    report.append(_run_case(settings, label, case))
    finally:
        _drop(settings)
    _print(report)
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000, help="synthetic ratings")
    parser.add_argument(
        "--movielens",
        type=Path,
        default=os.environ.get("CHARIOT_MOVIELENS_DIR")
        or ROOT.parent / "shared/data/ml-latest-small",
    )
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument(
        "--cases",
        default="postgres,neo4j,both",
        type=lambda text: [c for c in text.split(",") if c in CASES],
    )
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--name",
        default=NAME,
        help="MySQL database and PostgreSQL schema to use (dropped at the end): one per "
        "person when several benchmark on the same servers",
    )
    return parser.parse_args()


def _movielens(options: argparse.Namespace) -> Any:
    def seed(settings: Settings) -> None:
        from chariot.seed import seed_movielens

        seed_movielens(settings.mysql, options.movielens)

    return seed


def _synthetic(options: argparse.Namespace) -> Any:
    def seed(settings: Settings) -> None:
        from chariot.seed import seed_synthetic

        seed_synthetic(settings.mysql, options.ratings, seed=1)

    return seed


def _source_only(settings: Settings, label: str) -> dict[str, Any]:
    """The reader alone: keyset pages of ratings, rejects check included, nothing written."""
    with SqlSource(settings) as source:
        started = time.perf_counter()
        rows = sum(
            len(batch)
            for batch in source.read(RATINGS, after=None, batch_size=settings.run.batch_size)
        )
        seconds = time.perf_counter() - started
    return {
        "dataset": label,
        "case": "source read only",
        "table": "ratings",
        "sink": "-",
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
    }


def _run_case(settings: Settings, label: str, case: str) -> dict[str, Any]:
    _reset_sinks(settings, case)
    result = sync(settings, sinks=CASES[case])
    ratings = next(table for table in result.tables if table.table == "ratings")
    figures = {
        "dataset": label,
        "case": case,
        "table": "ratings",
        "rows": ratings.rows_read,
        "seconds": ratings.seconds,
        "run_seconds": result.seconds,
        "failures": [f.line() for f in result.failures],
    }
    figures["per_sink"] = {
        part.sink: {
            "rows_written": part.rows_written,
            "seconds": part.seconds,
            "rows_per_second": part.rows_per_second,
        }
        for part in ratings.sinks
    }
    seconds = ratings.seconds or float("inf")
    figures["rows_per_second"] = round(ratings.rows_read / seconds)
    figures["all_tables_rows_per_second"] = round(
        sum(t.rows_read for t in result.tables) / result.seconds
    )
    return figures


def _reset_sinks(settings: Settings, case: str) -> None:
    if "neo4j" in CASES[case]:  # the graph is shared: only under its lock
        reset_sinks(settings)
    else:
        drop_schema(settings)


def _print(report: list[dict[str, Any]]) -> None:
    print(f"{'dataset':<28} {'case':<17} {'ratings':>10} {'s':>7} {'rows/s':>9}  per sink (rows/s)")
    for item in report:
        sinks = ", ".join(
            f"{name} {f['rows_per_second']:,.0f}" for name, f in item.get("per_sink", {}).items()
        )
        failed = f"  FAILED: {item['failures']}" if item.get("failures") else ""
        print(
            f"{item['dataset']:<28} {item['case']:<17} {item['rows']:>10,} "
            f"{item['seconds']:>7.2f} {item['rows_per_second']:>9,}  {sinks}{failed}"
        )


if __name__ == "__main__":
    main()
