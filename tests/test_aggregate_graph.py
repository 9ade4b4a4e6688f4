"""Summaries on Neo4j Movie nodes: written, cleared when stale, finished after an outage."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chariot.aggregate.report import aggregation_runs
from chariot.aggregate.runner import run_aggregation
from chariot.aggregate.verify import check_summaries
from chariot.config import Settings
from chariot.connections import neo4j_session
from chariot.seed.synthetic import load_ratings_into_postgres
from tests.test_aggregate_support import query

pytestmark = pytest.mark.integration


def _movie(settings: Settings, movie_id: int) -> list[dict[str, Any]]:
    with neo4j_session(settings.neo4j) as session:
        return [
            dict(record["m"])
            for record in session.run("MATCH (m:Movie {movieId: $id}) RETURN m", id=movie_id)
        ]


def test_summaries_are_written_to_movie_nodes_and_cleared_when_stale(settings: Settings) -> None:
    load_ratings_into_postgres(settings.postgres, 5_000, seed=8)
    synced = query(
        settings.postgres,
        "SELECT movie_id FROM {schema}.ratings GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )[0][0]
    with neo4j_session(settings.neo4j) as session:  # as if `chariot sync` had written it
        session.run("CREATE (:Movie {movieId: $id, title: 'Kept'})", id=synced).consume()

    first = run_aggregation(settings, workers=1)
    assert (
        first.graph_status == "done"
        and first.graph_nodes_written == first.summaries["movie_stats"].groups
    )
    check = check_summaries(settings)
    assert check.ok, check.model_dump_json(indent=1)
    [node] = _movie(settings, synced)  # MERGEd onto the synced node, not a duplicate
    assert node["title"] == "Kept" and node["statsRunId"] == first.run_id
    assert (
        len(node["ratingHistogram"]) == 10 and sum(node["ratingHistogram"]) == node["ratingCount"]
    )

    query(settings.postgres, "DELETE FROM {schema}.ratings WHERE movie_id = %s", (synced,))
    second = run_aggregation(settings, workers=1)
    assert second.graph_nodes_cleared == 1
    [node] = _movie(settings, synced)
    assert node == {"movieId": synced, "title": "Kept"}  # every summary property removed
    assert check_summaries(settings).ok


def test_neo4j_outage_keeps_postgres_promoted_and_a_rerun_finishes_the_graph(
    settings: Settings, cli: Callable[..., Any]
) -> None:
    load_ratings_into_postgres(settings.postgres, 3_000, seed=9)
    unreachable = settings.model_copy(
        update={"neo4j": settings.neo4j.model_copy(update={"uri": "bolt://127.0.0.1:9"})}
    )

    failed = cli("aggregate", "--workers", "1", settings=unreachable)
    assert failed.exit_code == 6
    output = failed.stdout + failed.stderr
    assert "summaries of run" in output and "Neo4j" in output and "re-run" in output
    assert settings.neo4j.password.get_secret_value() not in output
    assert settings.postgres.password.get_secret_value() not in output
    assert check_summaries(settings, neo4j=False).ok  # PostgreSQL was promoted regardless
    latest = aggregation_runs(settings)[0]
    assert (latest.status, latest.graph_status) == ("done", "failed")

    finished = cli("aggregate", "--json", settings=settings)
    assert finished.exit_code == 0, finished.stdout + finished.stderr
    result = json.loads(finished.stdout)
    assert (result["action"], result["run_id"], result["graph_status"]) == (
        "graph-only",
        latest.run_id,
        "done",
    )
    assert check_summaries(settings).ok
    assert aggregation_runs(settings)[0].graph_status == "done"
