"""The crash test's pause hook is inert unless asked, and pauses exactly at the N-th commit."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from chariot.batch import Batch
from chariot.sync.pause_hook import PAUSE_AFTER_BATCHES, PAUSE_MARKER, pause_after_commit
from tests.movielens_project import RATINGS

BATCH = Batch(RATINGS, [(1, 2, 4.0, 5)], (1, 2), [])


def test_inert_unless_the_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PAUSE_AFTER_BATCHES, raising=False)
    for committed in range(1, 4):
        pause_after_commit("postgres", BATCH, committed)  # returns at once


def test_pauses_at_the_nth_commit_after_writing_the_marker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = tmp_path / "paused.jsonl"
    monkeypatch.setenv(PAUSE_AFTER_BATCHES, "2")
    monkeypatch.setenv(PAUSE_MARKER, str(marker))
    pause_after_commit("neo4j", BATCH, 1)
    assert not marker.exists()
    writer = threading.Thread(target=pause_after_commit, args=("neo4j", BATCH, 2), daemon=True)
    writer.start()
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "no marker written"
        time.sleep(0.01)
    writer.join(timeout=0.2)
    assert writer.is_alive()  # blocked for good (a daemon thread: the test run still ends)
    assert json.loads(marker.read_text()) == {
        "sink": "neo4j",
        "table": "ratings",
        "checkpoint": [1, 2],
        "batches": 2,
    }
