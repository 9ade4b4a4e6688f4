"""The value contract's pure parts: which columns the reader converts and how, the reject
rules a column's type adds, and the PostgreSQL layout derived from a stream alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql

from chariot.project import parse_project
from chariot.project.streams import project_streams
from chariot.sinks.postgres_layout import PgTable
from chariot.sources.sql import source_table
from chariot.sources.values import (
    bit_to_int,
    column_converter,
    convert_rows,
    convert_source_rows,
    set_converter,
    stream_converters,
)
from chariot.streams import Column, Stream
from chariot.validation import reject_reason

PROJECT = """
[tables.things]
key = ["id", "code"]
[tables.things.columns]
id = { type = "int unsigned" }
code = { type = "varchar(10)" }
amount = { type = "decimal(10,2)" }
big = { type = "bigint unsigned", nullable = true }
made = { type = "date", nullable = true }
seen = { type = "datetime", nullable = true }
stamp = { type = "timestamp", nullable = true }
span = { type = "time", nullable = true }
born = { type = "year", nullable = true }
tags = { type = "set('a','b','c')" }
kind = { type = "enum('x','y')", nullable = true }
doc = { type = "json", nullable = true }
flag = { type = "bit(1)", nullable = true }
bits = { type = "bit(12)", nullable = true }
active = { type = "tinyint(1)", postgres = "boolean", neo4j = "boolean" }
level = { type = "tinyint(1)", nullable = true }
raw = { type = "blob", nullable = true }
"""


def _things() -> Stream:
    return project_streams(parse_project(PROJECT))[0]


def _column(source_type: str, postgres: str = "") -> Column:
    return Column("c", "c", "text", source_type=source_type, postgres=postgres)


def test_only_the_columns_whose_driver_value_differs_are_converted() -> None:
    converted = {_things().columns[i].source for i, _ in stream_converters(_things())}
    assert converted == {"stamp", "tags", "doc", "flag", "bits", "active"}


def test_a_stream_built_by_hand_is_not_converted() -> None:
    assert column_converter(Column("x", "x", "int")) is None
    assert convert_rows([(1, "a")], ()) == [(1, "a")]


def test_each_converter() -> None:
    def convert(source_type: str, value: Any, postgres: str = "") -> Any:
        converter = column_converter(_column(source_type, postgres))
        assert converter is not None
        return converter(value)

    assert convert("tinyint(1)", 1, "boolean") is True
    assert convert("tinyint(1)", 0, "boolean") is False
    assert column_converter(_column("tinyint(1)", "smallint")) is None
    assert convert("bit(1)", b"\x01") is True and convert("bit(1)", b"\x00") is False
    assert convert("bit(12)", b"\x0a\xaa") == 0xAAA
    assert convert("timestamp", datetime(2038, 1, 19, 3, 14, 7)) == datetime(
        2038, 1, 19, 3, 14, 7, tzinfo=UTC
    )
    assert convert("set('a','b')", "a,b") == ["a", "b"]
    assert convert("set('a','b')", "") == []
    assert convert("set('a','b')", {"b", "a"}) == ["a", "b"]  # a driver's Python set
    assert convert("json", b'{"a": 1}') == '{"a": 1}'
    for plain in ("int", "bigint unsigned", "decimal(5,2)", "date", "datetime", "time", "year"):
        assert column_converter(_column(plain)) is None, plain
    for plain in ("varchar(5)", "enum('a')", "blob", "binary(3)", "uuid", "double"):
        assert column_converter(_column(plain)) is None, plain


def test_rows_are_converted_column_by_column_and_null_stays_null() -> None:
    stream = _things()
    row = (
        1,
        "k",
        Decimal("1.50"),
        2**64 - 1,
        None,
        None,
        datetime(2020, 1, 2, 3, 4, 5),
        timedelta(hours=-838, minutes=-59, seconds=-59),
        2155,
        "a,c",
        "y",
        '{"a": 1}',
        b"\x01",
        None,
        1,
        5,
        b"\x00",
    )
    nulls = (2, "n", Decimal(0), *([None] * 6), "", None, None, None, None, 0, None, None)
    assert convert_source_rows(stream, [row, nulls]) == [
        (
            *row[:6],
            datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
            *row[7:9],
            ["a", "c"],
            "y",
            '{"a": 1}',
            True,
            None,
            True,
            5,
            b"\x00",
        ),
        (*nulls[:9], [], *nulls[10:14], False, None, None),
    ]
    assert convert_source_rows(stream, []) == []


def test_converting_twice_changes_nothing() -> None:
    """A repair may hand the sink the driver's rows or the reader's: both must come out the
    same, so each conversion leaves its own output unchanged."""
    stream = _things()
    row = (1, "k", Decimal(1), None, None, None, datetime(2020, 1, 2), None, None)
    row += ("b,c", None, "[1]", b"\x00", b"\x0f\xff", 0, 1, None)
    once = convert_source_rows(stream, [row])
    assert convert_source_rows(stream, once) == once


MEMBERS = ["Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes", "é"]


@given(st.lists(st.booleans(), min_size=len(MEMBERS), max_size=len(MEMBERS)))
def test_a_set_reads_back_as_its_members_in_the_types_order(chosen: list[bool]) -> None:
    members = [m for m, keep in zip(MEMBERS, chosen, strict=True) if keep]
    convert = set_converter(MEMBERS)
    assert convert(",".join(members)) == members
    assert convert(set(members)) == members


@given(st.integers(0, 2**64 - 1))
def test_bits_read_as_their_number(number: int) -> None:
    assert bit_to_int(number.to_bytes(8, "big")) == number
    assert bit_to_int(number) == number


# -- reject rules ----------------------------------------------------------------------------


def _reasons_sql(stream: Stream) -> str:
    reason = reject_reason(stream, source_table(stream), "mysql")
    return str(reason.compile(dialect=mysql.dialect(), compile_kwargs={"literal_binds": True}))


def test_date_columns_and_booleans_bring_their_rules() -> None:
    text = _reasons_sql(_things())
    for column in ("made", "seen", "stamp"):
        assert f"'zero date in `{column}`'" in text
        assert f"'zero year, month or day in `{column}`'" in text
    assert "'`active` is neither 0 nor 1 (stored as boolean)'" in text
    assert "`level` is neither" not in text  # smallint: any tinyint value fits
    for column in ("code", "tags", "doc", "kind"):
        assert f"'NUL character in {column}'" in text
    assert "zero date in `span`" not in text and "zero date in `born`" not in text


def test_a_stream_without_source_types_has_no_type_rules() -> None:
    stream = Stream("t", "t", (Column("id", "id", "int"), Column("d", "d", "text")), ("id",))
    assert "zero" not in _reasons_sql(stream)


# -- the PostgreSQL layout -------------------------------------------------------------------


def test_layout_follows_the_project_types() -> None:
    table = PgTable(_things(), "s")
    assert [(c.name, c.type, c.not_null) for c in table.columns] == [
        ("id", "bigint", True),
        ("code", 'text COLLATE "C"', True),
        ("amount", "numeric(10,2)", True),
        ("big", "numeric(20)", False),
        ("made", "date", False),
        ("seen", "timestamp", False),
        ("stamp", "timestamptz", False),
        ("span", "interval", False),
        ("born", "smallint", False),
        ("tags", "text[]", True),
        ("kind", "text", False),
        ("doc", "jsonb", False),
        ("flag", "boolean", False),
        ("bits", "bigint", False),
        ("active", "boolean", True),
        ("level", "smallint", False),
        ("raw", "bytea", False),
    ]
    assert table.keys == ("id", "code")
    assert all(c.expression == f'"{c.name}"' for c in table.columns)


def test_layout_of_renamed_and_transformed_columns() -> None:
    project = parse_project(
        """
