"""Chariot beside its references at 1M, 5M or 25M ratings, one command per scenario (#12).

    python bench/scale_bench.py --scenario 1m                 # about 10 minutes here
    python bench/scale_bench.py --scenario 5m --json bench/results/scale-5m.json
    python bench/scale_bench.py --scenario 25m --docs docs/performance.md   # hours, not minutes
    python bench/scale_bench.py --ratings 200000 --skip keyset,dask          # a quick look
    python bench/scale_bench.py --skip postgres,cdc,keyset    # the graph's initial load alone

One seeded synthetic source (``chariot seed synthetic``'s generator, seed 1) in its own MySQL
database, and in ONE run, in this order:

1. pgloader (``workers = 4``) copies the same four tables into its own PostgreSQL schema;
2. ``chariot sync --sink postgres`` into an empty schema, then ``chariot audit`` of it;
3. aggregate: PostgreSQL computing the same statistics in plain SQL, then
   ``chariot aggregate --workers 2`` (processes), then the Dask executor on a local
   cluster (``dask scheduler`` + ``dask worker --nworkers 2``) started for the run;
4. under the test suite's Neo4j lock (the graph is wiped before and after):
   ``chariot sync --sink neo4j`` and its audit; both sinks at once from empty; a no-change
   re-run of every table; 1% of the ratings changed (a third each inserted, updated,
   deleted) carried by ``chariot sync --mode cdc`` one sink at a time; another 1% carried
   by keyset mode + ``chariot audit --repair`` (what a source without a binary log does);
5. a final audit of both sinks, which must be clean (the bench fails loudly otherwise, as
   it does when any command fails or any audit on the way finds a difference).

Every Chariot and pgloader command runs as a child process: wall time, and peak RSS of
the process and of each worker (``bench/measure.py`` says how and why it is right).
Results: a Markdown table on stdout, the whole run as JSON (``--json``, default
``bench/results/scale-<scenario>.json``), and with ``--docs`` the page's block for the
scenario rewritten (``bench/scale_report.py`` renders it again from the JSON any time).
The machine is shared: compare the ratios, and read the load average beside them.

Settings (servers, credentials) come from CHARIOT_* / .env like the CLI; the bench uses
its own database and schemas (``chariot_bench_scale``, ``chariot_bench_scale_pgloader``),
dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common, scale_report  # noqa: E402
from bench.aggregate_bench import _plain_sql  # noqa: E402
from bench.cdc_bench import _commit_mix  # noqa: E402
from bench.measure import Measured, ProcessPeak, TreeSampler, run_measured  # noqa: E402
from chariot.config import Settings, load_settings  # noqa: E402
from chariot.connections import mysql_connect, neo4j_session, postgres_connection  # noqa: E402

# The source database and sink schemas; a second name lets two runs share the servers.
NAME = os.environ.get("CHARIOT_BENCH_NAME", "chariot_bench_scale")
PGLOADER_SCHEMA = f"{NAME}_pgloader"
TABLES = ("movies", "links", "ratings", "tags")
SCENARIOS = {"1m": 1_000_000, "5m": 5_000_000, "25m": 25_000_000}
# The no-change sync is run this many times; its figure is the median command.
NO_CHANGE_RUNS = 5
SKIPPABLE = ("pgloader", "postgres", "neo4j", "aggregate", "dask", "cdc", "keyset")
PROJECT = ROOT / "examples" / "movielens" / "chariot.toml"


class BenchFailed(SystemExit):
    """A command failed or an audit was not clean: the run's figures are not a result."""


