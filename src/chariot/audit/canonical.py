"""The canonical text of a row: one string per row that every database can build alike.

A row is compared as the values a sink holds *after* the project's transforms
(``stream.outputs``), each encoded by its kind (``chariot.audit.values``) so no two
different rows share a text:

* NULL -> ``N``; an integer or decimal -> its plain decimal text (``42``, ``3.5``);
* text -> ``<characters>:<text>`` (length-prefixed, so separators inside text are harmless);
* values joined with ``,``.

Which fields a table has, and how each database gets them, is derived from the stream
(``chariot.audit.forms``). MySQL/MariaDB and PostgreSQL build the text of integer, decimal
and text fields in SQL (``CONCAT_WS`` / ``concat_ws``) and hash it with MD5; a field SQL
cannot give exactly (a regular-expression capture, a timestamp, a boolean, ...) makes that
side read the values and encode them here in Python, with the same rules, as Neo4j's
values always are. A row's digest is the first 60 bits of the MD5 of its UTF-8 text.

A segment's checksum is, for a table whose row text is short and bounded (``ordered``), the
MD5 of its rows' texts joined in key order: the database hashes a segment's
text once instead of once per row (MD5 per row was most of an audit's server time). A row
text parses back unambiguously (text is length-prefixed), so two segments with different
rows never join to the same text. If two databases ever fed a segment in different orders
the checksums would differ and the rows would be compared one by one: slower, never wrong.
Other tables (a TEXT, JSON or BLOB column could make a segment's text huge) keep the exact
(arbitrary precision) sum of the rows' digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from chariot.audit.values import SQL_KINDS, Kind, display, encode
from chariot.streams import Stream

Flavor = Literal["md5", "arith"]
DIGEST_HEX = 15  # 60 bits: a positive BIGINT in PostgreSQL, an exact UNSIGNED in MySQL
SEPARATOR = ","

# A number's text, at most (a decimal(65,30) has 67 characters: one segment is still small).
NUMBER_CHARS = 70
# Ordered checksums for rows of at most this many characters: a 50,000-row segment's text
# then stays well below PostgreSQL's 1 GB limit for one value.
ORDERED_ROW_CHARS = 2_048

SourceValue = Callable[[Sequence[Any]], Any]  # a source row (contract values) -> one value


@dataclass(frozen=True)
class Field:
    """One canonical value: its name in reports, its kind and how each database gets it."""

    name: str
    kind: Kind
    mysql: str | None  # SQL over the source table's columns; None: only in Python
    postgres: str  # expression over the PostgreSQL sink table's columns
    cypher: str  # expression over the Neo4j pattern's variables
    source: SourceValue | None = None  # the value from a source row, in Python
    scale: int = 0  # decimals: places (a graph float is checked against them)
    delimiter: str = ","  # lists: the text joining their elements
    # The most characters of its SQL text (None: no known bound, e.g. TEXT or JSON).
    max_chars: int | None = NUMBER_CHARS
    # Integer hashing: whether its values can reach 2^60 (a BIGINT): such a value is folded
    # as its remainders and its quotient by the first prime, a narrow one as it is.
    wide: bool = True

    @property
    def in_sql(self) -> bool:
        return self.kind in SQL_KINDS


@dataclass(frozen=True)
class Canonical:
    """How one stream is compared with one kind of sink."""

    stream: Stream
    fields: tuple[Field, ...]
    key: tuple[str, ...]  # field names of the key, in the stream's key order
    # Neo4j: the pattern, the filter that makes a match part of the stream.
    cypher_match: str = ""
    cypher_filter: str | None = None
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

    @property
    def ordered(self) -> bool:
        """Segment checksums hash the rows' texts joined in key order (else: digest sums)."""
        chars = [f.max_chars for f in self.fields]
        return self.flavor == "md5" and None not in chars and sum(chars) <= ORDERED_ROW_CHARS  # type: ignore[arg-type]

    @property
    def source_in_sql(self) -> bool:
        """Whether MySQL can build every field's text (else the source side hashes in Python)."""
        return all(f.mysql is not None and f.in_sql for f in self.fields)

    @property
    def postgres_in_sql(self) -> bool:
        return all(f.in_sql for f in self.fields)

    def source_values(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A source row (``stream.source_columns`` order, as the value contract reads it:
        ``chariot.sources.values``) -> the fields' values."""
        return tuple(f.source(row) if f.source else None for f in self.fields)


# -- SQL encoders ---------------------------------------------------------------------------


def mysql_encoded(field: Field) -> str:
    if field.kind in ("text", "joined"):
        return f"COALESCE(CONCAT(CHAR_LENGTH({field.mysql}), ':', {field.mysql}), 'N')"
    return f"COALESCE(CAST({field.mysql} AS CHAR), 'N')"


def postgres_encoded(field: Field) -> str:
    if field.kind in ("text", "joined"):
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


# Joins an ordered segment's row texts (no escape in any dialect, whatever its SQL mode).
ROWS_SEPARATOR = ";"


def mysql_ordered(canonical: Canonical, order: str | None) -> str:
    """The MD5 (hex) of the rows' texts joined in ``order`` (None: the order the rows are
    read in, a primary-key range scan); NULL for no rows."""
    by = f" ORDER BY {order}" if order else ""
    return f"MD5(GROUP_CONCAT({mysql_row_text(canonical)}{by} SEPARATOR '{ROWS_SEPARATOR}'))"


def postgres_ordered(canonical: Canonical) -> tuple[str, str]:
    """(the row text, its aggregate over a subquery that yields ``t`` in key order)."""
    return postgres_row_text(canonical), f"md5(string_agg(t, '{ROWS_SEPARATOR}'))"


def ordered_total(hex_digest: str | None) -> int:
    """An ordered segment's checksum value: its MD5 as an integer (0 for no rows)."""
    return int(hex_digest, 16) if hex_digest else 0


def ordered_digest(texts: Iterable[str]) -> int:
    """The same in Python: ``texts`` already in key order."""
    joined = ROWS_SEPARATOR.join(texts)
    return int(hashlib.md5(joined.encode("utf-8")).hexdigest(), 16) if joined else 0


# -- Python encoders (Neo4j values, and rows that SQL cannot canonicalise) -------------------


def encode_value(field: Field, value: Any) -> str:
    return encode(field.kind, value, scale=field.scale, delimiter=field.delimiter)


def row_text(canonical: Canonical, values: Sequence[Any]) -> str:
    return SEPARATOR.join(encode_value(f, v) for f, v in zip(canonical.fields, values, strict=True))


def digest(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:DIGEST_HEX], 16)


