"""Sources and sinks are plugins: an example sink installed from tests/ receives a sync,
and the generic SQLAlchemy source reads from PostgreSQL and SQLite."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.errors import PluginError
from chariot.plugins import load_sink
from chariot.seed import seed_movielens
from chariot.sync import sync

EXAMPLE_PLUGIN = Path(__file__).parent / "plugins" / "chariot-csv-sink"


@pytest.fixture
def csv_sink_installed() -> Iterator[None]:
    """pip-install the example plugin into this environment, and remove it afterwards."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", str(EXAMPLE_PLUGIN)], check=True
    )
    try:
        yield
    finally:
        subprocess.run([*pip, "uninstall", "-y", "chariot-csv-sink"], check=True)


def test_an_unknown_sink_names_the_installed_ones() -> None:
    with pytest.raises(PluginError) as raised:
        load_sink("no-such-sink")
    assert "postgres" in str(raised.value) and "neo4j" in str(raised.value)


@pytest.mark.integration
def test_an_installed_sink_plugin_receives_a_sync_with_no_change_to_chariot(
    csv_sink_installed: None, sql_settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import settings_env

    seed_movielens(sql_settings.mysql, movielens_dir)
    out = tmp_path / "csv-out"
    env = {**os.environ, **settings_env(sql_settings), "CHARIOT_CSV_SINK_DIR": str(out)}
    command = [
        sys.executable,
        "-m",
        "chariot",
        "sync",
        "--sink",
        "csv",
        "--table",
        "ratings",
        "--json",
    ]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    rows: list[list[str]] = []
    for path in sorted((out / "ratings").glob("batch-*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            rows.extend(list(csv.reader(handle))[1:])
    with open(movielens_dir / "ratings.csv", newline="", encoding="utf-8") as handle:
        expected = list(csv.reader(handle))[1:]
    assert len(rows) == len(expected) == 100_836
    assert sorted((int(u), int(m), r, int(t)) for u, m, r, t in rows) == sorted(
        (int(u), int(m), r, int(t)) for u, m, r, t in expected
    )
    status = subprocess.run(
        [sys.executable, "-m", "chariot", "status", "--json"],
        env={**env, "CHARIOT_RUN__SINKS": "postgres,csv"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"csv"' in status.stdout


def _sqlite_source(path: Path, movielens_dir: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE movies (movieId INTEGER PRIMARY KEY, title TEXT, genres TEXT)"
        )
        with open(movielens_dir / "movies.csv", newline="", encoding="utf-8") as handle:
            rows = [(int(m), t, g) for m, t, g in list(csv.reader(handle))[1:]]
        connection.executemany("INSERT INTO movies VALUES (?, ?, ?)", rows)


@pytest.mark.integration
def test_a_sqlite_file_works_as_a_source(
    sql_settings: Settings, movielens_dir: Path, tmp_path: Path
) -> None:
    database = tmp_path / "source.db"
    _sqlite_source(database, movielens_dir)
    settings = sql_settings.model_copy(
        update={"mysql": sql_settings.mysql.model_copy(update={"url": f"sqlite:///{database}"})}
    )

    result = sync(settings, tables=["movies"], sinks=["postgres"])

    assert result.ok
    assert result.tables[0].rows_read == 9_742
    assert _postgres_titles(settings) == _csv_titles(movielens_dir)


@pytest.mark.integration
def test_a_postgresql_database_works_as_a_source(
    sql_settings: Settings, movielens_dir: Path, postgres_settings: Any
) -> None:
    import psycopg

    from chariot.connections import postgres_connection

    source_schema = postgres_settings.schema_name + "_src"
    with postgres_connection(sql_settings.postgres, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{source_schema}"')
        connection.execute(
            f'CREATE TABLE "{source_schema}".movies '
            '("movieId" integer PRIMARY KEY, title text, genres text)'
        )
        with open(movielens_dir / "movies.csv", newline="", encoding="utf-8") as handle:
            rows = [(int(m), t, g) for m, t, g in list(csv.reader(handle))[1:]]
        with (
            connection.cursor() as cursor,
            cursor.copy(f'COPY "{source_schema}".movies FROM STDIN') as copy,
        ):
            for row in rows:
                copy.write_row(row)
    p = sql_settings.postgres
    url = (
        f"postgresql+psycopg://{p.user}:{p.password.get_secret_value()}@{p.host}:{p.port}/{p.database}"
        f"?options=-csearch_path%3D{source_schema}"
    )
    settings = sql_settings.model_copy(
        update={"mysql": sql_settings.mysql.model_copy(update={"url": url})}
    )
    try:
        result = sync(settings, tables=["movies"], sinks=["postgres"])
        assert result.ok
        assert _postgres_titles(settings) == _csv_titles(movielens_dir)
    finally:
        with psycopg.connect(
            **sql_settings.postgres.connect_kwargs(), autocommit=True
        ) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{source_schema}" CASCADE')


def _postgres_titles(settings: Settings) -> dict[int, str]:
    from chariot.connections import postgres_connection

    with postgres_connection(settings.postgres) as connection:
        rows = connection.execute(
            f'SELECT movie_id, title FROM "{settings.postgres.schema_name}".movies'
        ).fetchall()
    return {int(movie_id): title for movie_id, title in rows}


def _csv_titles(movielens_dir: Path) -> dict[int, str]:
    with open(movielens_dir / "movies.csv", newline="", encoding="utf-8") as handle:
        return {int(m): t for m, t, _ in list(csv.reader(handle))[1:]}