def main() -> int:
    options = _arguments()
    os.environ.setdefault("CHARIOT_PROJECT", str(PROJECT))
    base = load_settings()
    settings = base.model_copy(
        update={
            "mysql": base.mysql.model_copy(update={"database": NAME}),
            "postgres": base.postgres.model_copy(update={"schema_name": NAME}),
        }
    )
    bench = ScaleBench(settings, options)
    try:
        results = bench.run()
    finally:
        if not options.keep:
            bench.clean_up()
    output = options.json or ROOT / "bench" / "results" / f"scale-{results['scenario']}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + scale_report.render(results))
    print(f"\nresults: {output}")
    if options.docs:
        scale_report.main([str(output), "--docs", str(options.docs)])
        print(f"updated: {options.docs}")
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="1m")
    parser.add_argument("--ratings", type=int, help="any size instead of the scenario's")
    parser.add_argument("--changed", type=float, default=0.01, help="fraction changed (0.01)")
    parser.add_argument("--workers", type=int, default=2, help="aggregate workers (2)")
    parser.add_argument(
        "--skip",
        default="",
        type=lambda text: {part for part in text.split(",") if part},
        help=f"leave out some cases: {','.join(SKIPPABLE)}",
    )
    parser.add_argument("--json", type=Path, help="results file (default bench/results/)")
    parser.add_argument("--docs", type=Path, help="rewrite this page's block for the scenario")
    parser.add_argument("--keep", action="store_true", help="keep the bench's database/schemas")
    options = parser.parse_args()
    unknown = options.skip - set(SKIPPABLE)
    if unknown:
        parser.error(f"--skip: unknown {sorted(unknown)}; choose from {', '.join(SKIPPABLE)}")
    if options.ratings:
        options.scenario = f"{options.ratings // 1000}k"
    else:
        options.ratings = SCENARIOS[options.scenario]
    return options


