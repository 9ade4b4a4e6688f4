"""`chariot aggregate` and its part of `chariot status` through the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from chariot.aggregate import executors
from chariot.config import Settings
from chariot.seed.synthetic import load_ratings_into_postgres
from tests.test_aggregate_support import create_input_tables


def test_help_documents_every_option(cli: Callable[..., Any]) -> None:
    result = cli("aggregate", "--help")
    assert result.exit_code == 0
    for option in (
        "--workers",
        "--executor",
        "--scheduler",
        "--partition-rows",
        "--restart",
        "--no-graph",
        "--json",
    ):
        assert option in result.stdout


@pytest.mark.integration
def test_json_result_then_status_shows_the_run(
    sql_settings: Settings, cli: Callable[..., Any]
) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 4_000, seed=5)
    done = cli(
        "aggregate",
        "--workers",
        "1",
        "--no-graph",
        "--partition-rows",
        "1000",
        "--json",
        settings=sql_settings,
    )
    assert done.exit_code == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (
        result["rows_read"] == 4_000
        and result["promoted_now"]
        and result["graph_status"] == "skipped"
    )
    assert result["partitions_done_now"] == result["partitions_total"] >= 6

    table = cli("aggregate", "--workers", "1", "--no-graph", settings=sql_settings)
    assert table.exit_code == 0
    assert f"Aggregation run {result['run_id'] + 1}" in table.stdout and "4,000" in table.stdout

    status = cli("status", "--json", settings=sql_settings)
    runs = json.loads(status.stdout)["aggregation_runs"]
    assert [run["run_id"] for run in runs] == [result["run_id"] + 1, result["run_id"]]
    assert runs[1]["partitions"] == {
        "pending": 0,
        "running": 0,
        "done": result["partitions_total"],
        "failed": 0,
    }
    assert "Aggregation runs" in cli("status", settings=sql_settings).stdout


@pytest.mark.integration
def test_missing_input_tables_is_one_clear_line(
    sql_settings: Settings, cli: Callable[..., Any]
) -> None:
    result = cli("aggregate", "--no-graph", settings=sql_settings)
    assert result.exit_code == 6
    assert "no ratings and no movies table" in result.stderr and "chariot sync" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    as_json = json.loads(cli("aggregate", "--no-graph", "--json", settings=sql_settings).stdout)
    assert as_json["error"]["exit_code"] == 6 and "chariot sync" in as_json["error"]["hint"]


@pytest.mark.integration
def test_dask_needs_a_scheduler_and_a_reachable_one(
    sql_settings: Settings, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_input_tables(sql_settings.postgres)
    monkeypatch.setattr(executors, "DASK_CONNECT_SECONDS", 2)
    missing = cli("aggregate", "--executor", "dask", "--no-graph", settings=sql_settings)
    assert missing.exit_code == 2 and "--scheduler" in missing.stderr
    unreachable = cli(
        "aggregate",
        "--executor",
        "dask",
        "--scheduler",
        "tcp://127.0.0.1:9",
        "--no-graph",
        settings=sql_settings,
    )
    assert (
        unreachable.exit_code == 3 and "Dask scheduler at tcp://127.0.0.1:9" in unreachable.stderr
    )


def test_dask_executor_without_dask_installed_says_how_to_install_it(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without the extra sees
    result = cli("aggregate", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2
    assert "dask[distributed]" in result.stderr and "chariot[dask]" in result.stderr


def test_bad_worker_count_is_refused(cli: Callable[..., Any]) -> None:
    result = cli("aggregate", "--workers", "0")
    assert result.exit_code == 2
