"""The canonical text of a row: one string per row that every database can build alike.

A row is compared as the values a sink holds *after* the documented transforms
(``chariot.transforms``): genres as the list the sink stores, the year parsed from the title,
ratings as numeric(2,1). Each value is encoded so no two different rows share a text:

* NULL -> ``N``; an integer or decimal -> its plain decimal text (``42``, ``3.5``);
* text -> ``<characters>:<text>`` (length-prefixed, so separators inside text are harmless);
* values joined with ``,``.

MySQL/MariaDB and PostgreSQL build that text in SQL (``CONCAT_WS`` / ``concat_ws``) and hash
it with MD5; Neo4j has no hash function, so its values are encoded here in Python with
exactly the same rules. A row's digest is the first 60 bits of the MD5 of its UTF-8 text;
a segment's checksum is the exact (arbitrary precision) sum of its rows' digests.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from chariot import transforms
from chariot.streams import STREAMS_BY_NAME, Stream

Kind = Literal["int", "decimal", "text", "textset"]
Flavor = Literal["md5", "arith"]
DIGEST_HEX = 15  # 60 bits: a positive BIGINT in PostgreSQL, an exact UNSIGNED in MySQL
SEPARATOR = ","

# MySQL: the year of a trailing "(YYYY)", the rule of transforms.YEAR_PATTERN with its ASCII
# classes spelled out. A '#' appended to the title pins the match to the very end: ICU's "$"
# (MySQL 8) also matches before a final U+2028, Python's does not. No backslashes, so the
# SQL reads the same under NO_BACKSLASH_ESCAPES.
MYSQL_YEAR_PATTERN = "[(][0-9]{4}[)][ \t\n\r\x0b\x0c]*#$"


@dataclass(frozen=True)
class Field:
    """One canonical value: its name in reports, its kind and how each database gets it."""

    name: str
    kind: Kind
    mysql: str  # expression over the source table's columns
    postgres: str  # expression over the PostgreSQL sink table's columns
    cypher: str  # expression over the Neo4j pattern's variables


@dataclass(frozen=True)
class Canonical:
    """How one stream is compared with one kind of sink."""

    stream: Stream
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # field names of the key, in key order (ints first, then text)
    # Neo4j: the pattern, the filter that makes a node part of the stream, key expressions.
    cypher_match: str
    cypher_filter: str | None = None
    # When set, the source side is encoded in Python from the raw source row (the graph
    # stores genres as a set, which SQL on MySQL cannot sort); otherwise in SQL.
    from_source_row: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None
    # "md5": digests of the canonical text. "arith": integer hashing that Cypher can compute
    # server-side (only for streams of NOT NULL numbers: the graph's ratings).
    flavor: Flavor = "md5"

    @property
    def key_fields(self) -> tuple[Field, ...]:
        by_name = {f.name: f for f in self.fields}
        return tuple(by_name[name] for name in self.key)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


# -- SQL encoders ---------------------------------------------------------------------------


def mysql_encoded(field: Field) -> str:
    if field.kind == "text":
        return f"COALESCE(CONCAT(CHAR_LENGTH({field.mysql}), ':', {field.mysql}), 'N')"
    return f"COALESCE(CAST({field.mysql} AS CHAR), 'N')"


def postgres_encoded(field: Field) -> str:
    if field.kind == "text":
        return f"COALESCE(char_length({field.postgres})::text || ':' || ({field.postgres}), 'N')"
    return f"COALESCE(({field.postgres})::text, 'N')"


def mysql_row_text(canonical: Canonical) -> str:
    return f"CONCAT_WS('{SEPARATOR}', {', '.join(mysql_encoded(f) for f in canonical.fields)})"


def postgres_row_text(canonical: Canonical) -> str:
    return f"concat_ws('{SEPARATOR}', {', '.join(postgres_encoded(f) for f in canonical.fields)})"


def mysql_digest(canonical: Canonical) -> str:
    """The row digest as an exact unsigned integer (SUM of them is an exact DECIMAL)."""
    return f"CAST(CONV(LEFT(MD5({mysql_row_text(canonical)}), {DIGEST_HEX}), 16, 10) AS UNSIGNED)"


def postgres_digest(canonical: Canonical) -> str:
    """The same 60 bits as a bigint (sum() of bigint is an exact numeric)."""
    return f"('x' || left(md5({postgres_row_text(canonical)}), {DIGEST_HEX}))::bit(60)::bigint"


# -- Python encoders (Neo4j values, and source rows that SQL cannot canonicalise) -----------


def encode_value(kind: Kind, value: Any) -> str:
    """One value's canonical text; a value of the wrong type never encodes like a right one."""
    if value is None:
        return "N"
    if kind == "int":
        return str(value) if type(value) is int else f"?{value!r}"
    if kind == "decimal":
        return _decimal_text(value)
    if kind == "textset":
        return _text(GENRE_JOIN.join(sorted(set(value)))) if _is_strings(value) else f"?{value!r}"
    return _text(value) if isinstance(value, str) else f"?{value!r}"


