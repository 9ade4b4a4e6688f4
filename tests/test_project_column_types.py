"""Type mapping: MySQL/MariaDB column types, as SQLAlchemy's inspector reports them, to the
PostgreSQL and Neo4j types Chariot writes (issue #10, item 3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import types as sa
from sqlalchemy.dialects import mysql

from chariot.project.column_types import (
    KNOWN,
    NEO4J_TYPES,
    POSTGRES_TYPE,
    SinkTypes,
    SourceType,
    UnknownSourceType,
    from_sqlalchemy,
    map_source_type,
    parse_source_type,
)

# (the inspector's type on MariaDB 10.11, our spelling, PostgreSQL, Neo4j)
CASES: list[tuple[Any, str, str, str]] = [
    (mysql.TINYINT(display_width=4), "tinyint", "smallint", "integer"),
    (mysql.TINYINT(display_width=3, unsigned=True), "tinyint unsigned", "smallint", "integer"),
    (mysql.SMALLINT(display_width=6), "smallint", "smallint", "integer"),
    (mysql.SMALLINT(display_width=5, unsigned=True), "smallint unsigned", "integer", "integer"),
    (mysql.MEDIUMINT(display_width=9), "mediumint", "integer", "integer"),
    (mysql.MEDIUMINT(display_width=8, unsigned=True), "mediumint unsigned", "integer", "integer"),
    (mysql.INTEGER(display_width=11), "int", "integer", "integer"),
    (mysql.INTEGER(display_width=10, unsigned=True), "int unsigned", "bigint", "integer"),
    (mysql.BIGINT(display_width=20), "bigint", "bigint", "integer"),
    # Beyond 2^63 - 1: numeric(20) in PostgreSQL, a string of digits in Neo4j.
    (mysql.BIGINT(display_width=20, unsigned=True), "bigint unsigned", "numeric(20)", "string"),
    (mysql.BIT(1), "bit(1)", "boolean", "boolean"),
    (mysql.BIT(8), "bit(8)", "bigint", "integer"),
    (mysql.BIT(64), "bit(64)", "numeric(20)", "string"),
    (mysql.DECIMAL(precision=4, scale=2), "decimal(4,2)", "numeric(4,2)", "float"),
    (mysql.DECIMAL(precision=15, scale=0), "decimal(15,0)", "numeric(15,0)", "float"),
    # Wider than a double holds exactly: an exact string in Neo4j.
    (mysql.DECIMAL(precision=16, scale=2), "decimal(16,2)", "numeric(16,2)", "string"),
    (mysql.DECIMAL(precision=65, scale=30), "decimal(65,30)", "numeric(65,30)", "string"),
    (
        mysql.DECIMAL(precision=10, scale=2, unsigned=True),
        "decimal(10,2) unsigned",
        "numeric(10,2)",
        "float",
    ),
    (mysql.FLOAT(), "float", "real", "float"),
    (mysql.DOUBLE(asdecimal=True), "double", "double precision", "float"),
    (sa.DATE(), "date", "date", "date"),
    (mysql.DATETIME(), "datetime", "timestamp", "local datetime"),
    (mysql.DATETIME(fsp=6), "datetime(6)", "timestamp", "local datetime"),
    (mysql.TIMESTAMP(), "timestamp", "timestamptz", "zoned datetime"),
    (mysql.TIME(), "time", "interval", "duration"),
    (mysql.TIME(fsp=3), "time(3)", "interval", "duration"),
    (mysql.YEAR(display_width=4), "year", "smallint", "integer"),
    (mysql.CHAR(length=20), "char(20)", "text", "string"),
    (mysql.VARCHAR(length=45), "varchar(45)", "text", "string"),
    (mysql.VARCHAR(length=40, collation="utf8mb3_bin"), "varchar(40)", "text", "string"),
    (mysql.TINYTEXT(), "tinytext", "text", "string"),
    (mysql.TEXT(), "text", "text", "string"),
    (mysql.MEDIUMTEXT(), "mediumtext", "text", "string"),
    (mysql.LONGTEXT(), "longtext", "text", "string"),
    (mysql.ENUM("G", "PG", "PG-13"), "enum('G','PG','PG-13')", "text", "string"),
    (mysql.SET("A", "B C"), "set('A','B C')", "text[]", "list<string>"),
    (mysql.JSON(), "json", "jsonb", "string"),  # MySQL 8 reports JSON itself
    (sa.BINARY(length=16), "binary(16)", "bytea", "bytes"),
    (sa.VARBINARY(length=20), "varbinary(20)", "bytea", "bytes"),
    (mysql.TINYBLOB(), "tinyblob", "bytea", "bytes"),
    (sa.BLOB(), "blob", "bytea", "bytes"),
    (mysql.MEDIUMBLOB(), "mediumblob", "bytea", "bytes"),
    (mysql.LONGBLOB(), "longblob", "bytea", "bytes"),
    (sa.UUID(), "uuid", "uuid", "string"),
]


@pytest.mark.parametrize(("sa_type", "spelled", "postgres", "neo4j"), CASES, ids=lambda v: str(v))
def test_inspector_type_maps_as_the_issue_lists(
    sa_type: Any, spelled: str, postgres: str, neo4j: str
) -> None:
    source = from_sqlalchemy(sa_type)
    assert source.render() == spelled
    assert map_source_type(source) == SinkTypes(postgres, neo4j)
    assert parse_source_type(spelled) == source


def test_tinyint1_is_boolean_only_when_the_data_says_so() -> None:
    for sa_type in (mysql.TINYINT(display_width=1), mysql.TINYINT(display_width=1, unsigned=True)):
        source = from_sqlalchemy(sa_type)
        assert source.is_tinyint1
        assert map_source_type(source) == SinkTypes("smallint", "integer")
        assert map_source_type(source, boolean=True) == SinkTypes("boolean", "boolean")
    assert map_source_type(parse_source_type("bool"), boolean=True) == SinkTypes(
        "boolean", "boolean"
    )
    # Other integers never become booleans.
    assert map_source_type(parse_source_type("tinyint"), boolean=True) == SinkTypes(
        "smallint", "integer"
    )


def test_mariadb_json_is_a_checked_longtext() -> None:
    longtext = mysql.LONGTEXT(charset="utf8mb4", collation="utf8mb4_bin")
    assert from_sqlalchemy(longtext).render() == "longtext"
    assert from_sqlalchemy(longtext, is_json=True) == SourceType("json")
    assert map_source_type(SourceType("json")) == SinkTypes("jsonb", "string")


@pytest.mark.parametrize("raw", ["geometry", "point", "inet6", "polygon"])
def test_types_the_inspector_does_not_know_are_unmapped(raw: str) -> None:
    source = from_sqlalchemy(sa.NullType(), raw_name=raw)
    assert source.render() == raw
    assert not source.known
    assert map_source_type(source) is None


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("INT(11)", "int"),
        ("int(10) UNSIGNED", "int unsigned"),
        ("TINYINT(1)", "tinyint(1)"),
        ("boolean", "tinyint(1)"),
        ("numeric(7,3)", "decimal(7,3)"),
        ("decimal", "decimal(10,0)"),
        ("double precision", "double"),
        ("ENUM('a','it''s')", "enum('a','it''s')"),
        ("set('x)y','z')", "set('x)y','z')"),
        ("VARCHAR(255)", "varchar(255)"),
    ],
)
def test_parse_normalises(text: str, spelled: str) -> None:
    assert parse_source_type(text).render() == spelled


@pytest.mark.parametrize("text", ["", "int(x)", "enum(a,b)", "varchar(10) zerofill", "(1)"])
def test_parse_rejects_what_is_not_a_type(text: str) -> None:
    with pytest.raises(UnknownSourceType):
        parse_source_type(text)


members = st.lists(st.text(st.characters(codec="utf-8"), max_size=8), max_size=4)


@st.composite
def source_types(draw: st.DrawFn) -> SourceType:
    name = draw(st.sampled_from([*KNOWN, "geometry"]))
    if name in ("enum", "set"):
        return SourceType(name, members=tuple(draw(members)))
    if name == "decimal":
        precision = draw(st.integers(1, 65))
        scale = draw(st.integers(0, min(precision, 30)))
        unsigned = draw(st.booleans())
        return SourceType(name, unsigned, precision=precision, scale=scale)
    unsigned = name in ("tinyint", "smallint", "mediumint", "int", "bigint") and draw(st.booleans())
    sized = name in ("bit", "char", "varchar", "binary", "varbinary", "datetime", "time")
    size = draw(st.integers(1, 64)) if sized and draw(st.booleans()) else None
    if name == "tinyint" and draw(st.booleans()):
        size = 1
    return SourceType(name, unsigned, size=size)


@given(source_types())
def test_render_and_parse_are_inverses(source: SourceType) -> None:
    assert parse_source_type(source.render()) == source


@given(source_types(), st.booleans())
def test_every_known_type_maps_to_types_the_sinks_accept(source: SourceType, boolean: bool) -> None:
    mapped = map_source_type(source, boolean=boolean)
    if not source.known:
        assert mapped is None
        return
    assert mapped is not None
    assert POSTGRES_TYPE.match(mapped.postgres)
    assert mapped.neo4j in NEO4J_TYPES
