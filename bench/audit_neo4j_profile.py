"""Where the source ⇄ Neo4j audit of the ratings spends its time, for one or more code trees.

    python bench/audit_neo4j_profile.py --ratings 1000000 --trees /tmp/base/src,src --rounds 2

Seeds synthetic ratings into its own MySQL database (``CHARIOT_BENCH_NAME``, default
``chariot_bench_auditneo``; kept, and reused when it already holds that many ratings), then,
under the test suite's Neo4j lock, loads movies and ratings into the graph once and, for
each round and each tree (a ``src`` directory: the code measured, e.g. main's beside this
branch's), runs in a fresh process: the whole audit of ratings in Neo4j, then every
segment's checksum on the source side alone and on the graph side alone (one connection
each), with the CPU seconds of this process, of MariaDB and of Neo4j over each step
(``/proc``: other users' work on the same servers counts too; read them with the load
average printed beside them). The graph is wiped before and after.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NEO4J_LOCK_PATH = Path(tempfile.gettempdir()) / "chariot-neo4j-tests.lock"
NAME = os.environ.get("CHARIOT_BENCH_NAME", "chariot_bench_auditneo")
TICKS = os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--trees", default="src", help="comma-separated src directories")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(_measure()))
        return
    settings = _settings()
    _seed(settings, options.ratings)
    trees = [str(Path(tree).resolve()) for tree in options.trees.split(",")]
    with open(NEO4J_LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _wipe(settings)
            _load(settings)
            for round_ in range(options.rounds):
                for tree in trees:
                    found = _run_worker(tree)
                    load = os.getloadavg()[0]
                    print(f"round {round_ + 1} {tree}: load {load:.1f} {json.dumps(found)}")
        finally:
            _wipe(settings)


def _settings() -> Any:
    from chariot.config import load_settings

    base = load_settings()
    return base.model_copy(
        update={
            "mysql": base.mysql.model_copy(update={"database": NAME}),
            "postgres": base.postgres.model_copy(update={"schema_name": NAME}),
        }
    )


def _seed(settings: Any, ratings: int) -> None:
    from chariot.connections import mysql_connect
    from chariot.seed.synthetic import seed_synthetic

    admin = mysql_connect(settings.mysql.model_copy(update={"database": ""}))
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{NAME}`")
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'ratings'",
            (NAME,),
        )
        exists = cursor.fetchone()[0]
        count = 0
        if exists:
            cursor.execute(f"SELECT COUNT(*) FROM `{NAME}`.ratings")
            count = cursor.fetchone()[0]
    admin.close()
    if count != ratings:
        started = time.perf_counter()
        seed_synthetic(settings.mysql, ratings)
        print(f"seeded {ratings:,} ratings in {time.perf_counter() - started:.1f} s", flush=True)


def _load(settings: Any) -> None:
    from chariot.sync import sync

    started = time.perf_counter()
    result = sync(settings, sinks=["neo4j"], tables=["movies", "ratings"], mode="keyset")
    assert not result.failures, result.failures
    print(f"graph loaded in {time.perf_counter() - started:.1f} s", flush=True)


def _wipe(settings: Any) -> None:
    from chariot.connections import neo4j_session

    with neo4j_session(settings.neo4j) as session:
        for statement in (
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS",
        ):
            session.run(statement).consume()


def _run_worker(tree: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": tree, "CHARIOT_BENCH_NAME": NAME}
    done = subprocess.run(
        [sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- the worker: runs with the tree's chariot on its path --------------------------------------


def _server_pids() -> dict[str, int]:
    """MariaDB and the Neo4j this repository's services run (not the 25M bench's)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "mariadbd" in command and "/work/main/" in command:
            found["mariadb"] = int(entry.name)
        elif "java" in command and "/work/main/.services/neo4j" in command:
            found["neo4j"] = int(entry.name)
    return found


def _cpu(pid: int) -> float:
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _timed(step: Any, pids: dict[str, int]) -> dict[str, float]:
    before = {name: _cpu(pid) for name, pid in pids.items()}
    own, started = time.process_time(), time.perf_counter()
    step()
    found = {"seconds": time.perf_counter() - started, "chariot_cpu": time.process_time() - own}
    for name, pid in pids.items():
        found[f"{name}_cpu"] = _cpu(pid) - before[name]
    return {key: round(value, 2) for key, value in found.items()}


def _measure() -> dict[str, Any]:
    from chariot.audit import AuditOptions, run_audit
    from chariot.audit.forms import canonical_for
    from chariot.audit.neo4j import GraphSide
    from chariot.audit.segments import segment_rows_for, segments_from_boundaries
    from chariot.audit.source import SourceSide
    from chariot.project.streams import default_streams

    settings = _settings()
    pids = _server_pids()
    stream = next(s for s in default_streams() if s.name == "ratings")
    canonical = canonical_for(stream, "neo4j")
    assert canonical is not None
    options = AuditOptions(tables=("ratings",), sinks=("neo4j",), summaries=False)
    reports: list[Any] = []
    figures = {"audit": _timed(lambda: reports.append(run_audit(settings, options)), pids)}
    assert reports[0].clean, reports[0].results
    source = SourceSide(settings, canonical)
    try:
        total = source.count_all()
        segments = segments_from_boundaries(source.boundaries(segment_rows_for(total, None)))
        figures["source_checksums"] = _timed(lambda: [source.checksum(s) for s in segments], pids)
    finally:
        source.close()
    graph = GraphSide(settings, canonical)
    try:
        figures["graph_checksums"] = _timed(lambda: [graph.checksum(s) for s in segments], pids)
    finally:
        graph.close()
    return {"segments": len(segments), **figures}


if __name__ == "__main__":
    main()
