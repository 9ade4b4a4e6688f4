"""`chariot aggregate` computes from one consistent state of the sink: every worker (in any
process) reads the snapshot the command exported, and a run resumed on inputs that changed
since it started is recomputed instead of mixing two states."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chariot.aggregate.runner import run_aggregation
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.progress import Progress
from tests.test_aggregate_support import load_movielens, summaries

pytestmark = pytest.mark.integration

NEW_USER = 1_000_000


def _insert_new_ratings(settings: Settings) -> None:
    """What a sync committing in the middle of an aggregation would add."""
    schema = f'"{settings.postgres.schema_name}"'
    with postgres_connection(settings.postgres) as connection:
        connection.execute(
            f"INSERT INTO {schema}.ratings SELECT {NEW_USER}, movie_id, 5.0, 1 "
            f"FROM {schema}.movies LIMIT 500"
        )
        connection.execute(
            f"UPDATE {schema}._chariot_checkpoints SET high_water_mark = %s, "
            "updated_at = now() WHERE table_name = 'ratings'",
            (f"[{NEW_USER}, 1]",),
        )
        connection.commit()


def _with_checkpoints(settings: Settings) -> None:
    schema = f'"{settings.postgres.schema_name}"'
    with postgres_connection(settings.postgres) as connection:
        connection.execute(
            f"CREATE TABLE {schema}._chariot_checkpoints (table_name text PRIMARY KEY, "
            "high_water_mark text NOT NULL, rows_written bigint, updated_at timestamptz)"
        )
        connection.execute(
            f"INSERT INTO {schema}._chariot_checkpoints VALUES "
            "('ratings', '[610, 170875]', 100836, now()), ('movies', '[193609]', 9742, now())"
        )
        connection.commit()


@pytest.fixture
def loaded(sql_settings: Settings, movielens_dir: Path) -> Settings:
    load_movielens(sql_settings.postgres, movielens_dir)
    _with_checkpoints(sql_settings)
    return sql_settings


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_rows_committed_during_the_run_are_not_seen_by_any_worker(
    loaded: Settings, executor: str
) -> None:
    before = run_aggregation(loaded, workers=2, executor=executor, graph=False)
    expected = summaries(loaded.postgres)
    inserted: list[bool] = []

    def insert_once(event: Progress) -> None:  # called before the first round starts
        if not inserted:
            _insert_new_ratings(loaded)
            inserted.append(True)

    during = run_aggregation(
        loaded, workers=2, executor=executor, graph=False, restart=True, progress=insert_once
    )

    assert inserted and during.rows_read == before.rows_read == 100_836
    assert summaries(loaded.postgres) == expected
    assert during.input_state["ratings"][0] == "[610, 170875]"  # what it saw
    after = run_aggregation(loaded, workers=2, executor=executor, graph=False)
    assert after.rows_read == 100_836 + 500


def test_a_run_resumed_on_changed_inputs_is_recomputed(loaded: Settings) -> None:
    def interrupt(event: Progress) -> Any:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_aggregation(loaded, workers=1, executor="inline", graph=False, progress=interrupt)
    _insert_new_ratings(loaded)

    resumed = run_aggregation(loaded, workers=1, executor="inline", graph=False)

    assert resumed.resumed is False and resumed.recomputed_because is not None
    assert resumed.rows_read == 100_836 + 500
    computed = summaries(loaded.postgres)
    run_aggregation(loaded, workers=1, executor="inline", graph=False, restart=True)
    assert summaries(loaded.postgres) == computed
