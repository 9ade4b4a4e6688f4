"""The source reader's reject rules, evaluated on a row decoded from the binary log.

A first copy asks the source database which rows break a rule (``chariot.validation``: one
SQL CASE per stream). A change read from the log is no SELECT, so the same rules, in the
same order and with the same reasons (``chariot.validation.rules``), are evaluated here in
Python on the decoded after-image, reproducing what MySQL/MariaDB computes:

* ``range``: integers and decimals compare exactly with the bound, as MySQL compares them
  with a decimal literal; a FLOAT/DOUBLE compares as a double, the FLOAT first turned back
  into the single-precision number the column holds (the decoder rounds it for display).
* ``step``: MySQL divides a decimal by the step with ``div_precision_increment`` (4) more
  fractional digits than the value's own scale, rounding; the quotient must be whole and
  fit a BIGINT (``CAST(... AS SIGNED)`` saturates). ``100001 / 100000`` is ``1.0000``
  there, a multiple.
* ``nul``: a NUL character in the text, in a SET member or in the JSON text.
* ``zero date``: the decoder's ``ZERO_DATE``. The log gives a date with a zero part
  (``'2020-00-15'``) exactly as a zero date (the replication library reads both as None),
  so such a row is rejected with the zero-date reason, where the reader says "zero year,
  month or day": the row is refused all the same, only the wording differs.
* ``boolean``: a ``tinyint(1)`` stored as boolean holding anything but 0 and 1 (the decoder
  leaves such a value an int).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import lru_cache
from typing import Any

from chariot.cdc.decode import ZERO_DATE
from chariot.project.column_types import parsed_source_type
from chariot.streams import Column, Stream
from chariot.validation import Rule, rules

# MySQL's and MariaDB's default: the digits a division adds to its dividend's scale.
DIV_PRECISION_INCREMENT = 4
_SIGNED = (-(2**63), 2**63 - 1)
# Room for any DECIMAL(65, 30) quotient before it is rounded as MySQL rounds it.
_WIDE = Context(prec=200)


def reject_reason(stream: Stream, row: Mapping[str, Any]) -> str | None:
    """The reason the source reader would reject ``row`` ({source column: contract value},
    as ``chariot.cdc.decode`` gives it), or None when the row loads."""
    for rule, breaks in _checks(stream):
        if breaks(row[rule.column.source]):
            return rule.reason
    return None


Checks = tuple[tuple[Rule, Callable[[Any], bool]], ...]
# By the stream object itself: hashing a stream (all its columns) per row cost more than
# the checks.
_checks_of: dict[int, tuple[Stream, Checks]] = {}


def _checks(stream: Stream) -> Checks:
    """Each rule of the stream with its Python test, worked out once per stream."""
    known = _checks_of.get(id(stream))
    if known is not None and known[0] is stream:
        return known[1]
    checks = _stream_checks(stream)
    if len(_checks_of) >= 512:
        _checks_of.clear()
    _checks_of[id(stream)] = (stream, checks)
    return checks


@lru_cache(maxsize=512)
def _stream_checks(stream: Stream) -> Checks:
    return tuple((rule, _check(rule)) for rule in rules(stream, "mysql"))


def _check(rule: Rule) -> Callable[[Any], bool]:
    column = rule.column
    if rule.check == "null":
        return lambda value: value is None
    if rule.check == "range":
        assert column.min_value is not None and column.max_value is not None
        return _outside(column, column.min_value, column.max_value)
    if rule.check == "step":
        assert column.step is not None
        return _off_step(column, column.step)
    if rule.check == "nul":
        return _has_nul
    if rule.check == "zero date":
        return lambda value: value is ZERO_DATE
    if rule.check == "zero part":
        return lambda value: False  # arrives as ZERO_DATE: the zero-date rule took it
    return lambda value: _is_number(value) and value not in (0, 1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _outside(column: Column, low: Decimal, high: Decimal) -> Callable[[Any], bool]:
    as_double = _double(column)

    def outside(value: Any) -> bool:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float):
            number = as_double(value)
            return not float(low) <= number <= float(high)
        if isinstance(value, int | Decimal):
            return not low <= value <= high
        return False  # NULL, or no number: SQL's BETWEEN is not false there either

    return outside


def _off_step(column: Column, step: Decimal) -> Callable[[Any], bool]:
    as_double = _double(column)
    scale = _scale(column)

    # With a known scale the answer depends on the number only: kept per distinct value
    # (a rating column has a handful), up to a bound.
    known: dict[tuple[type, Any], bool] = {}

    def remembered(value: Any) -> bool:
        found = known.get((type(value), value))
        if found is None:
            found = off_step(value)
            if len(known) < 4096:
                known[(type(value), value)] = found
        return found

    def off_step(value: Any) -> bool:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float):
            double = as_double(value) / float(step)
            return not double.is_integer() or not _SIGNED[0] <= double <= _SIGNED[1]
        if not isinstance(value, int | Decimal):
            return False
        digits = (scale if scale is not None else _decimal_places(value)) + DIV_PRECISION_INCREMENT
        exact = _WIDE.divide(Decimal(value), step)
        ratio = exact.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP, context=_WIDE)
        return ratio != ratio.to_integral_value() or not _SIGNED[0] <= ratio <= _SIGNED[1]

    return remembered if scale is not None else off_step


def _decimal_places(value: int | Decimal) -> int:
    exponent = Decimal(value).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _scale(column: Column) -> int | None:
    """The fractional digits of the column's type (0 for integers); None when unknown."""
    source = _source_type(column)
    if source is None:
        return None
    if source.name == "decimal":
        return source.scale or 0
    return 0 if source.name not in ("float", "double") else None


def _double(column: Column) -> Callable[[float], float]:
    """A FLOAT column holds a single-precision number, which SQL widens to a double; the
    decoder rounds it to 6 digits (what a SELECT prints): take the nearest float32 back."""
    source = _source_type(column)
    if source is not None and source.name == "float":
        return lambda value: float(struct.unpack("f", struct.pack("f", value))[0])
    return float


def _source_type(column: Column) -> Any:
    return parsed_source_type(column.source_type)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, bytes | bytearray):
        return b"\0" in value
    if isinstance(value, list | tuple):
        return any(_has_nul(member) for member in value)
    return False
