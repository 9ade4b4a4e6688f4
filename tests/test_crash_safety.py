"""Kill -9 at chosen points, then run again: nothing lost, nothing duplicated, in both sinks.

A sync of 200,000 synthetic ratings (plus movies, links, tags) runs as a real
``python -m chariot sync`` process. The test hook ``CHARIOT_TEST_PAUSE_AFTER_BATCHES=N``
makes each sink writer block after its N-th committed batch and note it in a marker file;
the test waits for the marker and SIGKILLs the process there, so every kill lands mid-sync
on any machine. After every kill each sink must hold no row the source lacks, no duplicate,
and every source row up to its own checkpoint (the checkpoint commits with its rows). A few
kills after random delays follow as an extra (whether they land mid-sync does not count).
A final run completes and both sinks must equal the source exactly. ``CHARIOT_CRASH_SEED``
replays the random delays.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from tests.conftest import settings_env
from tests.movielens_project import RATINGS
from tests.neo4j_support import (
    assert_graph_equals_source,
    expected_graph,
    graph_checkpoints,
    graph_rows,
)
from tests.sync_support import (
    assert_postgres_equals_source,
    checkpoints,
    expected_postgres,
    postgres_rows,
    source_rows,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATINGS_ROWS = 200_000
BATCH_SIZE = 5_000  # per sink: 4 batches of movies, 4 of links, 40 of ratings, 2 of tags
# Batches each run commits per sink before it is killed: in movies, in links, then in
# ratings (36 in all, fewer than the 50 a sink needs, so every run is killed mid-sync).
PAUSES = (2, 5, 9, 13, 7)
RANDOM_KILLS = 2
PAUSE_AFTER = "CHARIOT_TEST_PAUSE_AFTER_BATCHES"
PAUSE_MARKER = "CHARIOT_TEST_PAUSE_MARKER"


def _assert_no_loss_no_duplicates(
    sink: str,
    rows: list[tuple[Any, ...]],
    expected: list[tuple[Any, ...]],
    mark: list[Any] | None,
    source_keys: list[tuple[Any, ...]],
    context: str,
) -> None:
    """``expected`` holds the shaped source rows in source key order."""
    keys = [row[:2] for row in rows]
    assert len(set(keys)) == len(keys), f"{sink}: duplicate ratings {context}"
    assert set(rows) <= set(expected), f"{sink}: rows the source does not have {context}"
    covered = source_keys.index(tuple(mark)) + 1 if mark else 0
    missing = set(expected[:covered]) - set(rows)
    assert not missing, f"{sink}: {len(missing)} rows at or below its checkpoint missing {context}"


def _check_ratings(settings: Settings, source: list[tuple[Any, ...]], context: str) -> None:
    source_keys = [row[:2] for row in source]
    pg_expected = [
        tuple(row) for row in _in_order(expected_postgres("ratings", source), source_keys)
    ]
    graph_expected = _in_order(expected_graph("ratings", source), source_keys)
    _assert_no_loss_no_duplicates(
        "postgres",
        postgres_rows(settings.postgres, "ratings"),
        pg_expected,
        checkpoints(settings.postgres).get("ratings"),
        source_keys,
        context,
    )
    _assert_no_loss_no_duplicates(
        "neo4j",
        graph_rows(settings.neo4j, "ratings"),
        graph_expected,
        graph_checkpoints(settings.neo4j).get("ratings"),
        source_keys,
        context,
    )


def _in_order(shaped: list[tuple[Any, ...]], source_keys: list[tuple[Any, ...]]) -> list[Any]:
    by_key = {row[:2]: row for row in shaped}
    return [by_key[key] for key in source_keys]


def _paused_writers(marker: Path) -> list[dict[str, Any]]:
    """The marker's complete lines: one per writer that committed its N-th batch and blocked."""
    text = marker.read_text() if marker.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _kill_when_paused(
    command: list[str], env: dict[str, str], cwd: Path, marker: Path
) -> list[dict[str, Any]]:
    """Run the sync until a writer pauses at the hook, SIGKILL it, return the marker lines."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 600
        while not _paused_writers(marker) and process.poll() is None:
            assert time.monotonic() < deadline, "no writer reached its pause within 600 s"
            time.sleep(0.05)
    finally:
        process.kill()  # SIGKILL
        _, err = process.communicate()
    assert process.returncode == -signal.SIGKILL, f"the sync ended before its pause: {err}"
    return _paused_writers(marker)  # read again: the other writer may have paused too


def _stored_checkpoint(settings: Settings, sink: str, table: str) -> list[Any] | None:
    marks = (
        checkpoints(settings.postgres) if sink == "postgres" else graph_checkpoints(settings.neo4j)
    )
    return marks.get(table)


def test_sigkill_at_chosen_points_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    from chariot.seed import seed_synthetic

    seed_synthetic(settings.mysql, RATINGS_ROWS, seed=7)
    source = source_rows(settings.mysql, RATINGS)
    assert len(source) == RATINGS_ROWS
    env = {**os.environ, **settings_env(settings), "CHARIOT_RUN__BATCH_SIZE": str(BATCH_SIZE)}
    command = [sys.executable, "-m", "chariot", "--quiet", "sync"]

    for run, batches in enumerate(PAUSES, start=1):
        marker = tmp_path / f"paused-{run}.jsonl"
        paused = _kill_when_paused(
            command, {**env, PAUSE_AFTER: str(batches), PAUSE_MARKER: str(marker)}, tmp_path, marker
        )
        context = f"after run {run}, killed after {batches} committed batches"
        for writer in paused:  # the kill came right after this commit, nothing later
            assert writer["batches"] == batches, (writer, context)
            stored = _stored_checkpoint(settings, writer["sink"], writer["table"])
            assert stored == writer["checkpoint"], (writer, stored, context)
        _check_ratings(settings, source, context)

    # An extra, not a pass/fail count: kills after random delays, wherever they land.
    seed = int(os.environ.get("CHARIOT_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    for attempt in range(RANDOM_KILLS):
        delay = rng.uniform(0.5, 6.0)
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.kill()
        _, err = process.communicate()
        assert process.returncode in (0, -signal.SIGKILL), err
        _check_ratings(
            settings, source, f"after random kill {attempt + 1} at {delay:.2f}s (seed {seed})"
        )

    final = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr
    assert_postgres_equals_source(settings.mysql, settings.postgres)
    assert_graph_equals_source(settings.mysql, settings.neo4j)
