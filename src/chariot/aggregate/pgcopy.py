"""Fixed-width NOT NULL columns between PostgreSQL and numpy, without per-row Python.

Reading: the server packs each row into big-endian binary and concatenates all rows into
one bytea (``fetch_columns``); numpy reads it in place. Writing: a binary COPY of such
columns has rows of one size (a field count, then per field a length and the big-endian
value), so the whole stream is one numpy structured array (``encode``). Only ``int2``,
``int4``, ``int8`` and ``float8`` - what the aggregation moves (ratings as integer tenths,
a missing float as NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no extension
TRAILER = b"\xff\xff"
PG_TYPES = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8"}


class CopyFormatError(ValueError):
    """The COPY data is not what the fixed-width layout expects (e.g. a NULL)."""


def row_dtype(types: Sequence[str]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("field_count", ">i2")]
    for index, pg_type in enumerate(types):
        fields += [(f"length{index}", ">i4"), (f"value{index}", PG_TYPES[pg_type])]
    return np.dtype(fields)


def encode(columns: Sequence[np.ndarray], types: Sequence[str]) -> bytes:
    """A binary COPY ... FROM STDIN stream of equally long ``columns`` of ``types``."""
    count = len(columns[0]) if columns else 0
    rows = np.empty(count, dtype=row_dtype(types))
    rows["field_count"] = len(types)
    for index, (column, pg_type) in enumerate(zip(columns, types, strict=True)):
        if len(column) != count:
            raise ValueError("columns differ in length")
        rows[f"length{index}"] = np.dtype(PG_TYPES[pg_type]).itemsize
        rows[f"value{index}"] = column
    return HEADER + rows.tobytes() + TRAILER


SEND_FUNCTIONS = {
    "int2": "int2send",
    "int4": "int4send",
    "int8": "int8send",
    "float8": "float8send",
}


def fetch_columns(
    connection: Any,
    expressions: Sequence[str],
    source: str,
    params: Sequence[Any],
    types: Sequence[str],
) -> list[np.ndarray]:
    """``SELECT expressions FROM source`` as numpy columns, in ONE fetch.

    The server packs every row into big-endian binary (``int4send`` ...) and concatenates
    them with ``string_agg`` into one bytea, which numpy reads in place: no per-row Python
    (a COPY would hand over one message per row). Rows with a NULL would vanish from the
    aggregate, so they are counted and refused instead.
    """
    packed = " || ".join(
        f"{SEND_FUNCTIONS[t]}(({expression})::{t})"
        for expression, t in zip(expressions, types, strict=True)
    )
    row = connection.execute(
        f"SELECT count(*), string_agg({packed}, ''::bytea) FROM {source}", params, binary=True
    ).fetchone()
    count, data = int(row[0]), bytes(row[1] or b"")
    dtype = np.dtype([(f"value{i}", PG_TYPES[t]) for i, t in enumerate(types)])
    values = np.frombuffer(data, dtype=dtype)
    if len(values) != count or len(data) != count * dtype.itemsize:
        raise CopyFormatError(
            f"{count - len(values)} of {count} rows have a NULL in a NOT NULL column"
        )
    return [values[f"value{i}"].astype(PG_TYPES[t].replace(">", "=")) for i, t in enumerate(types)]


def copy_in(
    cursor: Any,
    table: str,
    names: Sequence[str],
    columns: Sequence[np.ndarray],
    types: Sequence[str],
) -> None:
    """``COPY table (names) FROM STDIN (FORMAT binary)`` in one write."""
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN (FORMAT binary)") as copy:
        copy.write(encode(columns, types))
