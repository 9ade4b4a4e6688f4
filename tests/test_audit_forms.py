"""Pure logic: each table's comparison derived from its stream, and one canonical text per
value kind that the source's and the sinks' Python values share."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chariot.audit.canonical import Canonical
from chariot.audit.forms import canonical_for
from chariot.audit.values import encode
from chariot.project.streams import default_streams


def _form(table: str, sink: str) -> Canonical:
    stream = next(s for s in default_streams() if s.name == table)
    form = canonical_for(stream, sink)
    assert form is not None
    return form


def test_movielens_forms_are_derived_from_the_example_project() -> None:
    ratings = _form("ratings", "neo4j")
    assert ratings.flavor == "arith"  # numbers only: hashed by Neo4j itself
    assert [f.cypher for f in ratings.key_fields] == ["a.userId", "b.movieId"]
    assert ratings.cypher_match == "MATCH (a:User)-[r:RATED]->(b:Movie)"
    movies = _form("movies", "neo4j")
    genres = next(f for f in movies.fields if f.name == "genres")
    assert (genres.kind, genres.delimiter) == ("textset", "|")
    assert movies.cypher_filter == "(n.title IS NOT NULL)"  # placeholders are no rows
    links = _form("links", "neo4j")
    assert links.field_names == ("movie_id", "imdb_id", "tmdb_id")
    assert links.source_in_sql  # plain int and text columns: the SQL path
    tags = _form("tags", "neo4j")
    assert [f.cypher for f in tags.key_fields] == ["a.userId", "b.movieId", "r.tag"]
    for table in ("links", "ratings", "tags"):
        assert _form(table, "postgres").source_in_sql, table
    # The year is a regular-expression capture: MySQL cannot do it exactly, Python does.
    assert not _form("movies", "postgres").source_in_sql
    assert _form("movies", "postgres").postgres_in_sql


@given(st.datetimes(timezones=st.just(UTC)), st.integers(-14 * 60, 14 * 60))
def test_a_zoned_datetime_encodes_alike_in_any_time_zone(at: datetime, minutes: int) -> None:
    shifted = at.astimezone(timezone(timedelta(minutes=minutes)))
    assert encode("timestamptz", shifted) == encode("timestamptz", at)
    assert encode("datetime", at.replace(tzinfo=None)) != encode("timestamptz", at)


def test_sink_values_encode_like_the_source_values_they_stand_for() -> None:
    from neo4j.time import Duration

    span = timedelta(hours=-838, minutes=-59, seconds=-59)
    stored = Duration(seconds=span.days * 86_400 + span.seconds, microseconds=span.microseconds)
    assert encode("duration", stored) == encode("duration", span)
    assert encode("bytes", bytearray(b"\x00\xff")) == encode("bytes", b"\x00\xff")
    assert encode("json", '{"b": 1, "a": [1.50, "x"]}') == encode("json", '{"a":[1.5,"x"],"b":1}')
    assert encode("json", '{"a": 1}') != encode("json", '{"a": "1"}')
    assert encode("decimal", Decimal("0E-8")) == "0.00000000"  # as SQL writes it
    assert encode("decimal", 1.5, scale=2) == encode("decimal", Decimal("1.50"))
    assert encode("decimal", 1.5000001, scale=2).startswith("?")


def test_values_of_another_type_never_encode_alike() -> None:
    assert encode("bool", True) != encode("bool", 1)
    assert encode("int", True) != encode("int", 1)
    assert encode("date", datetime(2024, 1, 1)) != encode("date", date(2024, 1, 1))
    assert encode("textlist", ["a", "b"]) != encode("textlist", ["b", "a"])
    assert encode("textset", ["a", "b"]) == encode("textset", ["b", "a", "a"])
    assert encode("joined", ["a", "b"]) == encode("joined", "a,b") != encode("joined", "a|b")


def test_a_decimal_too_wide_for_64_bits_is_not_hashed_as_an_integer() -> None:
    # The source side casts a decimal, in units of its last place, to a 64-bit integer: a
    # DECIMAL over 18 digits could be clipped there, so its table is compared by digests.
    stream = next(s for s in default_streams() if s.name == "ratings")
    columns = [
        replace(c, source_type="decimal(30,1)") if c.source == "rating" else c
        for c in stream.columns
    ]
    form = canonical_for(replace(stream, columns=columns), "neo4j")
    assert form is not None and form.flavor == "md5"
