"""The reject rules of an Arrow page, screened in Arrow instead of a CASE the server computes.

The row reader asks MariaDB/MySQL for each row's reject reason (``validation.reject_reason``,
a CASE in the page's statement). Measured on 1M ratings read by connectorx at load ~10:
the CASE costs the server 30-55% of the read (50,000-row pages 4.9 s with it, 3.4 s
without; 200,000-row pages 4.4 s and 2.0 s). For a stream whose every rule is one of these,
the page is read without the CASE and each rule is screened over whole columns in Arrow:

* ``null``: the value is NULL;
* ``range`` on an integer or decimal column: below the minimum or above the maximum,
  compared exactly (integers against the whole bounds, decimals as decimals);
* ``step`` on an integer or decimal column: the value, scaled to an integer, is not an
  exact multiple of the step scaled alike (int64 arithmetic, only where every value fits);
* ``nul``: the text holds a NUL character.

A screen may flag more rows than the rules reject (MySQL calls 100001 a multiple of 100000:
its quotient is rounded to 4 more digits), never fewer: a row it lets through breaks no
rule. Each flagged row (in valid data: none) gets its verdict from the rules as change
capture evaluates them in Python (``chariot.cdc.validate``, which reproduces the server's
arithmetic), so the rejects and their reasons are the ones the CASE gives. A stream with any
other rule (dates, booleans, a step on a float) keeps the CASE.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from chariot.batch import Reject
from chariot.project.column_types import INTEGERS, parsed_source_type
from chariot.streams import Column, Stream
from chariot.validation import Rule, rules

Screen = Callable[[Any], Any]  # an Arrow column -> a boolean array (True: may break the rule)
INT64_DIGITS = 18  # every integer of up to 18 digits, and its multiples we compute, fit
DECIMAL128_DIGITS = 38


def arrow_screens(stream: Stream, dialect: str) -> list[tuple[int, Screen]] | None:
    """(column position, screen) for every rule of ``stream``, or None when one of its rules
    cannot be screened exactly in Arrow (the page then asks the server for the reasons)."""
    positions = {name: i for i, name in enumerate(stream.source_columns)}
    screens = []
    for rule in rules(stream, dialect):
        screen = _screen(rule)
        if screen is None:
            return None
        screens.append((positions[rule.column.source], screen))
    return screens


def _screen(rule: Rule) -> Screen | None:
    import pyarrow.compute as pc

    column = rule.column
    if rule.check == "null":
        return pc.is_null
    if rule.check == "nul":
        return lambda values: pc.match_substring(values, "\x00")
    source = parsed_source_type(column.source_type)
    if source is None or (source.name not in INTEGERS and source.name != "decimal"):
        return None
    if rule.check == "range":
        return _range_screen(column, source)
    if rule.check == "step":
        return _step_screen(column, source)
    return None


def _range_screen(column: Column, source: Any) -> Screen | None:
    import pyarrow.compute as pc

    low, high = column.min_value, column.max_value
    if low is None or high is None:
        return None
    if source.name in INTEGERS:  # an integer is within [low, high] iff within the whole bounds
        whole_low = _scalar(int(low.to_integral_value(rounding="ROUND_CEILING")))
        whole_high = _scalar(int(high.to_integral_value(rounding="ROUND_FLOOR")))
        return lambda values: pc.or_(pc.less(values, whole_low), pc.greater(values, whole_high))
    low_scalar, high_scalar = _scalar(Decimal(low)), _scalar(Decimal(high))
    return lambda values: pc.or_(pc.less(values, low_scalar), pc.greater(values, high_scalar))


def _step_screen(column: Column, source: Any) -> Screen | None:
    """``value * 10**k`` is not a multiple of ``step * 10**k`` (both integers), with k the
    digits after the point of the column or the step, whichever has more."""
    import pyarrow as pa
    import pyarrow.compute as pc

    step = column.step
    if step is None or step <= 0:
        return None
    scale = source.scale if source.name == "decimal" else 0
    exponent = step.as_tuple().exponent
    places = max(scale, -exponent if isinstance(exponent, int) else 0)
    if source.name == "decimal":
        digits = source.precision - scale + places
    else:  # an unsigned bigint may exceed int64 (and its quotient MySQL's BIGINT)
        digits = {"tinyint": 3, "smallint": 5, "mediumint": 8, "int": 10}.get(source.name, 99)
        digits += places
    if digits > INT64_DIGITS:
        return None
    scaled_step = _scalar(int(step.scaleb(places)))
    factor = _scalar(10**places)
    power = _scalar(Decimal(10**places))

    def off_step(values: Any) -> Any:
        if pa.types.is_decimal(values.type):
            values = pc.multiply(values, power)
            scaled = pc.cast(values, pa.int64())  # whole: ``places`` >= the column's scale
        else:
            scaled = pc.multiply(pc.cast(values, pa.int64()), factor)
        multiple = pc.multiply(pc.divide(scaled, scaled_step), scaled_step)  # truncating
        return pc.not_equal(multiple, scaled)

    return off_step


def _scalar(value: int | Decimal) -> Any:
    """``pa.scalar(value)`` (int64, or the decimal128 of the value's own digits), built from
    its bytes: pyarrow's first conversion of a Python value imports pandas (measured 0.3-0.45
    s, once per process), which a first load otherwise never needs. Values beyond those
    types go to ``pa.scalar`` itself."""
    import pyarrow as pa

    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            return pa.scalar(value)
        scale = max(-exponent, 0)
        precision = max(len(digits) + max(exponent, 0), scale, 1)
        if precision > DECIMAL128_DIGITS:
            return pa.scalar(value)
        # From the digits, exactly: Decimal arithmetic would round to its context's 28.
        unscaled = int("".join(map(str, digits)) or "0") * 10 ** max(exponent, 0)
        data = (-unscaled if sign else unscaled).to_bytes(16, "little", signed=True)
        kind = pa.decimal128(precision, scale)
    elif -(1 << 63) <= value < (1 << 63):
        data, kind = value.to_bytes(8, "little", signed=True), pa.int64()
    else:
        return pa.scalar(value)
    return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(data)])[0]


def screened_rejects(
    stream: Stream, page: Any, screens: list[tuple[int, Screen]]
) -> tuple[Any, list[Reject]]:
    """The page's loadable rows and its rejects: the rows no screen flags load; each flagged
    row is judged by the rules themselves (``chariot.cdc.validate``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    flagged = None
    for position, screen in screens:
        hit = screen(page.column(position))
        # NULL -> False without a Python scalar (pyarrow's first one imports pandas: ~0.4 s).
        hit = pc.and_kleene(hit, pc.is_valid(hit))
        flagged = hit if flagged is None else pc.or_(flagged, hit)
    if flagged is None or not pc.any(flagged).as_py():
        return page, []
    from chariot.cdc.validate import reject_reason

    names = list(stream.source_columns)
    positions = stream.key_positions
    keep = [True] * page.num_rows
    rejects: list[Reject] = []
    indices = pc.indices_nonzero(flagged).to_pylist()
    for index, row in zip(indices, page.take(pa.array(indices)).to_pylist(), strict=True):
        reason = reject_reason(stream, row)
        if reason is not None:
            keep[index] = False
            key = tuple(row[names[p]] for p in positions)
            rejects.append(Reject(stream.name, key, reason))
    return (page.filter(pa.array(keep)) if rejects else page), rejects
