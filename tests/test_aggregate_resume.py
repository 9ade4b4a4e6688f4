"""Interruptions for real: kill -9 of the command, of one worker, two commands at once,
failing partitions, --restart, and readers during promotion."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chariot.aggregate.partitions import JobControl
from chariot.aggregate.report import aggregation_runs
from chariot.aggregate.runner import run_aggregation
from chariot.aggregate.verify import check_summaries
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.errors import AggregationError
from chariot.seed.synthetic import load_ratings_into_postgres
from tests.test_aggregate_support import (
    finish,
    movielens_declared,
    partition_states,
    query,
    start_cli,
    summaries,
    wait_for,
    with_run,
)

pytestmark = pytest.mark.integration

RATINGS = 500_000


@pytest.fixture
def big_settings(sql_settings: Settings) -> Settings:
    """500,000 ratings in partitions of ~10,000: about 100 partitions."""
    load_ratings_into_postgres(sql_settings.postgres, RATINGS, seed=11)
    return with_run(sql_settings, partition_rows=10_000, workers=2)


def _assert_exact_and_counted_once(settings: Settings) -> None:
    check = check_summaries(settings, neo4j=False)
    assert check.ok, check.model_dump_json(indent=1)
    # Every rating was read by exactly one done movie partition and one done user partition
    # of the promoted run, and nothing is left in staging.
    rows = query(
        settings.postgres,
        """
        SELECT p.kind, sum(p.rows_in), count(*) FILTER (WHERE p.status <> 'done')
        FROM {schema}._chariot_agg_partitions p
        WHERE p.run_id = (SELECT max(run_id) FROM {schema}._chariot_agg_runs WHERE status = 'done')
        GROUP BY p.kind ORDER BY p.kind""",
    )
    assert [row for row in rows if row[0] != "genre_stats"] == [
        ("movie_stats", RATINGS, 0),
        ("user_stats", RATINGS, 0),
    ]
    staging = " + ".join(
        f'(SELECT count(*) FROM {{schema}}."{declared.staging}")'
        for declared in movielens_declared()
    )
    assert query(settings.postgres, f"SELECT {staging}") == [(0,)]


def _running_worker_pid(settings: Settings, exclude: int) -> int | None:
    rows = query(
        settings.postgres,
        "SELECT worker_id FROM {schema}._chariot_agg_partitions WHERE status = 'running'",
    )
    pids = [int(worker.rpartition(":")[2]) for (worker,) in rows]
    return next((pid for pid in pids if pid != exclude), None)


@pytest.mark.slow
def test_kill_9_of_the_whole_command_then_rerun_finishes_exactly(big_settings: Settings) -> None:
    command = start_cli(big_settings, "aggregate", "--no-graph", "--json", "--workers", "2")
    wait_for(
        lambda: (
            partition_states(big_settings.postgres).get("done", 0) >= 5
            and partition_states(big_settings.postgres).get("running", 0) >= 1
        )
    )
    os.killpg(command.pid, signal.SIGKILL)  # the command and its worker processes
    command.communicate()  # reap it and close its pipes
    interrupted = partition_states(big_settings.postgres)
    assert interrupted.get("running", 0) + interrupted.get("pending", 0) > 0, interrupted

    # The dead workers' leases (120 s) are released at once: their pids are gone.
    code, result, err = finish(
        start_cli(big_settings, "aggregate", "--no-graph", "--json", "--workers", "2")
    )
    assert code == 0, err
    assert result is not None and result["resumed"] and result["promoted_now"]
    assert result["partitions_done_before"] == interrupted["done"]
    assert (
        result["partitions_done_before"] + result["partitions_done_now"]
        == result["partitions_total"]
    )
    _assert_exact_and_counted_once(big_settings)
    retried = query(
        big_settings.postgres,
        "SELECT count(*) FROM {schema}._chariot_agg_partitions WHERE attempts > 1",
    )
    # Every partition that was running when killed was attempted again. (The kill can land
    # just after the running ones finished, so the count may be zero: that race is harmless.)
    assert retried[0][0] >= interrupted.get("running", 0)


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (finished, only waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_kill_9_of_the_main_process_takes_its_worker_processes_with_it(
    big_settings: Settings,
) -> None:
    command = start_cli(
        big_settings, "aggregate", "--no-graph", "--json", "--workers", "2", "--executor", "process"
    )
    try:
        worker = wait_for(
            lambda: (
                partition_states(big_settings.postgres).get("running", 0)
                and _running_worker_pid(big_settings, exclude=command.pid)
            )
        )
        children = wait_for(lambda: (found := _children(command.pid)) >= {worker} and found)
        os.kill(command.pid, signal.SIGKILL)  # the main process only, not its group
        command.wait(timeout=30)  # not communicate(): live workers would hold its pipes open
        wait_for(lambda: not any(_alive(pid) for pid in children), timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(command.pid, signal.SIGKILL)  # whatever is left, so the test leaks nothing
        command.communicate(timeout=30)


# A parent that starts a child watching it (the watchdog alone, no parent-death signal),
# prints the child's pid and waits.
WATCHED_CHILD = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import sys, time; from chariot.aggregate.executors import _watch_parent; "
    "_watch_parent(int(sys.argv[1])); time.sleep(120)", str(os.getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_the_watchdog_alone_ends_a_worker_whose_parent_died() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", WATCHED_CHILD],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait(timeout=30)
        wait_for(lambda: not _alive(child), timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.communicate(timeout=30)


@pytest.mark.slow
def test_kill_9_of_one_worker_process_is_recovered_in_the_same_run(big_settings: Settings) -> None:
    command = start_cli(
        big_settings, "aggregate", "--no-graph", "--json", "--workers", "2", "--executor", "process"
    )
    victim = wait_for(
        lambda: (
            partition_states(big_settings.postgres).get("done", 0) >= 3
            and _running_worker_pid(big_settings, exclude=command.pid)
        )
    )
    os.kill(victim, signal.SIGKILL)
    code, result, err = finish(command)
    assert code == 0, err
    assert result is not None and result["worker_crashes"], result  # noticed, and taken over
    assert result["partitions_done_before"] == 0
    _assert_exact_and_counted_once(big_settings)


@pytest.mark.slow
def test_two_commands_started_at_once_share_the_work_without_corruption(
    big_settings: Settings,
) -> None:
    commands = [
        start_cli(big_settings, "aggregate", "--no-graph", "--json", "--workers", "2")
        for _ in range(2)
    ]
    outcomes = [finish(command) for command in commands]
    for code, result, err in outcomes:
        assert code == 0, err
        assert result is not None
    results = [result for _, result, _ in outcomes]
    if results[0]["run_id"] == results[1]["run_id"]:  # they overlapped: one run, joined
        assert sorted(r["promoted_now"] for r in results) == [False, True]
        assert sum(r["partitions_done_now"] for r in results) == results[0]["partitions_total"]
    _assert_exact_and_counted_once(big_settings)
    assert query(
        big_settings.postgres,
        "SELECT count(*) FROM {schema}._chariot_agg_runs WHERE status = 'running'",
    ) == [(0,)]


def test_a_failing_partition_is_retried_reported_and_resumed_after_the_fix(
    sql_settings: Settings,
) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 20_000, seed=2)
    settings = with_run(sql_settings, partition_rows=2_000, partition_attempts=2)
    run_aggregation(settings, workers=1, graph=False)
    before = summaries(settings.postgres)
    # Break one rating (the contract says NOT NULL; this table is made to allow it).
    user, movie = query(
        settings.postgres, "SELECT user_id, movie_id FROM {schema}.ratings LIMIT 1"
    )[0]
    query(settings.postgres, 'ALTER TABLE {schema}.ratings ALTER COLUMN "timestamp" DROP NOT NULL')
    stamp = query(
        settings.postgres,
        'UPDATE {schema}.ratings SET "timestamp" = NULL WHERE user_id = %s '
        'AND movie_id = %s RETURNING (SELECT "timestamp" FROM {schema}.ratings WHERE user_id = %s '
        "AND movie_id = %s)",
        (user, movie, user, movie),
    )[0][0]

    with pytest.raises(
        AggregationError, match=r"2 partition\(s\) failed after 2 attempts.*NULL"
    ) as failure:
        run_aggregation(settings, workers=1, graph=False)
    assert "re-run" in (failure.value.hint or "")
    assert summaries(settings.postgres) == before  # the old complete result stays readable
    latest = aggregation_runs(settings)[0]
    assert latest.status == "running" and latest.partitions["failed"] == 2
    assert "NULL" in (latest.last_error or "")

    query(
        settings.postgres,
        'UPDATE {schema}.ratings SET "timestamp" = %s WHERE user_id = %s AND movie_id = %s',
        (stamp, user, movie),
    )
    resumed = run_aggregation(settings, workers=1, graph=False)
    assert resumed.run_id == latest.run_id and resumed.resumed
    assert (resumed.partitions_reset, resumed.partitions_done_now) == (2, 2)
    assert check_summaries(settings, neo4j=False).ok


def test_restart_abandons_the_open_run_and_computes_a_fresh_one(sql_settings: Settings) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 5_000, seed=4)
    first = run_aggregation(sql_settings, workers=1, graph=False)
    with postgres_connection(sql_settings.postgres) as connection:  # an interrupted run
        jobs = JobControl(connection, sql_settings.postgres.schema_name, movielens_declared())
        open_run = jobs.create_run(1_000)
        connection.commit()
    result = run_aggregation(sql_settings, workers=1, graph=False, restart=True)
    assert result.run_id > open_run > first.run_id and not result.resumed
    states = {run.run_id: run.status for run in aggregation_runs(sql_settings)}
    assert states == {result.run_id: "done", open_run: "abandoned", first.run_id: "done"}
    assert check_summaries(sql_settings, neo4j=False).ok


def test_readers_see_the_old_or_the_new_summaries_never_a_mix_or_nothing(
    sql_settings: Settings,
) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 50_000, seed=6)
    settings = with_run(sql_settings, partition_rows=5_000)
    first = run_aggregation(settings, workers=1, graph=False)
    seen: list[tuple[int, int, int]] = []
    stop = threading.Event()

    def read() -> None:
        with postgres_connection(settings.postgres, autocommit=True) as connection:
            while not stop.is_set():
                seen.append(
                    connection.execute(
                        "SELECT count(*), min(run_id), max(run_id) "
                        f'FROM "{settings.postgres.schema_name}".movie_stats'
                    ).fetchone()
                )

    reader = threading.Thread(target=read)
    reader.start()
    try:
        second = run_aggregation(settings, workers=1, graph=False)
    finally:
        stop.set()
        reader.join()
    runs = {row[1] for row in seen}
    assert runs == {first.run_id, second.run_id}, runs  # both results were observed...
    assert all(
        count == first.summaries["movie_stats"].groups and low == high for count, low, high in seen
    )  # ...each whole
