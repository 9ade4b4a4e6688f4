"""A sync with nothing to copy stays cheap: no SQLAlchemy, the source's catalog read
straight from ``information_schema`` (and read as the inspector reads it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chariot.config import MySQLSettings, Settings
from chariot.connections import mysql_connect, source_engine
from chariot.project.reflect import reflect_schema
from chariot.project.source_catalog import catalog_schema
from tests.conftest import settings_env
from tests.sakila import load_sakila
from tests.sync_support import mysql_execute

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "examples/movielens/chariot.toml"

# Runs the CLI in this process (as the `chariot` script does) and reports what it loaded.
PROBE = """
import json, sys
from chariot.cli.app import main
try:
    main()
except SystemExit as done:
    code = done.code
loaded = [name for name in ("sqlalchemy", "neo4j") if name in sys.modules]
print(json.dumps({"exit": code, "loaded": loaded}), file=sys.stderr)
"""


def _catalog(mysql: MySQLSettings, names: list[str]) -> object:
    connection = mysql_connect(mysql)
    try:
        return catalog_schema(connection, "source", names)
    finally:
        connection.close()


def _inspected(mysql: MySQLSettings, names: list[str]) -> object:
    engine = source_engine(mysql)
    try:
        return reflect_schema(engine, "source", names)
    finally:
        engine.dispose()


def test_the_catalog_reads_sakila_as_the_inspector_does(mysql_settings: MySQLSettings) -> None:
    """Keys, unique indexes, foreign keys with their actions, nullability and every type
    Sakila has (enum, set, decimal, year, blob, timestamp ...), table by table."""
    load_sakila(mysql_settings)
    connection = mysql_connect(mysql_settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
            names = sorted(str(row[0]) for row in cursor.fetchall())
    finally:
        connection.close()
    assert len(names) == 16
    catalog, inspected = _catalog(mysql_settings, names), _inspected(mysql_settings, names)
    assert catalog is not None
    differences = [
        (name, part, getattr(table, part), getattr(inspected.tables[name], part))  # type: ignore[attr-defined]
        for name, table in catalog.tables.items()  # type: ignore[attr-defined]
        for part in ("columns", "primary_key", "unique_keys", "foreign_keys")
        if getattr(table, part) != getattr(inspected.tables[name], part)  # type: ignore[attr-defined]
    ]
    assert differences == []
    assert catalog == inspected


def test_the_catalog_leaves_what_it_cannot_read_to_the_inspector(
    mysql_settings: MySQLSettings,
) -> None:
    mysql_execute(
        mysql_settings,
        "CREATE TABLE padded (id INT(6) ZEROFILL PRIMARY KEY, note VARCHAR(10))",
        "CREATE TABLE plain (id INT PRIMARY KEY, code VARCHAR(5) NOT NULL, UNIQUE KEY (code))",
        "CREATE VIEW seen AS SELECT id FROM plain",
    )
    assert _catalog(mysql_settings, ["padded", "plain"]) is None  # zerofill: the inspector's
    catalog = _catalog(mysql_settings, ["plain", "seen", "absent"])
    assert catalog == _inspected(mysql_settings, ["plain", "seen", "absent"])
    assert list(catalog.tables) == ["plain"]  # type: ignore[attr-defined]


def _sync(settings: Settings, tmp_path: Path, *arguments: str) -> tuple[dict[str, object], str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHARIOT_")},
        **settings_env(settings),
        "CHARIOT_PROJECT": str(PROJECT),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "sync", "--json", "--sink", "postgres", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["exit"] in (0, None), done.stdout + done.stderr
    return json.loads(done.stdout), " ".join(report["loaded"])


def test_a_no_change_sync_needs_no_sqlalchemy(
    sql_settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    """The first sync reads rows (through SQLAlchemy); the second finds nothing to copy and
    checks the project, the checkpoints and the source without it."""
    from chariot.seed import seed_movielens

    seed_movielens(sql_settings.mysql, movielens_dir)
    first, loaded = _sync(sql_settings, tmp_path, "--mode", "keyset")
    assert sum(t["rows_read"] for t in first["tables"]) > 0  # type: ignore[union-attr]
    assert "sqlalchemy" in loaded  # the probe can tell

    again, loaded = _sync(sql_settings, tmp_path, "--mode", "keyset")
    assert again["ok"] and not again["failures"]
    assert [t["rows_read"] for t in again["tables"]] == [0, 0, 0, 0]  # type: ignore[union-attr]
    assert "sqlalchemy" not in loaded


def test_the_log_phase_is_skipped_only_when_every_position_is_at_the_end() -> None:
    from chariot.cdc.position import LogPosition
    from chariot.sync.mode import _caught_up
    from tests.movielens_project import STREAMS_BY_NAME

    end = LogPosition("binlog.000003", 500)
    streams = [STREAMS_BY_NAME["movies"], STREAMS_BY_NAME["ratings"]]
    at_end = {"movies": end, "ratings": end, "tags": LogPosition("binlog.000001", 4)}
    results = _caught_up({"postgres": at_end, "neo4j": {}}, streams, end)
    assert results is not None
    assert [(r.sink, r.position_before, r.position_after, r.changes) for r in results] == [
        ("postgres", end.render(), end.render(), 0)
    ]
    behind = {**at_end, "ratings": LogPosition("binlog.000003", 499)}
    assert _caught_up({"postgres": at_end, "neo4j": behind}, streams, end) is None
    assert _caught_up({"postgres": {}}, streams, end) == []
