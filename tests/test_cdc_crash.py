"""kill -9 of ``chariot sync --follow`` at 12 chosen moments while the source keeps changing:
no change lost, none applied twice.

The moments are chosen by test hooks, never by timing: ``CHARIOT_TEST_PAUSE_AFTER_APPLIES=N``
blocks an applier right after its N-th committed batch, ``CHARIOT_TEST_PAUSE_IN_APPLY=N``
blocks a sink inside its N-th apply transaction, before the commit; each notes it in a
marker file and the test SIGKILLs the process there. A workload thread keeps committing
transactions of 1-20 changes (inserts above and below the marks, updates, key-changing
updates, deletes, case-only changes of a text key) the whole time. After the last kill the
workload stops, one plain ``chariot sync`` catches up, and the audit must be clean.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chariot.config import Settings
from chariot.sync import sync
from tests.audit_support import audit, cypher, differences, seed_and_sync
from tests.cdc_support import start_follower
from tests.cdc_workload import ChangeWorkload
from tests.conftest import settings_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# (hook, N): where each of the 12 runs is killed.
MOMENTS = (
    ("after", 1),
    ("inside", 1),
    ("after", 3),
    ("inside", 2),
    ("after", 6),
    ("inside", 5),
    ("after", 2),
    ("inside", 3),
    ("after", 9),
    ("inside", 8),
    ("after", 4),
    ("inside", 4),
)
HOOKS = {"after": "CHARIOT_TEST_PAUSE_AFTER_APPLIES", "inside": "CHARIOT_TEST_PAUSE_IN_APPLY"}
MARKER_TIMEOUT = 300  # seconds; only a hung or crashed follower ever waits this long


def _follower(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_follower(settings, env, log)


def _wait_for_marker(marker: Path, process: subprocess.Popen[bytes], log: Path) -> dict:
    deadline = time.monotonic() + MARKER_TIMEOUT
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return json.loads(marker.read_text().splitlines()[0])
        if process.poll() is not None:
            pytest.fail(f"the follower exited ({process.returncode}): {log.read_text()[-3000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no pause within {MARKER_TIMEOUT}s: {log.read_text()[-3000:]}")


def _no_doubled_relationships(settings: Settings) -> None:
    doubled = cypher(
        settings,
        "MATCH (u:User)-[r:RATED]->(m:Movie) WITH u, m, count(r) AS n WHERE n > 1 RETURN count(*)",
    )
    assert doubled == [[0]]


def test_kill_9_of_a_follower_at_12_moments_loses_and_doubles_nothing(
    settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    seed_and_sync(settings, movielens_dir, ["postgres", "neo4j"])
    workload = ChangeWorkload(settings.mysql, seed=int(os.environ.get("CHARIOT_CRASH_SEED", 11)))
    stop = threading.Event()
    changing = threading.Thread(target=workload.run, args=(stop,), daemon=True)
    changing.start()
    log = tmp_path / "follower.log"
    try:
        for number, (hook, count) in enumerate(MOMENTS):
            marker = tmp_path / f"pause-{number}.jsonl"
            env = {HOOKS[hook]: str(count), "CHARIOT_TEST_PAUSE_MARKER": str(marker)}
            process = _follower(settings, env, log)
            paused = _wait_for_marker(marker, process, log)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            assert paused["where"] == hook
            _no_doubled_relationships(settings)
    finally:
        stop.set()
        changing.join(timeout=120)
        workload.close()
    assert workload.transactions > len(MOMENTS), "the source barely changed during the kills"

    caught_up = sync(settings)

    assert caught_up.mode == "cdc" and not caught_up.failures, caught_up.failures
    report = audit(settings)
    assert differences(report) == {}
    _no_doubled_relationships(settings)


def test_sigterm_stops_a_follower_after_the_current_transaction_with_exit_0(
    settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    seed_and_sync(settings, movielens_dir, ["postgres"])
    settings.run.sinks = ["postgres"]
    marker = tmp_path / "pause.jsonl"
    log = tmp_path / "follower.log"
    workload = ChangeWorkload(settings.mysql)
    try:
        # The applier pauses after its 2nd batch: the follower is then surely following.
        process = _follower(
            settings,
            {HOOKS["after"]: "2", "CHARIOT_TEST_PAUSE_MARKER": str(marker)},
            log,
        )
        while not marker.exists():
            workload.transaction()
            if process.poll() is not None:
                pytest.fail(log.read_text()[-3000:])
        process.kill()
        process.wait(timeout=60)
        process = _follower(settings, {}, log)
        for _ in range(20):
            workload.transaction()
        status = subprocess.run(
            [sys.executable, "-m", "chariot", "status", "--json"],
            env={**os.environ, **settings_env(settings)},
            capture_output=True,
            check=False,
        )
        captured = json.loads(status.stdout)["change_capture"]
        assert [item["sink"] for item in captured] == ["postgres"]
        assert captured[0]["lag_seconds"] is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        workload.close()
    caught_up = sync(settings, sinks=["postgres"])
    assert not caught_up.failures
    assert differences(audit(settings, sinks=("postgres",))) == {}
