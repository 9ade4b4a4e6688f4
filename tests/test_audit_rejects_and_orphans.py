"""`chariot audit` on a source with rows the sync rejects, rows whose movie is absent, and a
movie deleted from the source while its ratings, tags and link stay: small hand-made sources,
both real sinks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chariot.config import Settings
from tests.audit_support import audit, cypher, differences, mysql, result

pytestmark = pytest.mark.integration

SINKS = ("postgres", "neo4j")


def create_source(settings: Settings, **rows: str) -> None:
    """The four empty source tables, then ``table="(..), (..)"`` VALUES lists."""
    from chariot.seed import create_source_tables

    create_source_tables(settings.mysql)
    for table, values in rows.items():
        mysql(settings.mysql, f"INSERT INTO {table} VALUES {values}")


def sync(settings: Settings, tables: list[str] | None = None) -> None:
    from chariot.sync import sync as run_sync

    # keyset: a source change made after it is a difference for the audit, not in flight
    outcome = run_sync(settings, tables=tables, mode="keyset")
    assert not outcome.failures, outcome.failures


def audit_json(cli: Any, settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    shown = cli("audit", "--no-summaries", "--json", *args, settings=settings)
    return shown.exit_code, json.loads(shown.stdout)


def per_sink(report: dict[str, Any], table: str, field: str) -> dict[str, Any]:
    return {r["sink"]: r[field] for r in report["results"] if r["table"] == table}


# -- rows the sync rejects (symptom 6) ---------------------------------------------------------


def test_rows_the_sync_rejects_are_counted_apart_never_a_crash_or_a_difference(
    settings: Settings, cli: Any
) -> None:
    create_source(
        settings,
        movies="(1, 'Heat (1995)', 'Action|Crime'), (2, 'Jumanji (1995)', 'Adventure')",
        # A NULL rating and a NULL timestamp: both rejected by every sync.
        ratings="(1, 1, 4.0, 10), (2, 1, NULL, 11), (3, 1, 3.0, NULL), (4, 2, 2.5, 12)",
    )
    sync(settings, tables=["movies"])

    # Ratings never synced: the loadable rows are missing, the rejected ones are not, and
    # the repair writes only what a sync would write.
    code, before = audit_json(cli, settings, "--table", "ratings")
    assert code == 1, before
    assert per_sink(before, "ratings", "missing") == {"postgres": 2, "neo4j": 2}
    assert per_sink(before, "ratings", "rejected_known") == {"postgres": 2, "neo4j": 2}
    code, repaired = audit_json(cli, settings, "--table", "ratings", "--repair")
    assert code == 0, repaired
    assert repaired["repair"]["clean"]

    sync(settings)
    code, clean = audit_json(cli, settings)
    assert code == 0, clean
    assert per_sink(clean, "ratings", "rows_compared") == {"postgres": 2, "neo4j": 2}
    assert per_sink(clean, "ratings", "rejected_known") == {"postgres": 2, "neo4j": 2}

    # A row loaded, then made un-loadable in the source: the sink's copy is extra (a full
    # refresh would reject the row), the repair removes it.
    mysql(settings.mysql, "UPDATE ratings SET rating = NULL WHERE userId = 4")
    found = audit(settings, tables=("ratings",), summaries=False)
    assert differences(found) == {("ratings", sink): (0, 1, 0) for sink in SINKS}
    fixed = audit(settings, tables=("ratings",), summaries=False, repair=True)
    assert fixed.clean and differences(fixed, after_repair=True) == {}
    assert result(fixed, "ratings", "neo4j", after_repair=True).rejected_known == 3


# -- orphans: rows whose referenced row is absent in the source (symptom 12) -------------------


def test_orphans_are_reported_as_notes_with_their_keys_and_the_audit_stays_clean(
    settings: Settings, cli: Any
) -> None:
    create_source(
        settings,
        movies="(1, 'Heat (1995)', 'Action|Crime')",
        links="(1, '0113277', 949), (97, '0000097', NULL)",
        ratings="(1, 1, 4.0, 10), (1, 99, 3.0, 11), (2, 99, 2.0, 12), (3, 98, 1.0, 13)",
        tags="(1, 1, 'tense', 14), (5, 96, 'lost', 15)",
    )
    sync(settings)

    code, report = audit_json(cli, settings, "--examples", "2")
    assert code == 0, report
    assert report["ok"] and report["clean"] and report["differences"] == 0
    notes = {note["table"]: note for note in report["orphans"]}
    assert set(notes) == {"links", "ratings", "tags"}
    ratings = notes["ratings"]
    assert (ratings["references"], ratings["columns"], ratings["count"]) == (
        "movies",
        ["movieId"],
        3,
    )
    assert ratings["keys"] == [[1, 99], [2, 99]]  # the first --examples keys, in key order
    assert (notes["links"]["count"], notes["links"]["keys"]) == (1, [[97]])
    assert (notes["tags"]["count"], notes["tags"]["keys"]) == (1, [[5, 96, "lost"]])

    text = cli("audit", "--no-summaries", "--table", "ratings", settings=settings)
    assert text.exit_code == 0, text.output
    assert "3 ratings rows reference movies absent from the source" in " ".join(text.output.split())
    assert "[1, 99]" in text.output

    # Only the audited tables are checked.
    code, movies_only = audit_json(cli, settings, "--table", "movies")
    assert code == 0 and movies_only["orphans"] == []


# -- repairing a movie deleted from the source (symptom 7) -------------------------------------


def test_repairing_a_deleted_movie_keeps_what_other_rows_still_justify(
    settings: Settings,
) -> None:
    create_source(
        settings,
        movies="(1, 'Heat (1995)', 'Action|Crime'), (2, 'Jumanji (1995)', 'Adventure|Crime')",
        links="(1, '0113277', 949), (2, '0113497', 8844)",
        ratings="(1, 1, 4.0, 10), (2, 1, 3.5, 11), (1, 2, 2.0, 12)",
        tags="(3, 1, 'tense', 13)",
    )
    sync(settings)
    mysql(settings.mysql, "DELETE FROM movies WHERE movieId = 1")

    found = audit(settings, summaries=False)
    assert differences(found) == {("movies", sink): (0, 1, 0) for sink in SINKS}
    repaired = audit(settings, summaries=False, repair=True)
    assert repaired.repair is not None
    assert differences(repaired, after_repair=True) == {}, "one repair pass must be enough"
    assert repaired.clean

    # The movie's own row is gone (title, year, the genre only it had); its ratings, tag and
    # link are still on the node, which stays while they reference it.
    movie = cypher(
        settings,
        "MATCH (m:Movie {movieId: 1}) "
        "RETURN m.title, m.year, m.imdbId, m.tmdbId, COUNT { (m)-[:IN_GENRE]->() }, "
        "COUNT { ()-[:RATED]->(m) }, COUNT { ()-[:TAGGED]->(m) }",
    )
    assert movie == [[None, None, "0113277", 949, 0, 2, 1]]
    genres = cypher(settings, "MATCH (g:Genre) RETURN g.name ORDER BY g.name")
    assert genres == [["Adventure"], ["Crime"]]
    assert audit(settings, summaries=False).clean
