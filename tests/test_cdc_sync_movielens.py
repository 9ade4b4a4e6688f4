"""Change capture on MovieLens: after a batch of every kind of change, one plain
``chariot sync`` carries all of them and the audit is clean, with no repair."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.sync import sync
from tests.audit_support import audit, cypher, differences, mysql, postgres, seed_and_sync

pytestmark = [pytest.mark.integration]


def _one(settings: Settings, query: str) -> tuple[Any, ...]:
    from chariot.connections import mysql_connect

    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
            assert row is not None, query
            return tuple(row)
    finally:
        connection.close()


def _every_kind_of_change(settings: Settings) -> dict[str, Any]:
    """The issue's batch: updates, deletes, a key-changing update, inserts below and above
    the old mark, a case-only change of a text key, the delete of a movie with ratings."""
    my = settings.mysql
    top_user, top_movie = _one(settings, "SELECT MAX(userId), MAX(movieId) FROM ratings")
    user, movie = _one(settings, "SELECT userId, movieId FROM ratings ORDER BY userId LIMIT 1")
    mysql(my, "UPDATE ratings SET rating = 0.5 WHERE userId=%s AND movieId=%s", (user, movie))
    gone = _one(settings, "SELECT userId, movieId FROM ratings WHERE userId = 2 LIMIT 1")
    mysql(my, "DELETE FROM ratings WHERE userId=%s AND movieId=%s", gone)
    moved = _one(
        settings,
        "SELECT r.userId, r.movieId, m.movieId FROM ratings r JOIN movies m "
        "WHERE r.userId = 3 AND NOT EXISTS (SELECT 1 FROM ratings x "
        "WHERE x.userId = 3 AND x.movieId = m.movieId) LIMIT 1",
    )
    mysql(
        my,
        "UPDATE ratings SET movieId=%s WHERE userId=%s AND movieId=%s",
        (moved[2], moved[0], moved[1]),
    )
    below = _one(
        settings,
        "SELECT m.movieId FROM movies m WHERE NOT EXISTS "
        "(SELECT 1 FROM ratings x WHERE x.userId = 1 AND x.movieId = m.movieId) LIMIT 1",
    )[0]
    mysql(my, "INSERT INTO ratings VALUES (1, %s, 4.0, 1600000000)", (below,))
    mysql(my, "INSERT INTO ratings VALUES (%s, %s, 3.5, 1600000001)", (top_user + 1, top_movie))
    tag = _one(settings, "SELECT userId, movieId, tag FROM tags WHERE tag <> UPPER(tag) LIMIT 1")
    mysql(
        my,
        "UPDATE tags SET tag = UPPER(tag) WHERE userId=%s AND movieId=%s AND tag=%s",
        tag,
    )
    mysql(my, "UPDATE movies SET title = 'Renamed (1995)' WHERE movieId = 1")
    rated = _one(
        settings,
        "SELECT movieId FROM ratings WHERE movieId <> 1 GROUP BY movieId "
        "HAVING COUNT(*) > 3 ORDER BY movieId LIMIT 1",
    )[0]
    mysql(my, "DELETE FROM links WHERE movieId = %s", (rated,))
    mysql(my, "DELETE FROM movies WHERE movieId = %s", (rated,))
    return {"deleted_movie": rated, "tag": tag}


@pytest.mark.parametrize("sinks", [["postgres"], ["postgres", "neo4j"]], ids=["pg", "both"])
def test_one_sync_carries_every_kind_of_change_and_the_audit_is_clean(
    settings: Settings, movielens_dir: Path, sinks: list[str]
) -> None:
    settings.run.sinks = sinks
    seed_and_sync(settings, movielens_dir, sinks)
    changed = _every_kind_of_change(settings)

    result = sync(settings)

    assert result.mode == "cdc", result.mode_reason
    assert not result.failures, result.failures
    assert {part.sink for part in result.changes} == set(sinks)
    assert all(part.changes == 9 for part in result.changes), result.changes
    report = audit(settings)
    assert differences(report) == {}, json.dumps(report.model_dump(mode="json"), default=str)[:3000]
    # The deleted movie's ratings stay: orphans, reported as notes, not as differences.
    orphans = postgres(
        settings.postgres,
        "SELECT count(*) FROM {s}.ratings WHERE movie_id = %s",
        (changed["deleted_movie"],),
    )
    assert orphans[0][0] > 3
    assert "neo4j" not in sinks or cypher(
        settings, "MATCH (m:Movie {movieId: $id}) RETURN m.title", id=changed["deleted_movie"]
    ) in ([], [[None]])
    user, movie, tag = changed["tag"]
    assert postgres(
        settings.postgres,
        "SELECT tag FROM {s}.tags WHERE user_id=%s AND movie_id=%s AND tag IN (%s, %s)",
        (user, movie, tag, tag.upper()),
    ) == [(tag.upper(),)]


def test_a_second_sync_with_nothing_new_applies_nothing(
    settings: Settings, movielens_dir: Path
) -> None:
    seed_and_sync(settings, movielens_dir, ["postgres"])
    first = sync(settings, sinks=["postgres"])
    second = sync(settings, sinks=["postgres"])
    assert first.mode == second.mode == "cdc"
    assert [part.changes for part in second.changes] == [0]
    assert second.changes[0].position_after is not None


def test_a_copied_table_is_carried_into_neo4j_by_the_log_alone(
    settings: Settings, movielens_dir: Path
) -> None:
    """Once a table's copy finished after its log position, a sync skips its keyset pass
    for Neo4j: a rating inserted above the mark is written once, by the log (CREATEd:
    proven new); a full refresh copies again."""
    top_user, top_movie = _copied_then_one_new_and_one_updated(settings, movielens_dir, "neo4j")
    assert cypher(
        settings,
        "MATCH (:User {userId: $u})-[r:RATED]->(:Movie {movieId: $m}) RETURN count(r)",
        u=top_user + 1,
        m=top_movie,
    ) == [[1]]
    assert cypher(settings, "MATCH (c:ChariotCheckpoint {table: 'ratings'}) RETURN c.logMark") == [
        [f"[{top_user + 1},{top_movie}]"]
    ]
    assert differences(audit(settings)) == {}

    refreshed = sync(settings, tables=["ratings"], full_refresh=True)
    assert not refreshed.failures, refreshed.failures
    assert [t.rows_read for t in refreshed.tables] != [0]
    assert differences(audit(settings)) == {}


def test_a_copied_table_is_carried_into_postgres_by_the_log_alone(
    settings: Settings, movielens_dir: Path
) -> None:
    """The same for PostgreSQL: a table whose copy finished after its log position has no
    keyset pass; a full refresh copies again, and so does the first sync of a schema whose
    positions predate the record of finished copies (once)."""
    top_user, top_movie = _copied_then_one_new_and_one_updated(settings, movielens_dir, "postgres")
    my, pg = settings.mysql, settings.postgres
    assert differences(audit(settings)) == {}

    refreshed = sync(settings, tables=["ratings"], full_refresh=True)
    assert not refreshed.failures, refreshed.failures
    assert [t.rows_read for t in refreshed.tables] != [0]
    mysql(my, "INSERT INTO ratings VALUES (%s, %s, 2.5, 1600000002)", (top_user + 2, top_movie))
    assert [t.rows_read for t in sync(settings).tables if t.table == "ratings"] == [0]

    # Positions written before `copied` existed: one keyset pass, then the log alone.
    postgres(pg, "ALTER TABLE {s}._chariot_log_positions DROP COLUMN copied")
    mysql(my, "INSERT INTO ratings VALUES (%s, %s, 1.5, 1600000003)", (top_user + 3, top_movie))
    # (the keyset mark is still the refresh's: the row the log alone carried is read again)
    assert [t.rows_read for t in sync(settings).tables if t.table == "ratings"] == [2]
    mysql(my, "INSERT INTO ratings VALUES (%s, %s, 1.0, 1600000004)", (top_user + 4, top_movie))
    assert [t.rows_read for t in sync(settings).tables if t.table == "ratings"] == [0]
    assert differences(audit(settings)) == {}


def _copied_then_one_new_and_one_updated(
    settings: Settings, movielens_dir: Path, sink: str
) -> tuple[int, int]:
    """MovieLens copied into ``sink`` by change capture, then a rating inserted above the
    mark and one updated: one sync carries both by the log alone (no keyset pass).
    Returns the highest user and movie before the insert."""
    settings.run.sinks = [sink]
    seed_and_sync(settings, movielens_dir, [sink])
    my = settings.mysql
    top_user, top_movie = _one(settings, "SELECT MAX(userId), MAX(movieId) FROM ratings")
    user, movie = _one(settings, "SELECT userId, movieId FROM ratings ORDER BY userId LIMIT 1")
    mysql(my, "INSERT INTO ratings VALUES (%s, %s, 3.5, 1600000001)", (top_user + 1, top_movie))
    mysql(my, "UPDATE ratings SET rating = 0.5 WHERE userId=%s AND movieId=%s", (user, movie))

    result = sync(settings)

    assert result.mode == "cdc" and not result.failures, result.failures
    assert [t.rows_read for t in result.tables if t.table == "ratings"] == [0]
    assert [part.changes for part in result.changes] == [2]
    return top_user, top_movie