def _text(value: str) -> str:
    return f"{len(value)}:{value}"


def _is_strings(value: Any) -> bool:
    return isinstance(value, list | tuple | set) and all(isinstance(v, str) for v in value)


def _decimal_text(value: Any) -> str:
    """numeric(2,1) text: the graph's float 3.5 must be exactly the double of Decimal('3.5')."""
    if isinstance(value, Decimal):
        return str(value)
    if type(value) is float and math.isfinite(value):
        text = f"{value:.1f}"
        if float(text) == value:
            return text
    return f"?{value!r}"


def row_text(canonical: Canonical, values: Sequence[Any]) -> str:
    return SEPARATOR.join(
        encode_value(f.kind, v) for f, v in zip(canonical.fields, values, strict=True)
    )


def digest(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:DIGEST_HEX], 16)


def display_value(kind: Kind, value: Any) -> Any:
    """A JSON-friendly value for reports."""
    if kind == "textset" and _is_strings(value):
        return sorted(set(value))
    if kind == "decimal" and (isinstance(value, Decimal) or type(value) is float):
        text = _decimal_text(value)
        return value if text.startswith("?") else text
    return value


# -- integer hashing (the "arith" flavor) ----------------------------------------------------
#
# Cypher has no hash function, but it has 64-bit integer arithmetic, as has MySQL. Each row's
# numbers are folded into two polynomial hashes modulo the prime 2^31 - 1 (every product
# stays below 2^62), each then mixed as x * (x + C): a non-linear step, so compensating edits
# (two ratings swapped between rows) do not cancel in the segment sum. A value of the wrong
# type in the graph counts in a separate "bad" sum that is 0 at the source. Truncated
# remainders (MySQL and Cypher agree on negatives) are made non-negative first.

ARITH_PRIME = 2_147_483_647
ARITH_BASES = (1_000_003, 65_537)
ARITH_MIX = 7_919

Mod = Callable[[str], str]  # "x modulo the prime" in one dialect


def cypher_mod(expression: str) -> str:
    return f"({expression}) % {ARITH_PRIME}"


def mysql_mod(expression: str) -> str:
    return f"MOD({expression}, {ARITH_PRIME})"  # not %: pymysql formats parameters with %


def arith_fold(values: Sequence[str], base: int, mod: Mod) -> str:
    """The polynomial hash of integer expressions, each used once."""

    def nonneg(value: str) -> str:
        return mod(f"{mod(value)} + {ARITH_PRIME}")

    x = nonneg(values[0])
    for value in values[1:]:
        x = mod(f"({x}) * {base} + {nonneg(value)}")
    return x


def arith_mix(x: str, mod: Mod) -> str:
    return mod(f"({x}) * (({x}) + {ARITH_MIX})")


def mysql_arith(canonical: Canonical) -> tuple[str, str]:
    """The two row hashes in MySQL (the source has no type errors: its columns are typed)."""
    values = [
        f"CAST({f.mysql} * 10 AS SIGNED)" if f.kind == "decimal" else f"CAST({f.mysql} AS SIGNED)"
        for f in canonical.fields
    ]
    first, second = (
        arith_mix(arith_fold(values, base, mysql_mod), mysql_mod) for base in ARITH_BASES
    )
    return first, second


def cypher_checked(field: Field, variable: str) -> str:
    """The field as an integer (tenths for decimals), or null when its type or value is wrong:
    a decimal's float must be exactly the double of a tenth."""
    if field.kind == "decimal":
        tenths = f"round({variable} * 10)"
        valid = f"{variable} IS :: FLOAT NOT NULL AND toFloat({tenths}) / 10.0 = {variable}"
        return f"CASE WHEN {valid} THEN toInteger(round({variable} * 10)) END"
    return f"CASE WHEN {variable} IS :: INTEGER NOT NULL THEN {variable} END"


def arith_total(first: int, second: int, bad: int) -> int:
    """One number per segment (or row): the three sums side by side."""
    return (int(bad) << 128) | (int(first) << 64) | int(second)


