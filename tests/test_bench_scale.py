"""The scale benchmark's own logic: reading peak memory from /proc and from the kernel's
rusage, and turning a results file into the Performance page's tables. No servers."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import scale_report
from bench.measure import descendants, parse_ppid, parse_usage, parse_vmhwm, run_measured

MIB = 1024  # KiB

STATUS = """Name:\tpython3
State:\tS (sleeping)
VmPeak:\t  412345 kB
VmHWM:\t   98765 kB
VmRSS:\t   91234 kB
"""


def test_vmhwm_is_read_in_kib_and_absent_for_a_zombie() -> None:
    assert parse_vmhwm(STATUS) == 98765
    assert parse_vmhwm("Name:\tpython3\nState:\tZ (zombie)\n") is None


def test_the_launchers_usage_line_gives_peak_and_cpu_or_zeros() -> None:
    assert parse_usage("123456 1.5 0.25") == (123456, 1.75)
    assert parse_usage("") == (0, 0.0)  # the launcher was killed before writing it


@pytest.mark.parametrize(
    ("stat", "parent"),
    [
        ("1234 (chariot) S 77 1234 1234 0 -1", 77),
        ("1234 (a b) c) S 88 1 1 0 -1", 88),  # a command name with spaces and a ')'
        ("garbage", None),
    ],
)
def test_the_parent_pid_is_counted_from_the_last_parenthesis(stat: str, parent: int) -> None:
    assert parse_ppid(stat) == parent


@given(st.dictionaries(st.integers(2, 60), st.integers(1, 60), max_size=40))
def test_descendants_are_exactly_the_pids_whose_chain_reaches_the_root(
    parents: dict[int, int],
) -> None:
    def reaches_root(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == 1:
                return True
        return False

    assert descendants(1, parents) == {pid for pid in parents if reaches_root(pid)}


ALLOCATE = "b = bytearray({mib} * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"


def test_a_worker_peak_counts_in_the_tree_and_on_its_own() -> None:
    """A command that starts a worker of ~160 MiB and waits for it: the exact tree peak
    includes the worker, the main process's sample does not."""
    worker = ALLOCATE.format(mib=160) + "import time; time.sleep(0.6)"
    main = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {worker!r}])"
    measured = run_measured([sys.executable, "-c", main], interval=0.05)
    assert measured.returncode == 0
    assert measured.tree_peak_kib >= 160 * MIB
    assert measured.main_peak_kib < 100 * MIB
    assert measured.worker_peaks_kib and measured.worker_peaks_kib[0] >= 150 * MIB
    assert 0 < measured.cpu_seconds < measured.seconds * 2


def test_the_benchs_own_memory_is_not_reported_as_the_commands() -> None:
    """A child forked from a big process inherits its high-water mark at exec; the
    launcher keeps the bench's size out of the figure."""
    ballast = bytearray(300 * 2**20)
    for index in range(0, len(ballast), 4096):
        ballast[index] = 1
    measured = run_measured(["sh", "-c", "exit 3"])
    assert measured.returncode == 3
    assert 0 < measured.tree_peak_kib < 100 * MIB
    del ballast


def _results(**overrides: Any) -> dict[str, Any]:
    cases = [
        {
            "id": "pgloader",
            "label": "pgloader",
            "rows": 1000,
            "seconds": 2.0,
            "peak_rss_kib": 300 * MIB,
        },
        {
            "id": "load_postgres",
            "label": "initial load, PostgreSQL alone",
            "rows": 1000,
            "seconds": 4.0,
            "reported_seconds": 3.5,
            "rows_per_second": 250.0,
            "reference": "pgloader 500 rows/s",
            "ratio": 0.5,
            "ratio_text": "0.50× pgloader's rows/s",
            "peak_rss_kib": 100 * MIB,
            "main_rss_kib": 90 * MIB,
            "worker_rss_kib": [],
            "cpu_seconds": 2.0,
            "chariot": True,
        },
        {
            "id": "load_both",
            "label": "both",
            "seconds": 10.0,
            "ratio": 1.05,
            "chariot": True,
            "peak_rss_kib": 600 * MIB,
            "main_rss_kib": 200 * MIB,
            "worker_rss_kib": [600 * MIB, 50 * MIB],
        },
        {
            "id": "no_change",
            "label": "no change",
            "seconds": 0.9,
            "seconds_min": 0.8,
            "seconds_max": 1.4,
            "reported_seconds": 0.4,
        },
    ]
    results = {
        "scenario": "1m",
        "ratings": 1000,
        "rows": {"movies": 10, "ratings": 990},
        "date": "2026-11-27 23:00 UTC",
        "command": "python bench/scale_bench.py --scenario 1m",
        "git": "abc1234",
        "machine": {
            "cores": 2,
            "ram_gib": 24.0,
            "mysql": "MariaDB",
            "postgres": "PostgreSQL 15",
            "neo4j": "Neo4j 5",
            "pgloader": "pgloader 3.6.7",
        },
        "load_average": {"start": [1.0, 2.0, 3.0], "end": [2.0, 2.0, 2.0]},
        "cases": cases,
    }
    results.update(overrides)
    return results


