"""The one decoder from binary-log values to the values a SELECT of the same row gives.

``pymysqlreplication`` hands each column over in its own shape, which differs from what the
source reader yields (the VALUE CONTRACT: ``chariot.streams.Column``'s ``source_type``
decides). The differences, each checked against a SELECT on MariaDB 10.11
(tests/test_cdc_decode.py):

* ``set``: a Python set (unordered), and None for the empty set -> list in member order.
* ``year``: 0000 arrives as 1900 (the log stores year - 1900) -> 0.
* ``timestamp``: a naive datetime in UTC -> aware, UTC.
* ``float``: the float32 value unrounded (0.10000000149011612); a SELECT prints six
  significant digits (0.1) -> rounded the same way.
* ``time``: a negative value with a fraction arrives wrong (-00:00:01.25 as -00:00:01.75:
  the library does not undo the fraction's two's complement) -> corrected.
* ``bit``: a text of 0s and 1s -> int, or bool for bit(1).
* ``binary(n)``: trailing zero bytes stripped -> padded back to n.
* ``blob``/``binary`` family: an empty value arrives as ``''`` (str) -> ``b''``.
* ``uuid`` (MariaDB): 16 raw bytes, trailing zeros stripped -> the text form.
* ``json``: MariaDB keeps the text (a longtext); MySQL 8's binary JSON arrives parsed ->
  serialised the way MySQL prints it (untested here: no MySQL 8 on this machine).
* integers: signed by the table map's signedness; should a log lack it, a negative value of
  an unsigned column is turned back into its unsigned value.
* ``tinyint(1)`` whose PostgreSQL type is boolean -> bool (a value besides 0 and 1 stays
  an int, which ``chariot.cdc.validate`` rejects as the source reader does).
* zero dates (``0000-00-00``): None for date/datetime (told apart from NULL by the row's
  ``none_sources``), the epoch for timestamp -> ``ZERO_DATE``, which a change applier
  rejects as the source reader's SQL rules reject such rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Final

from chariot.project.column_types import (
    BINARIES,
    INTEGERS,
    TEXTS,
    SourceType,
    parse_source_type,
)
from chariot.streams import Column

Decoder = Callable[[Any], Any]


class _Zero(Enum):
    DATE = "0000-00-00"

    def __repr__(self) -> str:
        return "ZERO_DATE"


# A zero date or datetime in the log: never a value a sink stores.
ZERO_DATE: Final = _Zero.DATE

# pymysqlreplication's reasons for a None (row["none_sources"]), besides a real NULL.
_EMPTY_SET = "empty set"
_OUT_OF_RANGE = ("out of date range", "out of datetime range", "out of datetime2 range")
_INTEGER_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}
_EPOCH = dt.datetime(1970, 1, 1)
_MICROS = 1_000_000


def decode_row(
    values: Mapping[str, Any], none_sources: Mapping[str, str], columns: Sequence[Column]
) -> dict[str, Any]:
    """One row image from the log -> ``{source column: contract value}`` for ``columns``.

    Columns of the table that the project does not carry are left out; a column the project
    names but the row image lacks raises KeyError (the table changed under the project).
    """
    return decode_planned(values, none_sources, _plan(tuple(columns)))


def row_plan(columns: Sequence[Column]) -> list[tuple[str, Decoder, str, bool]]:
    """``decode_row``'s per-column plan, to decode many rows of one table with
    ``decode_planned`` (without hashing the columns again per row)."""
    return _plan(tuple(columns))


def decode_planned(
    values: Mapping[str, Any],
    none_sources: Mapping[str, str],
    plan: Sequence[tuple[str, Decoder, str, bool]],
) -> dict[str, Any]:
    """``decode_row`` with the plan ``row_plan`` made."""
    row: dict[str, Any] = {}
    for name, decode, source_type, boolean in plan:
        value = values[name]
        if value is None:
            row[name] = decode_value(
                None, source_type, boolean=boolean, none_source=none_sources.get(name, "")
            )
        else:
            row[name] = decode(value)
    return row


@cache
def _plan(columns: tuple[Column, ...]) -> list[tuple[str, Decoder, str, bool]]:
    """Per column: its name, decoder, type and boolean flag, worked out once per table."""
    plan = []
    for column in columns:
        boolean = column.postgres == "boolean" or column.kind == "boolean"
        plan.append(
            (
                column.source,
                decoder(column.source_type, boolean=boolean),
                column.source_type,
                boolean,
            )
        )
    return plan


def decode_value(
    value: Any, source_type: str, *, boolean: bool = False, none_source: str = ""
) -> Any:
    """One value as the log gives it -> the contract value (see the module docstring).

    ``boolean``: a ``tinyint(1)`` stored as PostgreSQL boolean; ``none_source``: the
    library's reason for a None (``row["none_sources"]``), which tells an empty SET and a
    zero date from NULL.
    """
    if value is not None:
        return decoder(source_type, boolean=boolean)(value)
    name = _type_name(source_type)
    if none_source == _EMPTY_SET and name == "set":
        return []
    if none_source in _OUT_OF_RANGE and name in ("date", "datetime"):
        return ZERO_DATE
    return None


@cache
def _type_name(source_type: str) -> str:
    return parse_source_type(source_type).name


@cache
def decoder(source_type: str, *, boolean: bool = False) -> Decoder:
    """The decoder of one column type (cached: one per distinct type text)."""
    parsed = parse_source_type(source_type)
    name = parsed.name
    if name in INTEGERS:
        return _integer(parsed, boolean=boolean)
    if name in BINARIES:
        return _binary(parsed.size if name == "binary" else None)
    simple = _SIMPLE.get(name)
    if simple is not None:
        return simple
    if name == "set":
        return _set(parsed.members)
    if name == "bit":
        return _bit(parsed.size or 1)
    return _text if name in (*TEXTS, "enum") else _same


def _integer(parsed: SourceType, *, boolean: bool) -> Decoder:
    if parsed.is_tinyint1 and boolean:
        return _boolean
    if not parsed.unsigned:
        return int
    wrap = 1 << _INTEGER_BITS[parsed.name]
    return lambda value: int(value) + wrap if value < 0 else int(value)


def _boolean(value: Any) -> bool | int:
    # Anything but 0 and 1 stays the number it is: the reject rules refuse it
    # (``chariot.cdc.validate``), as the source reader's SQL does.
    return bool(value) if value in (0, 1) else int(value)


def _binary(size: int | None) -> Decoder:
    def decode(value: Any) -> bytes:
        raw = value.encode() if isinstance(value, str) else bytes(value)  # '' for empty
        return raw.ljust(size, b"\0") if size else raw

    return decode


def _set(members: tuple[str, ...]) -> Decoder:
    def decode(value: Any) -> list[str]:
        chosen = set(value)
        return [member for member in members if member in chosen]

    return decode


def _bit(width: int) -> Decoder:
    if width == 1:
        return lambda value: int(value, 2) == 1
    return lambda value: int(value, 2)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else bytes(value).decode()


def _same(value: Any) -> Any:
    return value


def _float(value: Any) -> float:
    # MariaDB prints a FLOAT with six significant digits (FLT_DIG; MySQL 8 untested here).
    return float(f"{float(value):.6g}")


def _year(value: Any) -> int:
    return 0 if value == 1900 else int(value)


def _timestamp(value: Any) -> Any:
    if value == _EPOCH:  # 0000-00-00 00:00:00 is stored as the epoch, a value no row can have
        return ZERO_DATE
    return value.replace(tzinfo=dt.UTC)


def _time(value: dt.timedelta) -> dt.timedelta:
    # Negative TIME with a fraction: the library reads the fraction without undoing its
    # two's complement, so -(S + f) arrives as -(S + (1 - f)).
    if value >= dt.timedelta(0):
        return value
    total = -(value // dt.timedelta(microseconds=1))
    seconds, fraction = divmod(total, _MICROS)
    if fraction == 0:
        return value
    return -dt.timedelta(seconds=seconds, microseconds=_MICROS - fraction)


def _json(value: Any) -> str:
    if isinstance(value, str):  # MariaDB: the text as stored
        return value
    if isinstance(value, bytes):
        return value.decode()
    # MySQL 8: the parsed binary JSON, printed as MySQL prints it ({"a": 1, "b": [1, 2]}).
    return json.dumps(_json_text_keys(value), ensure_ascii=False, separators=(", ", ": "))


def _json_text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_text(key): _json_text_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_text_keys(item) for item in value]
    if isinstance(value, bytes):
        return value.decode()
    return value


def _uuid(value: Any) -> str:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return str(uuid.UUID(bytes=raw.ljust(16, b"\0")))


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


_SIMPLE: dict[str, Decoder] = {
    "float": _float,
    "double": float,
    "decimal": _decimal,
    "year": _year,
    "timestamp": _timestamp,
    "time": _time,
    "json": _json,
    "uuid": _uuid,
    "date": _same,
    "datetime": _same,
}
