"""Source column types and what they become in PostgreSQL and Neo4j.

A source type is written in the project file the way MySQL spells it, lower case and
without display widths (``smallint unsigned``, ``decimal(4,2)``, ``enum('G','PG')``); only
``tinyint(1)``, MySQL's boolean, keeps its width. ``parse_source_type`` and
``SourceType.render`` are exact inverses, and ``from_sqlalchemy`` reads what SQLAlchemy's
inspector reports, so ``chariot init`` and a hand-written file meet in one ``SourceType``.

Mapping rules (the reference is ``map_source_type``):

* integers widen so every value fits: ``tinyint [unsigned]`` -> smallint, ``smallint
  unsigned`` and ``mediumint [unsigned]`` -> integer, ``int unsigned`` -> bigint, ``bigint
  unsigned`` -> numeric(20). In Neo4j all are INTEGER except ``bigint unsigned`` (beyond a
  signed 64-bit integer): STRING of its decimal digits.
* ``tinyint(1)`` -> smallint, or boolean when ``chariot init`` finds only 0 and 1 in it;
  ``bit(1)`` -> boolean; ``bit(n)`` -> bigint (``bit(64)``: numeric(20) / STRING).
* ``decimal(p,s)`` -> numeric(p,s). Neo4j has no decimal: FLOAT when p <= 15 (a double holds
  every such decimal closely enough that rounding it back to s places gives the source
  value), else STRING of the exact value.
* ``float`` -> real, ``double`` -> double precision; FLOAT.
* ``date`` -> date (DATE); ``datetime`` -> timestamp (LOCAL DATETIME); ``timestamp`` ->
  timestamptz, read as UTC (ZONED DATETIME); ``time`` -> interval, as MySQL's reaches
  +-838 hours (DURATION); ``year`` -> smallint (INTEGER).
* ``char``, ``varchar``, the ``text`` family and ``enum`` -> text (STRING); ``set`` ->
  text[] (LIST<STRING>); ``json`` (MariaDB: a longtext with a ``json_valid`` CHECK) ->
  jsonb (STRING of the JSON text); ``uuid`` -> uuid (STRING).
* ``binary``, ``varbinary`` and the ``blob`` family -> bytea (BYTES).
* anything else (``geometry``, ``point``, ``inet6``, ...) has no mapping: ``chariot init``
  skips such a column with a warning in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

INTEGERS = ("tinyint", "smallint", "mediumint", "int", "bigint")
TEXTS = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext")
BINARIES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")
TEMPORALS = ("date", "datetime", "timestamp", "time", "year")
KNOWN = (
    *INTEGERS,
    "bit",
    "decimal",
    "float",
    "double",
    *TEMPORALS,
    *TEXTS,
    "enum",
    "set",
    "json",
    *BINARIES,
    "uuid",
)
# Types that take a number in parentheses we keep: lengths, bit widths, fractional seconds.
_SIZED = ("bit", "char", "varchar", "binary", "varbinary", "datetime", "timestamp", "time")
# Inspector names that are the same type under another name.
_ALIASES = {
    "integer": "int",
    "numeric": "decimal",
    "real": "double",
    "double precision": "double",
    "nchar": "char",
    "nvarchar": "varchar",
    "boolean": "tinyint(1)",
    "bool": "tinyint(1)",
}

POSTGRES_TYPES = (
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
    "boolean",
    "text",
    "text[]",
    "jsonb",
    "bytea",
    "uuid",
    "date",
    "timestamp",
    "timestamptz",
    "interval",
)
# numeric(p) and numeric(p,s) besides the plain names above.
POSTGRES_TYPE = re.compile(
    r"^(?:" + "|".join(re.escape(t) for t in POSTGRES_TYPES) + r"|numeric\(\d{1,4}(?:,\d{1,4})?\))$"
)
NEO4J_TYPES = (
    "integer",
    "float",
    "string",
    "boolean",
    "date",
    "local datetime",
    "zoned datetime",
    "duration",
    "list<string>",
    "bytes",
)
# The widest decimal a double represents well enough to be rounded back exactly.
NEO4J_FLOAT_DECIMAL_DIGITS = 15


@dataclass(frozen=True)
class SourceType:
    """One source column type, normalised (see the module docstring for the spelling)."""

    name: str
    unsigned: bool = False
    size: int | None = None  # length, bit width, fractional digits, or tinyint's (1)
    precision: int | None = None  # decimal
    scale: int | None = None  # decimal
    members: tuple[str, ...] = ()  # enum / set

    @property
    def known(self) -> bool:
        return self.name in KNOWN

    @property
    def is_tinyint1(self) -> bool:
        return self.name == "tinyint" and self.size == 1

    def render(self) -> str:
        if self.members or self.name in ("enum", "set"):
            text = f"{self.name}({','.join(_quote(m) for m in self.members)})"
        elif self.name == "decimal" and self.precision is not None:
            text = f"decimal({self.precision},{self.scale or 0})"
        elif self.size is not None:
            text = f"{self.name}({self.size})"
        else:
            text = self.name
        return text + (" unsigned" if self.unsigned else "")


@dataclass(frozen=True)
class SinkTypes:
    """What a source type becomes: a PostgreSQL type and a Neo4j property type."""

    postgres: str
    neo4j: str


class UnknownSourceType(ValueError):
    """The text is not a source type this module can read."""


def map_source_type(source: SourceType, *, boolean: bool = False) -> SinkTypes | None:
    """The sink types for ``source``; None when Chariot has no mapping for it.

    ``boolean``: a ``tinyint(1)`` whose values are only 0 and 1 (``chariot init`` checks).
    """
    name = source.name
    if name in INTEGERS:
        return _integer(source, boolean=boolean)
    if name == "bit":
        return _bit(source.size or 1)
    if name == "decimal":
        return _decimal(source.precision or 10, source.scale or 0)
    return _SIMPLE.get(name)


_SIMPLE: dict[str, SinkTypes] = {
    "float": SinkTypes("real", "float"),
    "double": SinkTypes("double precision", "float"),
    "date": SinkTypes("date", "date"),
    "datetime": SinkTypes("timestamp", "local datetime"),
    "timestamp": SinkTypes("timestamptz", "zoned datetime"),
    "time": SinkTypes("interval", "duration"),
    "year": SinkTypes("smallint", "integer"),
    **{name: SinkTypes("text", "string") for name in (*TEXTS, "enum")},
    "set": SinkTypes("text[]", "list<string>"),
    "json": SinkTypes("jsonb", "string"),
    **{name: SinkTypes("bytea", "bytes") for name in BINARIES},
    "uuid": SinkTypes("uuid", "string"),
}

# Signed and unsigned PostgreSQL types wide enough for every value of each MySQL integer.
_INTEGER_WIDTHS = {
    "tinyint": ("smallint", "smallint"),
    "smallint": ("smallint", "integer"),
    "mediumint": ("integer", "integer"),
    "int": ("integer", "bigint"),
    "bigint": ("bigint", "numeric(20)"),
}


def _integer(source: SourceType, *, boolean: bool) -> SinkTypes:
    if source.is_tinyint1 and boolean:
        return SinkTypes("boolean", "boolean")
    signed, unsigned = _INTEGER_WIDTHS[source.name]
    if source.unsigned:
        # Only bigint unsigned exceeds Neo4j's signed 64-bit integers.
        return SinkTypes(unsigned, "string" if source.name == "bigint" else "integer")
    return SinkTypes(signed, "integer")


def _bit(width: int) -> SinkTypes:
    if width == 1:
        return SinkTypes("boolean", "boolean")
    if width < 64:
        return SinkTypes("bigint", "integer")
    return SinkTypes("numeric(20)", "string")


def _decimal(precision: int, scale: int) -> SinkTypes:
    neo4j = "float" if precision <= NEO4J_FLOAT_DECIMAL_DIGITS else "string"
    return SinkTypes(f"numeric({precision},{scale})", neo4j)


# -- reading types ----------------------------------------------------------------------------

_TYPE_TEXT = re.compile(
    r"^\s*(?P<name>[a-z][a-z0-9 ]*?)\s*(?:\((?P<args>.*)\))?\s*(?P<unsigned>unsigned)?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def parsed_source_type(text: str | None) -> SourceType | None:
    """``parse_source_type`` for a column whose type may be missing or not a type: None."""
    if not text:
        return None
    try:
        return parse_source_type(text)
    except UnknownSourceType:
        return None


def parse_source_type(text: str) -> SourceType:
    """``"decimal(4,2) unsigned"`` -> ``SourceType("decimal", True, precision=4, scale=2)``.

    Unknown names parse too (``geometry``): whether they map is ``map_source_type``'s call.
    Raises ``UnknownSourceType`` for text that is not a type at all.
    """
    match = _TYPE_TEXT.match(text)
    if match is None:
        raise UnknownSourceType(f"{text!r} is not a column type")
    name = " ".join(match["name"].lower().split())
    args = match["args"]
    unsigned = match["unsigned"] is not None
    alias = _ALIASES.get(name)
    if alias == "tinyint(1)":
        return SourceType("tinyint", unsigned, size=1)
    name = alias or name
    if name in ("enum", "set"):
        return SourceType(name, members=_members(args or "", text))
    numbers = _numbers(args, text)
    if name == "decimal":
        precision = numbers[0] if numbers else 10
        scale = numbers[1] if len(numbers) > 1 else 0
        return SourceType("decimal", unsigned, precision=precision, scale=scale)
    if name == "tinyint" and numbers == [1]:
        return SourceType("tinyint", unsigned, size=1)
    size = numbers[0] if numbers and name in _SIZED else None
    return SourceType(name, unsigned, size=size)


def _numbers(args: str | None, text: str) -> list[int]:
    if not args:
        return []
    try:
        return [int(part) for part in args.split(",")]
    except ValueError:
        raise UnknownSourceType(f"{text!r}: expected numbers in parentheses") from None


_MEMBER = re.compile(r"\s*'((?:[^']|'')*)'\s*(,|$)")


def _members(args: str, text: str) -> tuple[str, ...]:
    members: list[str] = []
    position = 0
    while position < len(args):
        match = _MEMBER.match(args, position)
        if match is None:
            raise UnknownSourceType(f"{text!r}: expected quoted values like enum('a','b')")
        members.append(match[1].replace("''", "'"))
        position = match.end()
        if match[2] == "":
            break
    return tuple(members)


def _quote(member: str) -> str:
    return "'" + member.replace("'", "''") + "'"


def from_sqlalchemy(sa_type: Any, *, is_json: bool = False, raw_name: str = "") -> SourceType:
    """The ``SourceType`` of a column as SQLAlchemy's inspector reports it.

    ``is_json``: MariaDB stores JSON as longtext with a ``json_valid`` CHECK, which the
    inspector does not report. ``raw_name``: the server's own type name, for types the
    inspector does not know (it reports those as ``NullType``).
    """
    if is_json:
        return SourceType("json")
    name = str(getattr(sa_type, "__visit_name__", "")).lower()
    if name in ("null", ""):
        return SourceType(raw_name.lower() or "unknown")
    name = _ALIASES.get(name, name)
    if name == "tinyint(1)":  # SQLAlchemy's BOOLEAN
        return SourceType("tinyint", size=1)
    unsigned = bool(getattr(sa_type, "unsigned", False))
    if name in ("enum", "set"):
        members = getattr(sa_type, "enums", None) or getattr(sa_type, "values", None) or ()
        return SourceType(name, members=tuple(str(m) for m in members))
    if name == "decimal":
        return SourceType(
            "decimal",
            unsigned,
            precision=getattr(sa_type, "precision", None) or 10,
            scale=getattr(sa_type, "scale", None) or 0,
        )
    if name == "tinyint" and getattr(sa_type, "display_width", None) == 1:
        return SourceType("tinyint", unsigned, size=1)
    return SourceType(name, unsigned, size=_size(sa_type, name))


def _size(sa_type: Any, name: str) -> int | None:
    if name not in _SIZED:
        return None
    value = getattr(sa_type, "fsp", None) if name in ("datetime", "timestamp", "time") else None
    if value is None:
        value = getattr(sa_type, "length", None)
    return int(value) if value else None
