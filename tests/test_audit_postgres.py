"""`chariot audit` against a real MariaDB source and PostgreSQL sink (no Neo4j)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.audit import last_audit
from chariot.config import Settings
from tests.audit_support import (
    audit,
    differences,
    example_keys,
    mysql,
    postgres,
    result,
    seed_and_sync,
)

pytestmark = pytest.mark.integration

PG = ["postgres"]


def damage(settings: Settings) -> None:
    """One of each kind of difference, in the sink and in the source after the sync."""
    postgres(settings.postgres, "UPDATE {s}.movies SET title = 'JUMANJI (1995)' WHERE movie_id = 2")
    postgres(settings.postgres, "INSERT INTO {s}.ratings VALUES (1, 999999, 2.5, 1)")
    postgres(
        settings.postgres,
        "UPDATE {s}.tags SET tag = 'FUNNY' "
        "WHERE user_id = 2 AND movie_id = 60756 AND tag = 'funny'",
    )
    assert (
        mysql(settings.mysql, "UPDATE ratings SET rating = 0.5 WHERE userId = 1 AND movieId = 3")
        == 1
    )
    assert mysql(settings.mysql, "DELETE FROM links WHERE movieId = 5") == 1


def test_targeted_damage_is_found_exactly_then_repaired(
    sql_settings: Settings, movielens_dir: Path, cli: Any
) -> None:
    seed_and_sync(sql_settings, movielens_dir, PG, mode="keyset")
    clean = audit(sql_settings, sinks=("postgres",))
    assert clean.clean and differences(clean) == {}
    assert result(clean, "ratings", "postgres").rows_compared == 100_836

    damage(sql_settings)
    found = audit(sql_settings, sinks=("postgres",))
    assert differences(found) == {
        ("movies", "postgres"): (0, 0, 1),
        ("links", "postgres"): (0, 1, 0),
        ("ratings", "postgres"): (0, 1, 1),
        ("tags", "postgres"): (1, 1, 0),
    }
    movie = result(found, "movies", "postgres").examples[0]
    assert (movie.key, movie.changed) == ([2], ["title"])
    assert (movie.source["title"], movie.sink["title"]) == ("Jumanji (1995)", "JUMANJI (1995)")
    ratings = result(found, "ratings", "postgres")
    assert example_keys(ratings, "extra") == [[1, 999999]]
    changed = next(e for e in ratings.examples if e.kind == "differing")
    assert (changed.key, changed.changed, changed.source["rating"], changed.sink["rating"]) == (
        [1, 3],
        ["rating"],
        "0.5",
        "4.0",
    )
    assert example_keys(result(found, "links", "postgres"), "extra") == [[5]]
    tags = result(found, "tags", "postgres")
    assert example_keys(tags, "missing") == [[2, 60756, "funny"]]
    assert example_keys(tags, "extra") == [[2, 60756, "FUNNY"]]

    as_json = cli("audit", "--sink", "postgres", "--json", settings=sql_settings)
    assert as_json.exit_code == 1, as_json.output
    assert json.loads(as_json.stdout)["differences"] == 6

    repaired = audit(sql_settings, sinks=("postgres",), repair=True)
    assert repaired.repair is not None and repaired.repair.clean and repaired.clean
    assert {(a.table, a.upserted, a.deleted) for a in repaired.repair.actions} == {
        ("movies", 1, 0),
        ("links", 0, 1),
        ("ratings", 1, 1),
        ("tags", 1, 1),
    }
    assert postgres(
        sql_settings.postgres, "SELECT rating FROM {s}.ratings WHERE user_id = 1 AND movie_id = 3"
    ) == [(Decimal("0.5"),)]
    assert postgres(sql_settings.postgres, "SELECT count(*) FROM {s}.links WHERE movie_id = 5") == [
        (0,)
    ]
    again = cli("audit", "--sink", "postgres", settings=sql_settings)
    assert again.exit_code == 0, again.output
    assert "clean" in again.stdout


def test_text_keys_bisect_to_the_exact_tag(sql_settings: Settings, movielens_dir: Path) -> None:
    """Small segments force bisection through (userId, movieId, tag) bounds on both sides."""
    seed_and_sync(sql_settings, movielens_dir, PG)
    tags = postgres(
        sql_settings.postgres,
        'SELECT user_id, movie_id, tag FROM {s}.tags ORDER BY 1, 2, tag COLLATE "C"',
    )
    victims = [tags[100], tags[1500], tags[3000]]
    for user_id, movie_id, tag in victims[:2]:  # case-only changes: a missing and an extra row each
        postgres(
            sql_settings.postgres,
            "UPDATE {s}.tags SET tag = %s WHERE user_id = %s AND movie_id = %s AND tag = %s",
            (tag.swapcase(), user_id, movie_id, tag),
        )
    user_id, movie_id, tag = victims[2]  # a trailing space makes a different key too
    postgres(
        sql_settings.postgres,
        'UPDATE {s}.tags SET "timestamp" = 1 WHERE user_id = %s AND movie_id = %s AND tag = %s',
        (user_id, movie_id, tag),
    )
    postgres(
        sql_settings.postgres,
        "INSERT INTO {s}.tags VALUES (%s, %s, %s, 5)",
        (user_id, movie_id, tag + " "),
    )
    found = audit(sql_settings, sinks=("postgres",), tables=("tags",), segment_rows=64, examples=50)
    tags_result = result(found, "tags", "postgres")
    assert (tags_result.missing, tags_result.extra, tags_result.differing) == (2, 3, 1)
    assert tags_result.segments > 50
    assert sorted(map(tuple, example_keys(tags_result, "missing"))) == sorted(victims[:2])
    assert sorted(map(tuple, example_keys(tags_result, "extra"))) == sorted(
        [(u, m, t.swapcase()) for u, m, t in victims[:2]] + [(user_id, movie_id, tag + " ")]
    )
    assert example_keys(tags_result, "differing") == [list(victims[2])]
    assert audit(
        sql_settings, sinks=("postgres",), tables=("tags",), segment_rows=64, repair=True
    ).clean


def test_a_table_never_synced_is_missing_as_ranges_and_repair_fills_it(
    sql_settings: Settings, movielens_dir: Path
) -> None:
    from chariot.seed import seed_movielens
    from chariot.sync import sync

    seed_movielens(sql_settings.mysql, movielens_dir)
    sync(sql_settings, sinks=PG, tables=["movies"])
    found = audit(sql_settings, sinks=("postgres",), tables=("ratings",), examples=3)
    ratings = result(found, "ratings", "postgres")
    assert (ratings.missing, ratings.extra, ratings.differing, ratings.sink_rows) == (
        100_836,
        0,
        0,
        0,
    )
    assert example_keys(ratings, "missing") == [[1, 1], [1, 3], [1, 6]]
    repaired = audit(sql_settings, sinks=("postgres",), tables=("ratings",), repair=True)
    assert repaired.repair is not None and repaired.repair.actions[0].upserted == 100_836
    assert repaired.clean
    assert postgres(sql_settings.postgres, "SELECT count(*) FROM {s}.ratings") == [(100_836,)]


def test_rejected_rows_are_known_not_missing(sql_settings: Settings) -> None:
    from chariot.seed import create_source_tables
    from chariot.sync import sync

    create_source_tables(sql_settings.mysql)
    mysql(
        sql_settings.mysql,
        "INSERT INTO movies VALUES (1, 'Heat (1995)', 'Action|Crime'), (2, NULL, 'Drama'), "
        "(3, 'Untitled  ', '(no genres listed)'), (4, 'Ünïcødé ✓ (2001) ', '')",
    )
    sync(sql_settings, sinks=PG, tables=["movies"])
    report = audit(sql_settings, sinks=("postgres",), tables=("movies",))
    movies = result(report, "movies", "postgres")
    # The rejected row is left out of the comparison: 3 rows compared, 1 rejected.
    assert (movies.missing, movies.rejected_known, movies.rows_compared) == (0, 1, 3)
    assert report.clean


def test_sample_mode_is_labelled_and_bad_options_are_refused(
    sql_settings: Settings, movielens_dir: Path, cli: Any
) -> None:
    seed_and_sync(sql_settings, movielens_dir, PG)
    report = audit(sql_settings, sinks=("postgres",), tables=("ratings",), sample=0.25, seed=7)
    ratings = result(report, "ratings", "postgres")
    assert report.mode == "sample" and report.sample_fraction == 0.25 and ratings.sampled
    assert ratings.segments_compared == -(-ratings.segments // 4) < ratings.segments
    assert ratings.rows_compared < 100_836 and ratings.clean
    text = cli(
        "audit",
        "--sink",
        "postgres",
        "--table",
        "ratings",
        "--sample",
        "0.1",
        settings=sql_settings,
    )
    assert text.exit_code == 0 and "SAMPLE" in text.stdout and "sampled" in text.stdout
    for args in (
        ["--sample", "0"],
        ["--sample", "0.5", "--repair"],
        ["--table", "nope"],
        ["--sink", "csv"],
    ):
        refused = cli("audit", *args, "--json", settings=sql_settings)
        assert refused.exit_code == 2, (args, refused.output)
        assert json.loads(refused.stdout)["error"]["message"]


def test_status_shows_the_last_audit_and_a_missing_source_is_an_audit_error(
    sql_settings: Settings, cli: Any
) -> None:
    failed = cli("audit", "--sink", "postgres", "--json", settings=sql_settings)
    assert failed.exit_code == 7, failed.output
    error = json.loads(failed.stdout)["error"]
    assert "movies does not exist" in error["message"] and "seed" in error["hint"]
    assert sql_settings.mysql.password.get_secret_value() not in failed.output
    assert last_audit(sql_settings) is None

    from chariot.seed import create_source_tables

    create_source_tables(sql_settings.mysql)
    mysql(sql_settings.mysql, "INSERT INTO links VALUES (1, '0114709', 862), (2, '0113497', NULL)")
    report = audit(sql_settings, sinks=("postgres",), tables=("links",))
    assert differences(report) == {("links", "postgres"): (2, 0, 0)}
    stored = last_audit(sql_settings)
    assert stored is not None and stored.audit_id == report.audit_id
    assert (stored.clean, stored.differences, stored.per_table["links/postgres"]["missing"]) == (
        False,
        2,
        2,
    )
    status = cli("status", "--json", settings=sql_settings)
    assert json.loads(status.stdout)["last_audit"]["audit_id"] == report.audit_id
