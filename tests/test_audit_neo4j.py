"""`chariot audit` end to end: a real sync of ml-latest-small into PostgreSQL and Neo4j.

One test on purpose: the graph is shared by every test run on the machine (Community has one
database), so the expensive load happens once and every check runs on it in turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from tests.audit_support import (
    audit,
    cypher,
    differences,
    example_keys,
    mysql,
    postgres,
    result,
    seed_and_sync,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TABLES = ("movies", "links", "ratings", "tags")


def test_clean_sync_audits_clean_then_damage_is_found_exactly_and_repaired(
    settings: Settings, movielens_dir: Path, cli: Any
) -> None:
    # keyset: the source changes below are differences, not rows in flight
    seed_and_sync(settings, movielens_dir, ["postgres", "neo4j"], mode="keyset")
    clean = audit(settings)
    assert [(r.table, r.sink) for r in clean.results] == [
        (table, sink) for table in TABLES for sink in ("postgres", "neo4j")
    ]
    assert clean.clean and differences(clean) == {}
    assert [r.rows_compared for r in clean.results] == [
        9742,
        9742,
        9742,
        9742,
        100_836,
        100_836,
        3683,
        3683,
    ]
    assert clean.summaries.status == "no summaries yet"

    _check_summaries_are_audited(settings)

    # One of each: a deleted RATED relationship, a rating changed and a tag deleted in the
    # source after the sync, a tag whose text differs only in case, a lost genre, and a
    # rating stored with the wrong type.
    cypher(settings, "MATCH (:User {userId: 1})-[r:RATED]->(:Movie {movieId: 1}) DELETE r")
    cypher(
        settings,
        "MATCH (:User {userId: 2})-[t:TAGGED {tag: 'funny'}]->(:Movie {movieId: 60756}) "
        "SET t.tag = 'Funny'",
    )
    cypher(
        settings, "MATCH (:Movie {movieId: 2})-[g:IN_GENRE]->(:Genre {name: 'Fantasy'}) DELETE g"
    )
    cypher(
        settings, "MATCH (:User {userId: 5})-[r:RATED]->(:Movie {movieId: 1}) SET r.rating = '4.0'"
    )
    assert (
        mysql(settings.mysql, "UPDATE ratings SET rating = 1.5 WHERE userId = 1 AND movieId = 3")
        == 1
    )
    assert (
        mysql(
            settings.mysql,
            "DELETE FROM tags WHERE userId = 2 AND movieId = 60756 AND tag = 'Highly quotable'",
        )
        == 1
    )

    found = audit(settings, summaries=False)
    assert differences(found) == {
        ("movies", "neo4j"): (0, 0, 1),
        ("ratings", "postgres"): (0, 0, 1),
        ("ratings", "neo4j"): (1, 0, 2),
        ("tags", "postgres"): (0, 1, 0),
        ("tags", "neo4j"): (1, 2, 0),
    }
    graph_ratings = result(found, "ratings", "neo4j")
    assert example_keys(graph_ratings, "missing") == [[1, 1]]
    assert sorted(example_keys(graph_ratings, "differing")) == [[1, 3], [5, 1]]
    movie = result(found, "movies", "neo4j").examples[0]
    assert (movie.key, movie.changed, movie.sink["genres"]) == (
        [2],
        ["genres"],
        ["Adventure", "Children"],
    )
    graph_tags = result(found, "tags", "neo4j")
    assert example_keys(graph_tags, "missing") == [[2, 60756, "funny"]]
    assert sorted(example_keys(graph_tags, "extra")) == [
        [2, 60756, "Funny"],
        [2, 60756, "Highly quotable"],
    ]

    as_json = cli("audit", "--table", "movies", "--json", settings=settings)
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["differences"] == 1

    repaired = audit(settings, repair=True, summaries=False)
    assert repaired.repair is not None and differences(repaired, after_repair=True) == {}
    assert repaired.clean
    assert cypher(
        settings, "MATCH (:User {userId: 5})-[r:RATED]->(:Movie {movieId: 1}) RETURN r.rating"
    ) == [[4.0]]
    assert cypher(
        settings, "MATCH (:User {userId: 1})-[r:RATED]->(:Movie {movieId: 3}) RETURN r.rating"
    ) == [[1.5]]
    again = audit(settings, summaries=False)
    assert again.clean and differences(again) == {}


def _check_summaries_are_audited(settings: Settings) -> None:
    """Summaries agree after an aggregation; a tampered row in either sink is reported."""
    from chariot.aggregate.runner import run_aggregation

    run_aggregation(settings, workers=1)
    fine = audit(settings, tables=("ratings",))
    assert fine.summaries.status == "ok", fine.summaries
    postgres(
        settings.postgres,
        "UPDATE {s}.movie_stats SET rating_count = rating_count + 1 WHERE movie_id = 1",
    )
    cypher(settings, "MATCH (m:Movie {movieId: 2}) SET m.ratingMean = 0.5")
    tampered = audit(settings, tables=("ratings",))
    assert tampered.summaries.status == "differences" and not tampered.clean
    assert differences(tampered) == {}
    check = tampered.summaries.check or {}
    broken = {t["name"]: t["differences"] for t in check["tables"] if not t["ok"]}
    assert set(broken) == {"movie_stats", "neo4j:Movie"}
    assert [(d["key"], d["column"]) for d in broken["movie_stats"]] == [(1, "rating_count")]
    assert [(d["key"], d["column"]) for d in broken["neo4j:Movie"]] == [(2, "rating_mean")]
