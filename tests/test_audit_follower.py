"""`chariot audit` beside a running `chariot sync --follow`: lag is not a difference, and a
repair (or a full refresh) is refused naming the follower.

Deterministic lag: the follower runs with ``CHARIOT_TEST_PAUSE_AFTER_APPLIES=1``, so each of
its appliers blocks for good right after its first committed batch while the process keeps
its writer leases; every source transaction after that is certainly in flight. A second,
free-running follower then applies a changing source while the audit runs, and is stopped
with SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.exit_codes import ExitCode
from chariot.sync import sync
from tests.audit_support import seed_and_sync
from tests.cdc_support import start_follower
from tests.cdc_workload import ChangeWorkload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SINKS = ("postgres", "neo4j")
TIMEOUT = 300  # seconds; only a hung or crashed follower ever waits this long


def _follower(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_follower(settings, env, log)


def _alive(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.poll() is not None:
        pytest.fail(f"the follower exited ({process.returncode}): {log.read_text()[-3000:]}")


def _paused_sinks(marker: Path) -> set[str]:
    if not marker.exists():
        return set()
    lines = [line for line in marker.read_text().splitlines() if line.strip()]
    return {json.loads(line)["sink"] for line in lines}


def _audit_json(cli: Any, settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli("audit", "--json", "--examples", "3", *args, settings=settings)
    return done.exit_code, json.loads(done.stdout)


def _in_flight(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(r["table"], r["sink"]): r["in_flight"] for r in report["results"] if r["in_flight"]}


def test_audit_beside_a_paused_follower_reports_lag_and_repair_names_the_follower(
    cli: Any, settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    seed_and_sync(settings, movielens_dir, list(SINKS))
    workload = ChangeWorkload(settings.mysql, seed=5)
    marker, log = tmp_path / "pause.jsonl", tmp_path / "follower.log"
    process = _follower(
        settings,
        {"CHARIOT_TEST_PAUSE_AFTER_APPLIES": "1", "CHARIOT_TEST_PAUSE_MARKER": str(marker)},
        log,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while _paused_sinks(marker) != set(SINKS):  # each applier committed once, then blocks
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            _alive(process, log)
            workload.transaction()
            time.sleep(0.05)  # pace the source; the pause itself is the hook's, not timing
        for _ in range(20):  # certainly not applied: both appliers are blocked
            workload.transaction()
        _alive(process, log)

        code, report = _audit_json(cli, settings)

        assert code == ExitCode.OK, report
        assert report["ok"] and report["clean"] and report["differences"] == 0
        flying = _in_flight(report)
        assert {sink for _, sink in flying} == set(SINKS), report
        assert ("ratings", "postgres") in flying
        assert report["in_flight"] == sum(flying.values())
        ratings = next(
            r for r in report["results"] if (r["table"], r["sink"]) == ("ratings", "postgres")
        )
        assert ratings["in_flight_examples"] and not ratings["examples"]
        assert any("still in flight" in note and "chariot sync" in note for note in report["notes"])

        for command in (
            ("audit", "--repair", "-t", "ratings"),
            ("sync", "--full-refresh", "-t", "ratings"),
        ):
            refused = cli(*command, settings=settings)
            assert refused.exit_code == ExitCode.BUSY, (command, refused.output)
            assert "sync --follow" in refused.stderr, refused.stderr
            assert f"pid {process.pid}" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.output
        _alive(process, log)
    finally:
        process.kill()  # a paused applier never reaches SIGTERM's "after the transaction"
        process.wait(timeout=60)
        workload.close()

    caught_up = sync(settings)
    assert caught_up.mode == "cdc" and not caught_up.failures, caught_up.failures
    code, report = _audit_json(cli, settings)
    assert code == ExitCode.OK and report["differences"] == 0 and report["in_flight"] == 0, report


def test_audit_while_a_follower_applies_a_changing_source_is_clean(
    cli: Any, settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    seed_and_sync(settings, movielens_dir, list(SINKS))
    workload = ChangeWorkload(settings.mysql, seed=17)
    stop = threading.Event()
    changing = threading.Thread(target=workload.run, args=(stop,), daemon=True)
    log = tmp_path / "follower.log"
    process = _follower(settings, {}, log)
    changing.start()
    try:
        audits = []
        for _ in range(2):
            code, report = _audit_json(cli, settings)
            assert code == ExitCode.OK, report
            assert report["differences"] == 0, report
            audits.append(report)
        _alive(process, log)
        assert workload.transactions > 0, "the source did not change during the audits"
        refused = cli("audit", "--repair", settings=settings)
        assert refused.exit_code == ExitCode.BUSY, refused.output
        assert "sync --follow" in refused.stderr and f"pid {process.pid}" in refused.stderr
    finally:
        stop.set()
        changing.join(timeout=120)
        workload.close()
        process.send_signal(signal.SIGTERM)
        stopped = process.wait(timeout=120)
    assert stopped == 0, log.read_text()[-3000:]

    caught_up = sync(settings)
    assert not caught_up.failures, caught_up.failures
    code, report = _audit_json(cli, settings)
    assert code == ExitCode.OK and report["differences"] == 0 and report["in_flight"] == 0, report


def test_differences_on_keys_changed_after_a_sink_position_are_in_flight_and_others_stay(
    sql_settings: Settings,
) -> None:
    """The log between a position and the end decides, key by key: the source changes made
    after the position are in flight, a change made before it and damage done to the sink
    stay differences. (The position is given, as a sink would store it.)"""
    from chariot.audit.lagging import set_aside_in_flight
    from chariot.audit.tables import Scope, audit_tables
    from chariot.cdc.position import current_position
    from chariot.connections import mysql_connect
    from chariot.project.streams import default_streams
    from chariot.seed import create_source_tables
    from chariot.sync import select_streams
    from tests.audit_support import mysql, postgres

    settings = sql_settings
    create_source_tables(settings.mysql)
    mysql(settings.mysql, "INSERT INTO movies VALUES (1, 'Heat (1995)', 'Action'), (2, 'Up', 'X')")
    mysql(
        settings.mysql,
        "INSERT INTO ratings VALUES (1, 1, 4.0, 10), (1, 2, 3.0, 11), (2, 1, 2.0, 12),"
        " (2, 2, 1.0, 13), (3, 1, 5.0, 14)",
    )
    mysql(settings.mysql, "INSERT INTO tags VALUES (1, 1, 'tense', 15), (2, 2, 'slow', 16)")
    synced = sync(settings, sinks=["postgres"], mode="keyset")
    assert not synced.failures, synced.failures
    mysql(settings.mysql, "UPDATE ratings SET rating = 0.5 WHERE userId = 3")  # before: real
    connection = mysql_connect(settings.mysql)
    try:
        position = current_position(connection)
    finally:
        connection.close()
    mysql(settings.mysql, "UPDATE ratings SET rating = 1.5 WHERE userId = 1 AND movieId = 1")
    mysql(settings.mysql, "UPDATE ratings SET movieId = 3 WHERE userId = 1 AND movieId = 2")
    mysql(settings.mysql, "DELETE FROM ratings WHERE userId = 2 AND movieId = 1")
    mysql(settings.mysql, "INSERT INTO ratings VALUES (9, 1, 4.5, 17)")
    mysql(settings.mysql, "UPDATE tags SET tag = 'TENSE' WHERE userId = 1")
    postgres(settings.postgres, "UPDATE {s}.movies SET title = 'HEAT' WHERE movie_id = 1")

    streams = tuple(select_streams(default_streams(), None))
    scope = Scope(streams=streams, sinks=("postgres",), project_streams=streams)
    audits = audit_tables(settings, scope)
    notes = set_aside_in_flight(
        settings, scope, audits, {"postgres": {s.name: position for s in streams}}
    )

    found = {
        a.stream.name: (a.result.missing, a.result.extra, a.result.differing, a.result.in_flight)
        for a in audits
    }
    assert found == {
        "movies": (0, 0, 1, 0),
        "links": (0, 0, 0, 0),
        "ratings": (0, 0, 1, 5),  # (3, 1) changed before the position: a difference
        "tags": (0, 0, 0, 2),
    }
    ratings = next(a.result for a in audits if a.stream.name == "ratings")
    assert [e.key for e in ratings.examples] == [[3, 1]]
    assert sorted((e.kind, e.key) for e in ratings.in_flight_examples) == [
        ("differing", [1, 1]),
        ("extra", [1, 2]),
        ("extra", [2, 1]),
        ("missing", [1, 3]),
        ("missing", [9, 1]),
    ]
    assert any(note.startswith("ratings in postgres: 5 rows still in flight") for note in notes)