[tables.items]
key = ["Id"]
transforms = [
  { rename = "Id", to = "item_id" },
  { split = "labels", delimiter = "|" },
  { extract = "title", pattern = '([0-9]+)', into = "number" },
  { cast = "number", to = "integer" },
]
[tables.items.columns]
Id = { type = "varchar(8)" }
title = { type = "varchar(20)" }
labels = { type = "text", nullable = true }
"""
    )
    table = PgTable(project_streams(project)[0], "s")
    assert [(c.name, c.type, c.not_null) for c in table.columns] == [
        ("item_id", 'text COLLATE "C"', True),
        ("title", "text", True),
        ("labels", "text[]", True),
        ("number", "integer", False),
    ]
    assert table.keys == ("item_id",)
    expressions = {c.name: c.expression for c in table.columns}
    assert expressions["item_id"] == '"item_id"'
    assert "string_to_array(\"labels\", '|')" in expressions["labels"]
    assert expressions["number"].startswith('((regexp_match("title"')


def test_a_stream_built_by_hand_stores_its_columns_as_they_are() -> None:
    stream = Stream(
        "t",
        "t",
        (
            Column("Id", "id", "int"),
            Column("Name", "name", "text"),
            Column("Score", "score", "decimal", nullable=True),
        ),
        ("Id", "Name"),
    )
    table = PgTable(stream, "s")
    assert [(c.name, c.type, c.not_null, c.expression) for c in table.columns] == [
        ("id", "integer", True, '"id"'),
        ("name", 'text COLLATE "C"', True, '"name"'),
        ("score", "numeric", False, '"score"'),
    ]
    assert table.keys == ("id", "name")
