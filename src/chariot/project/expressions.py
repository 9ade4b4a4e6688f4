"""What an output column's transforms compute, in Python and as PostgreSQL SQL.

The Python function is the reference (the graph sink and the audit use it); the SQL is
the same rule for the PostgreSQL sink, which transforms set-wise from its staging table.
Cypher has no regular-expression capture without APOC, so graph values are computed in
Python and compared in Python. A ``python`` transform (a plugin's function) has no SQL at
all: the PostgreSQL sink stages its value computed here (``OutputColumn.in_python``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chariot.errors import DataError
from chariot.project.model import Cast, Extract, Python, Split
from chariot.project.outputs import OutputColumn, ValueStep

Function = Callable[[Any], Any]


def python_function(column: OutputColumn) -> Function:
    """The source value of ``column.origin`` -> the output value."""
    functions = [_python_step(step) for step in column.steps]

    def apply(value: Any) -> Any:
        for function in functions:
            value = function(value)
        return value

    return apply


def _python_step(step: ValueStep) -> Function:
    if isinstance(step, Split):
        return _split(step.delimiter, frozenset(step.empty))
    if isinstance(step, Extract):
        return _extract(re.compile(step.pattern), step.group)
    if isinstance(step, Python):
        return _python(step.function)
    return _cast(step)


def _python(name: str) -> Function:
    from chariot.plugins import load_transform

    function = load_transform(name)

    def python(value: Any) -> Any:
        try:
            return function(value)
        except Exception as error:  # the plugin's bug or a value it does not expect
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise DataError(
                f"Python transform {name!r} failed on the value {shown}: "
                f"{type(error).__name__}: {error}",
                hint="fix the function (it must accept every value of its column, None too)",
            ) from error

    return python


def _split(delimiter: str, empty: frozenset[str]) -> Function:
    def split(value: Any) -> list[str]:
        # "" is no elements, as PostgreSQL's string_to_array has it (Python gives [""]).
        if value is None or value == "" or value in empty:
            return []
        return str(value).split(delimiter)

    return split


def _extract(pattern: re.Pattern[str], group: int) -> Function:
    def extract(value: Any) -> str | None:
        if value is None:
            return None
        match = pattern.search(str(value))
        return match.group(group) if match else None

    return extract


def _cast(step: Cast) -> Function:
    def cast(value: Any) -> Any:
        if value is None:
            return None
        if step.to in ("smallint", "integer", "bigint"):
            # PostgreSQL rounds numeric halves away from zero when casting to an integer.
            if isinstance(value, str):
                return int(value.strip())
            return int(Decimal(str(value)).to_integral_value(ROUND_HALF_UP))
        if step.to == "numeric":
            return Decimal(str(value).strip())
        if step.to == "double precision":
            return float(value)
        return str(value)

    return cast


def postgres_expression(column: OutputColumn, source: str) -> str:
    """SQL computing ``column`` from ``source``, a quoted reference to its origin's value.
    A column computed in Python has none: the caller stages its value instead."""
    if column.in_python:
        raise ValueError(f"{column.name!r} is computed by a Python transform, not in SQL")
    expression = source
    for step in column.steps:
        assert not isinstance(step, Python)  # in_python above
        expression = _postgres_step(step, expression)
    return expression


def _postgres_step(step: Split | Extract | Cast, value: str) -> str:
    if isinstance(step, Split):
        markers = ", ".join(literal(marker) for marker in step.empty)
        empty = f" OR {value} IN ({markers})" if markers else ""
        return (
            f"CASE WHEN {value} IS NULL{empty} THEN '{{}}'::text[]"
            f" ELSE string_to_array({value}, {literal(step.delimiter)}) END"
        )
    if isinstance(step, Extract):
        # One outer group makes group 0 (the whole match) addressable as capture 1.
        return f"(regexp_match({value}, {literal('(' + step.pattern + ')')}))[{step.group + 1}]"
    return f"({value})::{step.to}"


def literal(text: str) -> str:
    """A PostgreSQL string constant (standard_conforming_strings: only quotes double)."""
    return "'" + text.replace("'", "''") + "'"