def display_value(field: Field, value: Any) -> Any:
    """A JSON-friendly value for reports."""
    return display(field.kind, value, scale=field.scale, delimiter=field.delimiter)


# -- integer hashing (the "arith" flavor) ----------------------------------------------------
#
# Cypher has no hash function, but it has 64-bit integer arithmetic, as has MySQL. Each row's
# integers are folded into two polynomial hashes, each modulo its own prime, and the row's
# hash is their product, (x1 + 1) * (x2 + 1): exact (below 2^62), and non-linear, so
# compensating edits (two ratings swapped between rows) do not cancel in the segment sum.
# Each fold appears once in the product (a square such as x * (x + C) names x twice, and
# MySQL computed the whole fold twice: it has no common subexpressions); the + 1 keeps a
# fold of 0 from hiding the other. A value of the wrong type in the graph counts in a
# separate "bad" sum that is 0 at the source.
#
# No change of one value escapes both folds. The first fold takes each value v modulo its
# prime P1, the second modulo P2: a change d leaves both alone only if P1 * P2 (~2^62)
# divides d, impossible for a narrow column (not ``Field.wide``: an INT, a DECIMAL of at
# most 18 digits, whose values stay below 2^60 and enter the fold as they are). A wide
# value (BIGINT) enters as its remainder and, in the first fold, its truncated quotient
# (v = q * P1 + r; MySQL DIV/MOD, Cypher's integer / and %, and ``_truncated`` agree,
# negatives included): the first fold then stays only if d / P1 (give or take one) is a
# multiple of P1 too, so both stay only for d = k * P1 * P2 with -18k = 0 or +-1 modulo P1
# (P2 = P1 - 18), impossible for the 1 <= |k| <= 4 that 64-bit values allow. (With one
# prime for both, any d = P1 went unseen: a timestamp + 2^31 - 1.)
# When one fold moves, the product moves; when both do, it stays only by chance.

ARITH_PRIMES = (2_147_483_647, 2_147_483_629)  # 2^31 - 1 and 2^31 - 19
ARITH_BASES = (1_000_003, 65_537)
# Added to every fold step before the modulo, so the operand is never negative (every term
# is above -2^60) and MySQL's MOD, Cypher's % and Python's % agree; it stays below 2^62.
ARITH_OFFSET = 1 << 61
NARROW_LIMIT = 1 << 60  # a narrow field's values stay below it (``Field.wide``)
# Cypher sums 64-bit integers: it sums a row hash's two halves apart (50,000 rows of 62
# bits would overflow); ``arith_total`` puts them together.
ARITH_HALF = 1 << 31
BAD_SHIFT = 96  # a segment's hash sum stays below 2^96, its "bad" count above it


@dataclass(frozen=True)
class Dialect:
    """Integer remainder and truncating quotient in one language."""

    mod: Callable[[str, int], str]
    div: Callable[[str, int], str]


