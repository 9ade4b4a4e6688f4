"""ml-latest-small: every statistic equals the plain-SQL recomputation, whatever the executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from chariot.aggregate.runner import run_aggregation
from chariot.aggregate.verify import check_summaries
from chariot.config import Settings
from tests.test_aggregate_support import load_movielens, query, summaries, with_run

pytestmark = pytest.mark.integration


@pytest.fixture
def movielens_settings(sql_settings: Settings, movielens_dir: Path) -> Settings:
    load_movielens(sql_settings.postgres, movielens_dir)
    return with_run(sql_settings, partition_rows=4_000)


def _assert_exact(settings: Settings) -> None:
    check = check_summaries(settings, neo4j=False)
    assert check.ok, check.model_dump_json(indent=1)
    sizes = {table.name: table.rows_compared for table in check.tables}
    assert sizes == {"movie_stats": 9_724, "user_stats": 610, "genre_stats": 19}


@pytest.mark.slow
def test_inline_and_three_processes_give_the_exact_same_summaries(
    movielens_settings: Settings,
) -> None:
    inline = run_aggregation(movielens_settings, workers=1, graph=False)
    groups = {name: summary.groups for name, summary in inline.summaries.items()}
    assert (inline.executor, inline.rows_read, groups["movie_stats"], groups["user_stats"]) == (
        "inline",
        100_836,
        9_724,
        610,
    )
    assert inline.partitions_done_now == inline.partitions_total > 40  # small partitions: many
    _assert_exact(movielens_settings)
    first = summaries(movielens_settings.postgres)

    pool = run_aggregation(movielens_settings, workers=3, executor="process", graph=False)
    assert pool.run_id != inline.run_id and pool.executor == "process"
    assert len(pool.worker_reports) == 3
    assert sum(report.partitions_done for report in pool.worker_reports) == pool.partitions_total
    assert summaries(movielens_settings.postgres) == first  # bit for bit
    _assert_exact(movielens_settings)
    # Known shape of ml-latest-small: a stddev of one rating is NULL; 18 genres + none listed.
    singles = query(
        movielens_settings.postgres,
        "SELECT count(*) FILTER (WHERE rating_stddev IS NULL), "
        "count(*) FILTER (WHERE rating_count = 1) FROM {schema}.movie_stats",
    )
    assert singles[0][0] == singles[0][1] > 0


@pytest.mark.slow
def test_dask_executor_on_a_local_cluster_gives_the_same_summaries(
    movielens_settings: Settings,
) -> None:
    distributed = pytest.importorskip("distributed")
    reference = run_aggregation(movielens_settings, workers=1, graph=False)
    expected = summaries(movielens_settings.postgres)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = run_aggregation(
            movielens_settings,
            workers=2,
            executor="dask",
            scheduler=cluster.scheduler_address,
            graph=False,
        )
    assert result.run_id != reference.run_id and result.executor == "dask"
    assert result.partitions_done_now == result.partitions_total
    assert summaries(movielens_settings.postgres) == expected
    _assert_exact(movielens_settings)


def test_ratings_of_movies_missing_from_movies_are_summarised_and_reported(
    movielens_settings: Settings,
) -> None:
    query(movielens_settings.postgres, "DELETE FROM {schema}.movies WHERE movie_id IN (1, 2)")
    result = run_aggregation(
        with_run(movielens_settings, partition_rows=50_000), workers=1, graph=False
    )
    movies = result.summaries["movie_stats"]
    assert (movies.unreferenced_table, movies.unreferenced_groups) == ("movies", 2)
    assert movies.unreferenced_rows == 215 + 110  # Toy Story, Jumanji
    assert movies.groups == 9_724  # still summarised per movie
    _assert_exact(movielens_settings)