class ScaleBench:
    def __init__(self, settings: Settings, options: argparse.Namespace) -> None:
        self.settings = settings
        self.options = options
        self.cases: list[dict[str, Any]] = []
        self.rows: dict[str, int] = {}
        self.env = {
            **os.environ,
            "CHARIOT_MYSQL__DATABASE": NAME,
            "CHARIOT_POSTGRES__SCHEMA_NAME": NAME,
            "CHARIOT_PROJECT": os.environ["CHARIOT_PROJECT"],
        }
        self.chariot = str(Path(sys.executable).with_name("chariot"))

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        skip = self.options.skip
        started_load = os.getloadavg()
        commit = _git_commit()  # the code that runs, before anyone commits more
        date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        common.create_database(self.settings)
        common.drop_schema(self.settings)
        _compile_bytecode()
        self._seed()
        if "postgres" not in skip:  # "postgres": the graph's cases only
            if "pgloader" not in skip:
                self._pgloader()
            self._load("load_postgres", "initial load, PostgreSQL alone", ["postgres"])
            self._audit("audit_postgres", "audit source ⇄ PostgreSQL, clean", ["postgres"])
            if "aggregate" not in skip:
                self._aggregate()
        if "neo4j" not in skip:
            with common.neo4j_lock(self.settings):
                common.wipe(self.settings)
                self._graph_cases()
        else:
            self._no_change(["postgres"])
            self._changes(["postgres"])
            self._audit("audit_final", "final audit, PostgreSQL, clean", ["postgres"])
        return {
            "scenario": self.options.scenario,
            "ratings": self.options.ratings,
            "rows": self.rows,
            "date": date,
            "command": " ".join(["python", *map(shlex.quote, sys.argv)]),
            "git": commit,
            "machine": self._machine(),
            "load_average": {"start": list(started_load), "end": list(os.getloadavg())},
            "cases": self.cases,
        }

    def _graph_cases(self) -> None:
        self._load("load_neo4j", "initial load, Neo4j alone", ["neo4j"])
        self._audit("audit_neo4j", "audit source ⇄ Neo4j, clean", ["neo4j"])
        if "postgres" in self.options.skip:
            self._no_change(["neo4j"])
            self._changes(["neo4j"])
            self._audit("audit_final", "final audit, Neo4j, clean", ["neo4j"])
            return
        common.reset_sinks(self.settings)
        self._load("load_both", "initial load, both sinks", ["postgres", "neo4j"])
        slower = max(
            (self._case(case) for case in ("load_postgres", "load_neo4j")),
            key=lambda case: case["seconds"],
        )
        both = self._case("load_both")
        both["reference"] = (
            f"slower sink alone ({slower['label'].split(', ')[1]}) {slower['seconds']:.1f} s"
        )
        both["ratio"] = scale_report.ratio(both["seconds"], slower["seconds"])
        both["ratio_text"] = f"{both['ratio']:.2f}× the slower alone"
        sinks = ["postgres", "neo4j"]
        self._no_change(sinks)
        self._changes(sinks)
        self._audit("audit_final", "final audit, both sinks, clean", sinks)

    # -- cases ------------------------------------------------------------------------------

    def _seed(self) -> None:
        from chariot.seed import seed_synthetic

        print(f"seeding {self.options.ratings:,} ratings ...", flush=True)
        started = time.perf_counter()
        result = seed_synthetic(self.settings.mysql, self.options.ratings, seed=1)
        self.rows = {table: int(result.rows[table]) for table in TABLES}
        self._add(
            {
                "id": "seed",
                "label": "seed the source (chariot seed synthetic, not compared)",
                "rows": sum(self.rows.values()),
                "seconds": time.perf_counter() - started,
            }
        )

    def _pgloader(self) -> None:
        with tempfile.TemporaryDirectory(prefix="chariot-pgloader-") as scratch:
            command = Path(scratch) / "load.pgloader"
            command.write_text(pgloader_command(self.settings, PGLOADER_SCHEMA))
            command.chmod(0o600)
            measured = self._command(
                ["pgloader", "--no-ssl-cert-verification", str(command)],
                what="pgloader",
            )
        copied = self._count_postgres(PGLOADER_SCHEMA)
        if copied != self.rows:
            raise BenchFailed(f"pgloader copied {copied}, the source has {self.rows}")
        total = sum(self.rows.values())
        self._add(
            {
                "id": "pgloader",
                "label": "initial load, pgloader → PostgreSQL (reference)",
                "rows": total,
                "seconds": measured.seconds,
                "rows_per_second": scale_report.rate(total, measured.seconds),
                **_rss(measured),
            }
        )

    def _load(self, case: str, label: str, sinks: list[str]) -> None:
        result, measured = self._sync(sinks, case=case)
        total = sum(self.rows.values())
        figures: dict[str, Any] = {
            "id": case,
            "label": label,
            "rows": total,
            "seconds": measured.seconds,
            "reported_seconds": result["seconds"],
            "rows_per_second": scale_report.rate(total, measured.seconds),
            "mode": result.get("mode"),
            "chariot": True,
            **_rss(measured),
        }
        ratings = next(t for t in result["tables"] if t["table"] == "ratings")
        per_sink = {part["sink"]: part for part in ratings["sinks"]}
        if "neo4j" in per_sink:
            figures["ratings_per_second"] = per_sink["neo4j"]["rows_per_second"]
        reference = self._case("pgloader") if case == "load_postgres" else None
        if reference:
            figures["reference"] = f"pgloader {reference['rows_per_second']:,.0f} rows/s"
            figures["ratio"] = scale_report.ratio(
                figures["rows_per_second"], reference["rows_per_second"]
            )
            figures["ratio_text"] = f"{figures['ratio']:.2f}× pgloader's rows/s"
        if case == "load_neo4j":
            figures["reference"] = f"ratings {figures['ratings_per_second']:,.0f} relationships/s"
        self._add(figures)

    def _no_change(self, sinks: list[str]) -> None:
        """The whole command as a user waits for it (process start to exit), run
        ``NO_CHANGE_RUNS`` times: the median is the figure, min and max its spread (a
        single run of about a second says little on a shared machine)."""
        runs: list[tuple[dict[str, Any], Measured]] = []
        for _ in range(NO_CHANGE_RUNS):
            result, measured = self._sync(sinks, case="no_change")
            written = sum(p["rows_written"] for t in result["tables"] for p in t["sinks"])
            if written:
                raise BenchFailed(f"the no-change sync wrote {written} rows")
            runs.append((result, measured))
        walls = sorted(measured.seconds for _, measured in runs)
        middle = sorted(runs, key=lambda run: run[1].seconds)[len(runs) // 2]
        self._add(
            {
                "id": "no_change",
                "label": f"no-change sync, every table, {' + '.join(sinks)} "
                f"(median of {len(runs)} commands)",
                "rows": 0,
                "seconds": statistics.median(walls),
                "seconds_min": walls[0],
                "seconds_max": walls[-1],
                "reported_seconds": statistics.median(r["seconds"] for r, _ in runs),
                "chariot": True,
                **_rss(middle[1]),
            }
        )

    def _changes(self, sinks: list[str]) -> None:
        count = int(self.rows["ratings"] * self.options.changed)
        percent = f"{self.options.changed:.0%}"
        if "cdc" not in self.options.skip:
            made = _commit_mix(self.settings, count, size=1000)
            for sink in sinks:
                result, measured = self._sync([sink], case=f"cdc_{sink}", mode="cdc")
                part = next(p for p in result["changes"] if p["sink"] == sink)
                if part["changes"] < made:
                    raise BenchFailed(f"change capture carried {part['changes']} of {made}")
                self._add(
                    {
                        "id": f"cdc_{sink}",
                        "label": f"{percent} changed, change capture, {sink}",
                        "rows": part["changes"],
                        "seconds": measured.seconds,
                        "reported_seconds": result["seconds"],
                        "rows_per_second": scale_report.rate(part["changes"], measured.seconds),
                        "changes_per_second": part["changes_per_second"],
                        "reference": f"log phase alone {part['changes_per_second']:,.0f} changes/s",
                        "chariot": True,
                        **_rss(measured),
                    }
                )
            self._audit("audit_cdc", f"audit after {percent} changed, clean", sinks, record=False)
        if "keyset" not in self.options.skip:
            joined = " + ".join(sinks)
            made = _commit_mix(self.settings, count, size=1000)
            result, sync_run = self._sync(sinks, case="keyset", mode="keyset")
            repair = self._command(
                [
                    self.chariot,
                    "audit",
                    "--repair",
                    "--no-summaries",
                    "--json",
                    *_sink_flags(sinks),
                ],
                what="keyset repair",
                ok_codes=(0, 1),
            )
            self._add(
                {
                    "id": "keyset",
                    "label": f"{percent} changed, keyset sync + audit --repair, {joined}",
                    "rows": made,
                    "seconds": sync_run.seconds + repair.seconds,
                    "rows_per_second": scale_report.rate(made, sync_run.seconds + repair.seconds),
                    "reference": f"sync {sync_run.seconds:.1f} s + repair {repair.seconds:.1f} s",
                    "chariot": True,
                    **_rss(sync_run, repair),
                }
            )

    def _audit(self, case: str, label: str, sinks: list[str], *, record: bool = True) -> None:
        measured = self._command(
            [self.chariot, "audit", "--no-summaries", "--json", *_sink_flags(sinks)],
            what=label,
        )
        report = json.loads(measured.stdout)
        if not report.get("ok") or measured.returncode != 0:
            raise BenchFailed(f"{label}: NOT CLEAN: {measured.stdout[-2000:]}")
        if record:
            self._add(
                {
                    "id": case,
                    "label": label,
                    "rows": sum(self.rows.values()),
                    "seconds": measured.seconds,
                    "reported_seconds": report.get("seconds"),
                    "rows_per_second": scale_report.rate(sum(self.rows.values()), measured.seconds),
                    "chariot": True,
                    **_rss(measured),
                }
            )

    def _aggregate(self) -> None:
        from bench.aggregate_bench import _index

        with postgres_connection(self.settings.postgres, autocommit=True) as connection:
            connection.execute(f'VACUUM ANALYZE "{NAME}".ratings')
        _index(self.settings)  # the aggregation's tables and index, once (not timed)
        ratings = self.rows["ratings"]
        started = time.perf_counter()
        _plain_sql(self.settings)
        sql_seconds = time.perf_counter() - started
        self._add(
            {
                "id": "aggregate_sql",
                "label": "aggregate, PostgreSQL plain SQL (reference)",
                "rows": ratings,
                "seconds": sql_seconds,
                "rows_per_second": scale_report.rate(ratings, sql_seconds),
            }
        )
        workers = str(self.options.workers)
        runs = [
            ("aggregate_2", f"aggregate, {workers} worker processes", ["--executor", "process"])
        ]
        cluster = None
        if "dask" not in self.options.skip:
            cluster = DaskCluster(self.env, int(workers))
            runs.append(
                (
                    "aggregate_dask",
                    f"aggregate, Dask local cluster ({workers} workers)",
                    ["--executor", "dask", "--scheduler", cluster.address],
                )
            )
        try:
            for case, label, flags in runs:
                measured = self._command(
                    [
                        self.chariot,
                        "aggregate",
                        "--workers",
                        workers,
                        *flags,
                        "--restart",
                        "--full",
                        "--no-graph",
                        "--json",
                    ],
                    what=label,
                )
                result = json.loads(measured.stdout)
                own = float(result["seconds"])
                figures = {
                    "id": case,
                    "label": label,
                    "rows": ratings,
                    "seconds": measured.seconds,
                    "reported_seconds": own,
                    "rows_per_second": scale_report.rate(ratings, own),
                    "reference": f"plain SQL {sql_seconds:.2f} s",
                    "ratio": scale_report.ratio(own, sql_seconds),
                    "chariot": True,
                    **_rss(measured),
                }
                figures["ratio_text"] = f"{figures['ratio']:.2f}× plain SQL"
                if case == "aggregate_dask" and cluster is not None:
                    # the tasks run in the cluster's worker processes, not below chariot
                    figures["worker_rss_kib"] = cluster.worker_peaks()
                    figures["peak_rss_kib"] = max(
                        [figures["peak_rss_kib"], *figures["worker_rss_kib"]]
                    )
                self._add(figures)
        finally:
            if cluster is not None:
                cluster.stop()
        from chariot.aggregate.verify import check_summaries

        if not check_summaries(self.settings, neo4j=False).ok:
            raise BenchFailed("the aggregation's summaries differ from the SQL truth")

    # -- helpers ----------------------------------------------------------------------------

    def _sync(
        self, sinks: list[str], *, case: str, mode: str | None = None
    ) -> tuple[dict[str, Any], Measured]:
        argv = [self.chariot, "sync", "--json", *_sink_flags(sinks)]
        if mode:
            argv += ["--mode", mode]
        measured = self._command(argv, what=case)
        result = json.loads(measured.stdout)
        if result.get("failures") or not result.get("ok", True):
            raise BenchFailed(f"{case}: {result.get('failures')}")
        return result, measured

    def _command(
        self,
        argv: list[str],
        *,
        what: str,
        ok_codes: tuple[int, ...] = (0,),
    ) -> Measured:
        print(f"  {what}: {Path(argv[0]).name} {' '.join(argv[1:])}", flush=True)
        measured = run_measured(argv, env=self.env, cwd=ROOT)
        print(
            f"    {measured.seconds:.2f} s, exit {measured.returncode}, "
            f"peak RSS {measured.tree_peak_kib / 1024:.0f} MiB, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if measured.returncode not in ok_codes:
            tail = _redacted(self.settings, measured.stderr[-3000:] + measured.stdout[-3000:])
            raise BenchFailed(f"{what}: exit {measured.returncode}\n{tail}")
        return measured

    def _add(self, case: dict[str, Any]) -> None:
        case.setdefault("load1", round(os.getloadavg()[0], 2))
        self.cases.append(case)

    def _case(self, case: str) -> dict[str, Any]:
        return next((c for c in self.cases if c["id"] == case), {})

    def _count_postgres(self, schema: str) -> dict[str, int]:
        with postgres_connection(self.settings.postgres) as connection:
            return {
                table: int(
                    _first(
                        connection.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
                    )
                )
                for table in TABLES
            }

    def _machine(self) -> dict[str, Any]:
        return {
            "cores": os.cpu_count(),
            "cpu": _cpu_model(),
            "ram_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "kernel": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            **_server_versions(self.settings),
        }

    def clean_up(self) -> None:
        common.drop(self.settings)
        common.drop_schema(self.settings, PGLOADER_SCHEMA)


class DaskCluster:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on this machine, for
    one run; each process tree's peak RSS is sampled while it lives."""

    def __init__(self, env: dict[str, str], workers: int) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="chariot-dask-"))
        scheduler_file = self.scratch / "scheduler.json"
        dask = str(Path(sys.executable).with_name("dask"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        self.scheduler = subprocess.Popen(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **quiet,  # type: ignore[call-overload]
        )
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not scheduler_file.exists():
            self.scheduler.kill()
            raise BenchFailed("the Dask scheduler did not start within 60 s")
        self.address = json.loads(scheduler_file.read_text())["address"]
        self.worker = subprocess.Popen(
            [
                dask,
                "worker",
                self.address,
                "--nworkers",
                str(workers),
                "--nthreads",
                "1",
                "--memory-limit",
                "0",
                "--no-dashboard",
            ],
            cwd=ROOT,
            **quiet,  # type: ignore[call-overload]
        )
        self.sampler = TreeSampler(self.worker.pid, interval=0.2).__enter__()
        try:
            self._wait_for_workers(workers)
        except BaseException:
            self.stop()
            raise

    def _wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=60) as client:
            client.wait_for_workers(count, timeout=120)

    def worker_peaks(self) -> list[int]:
        """Peak RSS of each Dask worker process (below the ``dask worker`` process, which
        runs the nannies)."""
        self.sampler.sample()
        return sorted(_workers_of(self.sampler.peaks.values()), reverse=True)

    def stop(self) -> None:
        self.sampler.__exit__()
        for process in (self.worker, self.scheduler):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def pgloader_command(settings: Settings, target_schema: str) -> str:
    """pgloader's load command for the four tables, ``workers = 4`` as in fast-paths.md,
    into its own schema (pgloader names the schema after the MySQL database: renamed)."""
    mysql, postgres = settings.mysql, settings.postgres
    source = (
        f"mysql://{_pgloader_escape(mysql.user)}:"
        f"{_pgloader_escape(mysql.password.get_secret_value())}@{mysql.host}:{mysql.port}/{mysql.database}"
    )
    target = (
        f"postgresql://{_pgloader_escape(postgres.user)}:"
        f"{_pgloader_escape(postgres.password.get_secret_value())}@{postgres.host}:{postgres.port}/{postgres.database}"
    )
    names = ", ".join(f"'{table}'" for table in TABLES)
    return (
        f"LOAD DATABASE\n  FROM {source}\n  INTO {target}\n"
        "  WITH include drop, create tables, create indexes, reset sequences,\n"
        "       workers = 4, concurrency = 1\n"
        f"  INCLUDING ONLY TABLE NAMES MATCHING {names}\n"
        f"  ALTER SCHEMA '{mysql.database}' RENAME TO '{target_schema}';\n"
    )


def _pgloader_escape(text: str) -> str:
    """pgloader's connection strings take ``@`` and ``:`` in a user or password doubled."""
    return text.replace("@", "@@").replace(":", "::")


def _first(row: Any) -> Any:
    if row is None:
        raise BenchFailed("a query that returns one row returned none")
    return row[0]


def _sink_flags(sinks: list[str]) -> list[str]:
    return [flag for sink in sinks for flag in ("--sink", sink)]


def _rss(*runs: Measured) -> dict[str, Any]:
    """Peak RSS of one or more commands: exact tree maximum, main process, each worker."""
    return {
        "peak_rss_kib": max(run.tree_peak_kib for run in runs),
        "cpu_seconds": sum(run.cpu_seconds for run in runs),
        "main_rss_kib": max(run.main_peak_kib for run in runs),
        "worker_rss_kib": sorted({peak for run in runs for peak in _workers(run)}, reverse=True),
    }


def _workers(run: Measured) -> list[int]:
    return _workers_of(run.processes.values())


def _workers_of(peaks: Iterable[ProcessPeak]) -> list[int]:
    """The worker processes' peaks: descendants that compute (multiprocessing's resource
    tracker, a few MiB, is left out)."""
    return [
        peak.peak_kib
        for peak in peaks
        if peak.command != "<main>" and "resource_tracker" not in peak.command
    ]


def _redacted(settings: Settings, text: str) -> str:
    for secret in (settings.mysql.password, settings.postgres.password, settings.neo4j.password):
        value = secret.get_secret_value()
        if value:
            text = text.replace(value, "***")
    return text


def _git_commit() -> str:
    """The commit, marked ``+changes`` when tracked files differ from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _server_versions(settings: Settings) -> dict[str, str]:
    versions: dict[str, str] = {}
    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            versions["mysql"] = f"MySQL/MariaDB {cursor.fetchone()[0]}"
    finally:
        connection.close()
    with postgres_connection(settings.postgres) as pg:
        versions["postgres"] = "PostgreSQL " + str(
            _first(pg.execute("SHOW server_version").fetchone())
        )
    with neo4j_session(settings.neo4j) as session:
        record = session.run(
            "CALL dbms.components() YIELD name, versions, edition "
            "RETURN name, versions[0] AS version, edition"
        ).single()
        versions["neo4j"] = (
            f"{record['name']} {record['version']} {record['edition']}" if record else "Neo4j ?"
        )
    pgloader = shutil.which("pgloader")
    versions["pgloader"] = (
        subprocess.run([pgloader, "--version"], capture_output=True, text=True).stdout.splitlines()[
            0
        ]
        if pgloader
        else "pgloader not installed"
    )
    return versions


def _compile_bytecode() -> None:
    """Byte-compile Chariot as ``pip install`` does for an installed wheel. An editable
    checkout run with PYTHONDONTWRITEBYTECODE (set on some machines, CI among them) would
    otherwise compile every module in every command: ~0.3 s of each, measured, that no
    installed copy pays."""
    import compileall

    import chariot

    compileall.compile_dir(str(Path(chariot.__file__).parent), quiet=1)


if __name__ == "__main__":
    sys.exit(main())
