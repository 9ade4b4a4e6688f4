"""Run every benchmark once, in sequence, with its default sizes (`make bench`).

Each script compares ratios within its own run (these machines are noisy); this runner
only sequences them so they never compete for the two cores. Pass --quick for smaller sizes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The same data the tests use: CHARIOT_MOVIELENS_DIR, else a shared copy beside the clone.
MOVIELENS = Path(
    os.environ.get("CHARIOT_MOVIELENS_DIR")
    or HERE.parent.parent / "shared" / "data" / "ml-latest-small"
)

FULL = [
    ["seed_bench.py", "--ratings", "1000000", "--movielens", str(MOVIELENS)],
    ["sync_bench.py", "--ratings", "1000000", "--movielens", str(MOVIELENS)],
    ["neo4j_sink_bench.py", "--synthetic", "1000000"],
    ["aggregate_bench.py", "--ratings", "5000000"],
    ["audit_bench.py", "--ratings", "1000000"],
    # issue #12: everything beside its references in one run (25m: `--scenario 25m`, hours)
    ["scale_bench.py", "--scenario", "1m"],
]
QUICK = [
    ["seed_bench.py", "--ratings", "200000"],
    ["sync_bench.py", "--ratings", "200000", "--skip-movielens"],
    ["aggregate_bench.py", "--ratings", "500000", "--workers", "1,2"],
    ["audit_bench.py", "--ratings", "200000"],
    ["scale_bench.py", "--ratings", "100000", "--skip", "keyset"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes in all")
    args = parser.parse_args()
    failures = 0
    for script, *script_args in QUICK if args.quick else FULL:
        print(f"\n=== {script} {' '.join(script_args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *script_args])
        print(f"=== {script}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
