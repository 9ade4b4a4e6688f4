"""A source replaced under the sinks (re-seeded smaller, or emptied) is noticed by `sync`
cheaply and named with the way out, instead of "nothing to do" and lag 0.

The guard of key-based sync: with change capture, deletes are applied and a re-seed (a
RENAME of the new tables over the old) stops the log at that statement instead
(tests/test_cdc_cli_preconditions.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.exit_codes import ExitCode
from tests.sync_support import mysql_execute, seed_movielens

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(cli: Any, sql_settings: Settings, movielens_dir: Path) -> Settings:
    sql_settings.run.mode = "keyset"
    seed_movielens(sql_settings.mysql, movielens_dir)
    assert cli("sync", "--sink", "postgres", settings=sql_settings).exit_code == 0
    return sql_settings


def test_a_source_whose_greatest_key_fell_below_the_checkpoint_is_named(
    cli: Any, synced: Settings
) -> None:
    mysql_execute(synced.mysql, "DELETE FROM ratings WHERE userId > 10")
    result = cli("sync", "--sink", "postgres", settings=synced)
    assert result.exit_code == ExitCode.DATA, result.output
    assert "chariot sync --full-refresh --table ratings" in result.stderr
    assert "Traceback" not in result.output


def test_status_names_a_sink_holding_more_rows_than_the_source(cli: Any, synced: Settings) -> None:
    mysql_execute(synced.mysql, "DELETE FROM ratings WHERE userId > 10")
    result = cli("status", "--json", settings=synced)
    notes = json.loads(result.stdout)["notes"]
    assert any(
        "chariot sync --full-refresh --table ratings --sink postgres" in note for note in notes
    ), notes
    shown = cli("status", settings=synced)
    assert "Note:" in shown.stdout and "--full-refresh --table ratings" in shown.stdout


def test_an_emptied_source_table_is_named(cli: Any, synced: Settings) -> None:
    mysql_execute(synced.mysql, "DELETE FROM tags")
    result = cli("sync", "--sink", "postgres", settings=synced)
    assert result.exit_code == ExitCode.DATA, result.output
    assert "chariot sync --full-refresh --table tags" in result.stderr


def test_one_sync_names_every_replaced_table(cli: Any, synced: Settings) -> None:
    mysql_execute(synced.mysql, "DELETE FROM ratings WHERE userId > 10", "DELETE FROM tags")
    result = cli("sync", "--sink", "postgres", settings=synced)
    assert result.exit_code == ExitCode.DATA, result.output
    for table in ("ratings", "tags"):
        assert f"chariot sync --full-refresh --table {table}" in result.stderr


def test_the_named_way_out_works(cli: Any, synced: Settings) -> None:
    mysql_execute(synced.mysql, "DELETE FROM ratings WHERE userId > 10")
    assert cli("sync", "--sink", "postgres", settings=synced).exit_code == ExitCode.DATA
    refresh = cli(
        "sync", "--full-refresh", "--table", "ratings", "--sink", "postgres", settings=synced
    )
    assert refresh.exit_code == 0, refresh.output
    assert cli("sync", "--sink", "postgres", settings=synced).exit_code == 0
    assert cli("audit", "--sink", "postgres", "--no-summaries", settings=synced).exit_code == 0
