"""Arrow columns as PostgreSQL's binary COPY format, for a first load of fixed-width rows.

The server parses binary COPY faster than CSV: measured on 1M ratings (integer, integer,
numeric(2,1), bigint) into a logged table without indexes, at load ~4.7 on 2 cores, COPY
1.0-1.1 s in binary against 1.5-1.8 s as CSV. When every column of a batch has a fixed
width in that format and no NULL (smallint, integer, bigint, double precision, and numeric
from a decimal of at most 18 digits), numpy lays out every row at once: no Python object
per value. Any other batch (text, a NULL, a value beyond the column's type) gets None and
goes as CSV, which PostgreSQL parses and refuses exactly as before.

A row is the field count (int16), then per field its byte length (int32) and its bytes,
all big-endian. A numeric is (ndigits, weight, sign, dscale) as int16s followed by ndigits
base-10000 digits, most significant first; every row of a column has the same ndigits here
(leading and trailing zero digits included), which the server strips (``make_result``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
# PostgreSQL type -> (numpy big-endian type, the Arrow type the column is cast to first).
_FIXED = {
    "smallint": (">i2", "int16"),
    "int2": (">i2", "int16"),
    "integer": (">i4", "int32"),
    "int": (">i4", "int32"),
    "int4": (">i4", "int32"),
    "bigint": (">i8", "int64"),
    "int8": (">i8", "int64"),
    "double precision": (">f8", "float64"),
    "float8": (">f8", "float64"),
}
_NUMERIC = re.compile(r"(?:numeric|decimal)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?")
INT64_DIGITS = 18  # a decimal of up to 18 digits, scaled to whole base-10000 digits, fits
NUMERIC_NEGATIVE = 0x4000


def binary_copy(columns: Any, types: Sequence[str]) -> bytes | None:
    """The COPY (FORMAT binary) data of an Arrow table whose column i goes into a column of
    PostgreSQL type ``types[i]``; None when a column is not one this module encodes."""
    import numpy as np

    if columns.num_columns != len(types) or columns.num_rows == 0:
        return None
    fields: list[tuple[Any, ...]] = [("count", ">i2")]
    values: list[tuple[str, Any]] = [("count", columns.num_columns)]
    for position, (column, type_) in enumerate(zip(columns.columns, types, strict=True)):
        if column.null_count:
            return None
        encoded = _encoded(column, type_.strip().lower())
        if encoded is None:
            return None
        for name, dtype, shape, value in encoded:
            field = f"c{position}_{name}"
            fields.append((field, dtype, shape) if shape else (field, dtype))
            values.append((field, value))
    rows = np.empty(columns.num_rows, dtype=np.dtype(fields))
    for field, value in values:
        rows[field] = value
    return HEADER + rows.tobytes() + TRAILER


def _encoded(column: Any, type_: str) -> list[tuple[str, str, int, Any]] | None:
    """(name, numpy type, shape, value) of each part of the column's field, or None."""
    import pyarrow as pa

    fixed = _FIXED.get(type_)
    if fixed is not None:
        dtype, arrow_type = fixed
        source = column.type
        if arrow_type == "float64" and not pa.types.is_float64(source):
            return None
        if arrow_type != "float64" and not pa.types.is_integer(source):
            return None
        try:  # safe: a value beyond the target type raises; CSV then lets the server refuse it
            array = column.cast(getattr(pa, arrow_type)()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        width = int(dtype[-1])
        return [("length", ">i4", 0, width), ("value", dtype, 0, array)]
    match = _NUMERIC.fullmatch(type_)
    if match is None or not pa.types.is_decimal128(column.type):
        return None
    return _numeric(column, match.group(2))


def _numeric(column: Any, declared_scale: str | None) -> list[tuple[str, str, int, Any]] | None:
    import numpy as np
    import pyarrow as pa

    precision, scale = column.type.precision, column.type.scale
    if declared_scale is not None and int(declared_scale) != scale:
        return None  # the server would round: leave that to its text path
    fraction_digits = -(-scale // 4)
    whole_digits = -(-(precision - scale) // 4)
    shift = 4 * fraction_digits - scale  # to whole base-10000 digits after the point
    if precision + shift > INT64_DIGITS:
        return None
    digits = fraction_digits + whole_digits
    if digits == 0:
        return None
    array = pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    # A decimal128 is 16 bytes, little-endian two's complement: with at most 18 digits the
    # low 8 bytes, read as int64, are the whole unscaled value.
    words = np.frombuffer(array.buffers()[1], dtype="<i8", count=2 * (array.offset + len(array)))
    low = words[2 * array.offset :: 2]
    magnitude = np.abs(low) * (10**shift)
    places = 10000 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    parts = (magnitude[:, None] // places[None, :]) % 10000
    sign = np.where(low < 0, NUMERIC_NEGATIVE, 0)
    header = np.empty((len(array), 4), dtype=np.int64)
    header[:, 0] = digits
    header[:, 1] = whole_digits - 1  # weight: the power of 10000 of the first digit
    header[:, 2] = sign
    header[:, 3] = scale
    return [
        ("length", ">i4", 0, 8 + 2 * digits),
        ("header", ">i2", 4, header),
        ("digits", ">i2", digits, parts),
    ]
