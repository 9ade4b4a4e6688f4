"""Source values as Neo4j properties, per the VALUE CONTRACT (pure logic, no server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.project.column_types import NEO4J_TYPES
from chariot.sinks.neo4j.values import INT64_MAX, column_converter, converter


@pytest.mark.parametrize(
    ("neo4j", "value", "expected"),
    [
        ("integer", 7, 7),
        ("integer", True, 1),
        ("integer", b"\x01\x00", 256),  # bit(n)
        ("float", Decimal("4.99"), 4.99),
        ("string", Decimal("12345678901234567.89"), "12345678901234567.89"),
        ("string", 18446744073709551615, "18446744073709551615"),  # bigint unsigned
        ("string", '{"a": 1}', '{"a": 1}'),
        ("boolean", 1, True),
        ("boolean", 0, False),
        ("boolean", b"\x01", True),  # bit(1)
        ("date", dt.date(2006, 2, 15), dt.date(2006, 2, 15)),
        ("local datetime", dt.datetime(2006, 2, 15, 5, 3), dt.datetime(2006, 2, 15, 5, 3)),
        (
            "zoned datetime",
            dt.datetime(2006, 2, 15, 5, 3, tzinfo=dt.UTC),
            dt.datetime(2006, 2, 15, 5, 3, tzinfo=dt.UTC),
        ),
        # A reader that does not mark UTC yet: the source session runs in UTC.
        (
            "zoned datetime",
            dt.datetime(2006, 2, 15, 5, 3),
            dt.datetime(2006, 2, 15, 5, 3, tzinfo=dt.UTC),
        ),
        ("list<string>", ["Trailers", "Deleted Scenes"], ["Trailers", "Deleted Scenes"]),
        ("list<string>", "Trailers,Deleted Scenes", ["Trailers", "Deleted Scenes"]),
        ("list<string>", "", []),
        ("bytes", b"\x89PNG", b"\x89PNG"),
    ],
)
def test_values_become_the_contracts_neo4j_types(neo4j: str, value: Any, expected: Any) -> None:
    converted = converter(neo4j)(value)
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize("neo4j", NEO4J_TYPES)
def test_null_is_an_absent_property(neo4j: str) -> None:
    assert converter(neo4j)(None) is None


@settings(deadline=None)  # the first example imports the driver's time types
@given(st.timedeltas(min_value=dt.timedelta(hours=-838), max_value=dt.timedelta(hours=838)))
def test_a_time_becomes_a_duration_of_seconds(value: dt.timedelta) -> None:
    duration = converter("duration")(value)
    assert (duration.months, duration.days) == (0, 0)
    assert duration.seconds * 1_000_000 + duration.nanoseconds // 1000 == value // dt.timedelta(
        microseconds=1
    )


@pytest.mark.parametrize(
    ("neo4j", "value"),
    [("integer", INT64_MAX + 1), ("integer", Decimal("1.5")), ("boolean", "yes"), ("bytes", "x")],
)
def test_a_value_neo4j_cannot_hold_raises_value_error(neo4j: str, value: Any) -> None:
    with pytest.raises(ValueError):
        converter(neo4j)(value)


_column_values = st.lists(
    st.one_of(
        st.none(),
        st.integers(),  # beyond 64 bits too
        st.booleans(),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["integer", "float", "string"]), _column_values)
def test_a_whole_column_converts_exactly_as_its_values_one_by_one(
    neo4j: str, values: list[Any]
) -> None:
    one = converter(neo4j)
    try:
        expected = [one(value) for value in values]
    except (ValueError, TypeError, ArithmeticError) as error:
        with pytest.raises(type(error)):
            column_converter(neo4j)(values)
        return
    converted = column_converter(neo4j)(values)
    assert converted == expected
    assert [type(v) for v in converted] == [type(v) for v in expected]
