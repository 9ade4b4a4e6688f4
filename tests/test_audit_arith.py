"""The graph's integer row hashes (the "arith" flavor): MySQL and Cypher hash alike, and a
changed value always changes the hash, whatever the change (a multiple of the hash's
prime modulus too)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chariot.audit.canonical import (
    ARITH_PRIMES,
    Canonical,
    arith_folds,
    arith_hash,
    arith_total,
)
from chariot.audit.forms import canonical_for
from chariot.audit.neo4j import GraphSide
from chariot.audit.segments import Segment
from chariot.audit.sides import Checksum
from chariot.audit.source import SourceSide
from chariot.config import Settings
from tests.audit_support import (
    all_digests,
    audit,
    cypher,
    differences,
    example_keys,
    mysql,
    result,
)

PRIME = 2_147_483_647  # the modulus both row hashes used: a change by it went unseen
P1, P2 = ARITH_PRIMES
LOW, HIGH = -(2**63), 2**63 - 1
# 64-bit values, with the edges and the primes' multiples that random draws never hit.
EDGES = [LOW, HIGH, LOW + 1, 0, 1, -1, P1, -P1, P2, -P2, P1**2, -(P1**2), P1 * P2, -P1 * P2]
INT64 = st.one_of(st.integers(LOW, HIGH), st.sampled_from(EDGES))
INT32 = st.integers(-(2**31), 2**31 - 1)
RATINGS = st.sampled_from([Decimal(n) / 2 for n in range(1, 11)])  # what the rules load
RATING_ROWS = st.tuples(INT32, INT32, RATINGS, INT64)
# Moves that the primes cannot see one at a time: multiples of P1, P2, P1^2, P1 * P2.
STRUCTURED = st.builds(
    lambda k, unit: k * unit,
    st.integers(-4, 4).filter(bool),
    st.sampled_from([P1, P2, P1**2, P2**2, P1 * P2, P1 * P1 * 2, 1]),
)


# -- the hash in Python ----------------------------------------------------------------------


@given(st.lists(INT64, min_size=1, max_size=5), st.data())
def test_changing_any_one_value_changes_a_fold(values: list[int], data: st.DataObject) -> None:
    """Whatever the value and the change (within 64 bits), one of the two folds moves."""
    at = data.draw(st.integers(0, len(values) - 1))
    by = data.draw(st.one_of(STRUCTURED, st.integers(-(2**64), 2**64).filter(bool)))
    moved = values[at] + by
    if not LOW <= moved <= HIGH:
        moved = values[at] - by
    if not LOW <= moved <= HIGH:
        return
    changed = [*values[:at], moved, *values[at + 1 :]]
    assert arith_folds(changed) != arith_folds(values)
    assert arith_hash(changed) != arith_hash(values)


NARROW = st.one_of(
    st.integers(-(2**60) + 1, 2**60 - 1), st.sampled_from([0, P1, -P1, P2, 2**60 - 1])
)


@given(st.lists(st.tuples(NARROW, st.booleans()), min_size=1, max_size=5), st.data())
def test_changing_one_narrow_value_within_its_range_changes_a_fold(
    fields: list[tuple[int, bool]], data: st.DataObject
) -> None:
    """Values below 2^60 enter the folds as they are: any change within that range moves
    one (``wide`` marks the others, e.g. BIGINT columns)."""
    values = [value for value, _ in fields]
    wide = [is_wide for _, is_wide in fields]
    at = data.draw(st.integers(0, len(values) - 1))
    moved = data.draw(NARROW.filter(lambda v: v != values[at]))
    changed = [*values[:at], moved, *values[at + 1 :]]
    assert arith_folds(changed, wide) != arith_folds(values, wide)


@given(st.lists(INT64, min_size=1, max_size=5))
def test_the_row_hash_is_the_product_of_the_folds_below_2_62(values: list[int]) -> None:
    """Below 2^62: MySQL's BIGINT holds it, and Cypher sums its 31-bit halves."""
    first, second = arith_folds(values)
    assert 0 <= first < P1 and 0 <= second < P2
    assert arith_hash(values) == (first + 1) * (second + 1) < 2**62


# -- MySQL, Cypher and Python agree ----------------------------------------------------------


@pytest.mark.integration
def test_a_timestamp_moved_by_the_hash_prime_is_named_by_the_audit(
    settings: Settings, movielens_dir: Path
) -> None:
    from chariot.seed import seed_movielens
    from chariot.sync import sync

    seed_movielens(settings.mysql, movielens_dir)
    loaded = sync(settings, sinks=["neo4j"], tables=["movies", "ratings"], mode="keyset")
    assert not loaded.failures, loaded.failures
    options: dict[str, Any] = {"tables": ("ratings",), "sinks": ("neo4j",), "summaries": False}
    assert audit(settings, **options).clean

    # One timestamp moved up by the prime, one down by twice the prime: equal modulo it.
    moved = {(1, 1): PRIME, (5, 1): -2 * PRIME}
    for (user, movie), by in moved.items():
        cypher(
            settings,
            "MATCH (:User {userId: $user})-[r:RATED]->(:Movie {movieId: $movie}) "
            "SET r.timestamp = r.timestamp + $by",
            user=user,
            movie=movie,
            by=by,
        )
    found = audit(settings, **options)
    assert differences(found) == {("ratings", "neo4j"): (0, 0, 2)}
    differing = result(found, "ratings", "neo4j")
    assert sorted(example_keys(differing, "differing")) == [[1, 1], [5, 1]]
    assert [e.changed for e in differing.examples] == [["timestamp"], ["timestamp"]]


