"""Kill -9 at random moments, then run again: nothing lost, nothing duplicated, in both sinks.

A sync of 200,000 synthetic ratings (plus movies, links, tags) runs as a real
``python -m chariot sync`` process and is SIGKILLed at random moments. After every kill
each sink must hold no row the source lacks, no duplicate, and every source row up to its
own checkpoint (the checkpoint commits with its rows). A final run completes and both sinks
must equal the source exactly. ``CHARIOT_CRASH_SEED`` replays a failing sequence.
"""

from __future__ import annotations

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
from chariot.streams import RATINGS
from tests.conftest import settings_env
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
KILLS = 5


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


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    from chariot.seed import seed_synthetic

    seed_synthetic(settings.mysql, RATINGS_ROWS, seed=7)
    source = source_rows(settings.mysql, RATINGS)
    assert len(source) == RATINGS_ROWS
    seed = int(os.environ.get("CHARIOT_CRASH_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    env = {**os.environ, **settings_env(settings), "CHARIOT_RUN__BATCH_SIZE": "5000"}
    command = [sys.executable, "-m", "chariot", "--quiet", "sync"]

    kills = 0
    for attempt in range(4 * KILLS):
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        delay = rng.uniform(0.5, 6.0)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        else:  # finished before the kill: fine, but it does not count
            assert process.returncode == 0, process.stderr.read() if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        _check_ratings(
            settings, source, f"after run {attempt + 1} (killed at {delay:.2f}s, seed {seed})"
        )
        if kills == KILLS:
            break
    assert kills == KILLS, f"only {kills} runs were still going when killed (seed {seed})"

    final = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stderr
    assert_postgres_equals_source(settings.mysql, settings.postgres)
    assert_graph_equals_source(settings.mysql, settings.neo4j)
