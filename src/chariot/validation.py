"""The rules that make a source row un-loadable, as SQL the source database evaluates.

Validation is decided once, in the reader, for every sink: a row with a NULL key column, a
NULL in a column the sinks require (``Column.nullable`` False), a value outside its range or
off its step, a NUL character in text (PostgreSQL cannot store one), a zero date or a date
with a zero part (MySQL's ``'0000-00-00'``, ``'2020-00-15'``: no sink has such a date), or an
integer stored as boolean that is neither 0 nor 1 becomes a ``Reject`` with its key and the
first reason that applies. Other values fit their sink types by construction: integers are
widened, ``decimal(p,s)`` is ``numeric(p,s)``, TIME fits an interval; a value PostgreSQL
still refuses (JSON it does not accept) is a reject of the sink's own bisecting write. The
rules are SQLAlchemy Core expressions, so the source database checks each row and Python
never inspects one. (Change capture, whose rows come from the binary log, not from a
SELECT, evaluates the same ``rules`` in Python: ``chariot.cdc.validate``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from chariot.streams import Column, Stream

if TYPE_CHECKING:
    from sqlalchemy.sql import ColumnElement, TableClause


# What a rule checks; ``rules`` lists them, ``reject_rules`` writes each as SQL, and
# ``chariot.cdc.validate`` evaluates the same list on a row decoded from the binary log.
RuleCheck = Literal["null", "range", "step", "nul", "zero date", "zero part", "boolean"]


@dataclass(frozen=True)
class Rule:
    """One reject rule: what it checks, on which column, and the reason a reject gives."""

    check: RuleCheck
    column: Column
    reason: str


def rules(stream: Stream, dialect: str = "mysql") -> list[Rule]:
    """The stream's rules in the order they are checked; the first that applies wins.
    ``dialect`` is the source's SQLAlchemy dialect name (a few rules are per dialect)."""
    found = [Rule("null", stream.column(name), f"NULL in key column {name}") for name in stream.key]
    for column in stream.columns:
        found.extend(_column_rules(column, dialect, is_key=column.source in stream.key))
    return found


def _column_rules(column: Column, dialect: str, *, is_key: bool) -> list[Rule]:
    name = column.source
    found: list[Rule] = []
    if not column.nullable and not is_key:
        found.append(Rule("null", column, f"NULL {name}"))
    if column.min_value is not None and column.max_value is not None:
        found.append(Rule("range", column, f"{name} outside {column.min_value}-{column.max_value}"))
    if column.step is not None:
        found.append(Rule("step", column, f"{name} not a multiple of {column.step}"))
    if column.kind in TEXT_KINDS and dialect in NUL_CAPABLE_DIALECTS:
        found.append(Rule("nul", column, f"NUL character in {name}"))
    if dialect in ("mysql", "mariadb"):
        found.extend(_mysql_type_rules(column))
    return found


# Kinds whose values are text in PostgreSQL (text, a SET's members, JSON).
TEXT_KINDS = ("text", "text[]", "jsonb")
DATE_TYPES = ("date", "datetime", "timestamp")


def _mysql_type_rules(column: Column) -> list[Rule]:
    """Rules that follow from the column's MySQL type and what PostgreSQL stores it as."""
    from chariot.project.column_types import INTEGERS

    name = _type_name(column.source_type)
    if name in DATE_TYPES:
        return [
            Rule("zero date", column, f"zero date in `{column.source}`"),
            Rule("zero part", column, f"zero year, month or day in `{column.source}`"),
        ]
    if name in INTEGERS and column.postgres == "boolean":
        return [
            Rule("boolean", column, f"`{column.source}` is neither 0 nor 1 (stored as boolean)")
        ]
    return []


def reject_rules(
    stream: Stream, table: TableClause, dialect: str = "mysql"
) -> list[tuple[ColumnElement[Any], str]]:
    """(condition, reason) pairs in the order they are checked; the first true one wins."""
    return [(_condition(rule, table, dialect), rule.reason) for rule in rules(stream, dialect)]