# MySQL: MOD, not %: pymysql formats parameters with %.
MYSQL = Dialect(mod=lambda x, p: f"MOD({x}, {p})", div=lambda x, p: f"({x}) DIV {p}")
CYPHER = Dialect(mod=lambda x, p: f"({x}) % {p}", div=lambda x, p: f"({x}) / {p}")


def _terms(values: Sequence[str], wide: Sequence[bool], which: int, dialect: Dialect) -> list[str]:
    prime = ARITH_PRIMES[which]
    terms = []
    for value, is_wide in zip(values, wide, strict=True):
        if not is_wide:
            terms.append(value)
            continue
        terms.append(dialect.mod(value, prime))
        if which == 0:
            terms.append(dialect.div(value, prime))
    return terms


def arith_fold(values: Sequence[str], wide: Sequence[bool], which: int, dialect: Dialect) -> str:
    """Fold ``which`` (0 or 1) of integer expressions (each a few times in the text: keep
    them cheap, e.g. columns or variables)."""
    prime, base = ARITH_PRIMES[which], ARITH_BASES[which]
    first, *rest = _terms(values, wide, which, dialect)
    x = dialect.mod(f"{first} + {ARITH_OFFSET}", prime)
    for term in rest:
        x = dialect.mod(f"({x}) * {base} + {term} + {ARITH_OFFSET}", prime)
    return x


def arith_product(first: str, second: str) -> str:
    """The row hash from its two folds (expressions or variables), each named once."""
    return f"(({first}) + 1) * (({second}) + 1)"


def mysql_arith(canonical: Canonical) -> str:
    """The row hash in MySQL (the source has no type errors: its columns are typed)."""
    values = [
        f"CAST({f.mysql} * {10**f.scale} AS SIGNED)"
        if f.kind == "decimal"
        else f"CAST({f.mysql} AS SIGNED)"
        for f in canonical.fields
    ]
    wide = [f.wide for f in canonical.fields]
    return arith_product(*(arith_fold(values, wide, which, MYSQL) for which in (0, 1)))


def _truncated(value: int, prime: int) -> tuple[int, int]:
    """(quotient, remainder) rounding toward zero, as MySQL and Cypher divide."""
    quotient = abs(value) // prime * (1 if value >= 0 else -1)
    return quotient, value - quotient * prime


def arith_folds(values: Sequence[int], wide: Sequence[bool] | None = None) -> tuple[int, int]:
    """The two folds in Python, exactly as MySQL and Cypher compute them (integers: a
    decimal in units of its last place; ``wide``: each value's ``Field.wide``, default all)."""
    widths = [True] * len(values) if wide is None else wide
    folds = []
    for which, (prime, base) in enumerate(zip(ARITH_PRIMES, ARITH_BASES, strict=True)):
        terms: list[int] = []
        for value, is_wide in zip(values, widths, strict=True):
            quotient, remainder = _truncated(value, prime)
            if not is_wide:
                terms.append(value)
            else:
                terms += [remainder, quotient] if which == 0 else [remainder]
        x = (terms[0] + ARITH_OFFSET) % prime
        for term in terms[1:]:
            x = (x * base + term + ARITH_OFFSET) % prime
        folds.append(x)
    return folds[0], folds[1]


def arith_hash(values: Sequence[int], wide: Sequence[bool] | None = None) -> int:
    """The row hash in Python (``mysql_arith`` and the graph side's Cypher)."""
    first, second = arith_folds(values, wide)
    return (first + 1) * (second + 1)


def cypher_checked(field: Field, variable: str) -> str:
    """The field as an integer (a decimal: in units of its last place), or null when its
    type or value is wrong: a decimal's float must be exactly the double of such a unit, a
    narrow field's value below 2^60 like every source value (a larger one would overflow
    the fold: a difference, never an error)."""
    limit = NARROW_LIMIT if not field.wide else 1 << 63
    if field.kind == "decimal":
        unit = 10**field.scale
        units = f"round({variable} * {unit})"
        valid = (
            f"{variable} IS :: FLOAT NOT NULL AND abs({units}) < {limit}.0"
            f" AND toFloat({units}) / {unit}.0 = {variable}"
        )
        return f"CASE WHEN {valid} THEN toInteger({units}) END"
    if field.wide:
        return f"CASE WHEN {variable} IS :: INTEGER NOT NULL THEN {variable} END"
    bounded = f"{variable} > -{limit} AND {variable} < {limit}"
    return f"CASE WHEN {variable} IS :: INTEGER NOT NULL AND {bounded} THEN {variable} END"


def arith_total(hashed: int, bad: int = 0) -> int:
    """One number per segment (or row): the sum of row hashes, the "bad" count above it."""
    return (int(bad) << BAD_SHIFT) + int(hashed)
