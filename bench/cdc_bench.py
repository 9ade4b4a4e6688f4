"""Change capture: changes applied per second into each sink, and end-to-end lag.

    python bench/cdc_bench.py                        # 200,000 ratings, 60,000 changes
    python bench/cdc_bench.py --changes 150000 --cases postgres,neo4j,both
    python bench/cdc_bench.py --lag-seconds 60 --rate 1000
    python bench/cdc_bench.py --new-rows --cases neo4j --lag-seconds 0   # inserts only
    python bench/cdc_bench.py --ratings 5000000 --cases postgres --lag-seconds 0 --keep
    python bench/cdc_bench.py --ratings 5000000 --cases postgres --lag-seconds 0 --reuse \
        --statement-times                            # again on the kept data, timed per statement

Throughput: the synthetic MovieLens-shaped source is synced (change capture), then a
1:1:1 mix of inserts, updates and deletes of ratings is committed in transactions of
``--transaction-size`` rows while nothing is syncing (with ``--new-rows``: inserts of new
ratings only, the case of an append-mostly source); one ``sync()`` then applies them,
and its log phase is timed per sink (changes read from the log / seconds).

Lag: a follower (``sync(follow=True)`` in a thread) runs while a generator commits a
steady ``--rate`` changes per second (transactions of 10); each transaction also upserts
a probe rating whose timestamp is its sequence number, and a poller reads the highest one
each sink holds every 20 ms: lag = when a sink first shows a transaction - when it was
committed. p50/p99/max over all transactions, per sink.

Every case ends with an audit of the ratings table; a difference fails the benchmark.
Run on demand, not in CI. Settings come from CHARIOT_* / .env; ``CHARIOT_BENCH_NAME``
names the bench's own MySQL database and PostgreSQL schema (two people can run it at once).

Seeding and first-copying millions of ratings takes longer than the changes it times:
``--keep`` leaves the source and the sink in place at the end, and ``--reuse`` (one
PostgreSQL case) starts from them when they hold ``--ratings`` ratings, each run committing
a fresh mix (``--pick-seed``) on top of the last. ``--statement-times`` adds up the time
the process spends in each PostgreSQL statement shape (and in BEGIN/COMMIT).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import create_database, drop, drop_schema, neo4j_lock, wipe  # noqa: E402
from chariot.audit import AuditOptions, run_audit  # noqa: E402
from chariot.config import Settings, load_settings  # noqa: E402
from chariot.connections import mysql_connect, neo4j_session, postgres_connection  # noqa: E402
from chariot.sync import sync  # noqa: E402

# Its own database and schema: the sync bench (run by others beside it) uses chariot_bench_sync.
NAME = os.environ.get("CHARIOT_BENCH_NAME", "chariot_bench_cdc")
CASES = {"postgres": ["postgres"], "neo4j": ["neo4j"], "both": ["postgres", "neo4j"]}
PROBE_USER = 2_000_000_000  # the probe ratings' user: far above the generated ones


def main() -> None:
    options = _arguments()
    base = load_settings()
    settings = base.model_copy(
        update={
            "mysql": base.mysql.model_copy(update={"database": NAME}),
            "postgres": base.postgres.model_copy(update={"schema_name": NAME}),
            "run": base.run.model_copy(update={"mode": "cdc"}),
        }
    )
    create_database(settings)
    report: list[dict[str, Any]] = []
    timings = _StatementTimes() if options.statement_times else None
    try:
        # Neo4j is shared through a lock: taken only when a case writes to it.
        graph = options.lag_seconds or any("neo4j" in CASES[case] for case in options.cases)
        with neo4j_lock(settings) if graph else contextlib.nullcontext():
            for case in options.cases:
                report.append(_throughput(settings, case, options, timings))
            if options.lag_seconds:
                report.append(_lag(settings, options))
    finally:
        if not options.keep:
            drop(settings)
    _print(report)
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2, default=str))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=200_000, help="synthetic ratings")
    parser.add_argument("--changes", type=int, default=60_000, help="1:1:1 ins/upd/del")
    parser.add_argument("--transaction-size", type=int, default=100, help="rows of each kind")
    parser.add_argument(
        "--new-rows", action="store_true", help="inserts of new ratings only, no update/delete"
    )
    parser.add_argument(
        "--single-row-statements",
        action="store_true",
        help="one INSERT/UPDATE/DELETE per row (a row event each) instead of multi-row ones",
    )
    parser.add_argument(
        "--cases",
        default="postgres,neo4j,both",
        type=lambda text: [c for c in text.split(",") if c in CASES],
    )
    parser.add_argument("--lag-seconds", type=int, default=60, help="0: skip the lag case")
    parser.add_argument("--rate", type=int, default=1000, help="changes per second (lag)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--keep", action="store_true", help="leave the source and the sink schema in place"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="start from a kept source and sink of --ratings ratings (postgres case only)",
    )
    parser.add_argument(
        "--pick-seed", type=int, default=3, help="which existing ratings are updated/deleted"
    )
    parser.add_argument(
        "--statement-times", action="store_true", help="time each PostgreSQL statement shape"
    )
    options = parser.parse_args()
    if options.reuse and (options.cases != ["postgres"] or options.lag_seconds):
        parser.error("--reuse is for --cases postgres --lag-seconds 0")
    return options


def _reset_sinks(settings: Settings, sinks: list[str]) -> None:
    drop_schema(settings)
    if "neo4j" in sinks:
        wipe(settings)


def _fresh_source_and_sinks(settings: Settings, ratings: int, sinks: list[str]) -> None:
    from chariot.seed import seed_synthetic

    _reset_sinks(settings, sinks)
    seed_synthetic(settings.mysql, ratings, seed=1)
    first = sync(settings, sinks=sinks)
    if first.failures or first.mode != "cdc":
        raise SystemExit(f"first sync: mode {first.mode}, {first.failures}")


def _kept(settings: Settings, ratings: int) -> bool:
    """The source holds about ``ratings`` ratings (a kept run's changes move it a little)
    and the sink follows it by the log."""
    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_rows FROM information_schema.tables"
                " WHERE table_schema = DATABASE() AND table_name = 'ratings'"
            )
            row = cursor.fetchone()
    finally:
        connection.close()
    if row is None or abs(int(row[0] or 0) - ratings) > ratings * 0.2:
        return False
    with postgres_connection(settings.postgres, autocommit=True) as connection:
        found = connection.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (f'"{settings.postgres.schema_name}"._chariot_log_positions',),
        ).fetchone()
    return bool(found and found[0])


def _throughput(
    settings: Settings,
    case: str,
    options: argparse.Namespace,
    timings: _StatementTimes | None = None,
) -> dict[str, Any]:
    sinks = CASES[case]
    if options.reuse and _kept(settings, options.ratings):
        caught_up = sync(settings, sinks=sinks)  # whatever an earlier run left in the log
        if caught_up.failures or caught_up.mode != "cdc":
            raise SystemExit(f"catch-up sync: mode {caught_up.mode}, {caught_up.failures}")
    else:
        _fresh_source_and_sinks(settings, options.ratings, sinks)
    multi_row = not options.single_row_statements
    made = _commit_mix(
        settings,
        options.changes,
        options.transaction_size,
        multi_row=multi_row,
        new_rows=options.new_rows,
        pick_seed=options.pick_seed,
    )
    cpu = time.process_time()
    with timings.recording() if timings is not None else contextlib.nullcontext():
        result = sync(settings, sinks=sinks)
    cpu = time.process_time() - cpu
    shape = "multi-row statements" if multi_row else "one statement per row"
    mix = "new rows" if options.new_rows else "1:1:1 mix"
    figures: dict[str, Any] = {
        "case": f"apply {case} ({mix}, {shape})",
        "changes": made,
        "run_seconds": result.seconds,
        # The whole sync (keyset passes, log phase, bookkeeping), and this process's CPU
        # in it (every thread): the figure to compare across loads.
        "run_changes_per_second": round(made / result.seconds, 1) if result.seconds else 0.0,
        "chariot_cpu_seconds": round(cpu, 2),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "failures": [f.line() for f in result.failures],
        "per_sink": {
            part.sink: {
                "changes": part.changes,
                "seconds": part.seconds,
                "changes_per_second": part.changes_per_second,
            }
            for part in result.changes
        },
    }
    if timings is not None:
        figures["statement_seconds"] = timings.table()
    figures["audit_clean"] = _audit_clean(settings, sinks)
    return figures


def _commit_mix(
    settings: Settings,
    changes: int,
    size: int,
    *,
    multi_row: bool = True,
    new_rows: bool = False,
    pick_seed: int = 3,
) -> int:
    """``changes`` row changes, a third each inserts, updates and deletes, in transactions
    of ``size`` rows of each kind: three multi-row statements per transaction (one row
    event of ``size`` rows each), or with ``multi_row`` False one statement per row (one
    row event per row: the binary-log reader's worst case). ``new_rows``: inserts only."""
    rng = random.Random(7)
    connection = mysql_connect(settings.mysql)
    made = 0
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT userId, movieId FROM ratings ORDER BY RAND(%s) LIMIT %s",
                (pick_seed, changes),
            )
            existing = [tuple(row) for row in cursor.fetchall()]
            cursor.execute("SELECT MAX(userId) FROM ratings")
            next_user = int(cursor.fetchone()[0]) + 1
            per_kind = changes if new_rows else changes // 3
            updates, deletes = existing[:per_kind], existing[per_kind : 2 * per_kind]
            if new_rows:
                updates, deletes = [], []
            for start in range(0, per_kind, size):
                inserts = [
                    (next_user + (start + i) // 50, 1 + (start + i) % 50, 3.5, 1_600_000_000)
                    for i in range(min(size, per_kind - start))
                ]
                changed = updates[start : start + size]
                gone = deletes[start : start + size]
                if multi_row:
                    _multi_row(cursor, inserts, changed, gone, rng.choice((1, 2, 3)))
                else:
                    cursor.executemany("INSERT INTO ratings VALUES (%s,%s,%s,%s)", inserts)
                    cursor.executemany(
                        "UPDATE ratings SET rating=%s WHERE userId=%s AND movieId=%s",
                        [(rng.choice((1.0, 2.0, 4.5)), u, m) for u, m in changed],
                    )
                    cursor.executemany("DELETE FROM ratings WHERE userId=%s AND movieId=%s", gone)
                connection.commit()
                made += len(inserts) + len(changed) + len(gone)
    finally:
        connection.close()
    return made


def _multi_row(
    cursor: Any, inserts: list[Any], changed: list[Any], gone: list[Any], by: int
) -> None:
    if inserts:
        cursor.execute(
            "INSERT INTO ratings VALUES " + ",".join(["(%s,%s,%s,%s)"] * len(inserts)),
            [value for row in inserts for value in row],
        )
    for rows, statement in (
        (changed, f"UPDATE ratings SET timestamp = timestamp + {by} WHERE (userId, movieId) IN "),
        (gone, "DELETE FROM ratings WHERE (userId, movieId) IN "),
    ):
        if rows:
            pairs = ",".join(["(%s,%s)"] * len(rows))
            cursor.execute(statement + f"({pairs})", [value for row in rows for value in row])


def _lag(settings: Settings, options: argparse.Namespace) -> dict[str, Any]:
    sinks = CASES["both"]
    _fresh_source_and_sinks(settings, options.ratings, sinks)
    stop = threading.Event()
    follower = threading.Thread(
        target=lambda: sync(settings, sinks=sinks, follow=True, stop=stop), daemon=True
    )
    follower.start()
    committed: dict[int, float] = {}
    seen: dict[str, dict[int, float]] = {sink: {} for sink in sinks}
    polling = threading.Event()
    pollers = [
        threading.Thread(target=_poll, args=(settings, sink, seen[sink], polling), daemon=True)
        for sink in sinks
    ]
    for poller in pollers:
        poller.start()
    _steady(settings, options, committed)
    deadline = time.monotonic() + 30
    last = max(committed)
    while time.monotonic() < deadline and any(last not in seen[s] for s in sinks):
        time.sleep(0.05)
    polling.set()
    stop.set()
    follower.join(timeout=60)
    figures: dict[str, Any] = {"case": f"lag at {options.rate:,} changes/s", "per_sink": {}}
    for sink in sinks:
        lags = sorted(
            max(0.0, _first_seen(seen[sink], number) - at) for number, at in committed.items()
        )
        figures["per_sink"][sink] = {
            "transactions": len(lags),
            "p50_s": round(statistics.median(lags), 3),
            "p99_s": round(lags[int(len(lags) * 0.99) - 1], 3),
            "max_s": round(lags[-1], 3),
        }
    figures["audit_clean"] = _audit_clean(settings, sinks)
    return figures


def _steady(settings: Settings, options: argparse.Namespace, committed: dict[int, float]) -> None:
    """``rate`` changes per second in transactions of 10 (9 rating updates + the probe)."""
    connection = mysql_connect(settings.mysql)
    rng = random.Random(5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT userId, movieId FROM ratings WHERE userId < %s", (PROBE_USER,))
            keys = [tuple(row) for row in cursor.fetchall()]
            per_second = max(options.rate // 10, 1)
            started = time.monotonic()
            number = 0
            while time.monotonic() - started < options.lag_seconds:
                number += 1
                picked = [rng.choice(keys) for _ in range(9)]
                cursor.executemany(
                    "UPDATE ratings SET timestamp=%s WHERE userId=%s AND movieId=%s",
                    [(number, u, m) for u, m in picked],
                )
                cursor.execute("REPLACE INTO ratings VALUES (%s, 1, 3.0, %s)", (PROBE_USER, number))
                connection.commit()
                committed[number] = time.monotonic()
                pause = started + number / per_second - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
    finally:
        connection.close()


def _poll(settings: Settings, sink: str, seen: dict[int, float], done: threading.Event) -> None:
    """The highest probe number ``sink`` holds, every 20 ms."""
    reached = 0
    while not done.is_set():
        number = _probe(settings, sink)
        now = time.monotonic()
        for value in range(reached + 1, (number or 0) + 1):
            seen[value] = now
        reached = max(reached, number or 0)
        time.sleep(0.02)


def _probe(settings: Settings, sink: str) -> int | None:
    try:
        if sink == "postgres":
            with postgres_connection(settings.postgres, autocommit=True) as connection:
                row = connection.execute(
                    f'SELECT timestamp FROM "{NAME}".ratings WHERE user_id = %s', (PROBE_USER,)
                ).fetchone()
                return int(row[0]) if row else None
        with neo4j_session(settings.neo4j) as session:
            record = session.run(
                "MATCH (:User {userId: $u})-[r:RATED]->() RETURN r.timestamp AS t", u=PROBE_USER
            ).single()
            return int(record["t"]) if record and record["t"] is not None else None
    except Exception:
        return None


def _first_seen(seen: dict[int, float], number: int) -> float:
    return seen.get(number, float("inf"))


def _audit_clean(settings: Settings, sinks: list[str]) -> bool:
    report = run_audit(
        settings, AuditOptions(tables=("ratings",), sinks=tuple(sinks), summaries=False)
    )
    return all(result.clean for result in report.results)


class _StatementTimes:
    """Seconds spent in each PostgreSQL statement shape (its text with the schema and
    numbers taken out), BEGIN and COMMIT included, while ``recording``: psycopg's cursor
    and transaction methods wrapped for the time (every thread of this process)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.seconds[label] = self.seconds.get(label, 0.0) + seconds
            self.calls[label] = self.calls.get(label, 0) + 1

    @contextlib.contextmanager
    def recording(self) -> Any:
        import psycopg

        cursor, transaction = psycopg.Cursor, psycopg.Transaction
        saved = (cursor.execute, cursor.copy, transaction.__enter__, transaction.__exit__)
        execute, copy, enter, exit_ = saved
        times = self

        def timed_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return execute(self, query, *args, **kwargs)
            finally:
                times.add(times.label(query, self), time.perf_counter() - started)

        @contextlib.contextmanager
        def timed_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                with copy(self, statement, *args, **kwargs) as copying:
                    yield copying
            finally:
                times.add(times.label(statement, self), time.perf_counter() - started)

        def timed_enter(self: Any) -> Any:
            started = time.perf_counter()
            try:
                return enter(self)
            finally:
                kind = "BEGIN" if self._outer_transaction else "SAVEPOINT"
                times.add(kind, time.perf_counter() - started)

        def timed_exit(self: Any, *exc: Any) -> Any:
            started = time.perf_counter()
            try:
                return exit_(self, *exc)
            finally:
                kind = "COMMIT" if self._outer_transaction else "RELEASE SAVEPOINT"
                times.add(kind, time.perf_counter() - started)

        cursor.execute, cursor.copy = timed_execute, timed_copy  # type: ignore[method-assign,assignment]
        transaction.__enter__, transaction.__exit__ = timed_enter, timed_exit  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            cursor.execute, cursor.copy, transaction.__enter__, transaction.__exit__ = saved  # type: ignore[method-assign]

    @staticmethod
    def label(query: Any, cursor: Any) -> str:
        import re

        text = query if isinstance(query, str) else query.as_string(cursor.connection)
        text = re.sub(r'"?' + re.escape(NAME) + r'"?\.', "", text)
        text = re.sub(r"\b\d+\b", "N", " ".join(text.split()))
        return text[:110]

    def table(self) -> list[dict[str, Any]]:
        return [
            {"statement": label, "calls": self.calls[label], "seconds": round(seconds, 3)}
            for label, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])
        ]


def _print(report: list[dict[str, Any]]) -> None:
    for item in report:
        clean = "audit clean" if item.get("audit_clean") else "AUDIT NOT CLEAN"
        failed = f"  FAILED {item['failures']}" if item.get("failures") else ""
        print(f"{item['case']}: {clean}{failed}")
        if "run_seconds" in item:
            print(
                f"  whole sync {item['run_seconds']} s ({item['run_changes_per_second']:,} "
                f"changes/s), chariot CPU {item['chariot_cpu_seconds']} s, "
                f"load {item['load_average']}"
            )
        for sink, figures in item.get("per_sink", {}).items():
            print(f"  {sink:<9} " + ", ".join(f"{k} {v:,}" for k, v in figures.items()))
        for timed in item.get("statement_seconds", [])[:12]:
            print(f"    {timed['seconds']:8.3f} s {timed['calls']:6} x  {timed['statement']}")


if __name__ == "__main__":
    main()
