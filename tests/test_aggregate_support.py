"""Helpers for the aggregation tests (no tests here): input tables, summaries, subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chariot.aggregate.declared import Declared, declared_aggregations
from chariot.config import PostgresSettings, Settings
from chariot.connections import postgres_connection
from chariot.project import load_project
from tests.conftest import settings_env

REPO = Path(__file__).resolve().parents[1]

INPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.movies (
        movie_id integer PRIMARY KEY, title text NOT NULL, genres text[] NOT NULL, year integer)""",
    """CREATE TABLE IF NOT EXISTS {schema}.ratings (
        user_id integer, movie_id integer, rating numeric(2,1) NOT NULL,
        "timestamp" bigint NOT NULL, PRIMARY KEY (user_id, movie_id))""",
)


def movielens_declared() -> tuple[Declared, ...]:
    """The example project's aggregations (the tests' CHARIOT_PROJECT)."""
    return declared_aggregations(load_project())


def with_run(settings: Settings, **run: Any) -> Settings:
    return settings.model_copy(update={"run": settings.run.model_copy(update=run)})


def create_input_tables(postgres: PostgresSettings) -> None:
    with postgres_connection(postgres) as connection:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{postgres.schema_name}"')
        for ddl in INPUT_DDL:
            connection.execute(ddl.format(schema=f'"{postgres.schema_name}"'))
        connection.commit()


def load_movielens(postgres: PostgresSettings, movielens_dir: Path) -> None:
    """ml-latest-small straight into the PostgreSQL sink's layout (COPY, no MySQL)."""
    import pandas as pd

    from tests.movielens_rules import split_genres, title_year

    create_input_tables(postgres)
    schema = f'"{postgres.schema_name}"'
    movies = pd.read_csv(
        movielens_dir / "movies.csv", dtype={"title": str, "genres": str}, keep_default_na=False
    )
    with postgres_connection(postgres) as connection, connection.cursor() as cursor:
        with cursor.copy(
            f"COPY {schema}.movies (movie_id, title, genres, year) FROM STDIN"
        ) as copy:
            for movie_id, title, genres in movies.itertuples(index=False):
                copy.write_row((int(movie_id), title, split_genres(genres), title_year(title)))
        with cursor.copy(
            f'COPY {schema}.ratings (user_id, movie_id, rating, "timestamp") '
            "FROM STDIN (FORMAT csv, HEADER true)"
        ) as copy:
            copy.write((movielens_dir / "ratings.csv").read_bytes())
        connection.commit()


def summaries(postgres: PostgresSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every promoted summary row (without run_id), for identity comparisons."""
    schema = f'"{postgres.schema_name}"'
    queries = {
        "movie_stats": "SELECT movie_id, rating_count, rating_mean, rating_stddev, rating_min, "
        "rating_max, rating_median, rating_histogram, first_rated_at, last_rated_at, "
        f"bayesian_average FROM {schema}.movie_stats ORDER BY 1",
        "user_stats": "SELECT user_id, rating_count, rating_mean, rating_stddev, first_rated_at, "
        f"last_rated_at FROM {schema}.user_stats ORDER BY 1",
        "genre_stats": "SELECT genre, movie_count, rating_count, rating_mean "
        f"FROM {schema}.genre_stats ORDER BY 1",
    }
    with postgres_connection(postgres) as connection:
        return {name: connection.execute(query).fetchall() for name, query in queries.items()}


def query(postgres: PostgresSettings, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with postgres_connection(postgres) as connection:
        cursor = connection.execute(sql.replace("{schema}", f'"{postgres.schema_name}"'), params)
        rows = cursor.fetchall() if cursor.description is not None else []
        connection.commit()
        return rows


def start_cli(settings: Settings, *args: str) -> subprocess.Popen[str]:
    """``python -m chariot ARGS`` in its own session (so the test can kill the whole group)."""
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "chariot", *args],
        cwd=REPO / "tests",  # no stray ./.env
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(
    process: subprocess.Popen[str], timeout: float = 300
) -> tuple[int, dict[str, Any] | None, str]:
    """Exit code, the parsed --json stdout (None if not JSON) and stderr."""
    out, err = process.communicate(timeout=timeout)
    try:
        parsed = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        parsed = None
    return process.returncode, parsed, err


def wait_for(condition: Any, *, timeout: float = 120, interval: float = 0.02) -> Any:
    """Poll ``condition()`` until it returns something truthy (the test fails on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def partition_states(postgres: PostgresSettings) -> dict[str, int]:
    rows = (
        query(postgres, "SELECT status, count(*) FROM {schema}._chariot_agg_partitions GROUP BY 1")
        if _has_jobs(postgres)
        else []
    )
    return {status: int(count) for status, count in rows}


def _has_jobs(postgres: PostgresSettings) -> bool:
    return bool(
        query(
            postgres,
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = '_chariot_agg_partitions'",
            (postgres.schema_name,),
        )
    )
