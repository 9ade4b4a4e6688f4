"""`chariot sync` into both sinks at once: ml-latest-small exactly in PostgreSQL and Neo4j,
and a Neo4j server that dies in the middle of a sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.sync import sync
from tests.conftest import settings_env
from tests.neo4j_support import (
    assert_graph_equals_source,
    graph_checkpoints,
    kill_neo4j,
    neo4j_pid_file,
    start_services,
)
from tests.sync_support import assert_postgres_equals_source, mysql_execute, seed_movielens

pytestmark = pytest.mark.integration


def test_movielens_lands_in_both_sinks_exactly(
    cli: Any, settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(settings.mysql, movielens_dir)
    mysql_execute(
        settings.mysql,
        "UPDATE ratings SET rating = 7.5 WHERE userId = 1 AND movieId = 1",
        "UPDATE movies SET title = NULL WHERE movieId = 2",
    )
    outcome = cli("sync", "--json", settings=settings)
    assert outcome.exit_code == 0, outcome.output
    result = json.loads(outcome.stdout)
    assert result["sinks"] == ["postgres", "neo4j"]
    for table in result["tables"]:
        assert [part["status"] for part in table["sinks"]] == ["ok", "ok"]
        written = {part["rows_written"] for part in table["sinks"]}
        assert written == {table["rows_read"] - table["rows_rejected"]}, (
            table
        )  # read once, both got it
    with_rejects = {t["table"]: t["rows_rejected"] for t in result["tables"]}
    assert with_rejects == {"movies": 1, "links": 0, "ratings": 1, "tags": 0}

    # The rejected rows are in neither sink (movie 2's ratings and tags still are: kept,
    # not dropped, under a placeholder Movie node).
    mysql_execute(
        settings.mysql,
        "DELETE FROM ratings WHERE userId = 1 AND movieId = 1",
        "DELETE FROM movies WHERE movieId = 2",
    )
    assert_postgres_equals_source(settings.mysql, settings.postgres)
    assert_graph_equals_source(settings.mysql, settings.neo4j)

    status = json.loads(cli("status", "--json", settings=settings).stdout)
    by_sink = {r["sink"]: r["counts"] for r in status["rejects"]}
    assert by_sink == {
        "postgres": {"movies": 1, "ratings": 1},
        "neo4j": {"movies": 1, "ratings": 1},
    }
    assert {(c["sink"], c["table"], c["lag"]) for c in status["checkpoints"]} >= {
        ("postgres", "ratings", 0),
        ("neo4j", "ratings", 0),
        ("neo4j", "tags", 0),
    }

    again = json.loads(cli("sync", "--json", settings=settings).stdout)
    assert all(t["rows_read"] == 0 for t in again["tables"])
    assert all(p["rows_written"] == 0 for t in again["tables"] for p in t["sinks"])


@pytest.mark.slow
def test_neo4j_stopped_mid_sync_then_the_next_sync_catches_up(
    settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    if not neo4j_pid_file().is_file():
        pytest.skip("Neo4j was not started by scripts/services.sh (no pid file to kill)")
    seed_movielens(settings.mysql, movielens_dir)
    env = {
        **os.environ,
        **settings_env(settings),
        "CHARIOT_RUN__BATCH_SIZE": "1000",
        "CHARIOT_RUN__MAX_ATTEMPTS": "2",
    }
    command = [sys.executable, "-m", "chariot", "sync"]
    try:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while "ratings" not in graph_checkpoints(settings.neo4j):  # Neo4j is into ratings
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        kill_neo4j()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        start_services()
    assert process.returncode == 5, stdout + stderr
    failures = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(failures) == 1, stderr
    assert failures[0].startswith("Error: sink neo4j failed on table ratings: "), stderr
    assert "chariot-neo4j" not in stdout + stderr  # no password in any output
    assert_postgres_equals_source(settings.mysql, settings.postgres)  # PostgreSQL finished

    caught_up = sync(settings)
    assert caught_up.ok, caught_up.failures
    parts = {(p.table, p.sink): p for t in caught_up.tables for p in t.sinks}
    assert parts[("ratings", "postgres")].rows_pending == 0
    assert parts[("ratings", "neo4j")].rows_pending > 0
    assert_postgres_equals_source(settings.mysql, settings.postgres)
    assert_graph_equals_source(settings.mysql, settings.neo4j)