@pytest.fixture
def rating_tables(settings: Settings) -> Settings:
    from chariot.seed import create_source_tables

    create_source_tables(settings.mysql)
    return settings


@pytest.mark.integration
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(RATING_ROWS, min_size=1, max_size=40, unique_by=lambda row: row[:2]))
def test_mysql_cypher_and_python_hash_every_row_alike(
    rating_tables: Settings, rows: list[tuple[int, int, Decimal, int]]
) -> None:
    _store(rating_tables, rows)
    canonical = _ratings_form()
    wide = [f.wide for f in canonical.fields]
    assert wide == [False, False, False, True]  # int, int, decimal(2,1), bigint
    at_source = all_digests(SourceSide(rating_tables, canonical))
    in_graph = all_digests(GraphSide(rating_tables, canonical))
    in_python = {
        (user, movie): arith_total(arith_hash([user, movie, int(rating * 10), stamp], wide))
        for user, movie, rating, stamp in rows
    }
    assert at_source == in_graph == in_python
    # Segment sums too (Cypher sums each hash's halves apart: no 64-bit overflow).
    whole = Segment(None, None)
    summed = Checksum(len(rows), sum(in_python.values()))
    assert _checksum(SourceSide(rating_tables, canonical), whole) == summed
    assert _checksum(GraphSide(rating_tables, canonical), whole) == summed


@pytest.mark.integration
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(RATING_ROWS, st.integers(-4, 4).filter(bool), st.integers(1, 2))
def test_a_value_moved_by_a_multiple_of_the_prime_changes_the_row_hash(
    rating_tables: Settings, row: tuple[int, int, Decimal, int], times: int, power: int
) -> None:
    """In MySQL and in Cypher: a timestamp moved by k * P or k * P^2 (still a bigint)."""
    user, movie, rating, stamp = row
    moved = stamp + times * PRIME**power
    if not -(2**63) <= moved < 2**63:
        moved = stamp - times * PRIME**power
    if not -(2**63) <= moved < 2**63:
        return
    before = _row_hashes(rating_tables, (user, movie, rating, stamp))
    after = _row_hashes(rating_tables, (user, movie, rating, moved))
    assert before[0] != after[0], "MySQL"
    assert before[1] != after[1], "Cypher"


def _row_hashes(settings: Settings, row: tuple[int, int, Decimal, int]) -> tuple[int, int]:
    """The row's hash at the source (MySQL) and in the graph (Cypher), one row each."""
    _store(settings, [row])
    canonical = _ratings_form()
    at_source = all_digests(SourceSide(settings, canonical))
    in_graph = all_digests(GraphSide(settings, canonical))
    key = (row[0], row[1])
    assert set(at_source) == set(in_graph) == {key}
    return at_source[key], in_graph[key]


def _store(settings: Settings, rows: list[tuple[int, int, Decimal, int]]) -> None:
    """Exactly these ratings in the source table and in the graph."""
    mysql(settings.mysql, "DELETE FROM ratings")
    for row in rows:
        mysql(settings.mysql, "INSERT INTO ratings VALUES (%s, %s, %s, %s)", row)
    cypher(settings, "MATCH (n) DETACH DELETE n")
    cypher(
        settings,
        "UNWIND $rows AS row MERGE (a:User {userId: row[0]}) MERGE (b:Movie {movieId: row[1]}) "
        "CREATE (a)-[:RATED {rating: row[2], timestamp: row[3]}]->(b)",
        rows=[[user, movie, float(rating), stamp] for user, movie, rating, stamp in rows],
    )


def _ratings_form() -> Canonical:
    from chariot.project.streams import default_streams

    ratings = next(s for s in default_streams() if s.name == "ratings")
    form = canonical_for(ratings, "neo4j")
    assert form is not None and form.flavor == "arith"
    return form


def _checksum(side: Any, segment: Segment) -> Checksum:
    try:
        return side.checksum(segment)  # type: ignore[no-any-return]
    finally:
        side.close()


@pytest.mark.integration
def test_a_graph_value_out_of_its_columns_range_is_a_difference_not_an_error(
    rating_tables: Settings,
) -> None:
    """Narrow fields enter the folds unreduced: a graph value beyond what the column holds
    (a huge float rating, a key at 2^63 - 1) is a "bad" value, never an overflow."""
    rows = [(1, 1, Decimal("4.0"), 10), (2, 1, Decimal("3.5"), 20)]
    _store(rating_tables, rows)
    cypher(rating_tables, "MATCH (:User {userId: 1})-[r:RATED]->() SET r.rating = 1.0e30")
    cypher(rating_tables, "MATCH (u:User {userId: 2}) SET u.userId = $top", top=2**63 - 1)
    canonical = _ratings_form()
    at_source = all_digests(SourceSide(rating_tables, canonical))
    in_graph = all_digests(GraphSide(rating_tables, canonical))
    assert set(in_graph) == {(1, 1), (2**63 - 1, 1)}
    assert in_graph[(1, 1)] != at_source[(1, 1)]
    assert in_graph[(1, 1)] >> 96 == 1 and in_graph[(2**63 - 1, 1)] >> 96 == 1  # "bad"
    whole = Segment(None, None)
    assert _checksum(GraphSide(rating_tables, canonical), whole).total >> 96 == 2
