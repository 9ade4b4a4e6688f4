"""Load rate of `chariot seed`: synthetic ratings per second (and MovieLens, if given).

    python bench/seed_bench.py --ratings 1000000
    python bench/seed_bench.py --ratings 5000000 --movielens ../shared/data/ml-latest-small

Runs in a scratch MySQL database (created, then dropped), so it never touches the source
configured for the demo. Settings come from the CHARIOT_* environment / .env like the CLI.
Prints one JSON object: end-to-end ratings/s (generation + files + load + swap) and the
rate of the ratings LOAD DATA alone, plus the machine's load average for context.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

from chariot.config import MySQLSettings, load_settings
from chariot.connections import mysql_connect
from chariot.seed import LoadMethod, seed_movielens, seed_synthetic


def scratch_database(settings: MySQLSettings) -> MySQLSettings:
    name = f"chariot_bench_{uuid.uuid4().hex[:8]}"
    connection = mysql_connect(settings)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    connection.close()
    return settings.model_copy(update={"database": name})


def drop_database(settings: MySQLSettings) -> None:
    connection = mysql_connect(settings)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{settings.database}`")
    connection.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    scratch = scratch_database(load_settings().mysql)
    report: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    try:
        method = LoadMethod(args.method)
        result = seed_synthetic(scratch, args.ratings, seed=args.seed, method=method)
        ratings = result.rows["ratings"]
        report["synthetic"] = {
            "ratings": ratings,
            "seconds": result.seconds,
            "ratings_per_second_end_to_end": round(ratings / result.seconds),
            "ratings_per_second_load": round(ratings / result.table_seconds["ratings"]),
            "method": result.method,
        }
        if args.movielens:
            movielens = seed_movielens(scratch, args.movielens, method=method)
            report["movielens"] = {"rows": movielens.total_rows, "seconds": movielens.seconds}
    finally:
        drop_database(scratch)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--method", choices=[m.value for m in LoadMethod], default="auto")
    parser.add_argument("--movielens", type=Path, default=None)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