def test_the_cases_table_shows_the_command_and_own_seconds_and_every_process_peak() -> None:
    table = scale_report.cases_table(_results()["cases"])
    lines = table.splitlines()
    assert lines[0].startswith("| case | rows | seconds |")
    assert (
        "| 4.00 (3.50) | 250 | pgloader 500 rows/s | 0.50× pgloader's rows/s | 100 MiB |" in table
    )
    assert "600 MiB (main 200 MiB, 2 workers ≤ 600 MiB)" in table
    assert "| 100 MiB | 2.0 s (50%) |" in table  # CPU of 4 s wall
    assert all(line.count("|") == 10 for line in lines)


def test_each_target_is_judged_and_the_unmeasured_ones_say_so() -> None:
    verdicts = {t.name: t.met for t in scale_report.targets(_results())}
    assert verdicts["MySQL → PostgreSQL rows/s"] is False  # 0.5× < 2×
    assert verdicts["both sinks together"] is True  # 1.05 <= 1.1
    assert verdicts["no-change sync, every table"] is True  # the command's median 0.9 s
    assert verdicts["Neo4j initial load"] is None
    assert verdicts["peak RSS of chariot and each worker"] is False  # a 600 MiB worker
    table = scale_report.targets_table(_results())
    assert "| **missed** |" in table and "| not measured |" in table


def test_the_pages_block_is_replaced_in_place_and_appended_when_missing() -> None:
    page = (
        "# Performance\n\nintro\n\n<!-- scale:1m start -->\nold\n<!-- scale:1m end -->\n\nafter\n"
    )
    updated = scale_report.replace_block(page, "1m", "new table")
    assert updated == page.replace("\nold\n", "\nnew table\n")
    assert scale_report.replace_block(updated, "1m", "new table") == updated
    added = scale_report.replace_block(page, "5m", "five")
    assert added.startswith(page.rstrip("\n"))
    assert added.endswith("<!-- scale:5m start -->\nfive\n<!-- scale:5m end -->\n")


def test_ratios_of_missing_figures_are_missing_not_zero() -> None:
    assert scale_report.ratio(1.0, 0) is None
    assert scale_report.ratio(None, 2.0) is None
    assert scale_report.rate(100, 4.0) == 25.0
    assert scale_report.times(None) == "-"


def test_pgloader_gets_the_four_tables_with_4_workers_and_doubled_separators() -> None:
    from pydantic import SecretStr

    from bench.scale_bench import pgloader_command
    from chariot.config import Settings

    settings = Settings()
    settings = settings.model_copy(
        update={
            "mysql": settings.mysql.model_copy(
                update={"database": "src", "password": SecretStr("p@ss:word")}
            ),
        }
    )
    command = pgloader_command(settings, "target_schema")
    assert ":p@@ss::word@" in command
    assert "workers = 4" in command
    assert "MATCHING 'movies', 'links', 'ratings', 'tags'" in command
    assert "ALTER SCHEMA 'src' RENAME TO 'target_schema';" in command


def test_the_no_change_target_is_the_whole_command() -> None:
    """Judged by the command's wall time (start to exit), not the time inside it."""
    results = _results()
    slow = {**results["cases"][-1], "seconds": 1.3, "reported_seconds": 0.4}
    results["cases"] = [*results["cases"][:-1], slow]
    target = next(t for t in scale_report.targets(results) if t.name.startswith("no-change"))
    assert target.met is False
    assert target.measured == "1.30 s (0.80–1.40), inside 0.40 s"