# -- the MovieLens streams -------------------------------------------------------------------

GENRE_JOIN = transforms.GENRE_SEPARATOR
_NO_GENRES = transforms.NO_GENRES.replace("'", "''")


def _int(name: str, source: str, *, cypher: str) -> Field:
    return Field(name, "int", f"`{source}`", f'"{name}"', cypher)


MOVIE_ID = _int("movie_id", "movieId", cypher="m.movieId")
USER_ID = _int("user_id", "userId", cypher="u.userId")
TITLE = Field("title", "text", "`title`", '"title"', "m.title")
# The marker, '' and NULL all mean "no genres": an empty list, which joins to ''.
MYSQL_GENRES = (
    f"CASE WHEN `genres` IS NULL OR `genres` = BINARY '{_NO_GENRES}' THEN '' ELSE `genres` END"
)
MYSQL_YEAR = (
    "CAST(NULLIF(SUBSTRING(REGEXP_SUBSTR(CONCAT(`title`, '#'), '"
    + MYSQL_YEAR_PATTERN
    + "'), 2, 4), '') AS SIGNED)"
)
YEAR = Field("year", "int", MYSQL_YEAR, '"year"', "m.year")


def _movie_row_for_graph(row: Sequence[Any]) -> tuple[Any, ...]:
    movie_id, title, genres = row
    return (movie_id, title, transforms.split_genres(genres), transforms.title_year(title))


MOVIES_SQL = Canonical(
    stream=STREAMS_BY_NAME["movies"],
    fields=(
        MOVIE_ID,
        TITLE,
        Field("genres", "text", MYSQL_GENRES, "array_to_string(\"genres\", '|')", ""),
        YEAR,
    ),
    key=("movie_id",),
    cypher_match="",
)

MOVIES_GRAPH = Canonical(
    stream=STREAMS_BY_NAME["movies"],
    fields=(
        MOVIE_ID,
        TITLE,
        Field(
            "genres",
            "textset",
            "",
            "",
            "COLLECT { MATCH (m)-[:IN_GENRE]->(g:Genre) RETURN g.name }",
        ),
        YEAR,
    ),
    key=("movie_id",),
    cypher_match="MATCH (m:Movie)",
    cypher_filter="m.title IS NOT NULL",
    from_source_row=_movie_row_for_graph,
)

LINKS = Canonical(
    stream=STREAMS_BY_NAME["links"],
    fields=(
        MOVIE_ID,
        Field("imdb_id", "text", "`imdbId`", '"imdb_id"', "m.imdbId"),
        Field("tmdb_id", "int", "`tmdbId`", '"tmdb_id"', "m.tmdbId"),
    ),
    key=("movie_id",),
    cypher_match="MATCH (m:Movie)",
    cypher_filter="(m.imdbId IS NOT NULL OR m.tmdbId IS NOT NULL)",
)

RATINGS = Canonical(
    stream=STREAMS_BY_NAME["ratings"],
    fields=(
        USER_ID,
        MOVIE_ID,
        Field("rating", "decimal", "`rating`", '"rating"', "r.rating"),
        Field("timestamp", "int", "`timestamp`", '"timestamp"', "r.timestamp"),
    ),
    key=("user_id", "movie_id"),
    cypher_match="MATCH (u:User)-[r:RATED]->(m:Movie)",
)

TAGS = Canonical(
    stream=STREAMS_BY_NAME["tags"],
    fields=(
        USER_ID,
        MOVIE_ID,
        Field("tag", "text", "`tag`", '"tag"', "t.tag"),
        Field("timestamp", "int", "`timestamp`", '"timestamp"', "t.timestamp"),
    ),
    key=("user_id", "movie_id", "tag"),
    cypher_match="MATCH (u:User)-[t:TAGGED]->(m:Movie)",
)

# The graph's ratings are numbers only: hashed by Neo4j itself, nothing shipped.
RATINGS_GRAPH = replace(RATINGS, flavor="arith")

SQL_CANONICALS = {c.stream.name: c for c in (MOVIES_SQL, LINKS, RATINGS, TAGS)}
GRAPH_CANONICALS = {c.stream.name: c for c in (MOVIES_GRAPH, LINKS, RATINGS_GRAPH, TAGS)}


def canonical_for(stream_name: str, sink_kind: str) -> Canonical:
    """``sink_kind`` is "postgres" (SQL on both sides) or "neo4j"."""
    table = GRAPH_CANONICALS if sink_kind == "neo4j" else SQL_CANONICALS
    return table[stream_name]
