"""The rules that make a source row un-loadable, as SQL the source database evaluates.

Validation is decided once, in the reader, for every sink: a row with a NULL key column, a
NULL in a column the sinks require (``Column.nullable`` False), a value outside its range or
off its step, or a NUL character in text (PostgreSQL cannot store one) becomes a ``Reject``
with its key and the first reason that applies. The rules are SQLAlchemy Core expressions,
so the source database checks each row and Python never inspects one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chariot.streams import Column, Stream

if TYPE_CHECKING:
    from sqlalchemy.sql import ColumnElement, TableClause


def reject_rules(
    stream: Stream, table: TableClause, dialect: str = "mysql"
) -> list[tuple[ColumnElement[Any], str]]:
    """(condition, reason) pairs in the order they are checked; the first true one wins.
    ``dialect`` is the source's SQLAlchemy dialect name (a few checks are spelt per dialect)."""
    rules: list[tuple[ColumnElement[Any], str]] = [
        (table.c[name].is_(None), f"NULL in key column {name}") for name in stream.key
    ]
    for column in stream.columns:
        rules.extend(_column_rules(column, table, dialect, is_key=column.source in stream.key))
    return rules


def _column_rules(
    column: Column, table: TableClause, dialect: str, *, is_key: bool
) -> list[tuple[ColumnElement[Any], str]]:
    from sqlalchemy import Integer, cast

    value = table.c[column.source]
    rules: list[tuple[ColumnElement[Any], str]] = []
    if not column.nullable and not is_key:
        rules.append((value.is_(None), f"NULL {column.source}"))
    if column.min_value is not None and column.max_value is not None:
        rules.append(
            (
                ~value.between(_number(column.min_value), _number(column.max_value)),
                f"{column.source} outside {column.min_value}-{column.max_value}",
            )
        )
    if column.step is not None:
        # value / step must be whole. CAST rounds (MySQL) or truncates (others); either way a
        # fraction changes the number. No FLOOR: SQLite builds may lack math functions.
        ratio = value / _number(column.step)
        reason = f"{column.source} not a multiple of {column.step}"
        rules.append((ratio != cast(ratio, Integer), reason))
    if column.kind == "text" and dialect in NUL_CAPABLE_DIALECTS:
        rules.append((_contains_nul(value, dialect), f"NUL character in {column.source}"))
    return rules


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
    from sqlalchemy import or_

    return or_(*(table.c[name].is_(None) for name in stream.key))