def _condition(rule: Rule, table: TableClause, dialect: str) -> ColumnElement[Any]:
    from sqlalchemy import CHAR, Integer, cast, func, literal, or_

    column = rule.column
    value = table.c[column.source]
    if rule.check == "null":
        return value.is_(None)
    if rule.check == "range":
        assert column.min_value is not None and column.max_value is not None
        return ~value.between(_number(column.min_value), _number(column.max_value))
    if rule.check == "step":
        assert column.step is not None
        # value / step must be whole. CAST rounds (MySQL) or truncates (others); either way
        # a fraction changes the number. No FLOOR: SQLite builds may lack math functions.
        ratio = value / _number(column.step)
        return ratio != cast(ratio, Integer)
    if rule.check == "nul":
        return _contains_nul(value, dialect)
    if rule.check == "boolean":
        return (value != _number(Decimal(0))) & (value != _number(Decimal(1)))
    # Dates, on the value's text ('0000-00-00 00:00:00'): functions on zero dates differ
    # between servers and SQL modes, the text does not.
    text = cast(value, CHAR())
    if rule.check == "zero date":
        return func.substr(text, 1, 10) == literal("0000-00-00")
    return or_(
        func.substr(text, 1, 4) == literal("0000"),
        func.substr(text, 6, 2) == literal("00"),
        func.substr(text, 9, 2) == literal("00"),
    )


def _type_name(source_type: str) -> str:
    """``"datetime(6)"`` -> ``"datetime"``; ``"int unsigned"`` -> ``"int"``; "" for a stream
    built by hand (no source types)."""
    from chariot.project.column_types import UnknownSourceType, parse_source_type

    if not source_type:
        return ""
    try:
        return parse_source_type(source_type).name
    except UnknownSourceType:
        return ""


# Sources whose text can hold a NUL character (PostgreSQL, our sink, cannot store one).
NUL_CAPABLE_DIALECTS = {"mysql", "mariadb", "sqlite"}


def _contains_nul(value: ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    # Not LIKE with a bound '\x00': SQLite cuts the parameter at the NUL, leaving '%%', which
    # matches every row. CHAR(0) is built by the database itself (MySQL and SQLite alike).
    # MySQL/MariaDB compare the bytes: under a Unicode collation control characters weigh
    # nothing, like NUL, and INSTR would find a NUL in 'back\x08space'.
    from sqlalchemy import cast, func
    from sqlalchemy.dialects.mysql import BINARY

    text = cast(value, BINARY()) if dialect in ("mysql", "mariadb") else value
    return func.instr(text, func.char(0)) > 0


def _number(value: Decimal) -> ColumnElement[Any]:
    """A numeric literal written into the SQL (a Decimal is not bindable on every driver)."""
    from sqlalchemy import literal_column

    return literal_column(str(value))


def reject_reason(stream: Stream, table: TableClause, dialect: str = "mysql") -> ColumnElement[Any]:
    """A CASE expression: the reason a row is rejected, or NULL for a loadable row."""
    from sqlalchemy import case, null

    rules = reject_rules(stream, table, dialect)
    return case(*rules, else_=null())


def null_key_condition(stream: Stream, table: TableClause) -> ColumnElement[Any]:
    """Rows keyset paging can never reach (a NULL compares as unknown): reported separately."""
    from sqlalchemy import CHAR, cast, or_

    def is_null(name: str) -> ColumnElement[bool]:
        value = table.c[name]
        if _type_name(stream.column(name).source_type) not in DATE_TYPES:
            return value.is_(None)
        # In a WHERE clause MariaDB and MySQL answer `d IS NULL` with true for the zero date
        # of a NOT NULL date column. Its text is not NULL: that row is paged, and rejected
        # there as a zero date. `d IS NULL` stays first, so the index still serves it.
        return value.is_(None) & cast(value, CHAR()).is_(None)

    return or_(*(is_null(name) for name in stream.key))
