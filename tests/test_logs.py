"""Structured logs (`--log-format json`) and the -q/-v switches."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.logs import JsonFormatter, configure_logging
from chariot.seed import seed_movielens


def test_json_formatter_writes_one_object_with_the_context() -> None:
    record = logging.makeLogRecord(
        {
            "name": "chariot.sync",
            "levelname": "INFO",
            "msg": "table synced",
            "table": "ratings",
            "sink": "postgres",
            "rows_read": 10,
        }
    )
    payload = json.loads(JsonFormatter().format(record))
    assert payload["message"] == "table synced"
    assert payload["level"] == "info"
    assert (payload["table"], payload["sink"], payload["rows_read"]) == ("ratings", "postgres", 10)
    assert len(payload["run_id"]) == 12


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [(-1, logging.ERROR), (0, logging.WARNING), (1, logging.INFO), (2, logging.DEBUG)],
)
def test_quiet_and_verbose_set_the_level(verbosity: int, level: int) -> None:
    configure_logging(verbosity=verbosity)
    assert logging.getLogger("chariot").level == level


@pytest.mark.integration
def test_a_sync_with_json_logs_writes_one_json_object_per_stderr_line(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)

    result = cli(
        "--log-format", "json", "sync", "--sink", "postgres", "--json", settings=sql_settings
    )

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    synced = [event for event in events if event["message"] == "table synced"]
    assert {event["table"] for event in synced} == {"movies", "links", "ratings", "tags"}
    assert all(event["run_id"] == events[0]["run_id"] for event in events)
    ratings = next(event for event in synced if event["table"] == "ratings")
    assert ratings["rows_read"] == 100_836 and ratings["seconds"] >= 0
    assert json.loads(result.stdout)["ok"] is True  # results stay on stdout, logs on stderr


def test_show_completion_prints_a_completion_script(cli: Any) -> None:
    result = cli(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert result.exit_code == 0, result.output
    assert "chariot" in result.stdout and "complete" in result.stdout
